//! Measures the LiDAR codec on the KITTI / nuScenes frames in ../shared/data/lidar:
//! geometry-only and total bits per point, LASzip (laz-rs, point format 0, the same
//! quantized integers) in the same run, maximum coordinate error, encode / decode speed.
//!
//! `cargo run --release -p lcodec-lidar --example measure [-- [--reps N] [--points N]
//! [--predictor classical|mlp] [--precision P] FILE...]`

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Instant;

use lcodec_lidar::ChunkStats;
use lcodec_lidar::format::{self, Format};

fn laszip_bytes(q: &[[i32; 3]]) -> usize {
    let items = laz::LazItemRecordBuilder::default_for_point_format_id(0, 0).expect("items");
    let mut c =
        laz::LasZipCompressor::from_laz_items(Cursor::new(Vec::new()), items).expect("compressor");
    let mut buf = Vec::with_capacity(q.len() * 20);
    for p in q {
        for v in p {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        buf.extend_from_slice(&[0u8; 8]);
    }
    c.compress_many(&buf).expect("compress");
    c.done().expect("done");
    c.into_inner().into_inner().len()
}

/// CPU seconds used by this thread so far (utime + stime from /proc, 100 Hz ticks), so
/// speeds are per core even on a loaded machine; `None` off Linux.
fn thread_cpu() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Runs `f` `reps` times; returns (wall seconds, CPU seconds) per run.
fn timed<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, f64, T) {
    let c0 = thread_cpu();
    let t0 = Instant::now();
    let mut r = f();
    for _ in 1..reps {
        r = f();
    }
    let wall = t0.elapsed().as_secs_f64() / reps as f64;
    let cpu = match (c0, thread_cpu()) {
        (Some(a), Some(b)) => (b - a) / reps as f64,
        _ => wall,
    };
    (wall, cpu, r)
}

fn files() -> Vec<PathBuf> {
    let mut args: Vec<PathBuf> = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--reps" || a == "--points" || a == "--predictor" || a == "--precision" {
            it.next();
        } else {
            args.push(PathBuf::from(a));
        }
    }
    if !args.is_empty() {
        return args;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/lidar");
    let mut v = Vec::new();
    for d in [
        "kitti_raw_5consecutive_float32",
        "kitti_object_5frames_float32",
        "nuscenes",
    ] {
        if let Ok(rd) = std::fs::read_dir(root.join(d)) {
            let mut f: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(".bin"))
                .collect();
            f.sort();
            v.extend(f);
        }
    }
    v
}

