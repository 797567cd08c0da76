//! The residual layer: a classical transform coder for what the learned codec leaves out.
//!
//! The autoencoder of a small learned model saturates at high rates (the shipped M = 128
//! models reach ~35 dB on Kodak however fine the quantisation). For the top qualities the
//! encoder therefore codes a lower learned level and then the residual `r = x - x̂`
//! between the input and the learned reconstruction `x̂` (as the decoder computes it,
//! before rounding to 8 bits), with a transform coder whose cost per dB is far lower
//! there:
//!
//! * colour: an orthonormal transform of the RGB residual (`(R+G+B)/√3`, `(R-B)/√2`,
//!   `(R-2G+B)/√6`), so squared error in the transform domain is squared error in RGB;
//!   grey images code the first component only (the decoder averages R, G and B);
//! * 8×8 orthonormal DCT of each component (planes padded to multiples of 8 by edge
//!   replication of the residual, cropped on decode). Version 4 (written since
//!   2026-12-07): per component and 16×16 macroblock (the full 2×2 groups of blocks), an
//!   adaptive flag chooses between four 8×8 DCTs and one 16×16 DCT; a 16×16 transform's
//!   coefficients are coded as the macroblock's four 8×8 blocks ("slots"): slot `(a, b)`
//!   (its row and column parity in the macroblock) holds coefficient `(2i + a, 2j + b)` at
//!   position `(i, j)`, i.e. the frequency the 8×8 grid has there, so the 8×8 contexts,
//!   quantiser states and offsets apply unchanged. The flag is coded when the
//!   macroblock's top-left block is reached, in a context of the left and upper
//!   macroblocks' flags (and, for chroma, the luma flag); the encoder searches both
//!   transforms' levels under the contexts as they stand and keeps the one with less
//!   squared error plus `λ·bits` (about 1 % fewer bytes at equal PSNR over qualities 6–9
//!   on 6 Kodak images);
//! * quantisation with one step for every coefficient (MSE-optimal in an orthonormal
//!   domain). Version 3 (written since 2026-12-07): dependent quantisation, two
//!   quantisers of step `step` whose reconstruction points interleave (even and odd
//!   multiples of `Δ = step / 2`), switched per coefficient by a four-state machine
//!   driven by the parity of the previous level in zigzag order; the encoder picks the
//!   levels of each block with a Viterbi search over the states that minimises squared
//!   error plus `λ·bits` (λ = 0.2 `Δ²` per bit), the bits estimated from the adaptive contexts as
//!   they stand; about 2 % fewer bytes than version 2 at equal PSNR on Kodak. Versions 1
//!   and 2: one uniform quantiser with dead-zone rounding (`⌊|c|/step + 0.3⌋`). All
//!   versions reconstruct at the per-class centroid the encoder measured and transmitted;
//! * context-adaptive range coding of the integers. Versions 2 and 3
//!   (`residual_v2.rs`): per block and component the number of non-zero
//!   coefficients, then the coefficients in zigzag order up to the last non-zero one as
//!   binary decisions (non-zero, > 1, > 2, an adaptive Exp-Golomb rest) and a sign bit,
//!   in contexts of the component, the position, the non-zeros still to come and the same
//!   coefficient in the left, upper and (chroma) luma blocks (version 3: the "non-zero"
//!   contexts also see the quantiser state); 1.7–5 % fewer bits than version 1 on Kodak. Version 1 (still decoded): per block and component an adaptive
//!   "has non-zero coefficients" bit, then each coefficient's magnitude (0..14, 15 =
//!   escape followed by Exp-Golomb bypass bits) under an adaptive 16-symbol model chosen
//!   by component class (luma / chroma), band (`i + j`, capped at 9), the activity of the
//!   left and upper blocks (`⌈log2(1 + Σ|q|)⌉`, capped at 7) and the same coefficient's
//!   magnitude there (capped at 3), then a sign bit.
//! * version 5 (written since 2026-12-08): version 4's coder, but every adaptive model
//!   starts from a learned state instead of a flat one: the table `residual_init.bin`
//!   (made by the `residual-rd` example with `RESIDUAL_INIT_OUT` from 30 training photos
//!   at the ladder's steps; binary contexts start with at most 20 updates' confidence).
//!   With ~25,000 contexts a flat start pays a learning cost in every image; about 1.6 %
//!   fewer bytes at equal PSNR over qualities 6–9 on 6 Kodak images.
//!
//! Contexts use decoded integers only, so the stream decodes on any machine; the
//! reconstruction adds the dequantised residual to the decoder's own `x̂`.
//!
//! Chunk layout (versions 1 to 5): `[version, components, step (u16 LE, in 1/16 of an
//! 8-bit sample)]`, [`OFFSET_CLASSES`] reconstruction offsets (i8, in 1/256 of a step —
//! version 3: of `Δ` — subtracted from `|q|`: `|q| = 1` then `|q| ≥ 2`, per component class
//! and band; version 3's `q` is the reconstruction index in units of `Δ`), then the
//! range-coded stream.

