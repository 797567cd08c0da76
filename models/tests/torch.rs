//! tch backend vs the pure-Rust CPU backend, training smoke test, checkpoints.
//! Runs only with `--features torch` (needs LIBTORCH, see TRAINING.md).
#![allow(clippy::unwrap_used)]
#![cfg(feature = "torch")]

use lcodec_models::hyperprior::{HyperpriorConfig, MeanScaleHyperprior};
use lcodec_models::torch::TchHyperprior;
use ndarray::{Array3, Array4};
use tch::nn::OptimizerConfig;
use tch::{Device, Kind, Tensor};

fn to_tensor3(a: &Array3<f32>) -> Tensor {
    let (c, h, w) = a.dim();
    Tensor::from_slice(a.as_standard_layout().as_slice().unwrap())
        .view([1, c as i64, h as i64, w as i64])
}

fn to_array3(t: &Tensor) -> Array3<f32> {
    let s = t.size();
    let v =
        Vec::<f32>::try_from(t.detach().to_kind(Kind::Float).contiguous().flatten(0, -1)).unwrap();
    Array3::from_shape_vec((s[1] as usize, s[2] as usize, s[3] as usize), v).unwrap()
}

/// max |a - b| / max |b|
fn rel(a: &Array3<f32>, b: &Array3<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    let m = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f32, |e, (x, y)| e.max((x - y).abs()))
        / m
}

/// Transforms agree between backends within this relative tolerance (f32 with different
/// summation orders / FMA; measured ~1e-6).
const TOL: f32 = 1e-4;

/// A small two-level model (N=8, M=12, λ 0.01 and 0.04), seeded.
fn two_level_model(seed: i64, arch: lcodec_models::hyperprior::Arch) -> TchHyperprior {
    tch::manual_seed(seed);
    let cfg = HyperpriorConfig {
        n: 8,
        m: 12,
        lambdas: vec![0.01, 0.04],
        arch,
    };
    TchHyperprior::new(cfg, Device::Cpu).unwrap()
}

/// A batch of 4 smooth 64x64 pictures at levels 0, 1, 0, 1 and their λs.
fn two_level_batch() -> (Tensor, Tensor, Tensor) {
    let base = Tensor::rand([4, 3, 4, 4], (Kind::Float, Device::Cpu));
    (
        base.upsample_bilinear2d([64, 64], false, None, None),
        Tensor::from_slice(&[0i64, 1, 0, 1]),
        Tensor::from_slice(&[0.01f32, 0.04, 0.01, 0.04]),
    )
}

/// `steps` Adam steps (lr 2e-3, clip 1.0) on rate + λ·255²·MSE; the loss of each step.
fn train_steps(m: &TchHyperprior, batch: &(Tensor, Tensor, Tensor), steps: usize) -> Vec<f64> {
    let (x, q, lam) = batch;
    let mut opt = tch::nn::Adam::default().build(&m.vs, 2e-3).unwrap();
    (0..steps)
        .map(|_| {
            let f = m.forward(x, q, true);
            let loss = (&f.bpp + lam * (255.0 * 255.0) * &f.mse).mean(Kind::Float);
            opt.zero_grad();
            loss.backward();
            opt.clip_grad_norm(1.0);
            opt.step();
            loss.double_value(&[])
        })
        .collect()
}

