//! Deterministic CPU kernels of the forward pass: a packed f32 matrix times a batch of
//! vectors, attention of one head, and fast elementary functions.
//!
//! Every output value is computed by one fixed sequence of IEEE-754 `+ - * /` operations
//! (no fused multiply-add: Rust never contracts `a * b + c`, and `mul_add` is not used),
//! so the bits do not depend on the vector width, the thread count or the batch a token is
//! computed in. Vectorisation runs *across* independent outputs (16 matrix rows, 16 dot
//! product lanes, 64 head dimensions), never across a reduction: the matrix kernel adds
//! `W[r][k] · x[k]` into output `r` in the order `k = 0, 1, …`; dot products keep 16
//! lanes summed in a fixed tree. The hot loops are compiled twice by `pulp`'s runtime
//! dispatch (x86-64-v3 / AVX2 and the baseline), which changes only the instruction
//! width, not the arithmetic.

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

/// Whether the environment asks for the baseline (non-dispatched) code path:
/// `LCODEC_TEXT_SCALAR=1`, read once. Used to check that both paths give the same bits.
fn scalar_forced() -> bool {
    static F: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *F.get_or_init(|| std::env::var_os("LCODEC_TEXT_SCALAR").is_some_and(|v| v == "1"))
}

/// Runs `op` with the widest instruction set the CPU has (or the baseline when
/// [`scalar_forced`]).
#[inline]
fn run<Op: WithSimd>(op: Op, scalar: bool) -> Op::Output {
    if scalar {
        op.with_simd(pulp::Scalar::new())
    } else {
        Arch::new().dispatch(op)
    }
}

/// Rows per packed panel (the vector width of the matrix kernel).
pub const PW: usize = 16;
/// Tokens per register tile of the matrix kernel.
const TT: usize = 4;

/// How a [`Packed`] matrix holds its values.
#[derive(Debug, Clone)]
enum Store {
    /// f32, `panel[k][j]`.
    F32(Vec<f32>),
    /// Q4_1 codes, one byte each (`panel[k][j]`), with the f32 scale and minimum of
    /// each 32-column block (`[block][d × PW, m × PW]` per panel): `w = q·d + m`, the
    /// same expression (and bits) as the GGUF dequantisation. A third of the f32 size,
    /// so a decoding step that is bound by memory bandwidth runs faster.
    Q4(Vec<u8>, Vec<f32>),
}

/// A row-major matrix `rows × cols`, stored as panels of [`PW`] rows, each panel
/// column-major (`panel[k][j] = W[p·PW + j][k]`); rows past `rows` are zero.
#[derive(Debug, Clone)]
pub struct Packed {
    /// Rows (outputs).
    pub rows: usize,
    /// Columns (inputs).
    pub cols: usize,
    store: Store,
}

impl Packed {
    /// Packs a matrix whose row `r` is written by `fill(r, out)` (`out.len() == cols`);
    /// panels are filled in parallel.
    pub fn from_rows(rows: usize, cols: usize, fill: &(dyn Fn(usize, &mut [f32]) + Sync)) -> Self {
        let np = rows.div_ceil(PW);
        let mut data = vec![0f32; np * cols * PW];
        if cols > 0 {
            data.par_chunks_mut(cols * PW)
                .enumerate()
                .for_each(|(p, panel)| {
                    let mut buf = vec![0f32; cols];
                    for j in 0..PW {
                        let r = p * PW + j;
                        if r >= rows {
                            break;
                        }
                        fill(r, &mut buf);
                        for (k, &v) in buf.iter().enumerate() {
                            panel[k * PW + j] = v;
                        }
                    }
                });
        }
        Packed {
            rows,
            cols,
            store: Store::F32(data),
        }
    }