use crate::residual_v2::{Scan2, dq_block_indices};
use lcodec_core::{Error, Result};
use lcodec_entropy::{AdaptiveBit, AdaptiveFrequency, Decode, Encode, RangeDecoder, RangeEncoder};
use ndarray::{Array3, ArrayView3};

/// Version byte of the residual chunk the encoder writes (the decoder reads 1 to 5).
pub const VERSION: u8 = 5;
/// Rate weight of the dependent quantiser's search (version 3), in `Δ²` per bit: chosen on
/// 6 Kodak images (0.15–0.25 within 0.2 % of each other; 0.1 and 0.5 lose ~1 %).
pub const DQ_LAMBDA: f64 = 0.2;
/// Block side of the transform.
pub(crate) const B: usize = 8;
/// Band classes (`i + j`, capped).
const BANDS: usize = 10;
/// Neighbour-activity classes.
const ACT: usize = 8;
/// Same-coefficient neighbour classes.
const NB: usize = 4;
/// Magnitude symbols; the last one escapes to Exp-Golomb.
const SYMBOLS: usize = 16;
/// Component classes: luma, chroma.
const CLASSES: usize = 2;
/// Reconstruction offsets transmitted: 2 magnitude classes per component class and band.
pub const OFFSET_CLASSES: usize = 2 * CLASSES * BANDS;
/// Bytes before the range-coded stream.
const HEAD: usize = 4 + OFFSET_CLASSES;
/// Encoder rounding offset (dead zone): `|q| = ⌊|c| / step + ROUND⌋`.
const ROUND: f64 = 0.3;
/// Largest quantised magnitude a stream may carry.
pub(crate) const MAX_Q: u32 = 1 << 20;
/// Smallest and largest quantiser steps (in 8-bit sample units).
pub const MIN_STEP: f32 = 1.0 / 16.0;
/// See [`MIN_STEP`].
pub const MAX_STEP: f32 = 4095.0;

pub(crate) fn ent(e: lcodec_entropy::Error) -> Error {
    Error::codec("image", format!("residual layer: {e}"))
}

pub(crate) fn bad(what: impl std::fmt::Display) -> Error {
    Error::codec("image", format!("residual layer: {what}"))
}

/// The `n`-point orthonormal DCT-II matrix (row-major, `n × n`): `n` = [`B`] for the 8×8
/// transform, `2B` for version 4's 16×16 one.
fn dct_matrix(n: usize) -> Vec<f64> {
    let mut m = vec![0.0; n * n];
    for k in 0..n {
        let a = if k == 0 {
            (1.0 / n as f64).sqrt()
        } else {
            (2.0 / n as f64).sqrt()
        };
        for i in 0..n {
            m[k * n + i] =
                a * (std::f64::consts::PI * (2 * i + 1) as f64 * k as f64 / (2 * n) as f64).cos();
        }
    }
    m
}

/// Rows: the orthonormal colour transform.
const S3: f64 = 0.577_350_269_189_625_8; // 1/√3
const S2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const S6: f64 = 0.408_248_290_463_863; // 1/√6
const COLOUR: [[f64; 3]; 3] = [[S3, S3, S3], [S2, 0.0, -S2], [S6, -2.0 * S6, S6]];

/// `out = D · blk · Dᵀ` (forward) or `Dᵀ · blk · D` (inverse) for an `n × n` block
/// (row-major), `d` from [`dct_matrix`]`(n)`.
fn dct2(d: &[f64], blk: &[f64], inverse: bool) -> Vec<f64> {
    let n = blk.len().isqrt();
    let at = |r: usize, c: usize| if inverse { d[c * n + r] } else { d[r * n + c] };
    let mut tmp = vec![0.0; n * n];
    for r in 0..n {
        for c in 0..n {
            tmp[r * n + c] = (0..n).map(|k| at(r, k) * blk[k * n + c]).sum();
        }
    }
    let mut out = vec![0.0; n * n];
    for r in 0..n {
        for c in 0..n {
            out[r * n + c] = (0..n).map(|k| tmp[r * n + k] * at(c, k)).sum();
        }
    }
    out
}

/// Coefficient `(i, j)` of the 8×8 slot `(a, b)` of a 16×16 macroblock coded whole
/// (version 4) is the 16×16 coefficient `(2i + a, 2j + b)`: each slot holds one parity
/// class of frequencies, at the 8×8 grid's frequency of its position.
fn slot_index(a: usize, b: usize, k: usize) -> usize {
    (2 * (k / B) + a) * 2 * B + 2 * (k % B) + b
}

/// Component class of component `c`.
fn class(c: usize) -> usize {
    usize::from(c > 0)
}

/// Band class of coefficient `k` (row-major in the block).
fn band(k: usize) -> usize {
    (k / B + k % B).min(BANDS - 1)
}

/// Activity class of a sum of magnitudes: its bit length, capped.
fn act_class(sum: u32) -> usize {
    ((32 - sum.leading_zeros()) as usize).min(ACT - 1)
}

/// Block layout and the adaptive models, shared by encoder and decoder so both walk the
/// same contexts.
struct Scan {
    comps: usize,
    bw: usize,
    bh: usize,
    /// Quantised coefficients: component, block row, block column, 64 per block.
    q: Vec<i32>,
    /// Σ|q| per component and block.
    act: Vec<u32>,
    nonzero: Vec<AdaptiveBit>,
    mags: Vec<AdaptiveFrequency>,
}

