//! Decoding to another point-cloud format (`-p format=NAME`, which the CLI sets to the
//! `-o` file's extension).
//!
//! **Which format.** `ply`, `pcd`, `las`, `laz`, `kitti`, `nuscenes` (and the names of
//! [`Format::from_name`]) select a format family; when the stored file is already of that
//! family (say a `DATA ascii` PCD decoded to `.pcd`, or a KITTI sweep to `.bin`) the
//! stored format is written unchanged. `bin` is ambiguous (KITTI `.bin` and nuScenes
//! `.pcd.bin` both end in it): KITTI and nuScenes files keep their layout; other formats
//! become nuScenes (5 floats) when they have a ring field, KITTI (4 floats) otherwise.
//! `-p format=kitti` / `nuscenes` choose explicitly. Other names (`lc`, `txt`, `out`,
//! ...) keep the stored format. Converted output is always the binary variant: PCD
//! `DATA binary`, PLY `binary_little_endian`, LAS 1.2 / LAZ.
//!
//! **Coordinates.** Float outputs get the same `f32` coordinates as a normal decode
//! (within `P/2` of the input). LAS / LAZ outputs store the coded integers with the
//! codec's quantization step as scale (`P` minus one `f32` ulp of the largest coordinate,
//! e.g. `0.00099999237` at 1 mm) and offset 0, so `X · scale` is within `P/2` of the
//! input as well. (Files whose chunks were quantized with different steps, only written
//! by versions before 2, are requantized to the first chunk's step: up to `P` then.)
//! From LAS / LAZ sources, float outputs get `X · scale + offset` rounded to `f32`.
//!
//! **Attributes.** Every 4-byte field of the source (KITTI reflectance, nuScenes
//! intensity and ring, PCD / PLY fields) becomes a field of PCD / PLY outputs, with its
//! name and type (`F` float, `I` int, `U` uint); KITTI's reflectance is named
//! `intensity`. KITTI outputs keep `intensity` (aliases `reflectance`, `remission`, `i`),
//! nuScenes outputs `intensity` and `ring` (aliases `laser_id`, `ring_index`), as `f32`
//! values; missing ones are written as 0. LAS / LAZ outputs (point format 0, or 2 with
//! `red`/`green`/`blue`) put integer `intensity` (≤ 65535), `classification` (≤ 31) and
//! RGB in the standard fields; every other field goes into LAS extra bytes (an Extra
//! Bytes VLR, types float / int32 / uint32, bit-exact), and the standard fields get a
//! copy where meaningful: float intensity `v` as `round(65535 min(v, 1))` when all values
//! are in `[0, 2]` (KITTI reflectance reaches 1.19), else `round(v)` clamped to `0..=65535`; ring as `user_data` when integral in
//! `0..=255`. From LAS / LAZ sources, intensity, classification, user data and RGB are
//! carried (as `U` fields); return numbers, flags, scan angle, point source id, GPS
//! time and extra bytes are dropped. From ASCII PCD / PLY sources the other columns are
//! parsed by their declared type (floats and doubles as `f32`, signed integers as `I`,
//! unsigned as `U`); PCD fields with `COUNT` above 1, and columns with a token that does
//! not parse, are dropped. LAS ↔ LAZ converts
//! losslessly: the same header, VLRs and point records, with the LASzip VLR removed
//! (LAZ → LAS) or added for the point format (LAS → LAZ) and the header's point format
//! bits, point-data offset, VLR count and EVLR offset adjusted.

use lcodec_core::{Error, Result};

use crate::format::{Format, u16_at, u32_at, write_int_records};

