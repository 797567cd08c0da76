//! The restoration filter: per-image Wiener filters on the decoded 8-bit image.
//!
//! Whatever coded the image (a learned level alone, or a learned level plus the residual
//! layer), its error is not white: the autoencoder smooths, the DCT quantiser rings and
//! zeroes detail. The encoder fits, by least squares against the input, linear filters
//! that map the decoded image closer to the input, and sends them; the decoder applies
//! them as the last step. On Kodak this gains 0.1–0.25 dB at every quality for about
//! 0.002–0.01 bpp of coefficients.
//!
//! * **Classes.** Each pixel falls in one of `K` (1 to [`MAX_CLASSES`]) classes by its
//!   local activity: `a = Σ |4y − y_left − y_right − y_up − y_down|` over the 5×5 window
//!   around it, `y` the sum of the components (coordinates clamped at the borders), the
//!   class being the number of transmitted thresholds `a` reaches. Each class has its own
//!   filter per component.
//! * **Filter of component `c`** (integer arithmetic, so every machine decodes alike):
//!   `out = clamp(x_c + ((Σ w_i f_i + 2^(S−1)) >> S), 0, 255)`, `S` in [`SHIFTS`], with the
//!   features `f_i`: for each of the 24 offset pairs `±o` of the 7×7 window
//!   `x_c(p+o) + x_c(p−o) − 2x_c(p)`; for each other component `d` (ascending),
//!   `x_d(p) − x_c(p)` and, for the 4 offset pairs of the 3×3 window,
//!   `x_d(p+o) + x_d(p−o) − 2x_d(p)`; and a constant 1 (a bias in `1/2^S` of a level).
//!   Point-symmetric taps and differences from the centre: a flat area stays flat (up to
//!   the bias), and half the coefficients of a full window.
//! * **Encoder.** Exact integer normal equations per component and per activity sixteenth,
//!   merged for `K` = 1, 2, 4, 8, 16, solved by Cholesky, rounded to integers at each
//!   precision `S`; a class's
//!   filter that does not pay its bits is sent as zeros; the `K` and `S` with the largest
//!   estimated gain `μ·ΔSSE − bits` wins (`μ`: bits per unit of squared error, from the
//!   rate-distortion trade-off the rest of the file was coded at), none if nothing pays.
//!
//! Chunk layout (version 1): `[version, components, K, S, g]`, `K − 1` ascending
//! activity thresholds (u32 LE), then a range-coded stream of the `components × K ×`
//! [`features`] weights (component-major, then class, then feature), each a signed
//! Exp-Golomb code of order `g` in bypass bits.

use lcodec_core::{Error, Result};
use lcodec_entropy::{Decode, Encode, RangeDecoder, RangeEncoder};
use rayon::prelude::*;

/// Version byte of the filter chunk.
pub const VERSION: u8 = 1;
/// Most activity classes a chunk may carry.
pub const MAX_CLASSES: usize = 16;
/// Fixed-point precisions of the weights a chunk may use: a weight `w` stands for
/// `w / 2^S`, `S` in this range (the encoder picks the one that pays best).
pub const SHIFTS: std::ops::RangeInclusive<u32> = 4..=10;
/// Largest weight magnitude.
const MAX_W: i32 = 1 << 14;
/// Largest Exp-Golomb order.
const MAX_ORDER: u8 = 12;
/// Longest Exp-Golomb prefix a stream may carry.
const MAX_PREFIX: u32 = 20;
/// Head bytes before the thresholds.
const HEAD: usize = 5;
/// Radius of the same-component window, the padding of the planes.
const R: usize = 3;
/// Offset pairs of the 7×7 window: `(dy, dx)` with `dy > 0`, or `dy = 0` and `dx > 0`.
const PAIRS7: [(isize, isize); 24] = pairs::<24>(3);
/// Offset pairs of the 3×3 window.
const PAIRS3: [(isize, isize); 4] = pairs::<4>(1);

const fn pairs<const N: usize>(r: isize) -> [(isize, isize); N] {
    let mut t = [(0isize, 0isize); N];
    let mut n = 0;
    let mut dy = 0;
    while dy <= r {
        let mut dx = -r;
        while dx <= r {
            if dy > 0 || dx > 0 {
                t[n] = (dy, dx);
                n += 1;
            }
            dx += 1;
        }
        dy += 1;
    }
    t
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::codec("image", format!("restoration filter: {what}"))
}

