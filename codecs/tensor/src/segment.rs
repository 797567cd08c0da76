//! Coding of one segment: a run of bytes modelled with one [`ElemKind`].
//!
//! Segment layout: LEB128 length in bytes, method byte, method body.
//! - `STORED`: the bytes.
//! - `FAST`: one `lcodec_entropy::fast` block of the bytes.
//! - `ZSTD`: LEB128 frame length, a zstd frame.
//! - `PLANES`: width byte `w`, then `w` fast blocks, plane `p` holding byte `p` of each element.
//! - `FLOAT`: format byte (0 BF16, 1 F16, 2 F32), then fast blocks: the exponents, the sign
//!   with the top mantissa bits (BF16/F32: sign + 7 bits; F16: sign + 2 bits), and for
//!   F16 the low mantissa byte, for F32 mantissa bytes 1 then 0.
//! - `QBLOCKS`: block size and scale-byte count, then two nested segments: the F16
//!   scales of every block, and the rest of every block (the quants).

use lcodec_core::{Error, Result};
use lcodec_entropy::fast;

use crate::layout::ElemKind;

const STORED: u8 = 0;
const FAST: u8 = 1;
const ZSTD: u8 = 2;
const PLANES: u8 = 3;
const FLOAT: u8 = 4;
const QBLOCKS: u8 = 5;

const FMT_BF16: u8 = 0;
const FMT_F16: u8 = 1;
const FMT_F32: u8 = 2;

/// Encoder settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// zstd level tried for byte and integer segments (0 = do not try zstd).
    pub zstd_level: i32,
    /// A near-random stream (signs, mantissas) is Huffman-coded only if that saves at
    /// least this fraction of it; otherwise it is stored, which decodes at memory speed.
    pub min_gain: f64,
    /// Allow tANS blocks (smaller on skewed streams, ~1.5× slower to decode than Huffman).
    pub tans: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            zstd_level: 19,
            min_gain: 0.02,
            tans: true,
        }
    }
}

fn err(msg: impl Into<String>) -> Error {
    Error::codec("tensor", msg)
}

/// Appends `v` as LEB128.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a LEB128 value at `*at`.
///
/// # Errors
/// Truncated or over-long encodings.
pub fn get_varint(b: &[u8], at: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b
            .get(*at)
            .ok_or_else(|| err(format!("truncated number at payload offset {}", *at)))?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(err(format!(
        "over-long number before payload offset {}",
        *at
    )))
}

/// Fast block, stored instead when Huffman saves less than `min_gain` of the stream.
fn put_stream(data: &[u8], min_gain: f64, tans: bool, out: &mut Vec<u8>) {
    if min_gain > 0.0 && data.len() >= 4096 {
        // Skip the trial encode when even the order-0 entropy cannot reach the gain.
        let counts = fast::histogram(data);
        let total = data.len() as f64;
        let bits: f64 = counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| c as f64 * (total / c as f64).log2())
            .sum();
        if bits / 8.0 > total * (1.0 - min_gain) {
            fast::encode_raw(data, out);
            return;
        }
    }
    let start = out.len();
    let n = if tans {
        fast::encode(data, out)
    } else {
        fast::encode_no_tans(data, out)
    };
    if min_gain > 0.0 && n > 2 && (n as f64) > (data.len() as f64) * (1.0 - min_gain) {
        out.truncate(start);
        fast::encode_raw(data, out);
    }
}

fn get_stream(b: &[u8], at: &mut usize, out: &mut [u8]) -> Result<()> {
    let rest = b.get(*at..).unwrap_or(&[]);
    let used =
        fast::decode(rest, out).map_err(|e| err(format!("at payload offset {}: {e}", *at)))?;
    *at += used;
    Ok(())
}

