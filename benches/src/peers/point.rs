//! Point-cloud peers: LASzip (the `laz` crate, in-process) and Draco (`draco_encoder` /
//! `draco_decoder`), both at the same precision as lcodec's LiDAR codec.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::metrics::PointErrors;

/// Size of a LAS 1.2 public header block.
const LAS12_HEADER: u64 = 227;
/// Size of a VLR header (the LASzip VLR's payload comes on top).
const VLR_HEADER: u64 = 54;

/// One point-cloud peer run.
#[derive(Debug)]
pub struct PointRun {
    /// Whole compressed file (LAZ: header + VLR + points; Draco: the `.drc` file).
    pub bytes: u64,
    /// Encode wall time in milliseconds.
    pub encode_ms: f64,
    /// Decode wall time in milliseconds.
    pub decode_ms: f64,
    /// Decoded coordinates.
    pub decoded: Vec<[f64; 3]>,
    /// Whether the decoded points keep the input order (else errors are nearest-neighbour).
    pub ordered: bool,
    /// The setting used, for the row.
    pub setting: String,
}

/// KITTI velodyne records (x, y, z, reflectance as little-endian f32).
///
/// # Errors
/// A size that is not a whole number of 16-byte records, or no points.
pub fn kitti_records(b: &[u8]) -> anyhow::Result<Vec<[f32; 4]>> {
    if b.is_empty() || b.len() % 16 != 0 {
        bail!("{} bytes is not a whole number of KITTI points", b.len());
    }
    let f = |c: &[u8]| f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    Ok(b.chunks_exact(16)
        .map(|c| [f(&c[0..4]), f(&c[4..8]), f(&c[8..12]), f(&c[12..16])])
        .collect())
}

fn check_precision(precision: f64) -> anyhow::Result<()> {
    if !(precision.is_finite() && precision > 0.0) {
        bail!("precision {precision} must be a positive number of metres");
    }
    Ok(())
}

/// LASzip: LAS 1.2 point format 0, scale = `precision`, offset 0, intensity =
/// round(reflectance · 65535); compressed and decompressed with the `laz` crate. The byte
/// count is the whole LAZ file: 227-byte header, the LASzip VLR, the compressed points.
/// Without `intensity` every intensity is 0 (a geometry-only comparison).
///
/// # Errors
/// A coordinate too large for the scale, or a `laz` failure.
pub fn laszip(points: &[[f32; 4]], precision: f64, intensity: bool) -> anyhow::Result<PointRun> {
    check_precision(precision)?;
    let mut records = Vec::with_capacity(points.len() * 20);
    for p in points {
        for &v in &p[..3] {
            let q = (f64::from(v) / precision).round();
            if q.is_nan() || q.abs() > f64::from(i32::MAX) {
                bail!("coordinate {v} does not fit LAS i32 at scale {precision}");
            }
            records.extend_from_slice(&(q as i32).to_le_bytes());
        }
        let r = f64::from(p[3]);
        let i = if intensity && r.is_finite() {
            (r.clamp(0.0, 1.0) * 65535.0).round() as u16
        } else {
            0
        };
        records.extend_from_slice(&i.to_le_bytes());
        records.extend_from_slice(&[0u8; 6]);
    }
    let t = Instant::now();
    let items = laz::LazItemRecordBuilder::default_for_point_format_id(0, 0)
        .map_err(|e| anyhow::anyhow!("laz items: {e}"))?;
    let mut c = laz::LasZipCompressor::from_laz_items(Cursor::new(Vec::new()), items)
        .map_err(|e| anyhow::anyhow!("laz compressor: {e}"))?;
    c.compress_many(&records)
        .map_err(|e| anyhow::anyhow!("laz compress: {e}"))?;
    c.done().map_err(|e| anyhow::anyhow!("laz done: {e}"))?;
    let vlr = c.vlr().clone();
    let data = c.into_inner().into_inner();
    let encode_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut vlr_bytes = Vec::new();
    vlr.write_to(&mut vlr_bytes).context("LASzip VLR")?;

    let t = Instant::now();
    let mut out = vec![0u8; records.len()];
    let mut d = laz::LasZipDecompressor::new(Cursor::new(&data[..]), vlr)
        .map_err(|e| anyhow::anyhow!("laz decompressor: {e}"))?;
    d.decompress_many(&mut out)
        .map_err(|e| anyhow::anyhow!("laz decompress: {e}"))?;
    let decode_ms = t.elapsed().as_secs_f64() * 1e3;
    if out != records {
        bail!("LASzip did not restore the LAS records exactly");
    }
    let g = |c: &[u8]| f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])) * precision;
    let decoded = out
        .chunks_exact(20)
        .map(|r| [g(&r[0..4]), g(&r[4..8]), g(&r[8..12])])
        .collect();
    Ok(PointRun {
        bytes: LAS12_HEADER + VLR_HEADER + vlr_bytes.len() as u64 + data.len() as u64,
        encode_ms,
        decode_ms,
        decoded,
        ordered: true,
        setting: format!("scale{precision}"),
    })
}