/// Number of weights of one component's filter in an image of `comps` components.
pub fn features(comps: usize) -> usize {
    PAIRS7.len() + (comps - 1) * (1 + PAIRS3.len()) + 1
}

/// Planes padded by [`R`] on every side by edge replication, as `i32`.
struct Padded {
    pw: usize,
    planes: Vec<Vec<i32>>,
}

impl Padded {
    fn new(planes: &[u8], comps: usize, w: usize, h: usize) -> Self {
        let (pw, ph) = (w + 2 * R, h + 2 * R);
        let planes = (0..comps)
            .map(|c| {
                let src = &planes[c * w * h..(c + 1) * w * h];
                let mut p = vec![0i32; pw * ph];
                for py in 0..ph {
                    let y = py.saturating_sub(R).min(h - 1);
                    for px in 0..pw {
                        let x = px.saturating_sub(R).min(w - 1);
                        p[py * pw + px] = i32::from(src[y * w + x]);
                    }
                }
                p
            })
            .collect();
        Self { pw, planes }
    }

    /// The features of component `c` at pixel `(y, x)` into `f` (see the module docs).
    #[inline]
    fn features(&self, c: usize, y: usize, x: usize, f: &mut [i32]) -> i32 {
        let pw = self.pw as isize;
        let i = ((y + R) * self.pw + x + R) as isize;
        let at = |p: &[i32], o: isize| p[(i + o) as usize];
        let pc = &self.planes[c];
        let centre = at(pc, 0);
        let mut n = 0;
        for &(dy, dx) in &PAIRS7 {
            let o = dy * pw + dx;
            f[n] = at(pc, o) + at(pc, -o) - 2 * centre;
            n += 1;
        }
        for (d, pd) in self.planes.iter().enumerate() {
            if d == c {
                continue;
            }
            let cd = at(pd, 0);
            f[n] = cd - centre;
            n += 1;
            for &(dy, dx) in &PAIRS3 {
                let o = dy * pw + dx;
                f[n] = at(pd, o) + at(pd, -o) - 2 * cd;
                n += 1;
            }
        }
        f[n] = 1;
        centre
    }
}

/// Local activity of every pixel (see the module docs).
fn activity(planes: &[u8], comps: usize, w: usize, h: usize) -> Vec<u32> {
    let n = w * h;
    let y: Vec<i32> = (0..n)
        .map(|i| (0..comps).map(|c| i32::from(planes[c * n + i])).sum())
        .collect();
    let at = |yy: usize, xx: usize| y[yy * w + xx];
    let mut lap = vec![0u32; n];
    for yy in 0..h {
        for xx in 0..w {
            let s = 4 * at(yy, xx)
                - at(yy, xx.saturating_sub(1))
                - at(yy, (xx + 1).min(w - 1))
                - at(yy.saturating_sub(1), xx)
                - at((yy + 1).min(h - 1), xx);
            lap[yy * w + xx] = s.unsigned_abs();
        }
    }
    let clamp = |v: isize, n: usize| v.clamp(0, n as isize - 1) as usize;
    let mut horiz = vec![0u32; n];
    for yy in 0..h {
        for xx in 0..w {
            horiz[yy * w + xx] = (-2..=2)
                .map(|d| lap[yy * w + clamp(xx as isize + d, w)])
                .sum();
        }
    }
    let mut a = vec![0u32; n];
    for yy in 0..h {
        for xx in 0..w {
            a[yy * w + xx] = (-2..=2)
                .map(|d| horiz[clamp(yy as isize + d, h) * w + xx])
                .sum();
        }
    }
    a
}

fn class_of(a: u32, thresholds: &[u32]) -> usize {
    thresholds.iter().take_while(|&&t| a >= t).count()
}