#[test]
fn tch_and_cpu_backends_agree() {
    tch::manual_seed(11);
    let cfg = HyperpriorConfig {
        n: 16,
        m: 24,
        lambdas: vec![0.005, 0.02],
        arch: Default::default(),
    };
    let tm = TchHyperprior::new(cfg, Device::Cpu).unwrap();
    let bytes = tm.export(false).unwrap();
    let cm = MeanScaleHyperprior::from_bytes(&bytes).unwrap();
    let x = Array3::from_shape_fn((3, 128, 192), |(c, y, x)| {
        (((x * 3 + y * 5 + c * 17) % 97) as f32 / 96.0 + (y as f32 / 40.0).sin() * 0.2)
            .clamp(0.0, 1.0)
    });
    let xt = to_tensor3(&x);
    for q in 0..2usize {
        let qt = Tensor::from_slice(&[q as i64]);
        let (yt, zt) = tch::no_grad(|| {
            let y = tm.analysis(&xt, &qt);
            let z = tm.hyper_analysis(&y);
            (y, z)
        });
        let yc = cm.analysis(x.view(), q).unwrap();
        let e_y = rel(&yc, &to_array3(&yt));
        let zc = cm.hyper_analysis(yc.view()).unwrap();
        let e_z = rel(&zc, &to_array3(&zt));
        let z_hat = zc.mapv(f32::round);
        let (mt, st) = tch::no_grad(|| tm.hyper_synthesis(&to_tensor3(&z_hat)));
        let (mc, sc) = cm.hyper_synthesis(z_hat.view()).unwrap();
        let e_m = rel(&mc, &to_array3(&mt));
        let e_s = rel(&sc, &to_array3(&st));
        let y_hat = &(&yc - &mc).mapv(f32::round) + &mc;
        let xt_hat = tch::no_grad(|| tm.synthesis(&to_tensor3(&y_hat), &qt));
        let xc_hat = cm.synthesis(y_hat.view(), q).unwrap();
        let e_x = rel(&xc_hat, &to_array3(&xt_hat));
        println!(
            "q={q} rel errors: y {e_y:.2e} z {e_z:.2e} means {e_m:.2e} scales {e_s:.2e} x_hat {e_x:.2e}"
        );
        for (what, e) in [
            ("y", e_y),
            ("z", e_z),
            ("means", e_m),
            ("scales", e_s),
            ("x_hat", e_x),
        ] {
            assert!(e < TOL, "{what}: backends differ by {e}");
        }
    }
}

#[test]
fn training_decreases_the_loss() {
    tch::manual_seed(5);
    let cfg = HyperpriorConfig {
        n: 8,
        m: 12,
        lambdas: vec![0.01],
        arch: Default::default(),
    };
    let tm = TchHyperprior::new(cfg, Device::Cpu).unwrap();
    let mut opt = tch::nn::Adam::default().build(&tm.vs, 2e-3).unwrap();
    // Smooth synthetic images: a fixed batch of 4 random low-frequency patterns.
    let base = Tensor::rand([4, 3, 4, 4], (Kind::Float, Device::Cpu));
    let x = base.upsample_bilinear2d([64, 64], false, None, None);
    let q = Tensor::from_slice(&[0i64, 0, 0, 0]);
    let mut losses = vec![];
    for _ in 0..60 {
        let f = tm.forward(&x, &q, true);
        let d: Tensor = &f.mse * (0.01 * 255.0 * 255.0);
        let loss = (&f.bpp + d).mean(Kind::Float);
        opt.zero_grad();
        loss.backward();
        opt.clip_grad_norm(1.0);
        opt.step();
        losses.push(loss.double_value(&[]));
    }
    let first: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = losses[losses.len() - 5..].iter().sum::<f64>() / 5.0;
    println!("loss {first:.3} -> {last:.3}");
    assert!(
        last < 0.7 * first,
        "loss did not decrease: {first} -> {last}"
    );
}

