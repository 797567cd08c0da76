//! Versions 2 to 5 of the residual layer's entropy coding (see [`crate::residual`]),
//! version 3's dependent quantisation: the state machine ([`NEXT`], [`dq_index`]) and the
//! encoder's search over it ([`Scan2::choose_levels`]), version 4's transform-size
//! flags ([`Scan2::code_split`]) and version 5's learned starting state of the contexts
//! ([`Scan2::start_learned`]).
//!
//! Per block and component, in the same block order as version 1 (version 4: at the
//! top-left block of each full 16×16 macroblock, first the component's transform-size
//! flag, an adaptive bit in a context of how many of the left and upper macroblocks use
//! the 16×16 transform and, for chroma, whether luma does):
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
/// [`bucket`] as a table for `0..N`.
const fn bucket_table<const N: usize>(bounds: &[usize]) -> [usize; N] {
    let mut t = [0usize; N];
    let mut v = 0;
    while v < N {
        let mut k = 0;
        while k < bounds.len() && v >= bounds[k] {
            k += 1;
        }
        t[v] = k;
        v += 1;
    }
    t
}

/// [`bucket`] of `0..=64` in [`REM_BOUNDS`].
const REM_BUCKET: [usize; B * B + 1] = bucket_table(&REM_BOUNDS);
/// [`bucket`] of the zigzag positions in [`ZZ_BOUNDS`].
const ZZ_BUCKET: [usize; B * B] = bucket_table(&ZZ_BOUNDS);
/// [`bucket`] of `0..=32` (two magnitudes capped at 16) in [`NB_BOUNDS`].
const NB_BUCKET: [usize; 33] = bucket_table(&NB_BOUNDS);

/// Lower bounds of the buckets of the neighbours' magnitudes ([`NBB`]).
const NB_BOUNDS: [usize; NBB - 1] = [1, 2, 3, 5, 9];

/// What the contexts of one block see around it.
struct Around {
    /// The block's index.
    i: usize,
    left: Option<usize>,
    up: Option<usize>,
    /// The luma block at the same place (chroma blocks only).
    luma: Option<usize>,
    /// Index of the model of the block's non-zero count.
    count_model: usize,
}

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
    /// Dependent quantisation (version 3): the "non-zero" contexts also see the
    /// quantiser state.
    dq: bool,
    /// Version 4: per component and full 16×16 macroblock, whether it uses the 16×16
    /// transform.
    pub(crate) whole: Vec<bool>,
    split: [Ctx; 9],
}

/// Dependent quantisation's state machine: the next state after a level of parity `p`.
pub(crate) const NEXT: [[u8; 2]; 4] = [[0, 2], [2, 0], [1, 3], [3, 1]];

/// Reconstruction index (in units of the half step Δ) of level `m` in quantiser state `s`:
/// states 0 and 1 use the even multiples `2m`, states 2 and 3 the odd ones `2m - sgn(m)`.
pub(crate) fn dq_index(s: u8, m: i32) -> i32 {
    if s < 2 { 2 * m } else { 2 * m - m.signum() }
}

/// Replaces the levels of one block (row-major) by their reconstruction indices, walking
/// the state machine in zigzag order from state 0.
pub(crate) fn dq_block_indices(q: &mut [i32]) {
    let mut s = 0u8;
    for &k in &ZIGZAG {
        let m = q[k];
        q[k] = dq_index(s, m);
        s = NEXT[usize::from(s)][(m & 1) as usize];
    }
}

/// State class of the "non-zero" contexts under dependent quantisation.
fn state_class(s: u8) -> usize {
    usize::from(s.max(1) - 1)
}

/// Version 5's learned starting state of the contexts (made by the `residual-rd`
/// example, see [`Scan2::start_from`] for the layout).
const INIT_TABLE: &[u8] = include_bytes!("residual_init.bin");
/// The update count a binary context starts with from the table, at most: its first
/// updates then move it at rate `1/(INIT_N + 1.5)` instead of `1/1.5`.
const INIT_N: u16 = 20;
/// Magic of the context table.
const INIT_MAGIC: &[u8; 4] = b"LRI1";

impl Scan2 {
    /// Starts version 5's contexts from the built-in learned table.
    pub(crate) fn start_learned(&mut self) -> Result<()> {
        self.start_from(INIT_TABLE, INIT_N)
    }

    /// The binary contexts in table order.
    fn binary_contexts(&mut self) -> impl Iterator<Item = &mut Ctx> {
        self.zero
            .iter_mut()
            .chain(self.gt1.iter_mut())
            .chain(self.gt2.iter_mut())
            .chain(self.eg.iter_mut())
            .chain(self.split.iter_mut())
    }

