//! Mean-scale hyperprior image model (Minnen, Ballé, Toderici, "Joint Autoregressive and
//! Hierarchical Priors for Learned Image Compression", NeurIPS 2018, the "Mean & Scale
//! Hyperprior" variant without the serial autoregressive context), with per-quality
//! channel gains (Cui et al., "Asymmetric Gained Deep Image Compression With Continuous
//! Rate Adaptation", CVPR 2021) so one network serves every quality level.
//!
//! Pure-Rust CPU backend on `lcodec-kernels`. Layer layout (names are the safetensors keys,
//! shared with the tch backend):
//!
//! | module | layers |
//! |---|---|
//! | `g_a` | conv 5x5/2 (3→N), GDN, conv 5x5/2 (N→N), GDN, conv 5x5/2 (N→N), GDN, conv 5x5/2 (N→M) |
//! | `h_a` | conv 3x3/1 (M→N), LeakyReLU, conv 5x5/2 (N→N), LeakyReLU, conv 5x5/2 (N→N) |
//! | `h_s` | deconv 5x5/2 (N→M), LeakyReLU, deconv 5x5/2 (M→3M/2), LeakyReLU, conv 3x3/1 (3M/2→2M) |
//! | `g_s` | deconv 5x5/2 (M→N), IGDN, deconv (N→N), IGDN, deconv (N→N), IGDN, deconv (N→3) |
//!
//! `h_s` output channels `0..M` are the scales, `M..2M` the means of `y` (CompressAI's
//! `chunk(2, 1)` order). `y = g_a(x) * gain[q]`, `x̂ = g_s(ŷ * inv_gain[q])`.
//! The hyper-synthesis runs in [`Mode::Deterministic`] so encoder and decoder compute the
//! same means and scales on any machine; the other transforms use the fast path.

use crate::weights::WeightFile;
use lcodec_core::{Error, Result};
use lcodec_kernels::{
    Conv2dParams, ConvTranspose2dParams, Mode, conv_transpose2d, conv2d, gdn, leaky_relu_inplace,
};
use ndarray::{Array2, Array3, Array4, ArrayView3, Axis, s};
use std::collections::HashMap;

/// Architecture id of the plain mean-scale hyperprior (`lcodec.arch` metadata).
pub const ARCH: &str = "mshp-gain-v1";
/// Architecture id of the hyperprior with the checkerboard context model.
pub const ARCH_CHECKERBOARD: &str = "ckbd-gain-v1";
/// Architecture id of the checkerboard context model over channel groups.
pub const ARCH_CHANNEL_CHECKERBOARD: &str = "ckbd-cc-v1";

/// Which entropy model sits on top of the shared transforms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Arch {
    /// Mean-scale hyperprior: `(μ, σ) = h_s(ẑ)`, one parallel pass ([`ARCH`]).
    #[default]
    MeanScale,
    /// Checkerboard context (He et al., CVPR 2021, [`ARCH_CHECKERBOARD`]): anchors
    /// (`(row + col)` even on the `y` grid) get `(μ, σ) = ep(h_s(ẑ), 0)`; the other half
    /// get `ep(h_s(ẑ), ctx(ŷ_anchors))` with `ctx` a 5x5 convolution that only sees
    /// anchors. Two parallel passes.
    Checkerboard,
    /// Checkerboard context over channel groups ([`ARCH_CHANNEL_CHECKERBOARD`]; the
    /// spatial-channel context of He et al., "ELIC", CVPR 2022, in the order that keeps a
    /// checkerboard model's computation as its special case). `y`'s channels are split
    /// into the uneven groups of [`channel_groups`]; the latents are decoded in the
    /// [`context_steps`] order: the anchors of group 1, 2, …, then the non-anchors of
    /// group 1, 2, …. Every step's context is one unmasked 5x5 convolution `ctx` (`M →
    /// 2M`) of everything decoded before it (zeros elsewhere), plus `ctx`'s bias in the
    /// non-anchor steps; `(μ, σ)` of the step's channels are `ep(h_s(ẑ), context)`. With
    /// one group and the even taps of `ctx` zero this is exactly [`Arch::Checkerboard`],
    /// which is how such a model is first made from a trained checkerboard one.
    /// `2 × groups` parallel passes.
    ChannelCheckerboard,
}

impl Arch {
    /// The id stored in weights metadata and model cards.
    pub fn id(self) -> &'static str {
        match self {
            Arch::MeanScale => ARCH,
            Arch::Checkerboard => ARCH_CHECKERBOARD,
            Arch::ChannelCheckerboard => ARCH_CHANNEL_CHECKERBOARD,
        }
    }

    /// Whether the model has the context convolution and entropy-parameter network (the
    /// checkerboard architectures).
    pub fn has_context(self) -> bool {
        self != Arch::MeanScale
    }

    /// Parses an id ([`Arch::id`]) or a short name (`mshp`, `ckbd`).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for an unknown architecture.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            ARCH | "mshp" => Ok(Arch::MeanScale),
            ARCH_CHECKERBOARD | "ckbd" | "checkerboard" => Ok(Arch::Checkerboard),
            ARCH_CHANNEL_CHECKERBOARD | "ckbd-cc" => Ok(Arch::ChannelCheckerboard),
            other => Err(Error::Unsupported(format!(
                "model architecture `{other}` (this build knows `{ARCH}`, `{ARCH_CHECKERBOARD}`, \
                 `{ARCH_CHANNEL_CHECKERBOARD}`)"
            ))),
        }
    }

    /// One-byte code written in the codec parameters of `.lc` files.
    pub fn code(self) -> u8 {
        match self {
            Arch::MeanScale => 0,
            Arch::Checkerboard => 1,
            Arch::ChannelCheckerboard => 2,
        }
    }
}

/// One step of a context model's decoding order: the latents of channels
/// `start..start + len` at the anchors (or at the non-anchors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextStep {
    /// Anchors (`(row + col)` even) or non-anchors.
    pub anchors: bool,
    /// First channel.
    pub start: usize,
    /// Number of channels.
    pub len: usize,
}

/// The channel groups of [`Arch::ChannelCheckerboard`] as `(first channel, count)`:
/// `M/8, M/8, M/4` and the rest (ELIC's uneven split, scaled: small groups first, where a
/// decoded channel helps the most others). Empty groups (tiny `M`) are left out.
pub fn channel_groups(m: usize) -> Vec<(usize, usize)> {
    let sizes = [m / 8, m / 8, m / 4, m - 2 * (m / 8) - m / 4];
    let mut out = Vec::with_capacity(sizes.len());
    let mut start = 0;
    for len in sizes {
        if len > 0 {
            out.push((start, len));
            start += len;
        }
    }
    out
}

