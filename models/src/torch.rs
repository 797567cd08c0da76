//! The mean-scale hyperprior in `tch` (libtorch): training forward pass with additive-noise
//! / straight-through quantization, rate estimates, checkpoints and export to the weights
//! file the CPU backend ([`crate::hyperprior::MeanScaleHyperprior`]) loads.
//!
//! Variable names match the CPU backend's safetensors keys (`g_a.0.weight`, ...), except
//! that GDN layers hold reparametrised `beta_p` / `gamma_p` (effective `beta = beta_p² +
//! 1e-6`, `gamma = gamma_p²`), and the factorized prior of `z` holds its density MLP
//! (Ballé et al. 2018, appendix 6.1) which the export turns into integer tables.

use crate::hyperprior::{
    Arch, HyperpriorConfig, SCALE_BOUND, Z_TABLE_TOTAL, channel_groups, context_mask_tap,
    context_steps, ep_sizes, normalize_freqs,
};
use crate::weights::{OutTensor, write_safetensors};
use lcodec_core::{Error, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

fn terr(e: tch::TchError) -> Error {
    Error::codec("torch", e.to_string())
}

/// GDN layer with non-negative reparametrisation.
#[derive(Debug)]
struct Gdn {
    beta_p: Tensor,
    gamma_p: Tensor,
    inverse: bool,
    c: i64,
}

/// Offset keeping `beta` away from zero.
const BETA_EPS: f64 = 1e-6;

impl Gdn {
    fn new(p: &nn::Path<'_>, c: i64, inverse: bool) -> Self {
        let beta_p = p.var_copy("beta_p", &Tensor::ones([c], (Kind::Float, Device::Cpu)));
        // Small non-zero off-diagonal so Adam can move them (d(p²)/dp = 0 at p = 0).
        let g = Tensor::eye(c, (Kind::Float, Device::Cpu)) * (0.1f64.sqrt() - 2f64.powi(-18))
            + 2f64.powi(-18);
        let gamma_p = p.var_copy("gamma_p", &g);
        Self {
            beta_p,
            gamma_p,
            inverse,
            c,
        }
    }
    fn beta(&self) -> Tensor {
        self.beta_p.square() + BETA_EPS
    }
    fn gamma(&self) -> Tensor {
        self.gamma_p.square()
    }
}

impl Module for Gdn {
    fn forward(&self, x: &Tensor) -> Tensor {
        let g = self.gamma().view([self.c, self.c, 1, 1]);
        let norm = x
            .square()
            .conv2d(&g, Some(&self.beta()), [1, 1], [0, 0], [1, 1], 1);
        if self.inverse {
            x * norm.sqrt()
        } else {
            x * norm.rsqrt()
        }
    }
}

#[derive(Debug)]
enum Block {
    Conv(nn::Conv2D),
    Deconv(nn::ConvTranspose2D),
    Gdn(Gdn),
    LeakyRelu,
}

impl Block {
    fn conv(p: &nn::Path<'_>, idx: usize, cin: i64, cout: i64, k: i64, stride: i64) -> Self {
        let cfg = nn::ConvConfig {
            stride,
            padding: k / 2,
            ..Default::default()
        };
        Block::Conv(nn::conv2d(p / idx.to_string(), cin, cout, k, cfg))
    }
    fn deconv(p: &nn::Path<'_>, idx: usize, cin: i64, cout: i64, k: i64, stride: i64) -> Self {
        let cfg = nn::ConvTransposeConfig {
            stride,
            padding: k / 2,
            output_padding: stride - 1,
            ..Default::default()
        };
        Block::Deconv(nn::conv_transpose2d(p / idx.to_string(), cin, cout, k, cfg))
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            Block::Conv(c) => c.forward(x),
            Block::Deconv(c) => c.forward(x),
            Block::Gdn(g) => g.forward(x),
            Block::LeakyRelu => x.leaky_relu(),
        }
    }
}

fn run(blocks: &[Block], x: &Tensor) -> Tensor {
    let mut a = blocks[0].forward(x);
    for b in &blocks[1..] {
        a = b.forward(&a);
    }
    a
}

/// Learned factorized density of `z` (one univariate CDF per channel), Ballé et al.,
/// "Variational image compression with a scale hyperprior", ICLR 2018, appendix 6.1, with
/// CompressAI's filters (3, 3, 3, 3) and init scale 10.
#[derive(Debug)]
struct Factorized {
    matrices: Vec<Tensor>,
    biases: Vec<Tensor>,
    factors: Vec<Tensor>,
    c: i64,
}

impl Factorized {
    fn new(p: &nn::Path<'_>, c: i64) -> Self {
        let filters = [1i64, 3, 3, 3, 3, 1];
        let scale = 10f64.powf(1.0 / (filters.len() - 1) as f64);
        let (mut matrices, mut biases, mut factors) = (vec![], vec![], vec![]);
        for i in 0..filters.len() - 1 {
            let init = (1.0 / scale / filters[i + 1] as f64).exp_m1().ln();
            let m = Tensor::full(
                [c, filters[i + 1], filters[i]],
                init,
                (Kind::Float, Device::Cpu),
            );
            matrices.push(p.var_copy(&format!("matrix{i}"), &m));
            let b = Tensor::rand([c, filters[i + 1], 1], (Kind::Float, Device::Cpu)) - 0.5;
            biases.push(p.var_copy(&format!("bias{i}"), &b));
            if i < filters.len() - 2 {
                let f = Tensor::zeros([c, filters[i + 1], 1], (Kind::Float, Device::Cpu));
                factors.push(p.var_copy(&format!("factor{i}"), &f));
            }
        }
        Self {
            matrices,
            biases,
            factors,
            c,
        }
    }

    /// Logits of the cumulative for `x: [C, 1, n]`.
    fn logits_cumulative(&self, x: &Tensor) -> Tensor {
        let mut l = x.shallow_clone();
        for i in 0..self.matrices.len() {
            l = self.matrices[i].softplus().matmul(&l) + &self.biases[i];
            if i < self.factors.len() {
                l = &l + self.factors[i].tanh() * l.tanh();
            }
        }
        l
    }

