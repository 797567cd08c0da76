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
