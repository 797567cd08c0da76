//! Version 2 of the residual layer's entropy coding (see [`crate::residual`]).
//!
//! Per block and component, in the same block order as version 1:
//!
//! * the number of non-zero coefficients (`0..=64`, an adaptive 65-symbol model) in a
//!   context of the component, the rounded mean count of the left and upper blocks, and
//!   for chroma the luma block's count;
//! * then the coefficients in zigzag order until that many non-zeros are coded: a
//!   "non-zero" bit (skipped when every remaining position must be non-zero), then
//!   "magnitude > 1", "magnitude > 2" bits and an adaptive Exp-Golomb code of the rest,
//!   and a bypass sign bit. The bits' contexts: component, zigzag position, the count of
//!   non-zeros still to come, the magnitudes of the same coefficient in the left and upper
//!   blocks and, for chroma, in the luma block.
//!
//! The binary contexts adapt with a rate of `1/(n + 1.5)` over their first updates, then
//! a fixed `1/(LIMIT + 1.5)`: fast to learn, precise once learnt. Integer arithmetic only.

use crate::residual::{B, MAX_Q, bad, ent};
use lcodec_core::Result;
use lcodec_entropy::{AdaptiveFrequency, Decode, Encode, RangeDecoder, RangeEncoder};

/// Component classes: luma, the two chroma components.
const CLASSES: usize = 3;
/// Buckets of the predicted non-zero count.
const NZB: usize = 12;
/// Buckets of the luma block's non-zero count (chroma only; luma uses bucket 0).
const LUMB: usize = 5;
/// Zigzag-position buckets.
const ZB: usize = 15;
/// Buckets of the non-zeros still to come.
const RB: usize = 9;
/// Buckets of the neighbours' magnitudes of the same coefficient.
const NBB: usize = 6;
/// Buckets of the luma block's magnitude of the same coefficient (chroma only).
const LKB: usize = 3;
/// Exp-Golomb prefix contexts per class.
const EGB: usize = 21;
/// Probability precision of the binary contexts.
const P_BITS: u32 = 22;
/// Updates after which a binary context's rate stops falling.
const LIMIT: usize = 254;

/// `65536 / (n + 1.5)`, the adaptation rate after `n` updates.
const RATE: [u32; LIMIT + 1] = {
    let mut t = [0u32; LIMIT + 1];
    let mut n = 0;
    while n <= LIMIT {
        t[n] = 2 * 65536 / (2 * n as u32 + 3);
        n += 1;
    }
    t
};

/// The zigzag scan: position `z` holds coefficient `ZIGZAG[z]` (row-major in the block).
const ZIGZAG: [usize; B * B] = {
    let mut t = [0usize; B * B];
    let mut z = 0;
    let mut s = 0;
    while s < 2 * B - 1 {
        // Anti-diagonal s: even ones run bottom-left to top-right.
        let mut j = 0;
        while j <= s {
            let (r, c) = if s % 2 == 0 { (s - j, j) } else { (j, s - j) };
            if r < B && c < B {
                t[z] = r * B + c;
                z += 1;
            }
            j += 1;
        }
        s += 1;
    }
    t
};

/// A binary context: `P(1)` in units of `2^-P_BITS`, and how often it was updated.
#[derive(Clone, Copy)]
pub(crate) struct Ctx {
    p: u32,
    n: u16,
}

impl Ctx {
    const NEW: Self = Self {
        p: 1 << (P_BITS - 1),
        n: 0,
    };

    fn p1(self) -> u16 {
        (self.p >> (P_BITS - 16)).clamp(1, 65535) as u16
    }

    fn update(&mut self, bit: bool) {
        let target = if bit { 1i64 << P_BITS } else { 0 };
        let d = target - i64::from(self.p);
        // Rounded to nearest, so the probability moves alike towards 0 and towards 1.
        let p = i64::from(self.p) + ((d * i64::from(RATE[usize::from(self.n)]) + (1 << 15)) >> 16);
        self.p = p.clamp(1 << (P_BITS - 16), (1 << P_BITS) - (1 << (P_BITS - 16))) as u32;
        if usize::from(self.n) < LIMIT {
            self.n += 1;
        }
    }
}

/// One direction of the coder: the encoder reads the values, the decoder writes them, so
/// one function walks the contexts for both.
pub(crate) trait Io {
    /// Codes one bit under a binary context, then updates it.
    fn bit(&mut self, b: &mut bool, ctx: &mut Ctx) -> Result<()>;
    /// Codes one symbol under an adaptive frequency model.
    fn sym(&mut self, s: &mut usize, m: &mut AdaptiveFrequency) -> Result<()>;
    /// Codes `nbits` bypass bits.
    fn raw(&mut self, v: &mut u32, nbits: u32) -> Result<()>;
}