    /// Packs a Q4_1 matrix (`cols` a multiple of 32) whose row `r` is the GGUF block
    /// bytes `row(r)` (20 bytes per 32 values: f16 scale, f16 minimum, 16 bytes of
    /// nibbles, low nibbles first).
    pub fn from_q4_1<'a>(
        rows: usize,
        cols: usize,
        row: &(dyn Fn(usize) -> &'a [u8] + Sync),
    ) -> Self {
        let np = rows.div_ceil(PW);
        let nb = cols / 32;
        let mut q = vec![0u8; np * cols * PW];
        let mut dm = vec![0f32; np * nb * 2 * PW];
        if nb > 0 {
            q.par_chunks_mut(cols * PW)
                .zip(dm.par_chunks_mut(nb * 2 * PW))
                .enumerate()
                .for_each(|(p, (qp, dmp))| {
                    for j in 0..PW {
                        let r = p * PW + j;
                        if r >= rows {
                            break;
                        }
                        for (b, blk) in row(r).chunks_exact(20).take(nb).enumerate() {
                            let h = |i: usize| {
                                super::gguf::f16_to_f32(u16::from_le_bytes([blk[i], blk[i + 1]]))
                            };
                            dmp[b * 2 * PW + j] = h(0);
                            dmp[b * 2 * PW + PW + j] = h(2);
                            for i in 0..16 {
                                let c = blk[4 + i];
                                qp[(b * 32 + i) * PW + j] = c & 15;
                                qp[(b * 32 + i + 16) * PW + j] = c >> 4;
                            }
                        }
                    }
                });
        }
        Packed {
            rows,
            cols,
            store: Store::Q4(q, dm),
        }
    }

