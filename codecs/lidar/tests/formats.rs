//! Round trips of the formats added for issue 8: ASCII PCD, ASCII PLY, PCD
//! `binary_compressed` (LZF) and LAZ; error bound on x, y, z, exact other fields, header
//! bytes kept, and errors (never panics) on malformed or truncated input.

use std::path::{Path, PathBuf};

use lcodec_core::container::{ChunkSink, ChunkSource, read_header};
use lcodec_core::{Codec, DecodeOptions, EncodeOptions};
use lcodec_lidar::format::{self, Cloud, Format};
use lcodec_lidar::{LidarCodec, lzf};

fn opts(name: &str) -> EncodeOptions {
    EncodeOptions {
        file_name: Some(name.to_string()),
        ..EncodeOptions::default()
    }
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

/// Round-trips `data` (file name `name`), checks format, header, trailer (the ASCII
/// skeleton: every non-xyz byte), attributes and the error bound; returns the decoded
/// file and the packed size.
fn check(data: &[u8], name: &str, want: Format) -> (Vec<u8>, usize) {
    let packed = pack(data, &opts(name)).expect("encode");
    let back = unpack(&packed).expect("decode");
    let a = format::parse(data, want).expect("parse original");
    let b = format::parse(&back, want).expect("parse decoded");
    assert_eq!(a.format, want);
    assert_eq!(b.format, want);
    assert_eq!(a.header, b.header, "header bytes");
    assert_eq!(a.trailer, b.trailer, "trailer / ASCII skeleton");
    assert_eq!(a.attrs, b.attrs, "attributes must be exact");
    assert_eq!(a.ixyz, b.ixyz, "integer coordinates must be exact");
    assert_eq!(a.len(), b.len());
    for (i, (p, q)) in a.xyz.iter().zip(&b.xyz).enumerate() {
        for k in 0..3 {
            let d = (f64::from(p[k]) - f64::from(q[k])).abs();
            assert!(d <= 0.0005, "point {i} axis {k}: {} vs {}", p[k], q[k]);
        }
    }
    (back, packed.len())
}

/// A small spinning-LiDAR-like sweep: x, y, z, intensity, ring.
fn sweep(n: usize) -> Vec<([f32; 3], f32, u16)> {
    (0..n)
        .map(|i| {
            let ring = (i / 250) as u16;
            let az = (i % 250) as f64 * std::f64::consts::TAU / 250.0;
            let r = 8.0 + 4.0 * (az * 3.0).sin().abs() + ring as f64 * 0.3;
            let p = [
                (r * az.cos()) as f32,
                (r * az.sin()) as f32,
                (-1.7 + 0.05 * ring as f64) as f32,
            ];
            (p, ((i * 37) % 255) as f32 / 7.0, ring)
        })
        .collect()
}

fn pcd_ascii(n: usize) -> Vec<u8> {
    let pts = sweep(n);
    let mut s = format!(
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z intensity ring\n\
         SIZE 4 4 4 4 2\nTYPE F F F F U\nCOUNT 1 1 1 1 1\nWIDTH {}\nHEIGHT 1\n\
         VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {}\nDATA ascii\n",
        n + 1,
        n + 1
    );
    for (i, (p, inten, ring)) in pts.iter().enumerate() {
        s += &format!("{:.6} {:.6} {:.6} {} {}\n", p[0], p[1], p[2], inten, ring);
        if i == 5 {
            s += "nan nan nan 0 0\n"; // an invalid return of an organized cloud
        }
    }
    s.into_bytes()
}

#[test]
fn ascii_pcd_round_trips_with_exact_other_columns() {
    let data = pcd_ascii(2000);
    assert!(LidarCodec.sniff(&data, Some("a.pcd")).is_some());
    let (back, size) = check(&data, "a.pcd", Format::PcdAscii);
    let text = String::from_utf8(back).expect("text");
    let orig = String::from_utf8(data.clone()).expect("text");
    assert_eq!(text.lines().count(), orig.lines().count());
    for (a, b) in orig.lines().zip(text.lines()) {
        let ta: Vec<&str> = a.split_whitespace().collect();
        let tb: Vec<&str> = b.split_whitespace().collect();
        if a.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == 'n') {
            assert_eq!(ta[3..], tb[3..], "non-xyz tokens kept exactly");
        } else {
            assert_eq!(a, b, "header line");
        }
    }
    assert!(text.contains("\nnan nan nan 0 0\n"));
    eprintln!("ascii pcd: {} -> {size} bytes", data.len());
    assert!(size * 3 < data.len());
}

