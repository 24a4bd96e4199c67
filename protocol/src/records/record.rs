//! Record views (borrowing the batch's buffer), their headers and owned copies.

use bytes::Bytes;

use super::batch::RecordBatch;
use super::varint::{read_varint, read_varlong};
use super::{RecordError, TimestampType};

/// Iterator over the records of a [`DecodedBatch`](super::DecodedBatch).
///
/// Yields `Ok(Record)` views that borrow the batch's buffer: no allocation per
/// record. A malformed record, a record count larger than the records, or
/// bytes left after the announced count yield one `Err` and end the iteration.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    buf: &'a Bytes,
    pos: usize,
    index: u32,
    count: u32,
    base_offset: i64,
    base_timestamp: i64,
    max_timestamp: i64,
    log_append_time: bool,
    declared_count: i32,
    done: bool,
}

impl<'a> Records<'a> {
    pub(crate) fn new(batch: &RecordBatch, buf: &'a Bytes) -> Records<'a> {
        let declared_count = batch.record_count();
        Records {
            buf,
            pos: 0,
            index: 0,
            count: declared_count.max(0) as u32,
            base_offset: batch.base_offset(),
            base_timestamp: batch.base_timestamp(),
            max_timestamp: batch.max_timestamp(),
            log_append_time: batch.timestamp_type() == TimestampType::LogAppendTime,
            declared_count,
            done: false,
        }
    }

    /// Records not yet yielded, per the batch header.
    pub fn remaining(&self) -> u32 {
        self.count - self.index
    }

    /// Bytes of the records section consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    #[inline(always)]
    fn parse(&mut self) -> Result<Record<'a>, &'static str> {
        let data: &'a [u8] = self.buf;
        let start = self.pos;
        let mut p = start;
        let len = read_varint(data, &mut p)?;
        if len < 0 {
            return Err("negative record length");
        }
        let len = len as usize;
        if len > data.len() - p {
            return Err("record length runs past the end of the batch");
        }
        let end = p + len;
        let body = &data[..end];
        let Some(&attributes) = body.get(p) else {
            return Err("record too short for its attributes");
        };
        p += 1;
        let timestamp_delta = read_varlong(body, &mut p)?;
        let offset_delta = read_varint(body, &mut p)?;
        let key = read_nullable_bytes(
            body,
            &mut p,
            "invalid key length",
            "key runs past the end of the record",
        )?;
        let value = read_nullable_bytes(
            body,
            &mut p,
            "invalid value length",
            "value runs past the end of the record",
        )?;
        let header_count = read_varint(body, &mut p)?;
        if header_count < 0 {
            return Err("negative header count");
        }
        let headers_start = p;
        if header_count > 0 {
            // Each header takes at least two bytes (two length varints).
            if header_count as usize > (end - p) / 2 {
                return Err("header count larger than the record");
            }
            for _ in 0..header_count {
                let key_len = read_varint(body, &mut p)?;
                if key_len < 0 {
                    return Err("negative header key length");
                }
                if key_len as usize > end - p {
                    return Err("header key runs past the end of the record");
                }
                p += key_len as usize;
                let value_len = read_varint(body, &mut p)?;
                if value_len < -1 {
                    return Err("invalid header value length");
                }
                if value_len > 0 {
                    if value_len as usize > end - p {
                        return Err("header value runs past the end of the record");
                    }
                    p += value_len as usize;
                }
            }
        }
        if p != end {
            return Err("record length does not match its fields");
        }
        let offset = self
            .base_offset
            .checked_add(i64::from(offset_delta))
            .ok_or("offset delta overflows the offset")?;
        let timestamp = if self.log_append_time {
            self.max_timestamp
        } else {
            self.base_timestamp
                .checked_add(timestamp_delta)
                .ok_or("timestamp delta overflows the timestamp")?
        };
        self.pos = end;
        Ok(Record {
            buf: self.buf,
            offset,
            timestamp,
            key,
            value,
            headers: &data[headers_start..end],
            header_count: header_count as u32,
            attributes: attributes as i8,
            wire_size: (end - start) as u32,
        })
    }
}

#[inline(always)]
fn read_nullable_bytes<'a>(
    body: &'a [u8],
    p: &mut usize,
    invalid: &'static str,
    past_end: &'static str,
) -> Result<Option<&'a [u8]>, &'static str> {
    let len = read_varint(body, p)?;
    if len < 0 {
        if len == -1 {
            return Ok(None);
        }
        return Err(invalid);
    }
    let len = len as usize;
    let at = *p;
    if len > body.len() - at {
        return Err(past_end);
    }
    *p = at + len;
    Ok(Some(&body[at..at + len]))
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, RecordError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.count {
            if self.done {
                return None;
            }
            self.done = true;
            let extra = self.buf.len() - self.pos;
            if extra != 0 {
                return Some(Err(RecordError::TrailingBytes {
                    base_offset: self.base_offset,
                    count: self.declared_count,
                    extra,
                }));
            }
            return None;
        }
        match self.parse() {
            Ok(record) => {
                self.index += 1;
                Some(Ok(record))
            }
            Err(reason) => {
                let index = self.index;
                self.index = self.count;
                self.done = true;
                Some(Err(RecordError::MalformedRecord {
                    base_offset: self.base_offset,
                    index,
                    reason,
                }))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.count - self.index) as usize;
        (0, Some(left + usize::from(!self.done)))
    }
}

