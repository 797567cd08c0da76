//! lcodec-lidar: a LiDAR point-cloud codec with a hard coordinate error bound.
//!
//! Coordinates are quantized (`-p precision=P` metres, default 0.001) and coded by
//! scan-order-aware prediction from already decoded points (see [`geom`]), so there is no
//! drift; the point order is kept and every other field (reflectance, intensity, ring,
//! ...) is coded losslessly, floats bit-exact (see [`attr`]). Each chunk of up to
//! `-p points=N` points (default 65536, half a KITTI sweep) is coded independently, chunks
//! in parallel.
//!
//! **Error bound.** Every decoded coordinate is within `P/2` of the input, including the
//! final conversion to `f32`. When every input coordinate is the `f32` of a multiple of
//! `P` (KITTI raw sweeps lie on a 1 mm grid), the step is `P` itself and decoding gives
//! the input coordinates exactly (bit for bit, except that `-0.0` comes back as `0.0`). Otherwise the quantization step of a chunk is `P` minus one `f32` ulp
//! of the chunk's largest coordinate magnitude (0.8% finer than `P` at 1 mm for
//! coordinates below 128 m), so the half-ulp rounding of the output stays inside the
//! bound. Only when `P` is below four ulps of the coordinates (sub-micrometre precision
//! at tens of metres) the step becomes `P/2` and the bound is `P/4` plus half an ulp.
//!
//! Formats: KITTI `.bin`, nuScenes `.pcd.bin`, PCD (`DATA binary`, `binary_compressed`
//! with 4-byte fields, and `ascii`), PLY (binary little-endian with 4-byte properties,
//! and ascii), LAS and LAZ (see [`mod@format`]); `-p format=kitti|nuscenes|pcd|ply|las`
//! overrides detection (PCD / PLY / LAS variants are told apart from the header).
//! Decoding writes the input's format, header bytes verbatim, unless the decode
//! parameter `format` (which the CLI sets to the `-o` extension) names another point-cloud
//! format: then the points are converted (PLY / PCD binary, KITTI, nuScenes, LAS / LAZ
//! with the quantization step as scale; see [`convert`] for the rules and what each
//! target keeps). LAS coordinates are
//! already integers: they are coded exactly, so LAS files round-trip byte for byte
//! (`precision` does not apply). ASCII files keep every non-coordinate byte and write
//! coordinates as the shortest decimal of the decoded `f32`; compressed PCD and LAZ
//! are written re-compressed (identical points, possibly different compressed bytes).
//!
//! **Predictors.** Scan-order rings (files without a ring field, e.g. KITTI) are
//! predicted by default with a learned correction of the classical range prediction and
//! a learned laser height for the height prediction: a 11→16→16→2 MLP in integer
//! arithmetic ([`mlp`]; weights
//! `models/weights/lidar-mlp-v1.safetensors`, embedded; their XXH3-128 goes into the
//! `.lc` header's model reference), at precisions up to 2 mm (it works in 1 mm units; an
//! earlier range-only version measured worse at 5 mm and 1 cm). `-p predictor=classical` turns it off. Bitstream
//! version 2 (a chunk mode bit); version-1 files decode unchanged.
//!
//! ```
//! use lcodec_core::container::{read_header, ChunkSink, ChunkSource};
//! use lcodec_core::{Codec, DecodeOptions, EncodeOptions};
//! use lcodec_lidar::LidarCodec;
//!
//! // A tiny KITTI-style sweep: x, y, z, reflectance as little-endian f32.
//! let mut bin = Vec::new();
//! for i in 0..2000 {
//!     let a = i as f32 * 0.0031;
//!     for v in [10.0 * a.cos(), 10.0 * a.sin(), -1.7, 0.25] {
//!         bin.extend_from_slice(&v.to_le_bytes());
//!     }
//! }
//! let mut opts = EncodeOptions::default();
//! opts.file_name = Some("sweep.bin".into());
//! let mut packed = Vec::new();
//! let mut sink = ChunkSink::new(&mut packed, LidarCodec.info_static(), None);
//! LidarCodec.encode(&mut &bin[..], &mut sink, &opts)?;
//! sink.finish(bin.len() as u64, None)?;
//!
//! let dopts = DecodeOptions::default();
//! let mut r = &packed[..];
//! let header = read_header(&mut r, &dopts.limits)?;
//! let mut src = ChunkSource::stream(&mut r, header.len, dopts.limits, true);
//! let mut back = Vec::new();
//! LidarCodec.decode(&header, &mut src, &mut back, &dopts)?;
//! assert_eq!(back.len(), bin.len());
//! # Ok::<(), lcodec_core::Error>(())
//! ```
#![forbid(unsafe_code)]

pub mod ascii;
pub mod attr;
pub mod convert;
pub mod format;
pub mod geom;
mod lazio;
pub mod lzf;
pub mod mlp;
mod resid;