    /// Likelihood of each (integer or noisy) value of `z: [B, C, H, W]`.
    fn likelihood(&self, z: &Tensor) -> Tensor {
        let sz = z.size();
        let v = z.permute([1, 0, 2, 3]).reshape([self.c, 1, -1]);
        let lower = self.logits_cumulative(&(&v - 0.5));
        let upper = self.logits_cumulative(&(&v + 0.5));
        // Evaluate in the tail where the sigmoid is accurate (sign trick).
        let sign = -(&lower + &upper).sign().detach();
        let lik = ((&sign * &upper).sigmoid() - (&sign * &lower).sigmoid()).abs();
        lik.reshape([sz[1], sz[0], sz[2], sz[3]])
            .permute([1, 0, 2, 3])
            .clamp_min(1e-9)
    }
}

/// Straight-through rounding: forward `round(x)`, gradient 1.
fn round_ste(x: &Tensor) -> Tensor {
    x + (x.round() - x).detach()
}

/// Likelihood of `v = y - mean` under a Gaussian of `scale` integrated over `[v-½, v+½]`.
fn gaussian_likelihood(v: &Tensor, scale: &Tensor) -> Tensor {
    let a = v.abs();
    let s = scale;
    let c = -std::f64::consts::FRAC_1_SQRT_2;
    let up: Tensor = (-&a + 0.5) / s * c;
    let lo: Tensor = (-&a - 0.5) / s * c;
    let upper = up.erfc() * 0.5;
    let lower = lo.erfc() * 0.5;
    (upper - lower).clamp_min(1e-9)
}

/// Lower-bounds the scale with a straight-through gradient (CompressAI's `LowerBound`
/// passes the gradient where it pushes the value up; this passes it both ways, which is
/// harmless since the bounded value is used).
fn bound_scale(s: &Tensor) -> Tensor {
    let a = s.abs();
    &a + (a.clamp_min(f64::from(SCALE_BOUND)) - &a).detach()
}

/// Outputs of one forward pass.
pub struct Forward {
    /// Reconstruction `[B, 3, H, W]` (unclamped).
    pub x_hat: Tensor,
    /// Estimated bits per pixel per sample `[B]`.
    pub bpp: Tensor,
    /// Mean squared error per sample `[B]` (pixel range `[0, 1]`).
    pub mse: Tensor,
}

/// The mean-scale hyperprior with gains, in tch.
pub struct TchHyperprior {
    /// All trainable variables (names as in the CPU weights, see the module doc).
    pub vs: nn::VarStore,
    /// Sizes and quality levels.
    pub cfg: HyperpriorConfig,
    g_a: Vec<Block>,
    h_a: Vec<Block>,
    h_s: Vec<Block>,
    g_s: Vec<Block>,
    gain: Tensor,
    inv_gain: Tensor,
    prior: Factorized,
    ckbd: Option<TchCheckerboard>,
}

/// The checkerboard context model (see [`Arch::Checkerboard`]).
struct TchCheckerboard {
    /// Context convolution 5x5 `M → 2M`; its weight is multiplied by `mask` in use.
    ctx: nn::Conv2D,
    /// `[1, 1, 5, 5]` checkerboard mask (1 where `ky + kx` is odd).
    mask: Tensor,
    /// Entropy-parameter network: 1x1 convolutions with LeakyReLU between.
    ep: Vec<Block>,
}

/// `[1, 1, h, w]` float mask, 1 at checkerboard anchors (`(row + col)` even).
fn anchor_mask(h: i64, w: i64, dev: Device) -> Tensor {
    let r = Tensor::arange(h, (Kind::Int64, dev)).view([h, 1]);
    let c = Tensor::arange(w, (Kind::Int64, dev)).view([1, w]);
    ((r + c).remainder(2).eq(0))
        .to_kind(Kind::Float)
        .view([1, 1, h, w])
}

impl TchHyperprior {
    /// Builds a freshly initialised network on `device` (initialisation uses torch's RNG:
    /// call `tch::manual_seed` first for reproducibility).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad config.
    pub fn new(cfg: HyperpriorConfig, device: Device) -> Result<Self> {
        cfg.validate()?;
        // Build on the CPU (so var_copy initialisers live there), then move.
        let mut vs = nn::VarStore::new(Device::Cpu);
        let (n, m) = (cfg.n as i64, cfg.m as i64);
        let m32 = m * 3 / 2;
        let root = vs.root();
        let ga = &root / "g_a";
        let g_a = vec![
            Block::conv(&ga, 0, 3, n, 5, 2),
            Block::Gdn(Gdn::new(&(&ga / "1"), n, false)),
            Block::conv(&ga, 2, n, n, 5, 2),
            Block::Gdn(Gdn::new(&(&ga / "3"), n, false)),
            Block::conv(&ga, 4, n, n, 5, 2),
            Block::Gdn(Gdn::new(&(&ga / "5"), n, false)),
            Block::conv(&ga, 6, n, m, 5, 2),
        ];
        let ha = &root / "h_a";
        let h_a = vec![
            Block::conv(&ha, 0, m, n, 3, 1),
            Block::LeakyRelu,
            Block::conv(&ha, 2, n, n, 5, 2),
            Block::LeakyRelu,
            Block::conv(&ha, 4, n, n, 5, 2),
        ];
        let hs = &root / "h_s";
        let h_s = vec![
            Block::deconv(&hs, 0, n, m, 5, 2),
            Block::LeakyRelu,
            Block::deconv(&hs, 2, m, m32, 5, 2),
            Block::LeakyRelu,
            Block::conv(&hs, 4, m32, 2 * m, 3, 1),
        ];
        let gs = &root / "g_s";
        let g_s = vec![
            Block::deconv(&gs, 0, m, n, 5, 2),
            Block::Gdn(Gdn::new(&(&gs / "1"), n, true)),
            Block::deconv(&gs, 2, n, n, 5, 2),
            Block::Gdn(Gdn::new(&(&gs / "3"), n, true)),
            Block::deconv(&gs, 4, n, n, 5, 2),
            Block::Gdn(Gdn::new(&(&gs / "5"), n, true)),
            Block::deconv(&gs, 6, n, 3, 5, 2),
        ];
        // Initial gains: sqrt(λ_q / λ_mid), so quality levels start apart (finer
        // quantisation for larger λ); inverse gains start at the reciprocal.
        let q = cfg.levels();
        let lmid = cfg.lambdas[q / 2].max(1e-9);
        let g0: Vec<f32> = cfg
            .lambdas
            .iter()
            .map(|l| (l / lmid).max(1e-6).sqrt())
            .collect();
        let gt = Tensor::from_slice(&g0).view([q as i64, 1]).repeat([1, m]);
        let gp = &root / "gain";
        let gain = gp.var_copy("y", &gt);
        let inv_gain = gp.var_copy("y_inv", &gt.reciprocal());
        let prior = Factorized::new(&(&root / "prior_z"), n);
        let ckbd = match cfg.arch {
            Arch::MeanScale => None,
            arch => {
                let (e1, e2) = ep_sizes(cfg.m);
                let (e1, e2) = (e1 as i64, e2 as i64);
                let cc = nn::ConvConfig {
                    padding: 2,
                    ..Default::default()
                };
                let ctx = nn::conv2d(&root / "ctx", m, 2 * m, 5, cc);
                // The channel-group model's context convolution is not masked: each
                // step's input holds only what is decoded before it.
                let mv: Vec<f32> = (0..25)
                    .map(|i| {
                        let used =
                            arch == Arch::ChannelCheckerboard || context_mask_tap(i / 5, i % 5);
                        f32::from(u8::from(used))
                    })
                    .collect();
                let mask = Tensor::from_slice(&mv).view([1, 1, 5, 5]);
                let ep = &root / "ep";
                let ep = vec![
                    Block::conv(&ep, 0, 4 * m, e1, 1, 1),
                    Block::LeakyRelu,
                    Block::conv(&ep, 2, e1, e2, 1, 1),
                    Block::LeakyRelu,
                    Block::conv(&ep, 4, e2, 2 * m, 1, 1),
                ];
                Some(TchCheckerboard { ctx, mask, ep })
            }
        };
        drop(root);
        vs.set_device(device);
        Ok(Self {
            vs,
            cfg,
            g_a,
            h_a,
            h_s,
            g_s,
            gain,
            inv_gain,
            prior,
            ckbd,
        })
    }

