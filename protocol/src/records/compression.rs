//! Decompression (bounded) and compression of a batch's records section.

use std::io::{BufRead, Read, Write};

use bytes::Bytes;

use super::{Compression, RecordError};

/// Magic that opens snappy data in the xerial framing Java producers write.
pub(crate) const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Xerial header: magic, version (i32), compatible version (i32).
const XERIAL_HEADER_LEN: usize = 16;
/// Block size of the xerial framing we write (Java's default).
const XERIAL_BLOCK: usize = 32 * 1024;

/// Decompresses `input` (a records section compressed with `codec`) into one
/// buffer of at most `limit` bytes.
pub(crate) fn decompress(
    codec: Compression,
    input: &[u8],
    limit: usize,
    base_offset: i64,
) -> Result<Bytes, RecordError> {
    let fail = |message: String| RecordError::Decompression {
        base_offset,
        codec,
        message,
    };
    let too_large = RecordError::DecompressedTooLarge {
        base_offset,
        codec,
        limit,
    };
    // Start from a guess bounded by the limit (a reservation, not yet touched
    // memory); growth beyond it is driven by bytes actually produced, never by
    // a size read off the wire.
    let guess = input.len().saturating_mul(8).max(64 * 1024).min(limit);
    let out = match codec {
        Compression::None => return Ok(Bytes::copy_from_slice(input)),
        Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(input), limit, guess)
            .map_err(|e| bounded_error(e, &too_large, fail))?,
        Compression::Lz4 => {
            read_buffered_bounded(lz4_flex::frame::FrameDecoder::new(input), limit, guess)
                .map_err(|e| bounded_error(e, &too_large, fail))?
        }
        Compression::Zstd => {
            decompress_zstd(input, limit, guess).map_err(|e| bounded_error(e, &too_large, fail))?
        }
        Compression::Snappy => {
            if input.starts_with(&XERIAL_MAGIC) {
                decompress_xerial(input, limit).map_err(|e| bounded_error(e, &too_large, fail))?
            } else {
                decompress_snappy_raw(input, limit)
                    .map_err(|e| bounded_error(e, &too_large, fail))?
            }
        }
    };
    Ok(Bytes::from(out))
}

enum Failure {
    TooLarge,
    Bad(String),
}

fn bounded_error(
    e: Failure,
    too_large: &RecordError,
    fail: impl Fn(String) -> RecordError,
) -> RecordError {
    match e {
        Failure::TooLarge => too_large.clone(),
        Failure::Bad(message) => fail(message),
    }
}

/// Reads `reader` to its end through `take(limit + 1)`.
fn read_bounded(reader: impl Read, limit: usize, guess: usize) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::with_capacity(guess);
    let cap = (limit as u64).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| Failure::Bad(e.to_string()))?;
    if out.len() > limit {
        return Err(Failure::TooLarge);
    }
    Ok(out)
}

/// Like [`read_bounded`] for a decoder with its own output buffer: copies
/// each decoded chunk, checking the bound first, without zero-filling the
/// output's spare capacity as `Read::read_to_end` must.
fn read_buffered_bounded(
    mut reader: impl BufRead,
    limit: usize,
    guess: usize,
) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::with_capacity(guess);
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Bad(e.to_string())),
        };
        if chunk.is_empty() {
            return Ok(out);
        }
        if chunk.len() > limit - out.len() {
            return Err(Failure::TooLarge);
        }
        out.extend_from_slice(chunk);
        let n = chunk.len();
        reader.consume(n);
    }
}

fn decompress_zstd(mut input: &[u8], limit: usize, guess: usize) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::with_capacity(guess);
    // A records section may hold several concatenated frames.
    loop {
        // The decoder keeps a whole window of output before it hands any out,
        // so the declared window, not only the output, must be bounded.
        if let Some(window) = zstd_window_size(input) {
            if window > (limit as u64).max(ZSTD_MIN_WINDOW_ALLOWANCE) {
                return Err(Failure::TooLarge);
            }
        }
        let decoder = ruzstd::decoding::StreamingDecoder::new(&mut input)
            .map_err(|e| Failure::Bad(e.to_string()))?;
        let cap = (limit - out.len()) as u64 + 1;
        decoder
            .take(cap)
            .read_to_end(&mut out)
            .map_err(|e| Failure::Bad(e.to_string()))?;
        if out.len() > limit {
            return Err(Failure::TooLarge);
        }
        if input.is_empty() {
            return Ok(out);
        }
    }
}

/// Windows up to this size are accepted whatever the limit (zstd's levels
/// 1-19 use at most 8 MiB); larger ones only up to the limit.
const ZSTD_MIN_WINDOW_ALLOWANCE: u64 = 16 * 1024 * 1024;