use std::io::{Read, Write};

use lcodec_core::container::{ChunkSink, ChunkSource, Header, ModelRef};
use lcodec_core::parallel::map_parallel;
use lcodec_core::{
    Codec, CodecId, CodecInfo, Confidence, DecodeOptions, EncodeOptions, Error, Kind, Limits,
    Metadata, Result,
};

pub use format::{Cloud, Format};

/// Default precision in metres.
pub const DEFAULT_PRECISION: f64 = 0.001;
/// Default points per chunk.
pub const DEFAULT_CHUNK_POINTS: usize = 1 << 16;
/// Largest chunk, in points (`-p points=N` accepts up to this).
pub const MAX_CHUNK_POINTS: usize = 1 << 24;
/// Largest quantized coordinate magnitude.
const MAX_Q: f64 = (1u64 << 30) as f64;
const PARAMS_VERSION: u8 = 1;
const RING_WRAP: u8 = 0;
const RING_ATTR: u8 = 1;
/// Chunk mode bit: ranges predicted with the learned correction (bitstream version 2).
const PRED_MLP: u8 = 0x10;

/// Coarsest precision (metres) at which the learned predictor is used: it was trained
/// at 1 mm (its outputs are in quantization units); a range-only version measured worse
/// at 5 mm and 1 cm.
pub const MLP_MAX_PRECISION: f64 = 0.002;

/// The range predictor of ring-ordered points (`-p predictor=mlp|classical`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Predictor {
    /// The previous point's range on the ring ([`geom`]).
    Classical,
    /// That range plus the learned correction of [`mlp`], and the height predicted from
    /// the learned laser height (the default; used for
    /// scan-order rings, i.e. files without a ring field, at precisions up to
    /// [`MLP_MAX_PRECISION`]).
    #[default]
    Mlp,
}

static INFO: CodecInfo = CodecInfo {
    id: CodecId::LIDAR,
    name: "lidar",
    version: 2,
    lossless: false,
    kind: Kind::PointCloud,
    description: "LiDAR point clouds (KITTI .bin, nuScenes .pcd.bin, PCD, PLY, LAS/LAZ): xyz within ±precision/2 (-p precision=0.001; LAS exact), attributes exact",
};

/// The LiDAR point-cloud codec.
#[derive(Debug, Default, Clone, Copy)]
pub struct LidarCodec;

impl LidarCodec {
    /// Creates the codec.
    pub fn new() -> Self {
        LidarCodec
    }

    /// The codec's static description (also available through [`Codec::info`]).
    pub fn info_static(&self) -> &'static CodecInfo {
        &INFO
    }
}

/// Codec parameters stored in the container header: version, format, fields per point,
/// ring column (255: none), record bytes (u16), precision (f64), then the verbatim
/// header and trailer bytes, each after a u32 length.
#[derive(Debug, Clone, PartialEq)]
struct Params {
    format: Format,
    fields: usize,
    record_bytes: usize,
    ring_column: Option<usize>,
    precision: f64,
    header: Vec<u8>,
    trailer: Vec<u8>,
}

