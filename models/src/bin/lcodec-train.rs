//! `lcodec-train`: trains lcodec's learned image model with libtorch and exports weights
//! for the CPU backend. See `models/TRAINING.md`.
//!
//! ```text
//! lcodec-train image --lambdas 0.0018,0.0035,0.0067,0.013,0.025,0.0483 \
//!     --data /work/shared/data/images/train --steps 20000 --device cuda --out ckpt/
//! lcodec-train export --ckpt ckpt/ --out models/weights/mshp-gain.safetensors
//! ```
use clap::{Args, Parser, Subcommand};
use lcodec_models::coding::LatentCoder;
use lcodec_models::hyperprior::{Arch, HyperpriorConfig, MeanScaleHyperprior};
use lcodec_models::torch::TchHyperprior;
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor, nn::OptimizerConfig};

#[derive(Parser)]
#[command(
    name = "lcodec-train",
    about = "Train lcodec's learned models (libtorch)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

// Parsed once per run: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Train the mean-scale hyperprior image model (one network, one gain vector per λ).
    Image(ImageArgs),
    /// Export a checkpoint directory to a weights file for the CPU backend.
    Export(ExportArgs),
    /// Widen a checkpoint's latent (M channels) without changing what it computes, so
    /// training can go on with more latent capacity (a higher quality ceiling).
    Widen(WidenArgs),
    /// Add a quality level (a λ) to a checkpoint; the other levels are unchanged and the
    /// new one starts from gains extrapolated from its neighbours.
    AddLevel(AddLevelArgs),
    /// Keep only some quality levels of a checkpoint (each computes what it did), to
    /// fine-tune a network for those levels alone.
    KeepLevels(KeepLevelsArgs),
    /// Turn a checkerboard checkpoint (`ckbd-gain-v1`) into the channel-group context
    /// model (`ckbd-cc-v1`) computing exactly the same, to train on from there.
    AddChannelContext(AddChannelContextArgs),
    /// Make a checkpoint from an exported weights file (e.g. a shipped model whose
    /// checkpoint is gone), to train on from there: the transforms as stored (f16 files
    /// lose their last bits), the factorized prior's density fitted to the file's tables.
    Import(ImportArgs),
}

#[derive(Args)]
struct ImportArgs {
    /// Weights file (as written by `export`).
    #[arg(long)]
    weights: PathBuf,
    /// New checkpoint directory.
    #[arg(long)]
    out: PathBuf,
    /// Step count to record in state.txt (the model card names it).
    #[arg(long, default_value_t = 0)]
    step: u64,
    /// Adam steps fitting the prior's density to the tables.
    #[arg(long, default_value_t = 3000)]
    fit_iters: usize,
}

