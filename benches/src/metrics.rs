//! Distortion metrics: PSNR and MS-SSIM for 8-bit RGB images, PSNR per plane for YUV,
//! SNR for audio, error statistics for point clouds.
//!
//! Conventions (stated in BENCHMARKS.md, the same as CompressAI's Kodak results):
//! - PSNR of an RGB image is `10·log10(255² / MSE)` with the MSE taken over every sample
//!   of the three channels together.
//! - MS-SSIM is Wang, Simoncelli and Bovik, "Multi-scale structural similarity for image
//!   quality assessment" (Asilomar 2003): 5 scales with the weights of the paper, an 11×11
//!   Gaussian window of σ = 1.5 applied without padding ("valid"), K1 = 0.01, K2 = 0.03,
//!   2×2 average pooling between scales. It is computed for each of R, G and B separately
//!   and the three values are averaged (as `pytorch_msssim.ms_ssim` does, which CompressAI
//!   uses). Negative contrast-structure terms are clamped to zero before the product.

/// Peak value of 8-bit samples.
const PEAK: f64 = 255.0;

/// MS-SSIM scale weights, Wang et al. 2003, Table 1 (β_j = γ_j, α_M = β_M).
pub const MS_SSIM_WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];
/// Side of the Gaussian window.
pub const SSIM_WINDOW: usize = 11;
/// Standard deviation of the Gaussian window.
pub const SSIM_SIGMA: f64 = 1.5;

/// An 8-bit image with interleaved channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image8 {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Channels per pixel (3 for RGB, 1 for a plane).
    pub channels: usize,
    /// Samples, row-major, channels interleaved; `width * height * channels` long.
    pub data: Vec<u8>,
}

impl Image8 {
    /// One channel as a plane of `f64`.
    fn plane(&self, c: usize) -> Plane {
        let data = self
            .data
            .iter()
            .skip(c)
            .step_by(self.channels)
            .map(|&v| f64::from(v))
            .collect();
        Plane {
            w: self.width,
            h: self.height,
            data,
        }
    }
}

/// Mean squared error between two sample sequences of equal length (`None` if lengths differ or empty).
pub fn mse(a: &[u8], b: &[u8]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = i64::from(x) - i64::from(y);
            (d * d) as u64
        })
        .sum();
    Some(sum as f64 / a.len() as f64)
}

/// PSNR in dB of 8-bit samples from an MSE; infinite MSE 0 is reported as `f64::INFINITY`.
pub fn psnr_from_mse(mse: f64) -> f64 {
    if mse <= 0.0 {
        f64::INFINITY
    } else {
        10.0 * (PEAK * PEAK / mse).log10()
    }
}

/// PSNR in dB over all samples of two images of the same shape (`None` if shapes differ).
pub fn psnr(a: &Image8, b: &Image8) -> Option<f64> {
    if (a.width, a.height, a.channels) != (b.width, b.height, b.channels) {
        return None;
    }
    mse(&a.data, &b.data).map(psnr_from_mse)
}

#[derive(Debug, Clone)]
struct Plane {
    w: usize,
    h: usize,
    data: Vec<f64>,
}

impl Plane {
    /// 2×2 average pooling; an odd side is padded with one zero sample on each side and
    /// the zeros count in the average (PyTorch `avg_pool2d(padding=s % 2)`, the convention
    /// of `pytorch_msssim`).
    fn downsample(&self) -> Plane {
        let (pw, ph) = (self.w % 2, self.h % 2);
        let ow = (self.w + 2 * pw - 2) / 2 + 1;
        let oh = (self.h + 2 * ph - 2) / 2 + 1;
        let mut data = vec![0.0; ow * oh];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut s = 0.0;
                for dy in 0..2 {
                    for dx in 0..2 {
                        let y = (2 * oy + dy) as isize - ph as isize;
                        let x = (2 * ox + dx) as isize - pw as isize;
                        if y >= 0 && x >= 0 && (y as usize) < self.h && (x as usize) < self.w {
                            s += self.data[y as usize * self.w + x as usize];
                        }
                    }
                }
                data[oy * ow + ox] = s / 4.0;
            }
        }
        Plane { w: ow, h: oh, data }
    }
}