impl Scan {
    fn new(comps: usize, w: usize, h: usize) -> Result<Self> {
        let (bw, bh) = (w.div_ceil(B), h.div_ceil(B));
        let n = comps * bw * bh;
        let mags = (0..CLASSES * BANDS * ACT * NB)
            .map(|_| AdaptiveFrequency::new(SYMBOLS).map_err(ent))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            comps,
            bw,
            bh,
            q: vec![0; n * B * B],
            act: vec![0; n],
            nonzero: vec![AdaptiveBit::new(); CLASSES * ACT],
            mags,
        })
    }

    fn block(&self, c: usize, by: usize, bx: usize) -> usize {
        (c * self.bh + by) * self.bw + bx
    }

    /// Neighbour activity class and the left / upper block indices of block `i`.
    fn neighbours(&self, c: usize, by: usize, bx: usize) -> (usize, Option<usize>, Option<usize>) {
        let left = (bx > 0).then(|| self.block(c, by, bx - 1));
        let up = (by > 0).then(|| self.block(c, by - 1, bx));
        let a = |b: Option<usize>| b.map_or(0, |b| self.act[b]);
        (act_class(a(left).saturating_add(a(up))), left, up)
    }

    /// Context of coefficient `k` of a block of component class `cc`.
    fn mag_ctx(
        &self,
        cc: usize,
        k: usize,
        na: usize,
        left: Option<usize>,
        up: Option<usize>,
    ) -> usize {
        let m = |b: Option<usize>| b.map_or(0, |b| self.q[b * B * B + k].unsigned_abs());
        let nb = (m(left) + m(up)).min(NB as u32 - 1) as usize;
        ((cc * BANDS + band(k)) * ACT + na) * NB + nb
    }

    /// Blocks in coding order: block rows, block columns, components.
    fn order(&self) -> impl Iterator<Item = (usize, usize, usize)> + use<> {
        let (bh, bw, comps) = (self.bh, self.bw, self.comps);
        (0..bh).flat_map(move |by| (0..bw).flat_map(move |bx| (0..comps).map(move |c| (c, by, bx))))
    }
}

/// Codes the residual between `input` (interleaved RGB8, `3 * w * h` bytes) and the
/// learned reconstruction `recon` (`[3, ≥h, ≥w]`, in `[0, 1]`, not clamped) with
/// quantiser step `step` (in 8-bit sample units); `grey` codes the first component only.
///
/// # Errors
/// [`Error::InvalidArgument`] for a step outside [`MIN_STEP`]..=[`MAX_STEP`] or sizes that
/// do not match; entropy-coder failures.
pub fn encode(
    input: &[u8],
    recon: ArrayView3<'_, f32>,
    w: usize,
    h: usize,
    grey: bool,
    step: f32,
) -> Result<Vec<u8>> {
    encode_version(input, recon, w, h, grey, step, VERSION, None)
}