/// The format a decode with `format=name` writes, when it differs from the stored
/// `stored` format; `None` keeps the stored format. `has_ring`: the source has a ring
/// field.
pub fn target_for(stored: Format, has_ring: bool, name: &str) -> Option<Format> {
    let name = name.trim().to_ascii_lowercase();
    let family = |f: Format| match f {
        Format::Kitti | Format::Nuscenes => 0,
        Format::PcdBinary | Format::PcdAscii | Format::PcdCompressed => 1,
        Format::PlyBinary | Format::PlyAscii => 2,
        Format::Las | Format::Laz => 3,
    };
    let want = match name.as_str() {
        "bin" => {
            if family(stored) == 0 {
                return None;
            }
            if has_ring {
                Format::Nuscenes
            } else {
                Format::Kitti
            }
        }
        "kitti" | "nuscenes" => {
            let f = Format::from_name(&name)?;
            return (f != stored).then_some(f);
        }
        n => Format::from_name(n)?,
    };
    if family(want) == family(stored) {
        // LAS and LAZ are one family but different files.
        return match (stored, want) {
            (Format::Las, Format::Laz) => Some(Format::Laz),
            (Format::Laz, Format::Las) => Some(Format::Las),
            _ => None,
        };
    }
    Some(match want {
        Format::PcdAscii | Format::PcdCompressed => Format::PcdBinary,
        Format::PlyAscii => Format::PlyBinary,
        f => f,
    })
}

/// Field types of 4-byte fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    F32,
    I32,
    U32,
}

impl Ty {
    fn value(self, w: u32) -> f64 {
        match self {
            Ty::F32 => f64::from(f32::from_bits(w)),
            Ty::I32 => f64::from(w as i32),
            Ty::U32 => f64::from(w),
        }
    }
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    ty: Ty,
    col: Vec<u32>,
}

/// The decoded cloud in a format-neutral form.
struct Neutral {
    xyz: Vec<[f32; 3]>,
    /// Integer coordinates with their scale and offset per axis.
    ints: Vec<[i32; 3]>,
    scale: [f64; 3],
    offset: [f64; 3],
    fields: Vec<Field>,
}

/// What the decoder collected: per chunk its step and integer points, then the
/// attribute columns of the whole file.
pub(crate) struct Collected {
    pub chunks: Vec<(f64, Vec<[i32; 3]>)>,
    pub attrs: Vec<Vec<u32>>,
    pub record_bytes: usize,
    /// The stored trailer (LAS: bytes after the points, LAZ: EVLRs; ASCII formats: the
    /// decompressed skeleton).
    pub trailer: Vec<u8>,
}

fn header_lines(h: &[u8]) -> Vec<Vec<String>> {
    String::from_utf8_lossy(h)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Names and types of the attribute columns of a stored file.
fn source_fields(stored: Format, header: &[u8], columns: usize) -> Result<Vec<(String, Ty)>> {
    let bad = |m: &str| Error::malformed(0, format!("lidar: stored header: {m}"));
    let v: Vec<(String, Ty)> = match stored {
        Format::Kitti => vec![("intensity".into(), Ty::F32)],
        Format::Nuscenes => vec![("intensity".into(), Ty::F32), ("ring".into(), Ty::F32)],
        Format::PcdBinary | Format::PcdCompressed => {
            let lines = header_lines(header);
            let find = |k: &str| {
                lines
                    .iter()
                    .find(|l| l.first().map(String::as_str) == Some(k))
            };
            let names = find("FIELDS").ok_or_else(|| bad("no FIELDS"))?;
            let types = find("TYPE");
            names
                .iter()
                .enumerate()
                .skip(4)
                .map(|(i, n)| {
                    let t = match types.and_then(|t| t.get(i)).map(String::as_str) {
                        Some("I") => Ty::I32,
                        Some("U") => Ty::U32,
                        _ => Ty::F32,
                    };
                    (n.clone(), t)
                })
                .collect()
        }
        Format::PlyBinary => header_lines(header)
            .iter()
            .filter(|l| l.len() == 3 && l[0] == "property")
            .skip(3)
            .map(|l| {
                let t = match l[1].as_str() {
                    "int" | "int32" => Ty::I32,
                    "uint" | "uint32" => Ty::U32,
                    _ => Ty::F32,
                };
                (l[2].clone(), t)
            })
            .collect(),
        Format::PcdAscii | Format::PlyAscii | Format::Las | Format::Laz => Vec::new(),
    };
    if !matches!(
        stored,
        Format::PcdAscii | Format::PlyAscii | Format::Las | Format::Laz
    ) && v.len() != columns
    {
        return Err(bad("field list does not match the stored columns"));
    }
    Ok(v)
}

fn f64_at(d: &[u8], o: usize) -> f64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[o..o + 8]);
    f64::from_le_bytes(b)
}

