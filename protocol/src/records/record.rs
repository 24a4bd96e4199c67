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
        let body_start = p;
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
            body: &data[body_start..end],
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
    /// The record after its length varint (attributes .. last header).
    body: &'a [u8],
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

    /// An owned copy sharing the batch's buffer: one `Bytes` slice (a
    /// reference count, no copy, no allocation) covering the record, with the
    /// key, value and headers located inside it.
    #[inline]
    pub fn to_owned(&self) -> OwnedRecord {
        let base = self.body.as_ptr() as usize;
        let span = |s: Option<&[u8]>| match s {
            Some(s) => Span {
                start: (s.as_ptr() as usize - base) as u32,
                len: s.len() as u32,
            },
            None => Span::NULL,
        };
        OwnedRecord {
            data: self.buf.slice_ref(self.body),
            offset: self.offset,
            timestamp: self.timestamp,
            key: span(self.key),
            value: span(self.value),
            headers_at: (self.headers.as_ptr() as usize - base) as u32,
            header_count: self.header_count,
            wire_size: self.wire_size,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    const NULL: Span = Span {
        start: 0,
        len: u32::MAX,
    };

    #[inline]
    fn get(self, data: &[u8]) -> Option<&[u8]> {
        if self.len == u32::MAX {
            return None;
        }
        let start = self.start as usize;
        data.get(start..start.checked_add(self.len as usize)?)
    }

    #[inline]
    fn bytes(self, data: &Bytes) -> Option<Bytes> {
        self.get(data).map(|s| data.slice_ref(s))
    }
}

/// An owned record: one `Bytes` slice of the batch's (decompressed) buffer
/// covering the record, so it can outlive the batch without copying.
///
/// Equality compares offset, timestamp, key, value, headers and wire size.
#[derive(Clone)]
pub struct OwnedRecord {
    data: Bytes,
    offset: i64,
    timestamp: i64,
    key: Span,
    value: Span,
    headers_at: u32,
    header_count: u32,
    wire_size: u32,
}

impl OwnedRecord {
    /// Absolute offset.
    #[inline]
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Timestamp in ms (see [`Record::timestamp`]).
    #[inline]
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The key, `None` for null.
    #[inline]
    pub fn key(&self) -> Option<&[u8]> {
        self.key.get(&self.data)
    }

    /// The value, `None` for null.
    #[inline]
    pub fn value(&self) -> Option<&[u8]> {
        self.value.get(&self.data)
    }

    /// The key as a `Bytes` sharing the buffer.
    pub fn key_bytes(&self) -> Option<Bytes> {
        self.key.bytes(&self.data)
    }

    /// The value as a `Bytes` sharing the buffer.
    pub fn value_bytes(&self) -> Option<Bytes> {
        self.value.bytes(&self.data)
    }

    /// Number of headers.
    #[inline]
    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }

    /// The headers, parsed lazily.
    pub fn headers(&self) -> Headers<'_> {
        Headers {
            data: self
                .data
                .get(self.headers_at as usize..)
                .unwrap_or_default(),
            pos: 0,
            remaining: self.header_count,
        }
    }

    /// The headers as `Bytes` sharing the buffer.
    pub fn owned_headers(&self) -> Vec<OwnedHeader> {
        self.headers()
            .map(|h| OwnedHeader {
                key: self.data.slice_ref(h.key),
                value: h.value.map(|v| self.data.slice_ref(v)),
            })
            .collect()
    }

    /// Bytes of the record in the uncompressed records section, including its
    /// length varint (see [`Record::wire_size`]).
    #[inline]
    pub fn wire_size(&self) -> usize {
        self.wire_size as usize
    }
}

impl PartialEq for OwnedRecord {
    fn eq(&self, other: &Self) -> bool {
        self.offset == other.offset
            && self.timestamp == other.timestamp
            && self.key() == other.key()
            && self.value() == other.value()
            && self.wire_size == other.wire_size
            && self.headers().eq(other.headers())
    }
}

impl Eq for OwnedRecord {}

impl std::fmt::Debug for OwnedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedRecord")
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("key", &self.key())
            .field("value", &self.value())
            .field("headers", &self.headers().collect::<Vec<_>>())
            .field("wire_size", &self.wire_size)
            .finish()
    }
}

/// Where one record lies in an [`OwnedRecords`] buffer.
#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: i64,
    timestamp: i64,
    body: Span,
    key: Span,
    value: Span,
    headers_at: u32,
    header_count: u32,
    wire_size: u32,
    attributes: i8,
}

/// The validated records of one batch, owned: the batch's (decompressed)
/// buffer plus an index of where each record lies. `'static`, `Send`, cheap to
/// keep in a batch accumulator; no per-record reference count or allocation.
///
/// [`iter`](Self::iter) and [`get`](Self::get) hand out [`Record`] views; a
/// single record detaches with [`Record::to_owned`].
#[derive(Debug, Clone)]
pub struct OwnedRecords {
    data: Bytes,
    entries: Vec<Entry>,
}

impl OwnedRecords {
    /// Decodes and validates every record of `records`.
    pub(crate) fn collect(
        records: Records<'_>,
        capacity: usize,
    ) -> Result<OwnedRecords, RecordError> {
        let data = records.buf.clone();
        let base = data.as_ptr() as usize;
        let mut entries = Vec::with_capacity(capacity);
        for record in records {
            let r = record?;
            let body_at = r.body.as_ptr() as usize;
            let span = |s: Option<&[u8]>| match s {
                Some(s) => Span {
                    start: (s.as_ptr() as usize - body_at) as u32,
                    len: s.len() as u32,
                },
                None => Span::NULL,
            };
            entries.push(Entry {
                offset: r.offset,
                timestamp: r.timestamp,
                body: Span {
                    start: (body_at - base) as u32,
                    len: r.body.len() as u32,
                },
                key: span(r.key),
                value: span(r.value),
                headers_at: (r.headers.as_ptr() as usize - body_at) as u32,
                header_count: r.header_count,
                wire_size: r.wire_size,
                attributes: r.attributes,
            });
        }
        Ok(OwnedRecords { data, entries })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The uncompressed records section the records live in.
    pub fn as_bytes(&self) -> &Bytes {
        &self.data
    }

    /// The `index`-th record.
    pub fn get(&self, index: usize) -> Option<Record<'_>> {
        self.entries.get(index).and_then(|e| self.view(e))
    }

    /// Iterates the records in offset order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Record<'_>> + '_ {
        // Entries were built from this buffer, so `view` always succeeds.
        self.entries
            .iter()
            .map(|e| self.view(e).unwrap_or_else(|| self.empty_view(e)))
    }

    #[inline]
    fn view(&self, e: &Entry) -> Option<Record<'_>> {
        let body = e.body.get(&self.data)?;
        Some(Record {
            buf: &self.data,
            body,
            offset: e.offset,
            timestamp: e.timestamp,
            key: e.key.get(body),
            value: e.value.get(body),
            headers: body.get(e.headers_at as usize..)?,
            header_count: e.header_count,
            attributes: e.attributes,
            wire_size: e.wire_size,
        })
    }

    #[cold]
    fn empty_view(&self, e: &Entry) -> Record<'_> {
        Record {
            buf: &self.data,
            body: &[],
            offset: e.offset,
            timestamp: e.timestamp,
            key: None,
            value: None,
            headers: &[],
            header_count: 0,
            attributes: e.attributes,
            wire_size: e.wire_size,
        }
    }
}