/// [`encode`] writing bitstream version `version` (1 to 5). Versions 1 and 2 quantise
/// alike and differ in the entropy coding only; version 3 quantises dependently (at the
/// same `step` its reconstruction is finer and its rate higher); version 4 adds the
/// 16×16 transform; version 5 starts the contexts from the learned table. The old
/// versions stay
/// for comparisons and the compatibility tests.
///
/// With `carry` (for learning version 5's context table, the `residual-rd` example) the
/// contexts start from the table in `carry` (empty: the flat start, not the built-in
/// table) and `carry` receives their final state; such a chunk decodes only with that
/// starting table.
///
/// # Errors
/// As [`encode`], [`Error::InvalidArgument`] for an unknown version, and [`Error::Codec`]
/// for a `carry` that is not a context table.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn encode_version(
    input: &[u8],
    recon: ArrayView3<'_, f32>,
    w: usize,
    h: usize,
    grey: bool,
    step: f32,
    version: u8,
    carry: Option<&mut Vec<u8>>,
) -> Result<Vec<u8>> {
    if !(1..=VERSION).contains(&version) {
        return Err(Error::InvalidArgument(format!(
            "image: residual layer version {version} (expected 1..={VERSION})"
        )));
    }
    if !(MIN_STEP..=MAX_STEP).contains(&step) {
        return Err(Error::InvalidArgument(format!(
            "image: residual step {step} (expected {MIN_STEP}..={MAX_STEP})"
        )));
    }
    let (rc, rh, rw) = recon.dim();
    if input.len() != 3 * w * h || rc != 3 || rh < h || rw < w {
        return Err(Error::InvalidArgument(format!(
            "image: residual of {} bytes and a {rc}x{rh}x{rw} reconstruction for {w}x{h}",
            input.len()
        )));
    }
    let step_code = (step * 16.0).round().clamp(1.0, f32::from(u16::MAX)) as u16;
    let step = f64::from(step_code) / 16.0;
    let comps = if grey { 1 } else { 3 };
    let (bw, bh) = (w.div_ceil(B), h.div_ceil(B));
    // Residual in the colour-transform domain, padded by edge replication.
    let (pw, ph) = (bw * B, bh * B);
    let mut planes = vec![vec![0.0f64; pw * ph]; comps];
    for yy in 0..ph {
        let sy = yy.min(h - 1);
        for xx in 0..pw {
            let sx = xx.min(w - 1);
            let mut r = [0.0f64; 3];
            for (ch, v) in r.iter_mut().enumerate() {
                *v = f64::from(input[(sy * w + sx) * 3 + ch])
                    - 255.0 * f64::from(recon[[ch, sy, sx]]);
            }
            for (c, p) in planes.iter_mut().enumerate() {
                p[yy * pw + xx] = (0..3).map(|ch| COLOUR[c][ch] * r[ch]).sum();
            }
        }
    }
    let d = dct_matrix(B);
    let mut scan = Scan::new(comps, w, h)?;
    let blocks: Vec<_> = scan.order().collect();
    // DCT coefficients of one block, computed when it is quantised (not stored for the
    // whole image: that would be 8 bytes per sample).
    let coefs = |c: usize, by: usize, bx: usize| {
        let mut blk = [0.0; B * B];
        for r in 0..B {
            for k in 0..B {
                blk[r * B + k] = planes[c][(by * B + r) * pw + bx * B + k];
            }
        }
        let t = dct2(&d, &blk, false);
        std::array::from_fn::<f64, { B * B }, _>(|k| t[k])
    };
    // Centroid statistics: Σ(|index| - |c|/Δ) per class.
    let mut dev = [(0.0f64, 0u64); OFFSET_CLASSES];
    let mut gather = |c: usize, k: usize, index: i32, v: f64, unit: f64| {
        if index != 0 {
            let m = index.unsigned_abs();
            let oc = offset_class(class(c), k, m);
            dev[oc].0 += f64::from(m) - v.abs() / unit;
            dev[oc].1 += 1;
        }
    };
    let mut enc = RangeEncoder::new();
    let d16 = dct_matrix(2 * B);
    // Version 4: the 16×16 DCT of macroblock `(my, mx)` of component `c`, as its four
    // 8×8 slots.
    let slots = |c: usize, my: usize, mx: usize| -> [[f64; B * B]; 4] {
        let mut blk = vec![0.0; 4 * B * B];
        for r in 0..2 * B {
            let row = (my * 2 * B + r) * pw + mx * 2 * B;
            blk[r * 2 * B..(r + 1) * 2 * B].copy_from_slice(&planes[c][row..row + 2 * B]);
        }
        let t = dct2(&d16, &blk, false);
        std::array::from_fn(|s| std::array::from_fn(|k| t[slot_index(s / 2, s % 2, k)]))
    };
    let (mbw, mbh) = if version >= 4 {
        (bw / 2, bh / 2)
    } else {
        (0, 0)
    };
    if version >= 3 {
        // Dependent quantisation: the levels are chosen block by block under the
        // contexts as the decoder will have them, and coded at once.
        let half = step / 2.0;
        let mut s2 = Scan2::new(comps, w, h, true)?;
        if version >= 5 {
            match carry.as_deref() {
                None => s2.start_learned()?,
                Some(t) if !t.is_empty() => s2.start_from(t, u16::MAX)?,
                Some(_) => {}
            }
        }
        // Version 4: the coefficients of the four blocks of each macroblock and
        // component, in the transform chosen, from the choice until they are coded.
        let mut chosen: Vec<[[f64; B * B]; 4]> = vec![[[0.0; B * B]; 4]; comps * mbh * mbw];
        for &(c, by, bx) in &blocks {
            let i = scan.block(c, by, bx);
            let (my, mx) = (by / 2, bx / 2);
            let in_mb = my < mbh && mx < mbw;
            if in_mb && by % 2 == 0 && bx % 2 == 0 {
                // Both transforms of the macroblock, searched under the contexts as they
                // stand (the macroblock's own blocks seen as coded); the one with less
                // squared error plus λ·bits is coded.
                let split: [[f64; B * B]; 4] =
                    std::array::from_fn(|s| coefs(c, 2 * my + s / 2, 2 * mx + s % 2));
                let whole = slots(c, my, mx);
                let mut cost = [0.0; 2];
                for (o, coef) in [&split, &whole].into_iter().enumerate() {
                    let is_whole = o == 1;
                    cost[o] = DQ_LAMBDA * s2.split_bits(c, my, mx, is_whole);
                    s2.set_whole(c, my, mx, is_whole);
                    for (s, cf) in coef.iter().enumerate() {
                        let (yy, xx) = (2 * my + s / 2, 2 * mx + s % 2);
                        let (lv, cst) =
                            s2.choose_levels(c, yy, xx, &cf.map(|v| v / half), DQ_LAMBDA);
                        cost[o] += cst;
                        s2.set_levels(c, yy, xx, Some(&lv));
                    }
                    for s in 0..4 {
                        s2.set_levels(c, 2 * my + s / 2, 2 * mx + s % 2, None);
                    }
                }
                let mut is_whole = cost[1] < cost[0];
                s2.code_split(&mut enc, c, my, mx, &mut is_whole)?;
                chosen[(c * mbh + my) * mbw + mx] = if is_whole { whole } else { split };
            }
            let coef = if in_mb {
                chosen[(c * mbh + my) * mbw + mx][(by % 2) * 2 + bx % 2]
            } else {
                coefs(c, by, bx)
            };
            let a = coef.map(|v| v / half);
            let (levels, _) = s2.choose_levels(c, by, bx, &a, DQ_LAMBDA);
            s2.q[i * B * B..(i + 1) * B * B].copy_from_slice(&levels);
            s2.code_block(&mut enc, c, by, bx)?;
            let mut idx = levels;
            dq_block_indices(&mut idx);
            for k in 0..B * B {
                gather(c, k, idx[k], coef[k], half);
            }
        }
        if let Some(t) = carry {
            *t = s2.table();
        }
    } else {
        for &(c, by, bx) in &blocks {
            let i = scan.block(c, by, bx);
            for (k, &v) in coefs(c, by, bx).iter().enumerate() {
                let m = (v.abs() / step + ROUND).floor().min(f64::from(MAX_Q)) as i32;
                let m = if v < 0.0 { -m } else { m };
                gather(c, k, m, v, step);
                scan.q[i * B * B + k] = m;
            }
        }
    }
    let mut out = Vec::with_capacity(HEAD + 1024);
    out.extend_from_slice(&[version, comps as u8]);
    out.extend_from_slice(&step_code.to_le_bytes());
    for &(s, n) in &dev {
        let off = if n == 0 { 0.0 } else { s / n as f64 };
        out.push((off * 256.0).round().clamp(-128.0, 127.0) as i8 as u8);
    }
    if version == 2 {
        let mut s2 = Scan2::new(comps, w, h, false)?;
        s2.q = std::mem::take(&mut scan.q);
        for &(c, by, bx) in &blocks {
            s2.code_block(&mut enc, c, by, bx)?;
        }
    }
    if version != 1 {
        out.extend_from_slice(&enc.finish());
        return Ok(out);
    }
    for (c, by, bx) in blocks {
        let i = scan.block(c, by, bx);
        let (na, left, up) = scan.neighbours(c, by, bx);
        let cc = class(c);
        let coded = &scan.q[i * B * B..(i + 1) * B * B];
        let any = coded.iter().any(|&v| v != 0);
        enc.encode_bit_adaptive(any, &mut scan.nonzero[cc * ACT + na])
            .map_err(ent)?;
        if !any {
            continue;
        }
        let mut sum = 0u32;
        for k in 0..B * B {
            let v = scan.q[i * B * B + k];
            let m = v.unsigned_abs();
            let ctx = scan.mag_ctx(cc, k, na, left, up);
            let sym = (m as usize).min(SYMBOLS - 1);
            enc.encode_adaptive(sym, &mut scan.mags[ctx]).map_err(ent)?;
            if sym == SYMBOLS - 1 {
                enc.encode_exp_golomb(m - (SYMBOLS as u32 - 1))
                    .map_err(ent)?;
            }
            if m != 0 {
                enc.encode_bits(u32::from(v < 0), 1).map_err(ent)?;
            }
            sum = sum.saturating_add(m);
        }
        scan.act[i] = sum;
    }
    out.extend_from_slice(&enc.finish());
    Ok(out)
}

