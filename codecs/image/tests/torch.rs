//! Encode with the analysis transforms on libtorch, decode on the CPU kernels: the
//! decoder reconstructs exactly the encoder's ŷ. Needs `--features torch`.
#![allow(clippy::unwrap_used)]
#![cfg(feature = "torch")]
use lcodec_image::ImageCodec;
use lcodec_models::hyperprior::{HyperpriorConfig, random_weights};
use lcodec_models::torch::TchHyperprior;

#[test]
fn torch_encode_cpu_decode_is_bit_exact() {
    let cfg = HyperpriorConfig {
        n: 8,
        m: 12,
        lambdas: vec![0.005, 0.02],
        arch: Default::default(),
    };
    let weights = random_weights(&cfg, 9).unwrap();
    let codec = ImageCodec::try_new(&weights, "t").unwrap();
    let net = TchHyperprior::from_exported(&weights, tch::Device::cuda_if_available()).unwrap();
    let (w, h) = (150u32, 100u32);
    let rgb: Vec<u8> = (0..w * h * 3)
        .map(|i| ((i * 13 + i / 450 * 7) % 256) as u8)
        .collect();
    for q in 0..2 {
        let torch_payload = codec.encode_rgb_torch(&net, &rgb, w, h, q).unwrap();
        let cpu_payload = codec.encode_rgb(&rgb, w, h, q).unwrap();
        // Decoding with 1 and 3 threads gives the same bits.
        let pool = |n: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        };
        let a = pool(1).install(|| codec.decode_rgb(&torch_payload, w, h, q).unwrap());
        let b = pool(3).install(|| codec.decode_rgb(&torch_payload, w, h, q).unwrap());
        assert_eq!(a, b);
        // The CPU and torch analyses may round a few latents differently; the payloads are
        // then both valid and nearly the same size.
        let (lt, lc) = (torch_payload.len() as f64, cpu_payload.len() as f64);
        assert!(
            (lt - lc).abs() <= 0.02 * lc + 16.0,
            "torch {lt} vs cpu {lc} bytes"
        );
        println!(
            "q={q}: torch payload {lt} bytes, cpu payload {lc} bytes, identical: {}",
            torch_payload == cpu_payload
        );
    }
}

#[test]
fn decoder_reconstructs_the_encoders_latents_exactly() {
    let cfg = HyperpriorConfig {
        n: 8,
        m: 12,
        lambdas: vec![0.01],
        arch: Default::default(),
    };
    let weights = random_weights(&cfg, 5).unwrap();
    let codec = ImageCodec::try_new(&weights, "t").unwrap();
    let net = TchHyperprior::from_exported(&weights, tch::Device::Cpu).unwrap();
    let x = tch::Tensor::rand([1, 3, 128, 64], (tch::Kind::Float, tch::Device::Cpu));
    let q = tch::Tensor::from_slice(&[0i64]);
    let (y, z) = tch::no_grad(|| {
        let y = net.analysis(&x, &q);
        let z = net.hyper_analysis(&y);
        (y, z)
    });
    let arr = |t: &tch::Tensor| {
        let s = t.size();
        let v = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
        ndarray::Array3::from_shape_vec((s[1] as usize, s[2] as usize, s[3] as usize), v).unwrap()
    };
    // Scale the untrained latents up so that many symbols are non-zero.
    let (payload, y_hat_enc) = codec
        .encode_latents(&(arr(&y) * 40.0), &(arr(&z) * 8.0))
        .unwrap();
    assert!(
        payload.len() > 200,
        "payload of {} bytes exercises too little",
        payload.len()
    );
    let y_hat_dec = codec.decode_latents(&payload, 64, 128).unwrap();
    let bits = |a: &ndarray::Array3<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&y_hat_enc), bits(&y_hat_dec));
}