/// Appends one coded segment for `data` modelled as `kind`.
///
/// # Errors
/// Errors from zstd.
pub fn encode_segment(kind: ElemKind, data: &[u8], s: &Settings, out: &mut Vec<u8>) -> Result<()> {
    put_varint(out, data.len() as u64);
    let w = kind.width();
    let floats =
        matches!(kind, ElemKind::Bf16 | ElemKind::F16 | ElemKind::F32) && data.len() % w == 0;
    let mut best: Vec<u8> = Vec::new();
    let consider = |cand: Vec<u8>, best: &mut Vec<u8>| {
        if best.is_empty() || cand.len() < best.len() {
            *best = cand;
        }
    };
    if let ElemKind::QBlocks { block, scale } = kind {
        if data.len() % w == 0 && scale < block && scale % 2 == 0 {
            // Scales (F16) and quants apart: each gets the model that fits it.
            let (b, sc) = (block as usize, scale as usize);
            let mut scales = Vec::with_capacity(data.len() / b * sc);
            let mut quants = Vec::with_capacity(data.len() / b * (b - sc));
            for blk in data.chunks_exact(b) {
                scales.extend_from_slice(&blk[..sc]);
                quants.extend_from_slice(&blk[sc..]);
            }
            let mut c = vec![QBLOCKS, block, scale];
            encode_segment(ElemKind::F16, &scales, s, &mut c)?;
            encode_segment(ElemKind::Bytes, &quants, s, &mut c)?;
            consider(c, &mut best);
        }
    }
    if floats {
        consider(encode_float(kind, data, s), &mut best);
    } else {
        let mut c = vec![FAST];
        put_stream(data, 0.0, s.tans, &mut c);
        consider(c, &mut best);
        if matches!(kind, ElemKind::Int(2 | 4 | 8)) && data.len() % w == 0 {
            let mut c = vec![PLANES, w as u8];
            let n = data.len() / w;
            let mut plane = vec![0u8; n];
            for p in 0..w {
                for (x, e) in plane.iter_mut().zip(data.chunks_exact(w)) {
                    *x = e[p];
                }
                put_stream(&plane, 0.0, s.tans, &mut c);
            }
            consider(c, &mut best);
        }
        if s.zstd_level > 0 && data.len() >= 64 {
            // zstd's slow levels run at a few MB/s: cap them on big segments.
            let level = if data.len() > 1 << 20 {
                s.zstd_level.min(12)
            } else {
                s.zstd_level
            };
            let frame = zstd_compress(data, level)?;
            if frame.len() + 8 < best.len() {
                let mut c = vec![ZSTD];
                put_varint(&mut c, frame.len() as u64);
                c.extend_from_slice(&frame);
                consider(c, &mut best);
            }
        }
    }
    if best.len() > data.len() + 1 {
        out.push(STORED);
        out.extend_from_slice(data);
    } else {
        out.extend_from_slice(&best);
    }
    Ok(())
}

fn zstd_compress(data: &[u8], level: i32) -> Result<Vec<u8>> {
    let mut c = zstd::bulk::Compressor::new(level)?;
    c.include_contentsize(true)?;
    c.include_checksum(false)?;
    c.include_dictid(false)?;
    Ok(c.compress(data)?)
}

