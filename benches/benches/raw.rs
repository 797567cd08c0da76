//! Throughput of the `raw` codec (encode at levels 3 and 19, decode) on real text, with
//! the `zstd` library called directly on the same bytes as the same-run reference.
//!
//! `cargo bench -p lcodec-bench --bench raw`; data: ../shared/data/text (skipped if absent).

use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lcodec::{DecodeOptions, EncodeOptions, Registry};

fn corpus() -> Option<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/text");
    let mut data = Vec::new();
    for f in ["enwik8_prefix", "calgary", "canterbury"] {
        let Ok(rd) = std::fs::read_dir(root.join(f)) else {
            continue;
        };
        let mut paths: Vec<_> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        for p in paths {
            data.extend(std::fs::read(p).ok()?);
        }
    }
    if data.is_empty() {
        eprintln!("skipping raw bench: {} not found", root.display());
        return None;
    }
    Some(data)
}

fn bench(c: &mut Criterion) {
    let Some(data) = corpus() else { return };
    let registry = Registry::with_enabled();
    let mut g = c.benchmark_group("raw");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    for level in [3u32, 19] {
        let opts = EncodeOptions {
            quality: Some(level),
            params: [("codec".to_string(), "raw".to_string())].into(),
            ..Default::default()
        };
        let mut lc = Vec::new();
        lcodec::encode(&registry, &mut &data[..], &mut lc, &opts).expect("encode");
        eprintln!(
            "raw level {level}: {} -> {} bytes ({:.3} bpb)",
            data.len(),
            lc.len(),
            8.0 * lc.len() as f64 / data.len() as f64
        );
        if level == 3 {
            g.bench_with_input(BenchmarkId::new("encode", level), &data, |b, d| {
                b.iter(|| {
                    let mut out = Vec::with_capacity(d.len());
                    lcodec::encode(&registry, &mut &d[..], &mut out, &opts).expect("encode");
                    out
                })
            });
        }
        g.bench_with_input(BenchmarkId::new("decode", level), &lc, |b, lc| {
            b.iter(|| {
                let mut out = Vec::with_capacity(data.len());
                lcodec::decode(&registry, &mut &lc[..], &mut out, &DecodeOptions::default())
                    .expect("decode");
                out
            })
        });
        // Same-run reference: the zstd library on the whole buffer, one thread.
        let z = zstd::bulk::compress(&data, level as i32).expect("zstd");
        g.bench_with_input(BenchmarkId::new("zstd-lib-decode", level), &z, |b, z| {
            b.iter(|| zstd::bulk::decompress(z, data.len()).expect("zstd decode"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
