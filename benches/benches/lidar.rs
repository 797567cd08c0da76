//! Throughput of the `lidar` codec on KITTI sweeps at 1 mm: one sweep on one thread
//! (encode, decode), and five sweeps coded in parallel on two threads.
//!
//! `cargo bench -p lcodec-bench --bench lidar`; data: ../shared/data/lidar (skipped if
//! absent). Bits per point and the LASzip comparison: `cargo run --release -p
//! lcodec-lidar --example measure`.

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lcodec_lidar::format::{self, Cloud, Format};

fn frames() -> Option<Vec<Cloud>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/lidar/kitti_raw_5consecutive_float32");
    let mut v = Vec::new();
    for i in 0..5 {
        let Ok(d) = std::fs::read(root.join(format!("000000000{i}.bin"))) else {
            continue;
        };
        v.push(format::parse(&d, Format::Kitti).ok()?);
    }
    if v.is_empty() {
        eprintln!("skipping lidar bench: {} not found", root.display());
        return None;
    }
    Some(v)
}

fn bench(c: &mut Criterion) {
    let Some(frames) = frames() else { return };
    let p = 0.001;
    let mut g = c.benchmark_group("lidar");
    g.sample_size(10);
    let f0 = &frames[0];
    let n0 = f0.len();
    let (payload, stats) = lcodec_lidar::encode_chunk(f0, 0, n0, p).expect("encode");
    eprintln!(
        "lidar: {} points, geometry {:.3} bits/point, total {:.3}",
        n0,
        stats.geometry_bytes as f64 * 8.0 / n0 as f64,
        payload.len() as f64 * 8.0 / n0 as f64
    );
    g.throughput(Throughput::Elements(n0 as u64));
    g.bench_function("encode_1thread", |b| {
        b.iter(|| lcodec_lidar::encode_chunk(f0, 0, n0, p).expect("encode"))
    });
    g.bench_function("decode_1thread", |b| {
        b.iter(|| {
            lcodec_lidar::decode_chunk(&payload, f0.fields, f0.ring_column, Some(n0))
                .expect("decode")
        })
    });
    let total: usize = frames.iter().map(Cloud::len).sum();
    let payloads: Vec<Vec<u8>> = frames
        .iter()
        .map(|f| {
            lcodec_lidar::encode_chunk(f, 0, f.len(), p)
                .expect("encode")
                .0
        })
        .collect();
    let pairs: Vec<(usize, &Vec<u8>)> =
        frames.iter().map(Cloud::len).zip(payloads.iter()).collect();
    g.throughput(Throughput::Elements(total as u64));
    g.bench_function("encode_5frames_2threads", |b| {
        b.iter(|| {
            lcodec::parallel::map_parallel(&frames, 2, &|f: &Cloud| {
                lcodec_lidar::encode_chunk(f, 0, f.len(), p)
            })
            .expect("encode")
        })
    });
    g.bench_function("decode_5frames_2threads", |b| {
        b.iter(|| {
            lcodec::parallel::map_parallel(&pairs, 2, &|(n, pl): &(usize, &Vec<u8>)| {
                lcodec_lidar::decode_chunk(pl, 4, None, Some(*n))
            })
            .expect("decode")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
