//! Point-cloud file formats: parsing into a [`Cloud`] and writing it back.
//!
//! Every format is reduced to a verbatim header (bytes before the first point), the
//! points' coordinates (`f32` x, y, z) and attribute columns of 32-bit words (the raw bit
//! patterns of the other fields, so float attributes stay bit-exact). Writing puts the
//! header back and re-serialises the records in their original layout.
//!
//! Supported: KITTI `.bin` (x, y, z, reflectance as `f32`), nuScenes `.pcd.bin`
//! (x, y, z, intensity, ring as `f32`), PCD v0.7 with `DATA binary` (all fields 4-byte
//! `F`/`I`/`U`, x, y, z first), binary little-endian PLY with a single `vertex` element
//! of 4-byte properties (x, y, z first) and uncompressed LAS (integer X, Y, Z; the rest
//! of each record becomes 4-byte attribute words, the last one zero-padded). Also (issue
//! 8): ASCII PCD and ASCII PLY (coordinates parsed to `f32`, every other body byte kept
//! verbatim in a skeleton, see [`crate::ascii`]), PCD `DATA binary_compressed` (LZF, see
//! [`crate::lzf`]; re-compressed on output) and LAZ (through the `laz` crate; written
//! back as an equivalent LAZ with identical decompressed point records).

use lcodec_core::{Error, Result};

/// A point-cloud layout lcodec-lidar reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// KITTI velodyne `.bin`: `f32` x, y, z, reflectance; 16 bytes per point, no header.
    Kitti,
    /// nuScenes `.pcd.bin`: `f32` x, y, z, intensity, ring; 20 bytes per point, no header.
    Nuscenes,
    /// PCD with `DATA binary`: a text header, then packed records of 4-byte fields.
    PcdBinary,
    /// PLY `binary_little_endian`: a text header, then packed records of 4-byte properties.
    PlyBinary,
    /// Uncompressed LAS (any version and point format): the integer X, Y, Z are coded
    /// exactly (the file's own quantization), the rest of each record as attributes.
    Las,
    /// PCD with `DATA ascii`: x, y, z coded like the binary formats, every other byte of
    /// the body kept verbatim (see [`crate::ascii`]).
    PcdAscii,
    /// PLY `format ascii 1.0` with a single `vertex` element (see [`crate::ascii`]).
    PlyAscii,
    /// PCD with `DATA binary_compressed` (LZF, field-major), 4-byte fields. Decoding
    /// re-compresses with this crate's LZF coder: the header is kept, the compressed
    /// bytes may differ from the input's.
    PcdCompressed,
    /// LAZ (LASzip-compressed LAS): decompressed and coded like LAS. Decoding writes an
    /// equivalent LAZ (same header and VLRs, identical point records once decompressed;
    /// the compressed bytes need not equal the input's).
    Laz,
}

impl Format {
    /// The byte stored in the codec parameters.
    pub fn to_u8(self) -> u8 {
        match self {
            Format::Kitti => 0,
            Format::Nuscenes => 1,
            Format::PcdBinary => 2,
            Format::PlyBinary => 3,
            Format::Las => 4,
            Format::PcdAscii => 5,
            Format::PlyAscii => 6,
            Format::PcdCompressed => 7,
            Format::Laz => 8,
        }
    }

    /// Parses the stored byte.
    pub fn from_u8(v: u8) -> Option<Format> {
        Some(match v {
            0 => Format::Kitti,
            1 => Format::Nuscenes,
            2 => Format::PcdBinary,
            3 => Format::PlyBinary,
            4 => Format::Las,
            5 => Format::PcdAscii,
            6 => Format::PlyAscii,
            7 => Format::PcdCompressed,
            8 => Format::Laz,
            _ => return None,
        })
    }