#[test]
fn ascii_ply_round_trips_with_exact_other_columns() {
    let pts = sweep(1500);
    let mut s = format!(
        "ply\r\nformat ascii 1.0\r\ncomment made by a test\r\nelement vertex {}\r\n\
         property float x\r\nproperty float y\r\nproperty float z\r\nproperty uchar intensity\r\n\
         property double time\r\nend_header\r\n",
        pts.len()
    );
    for (i, (p, _, ring)) in pts.iter().enumerate() {
        s += &format!(
            "{} {}  {}\t{} {:.9}\r\n",
            p[0],
            p[1],
            p[2],
            ring * 3,
            i as f64 * 1e-5
        );
    }
    let data = s.into_bytes();
    assert!(LidarCodec.sniff(&data, Some("a.ply")).is_some());
    let (back, _) = check(&data, "a.ply", Format::PlyAscii);
    let back = String::from_utf8(back).expect("text");
    assert!(back.contains("\r\n"));
    // A tiny file with an LF header.
    let one = b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n1.5 -2.25 3\n0.125 0 7.75\n";
    let (back, _) = check(one, "b.ply", Format::PlyAscii);
    let b = format::parse(&back, Format::PlyAscii).expect("parse");
    for (p, q) in b
        .xyz
        .iter()
        .flatten()
        .zip([1.5f32, -2.25, 3.0, 0.125, 0.0, 7.75])
    {
        assert!((p - q).abs() <= 0.0005, "{p} vs {q}");
    }
}

#[test]
fn malformed_ascii_files_are_errors() {
    let good = pcd_ascii(300);
    let text = String::from_utf8(good.clone()).expect("text");
    let cases = [
        text.replace("POINTS 301", "POINTS 400"), // fewer lines than points
        text.replace("WIDTH 301", "WIDTH 3"),     // width × height ≠ points
        text.replace("VIEWPOINT 0 0 0 1 0 0 0", "VIEWPOINT 0 0"),
        text.replace("FIELDS x y z", "FIELDS y x z"),
        text.replace("COUNT 1 1 1 1 1", "COUNT 1 1 1 1 2"), // 6 values expected per line
        text.replace("POINTS 301", "POINTS many"),
        text.replace("DATA ascii", "DATA text"),
    ];
    for (k, c) in cases.iter().enumerate() {
        assert!(pack(c.as_bytes(), &opts("m.pcd")).is_err(), "case {k}");
    }
    let hdr = text.find("DATA ascii\n").expect("data") + 11;
    let mut extra = text.clone();
    extra.insert_str(hdr, "1 2 3 4 5 6\n"); // a line with an extra value
    assert!(pack(extra.as_bytes(), &opts("m.pcd")).is_err());
    for cut in [10, hdr - 3, hdr + 20, good.len() / 2] {
        assert!(pack(&good[..cut], &opts("t.pcd")).is_err(), "cut {cut}");
    }
    let ply = "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nend_header\n1 2 3\n4 5 6\n";
    assert!(pack(ply.as_bytes(), &opts("t.ply")).is_err());
    assert!(pack(&ply.as_bytes()[..40], &opts("t.ply")).is_err());
    let ply2 = ply.replace("4 5 6", "4 5 6\n7 8");
    assert!(pack(ply2.as_bytes(), &opts("t.ply")).is_err());
    let ply3 = ply.replace("format ascii 1.0", "format ascii 2.0");
    assert!(pack(ply3.as_bytes(), &opts("t.ply")).is_err());
    // A damaged ASCII skeleton (checksums off) is an error, not a panic.
    let packed = pack(&good, &opts("a.pcd")).expect("encode");
    let o = DecodeOptions {
        verify: false,
        ..DecodeOptions::default()
    };
    for i in (20..packed.len()).step_by(7) {
        let mut bad = packed.clone();
        bad[i] ^= 0x24;
        let mut r: &[u8] = &bad;
        if let Ok(h) = read_header(&mut r, &o.limits) {
            let mut src = ChunkSource::stream(&mut r, h.len, o.limits, false);
            let _ = LidarCodec.decode(&h, &mut src, &mut Vec::new(), &o);
        }
    }
}