/// The decoding order of a context model with `m` latent channels: every anchor step,
/// then every non-anchor step; one channel group ([`Arch::Checkerboard`]) or those of
/// [`channel_groups`]. Empty for [`Arch::MeanScale`].
pub fn context_steps(arch: Arch, m: usize) -> Vec<ContextStep> {
    let groups = match arch {
        Arch::MeanScale => return vec![],
        Arch::Checkerboard => vec![(0, m)],
        Arch::ChannelCheckerboard => channel_groups(m),
    };
    [true, false]
        .into_iter()
        .flat_map(|anchors| {
            groups.iter().map(move |&(start, len)| ContextStep {
                anchors,
                start,
                len,
            })
        })
        .collect()
}

/// Whether position `(row, col)` of the `y` grid is a checkerboard anchor (decoded first).
#[inline]
pub fn is_anchor(row: usize, col: usize) -> bool {
    (row + col) % 2 == 0
}

/// Hidden widths of the checkerboard's entropy-parameter network (1x1 convolutions
/// `4M → 10M/3 → 8M/3 → 2M`, as in Minnen et al. 2018).
pub fn ep_sizes(m: usize) -> (usize, usize) {
    (m * 10 / 3, m * 8 / 3)
}
/// Spatial down-sampling factor of `y` (4 stride-2 layers).
pub const Y_STRIDE: usize = 16;
/// Spatial down-sampling factor of `z`; image sides must be multiples of this.
pub const Z_STRIDE: usize = 64;
/// Slope of every LeakyReLU (PyTorch's default).
pub const LEAKY_SLOPE: f32 = 0.01;
/// Lower bound applied to predicted scales (CompressAI's `scale_bound`).
pub const SCALE_BOUND: f32 = 0.11;

/// Sizes of the network.
#[derive(Clone, Debug, PartialEq)]
pub struct HyperpriorConfig {
    /// Channels of the hidden layers and of `z`.
    pub n: usize,
    /// Channels of the latent `y`.
    pub m: usize,
    /// The λ of each quality level (ascending: level 0 is the lowest rate).
    pub lambdas: Vec<f32>,
    /// The entropy model.
    pub arch: Arch,
}

impl HyperpriorConfig {
    /// Number of quality levels (rows of the gain tables).
    pub fn levels(&self) -> usize {
        self.lambdas.len()
    }

    /// Checks the sizes: `n, m >= 2`, `m` even, 1..=64 levels.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] describing the bad value.
    pub fn validate(&self) -> Result<()> {
        if self.n < 2 || self.n > 1024 || self.m < 2 || self.m > 1024 || self.m % 2 != 0 {
            return Err(Error::InvalidArgument(format!(
                "bad sizes N={} M={} (2..=1024, M even)",
                self.n, self.m
            )));
        }
        if self.lambdas.is_empty() || self.lambdas.len() > 64 {
            return Err(Error::InvalidArgument(format!(
                "{} quality levels (expected 1..=64)",
                self.lambdas.len()
            )));
        }
        Ok(())
    }

    /// The metadata entries describing this config.
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert("lcodec.arch".into(), self.arch.id().into());
        m.insert("lcodec.n".into(), self.n.to_string());
        m.insert("lcodec.m".into(), self.m.to_string());
        let l: Vec<String> = self.lambdas.iter().map(|v| v.to_string()).collect();
        m.insert("lcodec.lambdas".into(), l.join(","));
        m
    }

    /// Reads the config from a weights file's metadata.
    ///
    /// # Errors
    /// [`Error::Codec`] when keys are missing, [`Error::Unsupported`] for an unknown
    /// architecture.
    pub fn from_weights(w: &WeightFile<'_>) -> Result<Self> {
        let arch = Arch::parse(w.meta("lcodec.arch")?)?;
        let lambdas = w
            .meta("lcodec.lambdas")?
            .split(',')
            .map(|s| s.trim().parse::<f32>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| Error::codec("weights", "metadata lcodec.lambdas does not parse"))?;
        let c = Self {
            n: w.meta_parse("lcodec.n")?,
            m: w.meta_parse("lcodec.m")?,
            lambdas,
            arch,
        };
        c.validate()?;
        Ok(c)
    }
}

/// One convolution layer (plain or transposed).
#[derive(Clone, Debug)]
pub struct ConvLayer {
    /// Weights in PyTorch layout.
    pub weight: Array4<f32>,
    /// Bias, one per output channel.
    pub bias: Vec<f32>,
    /// Stride.
    pub stride: usize,
    /// Padding.
    pub padding: usize,
    /// `Some(output_padding)` for a transposed convolution.
    pub transposed: Option<usize>,
}

impl ConvLayer {
    fn load(
        w: &WeightFile<'_>,
        name: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        transposed: bool,
    ) -> Result<Self> {
        let shape = if transposed {
            [cin, cout, k, k]
        } else {
            [cout, cin, k, k]
        };
        Ok(Self {
            weight: w.array4(&format!("{name}.weight"), shape)?,
            bias: w.f32(&format!("{name}.bias"), &[cout])?,
            stride,
            padding: k / 2,
            transposed: transposed.then_some(stride - 1),
        })
    }

    /// Applies the layer.
    pub fn forward(&self, x: ArrayView3<'_, f32>, mode: Mode) -> Array3<f32> {
        match self.transposed {
            Some(op) => conv_transpose2d(
                x,
                self.weight.view(),
                Some(&self.bias),
                ConvTranspose2dParams {
                    stride: self.stride,
                    padding: self.padding,
                    output_padding: op,
                },
                mode,
            ),
            None => conv2d(
                x,
                self.weight.view(),
                Some(&self.bias),
                Conv2dParams {
                    stride: self.stride,
                    padding: self.padding,
                },
                mode,
            ),
        }
    }

    /// Input channel count.
    pub fn in_channels(&self) -> usize {
        if self.transposed.is_some() {
            self.weight.dim().0
        } else {
            self.weight.dim().1
        }
    }
}