fn encode_float(kind: ElemKind, data: &[u8], s: &Settings) -> Vec<u8> {
    let w = kind.width();
    let n = data.len() / w;
    let mut out = Vec::with_capacity(data.len() + 64);
    out.push(FLOAT);
    let mut e = vec![0u8; n];
    let mut sm = vec![0u8; n];
    match kind {
        ElemKind::F16 => {
            out.push(FMT_F16);
            let mut lo = vec![0u8; n];
            for (((x, e), sm), lo) in data
                .chunks_exact(2)
                .zip(e.iter_mut())
                .zip(sm.iter_mut())
                .zip(lo.iter_mut())
            {
                *e = (x[1] >> 2) & 0x1f;
                *sm = ((x[1] >> 5) & 4) | (x[1] & 3);
                *lo = x[0];
            }
            put_stream(&e, 0.0, s.tans, &mut out);
            put_stream(&sm, s.min_gain, s.tans, &mut out);
            put_stream(&lo, s.min_gain, s.tans, &mut out);
        }
        ElemKind::F32 => {
            out.push(FMT_F32);
            let mut b1 = vec![0u8; n];
            let mut b0 = vec![0u8; n];
            for ((((x, e), sm), b1), b0) in data
                .chunks_exact(4)
                .zip(e.iter_mut())
                .zip(sm.iter_mut())
                .zip(b1.iter_mut())
                .zip(b0.iter_mut())
            {
                *e = (x[3] << 1) | (x[2] >> 7);
                *sm = (x[3] & 0x80) | (x[2] & 0x7f);
                *b1 = x[1];
                *b0 = x[0];
            }
            put_stream(&e, 0.0, s.tans, &mut out);
            put_stream(&sm, s.min_gain, s.tans, &mut out);
            put_stream(&b1, s.min_gain, s.tans, &mut out);
            put_stream(&b0, s.min_gain, s.tans, &mut out);
        }
        _ => {
            out.push(FMT_BF16);
            for ((x, e), sm) in data.chunks_exact(2).zip(e.iter_mut()).zip(sm.iter_mut()) {
                *e = (x[1] << 1) | (x[0] >> 7);
                *sm = (x[1] & 0x80) | (x[0] & 0x7f);
            }
            put_stream(&e, 0.0, s.tans, &mut out);
            put_stream(&sm, s.min_gain, s.tans, &mut out);
        }
    }
    out
}

/// Decodes one segment at `*at` of `payload` into the front of `out` and returns its length.
///
/// # Errors
/// [`Error::Codec`] for any malformed or truncated segment.
pub fn decode_segment(payload: &[u8], at: &mut usize, out: &mut [u8]) -> Result<usize> {
    decode_segment_at(payload, at, out, false)
}

fn decode_segment_at(
    payload: &[u8],
    at: &mut usize,
    out: &mut [u8],
    nested: bool,
) -> Result<usize> {
    let seg_at = *at;
    let len = get_varint(payload, at)?;
    if len == 0 || len > out.len() as u64 {
        return Err(err(format!(
            "segment at payload offset {seg_at}: length {len} (room for {})",
            out.len()
        )));
    }
    let len = len as usize;
    let out = &mut out[..len];
    let method = *payload
        .get(*at)
        .ok_or_else(|| err("truncated segment method"))?;
    *at += 1;
    match method {
        STORED => {
            let src = payload
                .get(*at..*at + len)
                .ok_or_else(|| err("truncated stored segment"))?;
            out.copy_from_slice(src);
            *at += len;
        }
        FAST => get_stream(payload, at, out)?,
        ZSTD => {
            let n = get_varint(payload, at)?;
            let frame = usize::try_from(n)
                .ok()
                .and_then(|n| payload.get(*at..at.checked_add(n)?))
                .ok_or_else(|| err("truncated zstd segment"))?;
            *at += frame.len();
            let mut d = zstd::bulk::Decompressor::new()?;
            d.window_log_max(27)?;
            let got = d
                .decompress_to_buffer(frame, out)
                .map_err(|e| err(format!("zstd: {e}")))?;
            if got != len {
                return Err(err(format!(
                    "zstd segment decoded to {got} bytes, expected {len}"
                )));
            }
        }
        PLANES => {
            let w = *payload
                .get(*at)
                .ok_or_else(|| err("truncated planes segment"))? as usize;
            *at += 1;
            if !matches!(w, 2 | 4 | 8) || len % w != 0 {
                return Err(err(format!("planes segment: width {w} for {len} bytes")));
            }
            let mut plane = vec![0u8; len / w];
            for p in 0..w {
                get_stream(payload, at, &mut plane)?;
                for (e, &x) in out.chunks_exact_mut(w).zip(plane.iter()) {
                    e[p] = x;
                }
            }
        }
        FLOAT => {
            let fmt = *payload
                .get(*at)
                .ok_or_else(|| err("truncated float segment"))?;
            *at += 1;
            decode_float(fmt, payload, at, out)?;
        }
        QBLOCKS if !nested => {
            let (block, scale) = match payload.get(*at..*at + 2) {
                Some(&[b, s]) => (b as usize, s as usize),
                _ => return Err(err("truncated quantized-block segment")),
            };
            *at += 2;
            if scale == 0 || scale >= block || scale % 2 != 0 || len % block != 0 {
                return Err(err(format!(
                    "quantized blocks of {block} bytes with {scale} scale bytes for {len} bytes"
                )));
            }
            let blocks = len / block;
            let mut scales = vec![0u8; blocks * scale];
            let mut quants = vec![0u8; blocks * (block - scale)];
            for part in [&mut scales, &mut quants] {
                if decode_segment_at(payload, at, part, true)? != part.len() {
                    return Err(err("quantized-block part has the wrong length"));
                }
            }
            for ((o, sc), q) in out
                .chunks_exact_mut(block)
                .zip(scales.chunks_exact(scale))
                .zip(quants.chunks_exact(block - scale))
            {
                o[..scale].copy_from_slice(sc);
                o[scale..].copy_from_slice(q);
            }
        }
        m => {
            return Err(err(format!(
                "unknown segment method {m} at payload offset {seg_at}"
            )));
        }
    }
    Ok(len)
}