fn pcd_compressed(n: usize) -> Vec<u8> {
    let pts = sweep(n);
    let mut d = format!(
        "# .PCD v0.7\nVERSION 0.7\nFIELDS x y z intensity ring\nSIZE 4 4 4 4 4\nTYPE F F F F U\n\
         COUNT 1 1 1 1 1\nWIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA binary_compressed\n"
    )
    .into_bytes();
    let mut fm = Vec::new();
    for k in 0..3 {
        for p in &pts {
            fm.extend_from_slice(&p.0[k].to_le_bytes());
        }
    }
    for p in &pts {
        fm.extend_from_slice(&p.1.to_le_bytes());
    }
    for p in &pts {
        fm.extend_from_slice(&u32::from(p.2).to_le_bytes());
    }
    let c = lzf::compress(&fm);
    d.extend_from_slice(&(c.len() as u32).to_le_bytes());
    d.extend_from_slice(&(fm.len() as u32).to_le_bytes());
    d.extend_from_slice(&c);
    d
}

#[test]
fn compressed_pcd_round_trips() {
    let data = pcd_compressed(3000);
    assert!(LidarCodec.sniff(&data, Some("c.pcd")).is_some());
    let (back, size) = check(&data, "c.pcd", Format::PcdCompressed);
    let a = format::parse(&data, Format::PcdBinary).expect("parse");
    assert_eq!(a.ring_column, Some(1));
    eprintln!(
        "binary_compressed pcd: {} -> {size} bytes (decoded {})",
        data.len(),
        back.len()
    );
    // Hand-made LZF: a literal run and an overlapping back-reference.
    let mut h = b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 2\nHEIGHT 1\nPOINTS 2\nDATA binary_compressed\n".to_vec();
    let stream = [3u8, 0, 0, 0x80, 0x3f, 7 << 5, 11, 3]; // 1.0f32, then 20 bytes copied from 4 back
    h.extend_from_slice(&(stream.len() as u32).to_le_bytes());
    h.extend_from_slice(&24u32.to_le_bytes());
    h.extend_from_slice(&stream);
    let c: Cloud = format::parse(&h, Format::PcdBinary).expect("parse hand-made");
    assert_eq!(c.xyz, vec![[1.0; 3]; 2]);
    check(&h, "h.pcd", Format::PcdCompressed);
}

#[test]
fn malformed_compressed_pcd_is_an_error() {
    let data = pcd_compressed(500);
    let hdr = data
        .windows(22)
        .position(|w| w == b"DATA binary_compressed")
        .expect("hdr")
        + 23;
    for cut in [hdr + 3, hdr + 8, hdr + 100, data.len() - 1] {
        assert!(pack(&data[..cut], &opts("t.pcd")).is_err(), "cut {cut}");
    }
    let mut bad = data.clone();
    bad[hdr + 4..hdr + 8].copy_from_slice(&1234u32.to_le_bytes()); // raw size ≠ points
    assert!(pack(&bad, &opts("t.pcd")).is_err());
    let mut bad = data.clone();
    bad[hdr..hdr + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(pack(&bad, &opts("t.pcd")).is_err());
    for i in (hdr + 8..data.len()).step_by(5) {
        let mut bad = data.clone();
        bad[i] ^= 0xa5;
        let _ = pack(&bad, &opts("t.pcd")); // must not panic
    }
}

fn shared(file: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/lidar/las_laz")
        .join(file);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipping: {} not found", p.display());
        None
    }
}

