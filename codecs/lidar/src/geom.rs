//! Geometry coding: scan-order-aware prediction of quantized points and adaptive coding
//! of the residuals.
//!
//! Points are integers (coordinates divided by the quantization step). Each point is
//! predicted from already coded points only (so decoding reproduces the encoder's
//! predictions exactly, with no drift):
//!
//! - Points belong to rings (one laser each). Rings come from a ring attribute when the
//!   format has one, otherwise from the scan order: a KITTI sweep stores one ring after
//!   another, each sweeping the azimuth once, so a new ring starts where the azimuth wraps.
//! - A point with a predecessor `W` on its ring is predicted at `W`'s horizontal
//!   direction turned by the sweep's azimuth step (stored per chunk as its cosine and
//!   sine), at `W`'s range (the ring above's range change selects the context). The horizontal residual is
//!   turned into the predicted direction's frame by an exactly invertible integer
//!   rotation (three lifting shears), giving a radial and a tangential residual; the
//!   height is then predicted from the decoded horizontal range and `W`'s elevation.
//! - Other points are coded as differences from the previous point.
//! - With the learned predictor ([`crate::mlp`], scan-order rings), a small integer MLP
//!   reads features of the decoded neighbourhood and adds a correction to the predicted
//!   range and a laser-origin height to the height prediction
//!   (`h + (z_W - h) · range / range_W`).
//!
//! All arithmetic feeding predictions is integer or IEEE `f64` `+ - * / sqrt` with
//! `round`, which is bit-identical on every conforming machine (no libm, no fused
//! multiply-add).

use lcodec_core::{Error, Result};
use lcodec_entropy::{RangeDecoder, RangeEncoder};

use crate::mlp::{FEATURES, Mlp, Prediction};
use crate::resid::{ResidualModel, class_of, ent};

/// One training sample for the learned range predictor: the causal features of a
/// ring-predicted point and its radial residual under the classical prediction.
/// Fields: features, radial residual, height residual, and `1 - range / W's range` (the
/// factor of a laser-origin height offset in the height prediction; 0 when unused).
pub type Sample = ([i64; FEATURES], i64, i64, f64);

/// Horizontal range (in quantization units) below which a point does not define a
/// direction and the difference predictor is used instead.
const MIN_RHO: f64 = 16.0;
/// A ring must hold this many points before an azimuth wrap starts a new one.
const MIN_RING: u32 = 8;
/// Largest ring id taken from a ring attribute.
pub const MAX_RING_ID: u32 = 1023;

#[inline]
fn rnd(v: f64) -> i64 {
    // Round half away from zero, like `f64::round`, without the libm call: the cast
    // truncates and `v - t` is exact below 2^52. Larger values (only from damaged
    // streams) clamp to ±2^50, so later sums cannot overflow; NaN gives 0.
    const LIM: f64 = (1u64 << 50) as f64;
    if v.is_nan() || v.abs() >= LIM {
        return if v > 0.0 {
            1 << 50
        } else if v < 0.0 {
            -(1 << 50)
        } else {
            0
        };
    }
    let t = v as i64;
    let f = v - t as f64;
    if f >= 0.5 {
        t + 1
    } else if f <= -0.5 {
        t - 1
    } else {
        t
    }
}

/// Rotates the integer vector `(x, y)` by the angle whose cosine and sine are `(c, s)`,
/// with three rounded shears: exactly invertible by [`unlift`] with the same `(c, s)`.
#[inline]
fn lift(x: i64, y: i64, c: f64, s: f64) -> (i64, i64) {
    let (mut x, mut y, c, s) = if c < 0.0 {
        (-x, -y, -c, -s)
    } else {
        (x, y, c, s)
    };
    let a = -s / (1.0 + c);
    x += rnd(a * y as f64);
    y += rnd(s * x as f64);
    x += rnd(a * y as f64);
    (x, y)
}

/// Inverse of [`lift`].
#[inline]
fn unlift(x: i64, y: i64, c: f64, s: f64) -> (i64, i64) {
    let flip = c < 0.0;
    let (c, s) = if flip { (-c, -s) } else { (c, s) };
    let a = -s / (1.0 + c);
    let mut x = x - rnd(a * y as f64);
    let y = y - rnd(s * x as f64);
    x -= rnd(a * y as f64);
    if flip { (-x, -y) } else { (x, y) }
}