#[derive(Args)]
struct ImageArgs {
    /// Rate-distortion trade-off of a single-quality model (loss = bpp + λ·255²·MSE).
    #[arg(long, conflicts_with = "lambdas")]
    lambda: Option<f32>,
    /// Comma-separated λ list: one model, one quality level per λ (ascending).
    #[arg(long, value_delimiter = ',')]
    lambdas: Vec<f32>,
    /// Folder of training images (searched recursively for .png/.jpg/.jpeg).
    #[arg(long)]
    data: PathBuf,
    /// Total optimisation steps (a resumed run continues to this count).
    #[arg(long, default_value_t = 10_000)]
    steps: u64,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Checkpoint directory to resume from (as written to --out).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Output directory for checkpoints and the log.
    #[arg(long)]
    out: PathBuf,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Square crop side (multiple of 64).
    #[arg(long, default_value_t = 256)]
    crop: usize,
    /// Hidden / z channels.
    #[arg(long, default_value_t = 128)]
    n: usize,
    /// Latent y channels.
    #[arg(long, default_value_t = 192)]
    m: usize,
    /// Entropy model: `ckbd` (checkerboard context, two parallel decoding passes),
    /// `mshp` (mean-scale hyperprior, one pass) or `ckbd-cc` (checkerboard over channel
    /// groups, 2 x 4 passes). Ignored with --resume (state.txt has it).
    #[arg(long, default_value = "ckbd")]
    arch: String,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// Fraction of --steps after which the learning rate drops 10x.
    #[arg(long, default_value_t = 0.85)]
    lr_drop_at: f64,
    /// Gradient-norm clip.
    #[arg(long, default_value_t = 1.0)]
    clip: f64,
    /// Checkpoint every K steps (and at the end / time limit).
    #[arg(long, default_value_t = 1000)]
    ckpt_every: u64,
    /// Print the training loss every K steps.
    #[arg(long, default_value_t = 100)]
    log_every: u64,
    /// Evaluate on --eval images every K steps (0: only at the end).
    #[arg(long, default_value_t = 2000)]
    eval_every: u64,
    /// Folder of evaluation images (e.g. Kodak); sides are cropped to multiples of 64.
    #[arg(long)]
    eval: Option<PathBuf>,
    /// Evaluate with the training graph's rate estimate only (skip the real bitstream,
    /// which is coded on the CPU).
    #[arg(long)]
    no_eval_real: bool,
    /// How many evaluation images to use.
    #[arg(long, default_value_t = 4)]
    eval_images: usize,
    /// Use at most this many training images (0: all).
    #[arg(long, default_value_t = 0)]
    max_images: usize,
    /// Downscale training images by 2 first (removes JPEG artefacts; README advice).
    #[arg(long)]
    downscale: bool,
    /// Stop (with a checkpoint) after this many seconds of wall time (0: no limit). Use
    /// ~540 inside a 600 s device call.
    #[arg(long, default_value_t = 0)]
    time_limit: u64,
    /// Seed for initialisation and crops.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Store checkpoints as f16 (half the size: fits the device tool's 16 MiB files and
    /// the 64 MiB carry with the training data).
    #[arg(long)]
    ckpt_half: bool,
    /// Threads cutting training crops ahead of the optimiser.
    #[arg(long, default_value_t = 3)]
    loaders: usize,
    /// Torch intra-op threads on CPU (0: libtorch default).
    #[arg(long, default_value_t = 0)]
    threads: i32,
}

#[derive(Args)]
struct ExportArgs {
    /// Checkpoint directory (ckpt-part*.safetensors + state.txt).
    #[arg(long)]
    ckpt: PathBuf,
    /// Weights file to write.
    #[arg(long)]
    out: PathBuf,
    /// Store f32 instead of f16.
    #[arg(long)]
    f32: bool,
}

#[derive(Args)]
struct WidenArgs {
    /// Checkpoint directory to widen (ckpt-part*.safetensors + state.txt).
    #[arg(long)]
    ckpt: PathBuf,
    /// New checkpoint directory (same step count, the new M in state.txt).
    #[arg(long)]
    out: PathBuf,
    /// New number of latent channels (larger than the checkpoint's).
    #[arg(long)]
    m: usize,
    /// Seed for the new weights.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
struct AddLevelArgs {
    /// Checkpoint directory (ckpt-part*.safetensors + state.txt).
    #[arg(long)]
    ckpt: PathBuf,
    /// New checkpoint directory (same step count, the new λ list in state.txt).
    #[arg(long)]
    out: PathBuf,
    /// λ of the new level.
    #[arg(long)]
    lambda: f32,
}

#[derive(Args)]
struct KeepLevelsArgs {
    /// Checkpoint directory (ckpt-part*.safetensors + state.txt).
    #[arg(long)]
    ckpt: PathBuf,
    /// New checkpoint directory (same step count, the kept λs in state.txt).
    #[arg(long)]
    out: PathBuf,
    /// The levels to keep, 1-based as `--quality` counts them, ascending (e.g. 7,8,9).
    #[arg(long, value_delimiter = ',', required = true)]
    levels: Vec<usize>,
}

#[derive(Args)]
struct AddChannelContextArgs {
    /// Checkpoint directory of a checkerboard model (ckpt-part*.safetensors + state.txt).
    #[arg(long)]
    ckpt: PathBuf,
    /// New checkpoint directory (same step count, arch ckbd-cc-v1 in state.txt).
    #[arg(long)]
    out: PathBuf,
}

type Res<T> = std::result::Result<T, String>;

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Image(a) => train(a),
        Cmd::Export(a) => export(a),
        Cmd::Widen(a) => widen(&a),
        Cmd::AddLevel(a) => add_level(&a),
        Cmd::KeepLevels(a) => keep_levels(&a),
        Cmd::AddChannelContext(a) => {
            rewrite_checkpoint(&a.ckpt, &a.out, TchHyperprior::with_channel_context)
        }
        Cmd::Import(a) => import(&a),
    };
    if let Err(e) = r {
        eprintln!("lcodec-train: {e}");
        std::process::exit(1);
    }
}