/// LAS fields carried to other formats: (name, byte offset, bytes) by point format.
fn las_fields(pf: u8) -> Vec<(&'static str, usize, usize)> {
    let mut v = vec![("intensity", 12, 2)];
    if pf <= 5 {
        v.push(("classification", 15, 1));
        v.push(("user_data", 17, 1));
        let rgb = match pf {
            2 => Some(20),
            3 | 5 => Some(28),
            _ => None,
        };
        if let Some(o) = rgb {
            v.extend([("red", o, 2), ("green", o + 2, 2), ("blue", o + 4, 2)]);
        }
    } else {
        v.push(("classification", 16, 1));
        v.push(("user_data", 17, 1));
        if matches!(pf, 7 | 8 | 10) {
            v.extend([("red", 30, 2), ("green", 32, 2), ("blue", 34, 2)]);
        }
    }
    v
}

fn neutral(stored: Format, header: &[u8], c: Collected) -> Result<Neutral> {
    let n: usize = c.chunks.iter().map(|(_, q)| q.len()).sum();
    if matches!(stored, Format::Las | Format::Laz) {
        if header.len() < 227 {
            return Err(Error::malformed(0, "lidar: stored LAS header"));
        }
        let scale = [
            f64_at(header, 131),
            f64_at(header, 139),
            f64_at(header, 147),
        ];
        let offset = [
            f64_at(header, 155),
            f64_at(header, 163),
            f64_at(header, 171),
        ];
        let pf = header[104] & 0x3f;
        let rec = usize::from(u16_at(header, 105)).max(12);
        let mut ints = Vec::with_capacity(n);
        for (_, q) in &c.chunks {
            ints.extend_from_slice(q);
        }
        let mut recs = Vec::new();
        write_int_records(&ints, &c.attrs, c.record_bytes, &mut recs);
        let rb = c.record_bytes.max(12);
        let fields = las_fields(pf)
            .into_iter()
            .filter(|&(_, o, b)| o + b <= rec.min(rb))
            .map(|(name, o, b)| Field {
                name: name.into(),
                ty: Ty::U32,
                col: recs
                    .chunks_exact(rb)
                    .map(|r| {
                        if b == 1 {
                            u32::from(r[o])
                        } else {
                            u32::from(u16_at(r, o))
                        }
                    })
                    .collect(),
            })
            .collect();
        let xyz = ints
            .iter()
            .map(|p| [0, 1, 2].map(|k| (f64::from(p[k]) * scale[k] + offset[k]) as f32))
            .collect();
        return Ok(Neutral {
            xyz,
            ints,
            scale,
            offset,
            fields,
        });
    }
    let step = c.chunks.first().map_or(0.001, |(s, _)| *s);
    let mut ints = Vec::with_capacity(n);
    let mut xyz = Vec::with_capacity(n);
    for (s, q) in &c.chunks {
        for p in q {
            xyz.push(p.map(|v| crate::dequantize(v, *s)));
        }
        if *s == step {
            ints.extend_from_slice(q);
        } else {
            let r = *s / step;
            ints.extend(
                q.iter()
                    .map(|p| p.map(|v| (f64::from(v) * r).round() as i32)),
            );
        }
    }
    let fields = if matches!(stored, Format::PcdAscii | Format::PlyAscii) {
        ascii_fields(stored, header, &c.trailer, &xyz)?
    } else {
        let names = source_fields(stored, header, c.attrs.len())?;
        names
            .into_iter()
            .zip(c.attrs)
            .map(|((name, ty), col)| Field { name, ty, col })
            .collect()
    };
    Ok(Neutral {
        xyz,
        ints,
        scale: [step; 3],
        offset: [0.0; 3],
        fields,
    })
}

