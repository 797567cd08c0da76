//! Lossless coding of attribute columns (reflectance, intensity, ring, ...), each a
//! column of 32-bit words (the field's raw bits, so floats stay bit-exact).
//!
//! A column with at most [`MAX_DICT`] distinct words is coded as indices into a sorted
//! dictionary, under adaptive frequency models conditioned on the previous index; other
//! columns are split into four byte planes and compressed with zstd.

use lcodec_core::{Error, Result};
use lcodec_entropy::{AdaptiveFrequency, Decode, Encode, RangeDecoder, RangeEncoder};

use crate::resid::ent;

/// Largest dictionary.
pub const MAX_DICT: usize = 256;
const MODE_DICT: u8 = 1;
const MODE_PLANES: u8 = 2;
const ZSTD_LEVEL: i32 = 9;

fn contexts(nd: usize) -> usize {
    if nd <= 64 { nd } else { 32 }
}

#[inline]
fn ctx_of(prev: usize, nd: usize) -> usize {
    if nd <= 64 { prev } else { prev * 32 / nd }
}

fn models(nd: usize) -> Result<Vec<AdaptiveFrequency>> {
    let m = AdaptiveFrequency::with_increment(nd, 24).map_err(ent)?;
    Ok(vec![m; contexts(nd)])
}

/// Encodes one column.
///
/// # Errors
/// Entropy-coder or zstd errors.
pub fn encode(vals: &[u32]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    if vals.is_empty() {
        return Ok(out);
    }
    let mut dict = vals.to_vec();
    dict.sort_unstable();
    dict.dedup();
    if dict.len() <= MAX_DICT {
        let nd = dict.len();
        out.push(MODE_DICT);
        out.extend_from_slice(&(nd as u16).to_le_bytes());
        for d in &dict {
            out.extend_from_slice(&d.to_le_bytes());
        }
        let mut m = models(nd)?;
        let mut enc = RangeEncoder::new();
        let mut prev = 0usize;
        for v in vals {
            let s = dict
                .binary_search(v)
                .map_err(|_| Error::codec("lidar", "attribute dictionary"))?;
            enc.encode_adaptive(s, &mut m[ctx_of(prev, nd)])
                .map_err(ent)?;
            prev = s;
        }
        out.extend_from_slice(&enc.finish());
    } else {
        out.push(MODE_PLANES);
        let n = vals.len();
        let mut planes = vec![0u8; 4 * n];
        for (i, v) in vals.iter().enumerate() {
            let b = v.to_le_bytes();
            for k in 0..4 {
                planes[k * n + i] = b[k];
            }
        }
        out.extend_from_slice(&zstd::bulk::compress(&planes, ZSTD_LEVEL)?);
    }
    Ok(out)
}

/// Decodes a column of `n` words written by [`encode`].
///
/// # Errors
/// [`Error::Codec`] for damaged data.
pub fn decode(bytes: &[u8], n: usize) -> Result<Vec<u32>> {
    if n == 0 {
        return if bytes.is_empty() {
            Ok(Vec::new())
        } else {
            Err(Error::codec("lidar", "attribute data for no points"))
        };
    }
    let (&mode, rest) = bytes
        .split_first()
        .ok_or_else(|| Error::codec("lidar", "empty attribute block"))?;
    match mode {
        MODE_DICT => {
            if rest.len() < 2 {
                return Err(Error::codec("lidar", "truncated attribute dictionary"));
            }
            let nd = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
            if nd == 0 || nd > MAX_DICT || rest.len() < 2 + 4 * nd {
                return Err(Error::codec(
                    "lidar",
                    format!("attribute dictionary of {nd} entries"),
                ));
            }
            let dict: Vec<u32> = rest[2..2 + 4 * nd]
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let mut m = models(nd)?;
            let mut dec = RangeDecoder::new(&rest[2 + 4 * nd..]).map_err(ent)?;
            let mut out = Vec::with_capacity(n);
            let mut prev = 0usize;
            for _ in 0..n {
                let s = dec.decode_adaptive(&mut m[ctx_of(prev, nd)]).map_err(ent)?;
                let v = *dict
                    .get(s)
                    .ok_or_else(|| Error::codec("lidar", "attribute index out of range"))?;
                out.push(v);
                prev = s;
            }
            dec.finish().map_err(ent)?;
            Ok(out)
        }
        MODE_PLANES => {
            let planes = zstd::bulk::decompress(rest, 4 * n)
                .map_err(|e| Error::codec("lidar", format!("attribute planes: {e}")))?;
            if planes.len() != 4 * n {
                return Err(Error::codec(
                    "lidar",
                    "attribute planes have the wrong length",
                ));
            }
            Ok((0..n)
                .map(|i| {
                    u32::from_le_bytes([
                        planes[i],
                        planes[n + i],
                        planes[2 * n + i],
                        planes[3 * n + i],
                    ])
                })
                .collect())
        }
        m => Err(Error::codec("lidar", format!("unknown attribute mode {m}"))),
    }
}