/// Applies the filters of `chunk` to `planes` (`comps` planes of `w × h` 8-bit samples,
/// the decoded image), in place.
///
/// # Errors
/// [`Error::Codec`] naming what is wrong with a damaged chunk.
pub fn apply(chunk: &[u8], planes: &mut [u8], comps: usize, w: usize, h: usize) -> Result<()> {
    let f = Filters::read(chunk, comps)?;
    if planes.len() != comps * w * h || w == 0 || h == 0 {
        return Err(Error::InvalidArgument(format!(
            "restoration filter: {} samples for {comps}×{w}×{h}",
            planes.len()
        )));
    }
    let classes: Vec<u8> = activity(planes, comps, w, h)
        .iter()
        .map(|&a| class_of(a, &f.thresholds) as u8)
        .collect();
    let padded = Padded::new(planes, comps, w, h);
    let nf = features(comps);
    for c in 0..comps {
        let wc = &f.weights[c * f.classes * nf..(c + 1) * f.classes * nf];
        planes[c * w * h..(c + 1) * w * h]
            .par_chunks_mut(w)
            .enumerate()
            .for_each(|(y, row)| {
                let mut fv = [0i32; 64];
                for (x, out) in row.iter_mut().enumerate() {
                    let k = usize::from(classes[y * w + x]);
                    let wk = &wc[k * nf..(k + 1) * nf];
                    let centre = padded.features(c, y, x, &mut fv[..nf]);
                    let s: i64 = wk
                        .iter()
                        .zip(&fv[..nf])
                        .map(|(&a, &b)| i64::from(a) * i64::from(b))
                        .sum();
                    let corr = (s + (1 << (f.shift - 1))) >> f.shift;
                    *out = (i64::from(centre) + corr).clamp(0, 255) as u8;
                }
            });
    }
    Ok(())
}

/// The decoded content of a chunk.
struct Filters {
    classes: usize,
    shift: u32,
    thresholds: Vec<u32>,
    /// Component-major, then class, then feature.
    weights: Vec<i32>,
}

impl Filters {
    fn read(chunk: &[u8], comps: usize) -> Result<Self> {
        if chunk.len() < HEAD {
            return Err(bad(format!(
                "{} bytes, shorter than its {HEAD}-byte head",
                chunk.len()
            )));
        }
        let (version, nc, classes, shift, order) = (
            chunk[0],
            usize::from(chunk[1]),
            usize::from(chunk[2]),
            u32::from(chunk[3]),
            chunk[4],
        );
        if version != VERSION || nc != comps {
            return Err(bad(format!(
                "version {version} with {nc} components (expected version {VERSION} with {comps})"
            )));
        }
        if !(1..=MAX_CLASSES).contains(&classes) || !SHIFTS.contains(&shift) || order > MAX_ORDER {
            return Err(bad(format!(
                "{classes} classes, precision {shift}, code order {order} (expected 1..={MAX_CLASSES}, {}..={}, 0..={MAX_ORDER})",
                SHIFTS.start(),
                SHIFTS.end()
            )));
        }
        let tb = HEAD + 4 * (classes - 1);
        if chunk.len() < tb {
            return Err(bad(format!(
                "{} bytes, shorter than its head and {} thresholds",
                chunk.len(),
                classes - 1
            )));
        }
        let thresholds: Vec<u32> = chunk[HEAD..tb]
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if thresholds.windows(2).any(|p| p[0] > p[1]) {
            return Err(bad(format!(
                "activity thresholds {thresholds:?} not ascending"
            )));
        }
        let n = comps * classes * features(comps);
        let mut dec = RangeDecoder::new(&chunk[tb..]).map_err(bad)?;
        let mut weights = Vec::with_capacity(n);
        for _ in 0..n {
            let v = read_eg(&mut dec, order)?;
            if v.unsigned_abs() > MAX_W as u32 {
                return Err(bad(format!("weight {v} beyond ±{MAX_W}")));
            }
            weights.push(v);
        }
        dec.finish().map_err(bad)?;
        Ok(Self {
            classes,
            shift,
            thresholds,
            weights,
        })
    }
}

fn zigzag(v: i32) -> u32 {
    if v < 0 {
        2 * v.unsigned_abs() - 1
    } else {
        2 * v as u32
    }
}

/// Bits of the signed Exp-Golomb code of order `k` of `v`.
fn eg_bits(v: i32, k: u8) -> u32 {
    let u = zigzag(v) + (1 << k);
    let n = 31 - u.leading_zeros();
    2 * n + 1 - u32::from(k)
}

fn write_eg(enc: &mut RangeEncoder, v: i32, k: u8) -> Result<()> {
    let u = zigzag(v) + (1 << k);
    let n = 31 - u.leading_zeros();
    for _ in 0..n - u32::from(k) {
        enc.encode_bits(1, 1).map_err(bad)?;
    }
    enc.encode_bits(0, 1).map_err(bad)?;
    enc.encode_bits(u & ((1 << n) - 1), n).map_err(bad)
}