/// An RGB8 image in memory.
struct Img {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
}

fn list_images(dir: &Path) -> Res<Vec<PathBuf>> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(ext) = p.extension().and_then(|s| s.to_str()) {
                if matches!(ext.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg") {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

fn load_image(p: &Path, downscale: bool) -> Res<Img> {
    let im = image::open(p)
        .map_err(|e| format!("{}: {e}", p.display()))?
        .to_rgb8();
    let (w, h) = (im.width() as usize, im.height() as usize);
    let raw = im.into_raw();
    if !downscale {
        return Ok(Img { w, h, rgb: raw });
    }
    // 2x2 box filter.
    let (w2, h2) = (w / 2, h / 2);
    let mut rgb = vec![0u8; w2 * h2 * 3];
    for y in 0..h2 {
        for x in 0..w2 {
            for c in 0..3 {
                let s: u32 = [(0, 0), (0, 1), (1, 0), (1, 1)]
                    .iter()
                    .map(|(dy, dx)| u32::from(raw[((2 * y + dy) * w + 2 * x + dx) * 3 + c]))
                    .sum();
                rgb[(y * w2 + x) * 3 + c] = ((s + 2) / 4) as u8;
            }
        }
    }
    Ok(Img { w: w2, h: h2, rgb })
}

/// `[B, 3, crop, crop]` float batch (flat) of random crops with random flips.
fn batch(imgs: &[Img], b: usize, crop: usize, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<f32> {
    let mut buf = vec![0f32; b * 3 * crop * crop];
    for i in 0..b {
        let im = loop {
            let im = &imgs[rng.random_range(0..imgs.len())];
            if im.w >= crop && im.h >= crop {
                break im;
            }
        };
        let x0 = rng.random_range(0..=im.w - crop);
        let y0 = rng.random_range(0..=im.h - crop);
        let (fx, fy) = (rng.random_bool(0.5), rng.random_bool(0.5));
        for y in 0..crop {
            let sy = if fy { y0 + crop - 1 - y } else { y0 + y };
            for x in 0..crop {
                let sx = if fx { x0 + crop - 1 - x } else { x0 + x };
                let p = (sy * im.w + sx) * 3;
                for c in 0..3 {
                    buf[((i * 3 + c) * crop + y) * crop + x] = f32::from(im.rgb[p + c]) / 255.0;
                }
            }
        }
    }
    buf
}

fn image_tensor(im: &Img) -> Tensor {
    let (w, h) = (im.w / 64 * 64, im.h / 64 * 64);
    let mut buf = vec![0f32; 3 * w * h];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                buf[(c * h + y) * w + x] = f32::from(im.rgb[(y * im.w + x) * 3 + c]) / 255.0;
            }
        }
    }
    Tensor::from_slice(&buf).view([1, 3, h as i64, w as i64])
}

fn parse_device(s: &str) -> Res<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" => {
            if tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Err("--device cuda: CUDA is not available to libtorch (is this the `cuda` build? see TRAINING.md)".into())
            }
        }
        other => Err(format!("--device {other}: expected cpu or cuda")),
    }
}

fn write_state(dir: &Path, step: u64, cfg: &HyperpriorConfig) -> Res<()> {
    let l: Vec<String> = cfg.lambdas.iter().map(|v| v.to_string()).collect();
    let s = format!(
        "step={step}\nn={}\nm={}\nlambdas={}\narch={}\n",
        cfg.n,
        cfg.m,
        l.join(","),
        cfg.arch.id()
    );
    std::fs::write(dir.join("state.txt"), s).map_err(|e| format!("state.txt: {e}"))
}

