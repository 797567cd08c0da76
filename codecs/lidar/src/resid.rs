//! Adaptive coding of signed integer residuals: a magnitude class under an adaptive
//! frequency model chosen by a context, an adaptive sign bit, then the bits below the
//! leading one (the top two under adaptive binary models, the rest bypass).

use lcodec_core::{Error, Result};
use lcodec_entropy::{AdaptiveBit, AdaptiveFrequency, Decode, Encode};

/// Number of magnitude classes: class 0 is the value 0, class k ≥ 1 holds
/// `2^(k-1) ≤ |v| < 2^k`; residuals fit in 40 bits.
pub const CLASSES: usize = 41;

/// Maps an entropy-layer error into the crate error.
pub fn ent(e: lcodec_entropy::Error) -> Error {
    Error::codec("lidar", e.to_string())
}

/// Magnitude class of `v` (0 for 0, else the bit length of `|v|`).
#[inline]
pub fn class_of(v: i64) -> usize {
    (64 - v.unsigned_abs().leading_zeros()) as usize
}

/// Adaptive models for one kind of residual under `contexts` contexts.
#[derive(Debug, Clone)]
pub struct ResidualModel {
    classes: Vec<AdaptiveFrequency>,
    sign: Vec<AdaptiveBit>,
    top: Vec<AdaptiveBit>,
}

impl ResidualModel {
    /// Fresh models for `contexts` contexts.
    ///
    /// # Errors
    /// Never in practice (the alphabet size is fixed and valid).
    pub fn new(contexts: usize) -> Result<Self> {
        let f = AdaptiveFrequency::with_increment(CLASSES, 48).map_err(ent)?;
        Ok(ResidualModel {
            classes: vec![f; contexts.max(1)],
            sign: vec![AdaptiveBit::with_shift(5); CLASSES * 3],
            top: vec![AdaptiveBit::with_shift(5); CLASSES * 3 * 4],
        })
    }

    /// Codes `v` under context `ctx` (clamped to the model's range); `sctx` (0..3)
    /// selects the sign / low-bit models.
    ///
    /// # Errors
    /// A residual of 40 bits or more; entropy-coder errors.
    #[inline]
    pub fn put<E: Encode>(&mut self, e: &mut E, ctx: usize, sctx: usize, v: i64) -> Result<()> {
        let k = class_of(v);
        if k >= CLASSES {
            return Err(Error::codec("lidar", format!("residual {v} too large")));
        }
        let ctx = ctx.min(self.classes.len() - 1);
        e.encode_adaptive(k, &mut self.classes[ctx]).map_err(ent)?;
        if k == 0 {
            return Ok(());
        }
        let sb = sctx.min(2) * CLASSES + k;
        e.encode_bit_adaptive(v < 0, &mut self.sign[sb])
            .map_err(ent)?;
        let m = v.unsigned_abs();
        let nb = k - 1; // bits below the leading one
        if nb == 0 {
            return Ok(());
        }
        let b1 = (m >> (nb - 1)) & 1 == 1;
        e.encode_bit_adaptive(b1, &mut self.top[sb * 4])
            .map_err(ent)?;
        if nb == 1 {
            return Ok(());
        }
        let b2 = (m >> (nb - 2)) & 1 == 1;
        e.encode_bit_adaptive(b2, &mut self.top[sb * 4 + 1 + usize::from(b1)])
            .map_err(ent)?;
        let rest = nb - 2;
        if rest > 0 {
            let low = m & ((1u64 << rest) - 1);
            if rest > 32 {
                e.encode_bits((low >> 32) as u32, (rest - 32) as u32)
                    .map_err(ent)?;
                e.encode_bits(low as u32, 32).map_err(ent)?;
            } else {
                e.encode_bits(low as u32, rest as u32).map_err(ent)?;
            }
        }
        Ok(())
    }

    /// Decodes a value written by [`ResidualModel::put`] with the same contexts.
    ///
    /// # Errors
    /// Entropy-coder errors on damaged data.
    #[inline]
    pub fn get<D: Decode>(&mut self, d: &mut D, ctx: usize, sctx: usize) -> Result<i64> {
        let ctx = ctx.min(self.classes.len() - 1);
        let k = d.decode_adaptive(&mut self.classes[ctx]).map_err(ent)?;
        if k == 0 {
            return Ok(0);
        }
        let sb = sctx.min(2) * CLASSES + k;
        let neg = d.decode_bit_adaptive(&mut self.sign[sb]).map_err(ent)?;
        let nb = k - 1;
        let mut m: u64 = 1;
        if nb >= 1 {
            let b1 = d.decode_bit_adaptive(&mut self.top[sb * 4]).map_err(ent)?;
            m = (m << 1) | u64::from(b1);
            if nb >= 2 {
                let b2 = d
                    .decode_bit_adaptive(&mut self.top[sb * 4 + 1 + usize::from(b1)])
                    .map_err(ent)?;
                m = (m << 1) | u64::from(b2);
                let rest = nb - 2;
                if rest > 0 {
                    let low = if rest > 32 {
                        let hi = u64::from(d.decode_bits((rest - 32) as u32).map_err(ent)?);
                        (hi << 32) | u64::from(d.decode_bits(32).map_err(ent)?)
                    } else {
                        u64::from(d.decode_bits(rest as u32).map_err(ent)?)
                    };
                    m = (m << rest) | low;
                }
            }
        }
        let v = m as i64;
        Ok(if neg { -v } else { v })
    }
}
