//! Throughput of the `text-cm` codec (context mixing, no weights): encode and decode of
//! alice29 on one thread (one chunk) and of a 1 MB enwik8 slice cut in two chunks on
//! two threads, with the zstd library at level 19 on the same bytes as the same-run
//! reference. A summary line per input prints sizes (bpb) and speeds (KB/s).
//!
//! `cargo bench -p lcodec-bench --bench text`; data: ../shared/data/text (skipped if absent).
//! The whole-corpus ratio against `xz -9` is `cargo run --release -p lcodec-text --example measure`.

use std::path::Path;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lcodec::{DecodeOptions, EncodeOptions, Registry};
use lcodec_text::TextCmCodec;

fn inputs() -> Vec<(&'static str, Vec<u8>, usize)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/text");
    let mut v = Vec::new();
    match std::fs::read(root.join("canterbury/alice29.txt")) {
        Ok(d) => v.push(("alice29-1t", d, 1)),
        Err(e) => eprintln!("skipping alice29: {e}"),
    }
    match std::fs::read(root.join("enwik8_prefix/enwik8_head4000000")) {
        Ok(mut d) => {
            d.truncate(1_000_000);
            v.push(("enwik8-1MB-2chunks-2t", d, 2));
        }
        Err(e) => eprintln!("skipping enwik8 slice: {e}"),
    }
    v
}

fn secs(mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn bench(c: &mut Criterion) {
    let mut registry = Registry::empty();
    registry.register(Box::new(TextCmCodec));
    let codec = TextCmCodec;
    let mut g = c.benchmark_group("text-cm");
    g.sample_size(10);
    for (name, data, threads) in inputs() {
        g.throughput(Throughput::Bytes(data.len() as u64));
        let enc = EncodeOptions {
            threads,
            chunk_size: Some(data.len().div_ceil(threads)),
            ..Default::default()
        };
        let dec = DecodeOptions {
            threads,
            ..Default::default()
        };
        let mut lc = Vec::new();
        let te = secs(|| {
            lcodec::encode_with(&codec, &mut &data[..], &mut lc, &enc).expect("encode");
        });
        let mut out = Vec::with_capacity(data.len());
        let td = secs(|| {
            lcodec::decode(&registry, &mut &lc[..], &mut out, &dec).expect("decode");
        });
        assert!(out == data, "{name}: round trip mismatch");
        let mut z = Vec::new();
        let tz = secs(|| z = zstd::bulk::compress(&data, 19).expect("zstd"));
        let kbs = |s: f64| data.len() as f64 / 1024.0 / s;
        eprintln!(
            "text-cm {name}: {} B -> {} B ({:.3} bpb; zstd-19 {:.3} bpb) | {threads} thread(s): encode {:.0} KB/s, decode {:.0} KB/s (zstd-19 encode {:.0} KB/s)",
            data.len(),
            lc.len(),
            8.0 * lc.len() as f64 / data.len() as f64,
            8.0 * z.len() as f64 / data.len() as f64,
            kbs(te),
            kbs(td),
            kbs(tz)
        );
        g.bench_with_input(BenchmarkId::new("encode", name), &data, |b, d| {
            b.iter(|| {
                let mut o = Vec::with_capacity(d.len() / 3);
                lcodec::encode_with(&codec, &mut &d[..], &mut o, &enc).expect("encode");
                o
            })
        });
        g.bench_with_input(BenchmarkId::new("decode", name), &lc, |b, lc| {
            b.iter(|| {
                let mut o = Vec::with_capacity(data.len());
                lcodec::decode(&registry, &mut &lc[..], &mut o, &dec).expect("decode");
                o
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
