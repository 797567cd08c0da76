//! Micro-benchmark of exponent-like symbol decoding, Huffman vs tANS, interleaved runs in
//! one process (single thread, min of N), plus a whole BF16 segment.
use std::time::Instant;

use lcodec_entropy::fast;

fn main() {
    let n = 4 << 20;
    let mut seed = 1u64;
    let sym: Vec<u8> = (0..n)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            120 - (seed >> 20).trailing_zeros().min(30) as u8 + ((seed >> 60) as u8 & 1)
        })
        .collect();
    let mut huff = Vec::new();
    fast::encode_no_tans(&sym, &mut huff);
    let mut tans = Vec::new();
    fast::encode(&sym, &mut tans);
    println!(
        "sizes: huffman {:.4}, tans {:.4} (modes {} {})",
        huff.len() as f64 / n as f64,
        tans.len() as f64 / n as f64,
        huff[0],
        tans[0]
    );
    let mut out = vec![0u8; n];
    let (mut bh, mut bt) = (f64::MAX, f64::MAX);
    for _ in 0..20 {
        let t = Instant::now();
        fast::decode(&huff, &mut out).expect("ok");
        bh = bh.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        fast::decode(&tans, &mut out).expect("ok");
        bt = bt.min(t.elapsed().as_secs_f64());
    }
    assert_eq!(out, sym);
    println!(
        "decode ns/sym: huffman {:.2}, tans {:.2}",
        bh * 1e9 / n as f64,
        bt * 1e9 / n as f64
    );
    let t = Instant::now();
    fast::encode(&sym, &mut Vec::new());
    println!(
        "encode (auto) ns/sym: {:.2}",
        t.elapsed().as_secs_f64() * 1e9 / n as f64
    );
}