/// Names and types of the columns after x, y, z of an ASCII PCD / PLY header; `None`
/// for a column that is not converted (PCD `COUNT` above 1: the rest is dropped too, as
/// its tokens cannot be told apart).
fn ascii_specs(stored: Format, header: &[u8]) -> Vec<Option<(String, Ty)>> {
    let lines = header_lines(header);
    if stored == Format::PcdAscii {
        let find = |k: &str| {
            lines
                .iter()
                .find(|l| l.first().map(String::as_str) == Some(k))
                .cloned()
                .unwrap_or_default()
        };
        let (names, types, counts) = (find("FIELDS"), find("TYPE"), find("COUNT"));
        let mut v = Vec::new();
        for (i, n) in names.iter().enumerate().skip(4) {
            if counts.get(i).is_some_and(|c| c != "1") {
                break;
            }
            let t = match types.get(i).map(String::as_str) {
                Some("I") => Ty::I32,
                Some("U") => Ty::U32,
                _ => Ty::F32,
            };
            v.push(Some((n.clone(), t)));
        }
        return v;
    }
    lines
        .iter()
        .filter(|l| l.len() == 3 && l[0] == "property")
        .skip(3)
        .map(|l| {
            let t = match l[1].as_str() {
                "char" | "int8" | "short" | "int16" | "int" | "int32" => Ty::I32,
                "uchar" | "uint8" | "ushort" | "uint16" | "uint" | "uint32" => Ty::U32,
                _ => Ty::F32,
            };
            Some((l[2].clone(), t))
        })
        .collect()
}

/// The non-coordinate columns of an ASCII cloud: its body rebuilt from the skeleton,
/// then parsed line by line.
fn ascii_fields(
    stored: Format,
    header: &[u8],
    skeleton: &[u8],
    xyz: &[[f32; 3]],
) -> Result<Vec<Field>> {
    let specs = ascii_specs(stored, header);
    let mut text = Vec::new();
    crate::ascii::fill(skeleton, xyz, &mut text)?;
    let mut cols: Vec<Vec<u32>> = vec![Vec::with_capacity(xyz.len()); specs.len()];
    let mut ok = vec![true; specs.len()];
    let mut lines = text
        .split(|&b| b == b'\n')
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()));
    for _ in 0..xyz.len() {
        let line = lines.next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let toks: Vec<&str> = line.split_whitespace().collect();
        for (k, spec) in specs.iter().enumerate() {
            let Some((_, ty)) = spec else { continue };
            let w = toks.get(3 + k).and_then(|t| match ty {
                Ty::F32 => t.parse::<f32>().ok().map(f32::to_bits),
                Ty::I32 => t.parse::<i32>().ok().map(|v| v as u32),
                Ty::U32 => t.parse::<u32>().ok(),
            });
            match w {
                Some(w) => cols[k].push(w),
                None => ok[k] = false,
            }
        }
    }
    Ok(specs
        .into_iter()
        .zip(cols)
        .zip(ok)
        .filter_map(|((spec, col), ok)| {
            let (name, ty) = spec?;
            (ok && col.len() == xyz.len()).then_some(Field { name, ty, col })
        })
        .collect())
}

fn find<'a>(fields: &'a [Field], names: &[&str]) -> Option<&'a Field> {
    fields
        .iter()
        .find(|f| names.iter().any(|n| f.name.eq_ignore_ascii_case(n)))
}

const INTENSITY: [&str; 5] = [
    "intensity",
    "reflectance",
    "remission",
    "i",
    "scalar_intensity",
];
const RING: [&str; 4] = ["ring", "laser_id", "ring_index", "laser"];

/// A column as `f32` bit patterns (0 where missing).
fn as_f32(f: Option<&Field>, n: usize) -> Vec<u32> {
    match f {
        Some(f) if f.ty == Ty::F32 => f.col.clone(),
        Some(f) => f
            .col
            .iter()
            .map(|&w| (f.ty.value(w) as f32).to_bits())
            .collect(),
        None => vec![0f32.to_bits(); n],
    }
}

fn records(xyz: &[[f32; 3]], cols: &[&[u32]], out: &mut Vec<u8>) {
    out.reserve(xyz.len() * 4 * (3 + cols.len()));
    for (i, p) in xyz.iter().enumerate() {
        for c in p {
            out.extend_from_slice(&c.to_le_bytes());
        }
        for c in cols {
            out.extend_from_slice(&c[i].to_le_bytes());
        }
    }
}

/// A field name safe for a text header (no whitespace).
fn clean(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if s.is_empty() { "field".into() } else { s }
}