#[inline]
fn sign3(v: i64) -> u8 {
    match v.signum() {
        0 => 0,
        1 => 1,
        _ => 2,
    }
}

/// A monotone stand-in for the azimuth in `[0, 4)` (no trigonometry).
#[inline]
fn pseudo_angle(xf: f64, yf: f64) -> f64 {
    let d = xf.abs() + yf.abs();
    if d == 0.0 {
        return 0.0;
    }
    let p = yf / d;
    if xf < 0.0 {
        2.0 - p
    } else if yf < 0.0 {
        4.0 + p
    } else {
        p
    }
}

/// How the learned predictor is used (see [`crate::mlp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Learned {
    /// Add the network's correction to the predicted range.
    pub correct: bool,
    /// Predict the height with the network's laser-origin height.
    pub height: bool,
}

/// Per-chunk geometry parameters chosen by the encoder and stored in the payload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeomParams {
    /// Cosine of the azimuth step between consecutive points of a ring.
    pub cos_step: f64,
    /// Sine of that step.
    pub sin_step: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Ring {
    last: Option<[i64; 3]>,
    rho: f64,
    cr: u8,
    ct: u8,
    cz: u8,
    // Signs of the last residuals (0 zero, 1 positive, 2 negative).
    sr: u8,
    st: u8,
    sz: u8,
    // Steps since the last short (about half) azimuth step, 0..=7; 8 = unknown. KITTI's
    // HDL-64E makes a half step every 6 or 7 points, so this predicts them.
    since: u8,
    n: u32,
    // Range of the point before `last` on this ring, and of the one before that.
    rho_prev: f64,
    rho_prev2: f64,
}

/// A finished ring, sorted by pseudo-angle, for vertical-neighbour lookups.
#[derive(Debug, Default)]
struct DoneRing {
    keys: Vec<f64>,
    rho: Vec<f64>,
}

impl DoneRing {
    /// Like [`DoneRing::nearest`], walking from `hint` (a previous answer): consecutive
    /// lookups move by an entry or two, so this is O(1) where a search is not.
    fn nearest_from(&self, key: f64, hint: usize) -> Option<usize> {
        let n = self.keys.len();
        if hint >= n {
            return self.nearest(key);
        }
        let mut j = hint;
        let mut d = circ(self.keys[j], key);
        // Strictly decreasing distance: at most n steps in each direction.
        for _ in 0..n {
            let k = if j + 1 == n { 0 } else { j + 1 };
            let dk = circ(self.keys[k], key);
            if dk < d {
                j = k;
                d = dk;
            } else {
                break;
            }
        }
        for _ in 0..n {
            let k = if j == 0 { n - 1 } else { j - 1 };
            let dk = circ(self.keys[k], key);
            if dk < d {
                j = k;
                d = dk;
            } else {
                break;
            }
        }
        Some(j)
    }

    /// Index of the entry with the nearest key (wrapping), if any.
    fn nearest(&self, key: f64) -> Option<usize> {
        let n = self.keys.len();
        if n == 0 {
            return None;
        }
        let i = self.keys.partition_point(|&k| k < key);
        let a = if i == 0 { n - 1 } else { i - 1 };
        let b = if i == n { 0 } else { i };
        let da = circ(self.keys[a], key);
        let db = circ(self.keys[b], key);
        Some(if da <= db { a } else { b })
    }
}

#[inline]
fn circ(a: f64, b: f64) -> f64 {
    let d = (a - b).abs();
    if d > 2.0 { 4.0 - d } else { d }
}

struct Models {
    r: ResidualModel,
    t: ResidualModel,
    z: ResidualModel,
    fallback: ResidualModel,
}

impl Models {
    fn new() -> Result<Self> {
        Ok(Models {
            r: ResidualModel::new(16 * 6)?,
            t: ResidualModel::new(4 * 4 * 9)?,
            z: ResidualModel::new(8 * 6 * 4)?,
            fallback: ResidualModel::new(3)?,
        })
    }
}

