//! Decoding to the format named by `-p format=` (the CLI passes the `-o` extension):
//! KITTI frames to PLY / PCD / LAS / LAZ / nuScenes, re-read with this crate's readers
//! and the `las` crate, points within P/2 of the input and attributes carried.

use std::path::Path;

use lcodec_core::container::{ChunkSink, ChunkSource, read_header};
use lcodec_core::{Codec, DecodeOptions, EncodeOptions, FORMAT_PARAM};
use lcodec_lidar::LidarCodec;
use lcodec_lidar::format::{self, Format};

const P: f64 = 0.001;

fn pack(data: &[u8], name: &str) -> Vec<u8> {
    let o = EncodeOptions {
        file_name: Some(name.to_string()),
        ..EncodeOptions::default()
    };
    let mut out = Vec::new();
    let mut sink = ChunkSink::new(&mut out, LidarCodec.info(), None);
    LidarCodec
        .encode(&mut &data[..], &mut sink, &o)
        .expect("encode");
    sink.finish(data.len() as u64, None).expect("finish");
    out
}

/// Decodes with `format=fmt`; returns the bytes and whether the codec reported a
/// conversion.
fn unpack_as(file: &[u8], fmt: &str) -> (Vec<u8>, bool) {
    let mut o = DecodeOptions::default();
    o.params.insert(FORMAT_PARAM.into(), fmt.into());
    let mut r: &[u8] = file;
    let header = read_header(&mut r, &o.limits).expect("header");
    let transformed = LidarCodec.decodes_transformed(&header, &o);
    let mut src = ChunkSource::stream(&mut r, header.len, o.limits, true);
    let mut out = Vec::new();
    LidarCodec
        .decode(&header, &mut src, &mut out, &o)
        .expect("decode");
    (out, transformed)
}

/// A real KITTI frame if present, else a synthetic sweep (x, y, z, reflectance).
fn kitti() -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/lidar/kitti_object_5frames_float32/000003.bin");
    if let Ok(d) = std::fs::read(&p) {
        return d;
    }
    eprintln!("{} not found: using a synthetic sweep", p.display());
    let mut v = Vec::new();
    for i in 0..40_000u32 {
        let ring = i / 2000;
        let az = f64::from(i % 2000) * std::f64::consts::TAU / 2000.0;
        let r = 6.0 + 5.0 * (az * 2.0).cos().abs() + f64::from(ring) * 0.7;
        for c in [
            (r * az.cos()) as f32,
            (r * az.sin()) as f32,
            (-1.5 + 0.03 * f64::from(ring)) as f32,
            (i % 100) as f32 / 100.0,
        ] {
            v.extend_from_slice(&c.to_le_bytes());
        }
    }
    v
}

fn within(a: [f32; 3], b: [f64; 3], i: usize) {
    for k in 0..3 {
        let d = (f64::from(a[k]) - b[k]).abs();
        assert!(
            d <= P / 2.0,
            "point {i} axis {k}: {} vs {} ({d})",
            a[k],
            b[k]
        );
    }
}

/// The PCD / PLY column named `name` of a parsed cloud.
fn column<'a>(c: &'a format::Cloud, header_names: &[&str], name: &str) -> &'a [u32] {
    let i = header_names
        .iter()
        .position(|n| *n == name)
        .expect("field present");
    &c.attrs[i - 3]
}

#[test]
fn kitti_decodes_to_ply_pcd_and_nuscenes() {
    let data = kitti();
    let orig = format::parse(&data, Format::Kitti).expect("parse");
    let packed = pack(&data, "scan.bin");
    for (ext, fmt) in [
        ("ply", Format::PlyBinary),
        ("pcd", Format::PcdBinary),
        ("nuscenes", Format::Nuscenes),
    ] {
        let (out, transformed) = unpack_as(&packed, ext);
        assert!(transformed, "{ext}: a conversion");
        let c = format::parse(&out, fmt).unwrap_or_else(|e| panic!("{ext}: re-read: {e}"));
        assert_eq!(c.format, fmt);
        assert_eq!(c.len(), orig.len(), "{ext}: point count and order");
        for (i, (a, b)) in c.xyz.iter().zip(&orig.xyz).enumerate() {
            within(*a, b.map(f64::from), i);
        }
        // Reflectance carried bit-exactly as the first attribute (named `intensity`).
        assert_eq!(c.attrs[0], orig.attrs[0], "{ext}: reflectance");
        if fmt == Format::PlyBinary {
            let h = String::from_utf8_lossy(&c.header).to_string();
            assert!(h.contains("property float intensity"), "{h}");
            assert_eq!(
                column(&c, &["x", "y", "z", "intensity"], "intensity"),
                &orig.attrs[0][..]
            );
        }
        if fmt == Format::Nuscenes {
            assert!(c.attrs[1].iter().all(|&w| w == 0), "no ring: zeros");
        }
    }
    // The stored format's own names keep the format: no conversion.
    for ext in ["bin", "kitti", "lc", "txt", "out"] {
        let (out, transformed) = unpack_as(&packed, ext);
        assert!(!transformed, "{ext}");
        assert_eq!(out.len(), data.len(), "{ext}");
    }
}