    /// Copies row `r` into `out` (`cols` values).
    pub fn row(&self, r: usize, out: &mut [f32]) {
        let (p, j) = (r / PW, r % PW);
        let k = self.cols;
        match &self.store {
            Store::F32(data) => {
                let panel = &data[p * k * PW..(p + 1) * k * PW];
                for (o, w) in out.iter_mut().zip(panel.chunks_exact(PW)) {
                    *o = w[j];
                }
            }
            Store::Q4(q, dm) => {
                let nb = k / 32;
                let qp = &q[p * k * PW..(p + 1) * k * PW];
                let dmp = &dm[p * nb * 2 * PW..(p + 1) * nb * 2 * PW];
                for (c, o) in out.iter_mut().enumerate().take(k) {
                    let b = c / 32;
                    *o = f32::from(qp[c * PW + j]) * dmp[b * 2 * PW + j] + dmp[b * 2 * PW + PW + j];
                }
            }
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        match &self.store {
            Store::F32(d) => d.len() * 4,
            Store::Q4(q, dm) => q.len() + dm.len() * 4,
        }
    }
}

/// Columns per block of the matrix kernel: a block of a panel (8 KiB of f32) stays in
/// L1 while every token tile passes over it. Must be a multiple of 32 (Q4_1 blocks).
const KB: usize = 128;

/// Expands columns `k0..k0 + kb` of panel `p` of a Q4 store into `buf` (`kb × PW` f32);
/// `k0` and `kb` are multiples of 32.
#[inline(always)]
fn dequant_block(q: &[u8], dm: &[f32], k: usize, p: usize, k0: usize, kb: usize, buf: &mut [f32]) {
    let nb = k / 32;
    let qp = &q[(p * k + k0) * PW..(p * k + k0 + kb) * PW];
    let dmp = &dm[(p * nb + k0 / 32) * 2 * PW..(p * nb + (k0 + kb) / 32) * 2 * PW];
    for ((qb, ob), dmb) in qp
        .chunks_exact(32 * PW)
        .zip(buf.chunks_exact_mut(32 * PW))
        .zip(dmp.chunks_exact(2 * PW))
    {
        let (dm2, _) = dmb.as_chunks::<PW>();
        let (d, m) = (&dm2[0], &dm2[1]);
        let (qs, _) = qb.as_chunks::<PW>();
        let (os, _) = ob.as_chunks_mut::<PW>();
        for (q, o) in qs.iter().zip(os.iter_mut()) {
            // Opaque to the loop vectoriser, which would otherwise vectorise across `k`
            // with byte gathers; the 16 lanes below become straight vector code.
            let q = std::hint::black_box(q);
            for j in 0..PW {
                o[j] = f32::from(q[j]) * d[j] + m[j];
            }
        }
    }
}

/// One register tile: `T` tokens times a block of one panel; each output continues its
/// sum (held in `out`, zero before the first block) over the block's `k` in order.
#[inline(always)]
fn tile<const T: usize>(panel: &[[f32; PW]], xs: [&[f32]; T], out: &mut [f32]) {
    let mut acc = [[0f32; PW]; T];
    for (a, o) in acc.iter_mut().zip(out.chunks_exact(PW)) {
        a.copy_from_slice(o);
    }
    for (k, w) in panel.iter().enumerate() {
        for t in 0..T {
            let b = xs[t][k];
            for j in 0..PW {
                acc[t][j] += w[j] * b;
            }
        }
    }
    for (o, a) in out.chunks_exact_mut(PW).zip(&acc) {
        o.copy_from_slice(a);
    }
}

/// Adds `W[p·PW + j][k0..k0 + kb] · x[t][k0..k0 + kb]` to `o[t][j]` (`panel`: the block,
/// `kb × PW`; `x`: `n` rows of `k`).
#[inline(always)]
fn block_kernel(panel: &[f32], x: &[f32], k: usize, k0: usize, n: usize, o: &mut [f32]) {
    let (panel, _) = panel.as_chunks::<PW>();
    let kb = panel.len();
    let xt = |t: usize| &x[t * k + k0..t * k + k0 + kb];
    let mut t = 0;
    while t + TT <= n {
        tile::<TT>(
            panel,
            [xt(t), xt(t + 1), xt(t + 2), xt(t + 3)],
            &mut o[t * PW..(t + TT) * PW],
        );
        t += TT;
    }
    let r = n - t;
    if r > 0 && n >= TT {
        // A full tile with the last token repeated (narrow tiles vectorise worse); the
        // extra outputs are dropped, and no output depends on its neighbours.
        let pick = |i: usize| t + i.min(r - 1);
        let mut acc = [0f32; TT * PW];
        for (i, a) in acc.chunks_exact_mut(PW).enumerate() {
            a.copy_from_slice(&o[pick(i) * PW..(pick(i) + 1) * PW]);
        }
        tile::<TT>(
            panel,
            [xt(pick(0)), xt(pick(1)), xt(pick(2)), xt(pick(3))],
            &mut acc,
        );
        o[t * PW..n * PW].copy_from_slice(&acc[..r * PW]);
        return;
    }
    match r {
        3 => tile::<3>(panel, [xt(t), xt(t + 1), xt(t + 2)], &mut o[t * PW..]),
        2 => tile::<2>(panel, [xt(t), xt(t + 1)], &mut o[t * PW..]),
        1 => tile::<1>(panel, [xt(t)], &mut o[t * PW..]),
        _ => {}
    }
}

/// `out[t][j] = W[p·PW + j] · x[t]` for one f32 panel (`out` zero on entry).
#[inline(always)]
fn panel_kernel(panel: &[f32], x: &[f32], k: usize, n: usize, o: &mut [f32]) {
    let mut k0 = 0;
    while k0 < k {
        let kb = KB.min(k - k0);
        block_kernel(&panel[k0 * PW..(k0 + kb) * PW], x, k, k0, n, o);
        k0 += kb;
    }
}

/// [`panel_kernel`] over consecutive f32 panels.
#[inline(always)]
fn panels_kernel(panels: &[f32], x: &[f32], k: usize, n: usize, out: &mut [f32]) {
    for (panel, o) in panels
        .chunks_exact(k * PW)
        .zip(out.chunks_exact_mut(n * PW))
    {
        panel_kernel(panel, x, k, n, o);
    }
}

struct PanelOp<'a> {
    w: &'a Packed,
    p0: usize,
    x: &'a [f32],
    n: usize,
    out: &'a mut [f32],
}