    /// The device the variables live on.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// `h_s(ẑ)`: `[B, 2M, h, w]` (scales then means for [`Arch::MeanScale`], the input of
    /// the entropy-parameter network for [`Arch::Checkerboard`]).
    pub fn hyper_params(&self, z_hat: &Tensor) -> Tensor {
        run(&self.h_s, z_hat)
    }

    fn split(&self, p: &Tensor) -> (Tensor, Tensor) {
        let m = self.cfg.m as i64;
        (p.narrow(1, m, m), p.narrow(1, 0, m))
    }

    /// Checkerboard pass 1: `(means, scales)` of the anchors, `ep(hyper, 0)`, computed on
    /// the whole grid (use the anchor positions). Panics for a mean-scale model.
    pub fn anchor_params(&self, hyper: &Tensor) -> (Tensor, Tensor) {
        let Some(cb) = &self.ckbd else {
            panic!("anchor_params needs a checkerboard model");
        };
        let input = Tensor::cat(&[hyper, &hyper.zeros_like()], 1);
        self.split(&run(&cb.ep, &input))
    }

    /// Checkerboard pass 2: `(means, scales)` of the non-anchors from the hyper
    /// parameters and `ŷ` (only its anchor positions are used), on the whole grid (use
    /// the non-anchor positions). Panics for a mean-scale model.
    pub fn nonanchor_params(&self, hyper: &Tensor, y_hat: &Tensor) -> (Tensor, Tensor) {
        let Some(cb) = &self.ckbd else {
            panic!("nonanchor_params needs a checkerboard model");
        };
        let sz = y_hat.size();
        let a = anchor_mask(sz[2], sz[3], y_hat.device());
        let w = &cb.ctx.ws * cb.mask.to_device(y_hat.device());
        let ctx = (y_hat * a).conv2d(&w, cb.ctx.bs.as_ref(), [1, 1], [2, 2], [1, 1], 1);
        let input = Tensor::cat(&[hyper, &ctx], 1);
        self.split(&run(&cb.ep, &input))
    }

    /// `(means, scales)` of every latent and `ŷ`: one pass for [`Arch::MeanScale`], two
    /// (anchors, then non-anchors with their context) for [`Arch::Checkerboard`].
    /// `train`: straight-through rounding of `y - μ` (gradient 1), else true rounding.
    pub fn entropy_params(
        &self,
        y: &Tensor,
        hyper: &Tensor,
        train: bool,
    ) -> (Tensor, Tensor, Tensor) {
        let quant = |y: &Tensor, mu: &Tensor| {
            let r = y - mu;
            if train {
                round_ste(&r) + mu
            } else {
                r.round() + mu
            }
        };
        if self.ckbd.is_none() {
            let (means, scales) = self.split(hyper);
            let y_hat = quant(y, &means);
            return (means, scales, y_hat);
        }
        let sz = y.size();
        let a = anchor_mask(sz[2], sz[3], y.device());
        let na = 1.0 - &a;
        if self.cfg.arch == Arch::ChannelCheckerboard {
            return self.channel_context_params(y, hyper, &a, quant);
        }
        let (ma, sa) = self.anchor_params(hyper);
        let ya = quant(y, &ma) * &a;
        let (mn, sn) = self.nonanchor_params(hyper, &ya);
        let means = &ma * &a + &mn * &na;
        let scales = &sa * &a + &sn * &na;
        let y_hat = &ya + quant(y, &means) * &na;
        (means, scales, y_hat)
    }