    /// The name used with `-p format=NAME`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Kitti => "kitti",
            Format::Nuscenes => "nuscenes",
            Format::PcdBinary => "pcd",
            Format::PlyBinary => "ply",
            Format::Las => "las",
            Format::PcdAscii => "pcd-ascii",
            Format::PlyAscii => "ply-ascii",
            Format::PcdCompressed => "pcd-compressed",
            Format::Laz => "laz",
        }
    }

    /// Parses a `-p format=` value.
    pub fn from_name(s: &str) -> Option<Format> {
        Some(match s {
            "kitti" => Format::Kitti,
            "nuscenes" => Format::Nuscenes,
            "pcd" => Format::PcdBinary,
            "ply" => Format::PlyBinary,
            "las" => Format::Las,
            "pcd-ascii" => Format::PcdAscii,
            "ply-ascii" => Format::PlyAscii,
            "pcd-compressed" => Format::PcdCompressed,
            "laz" => Format::Laz,
            _ => return None,
        })
    }

    /// True for formats whose decoded output cannot be written chunk by chunk (text,
    /// whole-file compression): the decoder gathers all points and writes them at the end.
    pub fn whole_file(self) -> bool {
        matches!(
            self,
            Format::PcdAscii | Format::PlyAscii | Format::PcdCompressed | Format::Laz
        )
    }

    /// True for formats whose trailer holds an ASCII skeleton (see [`crate::ascii`]).
    pub fn is_ascii(self) -> bool {
        matches!(self, Format::PcdAscii | Format::PlyAscii)
    }
}

/// A parsed point cloud.
#[derive(Debug, Clone, PartialEq)]
pub struct Cloud {
    /// The layout it came from.
    pub format: Format,
    /// Bytes before the first point, kept verbatim (empty for KITTI / nuScenes).
    pub header: Vec<u8>,
    /// Number of 4-byte fields per point, x, y, z included (for LAS: 3 plus the record
    /// tail in 4-byte words, the last one zero-padded).
    pub fields: usize,
    /// Bytes per point record (`4 * fields` except for LAS).
    pub record_bytes: usize,
    /// Coordinates, in file order (empty for LAS).
    pub xyz: Vec<[f32; 3]>,
    /// Integer coordinates (LAS only).
    pub ixyz: Vec<[i32; 3]>,
    /// Bytes after the last point, kept verbatim (LAS extended VLRs, bytes after a
    /// compressed PCD blob); for ASCII formats the body skeleton (see [`crate::ascii`]).
    pub trailer: Vec<u8>,
    /// Attribute columns (`fields - 3` of them), each one word per point: the field's raw
    /// little-endian bits.
    pub attrs: Vec<Vec<u32>>,
    /// Index of the attribute column holding a laser ring number, if the format has one.
    pub ring_column: Option<usize>,
}

impl Cloud {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.xyz.len().max(self.ixyz.len())
    }

    /// True when there are no points.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the coordinates are integers coded exactly (LAS).
    pub fn integer_coords(&self) -> bool {
        matches!(self.format, Format::Las | Format::Laz)
    }

    /// Serialises the cloud in its format.
    ///
    /// # Errors
    /// [`Error::Codec`] when an ASCII skeleton and the points disagree; LAZ compression
    /// errors.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<()> {
        match self.format {
            Format::PcdAscii | Format::PlyAscii => {
                out.extend_from_slice(&self.header);
                crate::ascii::fill(&self.trailer, &self.xyz, out)?;
            }
            Format::PcdCompressed => {
                out.extend_from_slice(&self.header);
                let n = self.xyz.len();
                let mut fm = Vec::with_capacity(n * 4 * self.fields);
                for k in 0..3 {
                    for p in &self.xyz {
                        fm.extend_from_slice(&p[k].to_le_bytes());
                    }
                }
                for a in &self.attrs {
                    for w in a {
                        fm.extend_from_slice(&w.to_le_bytes());
                    }
                }
                let c = crate::lzf::compress(&fm);
                let len32 = |v: usize| {
                    u32::try_from(v)
                        .map_err(|_| Error::InvalidArgument("PCD body over 4 GiB".into()))
                };
                out.extend_from_slice(&len32(c.len())?.to_le_bytes());
                out.extend_from_slice(&len32(fm.len())?.to_le_bytes());
                out.extend_from_slice(&c);
                out.extend_from_slice(&self.trailer);
            }
            Format::Laz => {
                let mut recs = Vec::new();
                write_int_records(&self.ixyz, &self.attrs, self.record_bytes, &mut recs);
                crate::lazio::write_laz(&self.header, &recs, &self.trailer, out)?;
            }
            _ => {
                out.extend_from_slice(&self.header);
                if self.integer_coords() {
                    write_int_records(&self.ixyz, &self.attrs, self.record_bytes, out);
                } else {
                    write_records(&self.xyz, &self.attrs, 0, self.len(), out);
                }
                out.extend_from_slice(&self.trailer);
            }
        }
        Ok(())
    }
}