/// A stream read in pieces: stored blocks are borrowed, coded ones decoded into `buf`.
struct Piecewise<'a> {
    dec: fast::Decoder<'a>,
    raw: Option<&'a [u8]>,
    pos: usize,
    buf: Vec<u8>,
}

impl<'a> Piecewise<'a> {
    fn open(payload: &'a [u8], at: &mut usize, n: usize) -> Result<Self> {
        let rest = payload.get(*at..).unwrap_or(&[]);
        let dec = fast::Decoder::new(rest, n)
            .map_err(|e| err(format!("at payload offset {}: {e}", *at)))?;
        *at += dec.block_len();
        let raw = dec.raw();
        Ok(Piecewise {
            dec,
            raw,
            pos: 0,
            buf: Vec::new(),
        })
    }
    fn next(&mut self, k: usize) -> Result<&[u8]> {
        if let Some(r) = self.raw {
            let s = r
                .get(self.pos..self.pos + k)
                .ok_or_else(|| err("stream shorter than its segment"))?;
            self.pos += k;
            return Ok(s);
        }
        self.buf.resize(k, 0);
        self.dec
            .fill(&mut self.buf[..k])
            .map_err(|e| err(e.to_string()))?;
        Ok(&self.buf[..k])
    }
}

/// Elements merged per step: the decoded pieces stay in L1/L2.
const PIECE: usize = 8192;

#[inline(always)]
fn merge_bf16(out: &mut [u8], e: &[u8], sm: &[u8]) {
    let mut oc = out.chunks_exact_mut(16);
    let mut ec = e.chunks_exact(8);
    let mut sc = sm.chunks_exact(8);
    for ((o, e), s) in (&mut oc).zip(&mut ec).zip(&mut sc) {
        let mut w = [0u8; 16];
        for j in 0..8 {
            w[2 * j] = (e[j] << 7) | (s[j] & 0x7f);
            w[2 * j + 1] = (s[j] & 0x80) | (e[j] >> 1);
        }
        o.copy_from_slice(&w);
    }
    for ((x, &e), &s) in oc
        .into_remainder()
        .chunks_exact_mut(2)
        .zip(ec.remainder())
        .zip(sc.remainder())
    {
        x[0] = (e << 7) | (s & 0x7f);
        x[1] = (s & 0x80) | (e >> 1);
    }
}

