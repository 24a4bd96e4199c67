//! Kafka's size-prefixed frames.
//!
//! Every request and response travels as a big-endian `i32` size followed
//! by that many bytes of body (header and message). A connection reads into
//! a `BytesMut`, asks [`check`] whether a whole frame has arrived
//! ("incomplete" is not an error), then takes it with [`split_frame`], which
//! hands out the body as `Bytes` without copying.
//!
//! The size prefix is checked against a configured maximum *before* anything
//! is reserved or allocated for the body: a frame announcing 2 GiB costs
//! nothing until it is known to be within the limit. The limit must exceed
//! `fetch.max.bytes` plus response overhead, or a fetch whose first batch is
//! larger than `fetch.max.bytes` (KIP-74) can never be read.
//!
//! ```
//! use bytes::BytesMut;
//! use kafee_protocol::frame::{check, split_frame, write_frame, FrameStatus};
//!
//! let mut buf = BytesMut::new();
//! write_frame(&mut buf, |body| {
//!     body.extend_from_slice(b"hello");
//!     Ok::<(), std::convert::Infallible>(())
//! })
//! .unwrap();
//! assert_eq!(&buf[..], b"\0\0\0\x05hello");
//! assert_eq!(check(&buf[..6], 1024), Ok(FrameStatus::Incomplete { needed: 3 }));
//! assert_eq!(check(&buf, 1024), Ok(FrameStatus::Complete { frame_len: 9 }));
//! let body = split_frame(&mut buf, 1024).unwrap().unwrap();
//! assert_eq!(&body[..], b"hello");
//! assert!(buf.is_empty());
//! ```

use bytes::{Bytes, BytesMut};

use crate::error::FrameError;

/// Bytes in the size prefix.
pub const PREFIX_LEN: usize = 4;

/// What [`check`] found at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    /// Not a whole frame yet; at least `needed` more bytes must arrive.
    ///
    /// While the prefix itself is incomplete, `needed` counts the bytes
    /// missing from the prefix only.
    Incomplete {
        /// Minimum number of further bytes before the frame can be complete.
        needed: usize,
    },
    /// A whole frame is at the front of the buffer.
    Complete {
        /// Total length of the frame *including* the 4-byte prefix; the body
        /// is `frame_len - 4` bytes.
        frame_len: usize,
    },
}

/// Reads the size prefix at the front of `buf` and says whether a whole frame
/// is there. `max_frame_bytes` bounds the *body* (the number in the prefix).
///
/// Never allocates and never panics. Errors are final for the connection:
/// a negative size or one above `max_frame_bytes` means the stream is no
/// longer trusted (or the limit is too small for the broker's answers).
pub fn check(buf: &[u8], max_frame_bytes: usize) -> Result<FrameStatus, FrameError> {
    let Some(prefix) = buf.first_chunk::<PREFIX_LEN>() else {
        return Ok(FrameStatus::Incomplete {
            needed: PREFIX_LEN - buf.len(),
        });
    };
    let length = i32::from_be_bytes(*prefix);
    let body_len = usize::try_from(length).map_err(|_| FrameError::NegativeLength { length })?;
    if body_len > max_frame_bytes {
        return Err(FrameError::TooLarge {
            limit: max_frame_bytes,
            actual: body_len,
        });
    }
    let frame_len = PREFIX_LEN + body_len;
    match frame_len.checked_sub(buf.len()) {
        Some(needed) if needed > 0 => Ok(FrameStatus::Incomplete { needed }),
        _ => Ok(FrameStatus::Complete { frame_len }),
    }
}

/// If a whole frame is at the front of `buf`, removes it and returns its body
/// (without the prefix) as `Bytes` sharing `buf`'s allocation; `Ok(None)`
/// when more bytes are needed. Errors as [`check`]; on error `buf` is left
/// untouched.
pub fn split_frame(
    buf: &mut BytesMut,
    max_frame_bytes: usize,
) -> Result<Option<Bytes>, FrameError> {
    match check(buf, max_frame_bytes)? {
        FrameStatus::Incomplete { .. } => Ok(None),
        FrameStatus::Complete { frame_len } => {
            let mut frame = buf.split_to(frame_len);
            let body = frame.split_off(PREFIX_LEN);
            Ok(Some(body.freeze()))
        }
    }
}

/// How many bytes to reserve in a read buffer so that the frame at its front
/// can complete: the frame length when the prefix is known and valid, else
/// just the prefix. Bounded by `max_frame_bytes + 4`, so a hostile prefix
/// never drives a large reservation.
pub fn read_hint(buf: &[u8], max_frame_bytes: usize) -> usize {
    match check(buf, max_frame_bytes) {
        Ok(FrameStatus::Incomplete { needed }) => needed,
        Ok(FrameStatus::Complete { .. }) | Err(_) => 0,
    }
}