fn read_state(dir: &Path) -> Res<(u64, HyperpriorConfig)> {
    let s = std::fs::read_to_string(dir.join("state.txt"))
        .map_err(|e| format!("{}/state.txt: {e}", dir.display()))?;
    let mut step = 0;
    let mut cfg = HyperpriorConfig {
        n: 0,
        m: 0,
        lambdas: vec![],
        arch: Arch::MeanScale,
    };
    for line in s.lines() {
        let (k, v) = line.split_once('=').unwrap_or((line, ""));
        let bad = || format!("state.txt: bad line `{line}`");
        match k {
            "step" => step = v.parse().map_err(|_| bad())?,
            "n" => cfg.n = v.parse().map_err(|_| bad())?,
            "m" => cfg.m = v.parse().map_err(|_| bad())?,
            "arch" => cfg.arch = Arch::parse(v).map_err(|e| e.to_string())?,
            "lambdas" => {
                cfg.lambdas = v
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad())?;
            }
            _ => {}
        }
    }
    Ok((step, cfg))
}

/// Part size for checkpoints: the device tool returns files of at most 16 MiB.
const CKPT_PART_BYTES: usize = 15 << 20;

fn save(model: &TchHyperprior, out: &Path, step: u64, half: bool, log: &mut dyn Write) -> Res<()> {
    model
        .save_checkpoint(out, CKPT_PART_BYTES, half)
        .map_err(|e| e.to_string())?;
    write_state(out, step, &model.cfg)?;
    let _ = writeln!(log, "checkpoint step={step} -> {}", out.display());
    Ok(())
}

/// `[1, C, H, W]` tensor -> `[C, H, W]` array on the CPU.
fn to_array3(t: &Tensor) -> Res<ndarray::Array3<f32>> {
    let sz = t.size();
    let v = Vec::<f32>::try_from(
        t.to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
            .flatten(0, -1),
    )
    .map_err(|e| e.to_string())?;
    ndarray::Array3::from_shape_vec((sz[1] as usize, sz[2] as usize, sz[3] as usize), v)
        .map_err(|e| e.to_string())
}

/// Evaluates every quality level on whole images: `bpp_est` / `psnr` from the training
/// graph with true rounding, and unless `real` is false, `bpp_real` from the real
/// bitstream (export → CPU entropy parameters → range coder; payload bytes, without the
/// container's ~170 bytes) and `psnr_real` of the 8-bit reconstruction of the coded `ŷ`.
fn evaluate(model: &TchHyperprior, imgs: &[Img], log: &mut dyn Write, step: u64, real: bool) {
    let t0 = Instant::now();
    let dev = model.device();
    let cpu = if real {
        match model
            .export(false)
            .and_then(|b| MeanScaleHyperprior::from_bytes(&b))
        {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = writeln!(log, "eval: export failed ({e}); estimates only");
                None
            }
        }
    } else {
        None
    };
    let coder = cpu.as_ref().and_then(|m| LatentCoder::new(m).ok());
    for q in 0..model.cfg.levels() {
        let (mut bpp, mut psnr, mut bpp_r, mut psnr_r) = (0.0, 0.0, 0.0, 0.0);
        let mut real_err = None;
        for im in imgs {
            let x = image_tensor(im).to_device(dev);
            let qt = Tensor::from_slice(&[q as i64]).to_device(dev);
            let f = tch::no_grad(|| model.forward(&x, &qt, false));
            bpp += f.bpp.double_value(&[0]);
            let mse = tch::no_grad(|| (f.x_hat.clamp(0.0, 1.0) - &x).square().mean(Kind::Float))
                .double_value(&[]);
            psnr += 10.0 * (1.0 / mse.max(1e-12)).log10();
            let Some(c) = &coder else { continue };
            let r = (|| -> Res<(f64, f64)> {
                let (y, z) = tch::no_grad(|| {
                    let y = model.analysis(&x, &qt);
                    let z = model.hyper_analysis(&y);
                    (y, z)
                });
                let (payload, y_hat) = c
                    .encode(&to_array3(&y)?, &to_array3(&z)?)
                    .map_err(|e| e.to_string())?;
                let (ch, hh, ww) = y_hat.dim();
                let yt = Tensor::from_slice(y_hat.as_slice().unwrap_or(&[]))
                    .view([1, ch as i64, hh as i64, ww as i64])
                    .to_device(dev);
                let mse = tch::no_grad(|| {
                    let xh = (model.synthesis(&yt, &qt).clamp(0.0, 1.0) * 255.0).round();
                    (xh - &x * 255.0).square().mean(Kind::Float)
                })
                .double_value(&[]);
                let px = (x.size()[2] * x.size()[3]) as f64;
                Ok((
                    payload.len() as f64 * 8.0 / px,
                    10.0 * (255.0 * 255.0 / mse.max(1e-12)).log10(),
                ))
            })();
            match r {
                Ok((b, p)) => {
                    bpp_r += b;
                    psnr_r += p;
                }
                Err(e) => real_err = Some(e),
            }
        }
        let k = imgs.len().max(1) as f64;
        let real_part = match (&coder, real_err) {
            (Some(_), None) => format!(" bpp_real={:.4} psnr_real={:.3}", bpp_r / k, psnr_r / k),
            (Some(_), Some(e)) => format!(" real bitstream failed: {e}"),
            (None, _) => String::new(),
        };
        let _ = writeln!(
            log,
            "eval step={step} q={q} lambda={} bpp_est={:.4} psnr={:.3}{real_part}",
            model.cfg.lambdas[q],
            bpp / k,
            psnr / k
        );
    }
    let _ = writeln!(log, "eval took {:.1}s", t0.elapsed().as_secs_f64());
}