#[test]
fn laz_round_trips_to_identical_points() {
    let Some(p) = shared("laspy_simple.laz") else {
        return;
    };
    let data = std::fs::read(p).expect("read");
    assert!(LidarCodec.sniff(&data[..4096], Some("s.laz")).is_some());
    let (back, size) = check(&data, "s.laz", Format::Laz);
    // Same points as the uncompressed original.
    if let Some(las) = shared("laspy_simple.las") {
        let las = format::parse(&std::fs::read(las).expect("read"), Format::Las).expect("las");
        let b = format::parse(&back, Format::Las).expect("laz");
        assert_eq!(las.ixyz, b.ixyz);
        assert_eq!(las.attrs, b.attrs);
    }
    let n = format::parse(&data, Format::Las).expect("parse").len();
    eprintln!(
        "laspy_simple.laz: {n} points, LAZ {} bytes ({:.2} bits/point), lcodec {size} bytes ({:.2} bits/point)",
        data.len(),
        data.len() as f64 * 8.0 / n as f64,
        size as f64 * 8.0 / n as f64
    );
}

#[test]
fn malformed_laz_is_an_error() {
    let Some(p) = shared("laspy_simple.laz") else {
        return;
    };
    let data = std::fs::read(p).expect("read");
    let offset = u32::from_le_bytes(data[96..100].try_into().expect("4")) as usize;
    for cut in [
        100,
        300,
        offset - 10,
        offset + 4,
        offset + 500,
        data.len() / 2,
    ] {
        assert!(pack(&data[..cut], &opts("t.laz")).is_err(), "cut {cut}");
    }
    let mut bad = data.clone();
    bad[105..107].copy_from_slice(&30u16.to_le_bytes()); // record length ≠ LASzip items
    assert!(pack(&bad, &opts("t.laz")).is_err());
    for i in (offset + 8..data.len()).step_by(997) {
        let mut bad = data.clone();
        bad[i] ^= 0xff;
        let _ = pack(&bad, &opts("t.laz")); // must not panic
    }
}

/// Bits per point on autzen_trim.laz against the input LAZ, same run. Slow in debug
/// builds: `cargo test --release -p lcodec-lidar --test formats -- --ignored --nocapture`.
#[test]
#[ignore]
fn autzen_laz_bits_per_point() {
    let Some(p) = shared("autzen_trim.laz") else {
        return;
    };
    let data = std::fs::read(p).expect("read");
    let t = std::time::Instant::now();
    let (_, size) = check(&data, "autzen_trim.laz", Format::Laz);
    let cloud = format::parse(&data, Format::Las).expect("parse");
    let n = cloud.len();
    let (mut geom, mut attr) = (0, 0);
    for a in (0..n).step_by(lcodec_lidar::DEFAULT_CHUNK_POINTS) {
        let b = (a + lcodec_lidar::DEFAULT_CHUNK_POINTS).min(n);
        let (_, st) = lcodec_lidar::encode_chunk(&cloud, a, b, 0.001).expect("chunk");
        geom += st.geometry_bytes;
        attr += st.attribute_bytes;
    }
    eprintln!(
        "autzen_trim.laz: geometry {:.2} bits/point, other fields {:.2} bits/point ({} bytes of {} per record)",
        geom as f64 * 8.0 / n as f64,
        attr as f64 * 8.0 / n as f64,
        cloud.record_bytes - 12,
        cloud.record_bytes
    );
    for (k, col) in cloud.attrs.iter().enumerate() {
        let whole = lcodec_lidar::attr::encode(col).expect("attr").len();
        let bytes: Vec<usize> = (0..4)
            .map(|b| {
                let part: Vec<u32> = col.iter().map(|w| (w >> (8 * b)) & 0xff).collect();
                lcodec_lidar::attr::encode(&part).expect("attr").len()
            })
            .collect();
        eprintln!(
            "  tail word {k}: {:.2} bits/point as words, byte columns {:?} bits/point",
            whole as f64 * 8.0 / n as f64,
            bytes
                .iter()
                .map(|&b| (b as f64 * 8.0 / n as f64 * 100.0).round() / 100.0)
                .collect::<Vec<_>>()
        );
    }
    eprintln!(
        "autzen_trim.laz: {n} points, LAZ {} bytes = {:.2} bits/point, lcodec {size} bytes = {:.2} bits/point ({:.3}× LAZ), round trip + checks {:.2} s",
        data.len(),
        data.len() as f64 * 8.0 / n as f64,
        size as f64 * 8.0 / n as f64,
        size as f64 / data.len() as f64,
        t.elapsed().as_secs_f64()
    );
}