/// Writes the collected decode in `target` (see the module docs).
pub(crate) fn write(
    stored: Format,
    header: &[u8],
    collected: Collected,
    target: Format,
    out: &mut Vec<u8>,
) -> Result<()> {
    if matches!(stored, Format::Las | Format::Laz) && matches!(target, Format::Las | Format::Laz) {
        return las_laz(header, collected, target == Format::Laz, out);
    }
    let nc = neutral(stored, header, collected)?;
    let n = nc.xyz.len();
    match target {
        Format::Kitti => {
            let i = as_f32(find(&nc.fields, &INTENSITY), n);
            records(&nc.xyz, &[&i], out);
        }
        Format::Nuscenes => {
            let i = as_f32(find(&nc.fields, &INTENSITY), n);
            let r = as_f32(find(&nc.fields, &RING), n);
            records(&nc.xyz, &[&i, &r], out);
        }
        Format::PcdBinary | Format::PcdAscii | Format::PcdCompressed => {
            let names: Vec<String> = nc.fields.iter().map(|f| clean(&f.name)).collect();
            let k = nc.fields.len();
            let types: Vec<&str> = nc
                .fields
                .iter()
                .map(|f| match f.ty {
                    Ty::F32 => "F",
                    Ty::I32 => "I",
                    Ty::U32 => "U",
                })
                .collect();
            let rep = |s: &str| vec![s; k + 3].join(" ");
            let h = format!(
                "# .PCD v0.7 - Point Cloud Data file format (written by lcodec)\nVERSION 0.7\nFIELDS x y z{}{}\nSIZE {}\nTYPE F F F{}{}\nCOUNT {}\nWIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA binary\n",
                if k > 0 { " " } else { "" },
                names.join(" "),
                rep("4"),
                if k > 0 { " " } else { "" },
                types.join(" "),
                rep("1"),
            );
            out.extend_from_slice(h.as_bytes());
            let cols: Vec<&[u32]> = nc.fields.iter().map(|f| f.col.as_slice()).collect();
            records(&nc.xyz, &cols, out);
        }
        Format::PlyBinary | Format::PlyAscii => {
            let mut h = format!(
                "ply\nformat binary_little_endian 1.0\ncomment written by lcodec\nelement vertex {n}\nproperty float x\nproperty float y\nproperty float z\n"
            );
            for f in &nc.fields {
                let t = match f.ty {
                    Ty::F32 => "float",
                    Ty::I32 => "int",
                    Ty::U32 => "uint",
                };
                h.push_str(&format!("property {t} {}\n", clean(&f.name)));
            }
            h.push_str("end_header\n");
            out.extend_from_slice(h.as_bytes());
            let cols: Vec<&[u32]> = nc.fields.iter().map(|f| f.col.as_slice()).collect();
            records(&nc.xyz, &cols, out);
        }
        Format::Las | Format::Laz => write_las(&nc, target == Format::Laz, out)?,
    }
    Ok(())
}

/// LAS extra-bytes data type of a field type.
fn eb_type(t: Ty) -> u8 {
    match t {
        Ty::U32 => 5,
        Ty::I32 => 6,
        Ty::F32 => 9,
    }
}