struct Tee(std::fs::File);
impl Write for Tee {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        std::io::stdout().write_all(b)?;
        self.0.write_all(b)?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()?;
        self.0.flush()
    }
}

fn train(a: ImageArgs) -> Res<()> {
    let t0 = Instant::now();
    if a.crop % 64 != 0 || a.crop == 0 || a.batch == 0 {
        return Err("--crop must be a positive multiple of 64 and --batch > 0".into());
    }
    let dev = parse_device(&a.device)?;
    if a.threads > 0 {
        tch::set_num_threads(a.threads);
    }
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(a.out.join("train.log"))
        .map_err(|e| format!("train.log: {e}"))?;
    let mut log = Tee(logf);
    let mut lambdas = a.lambdas.clone();
    if let Some(l) = a.lambda {
        lambdas = vec![l];
    }
    // A resumed run takes its λs from state.txt.
    if lambdas.is_empty() && a.resume.is_none() {
        return Err("give --lambda or --lambdas (or --resume a checkpoint)".into());
    }
    let mut cfg = HyperpriorConfig {
        n: a.n,
        m: a.m,
        lambdas,
        arch: Arch::parse(&a.arch).map_err(|e| e.to_string())?,
    };
    let mut step0 = 0;
    if let Some(r) = &a.resume {
        let (s, c) = read_state(r)?;
        step0 = s;
        cfg = c;
    }
    tch::manual_seed(a.seed as i64);
    if dev != Device::Cpu {
        tch::Cuda::manual_seed_all(a.seed);
        tch::Cuda::cudnn_set_benchmark(true);
    }
    let mut model = TchHyperprior::new(cfg.clone(), dev).map_err(|e| e.to_string())?;
    if let Some(r) = &a.resume {
        model.load_checkpoint(r).map_err(|e| e.to_string())?;
    }
    let nparams: i64 = model
        .vs
        .trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum();
    let _ = writeln!(
        log,
        "lcodec-train image: arch={} N={} M={} lambdas={:?} params={nparams} device={:?} batch={} crop={} lr={} steps {}..{} (cuda available: {})",
        cfg.arch.id(),
        cfg.n,
        cfg.m,
        cfg.lambdas,
        dev,
        a.batch,
        a.crop,
        a.lr,
        step0,
        a.steps,
        tch::Cuda::is_available()
    );
    let mut paths = list_images(&a.data)?;
    if a.max_images > 0 {
        paths.truncate(a.max_images);
    }
    let imgs: Vec<Img> = paths
        .iter()
        .filter_map(|p| match load_image(p, a.downscale) {
            Ok(i) if i.w >= a.crop && i.h >= a.crop => Some(i),
            Ok(_) => None,
            Err(e) => {
                eprintln!("skipping {e}");
                None
            }
        })
        .collect();
    if imgs.is_empty() {
        return Err(format!(
            "no usable training images (>= {0}x{0}) under {1}",
            a.crop,
            a.data.display()
        ));
    }
    let eval_imgs: Vec<Img> = match &a.eval {
        Some(d) => list_images(d)?
            .iter()
            .take(a.eval_images)
            .filter_map(|p| load_image(p, false).ok())
            .filter(|i| i.w >= 64 && i.h >= 64)
            .collect(),
        None => vec![],
    };
    let _ = writeln!(
        log,
        "data: {} training images, {} eval images, loaded in {:.1}s",
        imgs.len(),
        eval_imgs.len(),
        t0.elapsed().as_secs_f64()
    );
    let mut opt = tch::nn::Adam::default()
        .build(&model.vs, a.lr)
        .map_err(|e| e.to_string())?;
    // Crops are cut by loader threads ahead of the GPU. The crop streams depend on the
    // seed and the start step, so a resumed run does not replay the same crops.
    let imgs = std::sync::Arc::new(imgs);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<f32>>(8);
    for wkr in 0..a.loaders.max(1) {
        let (tx, imgs) = (tx.clone(), imgs.clone());
        let (b, crop) = (a.batch, a.crop);
        let seed = a.seed
            ^ step0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ (wkr as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03);
        std::thread::spawn(move || {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            while tx.send(batch(&imgs, b, crop, &mut rng)).is_ok() {}
        });
    }
    drop(tx);
    let q_levels = cfg.levels();
    let lam = Tensor::from_slice(&cfg.lambdas).to_device(dev);
    let (mut acc_loss, mut acc_bpp, mut acc_mse, mut acc_n) = (0.0, 0.0, 0.0, 0u64);
    let mut t_log = Instant::now();
    let mut step = step0;
    let mut last_saved = u64::MAX;
    let drop_step = (a.steps as f64 * a.lr_drop_at) as u64;
    while step < a.steps {
        if a.time_limit > 0 && t0.elapsed().as_secs() >= a.time_limit {
            let _ = writeln!(log, "time limit reached at step {step}");
            break;
        }
        let lr = if step >= drop_step { a.lr * 0.1 } else { a.lr };
        opt.set_lr(lr);
        let buf = rx
            .recv()
            .map_err(|_| "data loader threads stopped".to_string())?;
        let x = Tensor::from_slice(&buf)
            .view([a.batch as i64, 3, a.crop as i64, a.crop as i64])
            .to_device(dev);
        let qs: Vec<i64> = (0..a.batch)
            .map(|i| ((step as usize * a.batch + i) % q_levels) as i64)
            .collect();
        let q = Tensor::from_slice(&qs).to_device(dev);
        let f = model.forward(&x, &q, true);
        let lq = lam.index_select(0, &q);
        let loss = (&f.bpp + lq * (255.0f64 * 255.0) * &f.mse).mean(Kind::Float);
        opt.zero_grad();
        loss.backward();
        opt.clip_grad_norm(a.clip);
        opt.step();
        step += 1;
        let lv = loss.double_value(&[]);
        if !lv.is_finite() {
            return Err(format!(
                "loss became {lv} at step {step}; lower --lr or resume from the last checkpoint"
            ));
        }
        acc_loss += lv;
        acc_bpp += f.bpp.mean(Kind::Float).double_value(&[]);
        acc_mse += f.mse.mean(Kind::Float).double_value(&[]);
        acc_n += 1;
        if step % a.log_every == 0 || step == a.steps {
            let k = acc_n as f64;
            let el = t_log.elapsed().as_secs_f64();
            let _ = writeln!(
                log,
                "step={step} loss={:.4} bpp={:.4} mse={:.6} psnr={:.2} lr={lr:.2e} {:.2} steps/s",
                acc_loss / k,
                acc_bpp / k,
                acc_mse / k,
                10.0 * (1.0 / (acc_mse / k).max(1e-12)).log10(),
                k / el.max(1e-9)
            );
            (acc_loss, acc_bpp, acc_mse, acc_n) = (0.0, 0.0, 0.0, 0);
            t_log = Instant::now();
        }
        if step % a.ckpt_every == 0 {
            save(&model, &a.out, step, a.ckpt_half, &mut log)?;
            last_saved = step;
        }
        if a.eval_every > 0 && step % a.eval_every == 0 && !eval_imgs.is_empty() {
            evaluate(&model, &eval_imgs, &mut log, step, !a.no_eval_real);
        }
    }
    if last_saved != step {
        save(&model, &a.out, step, a.ckpt_half, &mut log)?;
    }
    if !eval_imgs.is_empty() {
        evaluate(&model, &eval_imgs, &mut log, step, !a.no_eval_real);
    }
    let _ = writeln!(log, "done: step {step}, {:.1}s", t0.elapsed().as_secs_f64());
    Ok(())
}

