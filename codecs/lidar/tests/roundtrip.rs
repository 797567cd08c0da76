//! Round trips of the LiDAR codec through the `.lc` container: real KITTI / nuScenes
//! frames when present, synthetic sweeps in every supported format, the error bound,
//! point order and exact attributes, and errors (never panics) on malformed input.

use std::path::{Path, PathBuf};

use lcodec_core::container::{ChunkSink, ChunkSource, read_header};
use lcodec_core::{Codec, Confidence, DecodeOptions, EncodeOptions};
use lcodec_lidar::LidarCodec;
use lcodec_lidar::format::{self, Format};

fn opts(name: &str, params: &[(&str, &str)]) -> EncodeOptions {
    let mut o = EncodeOptions {
        file_name: Some(name.to_string()),
        ..EncodeOptions::default()
    };
    for (k, v) in params {
        o.params.insert(k.to_string(), v.to_string());
    }
    o
}

fn pack(data: &[u8], o: &EncodeOptions) -> lcodec_core::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut sink = ChunkSink::new(&mut out, LidarCodec.info(), None);
    LidarCodec.encode(&mut &data[..], &mut sink, o)?;
    sink.finish(data.len() as u64, None)?;
    Ok(out)
}

fn unpack(file: &[u8]) -> lcodec_core::Result<Vec<u8>> {
    let o = DecodeOptions::default();
    let mut r: &[u8] = file;
    let header = read_header(&mut r, &o.limits)?;
    let mut src = ChunkSource::stream(&mut r, header.len, o.limits, true);
    let mut out = Vec::new();
    LidarCodec.decode(&header, &mut src, &mut out, &o)?;
    Ok(out)
}

/// Round-trips `data`, checks the bound, order, header and exact attributes; returns
/// (compressed bytes, max error in metres).
fn check(data: &[u8], fmt: Format, o: &EncodeOptions, precision: f64) -> (usize, f64) {
    let packed = pack(data, o).expect("encode");
    let back = unpack(&packed).expect("decode");
    assert_eq!(back.len(), data.len(), "decoded length");
    let a = format::parse(data, fmt).expect("parse original");
    let b = format::parse(&back, fmt).expect("parse decoded");
    assert_eq!(a.header, b.header, "header bytes");
    assert_eq!(a.attrs, b.attrs, "attributes must be bit-exact");
    assert_eq!(a.len(), b.len());
    let mut max = 0f64;
    for (i, (p, q)) in a.xyz.iter().zip(&b.xyz).enumerate() {
        for k in 0..3 {
            let d = (f64::from(p[k]) - f64::from(q[k])).abs();
            assert!(
                d <= precision / 2.0,
                "point {i} axis {k}: {} vs {} (error {d})",
                p[k],
                q[k]
            );
            max = max.max(d);
        }
    }
    (packed.len(), max)
}

fn shared(dir: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/lidar")
        .join(dir);
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: {} not found", p.display());
        None
    }
}

/// A KITTI-like synthetic sweep: `rings` rings scanned one after another, a wall, the
/// ground and some missing returns; x, y, z, reflectance as f32.
fn synthetic(rings: usize, per_ring: usize) -> Vec<[f32; 4]> {
    let mut pts = Vec::new();
    let mut seed = 7u64;
    for r in 0..rings {
        let elev = 0.03 - 0.007 * r as f64;
        for j in 0..per_ring {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if seed >> 60 == 0 {
                continue; // a missing return
            }
            let az = j as f64 * std::f64::consts::TAU / per_ring as f64;
            let ground = if elev < -0.01 {
                1.73 / -elev.tan()
            } else {
                80.0
            };
            let wall = 12.0 / az.cos().abs().max(0.05);
            let range = ground.min(wall).min(90.0) + ((seed >> 33) % 7) as f64 * 0.004;
            let (x, y) = (range * az.cos() * elev.cos(), range * az.sin() * elev.cos());
            let z = range * elev.sin();
            let refl = ((seed >> 40) % 100) as f32 / 100.0;
            pts.push([x as f32, y as f32, z as f32, refl]);
        }
    }
    pts
}

fn to_bytes(pts: &[[f32; 4]], extra: Option<&dyn Fn(usize) -> f32>) -> Vec<u8> {
    let mut v = Vec::new();
    for (i, p) in pts.iter().enumerate() {
        for c in p {
            v.extend_from_slice(&c.to_le_bytes());
        }
        if let Some(f) = extra {
            v.extend_from_slice(&f(i).to_le_bytes());
        }
    }
    v
}