/// One residual through the coder: the encoder codes `v` and returns it, the decoder
/// ignores `v` and returns the decoded value.
trait Io {
    fn resid(&mut self, m: &mut ResidualModel, ctx: usize, sctx: usize, v: i64) -> Result<i64>;
    /// Which residual the next [`Io::resid`] call codes (0 radial, 1 tangential, 2
    /// height, 3 fallback); only the cost meter uses it.
    #[inline]
    fn part(&mut self, _k: usize) {}
}

/// Codes each kind of residual into its own stream, to measure their costs.
struct CostIo {
    enc: [RangeEncoder; 4],
    k: usize,
}
impl Io for CostIo {
    #[inline]
    fn resid(&mut self, m: &mut ResidualModel, ctx: usize, sctx: usize, v: i64) -> Result<i64> {
        m.put(&mut self.enc[self.k], ctx, sctx, v)?;
        Ok(v)
    }
    fn part(&mut self, k: usize) {
        self.k = k;
    }
}

struct EncIo(RangeEncoder);
impl Io for EncIo {
    #[inline]
    fn resid(&mut self, m: &mut ResidualModel, ctx: usize, sctx: usize, v: i64) -> Result<i64> {
        m.put(&mut self.0, ctx, sctx, v)?;
        Ok(v)
    }
}

struct DecIo(RangeDecoder);
impl Io for DecIo {
    #[inline]
    fn resid(&mut self, m: &mut ResidualModel, ctx: usize, sctx: usize, _v: i64) -> Result<i64> {
        m.get(&mut self.0, ctx, sctx)
    }
}

/// The shared encoder/decoder state machine.
struct Coder<'a> {
    p: GeomParams,
    ids: Option<&'a [u32]>,
    rings: Vec<Ring>,
    prev: Option<[i64; 3]>,
    m: Models,
    // Wrap mode: keys / ranges of the ring in progress and the finished ring above.
    cur_keys: Vec<(f64, f64)>,
    above: DoneRing,
    // Index into `above` of the neighbour of the last point of the current ring.
    above_w: Option<usize>,
    // Cosine and sine of half the azimuth step.
    half: (f64, f64),
    // The learned range predictor, if used.
    mlp: Option<(&'a Mlp, Learned)>,
    // Training samples, when recording.
    rec: Option<Vec<Sample>>,
}