fn write_las(nc: &Neutral, laz: bool, out: &mut Vec<u8>) -> Result<()> {
    let n = nc.xyz.len();
    let fits = |f: &Field, max: u32| {
        f.ty != Ty::F32
            && f.col
                .iter()
                .all(|&w| w <= max && (f.ty == Ty::U32 || (w as i32) >= 0))
    };
    let by = |name: &str| {
        nc.fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(name))
    };
    // Standard fields taken losslessly.
    let mut used = vec![false; nc.fields.len()];
    let intensity = INTENSITY
        .iter()
        .find_map(|nm| by(nm))
        .map(|i| (i, &nc.fields[i]));
    let class = by("classification").filter(|&i| fits(&nc.fields[i], 31));
    let rgb: Option<[usize; 3]> = match (by("red"), by("green"), by("blue")) {
        (Some(r), Some(g), Some(b)) if [r, g, b].iter().all(|&i| fits(&nc.fields[i], 65535)) => {
            Some([r, g, b])
        }
        _ => None,
    };
    let ring = RING.iter().find_map(|nm| by(nm));
    let user = by("user_data").filter(|&i| fits(&nc.fields[i], 255));
    if let Some((i, f)) = intensity {
        used[i] = fits(f, 65535);
    }
    if let Some(i) = class {
        used[i] = true;
    }
    if let Some(i) = user {
        used[i] = true;
    }
    if let Some(c) = rgb {
        for i in c {
            used[i] = true;
        }
    }
    let extra: Vec<usize> = (0..nc.fields.len()).filter(|&i| !used[i]).collect();
    let pf: u8 = if rgb.is_some() { 2 } else { 0 };
    let base = if rgb.is_some() { 26 } else { 20 };
    let rec = base + 4 * extra.len();
    let rec16 = u16::try_from(rec)
        .map_err(|_| Error::InvalidArgument("lidar: too many fields for LAS".into()))?;
    let n32 = u32::try_from(n)
        .map_err(|_| Error::InvalidArgument("lidar: too many points for LAS 1.2".into()))?;
    // The standard intensity, from a float column if need be.
    let icol: Vec<u16> = match intensity {
        Some((_, f)) if f.ty == Ty::F32 => {
            let v: Vec<f64> = f.col.iter().map(|&w| f.ty.value(w)).collect();
            let unit = v.iter().all(|x| (0.0..=2.0).contains(x));
            v.iter()
                .map(|&x| {
                    let y = if unit { x.min(1.0) * 65535.0 } else { x };
                    if y.is_nan() {
                        0
                    } else {
                        y.round().clamp(0.0, 65535.0) as u16
                    }
                })
                .collect()
        }
        Some((_, f)) => f
            .col
            .iter()
            .map(|&w| f.ty.value(w).clamp(0.0, 65535.0) as u16)
            .collect(),
        None => vec![0; n],
    };
    let user_col: Option<Vec<u8>> = match (user, ring) {
        (Some(i), _) => Some(nc.fields[i].col.iter().map(|&w| w as u8).collect()),
        (None, Some(i)) => {
            let f = &nc.fields[i];
            let v: Vec<f64> = f.col.iter().map(|&w| f.ty.value(w)).collect();
            v.iter()
                .all(|x| (0.0..=255.0).contains(x) && x.fract() == 0.0)
                .then(|| v.iter().map(|&x| x as u8).collect())
        }
        _ => None,
    };
    // Records.
    let mut recs = Vec::with_capacity(n * rec);
    let (mut lo, mut hi) = ([i32::MAX; 3], [i32::MIN; 3]);
    for (i, p) in nc.ints.iter().enumerate() {
        for k in 0..3 {
            recs.extend_from_slice(&p[k].to_le_bytes());
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
        recs.extend_from_slice(&icol[i].to_le_bytes());
        recs.push(0b0000_1001); // return 1 of 1
        recs.push(class.map_or(0, |c| nc.fields[c].col[i] as u8));
        recs.push(0); // scan angle
        recs.push(user_col.as_ref().map_or(0, |u| u[i]));
        recs.extend_from_slice(&0u16.to_le_bytes()); // point source id
        if let Some(c) = rgb {
            for k in c {
                recs.extend_from_slice(&(nc.fields[k].col[i] as u16).to_le_bytes());
            }
        }
        for &k in &extra {
            recs.extend_from_slice(&nc.fields[k].col[i].to_le_bytes());
        }
    }
    // VLRs: extra bytes, then the LASzip VLR for LAZ.
    let mut vlrs = Vec::new();
    let mut nvlr = 0u32;
    if !extra.is_empty() {
        let mut body = Vec::with_capacity(192 * extra.len());
        for &k in &extra {
            let f = &nc.fields[k];
            let mut d = [0u8; 192];
            d[2] = eb_type(f.ty);
            let name = clean(&f.name);
            let nb = name.as_bytes();
            d[4..4 + nb.len().min(31)].copy_from_slice(&nb[..nb.len().min(31)]);
            let desc = b"lcodec attribute";
            d[160..160 + desc.len()].copy_from_slice(desc);
            body.extend_from_slice(&d);
        }
        push_vlr(&mut vlrs, b"LASF_Spec", 4, "Extra Bytes", &body)?;
        nvlr += 1;
    }
    let lazvlr = if laz {
        let items = laz::LazItemRecordBuilder::default_for_point_format_id(pf, (rec - base) as u16)
            .map_err(|e| Error::InvalidArgument(format!("lidar: LAZ items: {e}")))?;
        let v = laz::LazVlr::from_laz_items(items);
        let mut body = Vec::new();
        v.write_to(&mut body)
            .map_err(|e| Error::InvalidArgument(format!("lidar: LAZ VLR: {e}")))?;
        push_vlr(
            &mut vlrs,
            b"laszip encoded",
            laz::LazVlr::RECORD_ID,
            "lcodec LAZ",
            &body,
        )?;
        nvlr += 1;
        true
    } else {
        false
    };
    let mut h = vec![0u8; 227];
    h[..4].copy_from_slice(b"LASF");
    h[24] = 1;
    h[25] = 2;
    h[26..32].copy_from_slice(b"lcodec");
    h[58..64].copy_from_slice(b"lcodec");
    h[94..96].copy_from_slice(&227u16.to_le_bytes());
    let offset = 227 + vlrs.len();
    h[96..100].copy_from_slice(&(offset as u32).to_le_bytes());
    h[100..104].copy_from_slice(&nvlr.to_le_bytes());
    h[104] = pf | if lazvlr { 0x80 } else { 0 };
    h[105..107].copy_from_slice(&rec16.to_le_bytes());
    h[107..111].copy_from_slice(&n32.to_le_bytes());
    h[111..115].copy_from_slice(&n32.to_le_bytes());
    for k in 0..3 {
        h[131 + 8 * k..139 + 8 * k].copy_from_slice(&nc.scale[k].to_le_bytes());
        h[155 + 8 * k..163 + 8 * k].copy_from_slice(&nc.offset[k].to_le_bytes());
        let (a, b) = if n == 0 {
            (0.0, 0.0)
        } else {
            (
                f64::from(lo[k]) * nc.scale[k] + nc.offset[k],
                f64::from(hi[k]) * nc.scale[k] + nc.offset[k],
            )
        };
        h[179 + 16 * k..187 + 16 * k].copy_from_slice(&b.to_le_bytes());
        h[187 + 16 * k..195 + 16 * k].copy_from_slice(&a.to_le_bytes());
    }
    h.extend_from_slice(&vlrs);
    if lazvlr {
        crate::lazio::write_laz(&h, &recs, &[], out)
    } else {
        out.extend_from_slice(&h);
        out.extend_from_slice(&recs);
        Ok(())
    }
}