#[test]
fn checkerboard_torch_encode_cpu_decode_is_bit_exact() {
    use lcodec_models::hyperprior::Arch;
    tch::manual_seed(8);
    let cfg = HyperpriorConfig {
        n: 8,
        m: 12,
        lambdas: vec![0.005, 0.02],
        arch: Arch::Checkerboard,
    };
    // Weights from the training backend (exported), as shipped models are.
    let weights = TchHyperprior::new(cfg, tch::Device::Cpu)
        .unwrap()
        .export(true)
        .unwrap();
    let codec = ImageCodec::try_new(&weights, "t").unwrap();
    let net = TchHyperprior::from_exported(&weights, tch::Device::cuda_if_available()).unwrap();
    let (w, h) = (150u32, 100u32);
    let rgb: Vec<u8> = (0..w * h * 3)
        .map(|i| ((i * 13 + i / 450 * 7) % 256) as u8)
        .collect();
    for q in 0..2 {
        let torch_payload = codec.encode_rgb_torch(&net, &rgb, w, h, q).unwrap();
        let cpu_payload = codec.encode_rgb(&rgb, w, h, q).unwrap();
        let pool = |n: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        };
        let a = pool(1).install(|| codec.decode_rgb(&torch_payload, w, h, q).unwrap());
        let b = pool(3).install(|| codec.decode_rgb(&torch_payload, w, h, q).unwrap());
        assert_eq!(a, b);
        let (lt, lc) = (torch_payload.len() as f64, cpu_payload.len() as f64);
        assert!(
            (lt - lc).abs() <= 0.02 * lc + 16.0,
            "torch {lt} vs cpu {lc} bytes"
        );
        println!(
            "ckbd q={q}: torch payload {lt} bytes, cpu payload {lc} bytes, identical: {}",
            torch_payload == cpu_payload
        );
    }
    // Latents from torch, scaled so many symbols are non-zero: the CPU decoder rebuilds
    // exactly the encoder's ŷ, and the scale indices of torch's and the CPU's
    // parameters agree.
    let x = tch::Tensor::rand([1, 3, 128, 64], (tch::Kind::Float, tch::Device::Cpu));
    let net_cpu = TchHyperprior::from_exported(&weights, tch::Device::Cpu).unwrap();
    let qt = tch::Tensor::from_slice(&[0i64]);
    let (y, z) = tch::no_grad(|| {
        let y = net_cpu.analysis(&x, &qt) * 40.0;
        let z = net_cpu.hyper_analysis(&y) * 8.0;
        (y, z)
    });
    let arr = |t: &tch::Tensor| {
        let s = t.size();
        let v = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
        ndarray::Array3::from_shape_vec((s[1] as usize, s[2] as usize, s[3] as usize), v).unwrap()
    };
    let (payload, y_hat_enc) = codec.encode_latents(&arr(&y), &arr(&z)).unwrap();
    assert!(payload.len() > 200);
    let y_hat_dec = codec.decode_latents(&payload, 64, 128).unwrap();
    let bits = |a: &ndarray::Array3<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&y_hat_enc), bits(&y_hat_dec));
    let model = codec.default_model().unwrap();
    let cm = model.model();
    let z_hat = arr(&z).mapv(f32::round);
    let hyper_c = cm.hyper_params(z_hat.view()).unwrap();
    let (mt, st, _) = tch::no_grad(|| {
        let zt = tch::Tensor::from_slice(z_hat.as_slice().unwrap()).view([1, 8, 2, 1]);
        let hyper = net_cpu.hyper_params(&zt);
        // ŷ as decoded: the anchors the CPU decoder saw.
        let yt = tch::Tensor::from_slice(y_hat_dec.as_slice().unwrap()).view([1, 12, 8, 4]);
        let (ma, sa) = net_cpu.anchor_params(&hyper);
        let (mn, sn) = net_cpu.nonanchor_params(&hyper, &yt);
        let a = (tch::Tensor::arange(8, (tch::Kind::Int64, tch::Device::Cpu)).view([8, 1])
            + tch::Tensor::arange(4, (tch::Kind::Int64, tch::Device::Cpu)).view([1, 4]))
        .remainder(2)
        .eq(0)
        .to_kind(tch::Kind::Float)
        .view([1, 1, 8, 4]);
        let na = 1.0 - &a;
        (&ma * &a + &mn * &na, &sa * &a + &sn * &na, ())
    });
    let (ma, sa) = cm.anchor_params(hyper_c.view()).unwrap();
    let (mn, sn) = cm
        .nonanchor_params(hyper_c.view(), y_hat_dec.view())
        .unwrap();
    let (mc, sc) = (&ma + &mn, &sa + &sn);
    // Torch's float parameters are not the deterministic path (the codec never uses
    // them for coding): libtorch's kernels differ by machine (AVX2, AVX-512), so a value
    // that lies within rounding of a scale-table bound or of a half-integer may land on
    // either side. Everything else must agree exactly, and such ties must be rare.
    let idx = |s: f32| lcodec_entropy::scale_index(f64::from(s.abs().max(0.11)));
    let (mt, st) = (arr(&mt), arr(&st));
    let n = sc.len();
    let mut idx_ties = 0;
    for (a, b) in sc.iter().zip(st.iter()) {
        let (ia, ib) = (idx(*a), idx(*b));
        if ia != ib {
            let rel = ((a.abs().max(0.11) / b.abs().max(0.11)).ln()).abs();
            assert!(
                ia.abs_diff(ib) == 1 && rel < 1e-4,
                "scale indices differ between backends beyond rounding: cpu {a} ({ia}), torch {b} ({ib})"
            );
            idx_ties += 1;
        }
    }
    let y_arr = arr(&y);
    let mut q_ties = 0;
    for ((yv, a), b) in y_arr.iter().zip(mc.iter()).zip(mt.iter()) {
        let (ra, rb) = ((yv - a).round(), (yv - b).round());
        if ra != rb {
            let tie = ((yv - a).abs().fract() - 0.5).abs();
            assert!(
                (ra - rb).abs() == 1.0 && tie < 1e-3,
                "quantized latents differ between backends beyond rounding: y {yv}, cpu mean {a}, torch mean {b}"
            );
            q_ties += 1;
        }
    }
    println!("ckbd: {idx_ties} scale-index and {q_ties} rounding ties of {n}");
    assert!(
        idx_ties * 100 <= n && q_ties * 100 <= n,
        "too many ties: {idx_ties} scale indices, {q_ties} latents of {n}"
    );
    let md = mc
        .iter()
        .zip(mt.iter())
        .fold(0f32, |e, (a, b)| e.max((a - b).abs()));
    println!("ckbd means max |cpu - torch| = {md:.2e}");
    assert!(md < 1e-3);
}