impl<'a> Coder<'a> {
    fn new(p: GeomParams, ids: Option<&'a [u32]>, mlp: Option<(&'a Mlp, Learned)>) -> Result<Self> {
        let nrings = if ids.is_some() {
            MAX_RING_ID as usize + 1
        } else {
            1
        };
        Ok(Coder {
            p,
            ids,
            rings: vec![Ring::default(); nrings],
            prev: None,
            m: Models::new()?,
            cur_keys: Vec::new(),
            above: DoneRing::default(),
            above_w: None,
            half: {
                let c2 = ((1.0 + p.cos_step) / 2.0).sqrt();
                if c2 > 0.0 {
                    (c2, p.sin_step / (2.0 * c2))
                } else {
                    (p.cos_step, p.sin_step)
                }
            },
            mlp,
            rec: None,
        })
    }

    /// Codes (encoder: `q` is `Some`) or decodes point `i`; returns the point.
    #[inline]
    fn point<I: Io>(&mut self, io: &mut I, i: usize, q: Option<[i64; 3]>) -> Result<[i64; 3]> {
        let r = match self.ids {
            Some(ids) => ids[i] as usize,
            None => 0,
        };
        let st = self.rings[r];
        let qq = q.unwrap_or([0; 3]);
        let out = match st.last {
            Some(w) if st.rho >= MIN_RHO => {
                let (ux, uy) = (w[0] as f64 / st.rho, w[1] as f64 / st.rho);
                // After six full steps a half step is nearly certain: predict it.
                let (cs, ss) = if st.since == 6 {
                    self.half
                } else {
                    (self.p.cos_step, self.p.sin_step)
                };
                let c = ux * cs - uy * ss;
                let s = ux * ss + uy * cs;
                // Range prediction: W's range, corrected by the ring above's change in
                // range between W's azimuth and the predicted one.
                let mut rho_hat = st.rho;
                // The range change of the ring above between W's azimuth and the
                // predicted one (or of this ring over its last step) selects the
                // context: large changes mean edges, where residuals are large. Adding
                // it to the prediction measured worse (it adds the neighbours' noise).
                let mut dgrad: Option<f64> = None;
                let mut above_pair = None;
                if self.ids.is_none() {
                    if let (Some(aw), Some(an)) = (
                        self.above_w,
                        self.above_w
                            .and_then(|h| self.above.nearest_from(pseudo_angle(c, s), h)),
                    ) {
                        dgrad = Some(self.above.rho[an] - self.above.rho[aw]);
                        above_pair = Some((aw, an));
                    }
                }
                let learned = self.mlp.is_some() || self.rec.is_some();
                let feats = if learned {
                    self.features(&st, above_pair)
                } else {
                    [0; FEATURES]
                };
                let mut corr = 0;
                let pred = match self.mlp {
                    Some((m, l)) => {
                        let pr = m.eval(&feats);
                        if l.correct {
                            corr = pr.correction;
                            rho_hat += corr as f64;
                        }
                        Some((pr, l))
                    }
                    None => None,
                };
                if dgrad.is_none() && st.n >= 2 {
                    dgrad = Some(st.rho - st.rho_prev);
                }
                let grad_ctx = match dgrad {
                    None => 0,
                    Some(d) => 1 + (class_of(rnd(d.abs())) / 3).min(4),
                };
                let px = rnd(rho_hat * c);
                let py = rnd(rho_hat * s);
                let (er, et) = lift(qq[0] - px, qq[1] - py, c, -s);
                // Range bucket (<4 m, <16 m, <64 m, more): noise and angular jitter
                // grow into larger residuals far away.
                let rb = (class_of(st.rho as i64).saturating_sub(10)).min(7) / 2;
                let ctx_r = usize::from(st.cr.min(15)) * 6 + grad_ctx;
                io.part(0);
                let dr = io.resid(&mut self.m.r, ctx_r, usize::from(st.sr), er)?;
                // The class of the range change from W (the residual of the classical
                // prediction) selects the other residuals' contexts: large at edges.
                let kr = class_of(dr + corr).min(7);
                io.part(1);
                let dt = io.resid(
                    &mut self.m.t,
                    (rb * 4 + kr.min(3)) * 9 + usize::from(st.since.min(8)),
                    usize::from(st.st),
                    et,
                )?;
                let (ex, ey) = unlift(dr, dt, c, -s);
                let (x, y) = (px + ex, py + ey);
                let rho = ((x as f64) * (x as f64) + (y as f64) * (y as f64)).sqrt();
                // The step actually taken, as a fraction of the nominal one.
                let since = if rho > 0.0 && self.p.sin_step.abs() > 1e-12 {
                    let ratio = (ux * y as f64 - uy * x as f64) / rho / self.p.sin_step;
                    if ratio > 0.25 && ratio < 0.75 {
                        0
                    } else if (0.75..1.5).contains(&ratio) {
                        if st.since >= 8 {
                            8
                        } else {
                            (st.since + 1).min(7)
                        }
                    } else {
                        8
                    }
                } else {
                    8
                };
                // Clamped to the coordinate range, so residuals stay small for any input.
                // With the learned laser height h: h + (z_W - h) · rho / rho_W.
                let zh = if st.rho >= 64.0 {
                    let h = match pred {
                        Some((Prediction { height, .. }, Learned { height: true, .. })) => {
                            height as f64
                        }
                        _ => 0.0,
                    };
                    rnd(w[2] as f64 * rho / st.rho + h * (1.0 - rho / st.rho))
                        .clamp(-(1 << 31), 1 << 31)
                } else {
                    w[2]
                };
                io.part(2);
                let dz = io.resid(
                    &mut self.m.z,
                    (rb * 8 + kr) * 6 + usize::from(st.cz.min(5)),
                    usize::from(st.sz),
                    qq[2] - zh,
                )?;
                let z = zh + dz;
                if let Some(rec) = self.rec.as_mut() {
                    let t = if st.rho >= 64.0 {
                        1.0 - rho / st.rho
                    } else {
                        0.0
                    };
                    rec.push((feats, er, dz, t));
                }
                let rs = &mut self.rings[r];
                rs.cr = class_of(dr) as u8;
                rs.ct = class_of(dt) as u8;
                rs.cz = class_of(dz) as u8;
                rs.since = since;
                rs.sr = sign3(dr);
                rs.st = sign3(dt);
                rs.sz = sign3(dz);
                [x, y, z]
            }
            _ => {
                let base = self.prev.unwrap_or([0; 3]);
                let mut p = [0i64; 3];
                io.part(3);
                for k in 0..3 {
                    p[k] = base[k] + io.resid(&mut self.m.fallback, k, k, qq[k] - base[k])?;
                }
                p
            }
        };
        self.finish_point(r, out);
        Ok(out)
    }

    /// The learned predictor's features (see [`crate::mlp`]): ranges in quantization
    /// units from decoded points only.
    fn features(&self, st: &Ring, above: Option<(usize, usize)>) -> [i64; FEATURES] {
        let mut f = [0i64; FEATURES];
        if st.n >= 2 {
            f[0] = rnd(st.rho - st.rho_prev);
            f[7] = 256;
        }
        if st.n >= 3 {
            f[1] = rnd(st.rho_prev - st.rho_prev2);
        }
        if let Some((aw, an)) = above {
            let a = &self.above.rho;
            let n = a.len();
            let next = if an + 1 == n { 0 } else { an + 1 };
            let prev = if an == 0 { n - 1 } else { an - 1 };
            f[2] = rnd(a[an] - a[aw]);
            f[3] = rnd(a[an] - st.rho);
            f[4] = rnd(a[next] - a[an]);
            f[5] = rnd(a[prev] - a[an]);
            f[8] = 256;
        }
        f[6] = rnd(st.rho / 64.0);
        if let Some(w) = st.last {
            if st.rho > 0.0 {
                f[9] = rnd(w[2] as f64 * 1024.0 / st.rho);
            }
        }
        f[10] = if st.since == 6 { 256 } else { 0 };
        f
    }

    fn finish_point(&mut self, r: usize, p: [i64; 3]) {
        let rho = ((p[0] as f64) * (p[0] as f64) + (p[1] as f64) * (p[1] as f64)).sqrt();
        if self.ids.is_none() {
            let key = pseudo_angle(p[0] as f64, p[1] as f64);
            let st = self.rings[0];
            let wrapped = match st.last {
                Some(w) => st.n >= MIN_RING && key + 2.0 < pseudo_angle(w[0] as f64, w[1] as f64),
                None => false,
            };
            if wrapped {
                // `p` opens a new ring; the finished one becomes the ring above.
                let mut done = std::mem::take(&mut self.cur_keys);
                done.sort_by(|a, b| a.0.total_cmp(&b.0));
                self.above = DoneRing {
                    keys: done.iter().map(|e| e.0).collect(),
                    rho: done.iter().map(|e| e.1).collect(),
                };
                let old = self.rings[0];
                self.rings[0] = Ring {
                    last: None,
                    n: 0,
                    ..old
                };
            }
            self.cur_keys.push((key, rho));
            self.above_w = match self.above_w {
                Some(h) if !wrapped => self.above.nearest_from(key, h),
                _ => self.above.nearest(key),
            };
        }
        let last = self.rings.len() - 1;
        let rs = &mut self.rings[r.min(last)];
        rs.last = Some(p);
        rs.rho_prev2 = rs.rho_prev;
        rs.rho_prev = rs.rho;
        rs.rho = rho;
        rs.n = rs.n.saturating_add(1);
        self.prev = Some(p);
    }
}