/// Appends LAS-style records: integer x, y, z, then the first `record_bytes - 12` bytes
/// of the attribute words.
pub fn write_int_records(
    q: &[[i32; 3]],
    attrs: &[Vec<u32>],
    record_bytes: usize,
    out: &mut Vec<u8>,
) {
    let tail = record_bytes.saturating_sub(12);
    out.reserve(q.len() * record_bytes);
    let mut words = Vec::with_capacity(attrs.len() * 4);
    for (i, p) in q.iter().enumerate() {
        for c in p {
            out.extend_from_slice(&c.to_le_bytes());
        }
        words.clear();
        for a in attrs {
            words.extend_from_slice(&a[i].to_le_bytes());
        }
        out.extend_from_slice(&words[..tail.min(words.len())]);
    }
}

/// Appends the records of points `start..end` (x, y, z, then the attribute words).
pub fn write_records(
    xyz: &[[f32; 3]],
    attrs: &[Vec<u32>],
    start: usize,
    end: usize,
    out: &mut Vec<u8>,
) {
    out.reserve((end - start) * (3 + attrs.len()) * 4);
    for i in start..end {
        for c in xyz[i] {
            out.extend_from_slice(&c.to_le_bytes());
        }
        for a in attrs {
            out.extend_from_slice(&a[i].to_le_bytes());
        }
    }
}

/// Splits packed little-endian records of `fields` 4-byte words into coordinates and
/// attribute columns.
fn split_records(body: &[u8], fields: usize) -> (Vec<[f32; 3]>, Vec<Vec<u32>>) {
    let rec = fields * 4;
    let n = body.len() / rec;
    let mut xyz = Vec::with_capacity(n);
    let mut attrs: Vec<Vec<u32>> = (3..fields).map(|_| Vec::with_capacity(n)).collect();
    for r in body.chunks_exact(rec) {
        let w = |k: usize| u32::from_le_bytes([r[4 * k], r[4 * k + 1], r[4 * k + 2], r[4 * k + 3]]);
        xyz.push([
            f32::from_bits(w(0)),
            f32::from_bits(w(1)),
            f32::from_bits(w(2)),
        ]);
        for (k, a) in attrs.iter_mut().enumerate() {
            a.push(w(3 + k));
        }
    }
    (xyz, attrs)
}

pub(crate) fn u16_at(d: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([d[o], d[o + 1]])
}

pub(crate) fn u32_at(d: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]])
}