impl WithSimd for PanelOp<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let (k, n) = (self.w.cols, self.n);
        let cnt = self.out.len() / (n * PW);
        match &self.w.store {
            Store::F32(data) => panels_kernel(
                &data[self.p0 * k * PW..(self.p0 + cnt) * k * PW],
                self.x,
                k,
                n,
                self.out,
            ),
            Store::Q4(q, dm) => {
                let mut buf = vec![0f32; KB * PW];
                for (i, o) in self.out.chunks_exact_mut(n * PW).enumerate() {
                    let mut k0 = 0;
                    while k0 < k {
                        let kb = KB.min(k - k0);
                        let b = &mut buf[..kb * PW];
                        dequant_block(q, dm, k, self.p0 + i, k0, kb, b);
                        block_kernel(b, self.x, k, k0, n, o);
                        k0 += kb;
                    }
                }
            }
        }
    }
}

/// `out[t·rows + r] = W[r] · x[t]` for `t < n` (`x` is `n × cols`, `out` `n × rows`);
/// parallel over groups of panels (independent outputs).
pub fn gemm(w: &Packed, x: &[f32], n: usize, out: &mut [f32]) {
    gemm_impl(w, x, n, out, scalar_forced());
}

fn gemm_impl(w: &Packed, x: &[f32], n: usize, out: &mut [f32], scalar: bool) {
    let (rows, k) = (w.rows, w.cols);
    if n == 0 || rows == 0 {
        return;
    }
    let np = rows.div_ceil(PW);
    let mut tmp = vec![0f32; np * n * PW];
    if k > 0 {
        // About 16 tasks per matrix, each at least ~1/4 M multiply-adds.
        let min_panels = (1 << 18) / (k * PW * n).max(1);
        let per = np.div_ceil(16).max(min_panels).clamp(1, np);
        tmp.par_chunks_mut(per * n * PW)
            .enumerate()
            .for_each(|(c, o)| {
                run(
                    PanelOp {
                        w,
                        p0: c * per,
                        x: &x[..n * k],
                        n,
                        out: o,
                    },
                    scalar,
                );
            });
    }
    for (p, tp) in tmp.chunks_exact(n * PW).enumerate() {
        let r0 = p * PW;
        let m = PW.min(rows - r0);
        for (t, v) in tp.chunks_exact(PW).enumerate() {
            out[t * rows + r0..t * rows + r0 + m].copy_from_slice(&v[..m]);
        }
    }
}

/// Dot product with 16 accumulator lanes combined in a fixed tree (same bits on every
/// machine; the compiler may vectorise the lanes, which does not change them).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 16];
    let (ca, ra) = a.as_chunks::<16>();
    let (cb, rb) = b.as_chunks::<16>();
    for (x, y) in ca.iter().zip(cb) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut w = 16;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            acc[l] += acc[l + w];
        }
    }
    let mut s = acc[0];
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `e^x` in f32 for `x <= 0` (inputs below -87 give `e^-87`): Cody–Waite reduction
/// `x = k ln2 + r` with round-to-nearest by the `1.5·2^23` trick, a degree-6 Taylor
/// polynomial, and the exponent built from bits. Only `+ - *` and exact conversions:
/// branch-free, vectorisable and bit-reproducible. Relative error < 3e-7.
#[inline(always)]
pub fn exp_neg(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4; // 0.693359375: few bits, so k·C1 is exact
    const C2: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0;
    let x = if x < -87.0 { -87.0 } else { x };
    let k = (x * LOG2E + ROUND) - ROUND;
    let r = (x - k * C1) - k * C2;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let s = f32::from_bits(((k as i32 + 127) as u32) << 23);
    p * s
}

/// `e^x` in f64 for `x <= 0` (inputs below -700 give `e^-700`): as [`exp_neg`] with a
/// degree-11 polynomial. Relative error < 1e-14.
#[inline(always)]
pub fn exp_neg_f64(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const ROUND: f64 = 6_755_399_441_055_744.0;
    const C: [f64; 12] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5040.0,
        1.0 / 40320.0,
        1.0 / 362_880.0,
        1.0 / 3_628_800.0,
        1.0 / 39_916_800.0,
    ];
    let x = if x < -700.0 { -700.0 } else { x };
    let k = (x * LOG2E + ROUND) - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = C[11];
    for i in (0..11).rev() {
        p = C[i] + r * p;
    }
    let s = f64::from_bits(((k as i64 + 1023) as u64) << 52);
    p * s
}