/// Point record sizes of LAS point formats 0..=10 without extra bytes.
const LAS_BASE: [usize; 11] = [20, 28, 26, 34, 57, 63, 30, 36, 38, 59, 67];

/// Rewrites a stored LAS / LAZ as the other one (see the module docs).
fn las_laz(header: &[u8], c: Collected, to_laz: bool, out: &mut Vec<u8>) -> Result<()> {
    let bad = |m: &str| Error::malformed(0, format!("lidar: stored LAS header: {m}"));
    if header.len() < 227 {
        return Err(bad("too short"));
    }
    let hsize = usize::from(u16_at(header, 94));
    let count = u32::from_le_bytes([header[100], header[101], header[102], header[103]]);
    let pf = header[104] & 0x3f;
    let rec = usize::from(u16_at(header, 105));
    if hsize < 227 || hsize > header.len() {
        return Err(bad("header size"));
    }
    // Walk the VLRs: find the LASzip one (and the end of the list).
    let mut p = hsize;
    let mut laszip = None;
    for _ in 0..count {
        let h = header.get(p..p + 54).ok_or_else(|| bad("VLR header"))?;
        let len = usize::from(u16_at(h, 20));
        if h[2..18].starts_with(b"laszip encoded") && u16_at(h, 18) == laz::LazVlr::RECORD_ID {
            laszip = Some((p, 54 + len));
        }
        p += 54 + len;
        if p > header.len() {
            return Err(bad("VLR body"));
        }
    }
    let mut ints = Vec::new();
    for (_, q) in &c.chunks {
        ints.extend_from_slice(q);
    }
    let mut recs = Vec::with_capacity(ints.len() * c.record_bytes);
    write_int_records(&ints, &c.attrs, c.record_bytes, &mut recs);
    let mut h = header.to_vec();
    let set_u32 = |h: &mut Vec<u8>, at: usize, v: usize| -> Result<()> {
        let v = u32::try_from(v).map_err(|_| bad("offset over 4 GiB"))?;
        h[at..at + 4].copy_from_slice(&v.to_le_bytes());
        Ok(())
    };
    let offset = u32::from_le_bytes([h[96], h[97], h[98], h[99]]) as usize;
    if to_laz {
        let base = *LAS_BASE
            .get(usize::from(pf))
            .ok_or_else(|| bad("point format"))?;
        let extra = u16::try_from(rec.saturating_sub(base)).map_err(|_| bad("record"))?;
        let items = laz::LazItemRecordBuilder::default_for_point_format_id(pf, extra)
            .map_err(|e| Error::Unsupported(format!("lidar: LAZ for point format {pf}: {e}")))?;
        let vlr = laz::LazVlr::from_laz_items(items);
        let mut body = Vec::new();
        vlr.write_to(&mut body)
            .map_err(|e| Error::InvalidArgument(format!("lidar: LAZ VLR: {e}")))?;
        let mut v = Vec::new();
        push_vlr(
            &mut v,
            b"laszip encoded",
            laz::LazVlr::RECORD_ID,
            "lcodec LAZ",
            &body,
        )?;
        h.splice(p..p, v.iter().copied());
        set_u32(&mut h, 96, offset + v.len())?;
        set_u32(&mut h, 100, count as usize + 1)?;
        h[104] = pf | 0x80;
        // EVLRs go after the compressed points: write_laz updates their offset.
        let trailer = if header[25] >= 4 && hsize >= 255 && u32_at(header, 243) > 0 {
            c.trailer
        } else {
            Vec::new()
        };
        crate::lazio::write_laz(&h, &recs, &trailer, out)
    } else {
        let (at, len) = laszip.ok_or_else(|| bad("LAZ without a LASzip VLR"))?;
        h.drain(at..at + len);
        set_u32(&mut h, 96, offset.saturating_sub(len))?;
        set_u32(&mut h, 100, count.saturating_sub(1) as usize)?;
        h[104] = pf;
        if !c.trailer.is_empty() && h.len() >= 243 {
            let at = (h.len() + recs.len()) as u64;
            h[235..243].copy_from_slice(&at.to_le_bytes());
        }
        out.extend_from_slice(&h);
        out.extend_from_slice(&recs);
        out.extend_from_slice(&c.trailer);
        Ok(())
    }
}