#[test]
fn checkpoint_round_trip_reproduces_the_export() {
    tch::manual_seed(3);
    let cfg = HyperpriorConfig {
        n: 8,
        m: 12,
        lambdas: vec![0.01, 0.03],
        arch: Default::default(),
    };
    let a = TchHyperprior::new(cfg.clone(), Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Tiny part size forces several files.
    let parts = a.save_checkpoint(dir.path(), 20_000, false).unwrap();
    assert!(parts.len() > 1);
    tch::manual_seed(4);
    let mut b = TchHyperprior::new(cfg.clone(), Device::Cpu).unwrap();
    assert_ne!(a.export(false).unwrap(), b.export(false).unwrap());
    b.load_checkpoint(dir.path()).unwrap();
    let (ea, eb) = (a.export(false).unwrap(), b.export(false).unwrap());
    if ea != eb {
        let (wa, wb) = (
            safetensors::SafeTensors::deserialize(&ea).unwrap(),
            safetensors::SafeTensors::deserialize(&eb).unwrap(),
        );
        let differing: Vec<String> = wa
            .names()
            .into_iter()
            .filter(|n| wa.tensor(n).unwrap().data() != wb.tensor(n).unwrap().data())
            .map(String::from)
            .collect();
        panic!("exports differ after loading the checkpoint in: {differing:?}");
    }
    // Half-precision checkpoints load too (values rounded to f16).
    let dir2 = tempfile::tempdir().unwrap();
    a.save_checkpoint(dir2.path(), 1 << 30, true).unwrap();
    let mut c = TchHyperprior::new(cfg, Device::Cpu).unwrap();
    c.load_checkpoint(dir2.path()).unwrap();
    let _ = Array4::<f32>::zeros((1, 1, 1, 1));
    assert!(MeanScaleHyperprior::from_bytes(&c.export(true).unwrap()).is_ok());
    // A checkpoint of another size is refused.
    let other = TchHyperprior::new(
        HyperpriorConfig {
            n: 4,
            m: 12,
            lambdas: vec![0.01, 0.03],
            arch: Default::default(),
        },
        Device::Cpu,
    )
    .unwrap();
    let mut other = other;
    assert!(other.load_checkpoint(dir.path()).is_err());
}

#[test]
fn checkerboard_backends_agree_and_quantize_identically() {
    use lcodec_models::hyperprior::Arch;
    for arch in [Arch::Checkerboard, Arch::ChannelCheckerboard] {
        context_backends_agree(arch);
    }
}

fn context_backends_agree(arch: lcodec_models::hyperprior::Arch) {
    tch::manual_seed(12);
    let cfg = HyperpriorConfig {
        n: 16,
        m: 24,
        lambdas: vec![0.005, 0.02],
        arch,
    };
    let tm = TchHyperprior::new(cfg, Device::Cpu).unwrap();
    let bytes = tm.export(false).unwrap();
    let cm = MeanScaleHyperprior::from_bytes(&bytes).unwrap();
    assert_eq!(cm.config().arch, arch);
    let x = Array3::from_shape_fn((3, 128, 192), |(c, y, x)| {
        (((x * 7 + y * 3 + c * 11) % 89) as f32 / 88.0 + (x as f32 / 30.0).cos() * 0.2)
            .clamp(0.0, 1.0)
    });
    let xt = to_tensor3(&x);
    let qt = Tensor::from_slice(&[1i64]);
    // Latents scaled up so that many symbols are non-zero (the network is untrained).
    let y = tch::no_grad(|| tm.analysis(&xt, &qt)) * 30.0;
    let z_hat = to_array3(&tch::no_grad(|| tm.hyper_analysis(&y))).mapv(|v| (v * 4.0).round());
    let yc = to_array3(&y);
    let (mt, st, yt_hat) = tch::no_grad(|| {
        let hyper = tm.hyper_params(&to_tensor3(&z_hat));
        tm.entropy_params(&y, &hyper, false)
    });
    let hyper = cm.hyper_params(z_hat.view()).unwrap();
    let (means, scales, y_hat) = cm.context_quantize(hyper.view(), yc.view()).unwrap();
    let (e_m, e_s) = (rel(&means, &to_array3(&mt)), rel(&scales, &to_array3(&st)));
    println!("{arch:?} rel errors: means {e_m:.2e} scales {e_s:.2e}");
    assert!(e_m < TOL && e_s < TOL, "{arch:?}: means {e_m} scales {e_s}");
    // Quantized latents agree exactly.
    let q_c = (&yc - &means).mapv(f32::round);
    let q_t = (&yc - &to_array3(&mt)).mapv(f32::round);
    let differ = q_c.iter().zip(&q_t).filter(|(a, b)| a != b).count();
    let nonzero = q_c.iter().filter(|v| **v != 0.0).count();
    println!(
        "{nonzero} of {} latents non-zero, {differ} differ",
        q_c.len()
    );
    assert!(nonzero > q_c.len() / 4);
    assert_eq!(differ, 0);
    assert!(rel(&y_hat, &to_array3(&yt_hat)) < TOL);
}

#[test]
fn checkerboard_training_decreases_the_loss_and_exports() {
    let tm = two_level_model(6, lcodec_models::hyperprior::Arch::Checkerboard);
    let losses = train_steps(&tm, &two_level_batch(), 60);
    let first: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = losses[losses.len() - 5..].iter().sum::<f64>() / 5.0;
    println!("checkerboard loss {first:.3} -> {last:.3}");
    assert!(
        last < 0.7 * first,
        "loss did not decrease: {first} -> {last}"
    );
    // The context weights are exported masked and the CPU backend loads the file.
    let bytes = tm.export(true).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let w = st.tensor("ctx.weight").unwrap();
    assert_eq!(w.shape(), &[24, 12, 5, 5]);
    let vals: Vec<u16> = w
        .data()
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect();
    for (i, v) in vals.iter().enumerate() {
        let (ky, kx) = ((i / 5) % 5, i % 5);
        if (ky + kx) % 2 == 0 {
            assert_eq!(*v & 0x7fff, 0, "masked tap ({ky},{kx}) stored non-zero");
        }
    }
    let cm = MeanScaleHyperprior::from_bytes(&bytes).unwrap();
    assert_eq!(
        cm.config().arch,
        lcodec_models::hyperprior::Arch::Checkerboard
    );
}

/// `b` computes what `a` does on `x` at levels `q` (evaluation mode): the same
/// reconstruction within 1e-5 and the same estimated rate within 0.1 %.
fn assert_same_function(a: &TchHyperprior, b: &TchHyperprior, x: &Tensor, q: &Tensor, what: &str) {
    let (fa, fb) = (a.forward(x, q, false), b.forward(x, q, false));
    let dx = (&fa.x_hat - &fb.x_hat).abs().max().double_value(&[]);
    let (ra, rb) = (
        fa.bpp.mean(Kind::Float).double_value(&[]),
        fb.bpp.mean(Kind::Float).double_value(&[]),
    );
    println!("{what}: max |Δx̂| {dx:e}, bpp {ra:.5} -> {rb:.5}");
    assert!(dx < 1e-5, "{what}: reconstruction changed by {dx}");
    assert!(
        (ra - rb).abs() < 1e-3 * ra.max(1.0),
        "{what}: bpp {ra} -> {rb}"
    );
}

/// Widening the latent (M) keeps what the network computes: same reconstruction and the
/// same rate (the new channels start silent), for both architectures; the widened network
/// then trains on (its loss goes down from there).
#[test]
fn widening_the_latent_keeps_the_function_and_trains_on() {
    for arch in [
        lcodec_models::hyperprior::Arch::Checkerboard,
        lcodec_models::hyperprior::Arch::MeanScale,
    ] {
        let tm = two_level_model(11, arch);
        let batch = two_level_batch();
        let (x, q) = (&batch.0, &batch.1);
        train_steps(&tm, &batch, 30);
        let wide = tm.widened(20).unwrap();
        assert_eq!(wide.cfg.m, 20);
        assert!(tm.widened(12).is_err());
        assert_same_function(&tm, &wide, x, q, &format!("{arch:?} widened"));
        let losses = train_steps(&wide, &batch, 40);
        let (first, last) = (losses[0], losses[losses.len() - 1]);
        assert!(losses.iter().all(|l| l.is_finite()));
        assert!(last < first, "{arch:?}: widened loss {first} -> {last}");
    }
}

/// A checkerboard model turned into the channel-group context model computes the same
/// (reconstruction and rate), exports with its context weights unmasked, and trains on;
/// only a checkerboard model can be turned.
#[test]
fn adding_channel_context_keeps_the_function_and_trains_on() {
    use lcodec_models::hyperprior::Arch;
    let tm = two_level_model(13, Arch::Checkerboard);
    let batch = two_level_batch();
    let (x, q) = (&batch.0, &batch.1);
    train_steps(&tm, &batch, 30);
    let cc = tm.with_channel_context().unwrap();
    assert_eq!(cc.cfg.arch, Arch::ChannelCheckerboard);
    assert!(cc.with_channel_context().is_err());
    assert!(
        two_level_model(1, Arch::MeanScale)
            .with_channel_context()
            .is_err()
    );
    assert_same_function(&tm, &cc, x, q, "channel context");
    let losses = train_steps(&cc, &batch, 40);
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(losses[losses.len() - 1] < losses[0], "loss {losses:?}");
    // Training put weight on the taps the checkerboard mask hid; the export keeps them.
    let bytes = cc.export(false).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let w = st.tensor("ctx.weight").unwrap();
    let even_nonzero = w
        .data()
        .chunks_exact(4)
        .enumerate()
        .filter(|(i, b)| {
            let (ky, kx) = ((i / 5) % 5, i % 5);
            (ky + kx) % 2 == 0 && f32::from_le_bytes([b[0], b[1], b[2], b[3]]) != 0.0
        })
        .count();
    assert!(even_nonzero > 0);
    let cm = MeanScaleHyperprior::from_bytes(&bytes).unwrap();
    assert_eq!(cm.config().arch, Arch::ChannelCheckerboard);
}

/// A smooth 64x64 picture (random 4x4 upsampled).
fn smooth_picture() -> Tensor {
    Tensor::rand([1, 3, 4, 4], (Kind::Float, Device::Cpu)).upsample_bilinear2d(
        [64, 64],
        false,
        None,
        None,
    )
}

/// Level `q`'s reconstruction of `x` and its estimated bpp (eval mode: true rounding).
fn run_level(m: &TchHyperprior, x: &Tensor, q: i64) -> (Tensor, f64) {
    let f = m.forward(x, &Tensor::from_slice(&[q]), false);
    (f.x_hat, f.bpp.double_value(&[0]))
}

/// Adding a quality level keeps every old level's output (at its shifted index) and puts
/// the new level where its λ says: below the lowest level in rate for a smaller λ.
#[test]
fn adding_a_level_keeps_the_others_and_extrapolates_the_gain() {
    let tm = two_level_model(12, lcodec_models::hyperprior::Arch::Checkerboard);
    let x = smooth_picture();
    let run = |m: &TchHyperprior, q: i64| run_level(m, &x, q);
    let low = tm.with_level(0.0025).unwrap();
    assert_eq!(low.cfg.lambdas, vec![0.0025, 0.01, 0.04]);
    for q in 0..2 {
        let (a, ra) = run(&tm, q);
        let (b, rb) = run(&low, q + 1);
        assert_eq!(ra, rb, "level {q}: rate changed");
        assert_eq!((a - b).abs().max().double_value(&[]), 0.0, "level {q}");
    }
    let (_, r_new) = run(&low, 0);
    let (_, r_old) = run(&tm, 0);
    assert!(r_new < r_old, "new lowest level {r_new} bpp vs {r_old}");
    // In the middle, and above the top.
    let mid = tm.with_level(0.02).unwrap();
    assert_eq!(mid.cfg.lambdas, vec![0.01, 0.02, 0.04]);
    let top = tm.with_level(0.1).unwrap();
    assert_eq!(run(&top, 1).1, run(&tm, 1).1);
    assert!(tm.with_level(0.01).is_err() && tm.with_level(-1.0).is_err());
}

/// Keeping a subset of the levels keeps each kept level's output exactly, and refuses
/// empty, unsorted or out-of-range lists.
#[test]
fn keeping_levels_keeps_their_outputs() {
    let tm = two_level_model(12, lcodec_models::hyperprior::Arch::Checkerboard)
        .with_level(0.02)
        .unwrap();
    let x = smooth_picture();
    let run = |m: &TchHyperprior, q: i64| run_level(m, &x, q);
    let top = tm.with_levels(&[1, 2]).unwrap();
    assert_eq!(top.cfg.lambdas, vec![0.02, 0.04]);
    for (new_q, old_q) in [(0, 1), (1, 2)] {
        let (a, ra) = run(&tm, old_q);
        let (b, rb) = run(&top, new_q);
        assert_eq!(ra, rb, "level {old_q}: rate changed");
        assert_eq!((a - b).abs().max().double_value(&[]), 0.0, "level {old_q}");
    }
    for bad in [&[][..], &[2, 1], &[1, 1], &[3]] {
        assert!(tm.with_levels(bad).is_err(), "{bad:?} accepted");
    }
}

/// A trained model exported (f32) and imported back computes the same function: the
/// transforms as stored, and the factorized prior's density, which the file holds only as
/// integer tables, refitted to them (a network left with the initial density codes `z`
/// measurably worse, so this test sees the fit). f16 files import too.
#[test]
fn importing_an_export_restores_the_function_and_the_z_prior() {
    for arch in [
        lcodec_models::hyperprior::Arch::Checkerboard,
        lcodec_models::hyperprior::Arch::ChannelCheckerboard,
    ] {
        let tm = two_level_model(5, arch);
        let batch = two_level_batch();
        let (x, q) = (&batch.0, &batch.1);
        train_steps(&tm, &batch, 60);
        let bytes = tm.export(false).unwrap();
        tch::manual_seed(9);
        let (fitted, kl) = TchHyperprior::from_exported_fitted(&bytes, Device::Cpu, 2000).unwrap();
        assert!(kl < 0.02, "{arch:?}: KL after the fit {kl}");
        assert_same_function(&tm, &fitted, x, q, &format!("{arch:?} imported"));
        let unfitted = TchHyperprior::from_exported(&bytes, Device::Cpu).unwrap();
        let (r0, r1) = (
            tm.forward(x, q, false)
                .bpp
                .mean(Kind::Float)
                .double_value(&[]),
            unfitted
                .forward(x, q, false)
                .bpp
                .mean(Kind::Float)
                .double_value(&[]),
        );
        assert!(
            r1 > r0 + 1e-3 * r0.max(1.0),
            "{arch:?}: the initial density codes z no worse ({r0} vs {r1})"
        );
        let half = tm.export(true).unwrap();
        assert!(TchHyperprior::from_exported_fitted(&half, Device::Cpu, 10).is_ok());
    }
    // A channel whose table holds one symbol (a dead z channel of a trained model) gets
    // (nearly) all of the density's mass on that value.
    let mut m = two_level_model(6, lcodec_models::hyperprior::Arch::Checkerboard);
    let (mut offsets, mut freqs) = m.z_tables();
    offsets[0] = 2;
    freqs[0] = vec![1 << 16];
    let kl = m.fit_z_prior(&offsets, &freqs, 2000).unwrap();
    let (o, f) = m.z_tables();
    let at2 = f[0][(2 - o[0]) as usize] as f64 / 65536.0;
    assert!(at2 > 0.99, "dead channel: mass {at2} at its value, KL {kl}");
    assert!(m.fit_z_prior(&offsets[1..], &freqs[1..], 1).is_err());
}