impl Params {
    fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![
            PARAMS_VERSION,
            self.format.to_u8(),
            self.fields as u8,
            self.ring_column.map_or(255, |c| c as u8),
        ];
        b.extend_from_slice(&(self.record_bytes as u16).to_le_bytes());
        b.extend_from_slice(&self.precision.to_le_bytes());
        b.extend_from_slice(&(self.header.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.header);
        b.extend_from_slice(&(self.trailer.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.trailer);
        b
    }

    fn from_bytes(b: &[u8], offset: u64) -> Result<Params> {
        let bad = |what: String| Error::malformed(offset, format!("lidar parameters: {what}"));
        if b.len() < 22 {
            return Err(bad(format!("{} bytes (expected at least 22)", b.len())));
        }
        if b[0] != PARAMS_VERSION {
            return Err(Error::Unsupported(format!(
                "lidar parameter version {} (expected {PARAMS_VERSION})",
                b[0]
            )));
        }
        let format = Format::from_u8(b[1]).ok_or_else(|| bad(format!("format {}", b[1])))?;
        let fields = usize::from(b[2]);
        if fields < 3 {
            return Err(bad(format!(
                "{fields} fields per point (expected at least 3)"
            )));
        }
        let ring_column = match b[3] {
            255 => None,
            c if usize::from(c) + 3 < fields => Some(usize::from(c)),
            c => return Err(bad(format!("ring column {c}"))),
        };
        let record_bytes = usize::from(u16::from_le_bytes([b[4], b[5]]));
        let expected = if matches!(format, Format::Las | Format::Laz) {
            12 + 4 * (fields - 3)
        } else {
            4 * fields
        };
        if record_bytes > expected || record_bytes + 4 <= expected || record_bytes < 12 {
            return Err(bad(format!(
                "{record_bytes}-byte records with {fields} fields"
            )));
        }
        let mut p8 = [0u8; 8];
        p8.copy_from_slice(&b[6..14]);
        let precision = f64::from_le_bytes(p8);
        let mut r = Reader { b, pos: 14 };
        let hlen = r.u32()? as usize;
        let header = r
            .take(hlen)
            .map_err(|_| bad(format!("header of {hlen} bytes")))?
            .to_vec();
        let tlen = r.u32()? as usize;
        let trailer = r
            .take(tlen)
            .map_err(|_| bad(format!("trailer of {tlen} bytes")))?
            .to_vec();
        if r.pos != b.len() {
            return Err(bad(format!("{} bytes left over", b.len() - r.pos)));
        }
        Ok(Params {
            format,
            fields,
            record_bytes,
            ring_column,
            precision,
            header,
            trailer,
        })
    }
}

/// Quantization step for a chunk whose largest coordinate magnitude is `max_abs`, so that
/// the decoded `f32` stays within `precision / 2` (see the crate docs).
pub fn quant_step(precision: f64, max_abs: f32) -> f64 {
    let e = ((max_abs.to_bits() >> 23) & 0xff) as i32;
    let ulp = if e == 0 { 0.0 } else { 2f64.powi(e - 127 - 23) };
    let s = precision - ulp - precision * 1e-9;
    if s < precision / 2.0 {
        precision / 2.0
    } else {
        s
    }
}

/// Ring ids from an attribute column: small unsigned integers stored as integers or as
/// integral floats; `None` if any value is neither.
fn ring_ids(col: &[u32]) -> Option<Vec<u32>> {
    col.iter()
        .map(|&b| {
            if b <= geom::MAX_RING_ID {
                return Some(b);
            }
            let f = f32::from_bits(b);
            if (0.0..=geom::MAX_RING_ID as f32).contains(&f) && f.fract() == 0.0 {
                Some(f as u32)
            } else {
                None
            }
        })
        .collect()
}

/// A decoded chunk before dequantization: the step (0 for exact integers), the integer
/// points and the attribute columns.
pub type QuantizedChunk = (f64, Vec<[i32; 3]>, Vec<Vec<u32>>);

/// A decoded chunk: coordinates and attribute columns.
pub type DecodedChunk = (Vec<[f32; 3]>, Vec<Vec<u32>>);

/// Sizes of one encoded chunk's parts, for measurements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkStats {
    /// Points in the chunk.
    pub points: usize,
    /// Bytes of the geometry stream.
    pub geometry_bytes: usize,
    /// Bytes of the attribute streams (with their length fields).
    pub attribute_bytes: usize,
    /// Whole payload.
    pub payload_bytes: usize,
}

/// Quantizes the coordinates of points `start..end` with `precision`; returns the step
/// and the integer points.
///
/// # Errors
/// [`Error::InvalidArgument`] for non-finite coordinates or coordinates too large for the
/// precision.
pub fn quantize(xyz: &[[f32; 3]], precision: f64) -> Result<(f64, Vec<[i32; 3]>)> {
    quantize_with(xyz, precision, max_abs_of(xyz)?)
}

/// The largest coordinate magnitude of `xyz`.
///
/// # Errors
/// [`Error::InvalidArgument`] for non-finite coordinates.
pub fn max_abs_of(xyz: &[[f32; 3]]) -> Result<f32> {
    let mut max_abs = 0f32;
    for (i, p) in xyz.iter().enumerate() {
        for c in p {
            if !c.is_finite() {
                return Err(Error::InvalidArgument(format!(
                    "lidar: point {i} has a non-finite coordinate {c}"
                )));
            }
            max_abs = max_abs.max(c.abs());
        }
    }
    Ok(max_abs)
}

/// Like [`quantize`], with the step chosen for coordinates up to `max_abs` (at least
/// the largest magnitude in `xyz`): the encoder uses the whole file's, so every chunk
/// has the same step (LAS conversion stores it as the scale).
///
/// # Errors
/// As [`quantize`].
pub fn quantize_with(
    xyz: &[[f32; 3]],
    precision: f64,
    max_abs: f32,
) -> Result<(f64, Vec<[i32; 3]>)> {
    let max_abs = max_abs.max(max_abs_of(xyz)?);
    let s = quant_step(precision, max_abs);
    if f64::from(max_abs) / s >= MAX_Q {
        return Err(Error::InvalidArgument(format!(
            "lidar: coordinate {max_abs} too large for precision {precision} (at most 2^30 steps)"
        )));
    }
    let q = xyz
        .iter()
        .map(|p| [0, 1, 2].map(|k| (f64::from(p[k]) / s).round() as i32))
        .collect();
    Ok((s, q))
}