fn read_eg(dec: &mut RangeDecoder, k: u8) -> Result<i32> {
    let mut ones = 0;
    while dec.decode_bits(1).map_err(bad)? == 1 {
        ones += 1;
        if ones > MAX_PREFIX {
            return Err(bad("Exp-Golomb prefix too long"));
        }
    }
    let n = ones + u32::from(k);
    if n > 30 {
        return Err(bad("Exp-Golomb code too long"));
    }
    let u = (1u32 << n) + dec.decode_bits(n).map_err(bad)? - (1 << k);
    Ok(if u & 1 == 1 {
        -(u.div_ceil(2) as i32)
    } else {
        (u / 2) as i32
    })
}

/// Normal equations of one component over one set of pixels.
#[derive(Clone)]
struct Stats {
    /// Upper triangle of `AᵀA`, row-major `nf × nf` (the lower half unused).
    ata: Vec<i64>,
    atb: Vec<i64>,
    btb: i64,
    count: u64,
}

impl Stats {
    fn new(nf: usize) -> Self {
        Self {
            ata: vec![0; nf * nf],
            atb: vec![0; nf],
            btb: 0,
            count: 0,
        }
    }

    fn add(&mut self, o: &Self) {
        for (a, b) in self.ata.iter_mut().zip(&o.ata) {
            *a += b;
        }
        for (a, b) in self.atb.iter_mut().zip(&o.atb) {
            *a += b;
        }
        self.btb += o.btb;
        self.count += o.count;
    }
}

/// `i32` partial sums of [`Stats`] per fine bin, flushed into the `i64` ones before they
/// could overflow: a product of two features is at most `510²`, so [`ROW_FLUSH`] of
/// them stay below `2^31`.
struct RowSums {
    nf: usize,
    ata: Vec<i32>,
    atb: Vec<i32>,
    btb: Vec<i32>,
    count: Vec<u32>,
    pending: usize,
}

/// Pixels summed in `i32` before a flush.
const ROW_FLUSH: usize = 4096;

impl RowSums {
    fn new(nf: usize) -> Self {
        Self {
            nf,
            ata: vec![0; FINE * nf * nf],
            atb: vec![0; FINE * nf],
            btb: vec![0; FINE],
            count: vec![0; FINE],
            pending: 0,
        }
    }

    #[inline]
    fn add(&mut self, bin: usize, f: &[i32], t: i32, acc: &mut [Stats]) {
        let nf = self.nf;
        let ata = &mut self.ata[bin * nf * nf..(bin + 1) * nf * nf];
        for i in 0..nf {
            let fi = f[i];
            if fi == 0 {
                continue;
            }
            let row = &mut ata[i * nf + i..(i + 1) * nf];
            for (r, &fj) in row.iter_mut().zip(&f[i..]) {
                *r += fi * fj;
            }
        }
        let atb = &mut self.atb[bin * nf..(bin + 1) * nf];
        for (r, &fi) in atb.iter_mut().zip(f) {
            *r += fi * t;
        }
        self.btb[bin] += t * t;
        self.count[bin] += 1;
        self.pending += 1;
        if self.pending == ROW_FLUSH {
            self.flush(acc);
        }
    }

    fn flush(&mut self, acc: &mut [Stats]) {
        let nf = self.nf;
        for (b, s) in acc.iter_mut().enumerate() {
            if self.count[b] == 0 {
                continue;
            }
            for (a, v) in s
                .ata
                .iter_mut()
                .zip(&mut self.ata[b * nf * nf..(b + 1) * nf * nf])
            {
                *a += i64::from(*v);
                *v = 0;
            }
            for (a, v) in s.atb.iter_mut().zip(&mut self.atb[b * nf..(b + 1) * nf]) {
                *a += i64::from(*v);
                *v = 0;
            }
            s.btb += i64::from(self.btb[b]);
            s.count += u64::from(self.count[b]);
            self.btb[b] = 0;
            self.count[b] = 0;
        }
        self.pending = 0;
    }
}