/// Encodes quantized points; `ids` are ring ids (each `<= MAX_RING_ID`) when the format
/// provides them.
///
/// # Errors
/// A ring id out of range; residuals too large to code.
pub fn encode(points: &[[i32; 3]], ids: Option<&[u32]>, p: GeomParams) -> Result<Vec<u8>> {
    encode_with(points, ids, p, None)
}

/// Like [`encode`], with the learned range predictor `mlp` when given.
///
/// # Errors
/// As [`encode`].
pub fn encode_with(
    points: &[[i32; 3]],
    ids: Option<&[u32]>,
    p: GeomParams,
    mlp: Option<(&Mlp, Learned)>,
) -> Result<Vec<u8>> {
    if let Some(ids) = ids {
        if ids.len() != points.len() || ids.iter().any(|&r| r > MAX_RING_ID) {
            return Err(Error::InvalidArgument(
                "lidar: ring ids do not match the points".into(),
            ));
        }
    }
    let mut c = Coder::new(p, ids, mlp)?;
    let mut io = EncIo(RangeEncoder::new());
    for (i, q) in points.iter().enumerate() {
        let q = [i64::from(q[0]), i64::from(q[1]), i64::from(q[2])];
        c.point(&mut io, i, Some(q))?;
    }
    Ok(io.0.finish())
}

