//! Fuzzes the table-driven Huffman / tANS decoder of lcodec-entropy's `fast` module.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, body)) = data.split_first() else { return };
    let mut out = vec![0u8; n as usize * 64];
    let _ = lcodec_entropy::fast::decode(body, &mut out);
});