#[test]
fn kitti_frames_round_trip_within_half_a_millimetre() {
    for dir in [
        "kitti_raw_5consecutive_float32",
        "kitti_object_5frames_float32",
    ] {
        let Some(d) = shared(dir) else { return };
        for e in std::fs::read_dir(&d).expect("dir").flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".bin") {
                let head = std::fs::read(e.path()).expect("read");
                let conf = LidarCodec.sniff(&head[..65536], Some(&name));
                assert_eq!(conf, Some(Confidence::EXTENSION), "{name}");
            }
        }
        for f in ["0000000000.bin", "000001.bin"] {
            let p = d.join(f);
            let Ok(data) = std::fs::read(&p) else {
                continue;
            };
            let (size, max) = check(&data, Format::Kitti, &opts(f, &[]), 0.001);
            let bpp = size as f64 * 8.0 / (data.len() / 16) as f64;
            eprintln!(
                "{}: {bpp:.2} bits/point, max error {:.4} mm",
                p.display(),
                max * 1e3
            );
            assert!(bpp < 21.0, "{bpp} bits per point");
        }
    }
}

#[test]
fn nuscenes_sweep_round_trips_with_ring_ids() {
    let Some(d) = shared("nuscenes") else { return };
    let name = "n015-2018-07-24-11-22-45+0800__LIDAR_TOP__1532402927647951.pcd.bin";
    let Ok(data) = std::fs::read(d.join(name)) else {
        eprintln!("skipping: nuScenes file absent");
        return;
    };
    assert_eq!(
        LidarCodec.sniff(&data[..4096], Some(name)),
        Some(Confidence::CONTENT)
    );
    let (size, _) = check(&data, Format::Nuscenes, &opts(name, &[]), 0.001);
    assert!(size * 8 < (data.len() / 20) * 24, "{size} bytes");
}

#[test]
fn synthetic_kitti_round_trips_at_several_precisions() {
    let pts = synthetic(16, 900);
    let data = to_bytes(&pts, None);
    for p in ["0.001", "0.01", "0.0002"] {
        let precision: f64 = p.parse().expect("number");
        check(
            &data,
            Format::Kitti,
            &opts("sweep.bin", &[("precision", p)]),
            precision,
        );
    }
    // Several chunks, coded in parallel.
    let mut o = opts("sweep.bin", &[("points", "2048")]);
    o.threads = 2;
    check(&data, Format::Kitti, &o, 0.001);
    // The format named explicitly, any file name.
    check(
        &data,
        Format::Kitti,
        &opts("points.dat", &[("format", "kitti")]),
        0.001,
    );
}

#[test]
fn synthetic_nuscenes_round_trips() {
    let pts = synthetic(8, 700);
    let data = to_bytes(&pts, Some(&|i| (i % 8) as f32));
    check(&data, Format::Nuscenes, &opts("x.pcd.bin", &[]), 0.001);
}

#[test]
fn pcd_and_ply_round_trip_with_their_headers() {
    let pts = synthetic(6, 500);
    let body = to_bytes(&pts, Some(&|i| f32::from_bits((i % 6) as u32)));
    let n = pts.len();
    let pcd = format!(
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z intensity ring\nSIZE 4 4 4 4 4\nTYPE F F F F U\nCOUNT 1 1 1 1 1\nWIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA binary\n"
    );
    let mut data = pcd.into_bytes();
    data.extend_from_slice(&body);
    assert!(LidarCodec.sniff(&data[..512], Some("a.pcd")).is_some());
    check(&data, Format::PcdBinary, &opts("a.pcd", &[]), 0.001);

    let ply = format!(
        "ply\nformat binary_little_endian 1.0\ncomment synthetic\nelement vertex {n}\nproperty float x\nproperty float y\nproperty float z\nproperty float intensity\nproperty uint ring\nend_header\n"
    );
    let mut data = ply.into_bytes();
    data.extend_from_slice(&body);
    assert_eq!(
        LidarCodec.sniff(&data[..512], Some("a.ply")),
        Some(Confidence::MAGIC)
    );
    check(&data, Format::PlyBinary, &opts("a.ply", &[]), 0.001);
}

#[test]
fn empty_and_tiny_clouds_round_trip() {
    check(&[], Format::Kitti, &opts("e.bin", &[]), 0.001);
    let one = to_bytes(&[[1.5, -2.25, 0.125, 0.5]], None);
    check(&one, Format::Kitti, &opts("o.bin", &[]), 0.001);
    let same = to_bytes(&[[0.0, 0.0, 0.0, 0.0]; 50], None);
    check(
        &same,
        Format::Kitti,
        &opts("z.bin", &[("format", "kitti")]),
        0.001,
    );
}