    /// Sets every context from `table`, binary contexts' update counts capped at `cap`.
    /// Layout (little-endian): `LRI1`, the number of binary contexts (u32), of count
    /// models (u32) and of symbols per model (u32); per binary context in the order
    /// "non-zero", "> 1", "> 2", Exp-Golomb, transform size: `P(1)` in 1/65536 (u16,
    /// 0 = never used: left at its flat start) and its update count (u8); per count
    /// model its counts (u16 each).
    pub(crate) fn start_from(&mut self, table: &[u8], cap: u16) -> Result<()> {
        let n_bits = self.zero.len() + self.gt1.len() + self.gt2.len() + self.eg.len() + 9;
        let syms = B * B + 1;
        let want = 16 + 3 * n_bits + 2 * syms * self.counts.len();
        let word =
            |o: usize| u32::from_le_bytes([table[o], table[o + 1], table[o + 2], table[o + 3]]);
        if table.len() != want
            || &table[..4] != INIT_MAGIC
            || word(4) as usize != n_bits
            || word(8) as usize != self.counts.len()
            || word(12) as usize != syms
        {
            return Err(bad(format!(
                "context table of {} bytes does not fit this coder ({want} bytes expected)",
                table.len()
            )));
        }
        let mut o = 16;
        for ctx in self.binary_contexts() {
            let p = u16::from_le_bytes([table[o], table[o + 1]]);
            if p != 0 {
                *ctx = Ctx {
                    p: u32::from(p) << (P_BITS - 16),
                    n: u16::from(table[o + 2]).min(cap),
                };
            }
            o += 3;
        }
        for m in &mut self.counts {
            let c: Vec<u32> = (0..syms)
                .map(|k| u32::from(u16::from_le_bytes([table[o + 2 * k], table[o + 2 * k + 1]])))
                .collect();
            o += 2 * syms;
            *m = AdaptiveFrequency::with_counts(&c, 32).map_err(ent)?;
        }
        Ok(())
    }