/// Offset class of a non-zero magnitude `m` of coefficient `k` in component class `cc`.
fn offset_class(cc: usize, k: usize, m: u32) -> usize {
    ((cc * BANDS + band(k)) * 2) + usize::from(m >= 2)
}

/// Decodes a residual chunk and adds it to `recon` (`[3, ≥h, ≥w]`, in `[0, 1]`); `grey`
/// says what the header promises (1 component, else 3).
///
/// # Errors
/// [`Error::Codec`] naming what is wrong with a damaged chunk.
pub fn decode_into(
    payload: &[u8],
    recon: &mut Array3<f32>,
    w: usize,
    h: usize,
    grey: bool,
) -> Result<()> {
    if payload.len() < HEAD {
        return Err(bad(format!(
            "{} bytes, shorter than its {HEAD}-byte head",
            payload.len()
        )));
    }
    let comps = if grey { 1 } else { 3 };
    let version = payload[0];
    if !(1..=VERSION).contains(&version) || usize::from(payload[1]) != comps {
        return Err(bad(format!(
            "version {version} with {} components (expected version 1..={VERSION} with {comps})",
            payload[1]
        )));
    }
    let step_code = u16::from_le_bytes([payload[2], payload[3]]);
    if step_code == 0 {
        return Err(bad("quantiser step 0"));
    }
    let (rc, rh, rw) = recon.dim();
    if rc != 3 || rh < h || rw < w {
        return Err(Error::InvalidArgument(format!(
            "image: a {rc}x{rh}x{rw} reconstruction for {w}x{h}"
        )));
    }
    // Version 3 reconstructs on multiples of the half step.
    let step = f64::from(step_code) / if version >= 3 { 32.0 } else { 16.0 };
    let offsets: Vec<f64> = payload[4..HEAD]
        .iter()
        .map(|&b| f64::from(b as i8) / 256.0)
        .collect();
    let mut scan = Scan::new(comps, w, h)?;
    let mut dec = RangeDecoder::new(&payload[HEAD..]).map_err(ent)?;
    let blocks: Vec<_> = scan.order().collect();
    let (mbw, mbh) = if version >= 4 {
        (scan.bw / 2, scan.bh / 2)
    } else {
        (0, 0)
    };
    let mut whole = Vec::new();
    if version >= 2 {
        let mut s2 = Scan2::new(comps, w, h, version >= 3)?;
        if version >= 5 {
            s2.start_learned()?;
        }
        for &(c, by, bx) in &blocks {
            if by / 2 < mbh && bx / 2 < mbw && by % 2 == 0 && bx % 2 == 0 {
                let mut f = false;
                s2.code_split(&mut dec, c, by / 2, bx / 2, &mut f)?;
            }
            s2.code_block(&mut dec, c, by, bx)?;
        }
        scan.q = std::mem::take(&mut s2.q);
        whole = std::mem::take(&mut s2.whole);
        if version >= 3 {
            scan.q.chunks_exact_mut(B * B).for_each(dq_block_indices);
        }
    }
    for &(c, by, bx) in blocks.iter().filter(|_| version == 1) {
        let i = scan.block(c, by, bx);
        let (na, left, up) = scan.neighbours(c, by, bx);
        let cc = class(c);
        if !dec
            .decode_bit_adaptive(&mut scan.nonzero[cc * ACT + na])
            .map_err(ent)?
        {
            continue;
        }
        let mut sum = 0u32;
        for k in 0..B * B {
            let ctx = scan.mag_ctx(cc, k, na, left, up);
            let sym = dec.decode_adaptive(&mut scan.mags[ctx]).map_err(ent)?;
            let mut m = sym as u32;
            if sym == SYMBOLS - 1 {
                let extra = dec.decode_exp_golomb().map_err(ent)?;
                m = m.saturating_add(extra);
                if m > MAX_Q {
                    return Err(bad(format!("coefficient magnitude {m} (at most {MAX_Q})")));
                }
            }
            if m != 0 && dec.decode_bits(1).map_err(ent)? == 1 {
                scan.q[i * B * B + k] = -(m as i32);
            } else {
                scan.q[i * B * B + k] = m as i32;
            }
            sum = sum.saturating_add(m);
        }
        scan.act[i] = sum;
    }
    dec.finish().map_err(ent)?;
    // Dequantise, inverse transforms, add.
    let d = dct_matrix(B);
    let d16 = dct_matrix(2 * B);
    let pw = scan.bw * B;
    let mut planes = vec![vec![0.0f64; pw * scan.bh * B]; comps];
    let dequant = |c: usize, by: usize, bx: usize| {
        let i = scan.block(c, by, bx);
        let mut coef = [0.0; B * B];
        for (k, v) in coef.iter_mut().enumerate() {
            let q = scan.q[i * B * B + k];
            if q != 0 {
                let m = q.unsigned_abs();
                let r = (f64::from(m) - offsets[offset_class(class(c), k, m)]) * step;
                *v = if q < 0 { -r } else { r };
            }
        }
        coef
    };
    for &(c, by, bx) in &blocks {
        let i = scan.block(c, by, bx);
        let (my, mx) = (by / 2, bx / 2);
        if my < mbh && mx < mbw && whole[(c * mbh + my) * mbw + mx] {
            if by % 2 == 1 || bx % 2 == 1 {
                continue;
            }
            let mut t = vec![0.0; 4 * B * B];
            for (a, b) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                for (k, v) in dequant(c, by + a, bx + b).into_iter().enumerate() {
                    t[slot_index(a, b, k)] = v;
                }
            }
            let blk = dct2(&d16, &t, true);
            for r in 0..2 * B {
                for k in 0..2 * B {
                    planes[c][(by * B + r) * pw + bx * B + k] = blk[r * 2 * B + k];
                }
            }
            continue;
        }
        if scan.q[i * B * B..(i + 1) * B * B].iter().all(|&v| v == 0) {
            continue;
        }
        let coef = dequant(c, by, bx);
        let blk = dct2(&d, &coef, true);
        for r in 0..B {
            for k in 0..B {
                planes[c][(by * B + r) * pw + bx * B + k] = blk[r * B + k];
            }
        }
    }
    for yy in 0..h {
        for xx in 0..w {
            for ch in 0..3 {
                let v: f64 = (0..comps)
                    .map(|c| COLOUR[c][ch] * planes[c][yy * pw + xx])
                    .sum();
                recon[[ch, yy, xx]] += (v / 255.0) as f32;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::assert_frozen;

    #[test]
    fn the_transforms_are_orthonormal() {
        let d = dct_matrix(B);
        let blk: [f64; 64] = std::array::from_fn(|i| ((i * 37) % 23) as f64 - 11.0);
        let back = dct2(&d, &dct2(&d, &blk, false), true);
        for (a, b) in blk.iter().zip(&back) {
            assert!((a - b).abs() < 1e-9);
        }
        let e: f64 = blk.iter().map(|v| v * v).sum();
        let ec: f64 = dct2(&d, &blk, false).iter().map(|v| v * v).sum();
        assert!((e - ec).abs() < 1e-6 * e);
        for (i, a) in COLOUR.iter().enumerate() {
            for (j, b) in COLOUR.iter().enumerate() {
                let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                assert!((dot - f64::from(u8::from(i == j))).abs() < 1e-12);
            }
        }
        let d16 = dct_matrix(2 * B);
        let blk: Vec<f64> = (0..256).map(|i| ((i * 53) % 31) as f64 - 15.0).collect();
        let fwd = dct2(&d16, &blk, false);
        let back = dct2(&d16, &fwd, true);
        for (a, b) in blk.iter().zip(&back) {
            assert!((a - b).abs() < 1e-9);
        }
        let e: f64 = blk.iter().map(|v| v * v).sum();
        let ec: f64 = fwd.iter().map(|v| v * v).sum();
        assert!((e - ec).abs() < 1e-6 * e);
        // The four slots of a macroblock hold every 16×16 coefficient once, the DC in
        // slot 0's first position.
        let mut seen = [false; 256];
        for s in 0..4 {
            for k in 0..B * B {
                let t = slot_index(s / 2, s % 2, k);
                assert!(!seen[t], "coefficient {t} twice");
                seen[t] = true;
            }
        }
        assert_eq!(slot_index(0, 0, 0), 0);
    }

    /// A small RGB image and a "reconstruction" that misses its detail.
    fn sample(w: usize, h: usize) -> (Vec<u8>, Array3<f32>) {
        let rgb: Vec<u8> = (0..w * h * 3)
            .map(|i| ((i * 37 + (i / (3 * w)) * 11) % 251) as u8)
            .collect();
        let recon = Array3::from_shape_fn((3, h, w), |(c, y, x)| {
            f32::from(rgb[(y * w + x) * 3 + c] / 32 * 32) / 255.0
        });
        (rgb, recon)
    }

    /// Sum of squared errors of a reconstruction against `rgb`, in 8-bit units.
    fn sse(rgb: &[u8], w: usize, r: &Array3<f32>) -> f64 {
        r.indexed_iter()
            .map(|((c, y, x), &v)| {
                (f64::from(v) * 255.0 - f64::from(rgb[(y * w + x) * 3 + c])).powi(2)
            })
            .sum()
    }

    /// Every bitstream version is frozen: the same input gives the same bytes (the
    /// version-1 hash was taken before version 2 existed, version 2's before version 3,
    /// version 3's before version 4, version 4's before version 5),
    /// all decode; versions 1 and 2 to the same reconstruction, version 2 the smaller;
    /// versions 3 to 5 closer to the input.
    #[test]
    fn every_version_is_frozen_and_decodes() {
        let (w, h) = (37, 29);
        let (rgb, recon) = sample(w, h);
        let mut outs = Vec::new();
        let mut sizes = Vec::new();
        for (version, golden) in [
            (1u8, 0x328d_09a3_fe51_51df_u64),
            (2, 0x6479_26aa_6105_2e0f),
            (3, 0x7731_0392_713c_b549),
            (4, 0x0296_21ae_c8de_8bcd),
            (5, 0x67a7_52e5_bfe7_8c13),
        ] {
            let p = encode_version(&rgb, recon.view(), w, h, false, 3.0, version, None).unwrap();
            assert_eq!(p[0], version);
            assert_frozen(&p, golden, &format!("residual version {version}"));
            let mut r = recon.clone();
            decode_into(&p, &mut r, w, h, false).unwrap();
            outs.push(r);
            sizes.push(p.len());
        }
        assert_eq!(outs[0], outs[1]);
        assert!(sizes[1] < sizes[0], "{sizes:?}");
        let e: Vec<f64> = outs.iter().map(|r| sse(&rgb, w, r)).collect();
        assert!(e[2] < e[1] && e[1] < sse(&rgb, w, &recon), "{e:?}");
        assert!(e[3] < e[1] && e[4] < e[1], "{e:?}");
        assert!(encode_version(&rgb, recon.view(), w, h, false, 3.0, 6, None).is_err());
    }

    /// Version 4 codes a smooth residual with the 16×16 transform where it is cheaper:
    /// fewer bytes than version 3 at about the same error, and the decoder's 16×16 path
    /// puts every coefficient back (a fine step reconstructs within a fraction of a level).
    #[test]
    fn smooth_residuals_take_the_16x16_transform() {
        let (w, h) = (67, 50);
        let wave = |x: usize, y: usize, c: usize| {
            let (fx, fy) = (x as f64 / 23.0, y as f64 / 29.0);
            30.0 * (fx + 0.3 * c as f64).sin() * (fy * 1.3).cos() + 8.0 * (fx * 2.1 + fy).sin()
        };
        let recon = Array3::from_shape_fn((3, h, w), |(c, _, _)| (100.0 + 20.0 * c as f32) / 255.0);
        let rgb: Vec<u8> = (0..w * h * 3)
            .map(|i| {
                let (c, x, y) = (i % 3, (i / 3) % w, i / (3 * w));
                (100.0 + 20.0 * c as f64 + wave(x, y, c)).round() as u8
            })
            .collect();
        let run = |version: u8, step: f32| {
            let p = encode_version(&rgb, recon.view(), w, h, false, step, version, None).unwrap();
            let mut r = recon.clone();
            decode_into(&p, &mut r, w, h, false).unwrap();
            (p.len(), sse(&rgb, w, &r))
        };
        for step in [6.0, 12.0] {
            let (b3, e3) = run(3, step);
            let (b4, e4) = run(4, step);
            assert!(
                b4 < b3 && e4 < 1.05 * e3,
                "step {step}: v3 {b3} B {e3:.0}, v4 {b4} B {e4:.0}"
            );
        }
        let (_, e) = run(4, 0.5);
        assert!(e / ((w * h * 3) as f64) < 0.15, "{e}");
    }

    /// Version 5's learned starting contexts pay on a photo: against version 4 (the same
    /// coder from flat contexts), fewer bytes at no more error, or less error for no more
    /// bytes, at a coarse and a fine step. The "reconstruction" is the photo blurred, whose
    /// residual is noise-like detail as the learned codec's is.
    #[test]
    fn learned_starting_contexts_pay_on_a_photo() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/images/kodak/kodim23.png");
        let Ok(img) = image::open(&path) else {
            println!("kodim23 not present: skipped");
            return;
        };
        let img = img.to_rgb8();
        let (w, h) = (160, 120);
        let rgb: Vec<u8> = (0..h)
            .flat_map(|y| (0..w).flat_map(move |x| (0..3).map(move |c| (x, y, c))))
            .map(|(x, y, c)| img.get_pixel(200 + x as u32, 150 + y as u32)[c])
            .collect();
        let recon = Array3::from_shape_fn((3, h, w), |(c, y, x)| {
            let mut s = 0.0;
            for (dy, dx) in (0..3).flat_map(|a| (0..3).map(move |b| (a, b))) {
                let (yy, xx) = ((y + dy).clamp(1, h) - 1, (x + dx).clamp(1, w) - 1);
                s += f32::from(rgb[(yy * w + xx) * 3 + c]);
            }
            s / 9.0 / 255.0
        });
        for step in [24.0, 8.0] {
            let run = |version: u8| {
                let p =
                    encode_version(&rgb, recon.view(), w, h, false, step, version, None).unwrap();
                let mut r = recon.clone();
                decode_into(&p, &mut r, w, h, false).unwrap();
                (p.len(), sse(&rgb, w, &r))
            };
            let ((b4, e4), (b5, e5)) = (run(4), run(5));
            println!("step {step}: v4 {b4} B {e4:.0}, v5 {b5} B {e5:.0}");
            assert!(
                (b5 < b4 && e5 <= e4 * 1.005) || (e5 < e4 && b5 <= b4),
                "step {step}: v4 {b4} B {e4:.0}, v5 {b5} B {e5:.0}"
            );
        }
    }

    #[test]
    fn finer_steps_reconstruct_closer() {
        let (w, h) = (21, 13);
        let (rgb, recon) = sample(w, h);
        let err = |r: &Array3<f32>| sse(&rgb, w, r);
        let mut last = err(&recon);
        for step in [16.0, 4.0, 1.0, MIN_STEP] {
            let p = encode(&rgb, recon.view(), w, h, false, step).unwrap();
            let mut r = recon.clone();
            decode_into(&p, &mut r, w, h, false).unwrap();
            let e = err(&r);
            assert!(e < last, "step {step}: {e} after {last}");
            last = e;
        }
        // At the finest step every sample is within half a level.
        assert!(last / ((w * h * 3) as f64) < 0.25 * 0.25, "{last}");
    }

    #[test]
    fn damaged_chunks_are_named_errors_never_panics() {
        let (w, h) = (19, 9);
        let (rgb, recon) = sample(w, h);
        let p = encode(&rgb, recon.view(), w, h, false, 2.0).unwrap();
        let dec = |bytes: &[u8], grey: bool| {
            let mut r = recon.clone();
            decode_into(bytes, &mut r, w, h, grey).map(|()| r)
        };
        dec(&p, false).unwrap();
        let msg = |r: Result<Array3<f32>>| r.unwrap_err().to_string();
        assert!(msg(dec(&p[..HEAD - 1], false)).contains("shorter than its"));
        assert!(msg(dec(&p, true)).contains("with 3 components (expected version 1..=5 with 1)"));
        let mut v = p.clone();
        v[0] = 9;
        assert!(msg(dec(&v, false)).contains("version 9"));
        let mut z = p.clone();
        z[2] = 0;
        z[3] = 0;
        assert!(msg(dec(&z, false)).contains("step 0"));
        for cut in HEAD..p.len() {
            assert!(
                dec(&p[..cut], false).is_err() || cut + 2 >= p.len(),
                "cut {cut}"
            );
        }
        for i in 0..p.len() {
            let mut b = p.clone();
            b[i] ^= 0x5a;
            let _ = dec(&b, false);
        }
        for step in [0.0, 0.01, 5000.0, f32::NAN] {
            assert!(
                encode(&rgb, recon.view(), w, h, false, step).is_err(),
                "{step}"
            );
        }
    }
}