/// One record, a view borrowing its batch's (decompressed) buffer.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    buf: &'a Bytes,
    offset: i64,
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: &'a [u8],
    header_count: u32,
    attributes: i8,
    wire_size: u32,
}

impl std::fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("key", &self.key.map(<[u8]>::len))
            .field("value", &self.value.map(<[u8]>::len))
            .field("header_count", &self.header_count)
            .field("wire_size", &self.wire_size)
            .finish()
    }
}

impl<'a> Record<'a> {
    /// Absolute offset: `base_offset + offset_delta`.
    #[inline]
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Timestamp in ms: `base_timestamp + timestamp_delta`, or the batch's
    /// `max_timestamp` for `LogAppendTime` batches.
    #[inline]
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The key, `None` for a null key.
    #[inline]
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// The value, `None` for a null value (a tombstone).
    #[inline]
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }

    /// The record's attributes byte (unused by Kafka so far).
    #[inline]
    pub fn attributes(&self) -> i8 {
        self.attributes
    }

    /// Number of headers.
    #[inline]
    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }

    /// The headers, parsed lazily (their lengths were validated already).
    #[inline]
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            data: self.headers,
            pos: 0,
            remaining: self.header_count,
        }
    }

    /// Bytes of the record in the uncompressed records section, including its
    /// length varint. For uncompressed batches the records' sizes plus 61 sum
    /// to the batch's wire size.
    #[inline]
    pub fn wire_size(&self) -> usize {
        self.wire_size as usize
    }

    /// An owned copy whose key, value and headers are `Bytes` slices of the
    /// batch's buffer: no copy of the data, one allocation only if the record
    /// has headers.
    pub fn to_owned(&self) -> OwnedRecord {
        OwnedRecord {
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.map(|k| self.buf.slice_ref(k)),
            value: self.value.map(|v| self.buf.slice_ref(v)),
            headers: self
                .headers()
                .map(|h| OwnedHeader {
                    key: self.buf.slice_ref(h.key),
                    value: h.value.map(|v| self.buf.slice_ref(v)),
                })
                .collect(),
            wire_size: self.wire_size as usize,
        }
    }
}

/// One record header, borrowing the batch's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Header key (a string in Kafka's schema; bytes here, see [`Header::key_str`]).
    pub key: &'a [u8],
    /// Header value, `None` for null.
    pub value: Option<&'a [u8]>,
}

impl<'a> Header<'a> {
    /// The key as UTF-8, if it is.
    pub fn key_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.key).ok()
    }
}

/// Lazy iterator over a record's headers.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    data: &'a [u8],
    pos: usize,
    remaining: u32,
}

impl<'a> Headers<'a> {
    fn read(&mut self) -> Option<Header<'a>> {
        let key_len = usize::try_from(read_varint(self.data, &mut self.pos).ok()?).ok()?;
        let key = self.data.get(self.pos..self.pos.checked_add(key_len)?)?;
        self.pos += key_len;
        let value_len = read_varint(self.data, &mut self.pos).ok()?;
        let value = match usize::try_from(value_len) {
            Ok(n) => {
                let v = self.data.get(self.pos..self.pos.checked_add(n)?)?;
                self.pos += n;
                Some(v)
            }
            Err(_) => None,
        };
        Some(Header { key, value })
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let header = self.read();
        if header.is_none() {
            // Unreachable for validated records; end cleanly all the same.
            self.remaining = 0;
        }
        header
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}

/// An owned record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedHeader {
    /// Header key.
    pub key: Bytes,
    /// Header value, `None` for null.
    pub value: Option<Bytes>,
}

/// An owned record: `Bytes` slices sharing the batch's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// Absolute offset.
    pub offset: i64,
    /// Timestamp in ms (see [`Record::timestamp`]).
    pub timestamp: i64,
    /// Key, `None` for null.
    pub key: Option<Bytes>,
    /// Value, `None` for null.
    pub value: Option<Bytes>,
    /// Headers in wire order.
    pub headers: Vec<OwnedHeader>,
    /// Bytes of the record in the uncompressed records section, including its
    /// length varint (see [`Record::wire_size`]).
    pub wire_size: usize,
}