impl Io for RangeEncoder {
    fn bit(&mut self, b: &mut bool, ctx: &mut Ctx) -> Result<()> {
        self.encode_bit(*b, ctx.p1()).map_err(ent)?;
        ctx.update(*b);
        Ok(())
    }
    fn sym(&mut self, s: &mut usize, m: &mut AdaptiveFrequency) -> Result<()> {
        self.encode_adaptive(*s, m).map_err(ent)
    }
    fn raw(&mut self, v: &mut u32, nbits: u32) -> Result<()> {
        self.encode_bits(*v, nbits).map_err(ent)
    }
}

impl Io for RangeDecoder {
    fn bit(&mut self, b: &mut bool, ctx: &mut Ctx) -> Result<()> {
        *b = self.decode_bit(ctx.p1()).map_err(ent)?;
        ctx.update(*b);
        Ok(())
    }
    fn sym(&mut self, s: &mut usize, m: &mut AdaptiveFrequency) -> Result<()> {
        *s = self.decode_adaptive(m).map_err(ent)?;
        Ok(())
    }
    fn raw(&mut self, v: &mut u32, nbits: u32) -> Result<()> {
        *v = self.decode_bits(nbits).map_err(ent)?;
        Ok(())
    }
}

/// The bucket of `v`: how many of the ascending lower bounds `bounds` it reaches.
fn bucket(v: usize, bounds: &[usize]) -> usize {
    bounds.iter().take_while(|&&t| v >= t).count()
}

/// Lower bounds of the buckets of a predicted non-zero count ([`NZB`] buckets).
const NZ_BOUNDS: [usize; NZB - 1] = [1, 2, 3, 4, 5, 7, 10, 14, 20, 28, 40];
/// Lower bounds of the buckets of the luma block's non-zero count ([`LUMB`]).
const LUM_BOUNDS: [usize; LUMB - 1] = [1, 3, 7, 16];
/// Lower bounds of the zigzag-position buckets ([`ZB`]).
const ZZ_BOUNDS: [usize; ZB - 1] = [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 27, 36];
/// Lower bounds of the buckets of the non-zeros still to come ([`RB`]; 1 is the first).
const REM_BOUNDS: [usize; RB - 1] = [2, 3, 4, 5, 7, 10, 15, 23];
/// Lower bounds of the buckets of the neighbours' magnitudes ([`NBB`]).
const NB_BOUNDS: [usize; NBB - 1] = [1, 2, 3, 5, 9];

/// Quantised coefficients of every block and the adaptive models.
pub(crate) struct Scan2 {
    bw: usize,
    bh: usize,
    /// Quantised coefficients: component, block row, block column, 64 per block
    /// (row-major within the block).
    pub(crate) q: Vec<i32>,
    /// Non-zero count per component and block.
    nnz: Vec<u8>,
    counts: Vec<AdaptiveFrequency>,
    zero: Vec<Ctx>,
    gt1: Vec<Ctx>,
    gt2: Vec<Ctx>,
    eg: Vec<Ctx>,
}