/// GDN / IGDN layer with effective (non-negative) parameters.
#[derive(Clone, Debug)]
pub struct GdnLayer {
    /// `beta[C]`.
    pub beta: Vec<f32>,
    /// `gamma[C, C]`.
    pub gamma: Array2<f32>,
    /// IGDN when true.
    pub inverse: bool,
}

impl GdnLayer {
    fn load(w: &WeightFile<'_>, name: &str, c: usize, inverse: bool) -> Result<Self> {
        Ok(Self {
            beta: w.f32(&format!("{name}.beta"), &[c])?,
            gamma: w.array2(&format!("{name}.gamma"), [c, c])?,
            inverse,
        })
    }
}

/// The integer tables of the factorized prior of `z`: for channel `c`, symbol `k` stands
/// for the value `offset[c] + k`, with frequency `freqs[c][k]` (> 0; they sum to
/// `1 << 16`). Quantized at export, so decoding never evaluates floats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FactorizedTables {
    /// Value of symbol 0, per channel.
    pub offsets: Vec<i32>,
    /// Frequencies per channel.
    pub freqs: Vec<Vec<u32>>,
}

/// Total of each channel's frequencies in [`FactorizedTables`].
pub const Z_TABLE_TOTAL: u32 = 1 << 16;

impl FactorizedTables {
    pub(crate) fn load(w: &WeightFile<'_>, n: usize) -> Result<Self> {
        let offsets_raw = w.i64("prior_z.offset", &[n])?;
        let lens = w.i64("prior_z.len", &[n])?;
        let lmax = lens.iter().copied().max().unwrap_or(0);
        if !(1..=4096).contains(&lmax) {
            return Err(Error::codec(
                "weights",
                format!("prior_z table length {lmax} out of 1..=4096"),
            ));
        }
        let flat = w.u32("prior_z.freq", &[n, lmax as usize])?;
        let mut offsets = Vec::with_capacity(n);
        let mut freqs = Vec::with_capacity(n);
        for c in 0..n {
            let len = lens[c];
            if len < 1 {
                return Err(Error::codec(
                    "weights",
                    format!("prior_z channel {c}: empty table"),
                ));
            }
            let f = flat[c * lmax as usize..c * lmax as usize + len as usize].to_vec();
            let total: u64 = f.iter().map(|&v| u64::from(v)).sum();
            if total != u64::from(Z_TABLE_TOTAL) || f.contains(&0) {
                return Err(Error::codec(
                    "weights",
                    format!("prior_z channel {c}: frequencies sum to {total} or contain 0"),
                ));
            }
            let off = i32::try_from(offsets_raw[c])
                .map_err(|_| Error::codec("weights", "prior_z offset out of range"))?;
            offsets.push(off);
            freqs.push(f);
        }
        Ok(Self { offsets, freqs })
    }
}

/// The CPU mean-scale hyperprior network.
#[derive(Clone, Debug)]
pub struct MeanScaleHyperprior {
    config: HyperpriorConfig,
    g_a: Vec<ConvLayer>,
    g_a_gdn: Vec<GdnLayer>,
    h_a: Vec<ConvLayer>,
    h_s: Vec<ConvLayer>,
    g_s: Vec<ConvLayer>,
    g_s_gdn: Vec<GdnLayer>,
    gain: Array2<f32>,
    inv_gain: Array2<f32>,
    z_tables: FactorizedTables,
    ckbd: Option<CheckerboardLayers>,
    hash: [u8; 16],
}

/// The checkerboard context model's layers.
#[derive(Clone, Debug)]
struct CheckerboardLayers {
    /// Masked 5x5 convolution `M → 2M` (weights stored pre-masked; re-masked on load).
    ctx: ConvLayer,
    /// `ep.0` restricted to its first `2M` input channels (the hyper part): anchors have
    /// an all-zero context, whose terms would add exact zeros.
    ep0_anchor: ConvLayer,
    /// 1x1 convolutions `ep.0`, `ep.2`, `ep.4` (LeakyReLU between).
    ep: Vec<ConvLayer>,
    /// [`Arch::ChannelCheckerboard`], per channel group: `ep.4` restricted to the group's
    /// outputs (its scales, then its means).
    ep_last: Vec<ConvLayer>,
    /// [`Arch::ChannelCheckerboard`], per channel group: `ctx.weight` restricted to the
    /// group's inputs, `[2M, len, 5, 5]`.
    ctx_in: Vec<Array4<f32>>,
}

/// Checkerboard mask of the context convolution: tap `(ky, kx)` is used when
/// `ky + kx` is odd (exactly the anchors around a non-anchor position).
pub fn context_mask_tap(ky: usize, kx: usize) -> bool {
    (ky + kx) % 2 == 1
}

/// The masked 5x5 context convolution (stride 1, zero padding 2) evaluated only at the
/// non-anchor positions, with only the unmasked taps: `[2M, 1, P]` in the order of
/// [`gather`]`(_, false)`. See [`context_between`].
fn context_at_nonanchors(ctx: &ConvLayer, ya: ArrayView3<'_, f32>) -> Array3<f32> {
    context_between(ctx.weight.view(), Some(&ctx.bias), ya, true, false)
}