/// Parses an uncompressed LAS file: the header and VLRs (bytes before the point data)
/// and anything after the points are kept verbatim.
fn parse_las(data: &[u8]) -> Result<Cloud> {
    if data.len() < 227 || &data[..4] != b"LASF" {
        return Err(Error::truncated(
            data.len() as u64,
            "LAS header (227 bytes starting with LASF)",
        ));
    }
    let hsize = usize::from(u16_at(data, 94));
    let offset = u32_at(data, 96) as usize;
    let pf = data[104];
    let rec = usize::from(u16_at(data, 105));
    if pf & 0xC0 != 0 {
        return crate::lazio::parse_laz(data);
    }
    if rec < 12 {
        return Err(Error::malformed(
            105,
            format!("LAS point record length {rec} (expected >= 12)"),
        ));
    }
    let mut n = u64::from(u32_at(data, 107));
    if n == 0 && hsize >= 255 && data.len() >= 255 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&data[247..255]);
        n = u64::from_le_bytes(b);
    }
    if hsize < 227 || offset < hsize || offset > data.len() {
        return Err(Error::malformed(
            94,
            format!("LAS header size {hsize}, point data offset {offset}"),
        ));
    }
    let body_len = n.saturating_mul(rec as u64);
    if body_len > (data.len() - offset) as u64 {
        return Err(Error::truncated(
            offset as u64,
            format!("{n} LAS points of {rec} bytes"),
        ));
    }
    let end = offset + body_len as usize;
    let (ixyz, attrs) = las_records(&data[offset..end], rec);
    let words = attrs.len();
    Ok(Cloud {
        format: Format::Las,
        header: data[..offset].to_vec(),
        fields: 3 + words,
        record_bytes: rec,
        xyz: Vec::new(),
        ixyz,
        trailer: data[end..].to_vec(),
        attrs,
        ring_column: None,
    })
}

/// Splits LAS point records of `rec >= 12` bytes into integer coordinates and 4-byte
/// attribute words (the last one zero-padded).
pub(crate) fn las_records(body: &[u8], rec: usize) -> (Vec<[i32; 3]>, Vec<Vec<u32>>) {
    let n = body.len() / rec;
    let words = (rec - 12).div_ceil(4);
    let mut ixyz = Vec::with_capacity(n);
    let mut attrs: Vec<Vec<u32>> = (0..words).map(|_| Vec::with_capacity(n)).collect();
    for r in body.chunks_exact(rec) {
        ixyz.push([
            u32_at(r, 0) as i32,
            u32_at(r, 4) as i32,
            u32_at(r, 8) as i32,
        ]);
        for (k, a) in attrs.iter_mut().enumerate() {
            let lo = 12 + 4 * k;
            let hi = (lo + 4).min(rec);
            let mut pad = [0u8; 4];
            pad[..hi - lo].copy_from_slice(&r[lo..hi]);
            a.push(u32::from_le_bytes(pad));
        }
    }
    (ixyz, attrs)
}

fn ends_with(name: &str, suffix: &str) -> bool {
    name.to_ascii_lowercase().ends_with(suffix)
}

/// Guesses the format from the first bytes and the file name; `None` if it is not a
/// point cloud this crate reads. `total_len` is the input size when known.
pub fn detect(head: &[u8], file_name: Option<&str>, total_len: Option<u64>) -> Option<Format> {
    if head.starts_with(b"LASF") {
        return Some(Format::Las);
    }
    if head.starts_with(b"ply\n") || head.starts_with(b"ply\r\n") {
        return Some(Format::PlyBinary);
    }
    if is_pcd_header(head) {
        return Some(Format::PcdBinary);
    }
    let name = file_name?;
    if ends_with(name, ".pcd.bin") {
        return Some(Format::Nuscenes);
    }
    if ends_with(name, ".bin") {
        if let Some(n) = total_len {
            if n % 16 != 0 && n % 20 == 0 {
                return Some(Format::Nuscenes);
            }
        }
        return Some(Format::Kitti);
    }
    None
}

fn is_pcd_header(head: &[u8]) -> bool {
    head.starts_with(b"# .PCD") || head.starts_with(b"VERSION") || head.starts_with(b"FIELDS")
}