/// Decodes `n` points written by [`encode`] with the same ring ids and parameters.
///
/// # Errors
/// [`Error::Codec`] for damaged data (including decoded coordinates outside `i32`).
pub fn decode(bytes: &[u8], n: usize, ids: Option<&[u32]>, p: GeomParams) -> Result<Vec<[i32; 3]>> {
    decode_with(bytes, n, ids, p, None)
}

/// Like [`decode`], for streams written by [`encode_with`] with the same `mlp`.
///
/// # Errors
/// As [`decode`].
pub fn decode_with(
    bytes: &[u8],
    n: usize,
    ids: Option<&[u32]>,
    p: GeomParams,
    mlp: Option<(&Mlp, Learned)>,
) -> Result<Vec<[i32; 3]>> {
    if let Some(ids) = ids {
        if ids.len() != n || ids.iter().any(|&r| r > MAX_RING_ID) {
            return Err(Error::codec("lidar", "ring ids do not match the points"));
        }
    }
    let mut c = Coder::new(p, ids, mlp)?;
    let mut io = DecIo(RangeDecoder::new(bytes).map_err(ent)?);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let q = c.point(&mut io, i, None)?;
        let mut v = [0i32; 3];
        for k in 0..3 {
            v[k] = i32::try_from(q[k]).map_err(|_| {
                Error::codec("lidar", format!("point {i}: coordinate out of range"))
            })?;
        }
        // Keep decoded values in the encoder's range so damaged data cannot overflow.
        out.push(v);
    }
    io.0.finish().map_err(ent)?;
    Ok(out)
}

/// Training samples for the learned range predictor: runs the classical coder over
/// `points` and returns, for every ring-predicted point, its features and radial residual.
///
/// # Errors
/// As [`encode`].
pub fn training_samples(
    points: &[[i32; 3]],
    ids: Option<&[u32]>,
    p: GeomParams,
) -> Result<Vec<Sample>> {
    if let Some(ids) = ids {
        if ids.len() != points.len() || ids.iter().any(|&r| r > MAX_RING_ID) {
            return Err(Error::InvalidArgument(
                "lidar: ring ids do not match the points".into(),
            ));
        }
    }
    let mut c = Coder::new(p, ids, None)?;
    c.rec = Some(Vec::with_capacity(points.len()));
    let mut io = EncIo(RangeEncoder::new());
    for (i, q) in points.iter().enumerate() {
        let q = [i64::from(q[0]), i64::from(q[1]), i64::from(q[2])];
        c.point(&mut io, i, Some(q))?;
    }
    Ok(c.rec.take().unwrap_or_default())
}

/// Bytes of the radial, tangential, height and fallback residuals when each is coded
/// into its own stream (a measurement aid; the real stream interleaves them).
///
/// # Errors
/// As [`encode`].
pub fn part_bytes(
    points: &[[i32; 3]],
    ids: Option<&[u32]>,
    p: GeomParams,
    mlp: Option<(&Mlp, Learned)>,
) -> Result<[usize; 4]> {
    if let Some(ids) = ids {
        if ids.len() != points.len() || ids.iter().any(|&r| r > MAX_RING_ID) {
            return Err(Error::InvalidArgument(
                "lidar: ring ids do not match the points".into(),
            ));
        }
    }
    let mut c = Coder::new(p, ids, mlp)?;
    let mut io = CostIo {
        enc: [
            RangeEncoder::new(),
            RangeEncoder::new(),
            RangeEncoder::new(),
            RangeEncoder::new(),
        ],
        k: 0,
    };
    for (i, q) in points.iter().enumerate() {
        let q = [i64::from(q[0]), i64::from(q[1]), i64::from(q[2])];
        c.point(&mut io, i, Some(q))?;
    }
    let [a, b, d, e] = io.enc;
    Ok([
        a.finish().len(),
        b.finish().len(),
        d.finish().len(),
        e.finish().len(),
    ])
}