    /// The contexts as they stand, as a table for [`Scan2::start_from`] (update counts
    /// capped at 255; a context never updated is written as unused).
    pub(crate) fn table(&mut self) -> Vec<u8> {
        let n_models = self.counts.len();
        let mut out = INIT_MAGIC.to_vec();
        let mut bits = Vec::new();
        for ctx in self.binary_contexts() {
            let p = if ctx.n == 0 { 0 } else { ctx.p1() };
            bits.extend_from_slice(&p.to_le_bytes());
            bits.push(ctx.n.min(255) as u8);
        }
        for v in [bits.len() / 3, n_models, B * B + 1] {
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
        out.extend_from_slice(&bits);
        for m in &self.counts {
            for &c in m.counts() {
                out.extend_from_slice(&(c.min(u32::from(u16::MAX)) as u16).to_le_bytes());
            }
        }
        out
    }

    pub(crate) fn new(comps: usize, w: usize, h: usize, dq: bool) -> Result<Self> {
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
            zero: vec![Ctx::NEW; CLASSES * ZB * RB * NBB * LKB * if dq { 3 } else { 1 }],
            gt1: vec![Ctx::NEW; CLASSES * ZB * NBB * LKB * 3],
            gt2: vec![Ctx::NEW; CLASSES * ZB * NBB],
            eg: vec![Ctx::NEW; CLASSES * EGB],
            dq,
            whole: vec![false; comps * (bw / 2) * (bh / 2)],
            split: [Ctx::NEW; 9],
        })
    }

    fn block(&self, c: usize, by: usize, bx: usize) -> usize {
        (c * self.bh + by) * self.bw + bx
    }

    /// Sets the levels of block `(c, by, bx)` as if it had been coded (the encoder's
    /// look-ahead; the contexts do not adapt). `None` clears them again.
    pub(crate) fn set_levels(
        &mut self,
        c: usize,
        by: usize,
        bx: usize,
        levels: Option<&[i32; B * B]>,
    ) {
        let i = self.block(c, by, bx);
        let dst = &mut self.q[i * B * B..(i + 1) * B * B];
        match levels {
            Some(l) => dst.copy_from_slice(l),
            None => dst.fill(0),
        }
        self.nnz[i] = dst.iter().filter(|&&v| v != 0).count() as u8;
    }

    /// The context of the transform-size flag of macroblock `(my, mx)`: how many of its
    /// left and upper macroblocks use the 16×16 transform.
    fn split_ctx(&self, c: usize, my: usize, mx: usize) -> usize {
        let (mbw, mbh) = (self.bw / 2, self.bh / 2);
        let at = |c: usize, y: usize, x: usize| self.whole[(c * mbh + y) * mbw + x];
        let nb =
            usize::from(mx > 0 && at(c, my, mx - 1)) + usize::from(my > 0 && at(c, my - 1, mx));
        if c == 0 {
            nb
        } else {
            3 + 3 * usize::from(at(0, my, mx)) + nb
        }
    }

    /// Marks macroblock `(my, mx)` of component `c` (the encoder's look-ahead).
    pub(crate) fn set_whole(&mut self, c: usize, my: usize, mx: usize, whole: bool) {
        let (mbw, mbh) = (self.bw / 2, self.bh / 2);
        self.whole[(c * mbh + my) * mbw + mx] = whole;
    }

    /// Estimated bits of macroblock `(my, mx)`'s transform-size flag.
    pub(crate) fn split_bits(&self, c: usize, my: usize, mx: usize, whole: bool) -> f64 {
        bit_cost(self.split[self.split_ctx(c, my, mx)], whole)
    }

    /// Codes (encoder) or decodes (decoder) macroblock `(my, mx)`'s transform-size flag.
    pub(crate) fn code_split<I: Io>(
        &mut self,
        io: &mut I,
        c: usize,
        my: usize,
        mx: usize,
        whole: &mut bool,
    ) -> Result<()> {
        let ctx = self.split_ctx(c, my, mx);
        io.bit(whole, &mut self.split[ctx])?;
        self.set_whole(c, my, mx, *whole);
        Ok(())
    }

    /// The neighbourhood of block `(c, by, bx)` as the contexts see it.
    fn around(&self, c: usize, by: usize, bx: usize) -> Around {
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
        Around {
            i: self.block(c, by, bx),
            left,
            up,
            luma,
            count_model: (c * NZB + bucket(pred, &NZ_BOUNDS)) * LUMB + lb,
        }
    }

    /// Context parts of zigzag position `z` in a block with neighbourhood `n`: the position
    /// bucket, the left and upper magnitudes' bucket, the luma magnitude's bucket.
    fn parts(&self, n: &Around, z: usize) -> (usize, usize, usize) {
        let k = ZIGZAG[z];
        let mag = |b: Option<usize>| b.map_or(0, |b| self.q[b * B * B + k].unsigned_abs());
        let nb = NB_BUCKET[(mag(n.left).min(16) + mag(n.up).min(16)) as usize];
        let lk = n.luma.map_or(0, |_| (mag(n.luma) as usize).min(LKB - 1));
        (ZZ_BUCKET[z], nb, lk)
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
        let n = self.around(c, by, bx);
        let i = n.i;
        let mut count = self.q[i * B * B..(i + 1) * B * B]
            .iter()
            .filter(|&&v| v != 0)
            .count();
        io.sym(&mut count, &mut self.counts[n.count_model])?;
        self.nnz[i] = count as u8;
        let mut rem = count;
        let mut state = 0u8;
        for (z, &k) in ZIGZAG.iter().enumerate() {
            if rem == 0 {
                break;
            }
            let (zb, nb, lk) = self.parts(&n, z);
            let v = self.q[i * B * B + k];
            let mut nonzero = v != 0;
            if rem < B * B - z {
                let mut ctx =
                    (((c * ZB + zb) * RB + bucket(rem, &REM_BOUNDS)) * NBB + nb) * LKB + lk;
                if self.dq {
                    ctx = ctx * 3 + state_class(state);
                }
                io.bit(&mut nonzero, &mut self.zero[ctx])?;
            } else {
                nonzero = true;
            }
            if !nonzero {
                state = NEXT[usize::from(state)][0];
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
            state = NEXT[usize::from(state)][(m & 1) as usize];
        }
        Ok(())
    }
}

/// `-log2` of probabilities in 1/4096 steps, for the encoder's rate estimates.
fn cost_table() -> &'static [f64; 4096] {
    static T: std::sync::OnceLock<Box<[f64; 4096]>> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t = Box::new([0.0; 4096]);
        for (i, v) in t.iter_mut().enumerate() {
            *v = -((i as f64 + 0.5) / 4096.0).log2();
        }
        t
    })
}

/// Estimated bits of coding `bit` under `ctx`.
fn bit_cost(ctx: Ctx, bit: bool) -> f64 {
    bit_cost_in(cost_table(), ctx, bit)
}