/// True when the first records of a float32 record file look like LiDAR points: at
/// least 16 records, all finite, coordinates within ±2 km, 90% of the points between
/// 0.3 m and 300 m from the sensor, not all equal, and a fourth field (reflectance /
/// intensity) in `0..=65535`. Weight files and random bytes named `.bin` fail this.
pub fn plausible_float_records(head: &[u8], fields: usize) -> bool {
    let rec = fields * 4;
    let (mut seen, mut near, mut varied) = (0usize, 0usize, false);
    let f = |r: &[u8], k: usize| {
        f32::from_le_bytes([r[4 * k], r[4 * k + 1], r[4 * k + 2], r[4 * k + 3]])
    };
    let first = head.get(..12);
    for r in head.chunks_exact(rec).take(512) {
        let (x, y, z) = (f(r, 0), f(r, 1), f(r, 2));
        if !(x.is_finite() && y.is_finite() && z.is_finite())
            || x.abs().max(y.abs()).max(z.abs()) > 2000.0
        {
            return false;
        }
        if fields >= 4 {
            let a = f(r, 3);
            if !(0.0..=65535.0).contains(&a) {
                return false;
            }
        }
        let d = (f64::from(x) * f64::from(x)
            + f64::from(y) * f64::from(y)
            + f64::from(z) * f64::from(z))
        .sqrt();
        if (0.3..=300.0).contains(&d) {
            near += 1;
        }
        if first != Some(&r[..12]) {
            varied = true;
        }
        seen += 1;
    }
    seen >= 16 && near * 10 >= seen * 9 && varied
}

/// Parses a whole file in the given format.
///
/// # Errors
/// [`Error::Malformed`] / [`Error::Truncated`] for a broken header or a body that is not
/// a whole number of records, [`Error::Unsupported`] for valid files this crate cannot
/// code (ASCII PCD, big-endian PLY, 8-byte fields, ...).
pub fn parse(data: &[u8], format: Format) -> Result<Cloud> {
    match format {
        Format::Kitti => parse_bin(data, format, 4, None),
        Format::Nuscenes => parse_bin(data, format, 5, Some(1)),
        Format::PcdBinary | Format::PcdAscii | Format::PcdCompressed => parse_pcd(data),
        Format::PlyBinary | Format::PlyAscii => parse_ply(data),
        Format::Las | Format::Laz => parse_las(data),
    }
}

fn parse_bin(
    data: &[u8],
    format: Format,
    fields: usize,
    ring_column: Option<usize>,
) -> Result<Cloud> {
    let rec = fields * 4;
    if data.len() % rec != 0 {
        return Err(Error::truncated(
            (data.len() - data.len() % rec) as u64,
            format!(
                "{} file of {} bytes is not a multiple of {rec}-byte records",
                format.name(),
                data.len()
            ),
        ));
    }
    let (xyz, attrs) = split_records(data, fields);
    Ok(Cloud {
        format,
        header: Vec::new(),
        fields,
        record_bytes: fields * 4,
        xyz,
        ixyz: Vec::new(),
        trailer: Vec::new(),
        attrs,
        ring_column,
    })
}

/// Finds the end of a text header: the offset just after the line starting with `last`.
fn header_end(data: &[u8], last: &[u8], max: usize) -> Option<usize> {
    let mut pos = 0;
    while pos < data.len() && pos < max {
        let nl = data[pos..].iter().position(|&b| b == b'\n')?;
        let line = &data[pos..pos + nl];
        pos += nl + 1;
        if line.starts_with(last) {
            return Some(pos);
        }
    }
    None
}

fn header_lines(h: &[u8]) -> Result<Vec<String>> {
    let s = std::str::from_utf8(h)
        .map_err(|_| Error::malformed(0, "point-cloud header is not UTF-8 text"))?;
    Ok(s.lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect())
}

const MAX_HEADER: usize = 1 << 20;