/// Estimates the azimuth step between consecutive points of a ring (encoder side only;
/// the result is stored in the stream, so it need not be reproducible).
pub fn estimate_step(points: &[[i32; 3]], ids: Option<&[u32]>) -> GeomParams {
    let mut steps: Vec<f64> = Vec::new();
    let mut last: Vec<Option<[i32; 3]>> = vec![None; MAX_RING_ID as usize + 1];
    for (i, q) in points.iter().enumerate() {
        let r = ids
            .map_or(0, |ids| ids[i] as usize)
            .min(MAX_RING_ID as usize);
        if let (Some(w), true) = (last[r], i % 8 == 0) {
            let a0 = f64::from(w[1]).atan2(f64::from(w[0]));
            let a1 = f64::from(q[1]).atan2(f64::from(q[0]));
            let mut d = a1 - a0;
            if d > std::f64::consts::PI {
                d -= 2.0 * std::f64::consts::PI;
            } else if d < -std::f64::consts::PI {
                d += 2.0 * std::f64::consts::PI;
            }
            if d.abs() < 0.05 && d != 0.0 {
                steps.push(d);
            }
        }
        last[r] = Some(*q);
    }
    if steps.is_empty() {
        return GeomParams {
            cos_step: 1.0,
            sin_step: 0.0,
        };
    }
    steps.sort_by(f64::total_cmp);
    let d = steps[steps.len() / 2];
    GeomParams {
        cos_step: d.cos(),
        sin_step: d.sin(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_streams_decode_without_panicking() {
        let p = GeomParams {
            cos_step: 0.99999,
            sin_step: 0.0031,
        };
        let ids: Vec<u32> = (0..3000).map(|i| (i % 32) as u32).collect();
        let mut seed = 99u64;
        for round in 0..300 {
            let len = 8 + round * 7 % 3000;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 56) as u8
                })
                .collect();
            let _ = decode(&bytes, 3000, None, p);
            let _ = decode(&bytes, 3000, Some(&ids), p);
            let net = crate::mlp::shipped().expect("weights");
            let _ = decode_with(&bytes, 3000, None, p, Some((net, crate::mlp::LEARNED)));
        }
    }

    #[test]
    fn extreme_points_round_trip() {
        let p = GeomParams {
            cos_step: 0.99999,
            sin_step: 0.0031,
        };
        let m = (1 << 30) - 1;
        let pts = vec![
            [1, 1, m],
            [70, 0, m],
            [m, m, -m],
            [-m, 5, m],
            [m, -m, 0],
            [0, 0, 0],
            [3, -2, m],
        ];
        let bytes = encode(&pts, None, p).expect("encode");
        assert_eq!(decode(&bytes, pts.len(), None, p).expect("decode"), pts);
        let net = Some((crate::mlp::shipped().expect("weights"), crate::mlp::LEARNED));
        let bytes = encode_with(&pts, None, p, net).expect("encode");
        assert_eq!(
            decode_with(&bytes, pts.len(), None, p, net).expect("decode"),
            pts
        );
    }

    #[test]
    fn lifting_rotation_is_exactly_invertible() {
        let mut seed = 12345u64;
        for _ in 0..20000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let x = ((seed >> 20) % 200001) as i64 - 100000;
            let y = ((seed >> 40) % 2001) as i64 - 1000;
            let t = (seed % 6283) as f64 / 1000.0;
            let (c, s) = (t.cos(), t.sin());
            let (a, b) = lift(x, y, c, s);
            assert_eq!(unlift(a, b, c, s), (x, y));
        }
    }
}