/// Solves `(AᵀA + ridge) w = Aᵀb` by Cholesky; `None` when the system is degenerate.
fn solve(s: &Stats, nf: usize) -> Option<Vec<f64>> {
    let mut a = vec![0f64; nf * nf];
    let mut maxd = 0f64;
    for i in 0..nf {
        for j in i..nf {
            a[i * nf + j] = s.ata[i * nf + j] as f64;
            a[j * nf + i] = a[i * nf + j];
        }
        maxd = maxd.max(a[i * nf + i]);
    }
    if maxd <= 0.0 {
        return None;
    }
    for i in 0..nf {
        a[i * nf + i] += 1e-7 * maxd + 1e-3;
    }
    // In-place Cholesky: L in the lower triangle.
    for j in 0..nf {
        let mut d = a[j * nf + j];
        for k in 0..j {
            d -= a[j * nf + k] * a[j * nf + k];
        }
        if d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        a[j * nf + j] = d;
        for i in j + 1..nf {
            let mut v = a[i * nf + j];
            for k in 0..j {
                v -= a[i * nf + k] * a[j * nf + k];
            }
            a[i * nf + j] = v / d;
        }
    }
    let mut y: Vec<f64> = s.atb.iter().map(|&v| v as f64).collect();
    for i in 0..nf {
        for k in 0..i {
            y[i] -= a[i * nf + k] * y[k];
        }
        y[i] /= a[i * nf + i];
    }
    for i in (0..nf).rev() {
        for k in i + 1..nf {
            y[i] -= a[k * nf + i] * y[k];
        }
        y[i] /= a[i * nf + i];
    }
    y.iter().all(|v| v.is_finite()).then_some(y)
}

/// Estimated reduction of the squared error by the integer weights `w` (`≤ 0`: none).
fn gain(s: &Stats, w: &[i32], nf: usize, shift: u32) -> f64 {
    let scale = f64::from(1u32 << shift);
    let wf: Vec<f64> = w.iter().map(|&v| f64::from(v) / scale).collect();
    let mut quad = 0.0;
    let mut lin = 0.0;
    for i in 0..nf {
        lin += wf[i] * s.atb[i] as f64;
        quad += wf[i] * wf[i] * s.ata[i * nf + i] as f64;
        for j in i + 1..nf {
            quad += 2.0 * wf[i] * wf[j] * s.ata[i * nf + j] as f64;
        }
    }
    2.0 * lin - quad
}