/// [`bit_cost`] with the table at hand (the trellis search's inner loop).
fn bit_cost_in(t: &[f64; 4096], ctx: Ctx, bit: bool) -> f64 {
    let p1 = usize::from(ctx.p1());
    let p = if bit { p1 } else { 65536 - p1 };
    t[(p >> 4).min(4095)]
}

impl Scan2 {
    /// Estimated bits of each level magnitude in `ms` at a position whose context parts
    /// are `(zb, nb, lk)`, with `rem` non-zeros still to come (this one included) and
    /// quantiser state `s`; `t` is [`cost_table`].
    #[allow(clippy::too_many_arguments)]
    fn level_bits(
        &self,
        t: &[f64; 4096],
        c: usize,
        (zb, nb, lk): (usize, usize, usize),
        rem: usize,
        s: u8,
        ms: [u32; 3],
    ) -> [f64; 3] {
        let cost = |ctx: Ctx, bit: bool| bit_cost_in(t, ctx, bit);
        let zctx =
            self.zero[((((c * ZB + zb) * RB + REM_BUCKET[rem.min(B * B)]) * NBB + nb) * LKB + lk)
                * 3
                + state_class(s)];
        let r3 = match rem - 1 {
            0 => 0,
            1..=3 => 1,
            _ => 2,
        };
        let g1 = self.gt1[(((c * ZB + zb) * NBB + nb) * LKB + lk) * 3 + r3];
        let g2 = self.gt2[(c * ZB + zb) * NBB + nb];
        let mut out = [0.0; 3];
        for (o, &m) in out.iter_mut().zip(&ms) {
            if m == 0 {
                *o = cost(zctx, false);
                continue;
            }
            let mut bits = cost(zctx, true) + 1.0 + cost(g1, m > 1);
            if m > 1 {
                bits += cost(g2, m > 2);
            }
            if m > 2 {
                let w = m - 2;
                let len = 31 - w.leading_zeros() as usize;
                for l in 0..=len {
                    bits += cost(self.eg[c * EGB + l.min(EGB - 1)], l < len);
                }
                bits += len as f64;
            }
            *o = bits;
        }
        out
    }

