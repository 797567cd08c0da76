//! Fuzzes the tensor codec's chunk decoder (payloads that passed the container CRC).
#![no_main]

use lcodec::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let raw_len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) % (1 << 20);
    let limits = Limits { max_alloc: 1 << 22, ..Limits::default() };
    let _ = lcodec_tensor::decode_chunk(&data[4..], raw_len, &limits);
});
