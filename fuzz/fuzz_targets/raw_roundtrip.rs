//! Any input round-trips through the `raw` codec, whatever the chunk size and method.
#![no_main]

use lcodec::{DecodeOptions, EncodeOptions, Registry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let registry = Registry::with_enabled();
    let mut o = EncodeOptions { threads: 1, chunk_size: Some(1 + (sel as usize & 0x3f) * 64), ..Default::default() };
    let method = ["zstd", "deflate", "store"][(sel as usize >> 6) % 3];
    o.params.insert("method".into(), method.into());
    o.quality = Some(if method == "zstd" { 3 } else { 6 });
    let mut lc = Vec::new();
    lcodec::encode(&registry, &mut &body[..], &mut lc, &o).expect("encode");
    let mut back = Vec::new();
    lcodec::decode(&registry, &mut &lc[..], &mut back, &DecodeOptions::default()).expect("decode");
    assert_eq!(back, body);
});