/// Appends one frame to `buf`: reserves the 4-byte prefix, lets `encode`
/// append the body, then patches the prefix with the body length.
///
/// If `encode` fails, or the body is longer than `i32::MAX`, `buf` is
/// truncated back to its previous length (nothing partial is left behind).
pub fn write_frame<E>(
    buf: &mut BytesMut,
    encode: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<(), WriteFrameError<E>> {
    let start = buf.len();
    buf.extend_from_slice(&[0; PREFIX_LEN]);
    if let Err(e) = encode(buf) {
        buf.truncate(start);
        return Err(WriteFrameError::Encode(e));
    }
    let body_len = buf.len() - start - PREFIX_LEN;
    let Ok(length) = i32::try_from(body_len) else {
        buf.truncate(start);
        return Err(WriteFrameError::TooLong { body_len });
    };
    buf[start..start + PREFIX_LEN].copy_from_slice(&length.to_be_bytes());
    Ok(())
}

/// Why [`write_frame`] wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteFrameError<E> {
    /// The body encoder failed.
    Encode(E),
    /// The body is longer than a frame can announce (`i32::MAX`).
    TooLong {
        /// The body length in bytes.
        body_len: usize,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(body: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        write_frame(&mut buf, |b| {
            b.extend_from_slice(body);
            Ok::<(), ()>(())
        })
        .unwrap();
        buf
    }

    #[test]
    fn empty_and_short_prefix_is_incomplete() {
        assert_eq!(check(&[], 10), Ok(FrameStatus::Incomplete { needed: 4 }));
        assert_eq!(
            check(&[0, 0], 10),
            Ok(FrameStatus::Incomplete { needed: 2 })
        );
        assert_eq!(
            check(&[0, 0, 0], 10),
            Ok(FrameStatus::Incomplete { needed: 1 })
        );
    }

    #[test]
    fn zero_length_frame_is_complete() {
        assert_eq!(
            check(&[0, 0, 0, 0], 10),
            Ok(FrameStatus::Complete { frame_len: 4 })
        );
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0, 9][..]);
        assert_eq!(split_frame(&mut buf, 10).unwrap().unwrap().len(), 0);
        assert_eq!(&buf[..], &[9]);
    }

    #[test]
    fn negative_length_is_an_error() {
        let err = check(&(-1i32).to_be_bytes(), 10).unwrap_err();
        assert_eq!(err, FrameError::NegativeLength { length: -1 });
        assert_eq!(err.to_string(), "frame size prefix -1 is negative");
    }

    #[test]
    fn oversize_is_an_error_before_the_body_arrives() {
        // Only the prefix is here: the limit check does not wait for (or reserve) the body.
        let err = check(&i32::MAX.to_be_bytes(), 1 << 20).unwrap_err();
        assert_eq!(
            err.to_string(),
            "frame of 2147483647 bytes exceeds the limit of 1048576"
        );
        let mut buf = BytesMut::from(&101i32.to_be_bytes()[..]);
        assert_eq!(
            split_frame(&mut buf, 100),
            Err(FrameError::TooLarge {
                limit: 100,
                actual: 101
            })
        );
        assert_eq!(buf.len(), 4, "buffer untouched on error");
        assert_eq!(read_hint(&buf, 100), 0);
    }

    #[test]
    fn limit_is_inclusive() {
        assert_eq!(
            check(&100i32.to_be_bytes(), 100),
            Ok(FrameStatus::Incomplete { needed: 100 })
        );
    }

    #[test]
    fn split_leaves_the_next_frame() {
        let mut buf = framed(b"one");
        buf.extend_from_slice(&framed(b"second"));
        buf.extend_from_slice(&[0, 0]);
        assert_eq!(&split_frame(&mut buf, 64).unwrap().unwrap()[..], b"one");
        assert_eq!(&split_frame(&mut buf, 64).unwrap().unwrap()[..], b"second");
        assert_eq!(split_frame(&mut buf, 64), Ok(None));
        assert_eq!(read_hint(&buf, 64), 2);
    }

    #[test]
    fn failed_encode_leaves_buffer_as_it_was() {
        let mut buf = BytesMut::from(&b"abc"[..]);
        let r = write_frame(&mut buf, |b| {
            b.extend_from_slice(b"partial");
            Err::<(), &str>("boom")
        });
        assert_eq!(r, Err(WriteFrameError::Encode("boom")));
        assert_eq!(&buf[..], b"abc");
    }

    proptest! {
        #[test]
        fn check_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), limit in 0usize..1 << 31) {
            match check(&bytes, limit) {
                Ok(FrameStatus::Complete { frame_len }) => prop_assert!(frame_len <= bytes.len()),
                Ok(FrameStatus::Incomplete { needed }) => prop_assert!(needed > 0 && needed <= limit + 4),
                Err(FrameError::TooLarge { actual, .. }) => prop_assert!(actual > limit),
                Err(_) => {}
            }
        }

        #[test]
        fn write_check_split_round_trip(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..5),
            cut in 0usize..2000,
        ) {
            let mut wire = BytesMut::new();
            for body in &bodies {
                wire.extend_from_slice(&framed(body));
            }
            // Deliver the stream in two parts: frames come out whole and in order.
            let cut = cut.min(wire.len());
            let mut rx = BytesMut::from(&wire[..cut]);
            let mut out = Vec::new();
            while let Some(body) = split_frame(&mut rx, 300).unwrap() {
                out.push(body);
            }
            rx.extend_from_slice(&wire[cut..]);
            while let Some(body) = split_frame(&mut rx, 300).unwrap() {
                out.push(body);
            }
            prop_assert!(rx.is_empty());
            let got: Vec<Vec<u8>> = out.iter().map(|b| b.to_vec()).collect();
            prop_assert_eq!(got, bodies);
        }
    }
}