fn push_vlr(out: &mut Vec<u8>, user: &[u8], id: u16, desc: &str, body: &[u8]) -> Result<()> {
    let len = u16::try_from(body.len())
        .map_err(|_| Error::InvalidArgument("lidar: LAS VLR over 64 KiB".into()))?;
    let mut h = [0u8; 54];
    h[2..2 + user.len()].copy_from_slice(user);
    h[18..20].copy_from_slice(&id.to_le_bytes());
    h[20..22].copy_from_slice(&len.to_le_bytes());
    h[22..22 + desc.len().min(32)].copy_from_slice(&desc.as_bytes()[..desc.len().min(32)]);
    out.extend_from_slice(&h);
    out.extend_from_slice(body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        use Format::*;
        assert_eq!(target_for(Kitti, false, "ply"), Some(PlyBinary));
        assert_eq!(target_for(Kitti, false, "bin"), None);
        assert_eq!(target_for(Nuscenes, true, "bin"), None);
        assert_eq!(target_for(PcdBinary, true, "bin"), Some(Nuscenes));
        assert_eq!(target_for(PlyBinary, false, "bin"), Some(Kitti));
        assert_eq!(target_for(PcdAscii, false, "pcd"), None);
        assert_eq!(target_for(PlyAscii, false, "pcd"), Some(PcdBinary));
        assert_eq!(target_for(Las, false, "laz"), Some(Laz));
        assert_eq!(target_for(Laz, false, "las"), Some(Las));
        assert_eq!(target_for(Las, false, "las"), None);
        assert_eq!(target_for(Laz, false, "PLY"), Some(PlyBinary));
        assert_eq!(target_for(Kitti, false, "nuscenes"), Some(Nuscenes));
        assert_eq!(target_for(Kitti, false, "kitti"), None);
        for keep in ["lc", "txt", "out", "", "xyz"] {
            assert_eq!(target_for(Kitti, false, keep), None);
        }
    }
}