    /// [`Arch::ChannelCheckerboard`]'s steps ([`context_steps`]) on the whole grid:
    /// `(means, scales, ŷ)`. Each step's context is the running sum of the context
    /// convolution's slices over the groups decoded before it (each computed once).
    fn channel_context_params(
        &self,
        y: &Tensor,
        hyper: &Tensor,
        a: &Tensor,
        quant: impl Fn(&Tensor, &Tensor) -> Tensor,
    ) -> (Tensor, Tensor, Tensor) {
        let Some(cb) = &self.ckbd else {
            panic!("channel_context_params needs a context model");
        };
        let m = self.cfg.m as i64;
        let na = 1.0 - a;
        let groups = channel_groups(self.cfg.m);
        let zeros = |len: usize| y.narrow(1, 0, len as i64).zeros_like();
        let mut y_hat: Vec<Tensor> = groups.iter().map(|&(_, l)| zeros(l)).collect();
        let mut means: Vec<Tensor> = groups.iter().map(|&(_, l)| zeros(l)).collect();
        let mut scales: Vec<Tensor> = groups.iter().map(|&(_, l)| zeros(l)).collect();
        let mut ctx = hyper.zeros_like();
        let bias = cb.ctx.bs.as_ref().map(|b| b.view([1, 2 * m, 1, 1]));
        for st in context_steps(self.cfg.arch, self.cfg.m) {
            let g = groups
                .iter()
                .position(|&(s0, _)| s0 == st.start)
                .unwrap_or(0);
            let (s0, len) = (st.start as i64, st.len as i64);
            let pm = if st.anchors { a } else { &na };
            let c = match (&bias, st.anchors) {
                (Some(b), false) => &ctx + b,
                _ => ctx.shallow_clone(),
            };
            let p = run(&cb.ep, &Tensor::cat(&[hyper, &c], 1));
            let (mu, sc) = (p.narrow(1, m + s0, len), p.narrow(1, s0, len));
            let yq = quant(&y.narrow(1, s0, len), &mu) * pm;
            y_hat[g] = &y_hat[g] + &yq;
            means[g] = &means[g] + mu * pm;
            scales[g] = &scales[g] + sc * pm;
            let w = cb.ctx.ws.narrow(1, s0, len);
            ctx = ctx + yq.conv2d(&w, None::<&Tensor>, [1, 1], [2, 2], [1, 1], 1);
        }
        (
            Tensor::cat(&means, 1),
            Tensor::cat(&scales, 1),
            Tensor::cat(&y_hat, 1),
        )
    }

    fn gains(&self, q: &Tensor) -> (Tensor, Tensor) {
        let m = self.cfg.m as i64;
        let g = self.gain.index_select(0, q).view([-1, m, 1, 1]);
        let gi = self.inv_gain.index_select(0, q).view([-1, m, 1, 1]);
        (g, gi)
    }

    /// `y = g_a(x) * gain[q]` for `x: [B, 3, H, W]`, `q: [B]` (int64).
    pub fn analysis(&self, x: &Tensor, q: &Tensor) -> Tensor {
        run(&self.g_a, x) * self.gains(q).0
    }

    /// `z = h_a(y)`.
    pub fn hyper_analysis(&self, y: &Tensor) -> Tensor {
        run(&self.h_a, y)
    }

    /// `(means, scales)` from `ẑ` (scales unbounded, as the CPU backend returns them).
    pub fn hyper_synthesis(&self, z_hat: &Tensor) -> (Tensor, Tensor) {
        let p = run(&self.h_s, z_hat);
        let m = self.cfg.m as i64;
        (p.narrow(1, m, m), p.narrow(1, 0, m))
    }

    /// `x̂ = g_s(ŷ * inv_gain[q])`.
    pub fn synthesis(&self, y_hat: &Tensor, q: &Tensor) -> Tensor {
        run(&self.g_s, &(y_hat * self.gains(q).1))
    }

