//! Lossless coding of an 8-bit plane (the alpha channel of RGBA / grey+alpha images).
//!
//! Each sample is predicted with the median edge detector of LOCO-I / JPEG-LS
//! (`W`, `N`, `NW` neighbours, zeros outside the image); the residual
//! `(value - prediction) mod 256` is range-coded under one of four adaptive 256-symbol
//! models, chosen by the local activity `|W - NW| + |N - NW|` (0, < 8, < 64, other).
//! Flat regions (the usual alpha: 0 / 255 with sharp edges) cost a small fraction of a
//! bit per sample. Integer arithmetic only, so encoder and decoder stay in lockstep.

use lcodec_core::{Error, Result};
use lcodec_entropy::{AdaptiveFrequency, Decode, Encode, RangeDecoder, RangeEncoder};

const CONTEXTS: usize = 4;

fn ent(e: lcodec_entropy::Error) -> Error {
    Error::codec("image", format!("alpha: {e}"))
}

fn models() -> Result<Vec<AdaptiveFrequency>> {
    (0..CONTEXTS)
        .map(|_| AdaptiveFrequency::new(256).map_err(ent))
        .collect()
}

/// Prediction and context of sample `(x, y)` from the already coded samples of `p`.
#[inline]
fn predict(p: &[u8], w: usize, x: usize, y: usize) -> (u8, usize) {
    let at = |xx: usize, yy: usize| i32::from(p[yy * w + xx]);
    let wv = if x > 0 { at(x - 1, y) } else { 0 };
    let nv = if y > 0 { at(x, y - 1) } else { wv };
    let nw = if x > 0 && y > 0 { at(x - 1, y - 1) } else { nv };
    let pred = if nw >= wv.max(nv) {
        wv.min(nv)
    } else if nw <= wv.min(nv) {
        wv.max(nv)
    } else {
        wv + nv - nw
    };
    let act = (wv - nw).abs() + (nv - nw).abs();
    let ctx = match act {
        0 => 0,
        1..=7 => 1,
        8..=63 => 2,
        _ => 3,
    };
    (pred.clamp(0, 255) as u8, ctx)
}

/// Codes a `w` x `h` plane (`plane.len() == w * h`).
///
/// # Errors
/// [`Error::InvalidArgument`] for a size mismatch; entropy-coder failures.
pub fn encode_plane(plane: &[u8], w: usize, h: usize) -> Result<Vec<u8>> {
    if plane.len() != w * h {
        return Err(Error::InvalidArgument(format!(
            "alpha plane of {} bytes for {w}x{h}",
            plane.len()
        )));
    }
    let mut ms = models()?;
    let mut enc = RangeEncoder::new();
    for y in 0..h {
        for x in 0..w {
            let (pred, ctx) = predict(plane, w, x, y);
            let sym = plane[y * w + x].wrapping_sub(pred);
            enc.encode_adaptive(usize::from(sym), &mut ms[ctx])
                .map_err(ent)?;
        }
    }
    Ok(enc.finish())
}

/// Decodes a plane made by [`encode_plane`].
///
/// # Errors
/// [`Error::Codec`] for a damaged payload.
pub fn decode_plane(payload: &[u8], w: usize, h: usize) -> Result<Vec<u8>> {
    let mut ms = models()?;
    let mut dec = RangeDecoder::new(payload).map_err(ent)?;
    let mut plane = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            let (pred, ctx) = predict(&plane, w, x, y);
            let sym = dec.decode_adaptive(&mut ms[ctx]).map_err(ent)?;
            plane[y * w + x] = pred.wrapping_add(sym as u8);
        }
    }
    dec.finish().map_err(ent)?;
    Ok(plane)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn planes_round_trip_exactly() {
        let (w, h) = (97, 61);
        let disc: Vec<u8> = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as i32 - 48, (i / w) as i32 - 30);
                if x * x + y * y < 600 { 255 } else { 0 }
            })
            .collect();
        let noise: Vec<u8> = (0..w * h)
            .map(|i| ((i * 2_654_435_761usize) >> 13) as u8)
            .collect();
        let ramp: Vec<u8> = (0..w * h).map(|i| ((i % w) * 2) as u8).collect();
        for p in [&disc, &noise, &ramp] {
            let c = encode_plane(p, w, h).unwrap();
            assert_eq!(&decode_plane(&c, w, h).unwrap(), p);
        }
        let c = encode_plane(&disc, w, h).unwrap();
        assert!(c.len() < w * h / 20, "disc alpha took {} bytes", c.len());
        for cut in 0..c.len() {
            let _ = decode_plane(&c[..cut], w, h);
        }
    }
}