/// `x · sigmoid(x)` with [`exp_neg`].
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    let e = exp_neg(-x.abs());
    let s = if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    };
    x * s
}

/// Sum of `x` with 16 lanes combined in a fixed tree, then the tail in order.
#[inline(always)]
pub fn sum_lanes(x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (c, r) = x.as_chunks::<16>();
    for v in c {
        for l in 0..16 {
            acc[l] += v[l];
        }
    }
    let mut w = 16;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            acc[l] += acc[l + w];
        }
    }
    let mut s = acc[0];
    for &v in r {
        s += v;
    }
    s
}

/// [`sum_lanes`] in f64.
#[inline(always)]
pub fn sum_lanes_f64(x: &[f64]) -> f64 {
    let mut acc = [0f64; 16];
    let (c, r) = x.as_chunks::<16>();
    for v in c {
        for l in 0..16 {
            acc[l] += v[l];
        }
    }
    let mut w = 16;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            acc[l] += acc[l + w];
        }
    }
    let mut s = acc[0];
    for &v in r {
        s += v;
    }
    s
}

/// `out[i] = Σ_p (w[p] · inv) · v_p[off + i]` for `i < C`, summed in the order of `p`.
#[inline(always)]
fn weighted_values<const C: usize>(
    w: &[f32],
    inv: f32,
    vc: &[f32],
    stride: usize,
    off: usize,
    out: &mut [f32],
) {
    let mut acc = [0f32; C];
    for (p, &x) in w.iter().enumerate() {
        let a = x * inv;
        let v = &vc[p * stride + off..p * stride + off + C];
        for i in 0..C {
            acc[i] += a * v[i];
        }
    }
    out[..C].copy_from_slice(&acc);
}

/// Appends the keys of position `pos` (`k`: `n_kv_head × hd`) to a key cache kept per
/// key/value head as blocks of [`PW`] positions (`block[i][j]` = dimension `i` of
/// position `b·PW + j`), the layout the matrix kernel reads as panels.
pub fn push_keys(kc: &mut [Vec<f32>], k: &[f32], hd: usize, pos: usize) {
    let (b, j) = (pos / PW, pos % PW);
    for (g, kh) in kc.iter_mut().zip(k.chunks_exact(hd)) {
        let need = (b + 1) * hd * PW;
        if g.len() < need {
            g.resize(need, 0.0);
        }
        let blk = &mut g[b * hd * PW..need];
        for (i, &x) in kh.iter().enumerate() {
            blk[i * PW + j] = x;
        }
    }
}

/// Attention of every head of one token over its first `len` cached positions:
/// `out_h = Σ_p softmax_p(q_h · k_p · scale) v_p`. `q`, `out`: `n_head × hd`; `kc`: one
/// key cache per key/value head ([`push_keys`]); `vc`: values, `kv_dim` per position.
/// Scores are the matrix kernel's (sequential over the head dimension); the softmax sum
/// uses [`sum_lanes`]; the weighted values are summed in position order.
#[allow(clippy::too_many_arguments)]
pub fn attend(
    q: &[f32],
    kc: &[Vec<f32>],
    vc: &[f32],
    len: usize,
    kv_dim: usize,
    hd: usize,
    group: usize,
    scale: f32,
    out: &mut [f32],
) {
    attend_impl(
        q,
        kc,
        vc,
        len,
        kv_dim,
        hd,
        group,
        scale,
        out,
        scalar_forced(),
    );
}