fn export(a: ExportArgs) -> Res<()> {
    let (step, cfg) = read_state(&a.ckpt)?;
    let mut model = TchHyperprior::new(cfg, Device::Cpu).map_err(|e| e.to_string())?;
    model.load_checkpoint(&a.ckpt).map_err(|e| e.to_string())?;
    let bytes = model.export(!a.f32).map_err(|e| e.to_string())?;
    // Check that the CPU backend accepts the file before writing it.
    lcodec_models::hyperprior::MeanScaleHyperprior::from_bytes(&bytes)
        .map_err(|e| format!("exported file does not load: {e}"))?;
    std::fs::write(&a.out, &bytes).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let h = lcodec_models::weights::weights_hash(&bytes);
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    println!(
        "exported step {step} -> {} ({} bytes, xxh3-128 {hex})",
        a.out.display(),
        bytes.len()
    );
    Ok(())
}

fn import(a: &ImportArgs) -> Res<()> {
    let bytes = std::fs::read(&a.weights).map_err(|e| format!("{}: {e}", a.weights.display()))?;
    let (model, kl) = TchHyperprior::from_exported_fitted(&bytes, Device::Cpu, a.fit_iters)
        .map_err(|e| format!("{}: {e}", a.weights.display()))?;
    eprintln!("z prior fitted to the file's tables: KL {kl:.5} bits/symbol");
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    save(&model, &a.out, a.step, false, &mut std::io::stderr())
}