    /// Dependent-quantisation levels of block `(c, by, bx)` (version 3): `a` holds its DCT
    /// coefficients in units of the half step Δ (row-major). A Viterbi search over the
    /// four quantiser states in zigzag order minimises `Σ (a − Δ-index)² + lambda · bits`,
    /// the bits estimated from the current contexts (the block's non-zero count included),
    /// with the option to end the block after any position.
    pub(crate) fn choose_levels(
        &self,
        c: usize,
        by: usize,
        bx: usize,
        a: &[f64; B * B],
        lambda: f64,
    ) -> ([i32; B * B], f64) {
        let n = self.around(c, by, bx);
        let counts = self.counts[n.count_model].counts();
        let total: f64 = counts.iter().map(|&v| f64::from(v)).sum();
        let count_bits: [f64; B * B + 1] =
            std::array::from_fn(|n| -(f64::from(counts[n]) / total).log2());
        let count_bits = |n: usize| count_bits[n];
        let table = cost_table();
        let mut parts = [(0usize, 0usize, 0usize); B * B];
        let mut suffix = [0.0f64; B * B + 1];
        for z in (0..B * B).rev() {
            parts[z] = self.parts(&n, z);
            suffix[z] = suffix[z + 1] + a[ZIGZAG[z]] * a[ZIGZAG[z]];
        }
        let run = |est: usize| -> ([i32; B * B], f64) {
            const INF: f64 = f64::INFINITY;
            let mut cost = [0.0, INF, INF, INF];
            let mut nnz = [0usize; 4];
            let mut back = [[(0u8, 0u32); 4]; B * B];
            let (mut best, mut end_z, mut end_s) = (suffix[0] + lambda * count_bits(0), 0, 0u8);
            for z in 0..B * B {
                let av = a[ZIGZAG[z]].abs();
                let mut next = [INF; 4];
                let mut next_nnz = [0usize; 4];
                for s in 0..4u8 {
                    let base = cost[usize::from(s)];
                    if base == INF {
                        continue;
                    }
                    let rem = est.saturating_sub(nnz[usize::from(s)]).max(1);
                    let lo = if s < 2 {
                        (av / 2.0).floor()
                    } else {
                        ((av + 1.0) / 2.0).floor()
                    };
                    let lo = lo.min(f64::from(MAX_Q - 1)) as u32;
                    let ms = [0, lo, lo + 1];
                    let bits = self.level_bits(table, c, parts[z], rem, s, ms);
                    for (m, bits) in ms.into_iter().zip(bits) {
                        let r = f64::from(dq_index(s, m as i32));
                        let d = (av - r) * (av - r);
                        let t = base + d + lambda * bits;
                        let ns = usize::from(NEXT[usize::from(s)][(m & 1) as usize]);
                        if t < next[ns] {
                            next[ns] = t;
                            next_nnz[ns] = nnz[usize::from(s)] + usize::from(m != 0);
                            back[z][ns] = (s, m);
                        }
                    }
                }
                cost = next;
                nnz = next_nnz;
                for s in 0..4 {
                    if cost[s] < INF && nnz[s] > 0 {
                        let e = cost[s] + suffix[z + 1] + lambda * count_bits(nnz[s]);
                        if e < best {
                            (best, end_z, end_s) = (e, z + 1, s as u8);
                        }
                    }
                }
            }
            let mut out = [0i32; B * B];
            let mut s = end_s;
            for z in (0..end_z).rev() {
                let (ps, m) = back[z][usize::from(s)];
                let k = ZIGZAG[z];
                out[k] = if a[k] < 0.0 { -(m as i32) } else { m as i32 };
                s = ps;
            }
            (out, best)
        };
        let est = a.iter().filter(|v| v.abs() >= 1.5).count();
        let first = run(est);
        let n = first.0.iter().filter(|&&v| v != 0).count();
        if n == est { first } else { run(n) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
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

    /// Distortion of levels `m` (in zigzag order) against `a` under the state machine.
    fn dq_error(a: &[f64], m: &[i32]) -> f64 {
        let mut s = 0u8;
        let mut e = 0.0;
        for (&v, &l) in a.iter().zip(m) {
            e += (v - f64::from(dq_index(s, l))).powi(2);
            s = NEXT[usize::from(s)][(l & 1) as usize];
        }
        e
    }

    /// Without a rate term the Viterbi search finds the best reconstruction the state
    /// machine allows: checked against every level vector of the first five positions.
    #[test]
    fn dependent_levels_are_optimal_without_rate() {
        let scan = Scan2::new(1, B, B, true).unwrap();
        for seed in 0..4u32 {
            let lead: Vec<f64> = (0..5u32)
                .map(|i| f64::from((i * 7 + seed * 13) % 17) * 0.47 - 3.9)
                .collect();
            let mut a = [0.0; B * B];
            for (z, &v) in lead.iter().enumerate() {
                a[ZIGZAG[z]] = v;
            }
            let (got, _) = scan.choose_levels(0, 0, 0, &a, 0.0);
            let got_z: Vec<i32> = ZIGZAG.iter().map(|&k| got[k]).collect();
            assert!(got_z[5..].iter().all(|&v| v == 0));
            let mut best = f64::INFINITY;
            for code in 0..9usize.pow(5) {
                let m: Vec<i32> = (0..5)
                    .map(|i| (code / 9usize.pow(i)) as i32 % 9 - 4)
                    .collect();
                best = best.min(dq_error(&lead, &m));
            }
            let e = dq_error(&lead, &got_z[..5]);
            assert!((e - best).abs() < 1e-9, "seed {seed}: {e} against {best}");
            // Reconstruction indices follow the same machine.
            let mut idx = got;
            dq_block_indices(&mut idx);
            let direct: f64 = ZIGZAG
                .iter()
                .map(|&k| (a[k] - f64::from(idx[k])).powi(2))
                .sum();
            assert!((direct - e).abs() < 1e-9);
        }
    }

    /// The built-in context table fits the coder and survives a write-read round trip
    /// byte for byte; a table of another shape is a named error.
    #[test]
    fn the_learned_context_table_fits() {
        let mut scan = Scan2::new(3, 4 * B, 2 * B, true).unwrap();
        scan.start_from(INIT_TABLE, u16::MAX).unwrap();
        assert!(scan.table() == INIT_TABLE);
        let used = scan.zero.iter().filter(|c| c.n > 0).count();
        assert!(used > 1000, "{used} of {} used", scan.zero.len());
        scan.start_learned().unwrap();
        assert!(scan.zero.iter().all(|c| c.n <= INIT_N));
        let e = scan
            .start_from(&INIT_TABLE[..INIT_TABLE.len() - 1], INIT_N)
            .unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");
        let mut flat = Scan2::new(1, B, B, false).unwrap();
        assert!(flat.start_from(INIT_TABLE, INIT_N).is_err());
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