/// The shipped model (`models/weights/image-ckbd-cc-v6.safetensors`) on a real photograph:
/// files encoded on libtorch decode on the CPU kernels (the same on 1 and 3 threads) to
/// the quality the CPU encoder reaches, at its lowest and highest level.
#[test]
fn shipped_model_torch_encode_cpu_decode() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let id = "image-ckbd-cc-v6";
    let weights = std::fs::read(root.join(format!("models/weights/{id}.safetensors")))
        .expect("the shipped image model is part of the checkout");
    torch_encode_cpu_decode(&root, &weights, id);
}

fn torch_encode_cpu_decode(root: &std::path::Path, weights: &[u8], id: &str) {
    let codec = ImageCodec::try_new(weights, id).unwrap();
    let net = TchHyperprior::from_exported(weights, tch::Device::cuda_if_available()).unwrap();
    // kodim23 when the shared data is there, else the synthetic fixture.
    let png = std::fs::read(root.join("../shared/data/images/kodak/kodim23.png"))
        .or_else(|_| std::fs::read(root.join("testdata/fixtures/image-synth.png")))
        .unwrap();
    let img = image::load_from_memory(&png).unwrap().to_rgb8();
    // A 320x192 crop from the middle (the parrots' heads) keeps the test short.
    let (w, h) = (img.width().min(320), img.height().min(192));
    let (x0, y0) = ((img.width() - w) / 2, (img.height() - h) / 2);
    let crop = image::imageops::crop_imm(&img, x0, y0, w, h).to_image();
    let rgb = crop.as_raw();
    let psnr = |out: &[u8]| {
        let se: f64 = rgb
            .iter()
            .zip(out)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        10.0 * (255.0f64 * 255.0 * rgb.len() as f64 / se.max(1e-9)).log10()
    };
    let pool = |n: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    for q in [0, codec.levels() - 1] {
        let tp = codec.encode_rgb_torch(&net, rgb, w, h, q).unwrap();
        let cp = codec.encode_rgb(rgb, w, h, q).unwrap();
        let a = pool(1).install(|| codec.decode_rgb(&tp, w, h, q).unwrap());
        let b = pool(3).install(|| codec.decode_rgb(&tp, w, h, q).unwrap());
        assert_eq!(a, b, "{id} q{q}: decoding depends on the thread count");
        let c = codec.decode_rgb(&cp, w, h, q).unwrap();
        let (pt, pc) = (psnr(&a), psnr(&c));
        let (lt, lc) = (tp.len() as f64, cp.len() as f64);
        println!("{id} q{q}: torch {lt} bytes {pt:.3} dB, cpu {lc} bytes {pc:.3} dB");
        assert!(
            (pt - pc).abs() < 0.05,
            "{id} q{q}: torch {pt} dB vs cpu {pc} dB"
        );
        assert!(
            (lt - lc).abs() <= 0.01 * lc + 16.0,
            "{id} q{q}: torch {lt} vs cpu {lc} bytes"
        );
    }
}
