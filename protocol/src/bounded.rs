//! Bounded reads of Kafka's primitive types, shared by kafee's own response
//! decoders ([`crate::fetch_response`], [`crate::metadata_response`]).
//!
//! Every read checks the bytes that remain first; an array count is checked
//! against the smallest encoding of its elements before a caller reserves
//! room for them. Failures are a [`Fault`], to which the caller attaches the
//! API, version and field path.

use std::fmt;

use bytes::Bytes;

/// What was wrong with one field, before the path is attached.
#[derive(Debug)]
pub(crate) enum Fault {
    Truncated {
        needed: usize,
        remaining: usize,
    },
    Length {
        len: usize,
        remaining: usize,
    },
    NegativeLength(i64),
    Count {
        count: usize,
        min_size: usize,
        remaining: usize,
    },
    VarintTooLong,
    Null,
    InvalidUtf8,
    TagTrailing {
        tag: u32,
        left: usize,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Truncated { needed, remaining } => {
                write!(f, "needs {needed} bytes, {remaining} remaining")
            }
            Fault::Length { len, remaining } => {
                write!(f, "length {len} exceeds the {remaining} bytes remaining")
            }
            Fault::NegativeLength(n) => write!(f, "invalid negative length {n}"),
            Fault::Count {
                count,
                min_size,
                remaining,
            } => write!(
                f,
                "{count} elements of at least {min_size} bytes do not fit in the {remaining} bytes remaining"
            ),
            Fault::VarintTooLong => f.write_str("unsigned varint longer than 5 bytes or above 2^32-1"),
            Fault::Null => f.write_str("null where the schema does not allow it"),
            Fault::InvalidUtf8 => f.write_str("string is not valid UTF-8"),
            Fault::TagTrailing { tag, left } => {
                write!(f, "tagged field {tag} left {left} bytes undecoded")
            }
        }
    }
}

/// A cursor over the body; every read checks the remaining length first.
pub(crate) struct Reader<'a> {
    body: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(body: &'a Bytes) -> Self {
        Reader {
            body,
            pos: 0,
            end: body.len(),
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Fault> {
        if n > self.remaining() {
            return Err(Fault::Truncated {
                needed: n,
                remaining: self.remaining(),
            });
        }
        let start = self.pos;
        self.pos += n;
        let body: &'a [u8] = self.body;
        Ok(&body[start..self.pos])
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], Fault> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, Fault> {
        self.array().map(i16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self) -> Result<i32, Fault> {
        self.array().map(i32::from_be_bytes)
    }

    pub(crate) fn i64(&mut self) -> Result<i64, Fault> {
        self.array().map(i64::from_be_bytes)
    }

    pub(crate) fn uvarint(&mut self) -> Result<u32, Fault> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let [b] = self.array::<1>()?;
            if i == 4 && b > 0x0f {
                return Err(Fault::VarintTooLong);
            }
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Fault::VarintTooLong)
    }

    /// Length of a (compact) nullable field: `None` for null.
    pub(crate) fn length(&mut self, flexible: bool, wide: bool) -> Result<Option<usize>, Fault> {
        if flexible {
            let n = self.uvarint()?;
            Ok(n.checked_sub(1).map(|n| n as usize))
        } else {
            let n = if wide {
                i64::from(self.i32()?)
            } else {
                i64::from(self.i16()?)
            };
            match n {
                -1 => Ok(None),
                n if n < 0 => Err(Fault::NegativeLength(n)),
                n => Ok(Some(n as usize)),
            }
        }
    }

    /// An array count, checked against the remaining bytes given the
    /// smallest encoding of one element.
    pub(crate) fn count(
        &mut self,
        flexible: bool,
        min_size: usize,
    ) -> Result<Option<usize>, Fault> {
        let Some(count) = self.length(flexible, true)? else {
            return Ok(None);
        };
        let remaining = self.remaining();
        if count.saturating_mul(min_size) > remaining {
            return Err(Fault::Count {
                count,
                min_size,
                remaining,
            });
        }
        Ok(Some(count))
    }

    /// `len` bytes of a length-prefixed field.
    pub(crate) fn take_length(&mut self, len: usize) -> Result<&'a [u8], Fault> {
        if len > self.remaining() {
            return Err(Fault::Length {
                len,
                remaining: self.remaining(),
            });
        }
        self.take(len)
    }

    pub(crate) fn nullable_bytes(&mut self, flexible: bool) -> Result<Option<Bytes>, Fault> {
        let Some(len) = self.length(flexible, true)? else {
            return Ok(None);
        };
        let start = self.pos;
        self.take_length(len)?;
        Ok(Some(self.body.slice(start..self.pos)))
    }

    pub(crate) fn string(&mut self, flexible: bool) -> Result<String, Fault> {
        let len = self.length(flexible, false)?.ok_or(Fault::Null)?;
        let raw = self.take_length(len)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| Fault::InvalidUtf8)
    }

    /// Reads a tagged-field section, handing each field's tag and a reader
    /// over its bytes to `on_tag`; the reader must be consumed fully.
    pub(crate) fn tagged_fields(
        &mut self,
        mut on_tag: impl FnMut(u32, &mut Reader<'a>) -> Result<(), Fault>,
    ) -> Result<(), Fault> {
        let count = self.uvarint()?;
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            let start = self.pos;
            self.take_length(size)?;
            let mut sub = Reader {
                body: self.body,
                pos: start,
                end: self.pos,
            };
            on_tag(tag, &mut sub)?;
            if sub.remaining() != 0 {
                return Err(Fault::TagTrailing {
                    tag,
                    left: sub.remaining(),
                });
            }
        }
        Ok(())
    }

    pub(crate) fn skip_tagged_fields(&mut self) -> Result<(), Fault> {
        self.tagged_fields(|_, sub| {
            sub.skip_rest();
            Ok(())
        })
    }

    /// Consumes what remains (an unknown tagged field's bytes).
    pub(crate) fn skip_rest(&mut self) {
        self.pos = self.end;
    }

    /// A `BOOLEAN`: any non-zero byte is true, as in Kafka's own readers.
    pub(crate) fn bool(&mut self) -> Result<bool, Fault> {
        self.array::<1>().map(|[b]| b != 0)
    }

    /// A `UUID`: 16 bytes.
    pub(crate) fn uuid(&mut self) -> Result<[u8; 16], Fault> {
        self.array()
    }

    /// A (compact) nullable string's bytes, a slice of the body: `None` for
    /// null. The caller checks UTF-8.
    pub(crate) fn nullable_str_bytes(&mut self, flexible: bool) -> Result<Option<Bytes>, Fault> {
        let Some(len) = self.length(flexible, false)? else {
            return Ok(None);
        };
        let start = self.pos;
        self.take_length(len)?;
        Ok(Some(self.body.slice(start..self.pos)))
    }

    /// A non-nullable (compact) array of `INT32`.
    pub(crate) fn i32_array(&mut self, flexible: bool) -> Result<Vec<i32>, Fault> {
        let count = self.count(flexible, 4)?.ok_or(Fault::Null)?;
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(self.i32()?);
        }
        Ok(out)
    }
}