/// The window size a zstd frame header declares (RFC 8878 3.1.1.1), or `None`
/// when `input` does not start with a readable frame header.
fn zstd_window_size(input: &[u8]) -> Option<u64> {
    if input.get(..4)? != [0x28, 0xb5, 0x2f, 0xfd] {
        return None;
    }
    let descriptor = *input.get(4)?;
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        let w = *input.get(5)?;
        let exponent = u32::from(w >> 3);
        let base = 1u64 << (10 + exponent);
        return Some(base + (base / 8) * u64::from(w & 7));
    }
    // Single segment: the window is the frame content size.
    let dict_len = [0usize, 1, 2, 4][usize::from(descriptor & 3)];
    let at = 5 + dict_len;
    match descriptor >> 6 {
        0 => input.get(at).map(|&b| u64::from(b)),
        1 => {
            let b = input.get(at..at + 2)?;
            Some(u64::from(u16::from_le_bytes([b[0], b[1]])) + 256)
        }
        2 => {
            let b = input.get(at..at + 4)?;
            Some(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        }
        _ => {
            let b = input.get(at..at + 8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Some(u64::from_le_bytes(a))
        }
    }
}

fn decompress_snappy_raw(input: &[u8], limit: usize) -> Result<Vec<u8>, Failure> {
    let len = snap::raw::decompress_len(input).map_err(|e| Failure::Bad(e.to_string()))?;
    if len > limit {
        return Err(Failure::TooLarge);
    }
    let mut out = vec![0u8; len];
    let n = snap::raw::Decoder::new()
        .decompress(input, &mut out)
        .map_err(|e| Failure::Bad(e.to_string()))?;
    out.truncate(n);
    Ok(out)
}

/// Xerial framing: a 16-byte header, then blocks of `[i32 length][raw snappy]`.
fn decompress_xerial(input: &[u8], limit: usize) -> Result<Vec<u8>, Failure> {
    if input.len() < XERIAL_HEADER_LEN {
        return Err(Failure::Bad("xerial snappy header is truncated".into()));
    }
    let mut rest = &input[XERIAL_HEADER_LEN..];
    let mut out = Vec::new();
    let mut decoder = snap::raw::Decoder::new();
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(Failure::Bad(
                "xerial snappy block length is truncated".into(),
            ));
        }
        let block_len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        if block_len > rest.len() {
            return Err(Failure::Bad("xerial snappy block runs past the end".into()));
        }
        let block = &rest[..block_len];
        rest = &rest[block_len..];
        let len = snap::raw::decompress_len(block).map_err(|e| Failure::Bad(e.to_string()))?;
        if len > limit - out.len() {
            return Err(Failure::TooLarge);
        }
        let at = out.len();
        out.resize(at + len, 0);
        let n = decoder
            .decompress(block, &mut out[at..])
            .map_err(|e| Failure::Bad(e.to_string()))?;
        out.truncate(at + n);
    }
    Ok(out)
}

/// Compresses a records section with `codec`.
pub(crate) fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(input)?;
            encoder.finish()
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + input.len() / 2 + 16);
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for chunk in input.chunks(XERIAL_BLOCK) {
                let block = encoder.compress_vec(chunk).map_err(std::io::Error::other)?;
                let len = u32::try_from(block.len()).map_err(std::io::Error::other)?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(input)?;
            encoder.finish().map_err(std::io::Error::other)
        }
        Compression::Zstd => Ok(ruzstd::encoding::compress_to_vec(
            input,
            ruzstd::encoding::CompressionLevel::Fastest,
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 20;

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in Compression::ALL {
            let compressed = compress(codec, &data).unwrap();
            let back = decompress(codec, &compressed, LIMIT, 7).unwrap();
            assert_eq!(&back[..], &data[..], "{codec}");
        }
    }

    #[test]
    fn raw_snappy_is_accepted() {
        let data = b"raw snappy as librdkafka writes it".repeat(50);
        let compressed = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert!(!compressed.starts_with(&XERIAL_MAGIC));
        let back = decompress(Compression::Snappy, &compressed, LIMIT, 0).unwrap();
        assert_eq!(&back[..], &data[..]);
    }

    #[test]
    fn xerial_snappy_with_several_blocks_is_accepted() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i / 7) as u8).collect();
        let compressed = compress(Compression::Snappy, &data).unwrap();
        assert!(compressed.starts_with(&XERIAL_MAGIC));
        let back = decompress(Compression::Snappy, &compressed, LIMIT, 0).unwrap();
        assert_eq!(&back[..], &data[..]);
    }

    #[test]
    fn bombs_are_typed_errors_for_every_codec() {
        let data = vec![0u8; 4 << 20];
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let compressed = compress(codec, &data).unwrap();
            let err = decompress(codec, &compressed, 1 << 20, 99).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("record batch at offset 99: {codec} records decompress to more than the limit of 1048576 bytes")
            );
        }
    }

    #[test]
    fn zstd_frames_declaring_huge_windows_are_refused_before_decoding() {
        // A frame header: magic, descriptor (no single segment), window
        // descriptor exponent 31 (2 TiB), then nothing worth decoding.
        let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 31 << 3, 0, 0, 0];
        assert_eq!(zstd_window_size(&frame), Some(1 << 41));
        let err = decompress(Compression::Zstd, &frame, LIMIT, 5).unwrap_err();
        assert!(
            matches!(
                err,
                RecordError::DecompressedTooLarge { base_offset: 5, .. }
            ),
            "{err}"
        );
        // Our encoder's frames declare ordinary windows and pass.
        let data = vec![7u8; 300_000];
        let compressed = compress(Compression::Zstd, &data).unwrap();
        assert!(zstd_window_size(&compressed).unwrap() <= ZSTD_MIN_WINDOW_ALLOWANCE);
        assert_eq!(
            &decompress(Compression::Zstd, &compressed, LIMIT, 0).unwrap()[..],
            &data[..]
        );
    }

    #[test]
    fn garbage_is_a_decompression_error() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let err = decompress(codec, b"definitely not compressed data", LIMIT, 3).unwrap_err();
            assert!(
                matches!(err, RecordError::Decompression { base_offset: 3, .. }),
                "{codec}: {err}"
            );
        }
        let mut truncated_xerial = XERIAL_MAGIC.to_vec();
        truncated_xerial.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 1]);
        let err = decompress(Compression::Snappy, &truncated_xerial, LIMIT, 3).unwrap_err();
        assert!(
            err.to_string()
                .contains("xerial snappy block runs past the end"),
            "{err}"
        );
    }
}