fn parse_pcd(data: &[u8]) -> Result<Cloud> {
    let end = header_end(data, b"DATA", MAX_HEADER)
        .ok_or_else(|| Error::truncated(data.len() as u64, "PCD header ending with a DATA line"))?;
    let lines = header_lines(&data[..end])?;
    let mut fields: Vec<String> = Vec::new();
    let mut sizes: Vec<String> = Vec::new();
    let mut counts: Option<Vec<String>> = None;
    let mut types: Option<Vec<String>> = None;
    let mut points: Option<u64> = None;
    let mut width: Option<Option<u64>> = None;
    let mut height: Option<Option<u64>> = None;
    let mut viewpoint: Option<Vec<String>> = None;
    let mut data_kind = String::new();
    for l in &lines {
        let mut it = l.split_whitespace();
        let Some(key) = it.next() else { continue };
        let rest: Vec<String> = it.map(str::to_string).collect();
        match key {
            "FIELDS" => fields = rest,
            "SIZE" => sizes = rest,
            "COUNT" => counts = Some(rest),
            "TYPE" => types = Some(rest),
            "POINTS" => {
                points = rest.first().and_then(|v| v.parse().ok());
            }
            "WIDTH" => width = Some(rest.first().and_then(|v| v.parse().ok())),
            "HEIGHT" => height = Some(rest.first().and_then(|v| v.parse().ok())),
            "VIEWPOINT" => viewpoint = Some(rest),
            "DATA" => data_kind = rest.first().cloned().unwrap_or_default(),
            _ => {}
        }
    }
    if !["binary", "ascii", "binary_compressed"].contains(&data_kind.as_str()) {
        return Err(Error::Unsupported(format!(
            "PCD DATA {data_kind:?} (expected ascii, binary or binary_compressed)"
        )));
    }
    if fields.len() < 3 || fields[0] != "x" || fields[1] != "y" || fields[2] != "z" {
        return Err(Error::malformed(
            0,
            format!("PCD FIELDS {fields:?} (expected x y z first)"),
        ));
    }
    if matches!(width, Some(None)) || matches!(height, Some(None)) {
        return Err(Error::malformed(0, "PCD WIDTH / HEIGHT is not a number"));
    }
    if let Some(v) = &viewpoint {
        if v.len() != 7 || v.iter().any(|t| t.parse::<f64>().is_err()) {
            return Err(Error::malformed(
                0,
                format!("PCD VIEWPOINT {v:?} (expected 7 numbers)"),
            ));
        }
    }
    if data_kind == "ascii" {
        return parse_pcd_ascii(
            data,
            end,
            &fields,
            &sizes,
            types.as_deref(),
            counts.as_deref(),
            points,
            width.flatten(),
            height.flatten(),
        );
    }
    if sizes.len() != fields.len() || sizes.iter().any(|s| s != "4") {
        return Err(Error::Unsupported(format!(
            "PCD SIZE {sizes:?} (only 4-byte fields are supported)"
        )));
    }
    if let Some(t) = &types {
        if t.len() != fields.len() || t[..3].iter().any(|s| s != "F") {
            return Err(Error::Unsupported(format!(
                "PCD TYPE {t:?} (x, y, z must be F)"
            )));
        }
    }
    if let Some(c) = &counts {
        if c.len() != fields.len() || c.iter().any(|s| s != "1") {
            return Err(Error::Unsupported(format!(
                "PCD COUNT {c:?} (only 1 is supported)"
            )));
        }
    }
    let points =
        points.ok_or_else(|| Error::malformed(0, "PCD header without a valid POINTS line"))?;
    if data_kind == "binary_compressed" {
        return parse_pcd_compressed(data, end, fields.len(), points);
    }
    let body = &data[end..];
    let rec = fields.len() * 4;
    if (body.len() as u64) != points.saturating_mul(rec as u64) {
        return Err(Error::truncated(
            end as u64,
            format!(
                "PCD body of {points} points × {rec} bytes, found {} bytes",
                body.len()
            ),
        ));
    }
    let (xyz, attrs) = split_records(body, fields.len());
    let ring_column = fields[3..].iter().position(|f| f == "ring");
    Ok(Cloud {
        format: Format::PcdBinary,
        header: data[..end].to_vec(),
        fields: fields.len(),
        record_bytes: fields.len() * 4,
        xyz,
        ixyz: Vec::new(),
        trailer: Vec::new(),
        attrs,
        ring_column,
    })
}

