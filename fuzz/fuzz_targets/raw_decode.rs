//! Fuzzes a full decode with the `raw` codec (and the facade's checks).
#![no_main]

use lcodec::{DecodeOptions, Limits, Registry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let registry = Registry::with_enabled();
    let opts = DecodeOptions {
        threads: 1,
        limits: Limits { max_chunk_bytes: 1 << 20, max_chunk_raw_bytes: 1 << 20, max_chunks: 1 << 12, max_header_bytes: 1 << 16, max_alloc: 1 << 22 },
        ..Default::default()
    };
    let mut out = Vec::new();
    let _ = lcodec::decode(&registry, &mut &data[..], &mut out, &opts);
});