    /// Training forward pass: additive uniform noise for the rate terms, straight-through
    /// rounding for what the decoder sees (`ẑ` into `h_s`, `ŷ = ⌊y - μ⌉ + μ` into `g_s`).
    /// With `train = false` every quantisation is a true rounding (evaluation).
    pub fn forward(&self, x: &Tensor, q: &Tensor, train: bool) -> Forward {
        let y = self.analysis(x, q);
        let z = self.hyper_analysis(&y);
        let (z_rate, z_dec) = if train {
            (&z + (z.rand_like() - 0.5), round_ste(&z))
        } else {
            let r = z.round();
            (r.shallow_clone(), r)
        };
        let z_lik = self.prior.likelihood(&z_rate);
        let hyper = self.hyper_params(&z_dec);
        let (means, scales, y_hat) = self.entropy_params(&y, &hyper, train);
        let scales = bound_scale(&scales);
        let y_res = &y - &means;
        let y_rate_res = if train {
            &y_res + (y_res.rand_like() - 0.5)
        } else {
            y_res.round()
        };
        let y_lik = gaussian_likelihood(&y_rate_res, &scales);
        let x_hat = self.synthesis(&y_hat, q);
        let sz = x.size();
        let pixels = (sz[2] * sz[3]) as f64;
        let ln2 = std::f64::consts::LN_2;
        let bits = |l: &Tensor| {
            -(l.log()
                .sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Float))
                / ln2
        };
        let bpp = (bits(&y_lik) + bits(&z_lik)) / pixels;
        let mse = (&x_hat - x)
            .square()
            .mean_dim([1i64, 2, 3].as_slice(), false, Kind::Float);
        Forward { x_hat, bpp, mse }
    }

    /// Saves every variable into `dir/ckpt-partK.safetensors` files of at most
    /// `max_bytes` each (the device tool returns files of at most 16 MiB), as f32 or, with
    /// `half`, as f16 (half the size; the rounding, ~2^-11 relative, is below one Adam
    /// step at the usual learning rates, so resuming from it is harmless).
    ///
    /// # Errors
    /// I/O or torch errors.
    pub fn save_checkpoint(
        &self,
        dir: &Path,
        max_bytes: usize,
        half: bool,
    ) -> Result<Vec<std::path::PathBuf>> {
        let (kind, elem) = if half {
            (Kind::Half, 2)
        } else {
            (Kind::Float, 4)
        };
        std::fs::create_dir_all(dir)?;
        let mut vars: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let mut parts: Vec<Vec<(String, Tensor)>> = vec![vec![]];
        let mut cur = 0usize;
        for (name, t) in vars {
            let bytes = t.numel() * elem;
            if cur + bytes > max_bytes && !parts.last().is_none_or(Vec::is_empty) {
                parts.push(vec![]);
                cur = 0;
            }
            cur += bytes;
            if let Some(last) = parts.last_mut() {
                last.push((name, t.detach().to_device(Device::Cpu).to_kind(kind)));
            }
        }
        // Remove stale parts from an earlier, larger checkpoint.
        for e in std::fs::read_dir(dir)?.flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if n.starts_with("ckpt-part") && n.ends_with(".safetensors") {
                std::fs::remove_file(e.path())?;
            }
        }
        let mut out = vec![];
        for (i, p) in parts.iter().enumerate() {
            let path = dir.join(format!("ckpt-part{i}.safetensors"));
            let tmp = dir.join(format!(".ckpt-part{i}.tmp.safetensors"));
            Tensor::write_safetensors(p, &tmp).map_err(terr)?;
            std::fs::rename(&tmp, &path)?;
            out.push(path);
        }
        Ok(out)
    }

    /// Loads every `ckpt-part*.safetensors` in `dir` into the variables (all must exist
    /// with the same shapes; missing ones are an error).
    ///
    /// # Errors
    /// I/O, torch errors, or a mismatch between the checkpoint and this network.
    pub fn load_checkpoint(&mut self, dir: &Path) -> Result<()> {
        let vars = self.vs.variables();
        let mut seen = std::collections::HashSet::new();
        let mut files: Vec<_> = std::fs::read_dir(dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let n = p
                    .file_name()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_default();
                n.starts_with("ckpt-part") && n.ends_with(".safetensors")
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "no ckpt-part*.safetensors in {}",
                dir.display()
            )));
        }
        for f in files {
            for (name, t) in Tensor::read_safetensors(&f).map_err(terr)? {
                let v = vars.get(&name).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "checkpoint variable `{name}` not in the network"
                    ))
                })?;
                if v.size() != t.size() {
                    return Err(Error::InvalidArgument(format!(
                        "`{name}`: checkpoint {:?} vs network {:?}",
                        t.size(),
                        v.size()
                    )));
                }
                let mut v = v.shallow_clone();
                tch::no_grad(|| v.f_copy_(&t.to_device(v.device()).to_kind(Kind::Float)))
                    .map_err(terr)?;
                seen.insert(name);
            }
        }
        if let Some(missing) = vars.keys().find(|k| !seen.contains(*k)) {
            return Err(Error::InvalidArgument(format!(
                "checkpoint lacks `{missing}`"
            )));
        }
        Ok(())
    }

    /// Integer tables of the factorized prior: per channel the offset (value of symbol 0)
    /// and frequencies summing to `1 << 16`, covering the values whose probability mass
    /// matters (tails folded into the end symbols; the encoder clamps `ẑ` to the range).
    pub fn z_tables(&self) -> (Vec<i32>, Vec<Vec<u32>>) {
        const K: i64 = 512;
        let c = self.cfg.n as i64;
        tch::no_grad(|| {
            let dev = self.device();
            // Points k - 0.5 for k in -K..=K+1 give both bounds of every k in -K..=K.
            let pts = Tensor::arange_start(-K, K + 2, (Kind::Float, dev)) - 0.5;
            let pts = pts.view([1, 1, -1]).repeat([c, 1, 1]);
            let cdf = self
                .prior
                .logits_cumulative(&pts)
                .sigmoid()
                .to_kind(Kind::Double)
                .to_device(Device::Cpu);
            let cdf: Vec<f64> = Vec::<f64>::try_from(cdf.flatten(0, -1)).unwrap_or_default();
            let width = (2 * K + 2) as usize;
            let mut offsets = vec![];
            let mut tables = vec![];
            for ch in 0..c as usize {
                let row = &cdf[ch * width..(ch + 1) * width];
                // pmf of k = row[k + K + 1] - row[k + K]
                let tail = 1e-7;
                let mut lo = 0usize; // index into k-range 0..(2K+1)
                while lo + 1 < width - 1 && row[lo + 1] < tail {
                    lo += 1;
                }
                let mut hi = width - 2;
                while hi > lo && row[hi] > 1.0 - tail {
                    hi -= 1;
                }
                let hi = hi.min(lo + 4095);
                let mut w: Vec<u64> = (lo..=hi)
                    .map(|i| {
                        let mut p = row[i + 1] - row[i];
                        if i == lo {
                            p += row[i];
                        }
                        if i == hi {
                            p += 1.0 - row[i + 1];
                        }
                        (p.max(0.0) * 4_294_967_296.0) as u64
                    })
                    .collect();
                if w.iter().all(|&v| v == 0) {
                    w = vec![1];
                }
                offsets.push(lo as i32 - K as i32);
                tables.push(normalize_freqs(&w, Z_TABLE_TOTAL));
            }
            (offsets, tables)
        })
    }

    /// The weights file for the CPU backend: transforms (f16 when `half`, else f32),
    /// effective GDN parameters, gains, and the integer `z` tables.
    ///
    /// # Errors
    /// Torch errors while reading tensors.
    pub fn export(&self, half: bool) -> Result<Vec<u8>> {
        let vars = self.vs.variables();
        let get = |name: &str| -> Result<(Vec<usize>, Vec<f32>)> {
            let t = vars
                .get(name)
                .ok_or_else(|| Error::InvalidArgument(format!("no variable `{name}`")))?;
            let t = t
                .detach()
                .to_device(Device::Cpu)
                .to_kind(Kind::Float)
                .contiguous();
            let shape = t.size().iter().map(|&d| d as usize).collect();
            let v = Vec::<f32>::try_from(t.flatten(0, -1)).map_err(terr)?;
            Ok((shape, v))
        };
        let float = |s: Vec<usize>, v: Vec<f32>| {
            if half {
                OutTensor::F16(s, v)
            } else {
                OutTensor::F32(s, v)
            }
        };
        let mut out: Vec<(String, OutTensor)> = vec![];
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for name in names {
            if name.ends_with(".weight") || name.ends_with(".bias") {
                let (s, mut v) = get(name)?;
                if name == "ctx.weight" && self.cfg.arch == Arch::Checkerboard {
                    // Store the effective (masked) context weights.
                    for (i, x) in v.iter_mut().enumerate() {
                        if !context_mask_tap((i / 5) % 5, i % 5) {
                            *x = 0.0;
                        }
                    }
                }
                out.push((name.clone(), float(s, v)));
            }
        }
        for (prefix, blocks) in [("g_a", &self.g_a), ("g_s", &self.g_s)] {
            for (i, b) in blocks.iter().enumerate() {
                if let Block::Gdn(g) = b {
                    let cpu = |t: Tensor| -> Result<Vec<f32>> {
                        Vec::<f32>::try_from(t.detach().to_device(Device::Cpu).flatten(0, -1))
                            .map_err(terr)
                    };
                    let c = g.c as usize;
                    // Effective parameters are computed in f32 by torch once, here; the
                    // stored values are what every decoder uses.
                    out.push((format!("{prefix}.{i}.beta"), float(vec![c], cpu(g.beta())?)));
                    out.push((
                        format!("{prefix}.{i}.gamma"),
                        float(vec![c, c], cpu(g.gamma())?),
                    ));
                }
            }
        }
        for name in ["gain.y", "gain.y_inv"] {
            let (s, v) = get(name)?;
            out.push((name.to_string(), OutTensor::F32(s, v)));
        }
        let (offsets, tables) = self.z_tables();
        let lmax = tables.iter().map(Vec::len).max().unwrap_or(1);
        let n = tables.len();
        let mut flat = vec![0i32; n * lmax];
        for (c, t) in tables.iter().enumerate() {
            for (k, &f) in t.iter().enumerate() {
                flat[c * lmax + k] = f as i32;
            }
        }
        let lens: Vec<i32> = tables.iter().map(|t| t.len() as i32).collect();
        out.push(("prior_z.freq".into(), OutTensor::I32(vec![n, lmax], flat)));
        out.push(("prior_z.offset".into(), OutTensor::I32(vec![n], offsets)));
        out.push(("prior_z.len".into(), OutTensor::I32(vec![n], lens)));
        let mut meta: HashMap<String, String> = self.cfg.to_metadata();
        meta.insert(
            "lcodec.storage".into(),
            if half { "f16" } else { "f32" }.into(),
        );
        write_safetensors(&out, meta)
    }
}