/// Fewest Draco position bits whose step (largest bounding-box extent / (2^bits − 1)) is
/// at most `precision`, so the error stays within `precision / 2`; capped at 30.
pub fn draco_bits(points: &[[f32; 4]], precision: f64) -> u32 {
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for p in points {
        for k in 0..3 {
            lo[k] = lo[k].min(f64::from(p[k]));
            hi[k] = hi[k].max(f64::from(p[k]));
        }
    }
    let extent = (0..3).map(|k| hi[k] - lo[k]).fold(0.0f64, f64::max);
    let mut bits = 1;
    while bits < 30 && extent / (2f64.powi(bits as i32) - 1.0) > precision {
        bits += 1;
    }
    bits
}

/// Draco: binary PLY (float32 x, y, z; geometry only) → `draco_encoder -point_cloud -qp B
/// -cl 10` → `draco_decoder` → PLY. Draco reorders points, so the errors are measured
/// against each input point's nearest decoded point.
///
/// # Errors
/// A tool failure or an unreadable decoded PLY.
pub fn draco(points: &[[f32; 4]], precision: f64, dir: &Path) -> anyhow::Result<PointRun> {
    check_precision(precision)?;
    let bits = draco_bits(points, precision);
    let input = dir.join("in.ply");
    let encoded = dir.join("out.drc");
    let decoded = dir.join("dec.ply");
    let mut ply = format!(
        "ply\nformat binary_little_endian 1.0\nelement vertex {}\nproperty float x\nproperty float y\nproperty float z\nend_header\n",
        points.len()
    )
    .into_bytes();
    for p in points {
        for v in &p[..3] {
            ply.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(&input, &ply).with_context(|| format!("writing {}", input.display()))?;
    let mut enc = Command::new("draco_encoder");
    enc.arg("-point_cloud")
        .arg("-i")
        .arg(&input)
        .arg("-o")
        .arg(&encoded)
        .args(["-qp", &bits.to_string(), "-cl", "10"]);
    let encode_ms = run(&mut enc)?;
    let bytes = std::fs::metadata(&encoded)
        .context("draco_encoder wrote no output")?
        .len();
    let mut dec = Command::new("draco_decoder");
    dec.arg("-i").arg(&encoded).arg("-o").arg(&decoded);
    let decode_ms = run(&mut dec)?;
    let out = std::fs::read(&decoded).with_context(|| format!("reading {}", decoded.display()))?;
    let decoded = read_ply_xyz(&out).context("decoded PLY")?;
    Ok(PointRun {
        bytes,
        encode_ms,
        decode_ms,
        decoded,
        ordered: false,
        setting: format!("qp{bits}"),
    })
}

fn run(cmd: &mut Command) -> anyhow::Result<f64> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let t = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{} exited with {}: {}",
            cmd.get_program().to_string_lossy(),
            out.status,
            err.trim().lines().last().unwrap_or("")
        );
    }
    Ok(ms)
}

fn type_size(t: &str) -> Option<usize> {
    Some(match t {
        "char" | "uchar" | "int8" | "uint8" => 1,
        "short" | "ushort" | "int16" | "uint16" => 2,
        "int" | "uint" | "int32" | "uint32" | "float" | "float32" => 4,
        "double" | "float64" => 8,
        _ => return None,
    })
}

fn read_scalar(t: &str, b: &[u8]) -> f64 {
    match t {
        "char" | "int8" => f64::from(b[0] as i8),
        "uchar" | "uint8" => f64::from(b[0]),
        "short" | "int16" => f64::from(i16::from_le_bytes([b[0], b[1]])),
        "ushort" | "uint16" => f64::from(u16::from_le_bytes([b[0], b[1]])),
        "int" | "int32" => f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        "uint" | "uint32" => f64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        "float" | "float32" => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        _ => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
    }
}