/// Rate-distortion refinement of rounded weights `w`: coordinate steps of ±1 (and to 0)
/// while they lower `−μ·gain + bits` (Exp-Golomb order `order`).
fn refine(s: &Stats, w: &mut [i32], nf: usize, shift: u32, mu: f64, order: u8) {
    let scale = f64::from(1u32 << shift);
    let a = |i: usize, j: usize| s.ata[i.min(j) * nf + i.max(j)] as f64 / (scale * scale);
    let b: Vec<f64> = s.atb.iter().map(|&v| v as f64 / scale).collect();
    // `(A w)_i` in the scaled units.
    let mut aw: Vec<f64> = (0..nf)
        .map(|i| (0..nf).map(|j| a(i, j) * f64::from(w[j])).sum())
        .collect();
    for _ in 0..4 {
        let mut changed = false;
        for i in 0..nf {
            let cur = w[i];
            let mut best = (0.0, cur);
            for cand in [cur - 1, cur + 1, 0] {
                if cand == cur || cand.abs() > MAX_W {
                    continue;
                }
                let d = f64::from(cand - cur);
                let dgain = 2.0 * d * b[i] - (2.0 * d * aw[i] + d * d * a(i, i));
                let dbits = f64::from(eg_bits(cand, order)) - f64::from(eg_bits(cur, order));
                let dj = dbits - mu * dgain;
                if dj < best.0 - 1e-9 {
                    best = (dj, cand);
                }
            }
            if best.1 != cur {
                let d = f64::from(best.1 - cur);
                for (k, v) in aw.iter_mut().enumerate() {
                    *v += d * a(k, i);
                }
                w[i] = best.1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

/// Fine activity bins the encoder gathers statistics in (merged into `K` classes).
const FINE: usize = MAX_CLASSES;

/// Fits and codes the restoration filters of a decoded image `recon` against the input
/// `orig` (both `comps` planes of `w × h` 8-bit samples). `mu` is the worth of one unit
/// of squared error (8-bit levels²) in bits. Returns the chunk ([`apply`] makes the
/// decoder's image with it), or `None` when no filter pays for its bits.
///
/// # Errors
/// Bad arguments, or an entropy-coder failure.
pub fn encode(
    orig: &[u8],
    recon: &[u8],
    comps: usize,
    w: usize,
    h: usize,
    mu: f64,
) -> Result<Option<Vec<u8>>> {
    let n = w * h;
    if !(comps == 1 || comps == 3) || n == 0 || orig.len() != comps * n || recon.len() != orig.len()
    {
        return Err(Error::InvalidArgument(format!(
            "restoration filter: {} and {} samples for {comps}×{w}×{h}",
            orig.len(),
            recon.len()
        )));
    }
    let nf = features(comps);
    let act = activity(recon, comps, w, h);
    // Thresholds of the fine bins: activity quantiles, from a histogram.
    let amax = act.iter().copied().max().unwrap_or(0) as usize;
    let mut hist = vec![0u64; amax + 1];
    for &a in &act {
        hist[a as usize] += 1;
    }
    let mut fine_t = Vec::with_capacity(FINE - 1);
    let (mut cum, mut v) = (0u64, 0usize);
    for j in 1..FINE {
        let target = (n as u64 * j as u64).div_ceil(FINE as u64);
        while v <= amax && cum + hist[v] < target {
            cum += hist[v];
            v += 1;
        }
        // Pixels of activity ≥ v + 1 fall above this threshold.
        let t = (v + 1) as u32;
        let prev = fine_t.last().copied().unwrap_or(0);
        fine_t.push(t.max(prev));
    }
    let bins: Vec<u8> = act.iter().map(|&a| class_of(a, &fine_t) as u8).collect();
    let padded = Padded::new(recon, comps, w, h);
    // Normal equations per component and fine bin, summed over rows (integer sums: the
    // same whatever the thread split).
    let stats: Vec<Vec<Stats>> = (0..comps)
        .map(|c| {
            (0..h)
                .into_par_iter()
                .fold(
                    || (vec![Stats::new(nf); FINE], RowSums::new(nf)),
                    |(mut acc, mut rs), y| {
                        let mut f = [0i32; 64];
                        for x in 0..w {
                            let centre = padded.features(c, y, x, &mut f[..nf]);
                            let t = i32::from(orig[c * n + y * w + x]) - centre;
                            rs.add(usize::from(bins[y * w + x]), &f[..nf], t, &mut acc);
                        }
                        rs.flush(&mut acc);
                        (acc, rs)
                    },
                )
                .map(|(acc, _)| acc)
                .reduce(
                    || vec![Stats::new(nf); FINE],
                    |mut a, b| {
                        for (x, y) in a.iter_mut().zip(&b) {
                            x.add(y);
                        }
                        a
                    },
                )
        })
        .collect();
    // Each K: merged classes, fitted and rounded weights, zeroed where they do not pay.
    let mut best: Option<(f64, usize, u32, u8, Vec<i32>)> = None;
    for k in [1usize, 2, 4, 8, 16] {
        let per = FINE / k;
        // Least-squares weights per component and class (`None`: too few pixels).
        let fits: Vec<Option<(Stats, Vec<f64>)>> = (0..comps * k)
            .map(|j| {
                let (c, cl) = (j / k, j % k);
                let mut s = Stats::new(nf);
                for b in &stats[c][cl * per..(cl + 1) * per] {
                    s.add(b);
                }
                if s.count < 4 * nf as u64 {
                    return None;
                }
                solve(&s, nf).map(|w| (s, w))
            })
            .collect();
        for shift in SHIFTS {
            let mut weights = vec![0i32; comps * k * nf];
            let mut gains = vec![0f64; comps * k];
            let scale = f64::from(1u32 << shift);
            let lim = f64::from(MAX_W);
            for (j, fit) in fits.iter().enumerate() {
                let Some((s, wf)) = fit else { continue };
                let mut wq: Vec<i32> = wf
                    .iter()
                    .map(|v| (v * scale).round().clamp(-lim, lim) as i32)
                    .collect();
                let order = best_order(&wq);
                refine(s, &mut wq, nf, shift, mu, order);
                gains[j] = gain(s, &wq, nf, shift);
                weights[j * nf..(j + 1) * nf].copy_from_slice(&wq);
            }
            // The order that codes the weights in the fewest bits, then per class and
            // component: zeros where the filter does not pay for its bits.
            let order = best_order(&weights);
            let mut total_gain = 0.0;
            for (j, g) in gains.iter().enumerate() {
                let wj = &mut weights[j * nf..(j + 1) * nf];
                let bits: u32 = wj.iter().map(|&v| eg_bits(v, order)).sum();
                let zero_bits = nf as u32 * eg_bits(0, order);
                if mu * g <= f64::from(bits - zero_bits) {
                    wj.fill(0);
                } else {
                    total_gain += g;
                }
            }
            let order = best_order(&weights);
            let bits = 8 * (HEAD + 4 * (k - 1) + 4) as u32
                + weights.iter().map(|&v| eg_bits(v, order)).sum::<u32>();
            let net = mu * total_gain - f64::from(bits);
            if net > 0.0 && best.as_ref().is_none_or(|b| net > b.0) {
                best = Some((net, k, shift, order, weights));
            }
        }
    }
    let Some((_, k, shift, order, weights)) = best else {
        return Ok(None);
    };
    let mut chunk = vec![VERSION, comps as u8, k as u8, shift as u8, order];
    for j in 1..k {
        chunk.extend_from_slice(&fine_t[j * (FINE / k) - 1].to_le_bytes());
    }
    let mut enc = RangeEncoder::new();
    for &v in &weights {
        write_eg(&mut enc, v, order)?;
    }
    chunk.extend_from_slice(&enc.finish());
    Ok(Some(chunk))
}

/// The Exp-Golomb order that codes `weights` in the fewest bits.
fn best_order(weights: &[i32]) -> u8 {
    (0..=MAX_ORDER)
        .min_by_key(|&k| weights.iter().map(|&v| eg_bits(v, k)).sum::<u32>())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::assert_frozen;

    /// Planar test image: smooth gradients, an edge and texture, and a copy of it blurred
    /// (3×3 box) with a small bias, the error a filter can undo.
    fn sample(comps: usize, w: usize, h: usize) -> (Vec<u8>, Vec<u8>) {
        let n = w * h;
        let orig: Vec<u8> = (0..comps * n)
            .map(|j| {
                let (c, y, x) = (j / n, (j % n) / w, j % w);
                let edge = if x * 3 > w + y { 90 } else { 0 };
                let tex = ((x * 7 + y * 13 + c * 5) % 17) * 4;
                (20 + x + y / 2 + c * 10 + edge + tex).min(255) as u8
            })
            .collect();
        let recon = (0..comps * n)
            .map(|j| {
                let (c, y, x) = (j / n, (j % n) / w, j % w);
                let mut s = 0u32;
                for dy in -1..=1isize {
                    for dx in -1..=1isize {
                        let yy = (y as isize + dy).clamp(0, h as isize - 1) as usize;
                        let xx = (x as isize + dx).clamp(0, w as isize - 1) as usize;
                        s += u32::from(orig[c * n + yy * w + xx]);
                    }
                }
                (s / 9 + 2).min(255) as u8
            })
            .collect();
        (orig, recon)
    }

    fn sse(a: &[u8], b: &[u8]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum()
    }

    /// The encoder's filters undo most of a blur on RGB and grey images whose sides are
    /// not multiples of anything; nothing is sent when bits are worth nothing against squared error.
    #[test]
    fn fitted_filters_undo_a_blur() {
        for comps in [3, 1] {
            let (w, h) = (67, 41);
            let (orig, recon) = sample(comps, w, h);
            let before = sse(&orig, &recon);
            let chunk = encode(&orig, &recon, comps, w, h, 1.0).unwrap().unwrap();
            assert_eq!(chunk[..2], [VERSION, comps as u8]);
            let mut out = recon.clone();
            apply(&chunk, &mut out, comps, w, h).unwrap();
            let after = sse(&orig, &out);
            assert!(
                after < 0.5 * before,
                "{comps} components: {before} -> {after}"
            );
            assert!(encode(&orig, &recon, comps, w, h, 0.0).unwrap().is_none());
            // Nothing to undo: an exact reconstruction gets no filter.
            assert!(encode(&orig, &orig, comps, w, h, 1.0).unwrap().is_none());
        }
        assert!(encode(&[0; 6], &[0; 6], 2, 3, 1, 1.0).is_err());
        assert!(encode(&[0; 6], &[0; 5], 3, 2, 1, 1.0).is_err());
    }

    /// A chunk written by hand: two classes, weights of every kind (a sharpening tap, a
    /// cross-component tap, a bias), codes and decodes to frozen bytes.
    fn hand_chunk(comps: usize) -> Vec<u8> {
        let nf = features(comps);
        let mut chunk = vec![VERSION, comps as u8, 2, 8, 2];
        chunk.extend_from_slice(&150u32.to_le_bytes());
        let mut enc = RangeEncoder::new();
        for c in 0..comps {
            for k in 0..2i32 {
                for i in 0..nf {
                    let v = match i {
                        0 | 6 => -20 - 5 * k,
                        24 if comps == 3 => 30 * (c as i32 - 1),
                        _ if i == nf - 1 => 40 * k - 20,
                        _ => (i as i32 % 3) - 1,
                    };
                    write_eg(&mut enc, v, 2).unwrap();
                }
            }
        }
        chunk.extend_from_slice(&enc.finish());
        chunk
    }

    #[test]
    fn the_decoder_is_frozen() {
        for (comps, golden) in [(3, 0xe66c_e07e_9d06_75c5_u64), (1, 0x7b12_12ed_b212_5ebd)] {
            let (w, h) = (37, 29);
            let (_, before) = sample(comps, w, h);
            let mut img = before.clone();
            apply(&hand_chunk(comps), &mut img, comps, w, h).unwrap();
            let changed = img.iter().zip(&before).filter(|(a, b)| a != b).count();
            assert!(changed > img.len() / 2, "{changed} samples changed");
            assert_frozen(&img, golden, &format!("filter output, {comps} components"));
        }
    }

    #[test]
    fn damaged_chunks_are_named_errors_never_panics() {
        let (w, h) = (19, 9);
        let (orig, recon) = sample(3, w, h);
        let chunk = encode(&orig, &recon, 3, w, h, 1.0).unwrap().unwrap();
        let dec = |bytes: &[u8], comps: usize| {
            let mut r = recon[..comps * w * h].to_vec();
            apply(bytes, &mut r, comps, w, h).map(|()| r)
        };
        dec(&chunk, 3).unwrap();
        let msg = |r: Result<Vec<u8>>| r.unwrap_err().to_string();
        assert!(msg(dec(&chunk[..HEAD - 1], 3)).contains("shorter than its 5-byte head"));
        assert!(msg(dec(&chunk, 1)).contains("with 3 components (expected version 1 with 1)"));
        for (i, v, what) in [
            (0, 2, "version 2"),
            (2, 0, "0 classes"),
            (2, 17, "17 classes"),
            (3, 11, "precision 11"),
            (3, 3, "precision 3"),
            (4, 13, "code order 13"),
        ] {
            let mut b = chunk.clone();
            b[i] = v;
            assert!(msg(dec(&b, 3)).contains(what), "{what}");
        }
        let hand = hand_chunk(3);
        let mut b = hand.clone();
        b[2] = 3;
        assert!(dec(&b, 3).is_err(), "a missing threshold");
        let mut b = hand_chunk(3);
        b[2] = 3;
        b.splice(HEAD..HEAD, 200u32.to_le_bytes());
        assert!(msg(dec(&b, 3)).contains("not ascending"));
        for cut in 0..hand.len() {
            assert!(dec(&hand[..cut], 3).is_err(), "cut {cut}");
        }
        for cut in 0..chunk.len() {
            let _ = dec(&chunk[..cut], 3);
        }
        for i in 0..hand.len() {
            let mut b = hand.clone();
            b[i] ^= 0x5a;
            let _ = dec(&b, 3);
        }
        let mut r = recon.clone();
        assert!(apply(&chunk, &mut r[1..], 3, w, h).is_err());
    }

    #[test]
    fn exp_golomb_round_trips_and_counts_its_bits() {
        for k in 0..=MAX_ORDER {
            let vals: Vec<i32> = (-300..=300).chain([MAX_W, -MAX_W]).collect();
            let mut enc = RangeEncoder::new();
            for &v in &vals {
                write_eg(&mut enc, v, k).unwrap();
            }
            let bytes = enc.finish();
            let mut dec = RangeDecoder::new(&bytes).unwrap();
            for &v in &vals {
                assert_eq!(read_eg(&mut dec, k).unwrap(), v, "order {k}");
            }
            dec.finish().unwrap();
            assert_eq!(eg_bits(0, k), u32::from(k) + 1);
        }
        assert_eq!(eg_bits(-1, 0), 3);
    }

    #[test]
    fn pairs_cover_the_windows() {
        for (pairs, side) in [(&PAIRS7[..], 7), (&PAIRS3[..], 3)] {
            let mut all: Vec<(isize, isize)> = pairs
                .iter()
                .flat_map(|&(y, x)| [(y, x), (-y, -x)])
                .collect();
            all.push((0, 0));
            all.sort_unstable();
            all.dedup();
            assert_eq!(all.len(), side * side);
        }
        assert_eq!(features(3), 35);
        assert_eq!(features(1), 25);
    }
}
