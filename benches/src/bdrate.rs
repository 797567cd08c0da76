//! Bjøntegaard delta rate and delta quality between two rate-distortion curves.
//!
//! G. Bjøntegaard, "Calculation of average PSNR differences between RD-curves",
//! ITU-T SG16 Q.6 (VCEG), document VCEG-M33, Austin, April 2001: each curve is fitted by a
//! least-squares cubic polynomial — log-rate as a function of quality for the rate
//! difference, quality as a function of log-rate for the quality difference — and the
//! fits are integrated over the quality (resp. log-rate) interval where both curves have
//! points. The average log-rate difference `Δ` gives BD-rate `= (e^Δ − 1) · 100 %`.
//!
//! Sign convention: a **positive** BD-rate means the test curve needs more bits than the
//! anchor for the same quality (it is worse); negative means it saves bits.

/// One rate-distortion point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RdPoint {
    /// Rate (bits per pixel, kbit/s, …); must be positive.
    pub rate: f64,
    /// Quality (PSNR dB, MS-SSIM, …); higher is better.
    pub quality: f64,
}

/// Least-squares polynomial of degree `d ≤ 3` in the normalised variable `t = (x − mean) / scale`.
#[derive(Debug, Clone, Copy)]
struct Poly {
    c: [f64; 4],
    mean: f64,
    scale: f64,
}

impl Poly {
    /// Least-squares fit of `y` on `x` of degree `min(3, n − 1)` (a cubic from 4 points on,
    /// as VCEG-M33; fewer points give a lower degree). `None` below 2 points or for equal `x`.
    fn fit(x: &[f64], y: &[f64]) -> Option<Poly> {
        let n = x.len();
        if n < 2 || y.len() != n {
            return None;
        }
        let d = (n - 1).min(3);
        let mean = x.iter().sum::<f64>() / n as f64;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        let scale = var.sqrt();
        if scale.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !scale.is_finite() {
            return None;
        }
        // Normal equations A^T A c = A^T y on the normalised variable (well conditioned);
        // unused higher degrees get the identity so the 4×4 system stays regular.
        let mut m = [[0.0f64; 5]; 4];
        for (xi, yi) in x.iter().zip(y) {
            let t = (xi - mean) / scale;
            let pw = [1.0, t, t * t, t * t * t];
            for r in 0..=d {
                for c in 0..=d {
                    m[r][c] += pw[r] * pw[c];
                }
                m[r][4] += pw[r] * yi;
            }
        }
        for (r, row) in m.iter_mut().enumerate().skip(d + 1) {
            row[r] = 1.0;
        }
        let c = solve4(m)?;
        Some(Poly { c, mean, scale })
    }

    /// Integral over `x` from `a` to `b`.
    fn integral(&self, a: f64, b: f64) -> f64 {
        let prim = |x: f64| {
            let t = (x - self.mean) / self.scale;
            let [c0, c1, c2, c3] = self.c;
            (c0 * t + c1 * t * t / 2.0 + c2 * t.powi(3) / 3.0 + c3 * t.powi(4) / 4.0) * self.scale
        };
        prim(b) - prim(a)
    }
}

/// Gaussian elimination with partial pivoting on a 4×5 augmented matrix.
fn solve4(mut m: [[f64; 5]; 4]) -> Option<[f64; 4]> {
    for col in 0..4 {
        let piv = (col..4).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[piv][col].abs() < 1e-12 {
            return None;
        }
        m.swap(col, piv);
        let pivot_row = m[col];
        for (r, row) in m.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (v, p) in row.iter_mut().zip(pivot_row.iter()).skip(col) {
                    *v -= f * p;
                }
            }
        }
    }
    Some([
        m[0][4] / m[0][0],
        m[1][4] / m[1][1],
        m[2][4] / m[2][2],
        m[3][4] / m[3][3],
    ])
}

/// Degree of the polynomial fitted to a curve of `points` usable points (3 = the standard cubic).
pub fn fit_degree(points: usize) -> usize {
    points.saturating_sub(1).min(3)
}

fn usable(curve: &[RdPoint]) -> Option<(Vec<f64>, Vec<f64>)> {
    let pts: Vec<_> = curve
        .iter()
        .filter(|p| p.rate > 0.0 && p.rate.is_finite() && p.quality.is_finite())
        .collect();
    if pts.len() < 2 {
        return None;
    }
    Some((
        pts.iter().map(|p| p.rate.ln()).collect(),
        pts.iter().map(|p| p.quality).collect(),
    ))
}