fn f64_at(d: &[u8], o: usize) -> f64 {
    f64::from_le_bytes(d[o..o + 8].try_into().expect("8 bytes"))
}

/// Checks a LAS / LAZ conversion of a KITTI frame with this crate's reader.
fn check_las(out: &[u8], orig: &format::Cloud, fmt: Format) {
    let c = format::parse(out, fmt).expect("re-read LAS");
    assert_eq!(c.format, fmt);
    assert_eq!(c.len(), orig.len());
    let scale = [f64_at(out, 131), f64_at(out, 139), f64_at(out, 147)];
    assert!(
        (scale[0] - P).abs() < P * 0.01,
        "scale {scale:?} matches the precision"
    );
    for (i, (q, b)) in c.ixyz.iter().zip(&orig.xyz).enumerate() {
        for k in 0..3 {
            let d = (f64::from(q[k]) * scale[k] - f64::from(b[k])).abs();
            assert!(d <= P / 2.0, "point {i} axis {k}: error {d}");
        }
    }
    // Point format 0 (20 bytes) plus the reflectance as a float extra byte column.
    assert_eq!(out[104] & 0x3f, 0);
    assert_eq!(c.record_bytes, 24);
    // Attribute words: [intensity u16 | flags | class], [scan angle | user | source id],
    // then the extra bytes (reflectance bits).
    assert_eq!(c.attrs[2], orig.attrs[0], "reflectance in extra bytes");
    for (w, r) in c.attrs[0].iter().zip(&orig.attrs[0]) {
        let want = (f64::from(f32::from_bits(*r)).min(1.0) * 65535.0).round() as u32;
        assert_eq!(w & 0xffff, want, "intensity = min(reflectance, 1) × 65535");
    }
}

#[test]
fn kitti_decodes_to_las_and_laz() {
    let data = kitti();
    let orig = format::parse(&data, Format::Kitti).expect("parse");
    let packed = pack(&data, "scan.bin");
    let (las, t) = unpack_as(&packed, "las");
    assert!(t);
    check_las(&las, &orig, Format::Las);
    let (laz, t) = unpack_as(&packed, "laz");
    assert!(t);
    assert!(laz.len() < las.len() / 2, "LAZ compresses");
    check_las(&laz, &orig, Format::Laz);

    // The `las` crate reads the LAS output: same points (its f64 coordinates are
    // `X · scale`), extra bytes kept.
    let mut reader = las::Reader::new(std::io::Cursor::new(las.clone())).expect("las reader");
    let header = reader.header().clone();
    assert_eq!(header.number_of_points(), orig.len() as u64);
    let mut n = 0;
    for (i, (p, b)) in reader.points().zip(&orig.xyz).enumerate() {
        let p = p.expect("las point");
        within([b[0], b[1], b[2]], [p.x, p.y, p.z], i);
        assert_eq!(p.extra_bytes, orig.attrs[0][i].to_le_bytes().to_vec());
        n += 1;
    }
    assert_eq!(n, orig.len());
    // A converted LAS file encodes again (LAS coordinates are coded exactly).
    let again = pack(&las, "scan.las");
    let (back, t) = unpack_as(&again, "las");
    assert!(!t);
    assert_eq!(back, las);
}

