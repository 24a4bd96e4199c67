//! `kafee-protocol`: the sans-IO layer of kafee.
//!
//! Frames, request and response headers, API version negotiation, message
//! encoding through the `kafka-protocol` crate, and a zero-copy decoder and
//! an encoder for record batches (magic v2). No sockets, no clocks.
#![forbid(unsafe_code)]

mod bounded;
pub mod codec;
pub mod consumer_protocol;
pub mod error;
pub mod fetch_response;
pub mod frame;
pub mod header;
pub mod metadata_response;
pub mod records;
pub mod versions;

pub use codec::{
    decode_response, decode_response_to, encode_request, peek_correlation_id, ApiRequest,
};
pub use error::{ConsumerAction, DecodeError, EncodeError, ErrorCode, FrameError, VersionError};
pub use versions::{negotiate, Negotiated};
