//! Kafka's zig-zag varints (`varint` = i32 in at most 5 bytes, `varlong` =
//! i64 in at most 10 bytes), decoded from a slice with an explicit cursor.
//!
//! Errors are static strings: the caller wraps them into a
//! [`RecordError::MalformedRecord`](super::RecordError) with its context.

/// Decodes a zig-zag varint (i32) at `*pos`, advancing `*pos`. One- and
/// two-byte encodings (the common case in records) stay inline.
#[inline(always)]
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, &'static str> {
    let p = *pos;
    let Some(&b0) = buf.get(p) else {
        return Err("varint runs past the end of the record");
    };
    if b0 < 0x80 {
        *pos = p + 1;
        return Ok(unzigzag32(u32::from(b0)));
    }
    match buf.get(p + 1) {
        Some(&b1) if b1 < 0x80 => {
            *pos = p + 2;
            Ok(unzigzag32(u32::from(b0 & 0x7f) | (u32::from(b1) << 7)))
        }
        _ => read_varint_slow(buf, pos),
    }
}

#[inline(never)]
fn read_varint_slow(buf: &[u8], pos: &mut usize) -> Result<i32, &'static str> {
    let mut value: u32 = 0;
    let mut p = *pos;
    for shift in [0u32, 7, 14, 21, 28] {
        let Some(&b) = buf.get(p) else {
            return Err("varint runs past the end of the record");
        };
        p += 1;
        value |= u32::from(b & 0x7f) << shift;
        if b < 0x80 {
            *pos = p;
            return Ok(unzigzag32(value));
        }
    }
    Err("varint is longer than 5 bytes")
}

/// Decodes a zig-zag varlong (i64) at `*pos`, advancing `*pos`. One- and
/// two-byte encodings stay inline.
#[inline(always)]
pub(crate) fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, &'static str> {
    let p = *pos;
    let Some(&b0) = buf.get(p) else {
        return Err("varlong runs past the end of the record");
    };
    if b0 < 0x80 {
        *pos = p + 1;
        return Ok(unzigzag64(u64::from(b0)));
    }
    match buf.get(p + 1) {
        Some(&b1) if b1 < 0x80 => {
            *pos = p + 2;
            Ok(unzigzag64(u64::from(b0 & 0x7f) | (u64::from(b1) << 7)))
        }
        _ => read_varlong_slow(buf, pos),
    }
}

#[inline(never)]
fn read_varlong_slow(buf: &[u8], pos: &mut usize) -> Result<i64, &'static str> {
    let mut value: u64 = 0;
    let mut p = *pos;
    let mut shift = 0u32;
    while shift < 70 {
        let Some(&b) = buf.get(p) else {
            return Err("varlong runs past the end of the record");
        };
        p += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            *pos = p;
            return Ok(unzigzag64(value));
        }
        shift += 7;
    }
    Err("varlong is longer than 10 bytes")
}

#[inline(always)]
fn unzigzag32(n: u32) -> i32 {
    ((n >> 1) as i32) ^ -((n & 1) as i32)
}

#[inline(always)]
fn unzigzag64(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// Appends `v` as a zig-zag varint.
pub(crate) fn write_varint(out: &mut Vec<u8>, v: i32) {
    let mut n = ((v << 1) ^ (v >> 31)) as u32;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends `v` as a zig-zag varlong.
pub(crate) fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Number of bytes [`write_varint`] emits for `v`.
pub(crate) fn varint_len(v: i32) -> usize {
    let n = ((v << 1) ^ (v >> 31)) as u32;
    match n {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        0x20_0000..=0xfff_ffff => 4,
        _ => 5,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varint_round_trips(v in any::<i32>()) {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            prop_assert_eq!(out.len(), varint_len(v));
            let mut pos = 0;
            prop_assert_eq!(read_varint(&out, &mut pos), Ok(v));
            prop_assert_eq!(pos, out.len());
        }

        #[test]
        fn varlong_round_trips(v in any::<i64>()) {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            let mut pos = 0;
            prop_assert_eq!(read_varlong(&out, &mut pos), Ok(v));
            prop_assert_eq!(pos, out.len());
        }

        #[test]
        fn truncated_varints_are_errors(v in any::<i64>(), cut in 0usize..10) {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            if cut < out.len() {
                let mut pos = 0;
                prop_assert!(read_varlong(&out[..cut], &mut pos).is_err());
            }
        }
    }

    #[test]
    fn known_encodings() {
        let mut out = Vec::new();
        write_varint(&mut out, -1);
        write_varint(&mut out, 1);
        write_varint(&mut out, 64);
        assert_eq!(out, [0x01, 0x02, 0x80, 0x01]);
    }

    #[test]
    fn overlong_varints_are_errors() {
        let mut pos = 0;
        assert_eq!(
            read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], &mut pos),
            Err("varint is longer than 5 bytes")
        );
        let mut pos = 0;
        assert_eq!(
            read_varlong(&[0xff; 11], &mut pos),
            Err("varlong is longer than 10 bytes")
        );
    }
}