impl Scan2 {
    pub(crate) fn new(comps: usize, w: usize, h: usize) -> Result<Self> {
        let (bw, bh) = (w.div_ceil(B), h.div_ceil(B));
        let n = comps * bw * bh;
        let counts = (0..CLASSES * NZB * LUMB)
            .map(|_| AdaptiveFrequency::new(B * B + 1).map_err(ent))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            bw,
            bh,
            q: vec![0; n * B * B],
            nnz: vec![0; n],
            counts,
            zero: vec![Ctx::NEW; CLASSES * ZB * RB * NBB * LKB],
            gt1: vec![Ctx::NEW; CLASSES * ZB * NBB * LKB * 3],
            gt2: vec![Ctx::NEW; CLASSES * ZB * NBB],
            eg: vec![Ctx::NEW; CLASSES * EGB],
        })
    }

    fn block(&self, c: usize, by: usize, bx: usize) -> usize {
        (c * self.bh + by) * self.bw + bx
    }

    /// Codes (encoder) or decodes (decoder) block `(c, by, bx)`; the decoder's `q` of the
    /// block must be all zero on entry.
    pub(crate) fn code_block<I: Io>(
        &mut self,
        io: &mut I,
        c: usize,
        by: usize,
        bx: usize,
    ) -> Result<()> {
        let i = self.block(c, by, bx);
        let left = (bx > 0).then(|| self.block(c, by, bx - 1));
        let up = (by > 0).then(|| self.block(c, by - 1, bx));
        let luma = (c > 0).then(|| self.block(0, by, bx));
        let nz = |b: usize| usize::from(self.nnz[b]);
        let pred = match (left, up) {
            (Some(l), Some(u)) => (nz(l) + nz(u)).div_ceil(2),
            (Some(b), None) | (None, Some(b)) => nz(b),
            (None, None) => 0,
        };
        let lb = luma.map_or(0, |l| bucket(nz(l), &LUM_BOUNDS));
        let mut count = self.q[i * B * B..(i + 1) * B * B]
            .iter()
            .filter(|&&v| v != 0)
            .count();
        io.sym(
            &mut count,
            &mut self.counts[(c * NZB + bucket(pred, &NZ_BOUNDS)) * LUMB + lb],
        )?;
        self.nnz[i] = count as u8;
        let mut rem = count;
        for (z, &k) in ZIGZAG.iter().enumerate() {
            if rem == 0 {
                break;
            }
            let mag = |b: Option<usize>| b.map_or(0, |b| self.q[b * B * B + k].unsigned_abs());
            let nb = bucket((mag(left).min(16) + mag(up).min(16)) as usize, &NB_BOUNDS);
            let lk = luma.map_or(0, |_| (mag(luma) as usize).min(LKB - 1));
            let zb = bucket(z, &ZZ_BOUNDS);
            let v = self.q[i * B * B + k];
            let mut nonzero = v != 0;
            if rem < B * B - z {
                let ctx = (((c * ZB + zb) * RB + bucket(rem, &REM_BOUNDS)) * NBB + nb) * LKB + lk;
                io.bit(&mut nonzero, &mut self.zero[ctx])?;
            } else {
                nonzero = true;
            }
            if !nonzero {
                continue;
            }
            rem -= 1;
            let mut m = v.unsigned_abs();
            let mut g1 = m > 1;
            let r3 = match rem {
                0 => 0,
                1..=3 => 1,
                _ => 2,
            };
            io.bit(
                &mut g1,
                &mut self.gt1[(((c * ZB + zb) * NBB + nb) * LKB + lk) * 3 + r3],
            )?;
            if !g1 {
                m = 1;
            } else {
                let mut g2 = m > 2;
                io.bit(&mut g2, &mut self.gt2[(c * ZB + zb) * NBB + nb])?;
                if !g2 {
                    m = 2;
                } else {
                    // m - 3 as Exp-Golomb: the bit length of m - 2 in unary with adaptive
                    // bits, then its low bits in bypass.
                    let w = m.wrapping_sub(2);
                    let len = 31 - w.max(1).leading_zeros() as usize;
                    let mut l = 0usize;
                    loop {
                        let mut more = l < len;
                        io.bit(&mut more, &mut self.eg[c * EGB + l.min(EGB - 1)])?;
                        if !more {
                            break;
                        }
                        l += 1;
                        if l > 20 {
                            return Err(bad(format!("coefficient magnitude of more than {MAX_Q}")));
                        }
                    }
                    let mut low = w & ((1u32 << l) - 1);
                    io.raw(&mut low, l as u32)?;
                    m = ((1u32 << l) | low) + 2;
                    if m > MAX_Q {
                        return Err(bad(format!("coefficient magnitude {m} (at most {MAX_Q})")));
                    }
                }
            }
            let mut s = u32::from(v < 0);
            io.raw(&mut s, 1)?;
            self.q[i * B * B + k] = if s == 1 { -(m as i32) } else { m as i32 };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_is_a_permutation_in_band_order() {
        let mut seen = [false; B * B];
        for (z, &k) in ZIGZAG.iter().enumerate() {
            assert!(!seen[k]);
            seen[k] = true;
            if z > 0 {
                let band = |k: usize| k / B + k % B;
                assert!(band(ZIGZAG[z - 1]) <= band(k));
            }
        }
        assert_eq!(&ZIGZAG[..6], &[0, 1, 8, 16, 9, 2]);
    }

    #[test]
    fn binary_contexts_learn_and_stay_codable() {
        let mut c = Ctx::NEW;
        for _ in 0..10_000 {
            c.update(false);
        }
        assert!(c.p1() <= 4, "{}", c.p1());
        for _ in 0..10_000 {
            c.update(true);
        }
        assert!(c.p1() >= 65532, "{}", c.p1());
        let mut c = Ctx::NEW;
        for i in 0..1000 {
            c.update(i % 4 == 0);
        }
        assert!(
            (f64::from(c.p1()) / 65536.0 - 0.25).abs() < 0.05,
            "{}",
            c.p1()
        );
    }
}
