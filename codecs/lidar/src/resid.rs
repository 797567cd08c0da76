//! Adaptive coding of signed integer residuals: a magnitude class under an adaptive
//! frequency model chosen by a context, an adaptive sign bit, then the bits below the
//! leading one (the top two under adaptive binary models, the rest bypass).

use lcodec_core::{Error, Result};
use lcodec_entropy::{AdaptiveBit, AdaptiveFrequency, Decode, Encode};

/// Number of magnitude classes: class 0 is the value 0, class k ≥ 1 holds
/// `2^(k-1) ≤ |v| < 2^k`; residuals fit in 40 bits.
pub const CLASSES: usize = 41;

/// Bits below the leading one coded with adaptive models (the rest are bypass bits).
const TOP_BITS: usize = 2;
/// Nodes of the binary tree over those bits (index 0 unused).
const TREE: usize = 1 << TOP_BITS;

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
            top: vec![AdaptiveBit::with_shift(5); CLASSES * 3 * TREE],
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
        // The top TOP_BITS of them through a binary tree of adaptive bits, the rest bypass.
        let t = nb.min(TOP_BITS);
        let mut node = 1usize;
        for i in 0..t {
            let bit = (m >> (nb - 1 - i)) & 1 == 1;
            e.encode_bit_adaptive(bit, &mut self.top[sb * TREE + node])
                .map_err(ent)?;
            node = 2 * node + usize::from(bit);
        }
        let rest = nb - t;
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
        let t = nb.min(TOP_BITS);
        let mut node = 1usize;
        for _ in 0..t {
            let bit = d
                .decode_bit_adaptive(&mut self.top[sb * TREE + node])
                .map_err(ent)?;
            node = 2 * node + usize::from(bit);
        }
        // `node` is now 1 followed by the t top bits: the leading one and the top bits.
        let mut m = node as u64;
        let rest = nb - t;
        if rest > 0 {
            let low = if rest > 32 {
                let hi = u64::from(d.decode_bits((rest - 32) as u32).map_err(ent)?);
                (hi << 32) | u64::from(d.decode_bits(32).map_err(ent)?)
            } else {
                u64::from(d.decode_bits(rest as u32).map_err(ent)?)
            };
            m = (m << rest) | low;
        }
        let v = m as i64;
        Ok(if neg { -v } else { v })
    }
}