/// The decoded coordinate of quantized value `q` at step `s`.
#[inline]
pub fn dequantize(q: i32, s: f64) -> f32 {
    (f64::from(q) * s) as f32
}

/// Encodes points `start..end` of a cloud into one chunk payload.
///
/// # Errors
/// Invalid coordinates; coder errors.
pub fn encode_chunk(
    cloud: &Cloud,
    start: usize,
    end: usize,
    precision: f64,
) -> Result<(Vec<u8>, ChunkStats)> {
    encode_chunk_with(cloud, start, end, precision, &ChunkOptions::default())
}

/// Encoder choices for [`encode_chunk_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ChunkOptions {
    /// Quantize for coordinates up to this magnitude (the whole file's largest), so all
    /// chunks share one step; `0` uses the chunk's own.
    pub max_abs: f32,
    /// The range predictor.
    pub predictor: Predictor,
    /// Quantize with step `precision` exactly: the caller checked with [`on_grid`] that
    /// every coordinate is a multiple of it (KITTI raw sweeps lie on a 1 mm grid), so
    /// decoding reproduces the input coordinates bit for bit.
    pub grid: bool,
}

/// True when every coordinate is the `f32` nearest to a multiple of `precision` (as
/// [`dequantize`] computes it), so quantizing with step `precision` is lossless (up to
/// the sign of zero).
pub fn on_grid(xyz: &[[f32; 3]], precision: f64) -> bool {
    xyz.iter().all(|p| {
        p.iter().all(|&c| {
            let q = (f64::from(c) / precision).round();
            q.abs() < MAX_Q && (q * precision) as f32 == c
        })
    })
}

/// Like [`encode_chunk`], with encoder choices.
///
/// # Errors
/// As [`encode_chunk`].
pub fn encode_chunk_with(
    cloud: &Cloud,
    start: usize,
    end: usize,
    precision: f64,
    o: &ChunkOptions,
) -> Result<(Vec<u8>, ChunkStats)> {
    let n = end - start;
    // Step 0 marks integer coordinates coded exactly (LAS).
    let (s, q) = if cloud.integer_coords() {
        (0.0, cloud.ixyz[start..end].to_vec())
    } else if o.grid {
        let q = cloud.xyz[start..end]
            .iter()
            .map(|p| p.map(|v| (f64::from(v) / precision).round() as i32))
            .collect();
        (precision, q)
    } else {
        quantize_with(&cloud.xyz[start..end], precision, o.max_abs)?
    };
    let ids = cloud
        .ring_column
        .and_then(|c| ring_ids(&cloud.attrs[c][start..end]));
    let p = geom::estimate_step(&q, ids.as_deref());
    let learned = (o.predictor == Predictor::Mlp
        && ids.is_none()
        && s > 0.0
        && precision <= MLP_MAX_PRECISION)
        .then_some(mlp::LEARNED);
    let net = match learned {
        Some(l) => Some((mlp::shipped()?, l)),
        None => None,
    };
    let mut out = Vec::new();
    out.extend_from_slice(&(n as u32).to_le_bytes());
    out.extend_from_slice(&s.to_le_bytes());
    out.extend_from_slice(&p.cos_step.to_le_bytes());
    out.extend_from_slice(&p.sin_step.to_le_bytes());
    out.push(
        if ids.is_some() { RING_ATTR } else { RING_WRAP }
            | if net.is_some() { PRED_MLP } else { 0 },
    );
    let mut attribute_bytes = 0;
    let mut k = 0;
    while k < cloud.attrs.len() {
        let col = &cloud.attrs[k][start..end];
        if !cloud.integer_coords() {
            let whole = attr::encode(col)?;
            out.extend_from_slice(&(whole.len() as u32).to_le_bytes());
            out.extend_from_slice(&whole);
            attribute_bytes += whole.len() + 4;
            k += 1;
            continue;
        }
        // LAS record tails mix fields of 1, 2 and 8 bytes: per word column, a flag byte
        // then the column as words (0), as four byte columns (1), or with the next
        // column as a 64-bit value coded by its deltas (2: GPS time in formats 1 and 3).
        let one = las_word_column(col)?;
        if let Some(next) = cloud.attrs.get(k + 1) {
            let next = &next[start..end];
            let pair = las_delta_pair(col, next)?;
            let two = las_word_column(next)?;
            if pair.len() < one.len() + two.len() {
                out.push(LAS_DELTA64);
                out.extend_from_slice(&pair);
                attribute_bytes += pair.len() + 1;
                k += 2;
                continue;
            }
        }
        out.extend_from_slice(&one);
        attribute_bytes += one.len();
        k += 1;
    }
    let g = geom::encode_with(&q, ids.as_deref(), p, net)?;
    out.extend_from_slice(&g);
    let stats = ChunkStats {
        points: n,
        geometry_bytes: g.len(),
        attribute_bytes,
        payload_bytes: out.len(),
    };
    Ok((out, stats))
}