/// Reads x, y, z of the `vertex` element of a PLY file (ASCII or binary little-endian; the
/// vertex element must come first and have only scalar properties).
///
/// # Errors
/// Anything else, or a truncated file.
pub fn read_ply_xyz(b: &[u8]) -> anyhow::Result<Vec<[f64; 3]>> {
    let end = b
        .windows(11)
        .position(|w| w == b"end_header\n")
        .context("no end_header")?;
    let header = std::str::from_utf8(&b[..end]).context("header is not text")?;
    let body = &b[end + 11..];
    let mut ascii = None;
    let mut count = None;
    let mut props: Vec<(String, String)> = Vec::new();
    let mut in_vertex = false;
    for line in header.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["format", "ascii", ..] => ascii = Some(true),
            ["format", "binary_little_endian", ..] => ascii = Some(false),
            ["format", f, ..] => bail!("PLY format {f} not supported"),
            ["element", "vertex", n] => {
                if count.is_some() {
                    bail!("two vertex elements");
                }
                count = Some(n.parse::<usize>().context("vertex count")?);
                in_vertex = true;
            }
            ["element", ..] => {
                if count.is_none() {
                    bail!("vertex is not the first PLY element");
                }
                in_vertex = false;
            }
            ["property", "list", ..] if in_vertex => bail!("list property in vertex"),
            ["property", t, name] if in_vertex => {
                type_size(t).with_context(|| format!("PLY type {t}"))?;
                props.push(((*t).to_string(), (*name).to_string()));
            }
            _ => {}
        }
    }
    let ascii = ascii.context("no PLY format line")?;
    let n = count.context("no vertex element")?;
    let idx = |name: &str| {
        props
            .iter()
            .position(|(_, p)| p == name)
            .with_context(|| format!("no {name} property"))
    };
    let (ix, iy, iz) = (idx("x")?, idx("y")?, idx("z")?);
    let mut out = Vec::with_capacity(n);
    if ascii {
        let text = std::str::from_utf8(body).context("ASCII PLY body is not text")?;
        let mut lines = text.lines();
        for _ in 0..n {
            let line = lines.next().context("truncated ASCII PLY")?;
            let v: Vec<f64> = line
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .context("bad number in ASCII PLY")?;
            if v.len() < props.len() {
                bail!("short vertex line");
            }
            out.push([v[ix], v[iy], v[iz]]);
        }
    } else {
        let offs: Vec<usize> = props
            .iter()
            .scan(0, |o, (t, _)| {
                let cur = *o;
                *o += type_size(t).unwrap_or(0);
                Some(cur)
            })
            .collect();
        let rec: usize = props.iter().map(|(t, _)| type_size(t).unwrap_or(0)).sum();
        if body.len() < n.saturating_mul(rec) {
            bail!("truncated binary PLY");
        }
        for r in body.chunks_exact(rec.max(1)).take(n) {
            let g = |i: usize| read_scalar(&props[i].0, &r[offs[i]..]);
            out.push([g(ix), g(iy), g(iz)]);
        }
    }
    Ok(out)
}

/// Errors from each reference point to its nearest decoded point (for peers that reorder
/// points): the largest coordinate error and the mean / largest distance. Searches a hash
/// grid of cell `cell` out to 4 cells; `None` if the counts differ, there are no points, or
/// some point has no decoded point within reach.
pub fn nearest_errors(
    reference: &[[f64; 3]],
    decoded: &[[f64; 3]],
    cell: f64,
) -> Option<PointErrors> {
    if reference.len() != decoded.len() || reference.is_empty() || cell.is_nan() || cell <= 0.0 {
        return None;
    }
    let key = |p: &[f64; 3]| {
        [
            (p[0] / cell).floor() as i64,
            (p[1] / cell).floor() as i64,
            (p[2] / cell).floor() as i64,
        ]
    };
    let mut grid: HashMap<[i64; 3], Vec<u32>> = HashMap::new();
    for (i, q) in decoded.iter().enumerate() {
        grid.entry(key(q)).or_default().push(i as u32);
    }
    let mut e = PointErrors {
        max_coordinate: 0.0,
        mean_distance: 0.0,
        max_distance: 0.0,
    };
    let mut sum = 0.0;
    for p in reference {
        let k = key(p);
        let mut best: Option<(f64, usize)> = None;
        for r in 1..=4i64 {
            for dx in -r..=r {
                for dy in -r..=r {
                    for dz in -r..=r {
                        let Some(v) = grid.get(&[k[0] + dx, k[1] + dy, k[2] + dz]) else {
                            continue;
                        };
                        for &j in v {
                            let q = &decoded[j as usize];
                            let d2 = (0..3).map(|a| (p[a] - q[a]).powi(2)).sum::<f64>();
                            if best.is_none_or(|(b, _)| d2 < b) {
                                best = Some((d2, j as usize));
                            }
                        }
                    }
                }
            }
            // A point found within r − 1 cells is certainly the nearest.
            if let Some((d2, _)) = best {
                if d2.sqrt() <= (r - 1) as f64 * cell {
                    break;
                }
            }
        }
        let (d2, j) = best?;
        let q = &decoded[j];
        for a in 0..3 {
            e.max_coordinate = e.max_coordinate.max((p[a] - q[a]).abs());
        }
        let d = d2.sqrt();
        e.max_distance = e.max_distance.max(d);
        sum += d;
    }
    e.mean_distance = sum / reference.len() as f64;
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ply_round_trip_and_nearest() {
        let ply = b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n1 2 3\n4 5 6\n";
        let p = read_ply_xyz(ply).unwrap();
        assert_eq!(p, vec![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
        let d = vec![[4.0, 5.0, 6.001], [1.0, 2.0, 3.0]];
        let e = nearest_errors(&p, &d, 0.01).unwrap();
        assert!((e.max_coordinate - 0.001).abs() < 1e-9);
        assert!(read_ply_xyz(b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nend_header\n1 2 3\n").is_err());
        assert!(read_ply_xyz(b"garbage").is_err());
    }

    #[test]
    fn draco_bits_cover_the_extent() {
        let pts = [[-80.0, 0.0, 0.0, 0.0], [80.0, 1.0, 1.0, 0.0]];
        assert_eq!(draco_bits(&pts, 0.001), 18);
    }
}