#[test]
fn malformed_inputs_are_errors() {
    let data = to_bytes(&synthetic(2, 100), None);
    // Not a whole number of records.
    assert!(pack(&data[..data.len() - 3], &opts("t.bin", &[])).is_err());
    // Non-finite coordinates, bad parameters, unknown formats.
    let nan = to_bytes(&[[f32::NAN, 0.0, 0.0, 0.0]], None);
    assert!(pack(&nan, &opts("n.bin", &[])).is_err());
    assert!(pack(&data, &opts("t.bin", &[("precision", "-1")])).is_err());
    assert!(pack(&data, &opts("t.bin", &[("format", "xyz")])).is_err());
    assert!(pack(&data, &opts("t.txt", &[])).is_err());
    // Broken headers.
    for h in [
        "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nPOINTS 10\n".to_string(),
        "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nPOINTS 10\nDATA ascii\n".to_string(),
        "VERSION 0.7\nFIELDS x y\nSIZE 4 4\nTYPE F F\nPOINTS 1\nDATA binary\n".to_string(),
        "VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nPOINTS 99\nDATA binary\n".to_string(),
        "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n".to_string(),
        "ply\nformat binary_little_endian 1.0\nelement vertex 5\nproperty float x\nproperty float y\nproperty float z\nend_header\n".to_string(),
        "ply\nformat binary_little_endian 1.0\nelement vertex 5\n".to_string(),
    ] {
        let mut d = h.into_bytes();
        d.extend_from_slice(&[0u8; 12]);
        let name = if d.starts_with(b"ply") { "h.ply" } else { "h.pcd" };
        assert!(pack(&d, &opts(name, &[])).is_err(), "{}", String::from_utf8_lossy(&d));
    }
}

#[test]
fn truncated_or_damaged_files_are_errors_not_panics() {
    let data = to_bytes(&synthetic(4, 400), None);
    let packed = pack(&data, &opts("s.bin", &[])).expect("encode");
    for cut in [1, 10, 40, packed.len() / 2, packed.len() - 1] {
        assert!(unpack(&packed[..cut]).is_err(), "cut at {cut}");
    }
    // Damage payload bytes and skip checksums: the codec itself must not panic.
    let o = DecodeOptions {
        verify: false,
        ..DecodeOptions::default()
    };
    let mut seed = 3u64;
    for _ in 0..200 {
        let mut bad = packed.clone();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let i = 60 + (seed >> 33) as usize % (packed.len() - 120);
        bad[i] ^= 1 << (seed % 8);
        let mut r: &[u8] = &bad;
        if let Ok(header) = read_header(&mut r, &o.limits) {
            let mut src = ChunkSource::stream(&mut r, header.len, o.limits, false);
            let mut out = Vec::new();
            let _ = LidarCodec.decode(&header, &mut src, &mut out, &o);
        }
    }
}

/// A minimal LAS 1.2 file, point format 1 (28-byte records), from a synthetic sweep at
/// 1 mm, with two bytes after the points (kept verbatim).
fn synthetic_las() -> Vec<u8> {
    let pts = synthetic(6, 400);
    let mut h = vec![0u8; 227];
    h[..4].copy_from_slice(b"LASF");
    h[24] = 1;
    h[25] = 2;
    h[94..96].copy_from_slice(&227u16.to_le_bytes());
    h[96..100].copy_from_slice(&227u32.to_le_bytes());
    h[104] = 1;
    h[105..107].copy_from_slice(&28u16.to_le_bytes());
    h[107..111].copy_from_slice(&(pts.len() as u32).to_le_bytes());
    for k in 0..3 {
        h[131 + 8 * k..139 + 8 * k].copy_from_slice(&0.001f64.to_le_bytes());
    }
    for (i, p) in pts.iter().enumerate() {
        for c in &p[..3] {
            h.extend_from_slice(&((f64::from(*c) * 1000.0).round() as i32).to_le_bytes());
        }
        h.extend_from_slice(&((p[3] * 255.0) as u16).to_le_bytes()); // intensity
        h.extend_from_slice(&[0x11, 2, (i % 7) as u8, 0]); // returns, class, angle, user
        h.extend_from_slice(&7u16.to_le_bytes()); // point source
        h.extend_from_slice(&(1000.0 + i as f64 * 1e-5).to_le_bytes()); // GPS time
    }
    h.extend_from_slice(b"\x00\x01");
    h
}

