//! CPU backend: loading, shapes, error paths, determinism of the hyper-synthesis.
#![allow(clippy::unwrap_used)]
use lcodec_models::hyperprior::{HyperpriorConfig, MeanScaleHyperprior, random_weights};
use ndarray::Array3;

fn small() -> HyperpriorConfig {
    HyperpriorConfig {
        n: 8,
        m: 12,
        lambdas: vec![0.01, 0.02],
        arch: Default::default(),
    }
}

#[test]
fn random_model_runs_all_transforms_with_expected_shapes() {
    let bytes = random_weights(&small(), 7).unwrap();
    let model = MeanScaleHyperprior::from_bytes(&bytes).unwrap();
    let x = Array3::from_shape_fn((3, 128, 64), |(c, y, x)| {
        ((c + y * 3 + x * 7) % 255) as f32 / 255.0
    });
    let y = model.analysis(x.view(), 1).unwrap();
    assert_eq!(y.dim(), (12, 8, 4));
    let z = model.hyper_analysis(y.view()).unwrap();
    assert_eq!(z.dim(), (8, 2, 1));
    let zh = z.mapv(f32::round);
    let (means, scales) = model.hyper_synthesis(zh.view()).unwrap();
    assert_eq!(means.dim(), (12, 8, 4));
    assert_eq!(scales.dim(), (12, 8, 4));
    let yh = &(&y - &means).mapv(f32::round) + &means;
    let xh = model.synthesis(yh.view(), 1).unwrap();
    assert_eq!(xh.dim(), (3, 128, 64));
    assert!(xh.iter().all(|v| v.is_finite()));
    assert_eq!(model.z_tables().freqs.len(), 8);
}

#[test]
fn hyper_synthesis_bits_do_not_depend_on_threads() {
    let bytes = random_weights(
        &HyperpriorConfig {
            n: 16,
            m: 24,
            lambdas: vec![0.01],
            arch: Default::default(),
        },
        3,
    )
    .unwrap();
    let model = MeanScaleHyperprior::from_bytes(&bytes).unwrap();
    let z = Array3::from_shape_fn((16, 3, 5), |(c, y, x)| {
        ((c * 5 + y * 3 + x) % 7) as f32 - 3.0
    });
    let run = |n: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
            .install(|| model.hyper_synthesis(z.view()).unwrap())
    };
    let (m1, s1) = run(1);
    let (m4, s4) = run(4);
    let b = |a: &Array3<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(b(&m1), b(&m4));
    assert_eq!(b(&s1), b(&s4));
}

#[test]
fn bad_weight_files_are_errors_not_panics() {
    assert!(MeanScaleHyperprior::from_bytes(b"").is_err());
    assert!(MeanScaleHyperprior::from_bytes(b"garbage that is not safetensors").is_err());
    let bytes = random_weights(&small(), 1).unwrap();
    for cut in [8, 100, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            MeanScaleHyperprior::from_bytes(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    // Wrong quality and shapes.
    let model = MeanScaleHyperprior::from_bytes(&bytes).unwrap();
    let x = Array3::<f32>::zeros((3, 64, 64));
    assert!(model.analysis(x.view(), 2).is_err());
    assert!(
        model
            .analysis(Array3::<f32>::zeros((3, 60, 64)).view(), 0)
            .is_err()
    );
    assert!(
        model
            .hyper_synthesis(Array3::<f32>::zeros((3, 1, 1)).view())
            .is_err()
    );
}

#[test]
fn weights_hash_identifies_the_file() {
    let a = random_weights(&small(), 1).unwrap();
    let b = random_weights(&small(), 2).unwrap();
    let ma = MeanScaleHyperprior::from_bytes(&a).unwrap();
    let mb = MeanScaleHyperprior::from_bytes(&b).unwrap();
    assert_ne!(ma.weights_hash(), mb.weights_hash());
    // Serialisation is deterministic (sorted header), so the hash is reproducible.
    assert_eq!(a, random_weights(&small(), 1).unwrap());
    assert_eq!(
        ma.weights_hash(),
        MeanScaleHyperprior::from_bytes(&a).unwrap().weights_hash()
    );
}

fn ckbd_model(seed: u64) -> MeanScaleHyperprior {
    let cfg = HyperpriorConfig {
        n: 8,
        m: 12,
        lambdas: vec![0.01, 0.02],
        arch: lcodec_models::hyperprior::Arch::Checkerboard,
    };
    MeanScaleHyperprior::from_bytes(&random_weights(&cfg, seed).unwrap()).unwrap()
}

#[test]
fn checkerboard_passes_use_only_what_the_decoder_has() {
    use lcodec_models::hyperprior::is_anchor;
    let model = ckbd_model(4);
    assert_eq!(model.config().arch.id(), "ckbd-gain-v1");
    let z = Array3::from_shape_fn((8, 2, 3), |(c, y, x)| ((c + 2 * y + x) % 5) as f32 - 2.0);
    let hyper = model.hyper_params(z.view()).unwrap();
    assert_eq!(hyper.dim(), (24, 8, 12));
    let (ma, sa) = model.anchor_params(hyper.view()).unwrap();
    assert_eq!(ma.dim(), (12, 8, 12));
    let y_hat = Array3::from_shape_fn((12, 8, 12), |(c, y, x)| {
        ((c * 3 + y * 5 + x) % 9) as f32 - 4.0
    });
    let (mn, sn) = model.nonanchor_params(hyper.view(), y_hat.view()).unwrap();
    for ((c, r, q), &v) in mn.indexed_iter() {
        if is_anchor(r, q) {
            assert_eq!((v, sn[[c, r, q]]), (0.0, 0.0));
        } else {
            assert_eq!((ma[[c, r, q]], sa[[c, r, q]]), (0.0, 0.0));
        }
    }
    // Non-anchor values of ŷ are ignored; anchors change the context.
    let mut other = y_hat.clone();
    other[[3, 0, 1]] += 7.0;
    let (mn2, sn2) = model.nonanchor_params(hyper.view(), other.view()).unwrap();
    assert_eq!((&mn, &sn), (&mn2, &sn2));
    let mut other = y_hat.clone();
    other[[3, 2, 2]] += 7.0;
    let (mn3, _) = model.nonanchor_params(hyper.view(), other.view()).unwrap();
    assert_ne!(mn, mn3);
    // Same bits with 1 and 4 threads.
    let run = |n: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
            .install(|| {
                let (a, b) = model.anchor_params(hyper.view()).unwrap();
                let (c, d) = model.nonanchor_params(hyper.view(), y_hat.view()).unwrap();
                [a, b, c, d].map(|t| t.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            })
    };
    assert_eq!(run(1), run(4));
    // A mean-scale model has no checkerboard passes.
    let ms = MeanScaleHyperprior::from_bytes(&random_weights(&small(), 1).unwrap()).unwrap();
    let h2 = ms.hyper_params(z.view()).unwrap();
    assert!(ms.anchor_params(h2.view()).is_err());
    assert!(
        model
            .nonanchor_params(hyper.view(), y_hat.slice(ndarray::s![0..6, .., ..]))
            .is_err()
    );
}

#[test]
fn unknown_architecture_is_unsupported() {
    let mut bytes = random_weights(&small(), 2).unwrap();
    let pos = bytes
        .windows(12)
        .position(|w| w == b"mshp-gain-v1")
        .unwrap();
    bytes[pos..pos + 4].copy_from_slice(b"xxxx");
    assert!(matches!(
        MeanScaleHyperprior::from_bytes(&bytes),
        Err(lcodec_core::Error::Unsupported(_))
    ));
}
