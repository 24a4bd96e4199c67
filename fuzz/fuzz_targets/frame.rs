//! Frames and headers: `check`, `split_frame` and `read_hint` over an
//! arbitrary byte stream, then the request and response header decoders on
//! every body that comes out. Nothing may panic, and the bodies must be
//! exactly the bytes that followed each prefix.
#![no_main]

use bytes::{Bytes, BytesMut};
use kafee_protocol::frame::{check, read_hint, split_frame, FrameStatus, PREFIX_LEN};
use kafee_protocol::header::{decode_request_header, ResponseHeader};
use kafee_protocol::versions::SUPPORTED;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&limit_byte, stream)) = data.split_first() else {
        return;
    };
    // Limits from 0 to 2^24 bytes, so both "too large" and "complete" are reached.
    let limit = if limit_byte == 0xff { 1 << 24 } else { usize::from(limit_byte) * 4 };

    let mut buf = BytesMut::from(stream);
    let mut consumed = 0;
    loop {
        let status = check(&buf, limit);
        let hint = read_hint(&buf, limit);
        assert!(hint <= limit + PREFIX_LEN);
        match split_frame(&mut buf, limit) {
            Ok(Some(body)) => {
                assert!(matches!(status, Ok(FrameStatus::Complete { frame_len }) if frame_len == body.len() + PREFIX_LEN));
                assert!(body.len() <= limit);
                let start = consumed + PREFIX_LEN;
                assert_eq!(&body[..], &stream[start..start + body.len()]);
                consumed = start + body.len();
                headers(body);
            }
            Ok(None) => {
                assert!(matches!(status, Ok(FrameStatus::Incomplete { needed }) if needed == hint));
                break;
            }
            Err(e) => {
                assert_eq!(status, Err(e));
                assert_eq!(buf.len(), stream.len() - consumed, "buffer left untouched");
                break;
            }
        }
    }
});

fn headers(body: Bytes) {
    let mut request = body.clone();
    if let Ok(h) = decode_request_header(&mut request) {
        assert!(request.len() <= body.len());
        assert!(h.header_version <= 2);
    }
    let key = SUPPORTED[body.len() % SUPPORTED.len()].api_key;
    for version in [0, 12] {
        let mut response = body.clone();
        if let Ok(h) = ResponseHeader::decode(&mut response, key, version) {
            assert_eq!(Ok(h.correlation_id), kafee_protocol::codec::peek_correlation_id(&body));
        }
    }
}