fn decode_float(fmt: u8, payload: &[u8], at: &mut usize, out: &mut [u8]) -> Result<()> {
    let w = match fmt {
        FMT_BF16 | FMT_F16 => 2,
        FMT_F32 => 4,
        f => return Err(err(format!("unknown float format {f}"))),
    };
    if out.len() % w != 0 {
        return Err(err(format!(
            "float segment of {} bytes is not a whole number of elements",
            out.len()
        )));
    }
    let n = out.len() / w;
    let mut e = Piecewise::open(payload, at, n)?;
    let mut sm = Piecewise::open(payload, at, n)?;
    match fmt {
        FMT_BF16 => {
            for oc in out.chunks_mut(2 * PIECE) {
                let k = oc.len() / 2;
                merge_bf16(oc, e.next(k)?, sm.next(k)?);
            }
        }
        FMT_F16 => {
            let mut lo = Piecewise::open(payload, at, n)?;
            for oc in out.chunks_mut(2 * PIECE) {
                let k = oc.len() / 2;
                let (e, sm, lo) = (e.next(k)?, sm.next(k)?, lo.next(k)?);
                for (((x, &e), &sm), &lo) in oc.chunks_exact_mut(2).zip(e).zip(sm).zip(lo) {
                    x[0] = lo;
                    x[1] = ((sm & 4) << 5) | ((e & 0x1f) << 2) | (sm & 3);
                }
            }
        }
        _ => {
            let mut b1 = Piecewise::open(payload, at, n)?;
            let mut b0 = Piecewise::open(payload, at, n)?;
            for oc in out.chunks_mut(4 * PIECE) {
                let k = oc.len() / 4;
                let (e, sm, b1, b0) = (e.next(k)?, sm.next(k)?, b1.next(k)?, b0.next(k)?);
                for ((((x, &e), &sm), &b1), &b0) in
                    oc.chunks_exact_mut(4).zip(e).zip(sm).zip(b1).zip(b0)
                {
                    x[0] = b0;
                    x[1] = b1;
                    x[2] = (e << 7) | (sm & 0x7f);
                    x[3] = (sm & 0x80) | (e >> 1);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(kind: ElemKind, data: &[u8]) -> usize {
        let mut out = Vec::new();
        encode_segment(kind, data, &Settings::default(), &mut out).expect("encodes");
        let mut back = vec![0u8; data.len() + 3];
        let mut at = 0;
        let n = decode_segment(&out, &mut at, &mut back).expect("decodes");
        assert_eq!(n, data.len());
        assert_eq!(at, out.len());
        assert_eq!(&back[..n], data);
        out.len()
    }

    #[test]
    fn every_kind_round_trips_all_bit_patterns() {
        let data: Vec<u8> = (0..=65535u32)
            .flat_map(|v| (v as u16).to_le_bytes())
            .collect();
        for kind in [
            ElemKind::Bf16,
            ElemKind::F16,
            ElemKind::Bytes,
            ElemKind::Int(2),
            ElemKind::Int(4),
        ] {
            rt(kind, &data);
        }
        let data: Vec<u8> = (0..40_000u32)
            .flat_map(|v| (v.wrapping_mul(2654435761)).to_le_bytes())
            .collect();
        rt(ElemKind::F32, &data);
        rt(ElemKind::Int(8), &data);
    }

    #[test]
    fn quantized_blocks_split_scales_from_quants() {
        let mut seed = 1u32;
        let mut next = || {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 16) as u8
        };
        let data: Vec<u8> = (0..500)
            .flat_map(|_| {
                let mut b = vec![next(), 0x1c | (next() & 3), next(), 0x9c];
                b.extend((0..16).map(|_| 0x77 ^ (next() & 0x11)));
                b
            })
            .collect();
        let kind = ElemKind::QBlocks {
            block: 20,
            scale: 4,
        };
        let mut out = Vec::new();
        encode_segment(
            kind,
            &data,
            &Settings {
                zstd_level: 0,
                ..Default::default()
            },
            &mut out,
        )
        .expect("encodes");
        assert_eq!(out[2], QBLOCKS);
        rt(kind, &data);
        rt(kind, &data[..20 * 7 + 3]);
    }

    #[test]
    fn ragged_float_segment_falls_back_to_bytes() {
        rt(ElemKind::F32, &[1, 2, 3, 4, 5, 6]);
        rt(ElemKind::Bf16, &[7]);
    }

    #[test]
    fn zero_length_segment_is_rejected() {
        let mut at = 0;
        assert!(decode_segment(&[0, 0], &mut at, &mut [0u8; 4]).is_err());
    }
}