fn parse_ply(data: &[u8]) -> Result<Cloud> {
    let end = header_end(data, b"end_header", MAX_HEADER)
        .ok_or_else(|| Error::truncated(data.len() as u64, "PLY header ending with end_header"))?;
    let lines = header_lines(&data[..end])?;
    let mut format_ok = false;
    let mut ascii = false;
    let mut count: Option<u64> = None;
    let mut props: Vec<(String, String)> = Vec::new();
    let mut elements = 0;
    for l in &lines {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.as_slice() {
            ["format", "binary_little_endian", "1.0"] => format_ok = true,
            ["format", "ascii", "1.0"] => {
                format_ok = true;
                ascii = true;
            }
            ["format", f, ..] => {
                return Err(Error::Unsupported(format!(
                    "PLY format {f} (only binary_little_endian)"
                )));
            }
            ["element", name, n] => {
                elements += 1;
                if *name != "vertex" || elements > 1 {
                    return Err(Error::Unsupported(format!(
                        "PLY element {name} (only one vertex element)"
                    )));
                }
                count = n.parse().ok();
            }
            ["property", "list", ..] => {
                return Err(Error::Unsupported("PLY list properties".into()));
            }
            ["property", ty, name] => props.push((ty.to_string(), name.to_string())),
            _ => {}
        }
    }
    if !format_ok {
        return Err(Error::malformed(
            0,
            "PLY header without format binary_little_endian 1.0 or ascii 1.0",
        ));
    }
    let count = count.ok_or_else(|| Error::malformed(0, "PLY header without a vertex count"))?;
    if props.len() < 3 || props[0].1 != "x" || props[1].1 != "y" || props[2].1 != "z" {
        return Err(Error::malformed(
            0,
            "PLY vertex properties must start with x y z",
        ));
    }
    if ascii {
        let (xyz, skel) = crate::ascii::split_body(&data[end..], count, props.len(), end as u64)?;
        return Ok(Cloud {
            format: Format::PlyAscii,
            header: data[..end].to_vec(),
            fields: 3,
            record_bytes: 12,
            xyz,
            ixyz: Vec::new(),
            trailer: skel,
            attrs: Vec::new(),
            ring_column: None,
        });
    }
    let four = ["float", "float32", "int", "int32", "uint", "uint32"];
    if props.iter().any(|(t, _)| !four.contains(&t.as_str()))
        || !["float", "float32"].contains(&props[0].0.as_str())
        || props[1].0 != props[0].0
        || props[2].0 != props[0].0
    {
        return Err(Error::Unsupported(
            "PLY properties must be 4 bytes wide with float x, y, z".into(),
        ));
    }
    let rec = props.len() * 4;
    let body = &data[end..];
    if (body.len() as u64) != count.saturating_mul(rec as u64) {
        return Err(Error::truncated(
            end as u64,
            format!(
                "PLY body of {count} vertices × {rec} bytes, found {} bytes",
                body.len()
            ),
        ));
    }
    let (xyz, attrs) = split_records(body, props.len());
    let ring_column = props[3..].iter().position(|(_, n)| n == "ring");
    Ok(Cloud {
        format: Format::PlyBinary,
        header: data[..end].to_vec(),
        fields: props.len(),
        record_bytes: props.len() * 4,
        xyz,
        ixyz: Vec::new(),
        trailer: Vec::new(),
        attrs,
        ring_column,
    })
}