fn gaussian_window() -> [f64; SSIM_WINDOW] {
    let mut g = [0.0; SSIM_WINDOW];
    let c = (SSIM_WINDOW / 2) as f64;
    for (i, v) in g.iter_mut().enumerate() {
        let d = i as f64 - c;
        *v = (-(d * d) / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp();
    }
    let s: f64 = g.iter().sum();
    for v in &mut g {
        *v /= s;
    }
    g
}

/// Separable "valid" filtering of a plane with the Gaussian window.
fn filter_valid(p: &Plane, g: &[f64; SSIM_WINDOW]) -> Plane {
    let k = SSIM_WINDOW;
    let ow = p.w + 1 - k;
    let oh = p.h + 1 - k;
    // Horizontal pass: h × ow.
    let mut tmp = vec![0.0; p.h * ow];
    for (y, out) in tmp.chunks_exact_mut(ow).enumerate() {
        let row = &p.data[y * p.w..(y + 1) * p.w];
        for (i, gi) in g.iter().enumerate() {
            for (o, s) in out.iter_mut().zip(&row[i..i + ow]) {
                *o += s * gi;
            }
        }
    }
    // Vertical pass row by row (contiguous, so it vectorises); same sum order for every pixel.
    let mut data = vec![0.0; oh * ow];
    for (y, out) in data.chunks_exact_mut(ow).enumerate() {
        for (i, gi) in g.iter().enumerate() {
            let src = &tmp[(y + i) * ow..(y + i + 1) * ow];
            for (o, s) in out.iter_mut().zip(src) {
                *o += s * gi;
            }
        }
    }
    Plane { w: ow, h: oh, data }
}

/// Mean SSIM and mean contrast-structure of one scale (Wang et al. 2004, eq. 13).
fn ssim_cs(x: &Plane, y: &Plane, g: &[f64; SSIM_WINDOW]) -> (f64, f64) {
    let c1 = (0.01 * PEAK) * (0.01 * PEAK);
    let c2 = (0.03 * PEAK) * (0.03 * PEAK);
    let prod = |a: &Plane, b: &Plane| Plane {
        w: a.w,
        h: a.h,
        data: a.data.iter().zip(&b.data).map(|(p, q)| p * q).collect(),
    };
    let mu_x = filter_valid(x, g);
    let mu_y = filter_valid(y, g);
    let xx = filter_valid(&prod(x, x), g);
    let yy = filter_valid(&prod(y, y), g);
    let xy = filter_valid(&prod(x, y), g);
    let n = mu_x.data.len() as f64;
    let (mut ssim_sum, mut cs_sum) = (0.0, 0.0);
    for i in 0..mu_x.data.len() {
        let (mx, my) = (mu_x.data[i], mu_y.data[i]);
        let sxx = xx.data[i] - mx * mx;
        let syy = yy.data[i] - my * my;
        let sxy = xy.data[i] - mx * my;
        let cs = (2.0 * sxy + c2) / (sxx + syy + c2);
        let l = (2.0 * mx * my + c1) / (mx * mx + my * my + c1);
        cs_sum += cs;
        ssim_sum += l * cs;
    }
    (ssim_sum / n, cs_sum / n)
}

/// Smallest side MS-SSIM accepts: the window must fit at the 5th scale.
pub const MS_SSIM_MIN_SIDE: usize = (SSIM_WINDOW - 1) * 16 + 1;

/// MS-SSIM of one plane pair (see the module docs); `None` if a side is below [`MS_SSIM_MIN_SIDE`].
fn ms_ssim_plane(x: Plane, y: Plane) -> Option<f64> {
    if x.w.min(x.h) < MS_SSIM_MIN_SIDE {
        return None;
    }
    let g = gaussian_window();
    let (mut x, mut y) = (x, y);
    let mut value = 1.0;
    for (j, w) in MS_SSIM_WEIGHTS.iter().enumerate() {
        let (ssim, cs) = ssim_cs(&x, &y, &g);
        if j + 1 == MS_SSIM_WEIGHTS.len() {
            value *= ssim.max(0.0).powf(*w);
        } else {
            value *= cs.max(0.0).powf(*w);
            x = x.downsample();
            y = y.downsample();
        }
    }
    Some(value)
}

/// MS-SSIM of two images of the same shape, averaged over channels (see the module docs).
///
/// `None` if the shapes differ or a side is below [`MS_SSIM_MIN_SIDE`] (161 pixels).
pub fn ms_ssim(a: &Image8, b: &Image8) -> Option<f64> {
    if (a.width, a.height, a.channels) != (b.width, b.height, b.channels) || a.channels == 0 {
        return None;
    }
    let mut sum = 0.0;
    for c in 0..a.channels {
        sum += ms_ssim_plane(a.plane(c), b.plane(c))?;
    }
    Some(sum / a.channels as f64)
}

/// Single-scale SSIM (mean over the valid window positions), averaged over channels.
/// `None` if shapes differ or a side is below the window size.
pub fn ssim(a: &Image8, b: &Image8) -> Option<f64> {
    if (a.width, a.height, a.channels) != (b.width, b.height, b.channels)
        || a.width.min(a.height) < SSIM_WINDOW
    {
        return None;
    }
    let g = gaussian_window();
    let mut sum = 0.0;
    for c in 0..a.channels {
        sum += ssim_cs(&a.plane(c), &b.plane(c), &g).0;
    }
    Some(sum / a.channels as f64)
}

/// Signal-to-noise ratio in dB of a decoded signal against the reference, over the common
/// length: `10·log10(Σ ref² / Σ (ref − dec)²)`. Infinite when identical; `None` if empty.
pub fn snr_db(reference: &[f64], decoded: &[f64]) -> Option<f64> {
    let n = reference.len().min(decoded.len());
    if n == 0 {
        return None;
    }
    let (mut sig, mut noise) = (0.0, 0.0);
    for i in 0..n {
        sig += reference[i] * reference[i];
        let d = reference[i] - decoded[i];
        noise += d * d;
    }
    if noise == 0.0 {
        Some(f64::INFINITY)
    } else {
        Some(10.0 * (sig / noise).log10())
    }
}

/// SNR in dB at the best alignment: the decoded signal is shifted by every whole number of
/// frames (samples per channel) in `-max_lag..=max_lag` and the highest SNR over the
/// overlapping frames is returned with its lag (positive = the decoded signal is late).
/// Lossy audio decoders that resample (Opus at 16 or 44.1 kHz) are off by a sample or so,
/// which would otherwise swamp the coding noise. `None` if nothing overlaps.
pub fn snr_db_aligned(
    reference: &[f64],
    decoded: &[f64],
    channels: usize,
    max_lag: usize,
) -> Option<(f64, isize)> {
    let ch = channels.max(1);
    let (fr, fd) = (reference.len() / ch, decoded.len() / ch);
    let mut best: Option<(f64, isize)> = None;
    for lag in -(max_lag as isize)..=(max_lag as isize) {
        // Reference frame i pairs with decoded frame i + lag.
        let start = if lag < 0 { (-lag) as usize } else { 0 };
        let end = fr.min((fd as isize - lag).max(0) as usize);
        if end <= start {
            continue;
        }
        let r = &reference[start * ch..end * ch];
        let d0 = (start as isize + lag) as usize * ch;
        let d = &decoded[d0..d0 + r.len()];
        if let Some(v) = snr_db(r, d) {
            if best.is_none_or(|(b, _)| v > b) {
                best = Some((v, lag));
            }
        }
    }
    best
}

/// Errors between matched points (same order), for point clouds: the largest error of
/// any single coordinate (L∞, the bound codecs state, e.g. "≤ P/2"), the mean and the
/// largest Euclidean distance. `None` if the counts differ or there are no points.
pub fn point_errors(reference: &[[f64; 3]], decoded: &[[f64; 3]]) -> Option<PointErrors> {
    if reference.len() != decoded.len() || reference.is_empty() {
        return None;
    }
    let mut e = PointErrors {
        max_coordinate: 0.0,
        mean_distance: 0.0,
        max_distance: 0.0,
    };
    let mut sum = 0.0;
    for (p, q) in reference.iter().zip(decoded) {
        let d = [
            (p[0] - q[0]).abs(),
            (p[1] - q[1]).abs(),
            (p[2] - q[2]).abs(),
        ];
        e.max_coordinate = e.max_coordinate.max(d[0]).max(d[1]).max(d[2]);
        let dist = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        e.max_distance = e.max_distance.max(dist);
        sum += dist;
    }
    e.mean_distance = sum / reference.len() as f64;
    Some(e)
}

/// See [`point_errors`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointErrors {
    /// Largest absolute error of one coordinate.
    pub max_coordinate: f64,
    /// Mean Euclidean distance between matched points.
    pub mean_distance: f64,
    /// Largest Euclidean distance between matched points.
    pub max_distance: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: usize, h: usize, seed: u32) -> Image8 {
        let mut data = Vec::with_capacity(w * h * 3);
        let mut s = seed;
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let noise = (s >> 28) as usize;
                    data.push(((x * 3 + y * 2 + c * 40 + noise) % 256) as u8);
                }
            }
        }
        Image8 {
            width: w,
            height: h,
            channels: 3,
            data,
        }
    }

    #[test]
    fn psnr_of_known_error() {
        let a = Image8 {
            width: 2,
            height: 1,
            channels: 3,
            data: vec![10, 20, 30, 40, 50, 60],
        };
        let mut b = a.clone();
        b.data[0] = 13; // one sample off by 3: MSE = 9 / 6
        let expected = 10.0 * (255.0f64 * 255.0 / 1.5).log10();
        assert!((psnr(&a, &b).unwrap() - expected).abs() < 1e-12);
        assert_eq!(psnr(&a, &a), Some(f64::INFINITY));
    }

    #[test]
    fn ms_ssim_is_one_for_identical_and_lower_for_noise() {
        let a = gradient(192, 176, 1);
        assert!((ms_ssim(&a, &a).unwrap() - 1.0).abs() < 1e-12);
        let mut b = a.clone();
        for (i, v) in b.data.iter_mut().enumerate() {
            *v = v.saturating_add((i % 7) as u8 * 3);
        }
        let m = ms_ssim(&a, &b).unwrap();
        assert!(m < 1.0 && m > 0.5, "{m}");
    }

    #[test]
    fn ms_ssim_refuses_small_images() {
        let a = gradient(160, 300, 2);
        assert_eq!(ms_ssim(&a, &a), None);
        assert_eq!(MS_SSIM_MIN_SIDE, 161);
    }

    #[test]
    fn downsample_pads_odd_sides_like_pytorch() {
        let p = Plane {
            w: 3,
            h: 1,
            data: vec![4.0, 8.0, 12.0],
        };
        let d = p.downsample();
        // Width 3, pad 1 each side: windows [0,4], [8,12]; height 1, pad 1: [0,row].
        assert_eq!((d.w, d.h), (2, 1));
        assert_eq!(d.data, vec![1.0, 5.0]);
    }

    #[test]
    fn snr_and_point_errors() {
        let r = [1.0, -1.0, 1.0, -1.0];
        let d = [0.9, -0.9, 0.9, -0.9];
        assert!((snr_db(&r, &d).unwrap() - 20.0).abs() < 1e-9);
        // A stereo signal decoded one frame late is found at lag +1 and is exact there.
        let sig: Vec<f64> = (0..200).map(|i| ((i / 2) as f64 * 0.3).sin()).collect();
        let mut late = vec![0.0, 0.0];
        late.extend_from_slice(&sig[..198]);
        let (snr, lag) = snr_db_aligned(&sig, &late, 2, 4).unwrap();
        assert_eq!((snr, lag), (f64::INFINITY, 1));
        assert!(snr_db(&sig, &late).unwrap() < 20.0);
        let e = point_errors(
            &[[0.0; 3], [1.0, 1.0, 1.0]],
            &[[0.0, 4.0, 3.0], [1.0, 1.0, 1.5]],
        )
        .unwrap();
        assert_eq!(
            (e.max_coordinate, e.mean_distance, e.max_distance),
            (4.0, 2.75, 5.0)
        );
        assert_eq!(point_errors(&[[0.0; 3]], &[]), None);
    }
}