#[allow(clippy::too_many_arguments)]
fn attend_impl(
    q: &[f32],
    kc: &[Vec<f32>],
    vc: &[f32],
    len: usize,
    kv_dim: usize,
    hd: usize,
    group: usize,
    scale: f32,
    out: &mut [f32],
    scalar: bool,
) {
    struct Op<'a> {
        q: &'a [f32],
        kc: &'a [Vec<f32>],
        vc: &'a [f32],
        len: usize,
        kv_dim: usize,
        hd: usize,
        group: usize,
        scale: f32,
        out: &'a mut [f32],
    }
    impl WithSimd for Op<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: Simd>(self, _simd: S) {
            let (hd, group, len) = (self.hd, self.group, self.len);
            let nb = len.div_ceil(PW);
            let mut sc = vec![0f32; nb * group * PW];
            let mut w = Vec::with_capacity(len);
            for (g, (kg, (qg, og))) in self
                .kc
                .iter()
                .zip(
                    self.q
                        .chunks_exact(group * hd)
                        .zip(self.out.chunks_exact_mut(group * hd)),
                )
                .enumerate()
            {
                sc.fill(0.0);
                panels_kernel(&kg[..nb * hd * PW], qg, hd, group, &mut sc);
                for (t, oh) in og.chunks_exact_mut(hd).enumerate() {
                    w.clear();
                    for b in 0..nb {
                        let row = &sc[(b * group + t) * PW..(b * group + t + 1) * PW];
                        let m = PW.min(len - b * PW);
                        w.extend(row[..m].iter().map(|&x| x * self.scale));
                    }
                    let mut mx = [f32::NEG_INFINITY; 16];
                    let (c, r) = w.as_chunks::<16>();
                    for v in c {
                        for l in 0..16 {
                            mx[l] = if v[l] > mx[l] { v[l] } else { mx[l] };
                        }
                    }
                    let mut m = f32::NEG_INFINITY;
                    for &x in mx.iter().chain(r) {
                        m = if x > m { x } else { m };
                    }
                    for x in w.iter_mut() {
                        *x = exp_neg(*x - m);
                    }
                    let inv = 1.0 / sum_lanes(&w);
                    let off = g * hd;
                    let mut i0 = 0;
                    while i0 + 64 <= hd {
                        weighted_values::<64>(
                            &w,
                            inv,
                            self.vc,
                            self.kv_dim,
                            off + i0,
                            &mut oh[i0..],
                        );
                        i0 += 64;
                    }
                    while i0 + 16 <= hd {
                        weighted_values::<16>(
                            &w,
                            inv,
                            self.vc,
                            self.kv_dim,
                            off + i0,
                            &mut oh[i0..],
                        );
                        i0 += 16;
                    }
                    while i0 < hd {
                        weighted_values::<1>(
                            &w,
                            inv,
                            self.vc,
                            self.kv_dim,
                            off + i0,
                            &mut oh[i0..],
                        );
                        i0 += 1;
                    }
                }
            }
        }
    }
    run(
        Op {
            q,
            kc,
            vc,
            len,
            kv_dim,
            hd,
            group,
            scale,
            out,
        },
        scalar,
    );
}