impl TchHyperprior {
    /// A network holding the transforms of an exported weights file (the CPU backend's
    /// format), e.g. to run the analysis transforms of the encoder on a GPU. GDN
    /// parameters are re-parametrised (`beta_p = sqrt(beta - 1e-6)`, `gamma_p =
    /// sqrt(gamma)`), so the torch transforms match the file to float rounding. The
    /// factorized prior's density is not in the file (only its integer tables are) and
    /// stays at its initial value: use the CPU tables to code `ẑ`.
    ///
    /// # Errors
    /// When the file is not a valid weights file of this architecture.
    pub fn from_exported(bytes: &[u8], device: Device) -> Result<Self> {
        let w = crate::weights::WeightFile::parse(bytes)?;
        let cfg = HyperpriorConfig::from_weights(&w)?;
        let mut model = Self::new(cfg, Device::Cpu)?;
        let vars = model.vs.variables();
        for (name, var) in &vars {
            let shape: Vec<usize> = var.size().iter().map(|&d| d as usize).collect();
            let (src, f): (String, fn(f32) -> f32) = if let Some(p) = name.strip_suffix(".beta_p") {
                (format!("{p}.beta"), |b| {
                    (b - BETA_EPS as f32).max(0.0).sqrt()
                })
            } else if let Some(p) = name.strip_suffix(".gamma_p") {
                (format!("{p}.gamma"), |g| g.max(0.0).sqrt())
            } else if name.starts_with("prior_z.") {
                continue;
            } else {
                (name.clone(), |v| v)
            };
            let data: Vec<f32> = w.f32(&src, &shape)?.into_iter().map(f).collect();
            let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            let t = Tensor::f_from_slice(&data)
                .map_err(terr)?
                .f_view(dims.as_slice())
                .map_err(terr)?;
            let mut v = var.shallow_clone();
            tch::no_grad(|| v.f_copy_(&t)).map_err(terr)?;
        }
        model.vs.set_device(device);
        Ok(model)
    }

    /// Like [`Self::from_exported`], and the factorized prior's density is fitted to the
    /// file's integer `z` tables (Adam on the cross-entropy of the table's pmf under the
    /// density, `iters` steps), so training can go on from a shipped weights file when its
    /// checkpoint is gone. Returns the network and the fit's final KL divergence, in bits
    /// per `z` symbol averaged over channels.
    ///
    /// # Errors
    /// As [`Self::from_exported`].
    pub fn from_exported_fitted(bytes: &[u8], device: Device, iters: usize) -> Result<(Self, f64)> {
        let mut model = Self::from_exported(bytes, Device::Cpu)?;
        let w = crate::weights::WeightFile::parse(bytes)?;
        let t = crate::hyperprior::FactorizedTables::load(&w, model.cfg.n)?;
        let kl = model.fit_z_prior(&t.offsets, &t.freqs, iters)?;
        model.vs.set_device(device);
        Ok((model, kl))
    }

    /// Fits the factorized prior's density to integer tables (see [`Self::z_tables`]: per
    /// channel the value of symbol 0 and frequencies summing to `Z_TABLE_TOTAL`). Each
    /// symbol's target is the density's mass on `[v - ½, v + ½]`, the end symbols included
    /// (the tails they hold in the tables are below 1e-7), so a channel whose table has a
    /// single symbol gets all its mass there. Only the prior's variables change. Returns
    /// the final KL divergence in bits per symbol, averaged over channels.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the tables are not one per `z` channel.
    pub fn fit_z_prior(
        &mut self,
        offsets: &[i32],
        freqs: &[Vec<u32>],
        iters: usize,
    ) -> Result<f64> {
        let c = self.cfg.n;
        if offsets.len() != c || freqs.len() != c {
            return Err(Error::InvalidArgument(format!(
                "z tables for {} channels, the network has {c}",
                offsets.len()
            )));
        }
        let lmax = freqs.iter().map(Vec::len).max().unwrap_or(1).max(1);
        // p[c][k]: the table's pmf (0 past the channel's length); pts[c][j] = offset + j - ½
        // bounds symbol j from below.
        let (mut p, mut pts) = (vec![], vec![]);
        for (ch, f) in freqs.iter().enumerate() {
            for j in 0..=lmax {
                pts.push(offsets[ch] as f32 + j as f32 - 0.5);
            }
            for k in 0..lmax {
                p.push(f.get(k).map_or(0.0, |&v| v as f32 / Z_TABLE_TOTAL as f32));
            }
        }
        let (ci, li) = (c as i64, lmax as i64);
        let p = Tensor::from_slice(&p).view([ci, 1, li]);
        let pts = Tensor::from_slice(&pts).view([ci, 1, li + 1]);
        let ent: f64 = -(&p * p.clamp_min(1e-30).log())
            .sum(Kind::Double)
            .double_value(&[]);
        let mut params: Vec<Tensor> = self
            .prior
            .matrices
            .iter()
            .map(Tensor::shallow_clone)
            .collect();
        params.extend(self.prior.biases.iter().map(Tensor::shallow_clone));
        params.extend(self.prior.factors.iter().map(Tensor::shallow_clone));
        let mut m1: Vec<Tensor> = params.iter().map(Tensor::zeros_like).collect();
        let mut m2: Vec<Tensor> = params.iter().map(Tensor::zeros_like).collect();
        let (b1, b2, lr) = (0.9f64, 0.999f64, 1e-2f64);
        let mut ce = f64::NAN;
        for it in 1..=iters.max(1) {
            for q in &mut params {
                q.zero_grad();
            }
            let cdf = self.prior.logits_cumulative(&pts).sigmoid();
            let q = (cdf.narrow(2, 1, li) - cdf.narrow(2, 0, li)).clamp_min(1e-12);
            let loss = -(&p * q.log()).sum(Kind::Float) / c as f64;
            ce = loss.double_value(&[]);
            loss.backward();
            tch::no_grad(|| {
                let (c1, c2) = (1.0 - b1.powi(it as i32), 1.0 - b2.powi(it as i32));
                for ((w, a), v) in params.iter_mut().zip(&mut m1).zip(&mut m2) {
                    let g = w.grad();
                    *a = &*a * b1 + &g * (1.0 - b1);
                    *v = &*v * b2 + g.square() * (1.0 - b2);
                    let step = (&*a / c1) / ((&*v / c2).sqrt() + 1e-8) * lr;
                    let _ = w.f_sub_(&step);
                }
            });
        }
        Ok((ce - ent / c as f64) / std::f64::consts::LN_2)
    }