const LAS_WORDS: u8 = 0;
const LAS_BYTES: u8 = 1;
const LAS_DELTA64: u8 = 2;

/// One LAS word column with its flag byte: whole words or four byte columns, whichever
/// is smaller.
fn las_word_column(col: &[u32]) -> Result<Vec<u8>> {
    let whole = attr::encode(col)?;
    let mut split = vec![LAS_BYTES];
    for b in 0..4 {
        let part: Vec<u32> = col.iter().map(|w| (w >> (8 * b)) & 0xff).collect();
        let a = attr::encode(&part)?;
        split.extend_from_slice(&(a.len() as u32).to_le_bytes());
        split.extend_from_slice(&a);
    }
    if split.len() < whole.len() + 5 {
        return Ok(split);
    }
    let mut out = vec![LAS_WORDS];
    out.extend_from_slice(&(whole.len() as u32).to_le_bytes());
    out.extend_from_slice(&whole);
    Ok(out)
}

/// Two LAS word columns as 64-bit values (`lo | hi << 32`): zigzagged wrapping deltas
/// from the previous point, each delta's low and high words as columns (no flag byte).
fn las_delta_pair(lo: &[u32], hi: &[u32]) -> Result<Vec<u8>> {
    let mut prev = 0u64;
    let (mut dl, mut dh) = (Vec::with_capacity(lo.len()), Vec::with_capacity(lo.len()));
    for (&a, &b) in lo.iter().zip(hi) {
        let v = u64::from(a) | (u64::from(b) << 32);
        let d = v.wrapping_sub(prev) as i64;
        let z = ((d << 1) ^ (d >> 63)) as u64;
        dl.push(z as u32);
        dh.push((z >> 32) as u32);
        prev = v;
    }
    let mut out = Vec::new();
    for c in [dl, dh] {
        let e = attr::encode(&c)?;
        out.extend_from_slice(&(e.len() as u32).to_le_bytes());
        out.extend_from_slice(&e);
    }
    Ok(out)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.b.len() - self.pos < n {
            return Err(Error::codec(
                "lidar",
                format!("chunk payload truncated at byte {}", self.pos),
            ));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn f64(&mut self) -> Result<f64> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(f64::from_le_bytes(a))
    }
}

/// Decodes one chunk payload into its quantization step (0 for exact integer
/// coordinates), the integer points and the attribute columns; `expected_points`
/// (from the chunk's declared length) bounds the allocation for damaged payloads.
///
/// # Errors
/// [`Error::Codec`] for damaged payloads.
pub fn decode_chunk_quantized(
    payload: &[u8],
    fields: usize,
    ring_column: Option<usize>,
    expected_points: Option<usize>,
) -> Result<QuantizedChunk> {
    let mut r = Reader { b: payload, pos: 0 };
    let n = r.u32()? as usize;
    if expected_points.is_some_and(|e| e != n) || n > MAX_CHUNK_POINTS {
        return Err(Error::codec(
            "lidar",
            format!(
                "chunk of {n} points, its length says {expected_points:?} (at most {MAX_CHUNK_POINTS})"
            ),
        ));
    }
    let s = r.f64()?;
    let cos_step = r.f64()?;
    let sin_step = r.f64()?;
    if !(s.is_finite() && s >= 0.0 && cos_step.is_finite() && sin_step.is_finite()) {
        return Err(Error::codec("lidar", "invalid chunk parameters"));
    }
    let mode = r.take(1)?[0];
    let mut attrs: Vec<Vec<u32>> = Vec::with_capacity(fields - 3);
    while attrs.len() < fields - 3 {
        let flag = if s == 0.0 { r.take(1)?[0] } else { LAS_WORDS };
        match flag {
            LAS_WORDS => {
                let len = r.u32()? as usize;
                attrs.push(attr::decode(r.take(len)?, n)?);
            }
            LAS_BYTES => {
                let mut col = vec![0u32; n];
                for b in 0..4 {
                    let len = r.u32()? as usize;
                    let part = attr::decode(r.take(len)?, n)?;
                    for (c, v) in col.iter_mut().zip(part) {
                        *c |= (v & 0xff) << (8 * b);
                    }
                }
                attrs.push(col);
            }
            LAS_DELTA64 if attrs.len() + 2 <= fields - 3 => {
                let len = r.u32()? as usize;
                let dl = attr::decode(r.take(len)?, n)?;
                let len = r.u32()? as usize;
                let dh = attr::decode(r.take(len)?, n)?;
                let (mut lo, mut hi) = (Vec::with_capacity(n), Vec::with_capacity(n));
                let mut prev = 0u64;
                for (&a, &b) in dl.iter().zip(&dh) {
                    let z = u64::from(a) | (u64::from(b) << 32);
                    let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
                    prev = prev.wrapping_add(d as u64);
                    lo.push(prev as u32);
                    hi.push((prev >> 32) as u32);
                }
                if lo.len() != n {
                    return Err(Error::codec("lidar", "short 64-bit attribute columns"));
                }
                attrs.push(lo);
                attrs.push(hi);
            }
            f => return Err(Error::codec("lidar", format!("attribute column flag {f}"))),
        }
    }
    let net = if mode & PRED_MLP != 0 {
        Some((mlp::shipped()?, mlp::LEARNED))
    } else {
        None
    };
    let ids = match mode & !PRED_MLP {
        RING_WRAP => None,
        RING_ATTR => {
            let c = ring_column
                .ok_or_else(|| Error::codec("lidar", "ring mode without a ring column"))?;
            Some(
                ring_ids(&attrs[c])
                    .ok_or_else(|| Error::codec("lidar", "ring column holds invalid ring ids"))?,
            )
        }
        m => return Err(Error::codec("lidar", format!("unknown ring mode {m}"))),
    };
    let q = geom::decode_with(
        &payload[r.pos..],
        n,
        ids.as_deref(),
        geom::GeomParams { cos_step, sin_step },
        net,
    )?;
    Ok((s, q, attrs))
}