/// Softmax of `logits` into `e` (`e^(l - max)` in f64, NaN as 0) with their sum and
/// the index of the maximum (first on ties).
pub fn softmax_terms(logits: &[f32], e: &mut Vec<f64>) -> (f64, f32, usize) {
    struct Op<'a> {
        logits: &'a [f32],
        e: &'a mut Vec<f64>,
    }
    impl WithSimd for Op<'_> {
        type Output = (f64, f32, usize);
        #[inline(always)]
        fn with_simd<S: Simd>(self, _simd: S) -> (f64, f32, usize) {
            let mut mx = f32::NEG_INFINITY;
            let mut arg = 0;
            for (i, &l) in self.logits.iter().enumerate() {
                if l > mx {
                    mx = l;
                    arg = i;
                }
            }
            self.e.clear();
            self.e.extend(self.logits.iter().map(|&l| {
                let d = f64::from(l - mx);
                // NaN compares false: 0 for NaN logits.
                if d <= 0.0 { exp_neg_f64(d) } else { 0.0 }
            }));
            (sum_lanes_f64(self.e), mx, arg)
        }
    }
    run(Op { logits, e }, scalar_forced())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate() {
        for i in 0..20000 {
            let x = -(i as f32) * 0.0043;
            let want = f64::from(x).exp();
            let got = f64::from(exp_neg(x));
            assert!(((got - want) / want).abs() < 4e-7, "{x}: {got} vs {want}");
            let x = -(i as f64) * 0.0345;
            let want = x.exp();
            let got = exp_neg_f64(x);
            assert!(((got - want) / want).abs() < 1e-13, "{x}: {got} vs {want}");
        }
        assert_eq!(exp_neg(0.0), 1.0);
        assert_eq!(exp_neg_f64(0.0), 1.0);
        assert!(exp_neg(-1000.0) > 0.0 && exp_neg_f64(-1e9) > 0.0);
    }

    #[test]
    fn silu_matches_the_definition() {
        for i in -400..400 {
            let x = i as f32 * 0.05;
            let want = f64::from(x) / (1.0 + (-f64::from(x)).exp());
            assert!((f64::from(silu(x)) - want).abs() < 1e-5, "{x}");
        }
    }

    #[test]
    fn dot_is_exact_on_integers_and_any_length() {
        for n in [0, 1, 15, 16, 17, 64, 100] {
            let a: Vec<f32> = (0..n).map(|i| i as f32).collect();
            let b: Vec<f32> = (0..n).map(|i| (i % 3) as f32).collect();
            let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert_eq!(dot(&a, &b), want);
        }
    }

    /// Throughput of the matrix kernel by batch size (a measurement aid):
    /// `cargo test --release -p lcodec-text gemm_speed -- --ignored --nocapture`.
    #[test]
    #[ignore = "measurement"]
    fn gemm_speed() {
        let (rows, cols) = (1536, 576);
        let raw: Vec<u8> = (0..rows * cols / 32 * 20)
            .map(|i| {
                if i % 20 == 1 {
                    0x20
                } else if i % 20 == 3 {
                    0xa0
                } else {
                    (i * 37) as u8
                }
            })
            .collect();
        let rb = cols / 32 * 20;
        let q = Packed::from_q4_1(rows, cols, &|r| &raw[r * rb..(r + 1) * rb]);
        let f = Packed::from_rows(rows, cols, &|r, o| {
            super::super::gguf::dequantize_row(
                super::super::gguf::GgmlType::Q4_1,
                &raw[r * rb..(r + 1) * rb],
                o,
            )
        });
        for n in [1, 8, 24, 27, 28, 32, 64, 255] {
            let x: Vec<f32> = (0..n * cols).map(|i| (i as f32 * 0.37).sin()).collect();
            let mut out = vec![0f32; n * rows];
            for (name, w) in [("q4", &q), ("f32", &f)] {
                let reps = (2000 / n).max(4);
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    gemm(w, &x, n, &mut out);
                }
                let s = t.elapsed().as_secs_f64();
                let flops = 2.0 * (rows * cols * n * reps) as f64;
                eprintln!("{name} n={n}: {:.1} GFLOP/s", flops / s / 1e9);
            }
        }
    }

    /// A Q4_1 store multiplies exactly like the f32 store of its GGUF dequantisation.
    #[test]
    fn q4_1_store_matches_dequantised_f32_bitwise() {
        use super::super::gguf::{GgmlType, dequantize_row};
        let (rows, cols) = (21, 64);
        let mut s = 0x0123_4567_89ab_cdefu64;
        let mut byte = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 32) as u8
        };
        let mut raw = Vec::new();
        for _ in 0..rows * cols / 32 {
            // f16 scale / minimum in a sane range, then random nibbles.
            raw.extend_from_slice(&[
                byte(),
                0x20 | (byte() & 0x07),
                byte(),
                0xa0 | (byte() & 0x07),
            ]);
            for _ in 0..16 {
                raw.push(byte());
            }
        }
        let rb = cols / 32 * 20;
        let q = Packed::from_q4_1(rows, cols, &|r| &raw[r * rb..(r + 1) * rb]);
        let f = Packed::from_rows(rows, cols, &|r, o| {
            dequantize_row(GgmlType::Q4_1, &raw[r * rb..(r + 1) * rb], o)
        });
        let (mut a, mut b) = (vec![0f32; cols], vec![0f32; cols]);
        q.row(7, &mut a);
        f.row(7, &mut b);
        assert_eq!(a, b);
        let x: Vec<f32> = (0..5 * cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let (mut oq, mut of) = (vec![0f32; 5 * rows], vec![0f32; 5 * rows]);
        gemm(&q, &x, 5, &mut oq);
        gemm(&f, &x, 5, &mut of);
        assert!(oq.iter().zip(&of).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    /// Attention by the dispatched (AVX2) and the baseline code paths gives the same
    /// bits, and agrees with a direct f64 evaluation.
    #[test]
    fn attention_paths_agree_bitwise() {
        let (hd, nkv, group, len) = (64, 3, 3, 37);
        let kvd = hd * nkv;
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let keys: Vec<f32> = (0..len * kvd).map(|_| rnd()).collect();
        let vals: Vec<f32> = (0..len * kvd).map(|_| rnd()).collect();
        let q: Vec<f32> = (0..nkv * group * hd).map(|_| rnd() * 4.0).collect();
        let mut kc = vec![Vec::new(); nkv];
        for p in 0..len {
            push_keys(&mut kc, &keys[p * kvd..(p + 1) * kvd], hd, p);
        }
        let scale = 0.125;
        let mut a = vec![0f32; q.len()];
        let mut b = vec![0f32; q.len()];
        attend_impl(&q, &kc, &vals, len, kvd, hd, group, scale, &mut a, false);
        attend_impl(&q, &kc, &vals, len, kvd, hd, group, scale, &mut b, true);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        for h in 0..nkv * group {
            let g = h / group;
            let qh = &q[h * hd..(h + 1) * hd];
            let sc: Vec<f64> = (0..len)
                .map(|p| {
                    let kp = &keys[p * kvd + g * hd..p * kvd + (g + 1) * hd];
                    qh.iter()
                        .zip(kp)
                        .map(|(x, y)| f64::from(x * y))
                        .sum::<f64>()
                        * 0.125
                })
                .collect();
            let m = sc.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = sc.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for i in 0..hd {
                let want: f64 = (0..len)
                    .map(|p| e[p] / z * f64::from(vals[p * kvd + g * hd + i]))
                    .sum();
                assert!((want - f64::from(a[h * hd + i])).abs() < 1e-5, "{h} {i}");
            }
        }
    }

    /// The kernel equals the scalar definition bit for bit (sequential sum over k), for
    /// every batch size and a row count that is not a multiple of the panel width.
    #[test]
    fn gemm_matches_sequential_reference_bitwise() {
        let (rows, cols) = (37, 45);
        let mut s = 0x1234_5678_9abc_def0u64;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let w: Vec<f32> = (0..rows * cols).map(|_| rnd()).collect();
        let p = Packed::from_rows(rows, cols, &|r, o| {
            o.copy_from_slice(&w[r * cols..(r + 1) * cols])
        });
        let mut row = vec![0f32; cols];
        p.row(5, &mut row);
        assert_eq!(row, w[5 * cols..6 * cols]);
        for n in [1, 2, 3, 4, 5, 7, 9] {
            let x: Vec<f32> = (0..n * cols).map(|_| rnd()).collect();
            let mut out = vec![0f32; n * rows];
            gemm_impl(&p, &x, n, &mut out, false);
            let mut base = vec![0f32; n * rows];
            gemm_impl(&p, &x, n, &mut base, true);
            assert!(
                out.iter()
                    .zip(&base)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
            for t in 0..n {
                for r in 0..rows {
                    let mut a = 0f32;
                    for k in 0..cols {
                        a += w[r * cols + k] * x[t * cols + k];
                    }
                    assert_eq!(
                        a.to_bits(),
                        out[t * rows + r].to_bits(),
                        "n {n} t {t} r {r}"
                    );
                }
            }
        }
    }
}