/// A 5x5 convolution (stride 1, zero padding 2) of an input that is zero except at the
/// anchors (`from_anchors`) or the non-anchors, evaluated only at the anchors
/// (`to_anchors`) or the non-anchors: `[O, 1, P]` in the order of [`gather`]`(_,
/// to_anchors)`. Only the taps that reach the input's positions are visited (`ky + kx`
/// odd between the two kinds, even within one), so this is the full convolution at half
/// the positions and half the taps. Deterministic: each output is accumulated over
/// `(in_channel, ky, kx)` in a fixed order with separate multiplies and adds, then the
/// bias (if any) is added; work is split over output channels only. The input is split
/// into even and odd padded columns so that the outputs of a row (every other column) read
/// contiguous memory.
fn context_between(
    weight: ndarray::ArrayView4<'_, f32>,
    bias: Option<&[f32]>,
    x: ArrayView3<'_, f32>,
    from_anchors: bool,
    to_anchors: bool,
) -> Array3<f32> {
    use rayon::prelude::*;
    let (cin, h, w) = x.dim();
    let cout = weight.dim().0;
    let (hp, wp) = (h + 4, w + 4);
    let half = [wp.div_ceil(2), wp / 2];
    let mut phases = [
        vec![0f32; cin * hp * half[0]],
        vec![0f32; cin * hp * half[1]],
    ];
    for ((ic, r, c), &v) in x.indexed_iter() {
        if is_anchor(r, c) != from_anchors {
            continue;
        }
        let (pr, pc) = (r + 2, c + 2);
        let ph = pc % 2;
        phases[ph][(ic * hp + pr) * half[ph] + pc / 2] = v;
    }
    // (row, first output column, count, start in the output).
    let out_parity = usize::from(!to_anchors);
    let mut rows = Vec::with_capacity(h);
    let mut total = 0;
    for r in 0..h {
        let c0 = (r + out_parity) % 2;
        let n = if w > c0 { (w - c0).div_ceil(2) } else { 0 };
        rows.push((r, c0, n, total));
        total += n;
    }
    let tap_parity = usize::from(from_anchors != to_anchors);
    let taps: Vec<(usize, usize)> = (0..5)
        .flat_map(|ky| (0..5).map(move |kx| (ky, kx)))
        .filter(|&(ky, kx)| (ky + kx) % 2 == tap_parity)
        .collect();
    let planes: Vec<Vec<f32>> = (0..cout)
        .into_par_iter()
        .map(|o| {
            let mut acc = vec![0f32; total];
            for ic in 0..cin {
                for &(ky, kx) in &taps {
                    let wv = weight[[o, ic, ky, kx]];
                    for &(r, c0, n, start) in &rows {
                        let ph = (c0 + kx) % 2;
                        let from = (ic * hp + r + ky) * half[ph] + (c0 + kx) / 2;
                        let src = &phases[ph][from..from + n];
                        for (a, &x) in acc[start..start + n].iter_mut().zip(src) {
                            // Separate multiply and add (no FMA contraction in Rust).
                            *a += wv * x;
                        }
                    }
                }
            }
            if let Some(b) = bias {
                for a in &mut acc {
                    *a += b[o];
                }
            }
            acc
        })
        .collect();
    Array3::from_shape_fn((cout, 1, total), |(o, _, i)| planes[o][i])
}

/// `a: [C, H, W]` at the anchor (or non-anchor) positions, as `[C, 1, P]` in raster order.
fn gather(a: ArrayView3<'_, f32>, anchors: bool) -> Array3<f32> {
    let (c, h, w) = a.dim();
    let pos: Vec<(usize, usize)> = (0..h)
        .flat_map(|r| (0..w).map(move |q| (r, q)))
        .filter(|&(r, q)| is_anchor(r, q) == anchors)
        .collect();
    Array3::from_shape_fn((c, 1, pos.len()), |(ch, _, i)| a[[ch, pos[i].0, pos[i].1]])
}

/// Inverse of [`gather`]: `[C, 1, P]` values placed on a zero `[C, H, W]` grid.
fn scatter(v: &Array3<f32>, h: usize, w: usize, anchors: bool) -> Array3<f32> {
    let c = v.dim().0;
    let mut out = Array3::<f32>::zeros((c, h, w));
    let mut i = 0;
    for r in 0..h {
        for q in 0..w {
            if is_anchor(r, q) == anchors {
                for ch in 0..c {
                    out[[ch, r, q]] = v[[ch, 0, i]];
                }
                i += 1;
            }
        }
    }
    out
}