/// Decodes one chunk payload into `f32` coordinates and attribute columns (see
/// [`decode_chunk_quantized`]).
///
/// # Errors
/// [`Error::Codec`] for damaged payloads.
pub fn decode_chunk(
    payload: &[u8],
    fields: usize,
    ring_column: Option<usize>,
    expected_points: Option<usize>,
) -> Result<DecodedChunk> {
    let (s, q, attrs) = decode_chunk_quantized(payload, fields, ring_column, expected_points)?;
    let xyz = q
        .iter()
        .map(|p| p.map(|v| if s == 0.0 { v as f32 } else { dequantize(v, s) }))
        .collect();
    Ok((xyz, attrs))
}

fn read_all(src: &mut dyn Read) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    src.read_to_end(&mut data)?;
    Ok(data)
}

/// Parses the codec parameters of an encode call.
fn precision_of(opts: &EncodeOptions) -> Result<f64> {
    let p: f64 = opts.param("precision")?.unwrap_or(DEFAULT_PRECISION);
    if !(1e-9..=1e3).contains(&p) {
        return Err(Error::InvalidArgument(format!(
            "lidar: precision {p} (expected 1e-9 ..= 1000 metres)"
        )));
    }
    Ok(p)
}

/// Checks that a file's model reference (if any) names the shipped network.
fn check_model(header: &Header) -> Result<()> {
    let m = &header.model;
    if m.id.is_empty() && m.weights_hash.is_empty() {
        return Ok(());
    }
    if m.id != mlp::MODEL_ID || m.weights_hash != mlp::shipped_hash() {
        return Err(Error::Unsupported(format!(
            "lidar: the file was coded with model {:?} (weights {}), this build has {} ({})",
            m.id,
            hex(&m.weights_hash),
            mlp::MODEL_ID,
            hex(&mlp::shipped_hash())
        )));
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Decompresses a stored ASCII skeleton (raw length, then zstd).
fn ascii_skeleton(t: &[u8], max_alloc: u64, offset: u64) -> Result<Vec<u8>> {
    let bad = || Error::malformed(offset, "lidar: ASCII skeleton");
    let raw = u64::from_le_bytes(t.get(..8).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
    Limits::check(raw, max_alloc, "lidar ASCII skeleton")?;
    zstd::bulk::decompress(&t[8..], raw as usize).map_err(|_| bad())
}

/// The format a decode converts to (see [`convert`]), if any.
fn target_of(params: &Params, opts: &DecodeOptions) -> Option<Format> {
    let name = opts.params.get(lcodec_core::FORMAT_PARAM)?;
    convert::target_for(params.format, params.ring_column.is_some(), name)
}

/// Decodes every chunk, then writes the points in `target` (see [`convert`]).
fn decode_converted(
    params: &Params,
    src: &mut ChunkSource<'_>,
    dst: &mut dyn Write,
    opts: &DecodeOptions,
    target: Format,
) -> Result<()> {
    let threads = opts.effective_threads();
    let rec = params.record_bytes;
    let mut collected = convert::Collected {
        chunks: Vec::new(),
        attrs: vec![Vec::new(); params.fields - 3],
        record_bytes: rec,
        trailer: if params.format.is_ascii() {
            ascii_skeleton(&params.trailer, opts.limits.max_alloc, 0)?
        } else {
            params.trailer.clone()
        },
    };
    loop {
        let batch = src.next_batch(threads)?;
        if batch.is_empty() {
            break;
        }
        let dec = map_parallel(&batch, threads, &|c| {
            if c.raw_len as usize % rec != 0 {
                return Err(c.malformed(format!(
                    "length {} is not a whole number of {rec}-byte points",
                    c.raw_len
                )));
            }
            decode_chunk_quantized(
                &c.payload,
                params.fields,
                params.ring_column,
                Some(c.raw_len as usize / rec),
            )
            .map_err(|e| c.malformed(e))
        })?;
        for (s, q, attrs) in dec {
            collected.chunks.push((s, q));
            for (c, a) in collected.attrs.iter_mut().zip(attrs) {
                c.extend_from_slice(&a);
            }
        }
    }
    let mut out = Vec::new();
    convert::write(params.format, &params.header, collected, target, &mut out)?;
    dst.write_all(&out)?;
    Ok(())
}

impl Codec for LidarCodec {
    fn info(&self) -> &'static CodecInfo {
        &INFO
    }

    fn sniff(&self, head: &[u8], file_name: Option<&str>) -> Option<Confidence> {
        match format::detect(head, file_name, None)? {
            Format::PlyBinary | Format::PlyAscii => {
                let h = String::from_utf8_lossy(&head[..head.len().min(4096)]);
                ((h.contains("binary_little_endian") || h.contains("format ascii 1.0"))
                    && h.contains("element vertex"))
                .then_some(Confidence::MAGIC)
            }
            Format::PcdBinary | Format::PcdAscii | Format::PcdCompressed => {
                let h = String::from_utf8_lossy(&head[..head.len().min(4096)]);
                (h.contains("\nDATA binary") || h.contains("\nDATA ascii"))
                    .then_some(Confidence::CONTENT)
            }
            Format::Nuscenes => {
                format::plausible_float_records(head, 5).then_some(Confidence::CONTENT)
            }
            Format::Kitti => {
                format::plausible_float_records(head, 4).then_some(Confidence::EXTENSION)
            }
            Format::Las | Format::Laz => Some(Confidence::MAGIC),
        }
    }

    fn encode(
        &self,
        src: &mut dyn Read,
        sink: &mut ChunkSink<'_>,
        opts: &EncodeOptions,
    ) -> Result<()> {
        let precision = precision_of(opts)?;
        let predictor = match opts.params.get("predictor").map(String::as_str) {
            None | Some("mlp") => Predictor::Mlp,
            Some("classical") => Predictor::Classical,
            Some(p) => {
                return Err(Error::InvalidArgument(format!(
                    "lidar: predictor {p:?} (expected mlp or classical)"
                )));
            }
        };
        let chunk_points: usize = opts.param("points")?.unwrap_or(DEFAULT_CHUNK_POINTS);
        if !(1024..=MAX_CHUNK_POINTS).contains(&chunk_points) {
            return Err(Error::InvalidArgument(format!(
                "lidar: points={chunk_points} (expected 1024 ..= 16777216)"
            )));
        }
        let data = read_all(src)?;
        let name = opts
            .file_name
            .clone()
            .or_else(|| sink.file_name().map(str::to_string));
        let format = match opts.params.get("format") {
            Some(f) => Format::from_name(f).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "lidar: format {f:?} (expected kitti, nuscenes, pcd, ply, las, pcd-ascii, ply-ascii, pcd-compressed or laz)"
                ))
            })?,
            None => format::detect(
                &data[..data.len().min(4096)],
                name.as_deref(),
                Some(data.len() as u64),
            )
            .ok_or_else(|| {
                Error::InvalidArgument(
                    "lidar: input is not a recognised point cloud (use -p format=...)".into(),
                )
            })?,
        };
        let cloud = format::parse(&data, format)?;
        drop(data);
        let format = cloud.format;
        let trailer = if format.is_ascii() {
            // The ASCII skeleton: raw length, then zstd.
            let z = zstd::bulk::compress(&cloud.trailer, 19)
                .map_err(|e| Error::codec("lidar", format!("zstd: {e}")))?;
            let mut t = (cloud.trailer.len() as u64).to_le_bytes().to_vec();
            t.extend_from_slice(&z);
            t
        } else {
            cloud.trailer.clone()
        };
        let params = Params {
            format,
            fields: cloud.fields,
            record_bytes: cloud.record_bytes,
            ring_column: cloud.ring_column,
            precision,
            header: cloud.header.clone(),
            trailer,
        };
        let mut meta = Metadata::new(Kind::PointCloud);
        meta.width = u32::try_from(cloud.len()).unwrap_or(u32::MAX);
        meta.channels = cloud.fields as u16;
        meta.bit_depth = 32;
        // The learned predictor applies to scan-order rings (no ring field).
        let model = if predictor == Predictor::Mlp
            && !cloud.integer_coords()
            && cloud.ring_column.is_none()
            && precision <= MLP_MAX_PRECISION
        {
            ModelRef {
                id: mlp::MODEL_ID.into(),
                weights_hash: mlp::shipped_hash().to_vec(),
            }
        } else {
            ModelRef::default()
        };
        let model_used = !model.id.is_empty();
        sink.begin(meta, model, &params.to_bytes())?;
        let ranges: Vec<(usize, usize)> = (0..cloud.len())
            .step_by(chunk_points)
            .map(|a| (a, (a + chunk_points).min(cloud.len())))
            .collect();
        let threads = opts.effective_threads();
        let copts = ChunkOptions {
            max_abs: if cloud.integer_coords() {
                0.0
            } else {
                max_abs_of(&cloud.xyz)?
            },
            predictor: if model_used {
                predictor
            } else {
                Predictor::Classical
            },
            grid: !cloud.integer_coords() && on_grid(&cloud.xyz, precision),
        };
        for batch in ranges.chunks(threads.max(1) * 2) {
            let enc = map_parallel(batch, threads, &|&(a, b)| {
                encode_chunk_with(&cloud, a, b, precision, &copts)
            })?;
            for ((a, b), (payload, _)) in batch.iter().zip(enc) {
                let raw = u32::try_from((b - a) * cloud.record_bytes)
                    .map_err(|_| Error::InvalidArgument("lidar: chunk over 4 GiB".into()))?;
                sink.push(&payload, raw)?;
            }
        }
        Ok(())
    }

    fn decodes_transformed(&self, header: &Header, opts: &DecodeOptions) -> bool {
        Params::from_bytes(&header.params, header.len)
            .ok()
            .and_then(|p| target_of(&p, opts))
            .is_some()
    }

    fn decode(
        &self,
        header: &Header,
        src: &mut ChunkSource<'_>,
        dst: &mut dyn Write,
        opts: &DecodeOptions,
    ) -> Result<()> {
        let params = Params::from_bytes(&header.params, header.len)?;
        check_model(header)?;
        let target = target_of(&params, opts);
        if let Some(t) = target {
            return decode_converted(&params, src, dst, opts, t);
        }
        let whole = params.format.whole_file();
        if !whole {
            dst.write_all(&params.header)?;
        }
        let threads = opts.effective_threads();
        let rec = params.record_bytes;
        let mut cloud = Cloud {
            format: params.format,
            header: Vec::new(),
            fields: params.fields,
            record_bytes: rec,
            xyz: Vec::new(),
            ixyz: Vec::new(),
            trailer: Vec::new(),
            attrs: vec![Vec::new(); params.fields - 3],
            ring_column: params.ring_column,
        };
        loop {
            let batch = src.next_batch(threads)?;
            if batch.is_empty() && whole {
                cloud.header = params.header;
                cloud.trailer = if params.format.is_ascii() {
                    ascii_skeleton(&params.trailer, opts.limits.max_alloc, header.len)?
                } else {
                    params.trailer
                };
                let mut out = Vec::new();
                cloud.write_to(&mut out)?;
                dst.write_all(&out)?;
                return Ok(());
            }
            if batch.is_empty() {
                dst.write_all(&params.trailer)?;
                return Ok(());
            }
            let dec = map_parallel(&batch, threads, &|c| {
                if c.raw_len as usize % rec != 0 {
                    return Err(c.malformed(format!(
                        "length {} is not a whole number of {rec}-byte points",
                        c.raw_len
                    )));
                }
                let expected = c.raw_len as usize / rec;
                let (s, q, attrs) = decode_chunk_quantized(
                    &c.payload,
                    params.fields,
                    params.ring_column,
                    Some(expected),
                )
                .map_err(|e| c.malformed(e))?;
                if whole {
                    let expected_bytes = expected * rec;
                    return Ok((Vec::new(), Some((s, q, attrs, expected_bytes))));
                }
                let mut out = Vec::new();
                if params.format == Format::Las {
                    format::write_int_records(&q, &attrs, rec, &mut out);
                } else {
                    let xyz: Vec<[f32; 3]> =
                        q.iter().map(|p| p.map(|v| dequantize(v, s))).collect();
                    format::write_records(&xyz, &attrs, 0, xyz.len(), &mut out);
                }
                if out.len() != c.raw_len as usize {
                    return Err(c.malformed(format!(
                        "decoded to {} bytes, expected {}",
                        out.len(),
                        c.raw_len
                    )));
                }
                Ok((out, None))
            })?;
            for (d, parts) in dec {
                if let Some((s, q, attrs, _)) = parts {
                    if cloud.integer_coords() {
                        cloud.ixyz.extend_from_slice(&q);
                    } else {
                        cloud
                            .xyz
                            .extend(q.iter().map(|p| p.map(|v| dequantize(v, s))));
                    }
                    for (c, a) in cloud.attrs.iter_mut().zip(attrs) {
                        c.extend_from_slice(&a);
                    }
                } else {
                    dst.write_all(&d)?;
                }
            }
        }
    }
}