    /// The same network with `m` latent channels instead of `cfg.m`, computing exactly what
    /// this one does (same reconstruction, same rate up to the rounding of the new channels'
    /// near-zero latents), so training can go on with more latent capacity: a higher quality
    /// ceiling at high rates. New weights come from torch's RNG (seed it first).
    ///
    /// How: every dimension that grows is a run of `M`-blocks (e.g. `[scales | means]`, the
    /// entropy-parameter input `[hyper 2M | context 2M]`, each block keeps its place at the
    /// start of its new block) or a hidden width (3M/2, the entropy-parameter layers: old
    /// units first). A new unit never feeds an old one (zero weight), with one exception:
    /// `g_s`'s first layer keeps random weights on its new inputs, which see `ŷ = 0` and so
    /// change nothing, but pass the distortion gradient back (zero weights there would leave
    /// the new channels dead). `g_a`'s new outputs are scaled down 100x so `|y| < ½` rounds
    /// to 0, the new channels' entropy parameters start at mean 0 and the smallest scale,
    /// and their gains at the mean of each level's old gains.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `m` is not larger than the current M.
    pub fn widened(&self, m: usize) -> Result<Self> {
        if m <= self.cfg.m {
            return Err(Error::InvalidArgument(format!(
                "M = {m} is not larger than the model's M = {}",
                self.cfg.m
            )));
        }
        let cfg = HyperpriorConfig {
            m,
            ..self.cfg.clone()
        };
        let new = Self::new(cfg, Device::Cpu)?;
        let (mo, mn) = (self.cfg.m as i64, m as i64);
        let old_vars = self.vs.variables();
        for (name, mut nt) in new.vs.variables() {
            let ot = old_vars.get(&name).ok_or_else(|| {
                Error::InvalidArgument(format!("`{name}` is not in the model being widened"))
            })?;
            let (os, ns) = (ot.size(), nt.size());
            // inv[d][j]: the old index that new index j of dimension d comes from.
            let mut inv: Vec<Vec<Option<usize>>> =
                ns.iter().map(|&n| vec![None; n as usize]).collect();
            for (d, (&o, &n)) in os.iter().zip(&ns).enumerate() {
                for (i, j) in widen_map(o, n, mo, mn)?.into_iter().enumerate() {
                    inv[d][j as usize] = Some(i);
                }
            }
            let flat = |t: &Tensor| -> Result<Vec<f32>> {
                Vec::<f32>::try_from(
                    t.detach()
                        .to_device(Device::Cpu)
                        .to_kind(Kind::Float)
                        .contiguous()
                        .flatten(0, -1),
                )
                .map_err(terr)
            };
            let ov = flat(ot)?;
            let mut nv = flat(&nt)?;
            // Transposed convolutions store [in, out, kh, kw]; convolutions [out, in, kh, kw].
            let deconv = name.starts_with("g_s.")
                || name.starts_with("h_s.0.")
                || name.starts_with("h_s.2.");
            let (out_d, in_d) = if deconv { (1, 0) } else { (0, 1) };
            let gain = name.starts_with("gain.");
            let new_latent = name.starts_with("g_a.6.");
            let params_layer = name.starts_with("ep.4.")
                || (self.cfg.arch == Arch::MeanScale && name.starts_with("h_s.4."));
            let keep_random_inputs = name.starts_with("g_s.0.");
            let row_mean: Vec<f32> = if gain {
                ov.chunks(os[1] as usize)
                    .map(|r| r.iter().sum::<f32>() / r.len() as f32)
                    .collect()
            } else {
                vec![]
            };
            let ostride: Vec<usize> = (0..os.len())
                .map(|d| os[d + 1..].iter().product::<i64>() as usize)
                .collect();
            let mut idx = vec![0usize; ns.len()];
            for v in nv.iter_mut() {
                let src: Option<usize> = idx
                    .iter()
                    .enumerate()
                    .map(|(d, &j)| inv[d][j].map(|i| i * ostride[d]))
                    .sum();
                // Biases (1-D) have only the output dimension.
                let od = if ns.len() == 4 { out_d } else { 0 };
                let new_out = inv[od][idx[od]].is_none();
                if let Some(o) = src {
                    *v = ov[o];
                } else if gain {
                    *v = row_mean[idx[0]];
                } else if new_out && new_latent {
                    *v *= 0.01;
                } else if new_out && params_layer {
                    *v = 0.0;
                } else if ns.len() == 4
                    && !keep_random_inputs
                    && !new_out
                    && inv[in_d][idx[in_d]].is_none()
                {
                    // A new input must not change an old output.
                    *v = 0.0;
                }
                // Next multi-index, row-major.
                for d in (0..idx.len()).rev() {
                    idx[d] += 1;
                    if idx[d] < ns[d] as usize {
                        break;
                    }
                    idx[d] = 0;
                }
            }
            let t = Tensor::f_from_slice(&nv)
                .map_err(terr)?
                .f_view(ns.as_slice())
                .map_err(terr)?;
            tch::no_grad(|| nt.f_copy_(&t)).map_err(terr)?;
        }
        let mut new = new;
        new.vs.set_device(self.device());
        Ok(new)
    }
}