#[test]
fn las_round_trips_exactly() {
    let data = synthetic_las();
    assert_eq!(
        LidarCodec.sniff(&data[..512], Some("a.las")),
        Some(Confidence::MAGIC)
    );
    let packed = pack(&data, &opts("a.las", &[])).expect("encode");
    assert_eq!(unpack(&packed).expect("decode"), data);
    assert!(
        packed.len() < data.len() / 2,
        "{} of {}",
        packed.len(),
        data.len()
    );
    let Some(d) = shared("las_laz") else { return };
    for f in [
        "laspy_simple.las",
        "laspy_vegetation_1_3.las",
        "laspy_simple1_4.las",
        "autzen_trim.las",
    ] {
        let Ok(data) = std::fs::read(d.join(f)) else {
            continue;
        };
        let packed = pack(&data, &opts(f, &[])).expect("encode");
        assert!(
            unpack(&packed).expect("decode") == data,
            "{f}: LAS round trip differs"
        );
        eprintln!("{f}: {} -> {} bytes", data.len(), packed.len());
    }
}

#[test]
fn malformed_las_is_an_error() {
    let data = synthetic_las();
    assert!(pack(&data[..300], &opts("t.las", &[])).is_err());
    assert!(pack(&data[..100], &opts("t.las", &[])).is_err());
    let mut laz = data.clone();
    laz[104] |= 0x80;
    assert!(pack(&laz, &opts("t.laz", &[])).is_err());
    let mut bad = data.clone();
    bad[96..100].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(pack(&bad, &opts("t.las", &[])).is_err());
    let mut short = data;
    short[105..107].copy_from_slice(&4u16.to_le_bytes());
    assert!(pack(&short, &opts("t.las", &[])).is_err());
}

#[test]
fn sniffing_rejects_bin_files_that_are_not_point_clouds() {
    let sweep = to_bytes(&synthetic(4, 300), None);
    assert_eq!(
        LidarCodec.sniff(&sweep, Some("frame.bin")),
        Some(Confidence::EXTENSION)
    );
    assert_eq!(LidarCodec.sniff(&sweep, Some("frame.txt")), None);
    // Random bytes, small weights, a zip header, zeros: not LiDAR.
    let mut seed = 11u64;
    let random: Vec<u8> = (0..8192)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 56) as u8
        })
        .collect();
    let weights: Vec<u8> = (0..2048)
        .flat_map(|i| (((i % 17) as f32 - 8.0) * 0.01).to_le_bytes())
        .collect();
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend_from_slice(&weights);
    for head in [random, weights, zip, vec![0u8; 4096]] {
        assert_eq!(LidarCodec.sniff(&head, Some("model.bin")), None);
    }
}

#[test]
fn inputs_on_the_precision_grid_decode_exactly() {
    // KITTI raw sweeps store f32 values of whole millimetres: at 1 mm they come back
    // exactly. A synthetic sweep snapped to a 2 mm grid does too at 2 mm.
    if let Some(dir) = shared("kitti_raw_5consecutive_float32") {
        let data = std::fs::read(dir.join("0000000000.bin")).expect("read");
        let packed = pack(&data, &opts("0000000000.bin", &[])).expect("encode");
        let back = unpack(&packed).expect("decode");
        let a = format::parse(&data, Format::Kitti).expect("parse");
        let b = format::parse(&back, Format::Kitti).expect("parse decoded");
        assert_eq!(a.attrs, b.attrs);
        // Equal values (the sign of a zero coordinate is not kept).
        assert!(a.xyz == b.xyz, "exact at 1 mm");
    }
    let pts: Vec<[f32; 4]> = synthetic(16, 900)
        .into_iter()
        .map(|p| {
            let g = |v: f32| ((f64::from(v) / 0.002).round() * 0.002) as f32;
            [g(p[0]), g(p[1]), g(p[2]), p[3]]
        })
        .collect();
    let data = to_bytes(&pts, None);
    let packed = pack(&data, &opts("s.bin", &[("precision", "0.002")])).expect("encode");
    let back = unpack(&packed).expect("decode");
    let a = format::parse(&data, Format::Kitti).expect("parse");
    let b = format::parse(&back, Format::Kitti).expect("parse decoded");
    assert!(a.xyz == b.xyz && a.attrs == b.attrs, "exact at 2 mm");
    // Off the grid: still within the bound, not exact.
    let packed = pack(&data, &opts("s.bin", &[("precision", "0.003")])).expect("encode");
    let back = unpack(&packed).expect("decode");
    assert!(back != data, "not exact off the grid");
    check(
        &data,
        Format::Kitti,
        &opts("s.bin", &[("precision", "0.003")]),
        0.003,
    );
}
