//! Response decoding: the first byte picks an API of the version table, the
//! second its version (wrapping, so out-of-range versions are tried too), the
//! rest is the frame body (response header and message). Decoding must
//! return `Ok` or a `DecodeError`, never panic; a decoded correlation id must
//! be the one `peek_correlation_id` sees.
//!
//! Known hazard, tolerated here on purpose: kafka-protocol 0.18 reserves
//! `Vec::with_capacity(count)` from array counts on the wire before reading
//! the elements, which aborts the process when the allocation fails (see
//! `kafee_protocol::codec` and its test
//! `known_hazard_kafka_protocol_preallocates_from_wire_counts`). So that this
//! target can look for every *other* bug, its global allocator serves
//! allocations of 1 GiB or more with address space reserved without backing
//! memory (`MAP_NORESERVE`): the reservation succeeds, the elements fail to
//! decode, the reservation is returned. Everything below 1 GiB uses the
//! system allocator.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};

use bytes::Bytes;
use kafee_protocol::codec::{decode_any_response, peek_correlation_id};
use kafee_protocol::versions::{decode_api_versions_response, SUPPORTED};
use kafka_protocol::messages::ApiKey;
use libfuzzer_sys::fuzz_target;

const HUGE: usize = 1 << 30;

struct ReserveHuge;

// SAFETY: allocations below HUGE go to `System` unchanged. Larger ones are
// fresh anonymous private mappings, which are page aligned (alignments above
// a page are refused with null) and zero-filled, released with `munmap` of the
// same size; `dealloc` tells the two apart by the layout size, which Rust
// passes back unchanged.
unsafe impl GlobalAlloc for ReserveHuge {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() < HUGE {
            return unsafe { System.alloc(layout) };
        }
        if layout.align() > 4096 {
            return std::ptr::null_mut();
        }
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            p.cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() < HUGE {
            unsafe { System.alloc_zeroed(layout) }
        } else {
            // Fresh anonymous mappings are already zero.
            unsafe { self.alloc(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() < HUGE {
            unsafe { System.dealloc(ptr, layout) };
        } else {
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        }
    }
}

#[global_allocator]
static ALLOCATOR: ReserveHuge = ReserveHuge;

fuzz_target!(|data: &[u8]| {
    let [api, version, body @ ..] = data else {
        return;
    };
    let api_key = SUPPORTED[usize::from(*api) % SUPPORTED.len()].api_key;
    // 0..=19 covers every version in the table and some beyond; 0xff is -1.
    let version = if *version == 0xff { -1 } else { i16::from(*version % 20) };
    let body = Bytes::copy_from_slice(body);

    if let Ok(correlation_id) = decode_any_response(api_key, version, body.clone()) {
        assert_eq!(peek_correlation_id(&body), Ok(correlation_id));
    }
    if api_key == ApiKey::ApiVersions {
        if let Ok((correlation_id, _, layout)) = decode_api_versions_response(version, body.clone()) {
            assert_eq!(peek_correlation_id(&body), Ok(correlation_id));
            assert!(layout == version || layout == 0);
        }
    }
});