fn main() {
    // `--reps N`: repeat encode / decode N times for steadier CPU-time speeds.
    let argv: Vec<String> = std::env::args().collect();
    // `--precision P` in metres (default 0.001).
    let precision: f64 = argv
        .iter()
        .position(|a| a == "--precision")
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.001);
    let reps: usize = argv
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    // `--points N`: code each frame in chunks of N points (as `-p points=N`).
    let chunk: usize = argv
        .iter()
        .position(|a| a == "--points")
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(lcodec_lidar::DEFAULT_CHUNK_POINTS);
    println!(
        "{:<28} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>7} {:>7} {:>7}",
        "file",
        "points",
        "geom b/p",
        "total",
        "LASzip",
        "LZ@1mm",
        "ratio",
        "maxerr mm",
        "enc M/s",
        "dec M/s",
        "LZ enc"
    );
    // `--predictor classical|mlp` (default mlp, as the codec).
    let predictor = match argv
        .iter()
        .position(|a| a == "--predictor")
        .and_then(|i| argv.get(i + 1))
        .map(String::as_str)
    {
        Some("classical") => lcodec_lidar::Predictor::Classical,
        _ => lcodec_lidar::Predictor::Mlp,
    };
    println!("predictor: {predictor:?}");
    let copts = lcodec_lidar::ChunkOptions {
        predictor,
        ..Default::default()
    };
    let (mut sg, mut sl, mut st, mut sn) = (0usize, 0usize, 0usize, 0usize);
    for path in files() {
        let data = std::fs::read(&path).expect("read");
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let fmt =
            format::detect(&data, Some(&name), Some(data.len() as u64)).unwrap_or(Format::Kitti);
        let cloud = format::parse(&data, fmt).expect("parse");
        let n = cloud.len();
        // As the codec: step = precision when the input lies on that grid.
        let copts = lcodec_lidar::ChunkOptions {
            grid: lcodec_lidar::on_grid(&cloud.xyz, precision),
            ..copts
        };
        let ranges: Vec<(usize, usize)> = (0..n)
            .step_by(chunk.min(n.max(1)))
            .map(|a| (a, (a + chunk).min(n)))
            .collect();
        let (_, te, parts) = timed(reps, || {
            ranges
                .iter()
                .map(|&(a, b)| {
                    lcodec_lidar::encode_chunk_with(&cloud, a, b, precision, &copts)
                        .expect("encode")
                })
                .collect::<Vec<_>>()
        });
        let stats = parts
            .iter()
            .fold(ChunkStats::default(), |t, (_, s)| ChunkStats {
                points: t.points + s.points,
                geometry_bytes: t.geometry_bytes + s.geometry_bytes,
                attribute_bytes: t.attribute_bytes + s.attribute_bytes,
                payload_bytes: t.payload_bytes + s.payload_bytes,
            });
        let (_, td, (xyz, attrs)) = timed(reps, || {
            let mut xyz = Vec::new();
            let mut attrs: Vec<Vec<u32>> = vec![Vec::new(); cloud.attrs.len()];
            for (payload, _) in &parts {
                let (x, a) =
                    lcodec_lidar::decode_chunk(payload, cloud.fields, cloud.ring_column, None)
                        .expect("decode");
                xyz.extend(x);
                for (t, c) in attrs.iter_mut().zip(a) {
                    t.extend(c);
                }
            }
            (xyz, attrs)
        });
        assert_eq!(attrs, cloud.attrs, "attributes differ");
        let mut maxerr = 0f64;
        for (a, b) in xyz.iter().zip(&cloud.xyz) {
            for k in 0..3 {
                maxerr = maxerr.max((f64::from(a[k]) - f64::from(b[k])).abs());
            }
        }
        let (_, q) = lcodec_lidar::quantize(&cloud.xyz, precision).expect("quantize");
        let (_, tl, lz) = timed(reps, || laszip_bytes(&q));
        // LASzip at exactly 1 mm (PEERS.md's setting; our step is up to 0.8% finer).
        let q1: Vec<[i32; 3]> = cloud
            .xyz
            .iter()
            .map(|p| p.map(|v| (f64::from(v) / 0.001).round() as i32))
            .collect();
        let lz1 = laszip_bytes(&q1);
        let bpp = |b: usize| b as f64 * 8.0 / n as f64;
        println!(
            "{:<28} {:>7} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>7.3} {:>9.4} {:>7.2} {:>7.2} {:>7.2}",
            &name[..name.len().min(28)],
            n,
            bpp(stats.geometry_bytes),
            bpp(stats.payload_bytes),
            bpp(lz),
            bpp(lz1),
            stats.geometry_bytes as f64 / lz as f64,
            maxerr * 1000.0,
            n as f64 / te / 1e6,
            n as f64 / td / 1e6,
            n as f64 / tl / 1e6
        );
        if fmt == Format::Kitti {
            sg += stats.geometry_bytes;
            sl += lz;
            st += stats.payload_bytes;
            sn += n;
        }
    }
    if sn > 0 {
        println!(
            "KITTI all: geometry {:.3} b/p, total {:.3} b/p, LASzip {:.3} b/p, ratio {:.3}",
            sg as f64 * 8.0 / sn as f64,
            st as f64 * 8.0 / sn as f64,
            sl as f64 * 8.0 / sn as f64,
            sg as f64 / sl as f64
        );
    }
    las_vs_laz();
}

/// Uncompressed LAS files (coded exactly) against the LAZ files beside them.
fn las_vs_laz() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/lidar/las_laz");
    for f in ["autzen_trim", "laspy_simple"] {
        let (Ok(las), Ok(laz)) = (
            std::fs::read(root.join(format!("{f}.las"))),
            std::fs::read(root.join(format!("{f}.laz"))),
        ) else {
            continue;
        };
        let cloud = format::parse(&las, Format::Las).expect("parse LAS");
        let mut payload = 0;
        for a in (0..cloud.len()).step_by(lcodec_lidar::DEFAULT_CHUNK_POINTS) {
            let b = (a + lcodec_lidar::DEFAULT_CHUNK_POINTS).min(cloud.len());
            payload += lcodec_lidar::encode_chunk(&cloud, a, b, 0.001)
                .expect("encode")
                .0
                .len();
        }
        let ours = payload + cloud.header.len() + cloud.trailer.len();
        println!(
            "{f}.las: {} bytes, lidar (exact, payload + verbatim header) {ours} bytes, LAZ file {} bytes, ratio {:.3}",
            las.len(),
            laz.len(),
            ours as f64 / laz.len() as f64
        );
    }
}
