//! Throughput of the log codec (the default columns mode, `mode=max` context mixing and
//! `mode=fast`), encode and
//! decode on 2 threads, on the largest logs, with the zstd library at level 19 on the same
//! bytes as the same-run reference.
//!
//! `cargo bench -p lcodec-bench --bench log`; data: ../shared/data/logs (skipped if absent).
//! The strong mode runs about 0.5–1 MB/s per core, so its samples take seconds each.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lcodec::EncodeOptions;

fn logs() -> Vec<(&'static str, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/logs");
    let mut out = Vec::new();
    if let Ok(p) = std::fs::read(root.join("loghub_proxifier_full/Proxifier.log")) {
        out.push(("proxifier", p));
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for b in ["kafka0", "kafka1"] {
        if let Ok(rd) =
            std::fs::read_dir(root.join("elastic_kafka_broker_logs").join(b).join("logs"))
        {
            files.extend(rd.flatten().map(|e| e.path()));
        }
    }
    files.sort();
    let kafka: Vec<u8> = files
        .iter()
        .filter_map(|f| std::fs::read(f).ok())
        .flatten()
        .collect();
    if !kafka.is_empty() {
        out.push(("kafka", kafka));
    }
    if out.is_empty() {
        eprintln!("skipping log bench: {} not found", root.display());
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("log");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(100));
    g.measurement_time(Duration::from_secs(5));
    for (name, data) in logs() {
        g.throughput(Throughput::Bytes(data.len() as u64));
        let mut fast = EncodeOptions {
            threads: 2,
            ..Default::default()
        };
        fast.params.insert("mode".into(), "fast".into());
        let columns = EncodeOptions {
            threads: 2,
            ..Default::default()
        };
        let mut strong = columns.clone();
        strong.params.insert("mode".into(), "max".into());
        let mut modes = vec![("columns", columns), ("fast", fast)];
        if name == "proxifier" {
            modes.push(("strong", strong));
        }
        for (mode, opts) in modes {
            let packed = lcodec_log::compress(&data, &opts).expect("compress");
            eprintln!(
                "log {mode} {name}: {} -> {} bytes ({:.2}x)",
                data.len(),
                packed.len(),
                data.len() as f64 / packed.len() as f64
            );
            g.bench_with_input(
                BenchmarkId::new(format!("encode-{mode}"), name),
                &data,
                |b, d| b.iter(|| lcodec_log::compress(d, &opts).expect("compress")),
            );
            g.bench_with_input(
                BenchmarkId::new(format!("decode-{mode}"), name),
                &packed,
                |b, p| b.iter(|| lcodec_log::decompress(p).expect("decompress")),
            );
        }
        let z = zstd::bulk::compress(&data, 19).expect("zstd");
        eprintln!(
            "zstd-19 {name}: {} -> {} bytes ({:.2}x)",
            data.len(),
            z.len(),
            data.len() as f64 / z.len() as f64
        );
        g.bench_with_input(
            BenchmarkId::new("zstd19-lib-encode", name),
            &data,
            |b, d| b.iter(|| zstd::bulk::compress(d, 19).expect("zstd")),
        );
        g.bench_with_input(BenchmarkId::new("zstd19-lib-decode", name), &z, |b, z| {
            b.iter(|| zstd::bulk::decompress(z, data.len()).expect("zstd decode"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