#[allow(clippy::too_many_arguments)]
fn parse_pcd_ascii(
    data: &[u8],
    end: usize,
    fields: &[String],
    sizes: &[String],
    types: Option<&[String]>,
    counts: Option<&[String]>,
    points: Option<u64>,
    width: Option<u64>,
    height: Option<u64>,
) -> Result<Cloud> {
    let points =
        points.ok_or_else(|| Error::malformed(0, "PCD header without a valid POINTS line"))?;
    if let (Some(w), Some(h)) = (width, height) {
        if w.checked_mul(h) != Some(points) {
            return Err(Error::malformed(
                0,
                format!("PCD WIDTH {w} × HEIGHT {h} is not POINTS {points}"),
            ));
        }
    }
    if !sizes.is_empty() && sizes.len() != fields.len() {
        return Err(Error::malformed(
            0,
            format!("PCD SIZE {sizes:?} for {} fields", fields.len()),
        ));
    }
    if types.is_some_and(|t| t.len() != fields.len()) {
        return Err(Error::malformed(
            0,
            format!("PCD TYPE {types:?} for {} fields", fields.len()),
        ));
    }
    let mut tokens = fields.len();
    if let Some(c) = counts {
        if c.len() != fields.len() || c[..3].iter().any(|s| s != "1") {
            return Err(Error::malformed(
                0,
                format!("PCD COUNT {c:?} (x, y, z must have count 1)"),
            ));
        }
        tokens = 0;
        for v in c {
            let v: usize = v
                .parse()
                .ok()
                .filter(|&v| (1..=1 << 20).contains(&v))
                .ok_or_else(|| Error::malformed(0, format!("PCD COUNT value {v:?}")))?;
            tokens += v;
        }
    }
    let (xyz, skel) = crate::ascii::split_body(&data[end..], points, tokens, end as u64)?;
    Ok(Cloud {
        format: Format::PcdAscii,
        header: data[..end].to_vec(),
        fields: 3,
        record_bytes: 12,
        xyz,
        ixyz: Vec::new(),
        trailer: skel,
        attrs: Vec::new(),
        ring_column: None,
    })
}

fn parse_pcd_compressed(data: &[u8], end: usize, fields: usize, points: u64) -> Result<Cloud> {
    let head = data
        .get(end..end + 8)
        .ok_or_else(|| Error::truncated(data.len() as u64, "PCD compressed and raw sizes"))?;
    let comp = u32_at(head, 0) as usize;
    let raw = u32_at(head, 4) as usize;
    let rec = fields * 4;
    if (raw as u64) != points.saturating_mul(rec as u64) {
        return Err(Error::malformed(
            end as u64 + 4,
            format!("PCD raw size {raw} for {points} points × {rec} bytes"),
        ));
    }
    let start = end + 8;
    if comp > data.len() - start {
        return Err(Error::truncated(
            data.len() as u64,
            format!("PCD compressed body of {comp} bytes"),
        ));
    }
    // LZF expands at most 132× (a 2-byte reference copies up to 264 bytes).
    if raw > comp.saturating_mul(132) + 64 {
        return Err(Error::malformed(
            end as u64 + 4,
            format!("PCD raw size {raw} impossible for {comp} compressed bytes"),
        ));
    }
    let fm = crate::lzf::decompress(&data[start..start + comp], raw)?;
    let n = points as usize;
    let mut recs = Vec::with_capacity(raw);
    for i in 0..n {
        for f in 0..fields {
            let o = 4 * (f * n + i);
            recs.extend_from_slice(&fm[o..o + 4]);
        }
    }
    let (xyz, attrs) = split_records(&recs, fields);
    let lines = header_lines(&data[..end])?;
    let ring_column = lines
        .iter()
        .find_map(|l| l.strip_prefix("FIELDS "))
        .and_then(|f| f.split_whitespace().skip(3).position(|f| f == "ring"));
    Ok(Cloud {
        format: Format::PcdCompressed,
        header: data[..end].to_vec(),
        fields,
        record_bytes: rec,
        xyz,
        ixyz: Vec::new(),
        trailer: data[start + comp..].to_vec(),
        attrs,
        ring_column,
    })
}