#[test]
fn nuscenes_and_pcd_conversions_carry_the_ring() {
    // A PCD with a ring field becomes nuScenes for `bin`; nuScenes to PCD keeps it.
    let n = 5000;
    let mut body = Vec::new();
    let mut xyz = Vec::new();
    for i in 0..n {
        let ring = (i / 250) as u32;
        let az = (i % 250) as f64 * std::f64::consts::TAU / 250.0;
        let r = 8.0 + 4.0 * (az * 3.0).sin().abs() + f64::from(ring) * 0.3;
        let p = [
            (r * az.cos()) as f32,
            (r * az.sin()) as f32,
            (-1.7 + 0.05 * f64::from(ring)) as f32,
        ];
        xyz.push(p);
        for c in p {
            body.extend_from_slice(&c.to_le_bytes());
        }
        body.extend_from_slice(&((i % 255) as f32).to_le_bytes());
        body.extend_from_slice(&ring.to_le_bytes());
    }
    let mut pcd = format!(
        "VERSION 0.7\nFIELDS x y z intensity ring\nSIZE 4 4 4 4 4\nTYPE F F F F U\nCOUNT 1 1 1 1 1\nWIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA binary\n"
    )
    .into_bytes();
    pcd.extend_from_slice(&body);
    let packed = pack(&pcd, "a.pcd");
    let (nus, t) = unpack_as(&packed, "bin");
    assert!(t);
    let c = format::parse(&nus, Format::Nuscenes).expect("nuScenes");
    assert_eq!(c.len(), n);
    for (i, (a, b)) in c.xyz.iter().zip(&xyz).enumerate() {
        within(*a, b.map(f64::from), i);
        assert_eq!(f32::from_bits(c.attrs[0][i]), (i % 255) as f32);
        assert_eq!(
            f32::from_bits(c.attrs[1][i]),
            (i / 250) as f32,
            "ring as float"
        );
    }
    // And back: nuScenes to PLY keeps intensity and ring as floats.
    let packed2 = pack(&nus, "b.pcd.bin");
    let (ply, t) = unpack_as(&packed2, "ply");
    assert!(t);
    let c2 = format::parse(&ply, Format::PlyBinary).expect("PLY");
    assert_eq!(c2.attrs, c.attrs);
    let h = String::from_utf8_lossy(&c2.header).to_string();
    assert!(h.contains("property float ring"), "{h}");
    // PCD to LAS: float intensity in extra bytes, integer ring as extra bytes too, and
    // as user data.
    let (las, t) = unpack_as(&packed, "las");
    assert!(t);
    let l = format::parse(&las, Format::Las).expect("LAS");
    assert_eq!(l.len(), n);
    for i in 0..n {
        assert_eq!(
            (l.attrs[1][i] >> 8) & 0xff,
            (i / 250) as u32,
            "user data = ring"
        );
        assert_eq!(l.attrs[2][i], ((i % 255) as f32).to_bits());
        assert_eq!(l.attrs[3][i], (i / 250) as u32);
    }
}

#[test]
fn laz_source_decodes_to_ply_with_las_fields() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/lidar/kitti_raw_2011_09_26_drive_0005_laz/0000000000.laz");
    let Ok(data) = std::fs::read(&p) else {
        eprintln!("skipping: {} not found", p.display());
        return;
    };
    let orig = format::parse(&data, Format::Laz).expect("parse LAZ");
    let packed = pack(&data, "f.laz");
    let (ply, t) = unpack_as(&packed, "ply");
    assert!(t);
    let c = format::parse(&ply, Format::PlyBinary).expect("PLY");
    assert_eq!(c.len(), orig.len());
    let h = String::from_utf8_lossy(&c.header).to_string();
    for f in [
        "intensity",
        "classification",
        "user_data",
        "red",
        "green",
        "blue",
    ] {
        assert!(h.contains(&format!("property uint {f}\n")), "{f} in {h}");
    }
    let scale = f64_at(&data, 131);
    for (i, (a, q)) in c.xyz.iter().zip(&orig.ixyz).enumerate() {
        for k in 0..3 {
            let want = (f64::from(q[k]) * scale) as f32;
            assert_eq!(a[k], want, "point {i}");
        }
    }
    // green (KITTI reflectance × 65535) comes from bytes 30..32 of format-3 records.
    let green = &c.attrs[4];
    for (i, g) in green.iter().enumerate().take(1000) {
        assert_eq!(*g, orig.attrs[4][i] >> 16, "green of point {i}");
    }
    // LAZ to LAS: the same points, uncompressed, readable by the `las` crate.
    let (las, t) = unpack_as(&packed, "las");
    assert!(t);
    assert_eq!(las[104], data[104] & 0x3f, "compression bits cleared");
    let l = format::parse(&las, Format::Las).expect("LAS");
    assert_eq!(l.format, Format::Las);
    assert_eq!(
        (l.ixyz.clone(), l.attrs.clone()),
        (orig.ixyz.clone(), orig.attrs.clone())
    );
    let mut reader = las::Reader::new(std::io::Cursor::new(las)).expect("las reader");
    assert_eq!(reader.header().number_of_points(), orig.len() as u64);
    assert_eq!(reader.points().filter(|p| p.is_ok()).count(), orig.len());
}