fn widen(a: &WidenArgs) -> Res<()> {
    tch::manual_seed(a.seed as i64);
    rewrite_checkpoint(&a.ckpt, &a.out, |m| m.widened(a.m))
}

fn add_level(a: &AddLevelArgs) -> Res<()> {
    rewrite_checkpoint(&a.ckpt, &a.out, |m| m.with_level(a.lambda))
}

fn keep_levels(a: &KeepLevelsArgs) -> Res<()> {
    if a.levels.contains(&0) {
        return Err("--levels counts from 1 (as --quality does)".into());
    }
    let keep: Vec<usize> = a.levels.iter().map(|l| l - 1).collect();
    rewrite_checkpoint(&a.ckpt, &a.out, |m| m.with_levels(&keep))
}

/// Loads the checkpoint in `ckpt`, turns it into another network with `f`, and writes that
/// to `out` at the same step (its own state.txt).
fn rewrite_checkpoint(
    ckpt: &Path,
    out: &Path,
    f: impl FnOnce(&TchHyperprior) -> lcodec_core::Result<TchHyperprior>,
) -> Res<()> {
    let (step, cfg) = read_state(ckpt)?;
    let mut old = TchHyperprior::new(cfg, Device::Cpu).map_err(|e| e.to_string())?;
    old.load_checkpoint(ckpt).map_err(|e| e.to_string())?;
    let new = f(&old).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    save(&new, out, step, false, &mut std::io::stderr())
}