fn range(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// The quality range (lowest, highest) of a curve's usable points; `None` below 2 points.
pub fn quality_range(curve: &[RdPoint]) -> Option<(f64, f64)> {
    usable(curve).map(|(_, q)| range(&q))
}

/// BD-rate of `test` against `anchor` in percent (positive = `test` needs more bits).
///
/// Curves of 4 points or more are fitted with cubics (VCEG-M33); with 2 or 3 points the
/// degree drops to 1 or 2 (see [`fit_degree`]). `None` when a curve has fewer than 2
/// usable points (positive finite rate, finite quality), the quality ranges do not
/// overlap, or a fit is degenerate.
pub fn bd_rate(anchor: &[RdPoint], test: &[RdPoint]) -> Option<f64> {
    let (ra, qa) = usable(anchor)?;
    let (rt, qt) = usable(test)?;
    let fa = Poly::fit(&qa, &ra)?;
    let ft = Poly::fit(&qt, &rt)?;
    let (lo_a, hi_a) = range(&qa);
    let (lo_t, hi_t) = range(&qt);
    let (lo, hi) = (lo_a.max(lo_t), hi_a.min(hi_t));
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let avg = (ft.integral(lo, hi) - fa.integral(lo, hi)) / (hi - lo);
    Some((avg.exp() - 1.0) * 100.0)
}

/// BD-quality (e.g. BD-PSNR in dB) of `test` against `anchor`: the average quality gain
/// at equal rate (positive = `test` is better). `None` as for [`bd_rate`].
pub fn bd_quality(anchor: &[RdPoint], test: &[RdPoint]) -> Option<f64> {
    let (ra, qa) = usable(anchor)?;
    let (rt, qt) = usable(test)?;
    let fa = Poly::fit(&ra, &qa)?;
    let ft = Poly::fit(&rt, &qt)?;
    let (lo_a, hi_a) = range(&ra);
    let (lo_t, hi_t) = range(&rt);
    let (lo, hi) = (lo_a.max(lo_t), hi_a.min(hi_t));
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    Some((ft.integral(lo, hi) - fa.integral(lo, hi)) / (hi - lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(pts: &[(f64, f64)]) -> Vec<RdPoint> {
        pts.iter()
            .map(|&(rate, quality)| RdPoint { rate, quality })
            .collect()
    }

    #[test]
    fn identical_curves_have_zero_delta() {
        let a = curve(&[
            (0.1, 28.0),
            (0.2, 30.5),
            (0.4, 33.0),
            (0.8, 36.0),
            (1.6, 39.0),
        ]);
        assert!(bd_rate(&a, &a).unwrap().abs() < 1e-9);
        assert!(bd_quality(&a, &a).unwrap().abs() < 1e-9);
    }

    #[test]
    fn scaled_rates_give_the_exact_ratio() {
        // The same curve at 1.25× the rate everywhere is exactly +25 % (the cubic fits it).
        let a = curve(&[
            (0.1, 28.0),
            (0.2, 30.5),
            (0.4, 33.0),
            (0.8, 36.0),
            (1.6, 39.0),
        ]);
        let b: Vec<_> = a
            .iter()
            .map(|p| RdPoint {
                rate: p.rate * 1.25,
                quality: p.quality,
            })
            .collect();
        assert!((bd_rate(&a, &b).unwrap() - 25.0).abs() < 1e-9);
        assert!((bd_rate(&b, &a).unwrap() - (1.0 / 1.25 - 1.0) * 100.0).abs() < 1e-9);
        assert!(bd_quality(&a, &b).unwrap() < 0.0);
    }

    #[test]
    fn three_points_use_a_quadratic() {
        let a = curve(&[(0.1, 28.0), (0.2, 30.5), (0.4, 33.0)]);
        let b: Vec<_> = a
            .iter()
            .map(|p| RdPoint {
                rate: p.rate * 0.8,
                quality: p.quality,
            })
            .collect();
        assert!((bd_rate(&a, &b).unwrap() + 20.0).abs() < 1e-9);
        assert_eq!(fit_degree(3), 2);
        assert_eq!(fit_degree(8), 3);
    }

    #[test]
    fn too_few_points_or_no_overlap_is_none() {
        let a = curve(&[(0.1, 28.0)]);
        assert_eq!(bd_rate(&a, &a), None);
        let lo = curve(&[(0.1, 20.0), (0.2, 21.0), (0.4, 22.0), (0.8, 23.0)]);
        let hi = curve(&[(0.1, 30.0), (0.2, 31.0), (0.4, 32.0), (0.8, 33.0)]);
        assert_eq!(bd_rate(&lo, &hi), None);
    }
}