#[test]
fn las_files_decode_to_laz_and_back() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/lidar/las_laz");
    for f in [
        "laspy_simple.las",
        "laspy_simple1_4.las",
        "laspy_vegetation_1_3.las",
    ] {
        let Ok(data) = std::fs::read(dir.join(f)) else {
            eprintln!("skipping: {f} not found");
            continue;
        };
        let orig = format::parse(&data, Format::Las).expect("parse LAS");
        let packed = pack(&data, f);
        let (laz, t) = unpack_as(&packed, "laz");
        assert!(t, "{f}");
        assert!(laz.len() < data.len(), "{f}: LAZ is smaller");
        let z = format::parse(&laz, Format::Laz).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(z.format, Format::Laz);
        assert_eq!(z.ixyz, orig.ixyz, "{f}");
        assert_eq!(z.attrs, orig.attrs, "{f}");
        // And the LAZ back to LAS gives the original file's points and header fields.
        let packed2 = pack(&laz, "x.laz");
        let (las, t) = unpack_as(&packed2, "las");
        assert!(t);
        let back = format::parse(&las, Format::Las).expect("LAS again");
        assert_eq!(back.ixyz, orig.ixyz, "{f}");
        assert_eq!(back.attrs, orig.attrs, "{f}");
        assert_eq!(las[..94], data[..94], "{f}: header start unchanged");
        if data.len() == las.len() {
            assert_eq!(las, data, "{f}: byte-identical");
        }
    }
}

#[test]
fn ascii_pcd_decodes_to_ply_with_its_columns() {
    let n = 3000;
    let mut s = format!(
        "VERSION 0.7\nFIELDS x y z intensity ring\nSIZE 4 4 4 4 2\nTYPE F F F F U\nCOUNT 1 1 1 1 1\nWIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA ascii\n"
    );
    let mut xyz = Vec::new();
    for i in 0..n {
        let ring = i / 300;
        let az = (i % 300) as f64 * std::f64::consts::TAU / 300.0;
        let r = 7.0 + 3.0 * (az * 2.0).sin().abs() + ring as f64 * 0.4;
        let p = [
            (r * az.cos()) as f32,
            (r * az.sin()) as f32,
            (-1.6 + 0.04 * ring as f64) as f32,
        ];
        xyz.push(p);
        s += &format!(
            "{:.6} {:.6} {:.6} {} {}\n",
            p[0],
            p[1],
            p[2],
            (i % 97) as f32 / 4.0,
            ring
        );
    }
    let data = s.into_bytes();
    let orig = format::parse(&data, Format::PcdAscii).expect("parse");
    let packed = pack(&data, "a.pcd");
    let (ply, t) = unpack_as(&packed, "ply");
    assert!(t);
    let c = format::parse(&ply, Format::PlyBinary).expect("PLY");
    let h = String::from_utf8_lossy(&c.header).to_string();
    assert!(
        h.contains("property float intensity\nproperty uint ring\n"),
        "{h}"
    );
    assert_eq!(c.len(), n);
    for (i, (a, b)) in c.xyz.iter().zip(&orig.xyz).enumerate() {
        within(*a, b.map(f64::from), i);
        assert_eq!(f32::from_bits(c.attrs[0][i]), (i % 97) as f32 / 4.0);
        assert_eq!(c.attrs[1][i], (i / 300) as u32);
    }
    // And to KITTI: x, y, z, intensity.
    let (bin, t) = unpack_as(&packed, "kitti");
    assert!(t);
    let k = format::parse(&bin, Format::Kitti).expect("KITTI");
    assert_eq!(k.attrs[0], c.attrs[0]);
}