impl TchHyperprior {
    /// The same network with one more quality level, trained at `lambda`: every other
    /// variable is copied, the existing levels keep their gains (so they compute exactly
    /// what they did), and the new level's gain and inverse gain start on the line through
    /// the two nearest levels in log(gain) over log(λ), a good start for training on.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a λ that is not positive and finite or already there,
    /// or a model with a single level (nothing to extrapolate from).
    pub fn with_level(&self, lambda: f32) -> Result<Self> {
        let old = &self.cfg.lambdas;
        if !(lambda.is_finite() && lambda > 0.0) || old.contains(&lambda) || old.len() < 2 {
            return Err(Error::InvalidArgument(format!(
                "cannot add a level at λ = {lambda} to the levels {old:?}"
            )));
        }
        let mut lambdas = old.clone();
        let at = lambdas.partition_point(|&l| l < lambda);
        lambdas.insert(at, lambda);
        let cfg = HyperpriorConfig {
            lambdas,
            ..self.cfg.clone()
        };
        // The two nearest old levels (below and above, or the two at the end).
        let (a, b) = match at {
            0 => (0, 1),
            k if k >= old.len() => (old.len() - 2, old.len() - 1),
            k => (k - 1, k),
        };
        let t = f64::from((lambda / old[a]).ln()) / f64::from((old[b] / old[a]).ln());
        let n_old = old.len() as i64;
        self.copy_into(cfg, |g| {
            let (ga, gb) = (g.get(a as i64).log(), g.get(b as i64).log());
            let row = (&ga + (gb - &ga) * t).exp().unsqueeze(0);
            let (lo, hi) = (
                g.narrow(0, 0, at as i64),
                g.narrow(0, at as i64, n_old - at as i64),
            );
            Tensor::cat(&[lo, row, hi], 0)
        })
    }

    /// A new network of config `cfg` holding this one's variables, with the per-level
    /// gain tables (`gain.*`, `[levels, M]`) passed through `gains`; on this network's
    /// device.
    fn copy_into(&self, cfg: HyperpriorConfig, gains: impl Fn(&Tensor) -> Tensor) -> Result<Self> {
        let mut new = Self::new(cfg, Device::Cpu)?;
        let old_vars = self.vs.variables();
        for (name, mut nt) in new.vs.variables() {
            let ot = old_vars
                .get(&name)
                .ok_or_else(|| Error::InvalidArgument(format!("`{name}` missing")))?
                .detach()
                .to_device(Device::Cpu);
            let v = if name.starts_with("gain.") {
                gains(&ot)
            } else {
                ot
            };
            tch::no_grad(|| nt.f_copy_(&v)).map_err(terr)?;
        }
        new.vs.set_device(self.device());
        Ok(new)
    }
}

impl TchHyperprior {
    /// The [`Arch::ChannelCheckerboard`] network that computes exactly what this
    /// [`Arch::Checkerboard`] one does: every variable is copied, and the context taps the
    /// checkerboard mask hides (even `ky + kx`) start at zero, so each step's context is
    /// the checkerboard's (the anchors of every group see none, the non-anchors see every
    /// anchor). Training then learns to use the channel groups decoded earlier.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when this is not a checkerboard model.
    pub fn with_channel_context(&self) -> Result<Self> {
        if self.cfg.arch != Arch::Checkerboard {
            return Err(Error::InvalidArgument(format!(
                "channel context is added to a `{}` model, not to `{}`",
                Arch::Checkerboard.id(),
                self.cfg.arch.id()
            )));
        }
        let cfg = HyperpriorConfig {
            arch: Arch::ChannelCheckerboard,
            ..self.cfg.clone()
        };
        let new = self.copy_into(cfg, Tensor::shallow_clone)?;
        if let Some(cb) = &new.ckbd {
            let mv: Vec<f32> = (0..25)
                .map(|i| f32::from(u8::from(context_mask_tap(i / 5, i % 5))))
                .collect();
            let keep = Tensor::from_slice(&mv)
                .view([1, 1, 5, 5])
                .to_device(new.device());
            let mut w = cb.ctx.ws.shallow_clone();
            tch::no_grad(|| w.f_mul_(&keep).map(drop)).map_err(terr)?;
        }
        Ok(new)
    }

    /// The same network with only the quality levels `keep` (0-based, ascending, no
    /// repeats): every variable is copied and the kept levels' gains too, so each kept
    /// level computes exactly what it did. Used to fine-tune a network for a few levels
    /// (the top ones, where one network shared by every level runs out of capacity).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty, unsorted or out-of-range `keep`.
    pub fn with_levels(&self, keep: &[usize]) -> Result<Self> {
        let old = &self.cfg.lambdas;
        if keep.is_empty()
            || keep.windows(2).any(|w| w[0] >= w[1])
            || keep.iter().any(|&k| k >= old.len())
        {
            return Err(Error::InvalidArgument(format!(
                "cannot keep the levels {keep:?} (0-based, ascending) of {} levels",
                old.len()
            )));
        }
        let cfg = HyperpriorConfig {
            lambdas: keep.iter().map(|&k| old[k]).collect(),
            ..self.cfg.clone()
        };
        let idx = Tensor::from_slice(&keep.iter().map(|&k| k as i64).collect::<Vec<_>>());
        self.copy_into(cfg, |g| g.index_select(0, &idx))
    }
}

/// Where each old index of one tensor dimension goes when M grows from `mo` to `mn` (see
/// [`TchHyperprior::widened`]).
fn widen_map(old: i64, new: i64, mo: i64, mn: i64) -> Result<Vec<i64>> {
    if old % mo == 0 && new == old / mo * mn {
        return Ok((0..old).map(|i| i / mo * mn + i % mo).collect());
    }
    if new >= old {
        return Ok((0..old).collect());
    }
    Err(Error::InvalidArgument(format!(
        "cannot widen a dimension of {old} to {new}"
    )))
}
