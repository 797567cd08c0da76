//! Throughput of the `tensor` codec (encode on 2 threads, decode on 1 and 2 threads) on
//! the weight files in ../shared/data/tensors, plus a BF16 file made from the largest F32
//! one (and `$LCODEC_BF16`, e.g. all-MiniLM-L6-v2.bf16.safetensors from make_bf16.py, if
//! set). The zstd library decoding a level-19 frame of the same bytes on one thread is
//! the same-run reference; a summary line per file prints sizes and the speed ratio.
//!
//! `cargo bench -p lcodec-bench --bench tensor`

use std::path::{Path, PathBuf};
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lcodec::{DecodeOptions, EncodeOptions, Registry};

/// F32 tensors of a safetensors file rewritten as BF16 (truncation), other bytes kept.
fn f32_to_bf16(f: &[u8]) -> Option<Vec<u8>> {
    let n = u64::from_le_bytes(f.get(..8)?.try_into().ok()?) as usize;
    let json = std::str::from_utf8(f.get(8..8 + n)?).ok()?;
    // The files here are written by safetensors with every tensor F32 and sorted
    // offsets; halving every offset and renaming the dtype keeps the header valid.
    if json.contains("\"F16\"") || json.contains("\"I8\"") || json.contains("\"BF16\"") {
        return None;
    }
    let mut out_json = String::new();
    let mut rest = json;
    while let Some(i) = rest.find("\"data_offsets\":[") {
        let (head, tail) = rest.split_at(i + 16);
        out_json.push_str(head);
        let end = tail.find(']')?;
        let nums: Vec<u64> = tail[..end]
            .split(',')
            .map(|s| s.trim().parse().ok())
            .collect::<Option<_>>()?;
        out_json.push_str(
            &nums
                .iter()
                .map(|v| (v / 2).to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
        rest = &tail[end..];
    }
    out_json.push_str(rest);
    let mut out_json = out_json.replace("\"F32\"", "\"BF16\"");
    while out_json.len() % 8 != 0 {
        out_json.push(' ');
    }
    let mut out = (out_json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(out_json.as_bytes());
    out.extend(f[8 + n..].chunks_exact(4).flat_map(|c| [c[2], c[3]]));
    Some(out)
}

fn inputs() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/tensors");
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect(),
        Err(_) => {
            eprintln!("skipping tensor bench files: {} not found", dir.display());
            Vec::new()
        }
    };
    if let Ok(p) = std::env::var("LCODEC_BF16") {
        paths.push(PathBuf::from(p));
    }
    paths.sort();
    let mut v: Vec<(String, Vec<u8>)> = paths
        .iter()
        .filter_map(|p| {
            Some((
                p.file_name()?.to_string_lossy().into_owned(),
                std::fs::read(p).ok()?,
            ))
        })
        .collect();
    if let Some((name, data)) = v
        .iter()
        .filter(|(n, _)| n.contains("f32"))
        .max_by_key(|(_, d)| d.len())
    {
        if let Some(b) = f32_to_bf16(data) {
            v.push((name.replace("f32", "bf16-from-f32"), b));
        }
    }
    v
}

fn best_secs(mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn bench(c: &mut Criterion) {
    let registry = Registry::with_enabled();
    let codec = lcodec_tensor::TensorCodec;
    let mut g = c.benchmark_group("tensor");
    g.sample_size(10);
    for (name, data) in inputs() {
        g.throughput(Throughput::Bytes(data.len() as u64));
        let enc = EncodeOptions {
            threads: 2,
            ..Default::default()
        };
        let mut lc = Vec::new();
        lcodec::encode_with(&codec, &mut &data[..], &mut lc, &enc).expect("encode");
        let z = zstd::bulk::compress(&data, 19).expect("zstd");
        let dec = |threads: usize| DecodeOptions {
            threads,
            ..Default::default()
        };
        let mut out = Vec::with_capacity(data.len());
        lcodec::decode(&registry, &mut &lc[..], &mut out, &dec(2)).expect("decode");
        assert!(out == data, "{name}: round trip mismatch");

        let ours2 = best_secs(|| {
            out.clear();
            lcodec::decode(&registry, &mut &lc[..], &mut out, &dec(2)).expect("decode");
        });
        let ours1 = best_secs(|| {
            out.clear();
            lcodec::decode(&registry, &mut &lc[..], &mut out, &dec(1)).expect("decode");
        });
        let zs = best_secs(|| {
            zstd::bulk::decompress(&z, data.len()).expect("zstd decode");
        });
        let gbs = |s: f64| data.len() as f64 / s / 1e9;
        eprintln!(
            "tensor {name}: {} B -> lc {:.2}% | zstd-19 {:.2}% | decode GB/s: lc 2 threads {:.2}, lc 1 thread {:.2}, zstd 1 thread {:.2} (lc2/zstd = {:.2}x)",
            data.len(),
            100.0 * lc.len() as f64 / data.len() as f64,
            100.0 * z.len() as f64 / data.len() as f64,
            gbs(ours2),
            gbs(ours1),
            gbs(zs),
            zs / ours2
        );

        g.bench_with_input(BenchmarkId::new("encode-2t", &name), &data, |b, d| {
            b.iter(|| {
                let mut o = Vec::with_capacity(d.len());
                lcodec::encode_with(&codec, &mut &d[..], &mut o, &enc).expect("encode");
                o
            })
        });
        for threads in [1usize, 2] {
            g.bench_with_input(
                BenchmarkId::new(format!("decode-{threads}t"), &name),
                &lc,
                |b, lc| {
                    b.iter(|| {
                        let mut o = Vec::with_capacity(data.len());
                        lcodec::decode(&registry, &mut &lc[..], &mut o, &dec(threads))
                            .expect("decode");
                        o
                    })
                },
            );
        }
        g.bench_with_input(
            BenchmarkId::new("zstd19-lib-decode-1t", &name),
            &z,
            |b, z| b.iter(|| zstd::bulk::decompress(z, data.len()).expect("zstd decode")),
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