impl MeanScaleHyperprior {
    /// Loads a weights file (as written by the training command's export).
    ///
    /// # Errors
    /// [`Error::Codec`] / [`Error::Unsupported`] when the file is not a valid weights file
    /// of this architecture (missing tensors, wrong shapes, bad tables).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let w = WeightFile::parse(bytes)?;
        let cfg = HyperpriorConfig::from_weights(&w)?;
        let (n, m, q) = (cfg.n, cfg.m, cfg.levels());
        let m32 = m * 3 / 2;
        let g_a = vec![
            ConvLayer::load(&w, "g_a.0", 3, n, 5, 2, false)?,
            ConvLayer::load(&w, "g_a.2", n, n, 5, 2, false)?,
            ConvLayer::load(&w, "g_a.4", n, n, 5, 2, false)?,
            ConvLayer::load(&w, "g_a.6", n, m, 5, 2, false)?,
        ];
        let g_a_gdn = vec![
            GdnLayer::load(&w, "g_a.1", n, false)?,
            GdnLayer::load(&w, "g_a.3", n, false)?,
            GdnLayer::load(&w, "g_a.5", n, false)?,
        ];
        let h_a = vec![
            ConvLayer::load(&w, "h_a.0", m, n, 3, 1, false)?,
            ConvLayer::load(&w, "h_a.2", n, n, 5, 2, false)?,
            ConvLayer::load(&w, "h_a.4", n, n, 5, 2, false)?,
        ];
        let h_s = vec![
            ConvLayer::load(&w, "h_s.0", n, m, 5, 2, true)?,
            ConvLayer::load(&w, "h_s.2", m, m32, 5, 2, true)?,
            ConvLayer::load(&w, "h_s.4", m32, 2 * m, 3, 1, false)?,
        ];
        let g_s = vec![
            ConvLayer::load(&w, "g_s.0", m, n, 5, 2, true)?,
            ConvLayer::load(&w, "g_s.2", n, n, 5, 2, true)?,
            ConvLayer::load(&w, "g_s.4", n, n, 5, 2, true)?,
            ConvLayer::load(&w, "g_s.6", n, 3, 5, 2, true)?,
        ];
        let g_s_gdn = vec![
            GdnLayer::load(&w, "g_s.1", n, true)?,
            GdnLayer::load(&w, "g_s.3", n, true)?,
            GdnLayer::load(&w, "g_s.5", n, true)?,
        ];
        let gain = w.array2("gain.y", [q, m])?;
        let inv_gain = w.array2("gain.y_inv", [q, m])?;
        let z_tables = FactorizedTables::load(&w, n)?;
        let ckbd = match cfg.arch {
            Arch::MeanScale => None,
            arch => {
                let (e1, e2) = ep_sizes(m);
                let mut ctx = ConvLayer::load(&w, "ctx", m, 2 * m, 5, 1, false)?;
                if arch == Arch::Checkerboard {
                    for ((_, _, ky, kx), v) in ctx.weight.indexed_iter_mut() {
                        if !context_mask_tap(ky, kx) {
                            *v = 0.0;
                        }
                    }
                }
                let ep = vec![
                    ConvLayer::load(&w, "ep.0", 4 * m, e1, 1, 1, false)?,
                    ConvLayer::load(&w, "ep.2", e1, e2, 1, 1, false)?,
                    ConvLayer::load(&w, "ep.4", e2, 2 * m, 1, 1, false)?,
                ];
                let mut ep0_anchor = ep[0].clone();
                ep0_anchor.weight = ep[0].weight.slice(s![.., 0..2 * m, .., ..]).to_owned();
                let (mut ep_last, mut ctx_in) = (vec![], vec![]);
                if arch == Arch::ChannelCheckerboard {
                    for (start, len) in channel_groups(m) {
                        let rows: Vec<usize> = (start..start + len)
                            .chain(m + start..m + start + len)
                            .collect();
                        ep_last.push(ConvLayer {
                            weight: ep[2].weight.select(Axis(0), &rows),
                            bias: rows.iter().map(|&r| ep[2].bias[r]).collect(),
                            ..ep[2].clone()
                        });
                        ctx_in.push(
                            ctx.weight
                                .slice(s![.., start..start + len, .., ..])
                                .to_owned(),
                        );
                    }
                }
                Some(CheckerboardLayers {
                    ctx,
                    ep0_anchor,
                    ep,
                    ep_last,
                    ctx_in,
                })
            }
        };
        Ok(Self {
            config: cfg,
            g_a,
            g_a_gdn,
            h_a,
            h_s,
            g_s,
            g_s_gdn,
            gain,
            inv_gain,
            z_tables,
            ckbd,
            hash: crate::weights::weights_hash(bytes),
        })
    }

    /// The network sizes and quality levels.
    pub fn config(&self) -> &HyperpriorConfig {
        &self.config
    }

    /// XXH3-128 of the weights file this model was loaded from.
    pub fn weights_hash(&self) -> [u8; 16] {
        self.hash
    }

    /// The integer tables of the factorized prior of `z`.
    pub fn z_tables(&self) -> &FactorizedTables {
        &self.z_tables
    }

    fn check_quality(&self, quality: usize) -> Result<()> {
        if quality >= self.config.levels() {
            return Err(Error::InvalidArgument(format!(
                "quality level {quality} (model has {})",
                self.config.levels()
            )));
        }
        Ok(())
    }

    /// Analysis transform: `y = g_a(x) * gain[quality]` for `x: [3, H, W]` in `[0, 1]`
    /// (H, W multiples of [`Y_STRIDE`]).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad quality index or input shape.
    pub fn analysis(&self, x: ArrayView3<'_, f32>, quality: usize) -> Result<Array3<f32>> {
        self.check_quality(quality)?;
        let (c, h, w) = x.dim();
        if c != 3 || h == 0 || w == 0 || h % Y_STRIDE != 0 || w % Y_STRIDE != 0 {
            return Err(Error::InvalidArgument(format!(
                "analysis input {c}x{h}x{w} (need 3 x multiples of {Y_STRIDE})"
            )));
        }
        let mut a = self.g_a[0].forward(x, Mode::Fast);
        for i in 0..3 {
            let g = &self.g_a_gdn[i];
            a = gdn(a.view(), &g.beta, g.gamma.view(), false, Mode::Fast);
            a = self.g_a[i + 1].forward(a.view(), Mode::Fast);
        }
        scale_channels(&mut a, self.gain.row(quality).as_slice().unwrap_or(&[]));
        Ok(a)
    }

    /// Hyper-analysis: `z = h_a(y)`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a wrong channel count or size.
    pub fn hyper_analysis(&self, y: ArrayView3<'_, f32>) -> Result<Array3<f32>> {
        let (c, h, w) = y.dim();
        if c != self.config.m || h % 4 != 0 || w % 4 != 0 || h == 0 || w == 0 {
            return Err(Error::InvalidArgument(format!(
                "hyper-analysis input {c}x{h}x{w}"
            )));
        }
        let mut a = self.h_a[0].forward(y, Mode::Fast);
        leaky_relu_inplace(a.view_mut(), LEAKY_SLOPE);
        a = self.h_a[1].forward(a.view(), Mode::Fast);
        leaky_relu_inplace(a.view_mut(), LEAKY_SLOPE);
        Ok(self.h_a[2].forward(a.view(), Mode::Fast))
    }

    /// Deterministic hyper-synthesis: `(means, scales)` of `y` from the quantized `ẑ`
    /// (integers stored as f32). Same bits on every machine and thread count. Scales are
    /// returned as computed (not yet bounded by [`SCALE_BOUND`]).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a wrong channel count.
    pub fn hyper_synthesis(
        &self,
        z_hat: ArrayView3<'_, f32>,
    ) -> Result<(Array3<f32>, Array3<f32>)> {
        let (c, h, w) = z_hat.dim();
        if c != self.config.n || h == 0 || w == 0 {
            return Err(Error::InvalidArgument(format!(
                "hyper-synthesis input {c}x{h}x{w}"
            )));
        }
        let p = self.hyper_params(z_hat)?;
        Ok(split_params(&p, self.config.m))
    }

    /// Deterministic `h_s(ẑ)`: `[2M, H/16, W/16]` (for [`Arch::MeanScale`] channels `0..M`
    /// are the scales and `M..2M` the means; for [`Arch::Checkerboard`] the input of the
    /// entropy-parameter network).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a wrong channel count.
    pub fn hyper_params(&self, z_hat: ArrayView3<'_, f32>) -> Result<Array3<f32>> {
        let (c, h, w) = z_hat.dim();
        if c != self.config.n || h == 0 || w == 0 {
            return Err(Error::InvalidArgument(format!(
                "hyper-synthesis input {c}x{h}x{w}"
            )));
        }
        let d = Mode::Deterministic;
        let mut a = self.h_s[0].forward(z_hat, d);
        leaky_relu_inplace(a.view_mut(), LEAKY_SLOPE);
        a = self.h_s[1].forward(a.view(), d);
        leaky_relu_inplace(a.view_mut(), LEAKY_SLOPE);
        Ok(self.h_s[2].forward(a.view(), d))
    }

    /// The context layers, for a model of architecture `arch`.
    fn ckbd(&self, arch: Arch) -> Result<&CheckerboardLayers> {
        match &self.ckbd {
            Some(l) if self.config.arch == arch => Ok(l),
            _ => Err(Error::InvalidArgument(format!(
                "this pass needs a `{}` model, not `{}`",
                arch.id(),
                self.config.arch.id()
            ))),
        }
    }

    /// The entropy-parameter network after `ep.0`: LeakyReLU, `ep.2`, LeakyReLU, then
    /// `last` (`ep.4`, or its rows for one channel group).
    fn ep_tail(l: &CheckerboardLayers, mut a: Array3<f32>, last: &ConvLayer) -> Array3<f32> {
        let d = Mode::Deterministic;
        leaky_relu_inplace(a.view_mut(), LEAKY_SLOPE);
        a = l.ep[1].forward(a.view(), d);
        leaky_relu_inplace(a.view_mut(), LEAKY_SLOPE);
        last.forward(a.view(), d)
    }

    /// Checkerboard pass 1 (deterministic): `(means, scales)` of the anchors from the
    /// hyper parameters ([`MeanScaleHyperprior::hyper_params`]). Full-grid arrays whose
    /// non-anchor entries are 0.
    ///
    /// # Errors
    /// Not a checkerboard model, or a wrong shape.
    pub fn anchor_params(&self, hyper: ArrayView3<'_, f32>) -> Result<(Array3<f32>, Array3<f32>)> {
        let l = self.ckbd(Arch::Checkerboard)?;
        let (c, h, w) = hyper.dim();
        if c != 2 * self.config.m {
            return Err(Error::InvalidArgument(format!(
                "hyper parameters have {c} channels"
            )));
        }
        let a = l
            .ep0_anchor
            .forward(gather(hyper, true).view(), Mode::Deterministic);
        let p = scatter(&Self::ep_tail(l, a, &l.ep[2]), h, w, true);
        Ok(split_params(&p, self.config.m))
    }

    /// Checkerboard pass 2 (deterministic): `(means, scales)` of the non-anchors from the
    /// hyper parameters and the decoded anchors `y_hat_anchors` (`ŷ` at anchors, 0
    /// elsewhere — non-anchor values are ignored). Full-grid arrays whose anchor entries
    /// are 0.
    ///
    /// # Errors
    /// Not a checkerboard model, or a wrong shape.
    pub fn nonanchor_params(
        &self,
        hyper: ArrayView3<'_, f32>,
        y_hat_anchors: ArrayView3<'_, f32>,
    ) -> Result<(Array3<f32>, Array3<f32>)> {
        let l = self.ckbd(Arch::Checkerboard)?;
        let m = self.config.m;
        let (c, h, w) = hyper.dim();
        if c != 2 * m || y_hat_anchors.dim() != (m, h, w) {
            return Err(Error::InvalidArgument(format!(
                "hyper parameters {:?} / anchors {:?}",
                hyper.dim(),
                y_hat_anchors.dim()
            )));
        }
        let mut ya = y_hat_anchors.to_owned();
        for ((_, r, q), v) in ya.indexed_iter_mut() {
            if !is_anchor(r, q) {
                *v = 0.0;
            }
        }
        let d = Mode::Deterministic;
        let hg = gather(hyper, false);
        if hg.dim().2 == 0 {
            return Ok((Array3::zeros((m, h, w)), Array3::zeros((m, h, w))));
        }
        let cg = context_at_nonanchors(&l.ctx, ya.view());
        let input = ndarray::concatenate(Axis(0), &[hg.view(), cg.view()])
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let a = l.ep[0].forward(input.view(), d);
        let p = scatter(&Self::ep_tail(l, a, &l.ep[2]), h, w, false);
        Ok(split_params(&p, m))
    }

    /// Runs a context model's steps ([`context_steps`]) in decoding order. For each step
    /// it computes the `(means, scales)` of the step's channels (`[len, H, W]` arrays,
    /// meaningful at the step's positions, 0 elsewhere) from `hyper`
    /// ([`MeanScaleHyperprior::hyper_params`]) and what is already in `y_hat`, then calls
    /// `code(step, means, scales, y_hat)`, which must write `ŷ` at the step's channels
    /// and positions (the encoder quantises, the decoder reads its stream). Later steps
    /// see what it wrote. Deterministic: the same bits on every machine and thread count.
    ///
    /// # Errors
    /// A mean-scale model or wrong shapes; any error of `code` stops the run.
    pub fn run_context_steps(
        &self,
        hyper: ArrayView3<'_, f32>,
        y_hat: &mut Array3<f32>,
        mut code: impl FnMut(ContextStep, &Array3<f32>, &Array3<f32>, &mut Array3<f32>) -> Result<()>,
    ) -> Result<()> {
        let m = self.config.m;
        let (c, h, w) = hyper.dim();
        if c != 2 * m || y_hat.dim() != (m, h, w) {
            return Err(Error::InvalidArgument(format!(
                "hyper parameters {:?} / latents {:?}",
                hyper.dim(),
                y_hat.dim()
            )));
        }
        let steps = context_steps(self.config.arch, m);
        match self.config.arch {
            Arch::MeanScale => {
                return Err(Error::InvalidArgument(format!(
                    "a `{}` model has no context steps",
                    self.config.arch.id()
                )));
            }
            Arch::Checkerboard => {
                let (ma, sa) = self.anchor_params(hyper)?;
                code(steps[0], &ma, &sa, y_hat)?;
                let (mn, sn) = self.nonanchor_params(hyper, y_hat.view())?;
                code(steps[1], &mn, &sn, y_hat)?;
            }
            Arch::ChannelCheckerboard => {
                let l = self.ckbd(Arch::ChannelCheckerboard)?;
                let groups = channel_groups(m);
                // The context of everything decoded so far (bias not included), at the
                // anchors ([0]) and at the non-anchors ([1]), in `gather` order.
                let count = |a: bool| {
                    (0..h)
                        .flat_map(|r| (0..w).map(move |q| (r, q)))
                        .filter(|&(r, q)| is_anchor(r, q) == a)
                        .count()
                };
                let mut ctx = [
                    Array3::<f32>::zeros((2 * m, 1, count(true))),
                    Array3::<f32>::zeros((2 * m, 1, count(false))),
                ];
                for (i, st) in steps.iter().enumerate() {
                    let g = groups
                        .iter()
                        .position(|&(s0, _)| s0 == st.start)
                        .unwrap_or(0);
                    let at = usize::from(!st.anchors);
                    let (means, scales) = self.group_params(l, hyper, &ctx[at], *st, g)?;
                    code(*st, &means, &scales, y_hat)?;
                    // This step's share of the context, where a later step needs it.
                    let x = y_hat.slice(s![st.start..st.start + st.len, .., ..]);
                    for to_anchors in [true, false] {
                        if steps[i + 1..].iter().any(|s| s.anchors == to_anchors) {
                            let add = context_between(
                                l.ctx_in[g].view(),
                                None,
                                x,
                                st.anchors,
                                to_anchors,
                            );
                            ctx[usize::from(!to_anchors)] += &add;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// What the encoder of a context model computes, without the entropy coding: the
    /// `(means, scales, ŷ)` of every latent of `y`, each step quantising `ŷ = ⌊y - μ⌉ + μ`
    /// with the parameters that the earlier steps' `ŷ` give (see
    /// [`MeanScaleHyperprior::run_context_steps`]). Full `[M, H, W]` arrays.
    ///
    /// # Errors
    /// As [`MeanScaleHyperprior::run_context_steps`].
    pub fn context_quantize(
        &self,
        hyper: ArrayView3<'_, f32>,
        y: ArrayView3<'_, f32>,
    ) -> Result<(Array3<f32>, Array3<f32>, Array3<f32>)> {
        let mut means = Array3::<f32>::zeros(y.dim());
        let mut scales = Array3::<f32>::zeros(y.dim());
        let mut y_hat = Array3::<f32>::zeros(y.dim());
        self.run_context_steps(hyper, &mut y_hat, |st, mu, sc, yh| {
            for ((c, r, q), &m) in mu.indexed_iter() {
                if is_anchor(r, q) == st.anchors {
                    let ch = st.start + c;
                    means[[ch, r, q]] = m;
                    scales[[ch, r, q]] = sc[[c, r, q]];
                    yh[[ch, r, q]] = (y[[ch, r, q]] - m).round() + m;
                }
            }
            Ok(())
        })?;
        Ok((means, scales, y_hat))
    }

    /// `(means, scales)` `[len, H, W]` of one [`Arch::ChannelCheckerboard`] step (group
    /// `g`) from the hyper parameters and the accumulated context at the step's positions
    /// (`[2M, 1, P]`, [`gather`] order).
    fn group_params(
        &self,
        l: &CheckerboardLayers,
        hyper: ArrayView3<'_, f32>,
        ctx: &Array3<f32>,
        st: ContextStep,
        g: usize,
    ) -> Result<(Array3<f32>, Array3<f32>)> {
        let (_, h, w) = hyper.dim();
        let hg = gather(hyper, st.anchors);
        if hg.dim().2 == 0 {
            let z = Array3::zeros((st.len, h, w));
            return Ok((z.clone(), z));
        }
        let mut cg = ctx.clone();
        if !st.anchors {
            // The context convolution's bias belongs to the non-anchor steps (as in the
            // checkerboard model, whose anchors see an all-zero context).
            for (mut plane, &b) in cg.outer_iter_mut().zip(&l.ctx.bias) {
                plane.mapv_inplace(|v| v + b);
            }
        }
        let input = ndarray::concatenate(Axis(0), &[hg.view(), cg.view()])
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let d = Mode::Deterministic;
        let a = l.ep[0].forward(input.view(), d);
        let p = scatter(&Self::ep_tail(l, a, &l.ep_last[g]), h, w, st.anchors);
        Ok(split_params(&p, st.len))
    }

    /// Synthesis: `x̂ = g_s(ŷ * inv_gain[quality])`, not clamped.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad quality index or channel count.
    pub fn synthesis(&self, y_hat: ArrayView3<'_, f32>, quality: usize) -> Result<Array3<f32>> {
        self.check_quality(quality)?;
        if y_hat.dim().0 != self.config.m {
            return Err(Error::InvalidArgument(format!(
                "synthesis input has {} channels",
                y_hat.dim().0
            )));
        }
        let mut a = y_hat.to_owned();
        scale_channels(&mut a, self.inv_gain.row(quality).as_slice().unwrap_or(&[]));
        for i in 0..3 {
            a = self.g_s[i].forward(a.view(), Mode::Fast);
            let g = &self.g_s_gdn[i];
            a = gdn(a.view(), &g.beta, g.gamma.view(), true, Mode::Fast);
        }
        Ok(self.g_s[3].forward(a.view(), Mode::Fast))
    }
}

/// `(means, scales)` from `[2M, H, W]` parameters (scales first, CompressAI's order).
fn split_params(p: &Array3<f32>, m: usize) -> (Array3<f32>, Array3<f32>) {
    let scales = p.slice(s![0..m, .., ..]).to_owned();
    let means = p.slice(s![m..2 * m, .., ..]).to_owned();
    (means, scales)
}

/// Multiplies channel `c` by `g[c]` (no-op when `g` is empty).
fn scale_channels(a: &mut Array3<f32>, g: &[f32]) {
    if g.is_empty() {
        return;
    }
    for (mut plane, &gv) in a.axis_iter_mut(Axis(0)).zip(g) {
        plane.mapv_inplace(|v| v * gv);
    }
}

/// A complete weights file with random initialisation (PyTorch's default uniform
/// `±1/sqrt(fan_in)` for convolutions, GDN `beta = 1`, `gamma = 0.1 I`, unit gains and a
/// discretised Laplace-like prior for `z`). For tests and for exercising the codec
/// pipeline before trained weights exist; the output is a pure function of `seed`.
///
/// # Errors
/// [`Error::InvalidArgument`] for an invalid config.
pub fn random_weights(cfg: &HyperpriorConfig, seed: u64) -> Result<Vec<u8>> {
    use crate::weights::{OutTensor, write_safetensors};
    use rand::{Rng, SeedableRng};
    cfg.validate()?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (n, m, q) = (cfg.n, cfg.m, cfg.levels());
    let m32 = m * 3 / 2;
    let mut t: Vec<(String, OutTensor)> = Vec::new();
    let mut conv = |t: &mut Vec<(String, OutTensor)>,
                    name: &str,
                    cin: usize,
                    cout: usize,
                    k: usize,
                    transposed: bool| {
        let fan_in = (if transposed { cout } else { cin } * k * k) as f32;
        let b = 1.0 / fan_in.sqrt();
        let shape = if transposed {
            vec![cin, cout, k, k]
        } else {
            vec![cout, cin, k, k]
        };
        let w: Vec<f32> = (0..cin * cout * k * k)
            .map(|_| rng.random_range(-b..b))
            .collect();
        let bias: Vec<f32> = (0..cout).map(|_| rng.random_range(-b..b)).collect();
        t.push((format!("{name}.weight"), OutTensor::F32(shape, w)));
        t.push((format!("{name}.bias"), OutTensor::F32(vec![cout], bias)));
    };
    conv(&mut t, "g_a.0", 3, n, 5, false);
    conv(&mut t, "g_a.2", n, n, 5, false);
    conv(&mut t, "g_a.4", n, n, 5, false);
    conv(&mut t, "g_a.6", n, m, 5, false);
    conv(&mut t, "h_a.0", m, n, 3, false);
    conv(&mut t, "h_a.2", n, n, 5, false);
    conv(&mut t, "h_a.4", n, n, 5, false);
    conv(&mut t, "h_s.0", n, m, 5, true);
    conv(&mut t, "h_s.2", m, m32, 5, true);
    conv(&mut t, "h_s.4", m32, 2 * m, 3, false);
    conv(&mut t, "g_s.0", m, n, 5, true);
    conv(&mut t, "g_s.2", n, n, 5, true);
    conv(&mut t, "g_s.4", n, n, 5, true);
    conv(&mut t, "g_s.6", n, 3, 5, true);
    if cfg.arch.has_context() {
        let (e1, e2) = ep_sizes(m);
        conv(&mut t, "ctx", m, 2 * m, 5, false);
        conv(&mut t, "ep.0", 4 * m, e1, 1, false);
        conv(&mut t, "ep.2", e1, e2, 1, false);
        conv(&mut t, "ep.4", e2, 2 * m, 1, false);
        // Store the checkerboard's context weights masked, as the export does.
        if cfg.arch == Arch::Checkerboard
            && let Some((_, OutTensor::F32(_, w))) = t.iter_mut().find(|(k, _)| k == "ctx.weight")
        {
            for (i, v) in w.iter_mut().enumerate() {
                if !context_mask_tap((i / 5) % 5, i % 5) {
                    *v = 0.0;
                }
            }
        }
    }
    for name in ["g_a.1", "g_a.3", "g_a.5", "g_s.1", "g_s.3", "g_s.5"] {
        let gamma: Vec<f32> = (0..n * n)
            .map(|i| if i / n == i % n { 0.1 } else { 0.0 })
            .collect();
        t.push((
            format!("{name}.beta"),
            OutTensor::F32(vec![n], vec![1.0; n]),
        ));
        t.push((format!("{name}.gamma"), OutTensor::F32(vec![n, n], gamma)));
    }
    t.push((
        "gain.y".into(),
        OutTensor::F32(vec![q, m], vec![1.0; q * m]),
    ));
    t.push((
        "gain.y_inv".into(),
        OutTensor::F32(vec![q, m], vec![1.0; q * m]),
    ));
    // z prior: symbols -16..=16 with weights 2^(12 - |k|/2) + 1, normalised to 1 << 16.
    let raw: Vec<u64> = (-16i32..=16)
        .map(|k| (1u64 << (12 - (k.unsigned_abs() / 2))) + 1)
        .collect();
    let freqs = normalize_freqs(&raw, Z_TABLE_TOTAL);
    let len = freqs.len();
    let mut flat = Vec::with_capacity(n * len);
    for _ in 0..n {
        flat.extend(freqs.iter().map(|&f| f as i32));
    }
    t.push(("prior_z.freq".into(), OutTensor::I32(vec![n, len], flat)));
    t.push((
        "prior_z.offset".into(),
        OutTensor::I32(vec![n], vec![-16; n]),
    ));
    t.push((
        "prior_z.len".into(),
        OutTensor::I32(vec![n], vec![len as i32; n]),
    ));
    write_safetensors(&t, cfg.to_metadata())
}

/// Integer normalisation of positive weights to frequencies `>= 1` summing to `total`
/// (largest-remainder free, prefix-sum flooring; pure integer arithmetic).
///
/// # Panics
/// If `w` is empty or longer than `total`.
pub fn normalize_freqs(w: &[u64], total: u32) -> Vec<u32> {
    assert!(!w.is_empty() && w.len() <= total as usize);
    let n = w.len() as u64;
    let spare = u64::from(total) - n;
    let sum: u128 = w.iter().map(|&v| u128::from(v.max(1))).sum();
    let mut out = Vec::with_capacity(w.len());
    let mut cum: u128 = 0;
    let mut prev: u64 = 0;
    for &v in w {
        cum += u128::from(v.max(1));
        let q = (cum * u128::from(spare) / sum) as u64;
        out.push((q - prev + 1) as u32);
        prev = q;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The half-taps context kernel equals the full convolution (bias included) gathered
    /// at its output positions, for an input that is zero off its kind: the checkerboard's
    /// masked convolution from the anchors to the non-anchors ([`context_at_nonanchors`]),
    /// and the channel-group model's unmasked one between every pair of position kinds.
    #[test]
    fn context_kernels_match_the_full_convolution() {
        for arch in [Arch::Checkerboard, Arch::ChannelCheckerboard] {
            let cfg = HyperpriorConfig {
                n: 8,
                m: 12,
                lambdas: vec![0.01],
                arch,
            };
            let model = MeanScaleHyperprior::from_bytes(&random_weights(&cfg, 9).unwrap()).unwrap();
            let l = model.ckbd.as_ref().unwrap();
            let pairs: &[(bool, bool)] = if arch == Arch::Checkerboard {
                &[(true, false)]
            } else {
                &[(true, true), (true, false), (false, true), (false, false)]
            };
            for (h, w) in [(8, 12), (5, 7), (1, 1), (1, 2), (2, 1), (3, 4)] {
                for &(from, to) in pairs {
                    let x = Array3::from_shape_fn((12, h, w), |(c, r, q)| {
                        if is_anchor(r, q) == from {
                            ((c * 5 + r * 3 + q * 7) % 11) as f32 - 5.0
                        } else {
                            0.0
                        }
                    });
                    let fast = if arch == Arch::Checkerboard {
                        context_at_nonanchors(&l.ctx, x.view())
                    } else {
                        context_between(l.ctx.weight.view(), Some(&l.ctx.bias), x.view(), from, to)
                    };
                    let want = gather(l.ctx.forward(x.view(), Mode::Deterministic).view(), to);
                    assert_eq!(fast.dim(), want.dim());
                    for (a, b) in fast.iter().zip(want.iter()) {
                        assert!(
                            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                            "{arch:?} {h}x{w} {from}->{to}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }
}
