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

/// A random-weight context model (N=8, M=`m`, two levels), seeded.
fn context_model(
    seed: u64,
    m: usize,
    arch: lcodec_models::hyperprior::Arch,
) -> MeanScaleHyperprior {
    let cfg = HyperpriorConfig {
        n: 8,
        m,
        lambdas: vec![0.01, 0.02],
        arch,
    };
    MeanScaleHyperprior::from_bytes(&random_weights(&cfg, seed).unwrap()).unwrap()
}

fn ckbd_model(seed: u64) -> MeanScaleHyperprior {
    context_model(seed, 12, lcodec_models::hyperprior::Arch::Checkerboard)
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

/// A channel-group context model (N=8, M=16: groups of 2, 2, 4 and 8 channels), seeded.
fn cc_model(seed: u64) -> MeanScaleHyperprior {
    context_model(
        seed,
        16,
        lcodec_models::hyperprior::Arch::ChannelCheckerboard,
    )
}

/// Runs the context steps writing `src` at each step's entries; returns every step's
/// `(means, scales)` bits and the step each latent was decoded in.
fn steps_with(
    model: &MeanScaleHyperprior,
    hyper: &Array3<f32>,
    src: &Array3<f32>,
) -> (Vec<Vec<u32>>, Array3<usize>) {
    use lcodec_models::hyperprior::is_anchor;
    let mut y_hat = Array3::<f32>::zeros(src.dim());
    let mut when = Array3::<usize>::from_elem(src.dim(), usize::MAX);
    let mut params = vec![];
    let mut k = 0;
    model
        .run_context_steps(hyper.view(), &mut y_hat, |st, mu, sc, yh| {
            let mut bits = vec![];
            for ((c, r, q), &m) in mu.indexed_iter() {
                if is_anchor(r, q) == st.anchors {
                    let ch = st.start + c;
                    assert_eq!(when[[ch, r, q]], usize::MAX, "latent decoded twice");
                    when[[ch, r, q]] = k;
                    yh[[ch, r, q]] = src[[ch, r, q]];
                    bits.extend([m.to_bits(), sc[[c, r, q]].to_bits()]);
                } else {
                    assert_eq!((m, sc[[c, r, q]]), (0.0, 0.0));
                }
            }
            params.push(bits);
            k += 1;
            Ok(())
        })
        .unwrap();
    (params, when)
}

#[test]
fn channel_context_steps_use_only_what_the_decoder_has() {
    use lcodec_models::hyperprior::{Arch, channel_groups, context_steps};
    assert_eq!(
        channel_groups(128),
        vec![(0, 16), (16, 16), (32, 32), (64, 64)]
    );
    assert_eq!(channel_groups(16), vec![(0, 2), (2, 2), (4, 4), (8, 8)]);
    assert_eq!(channel_groups(4), vec![(0, 1), (1, 3)]);
    assert_eq!(context_steps(Arch::Checkerboard, 12).len(), 2);
    assert!(context_steps(Arch::MeanScale, 12).is_empty());
    let model = cc_model(5);
    assert_eq!(model.config().arch.id(), "ckbd-cc-v1");
    let steps = context_steps(Arch::ChannelCheckerboard, 16);
    assert_eq!(steps.len(), 8);
    let z = Array3::from_shape_fn((8, 2, 3), |(c, y, x)| ((c + 2 * y + x) % 5) as f32 - 2.0);
    let hyper = model.hyper_params(z.view()).unwrap();
    let src = Array3::from_shape_fn((16, 8, 12), |(c, y, x)| {
        ((c * 3 + y * 5 + x) % 9) as f32 - 4.0
    });
    let (base, when) = steps_with(&model, &hyper, &src);
    assert_eq!(base.len(), 8);
    assert!(when.iter().all(|&k| k < 8), "a latent was never decoded");
    // Changing a latent changes no step up to and including its own, and changes the
    // parameters of some later step (the context reaches across channels and space).
    for (i, &(c, r, q)) in [
        (0, 0, 0),
        (1, 3, 5),
        (3, 2, 2),
        (5, 4, 7),
        (9, 7, 11),
        (15, 0, 1),
    ]
    .iter()
    .enumerate()
    {
        let mut other = src.clone();
        other[[c, r, q]] += 3.0;
        let (p, _) = steps_with(&model, &hyper, &other);
        let k = when[[c, r, q]];
        assert_eq!(
            p[..=k],
            base[..=k],
            "latent {i} changed its own or an earlier step"
        );
        if k < 7 {
            assert_ne!(p[k + 1..], base[k + 1..], "latent {i} is nobody's context");
        }
    }
    // Same bits with 1 and 4 threads.
    let run = |n: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
            .install(|| steps_with(&model, &hyper, &src).0)
    };
    assert_eq!(run(1), run(4));
    // Wrong shapes and the other architectures' passes are refused.
    let mut short = Array3::<f32>::zeros((8, 8, 12));
    assert!(
        model
            .run_context_steps(hyper.view(), &mut short, |_, _, _, _| Ok(()))
            .is_err()
    );
    assert!(model.anchor_params(hyper.view()).is_err());
    let ms = MeanScaleHyperprior::from_bytes(&random_weights(&small(), 1).unwrap()).unwrap();
    let mut y = Array3::<f32>::zeros((ms.config().m, 8, 12));
    let h2 = ms.hyper_params(z.view()).unwrap();
    assert!(
        ms.run_context_steps(h2.view(), &mut y, |_, _, _, _| Ok(()))
            .is_err()
    );
}

/// A checkerboard model's file relabelled as the channel-group architecture (its context
/// weights are stored masked) computes the same parameters: the checkerboard is the
/// channel-group model's special case, which is how one is made from the other.
#[test]
fn masked_channel_context_model_computes_the_checkerboard_parameters() {
    let cfg = HyperpriorConfig {
        n: 8,
        m: 16,
        lambdas: vec![0.01, 0.02],
        arch: lcodec_models::hyperprior::Arch::Checkerboard,
    };
    let bytes = random_weights(&cfg, 7).unwrap();
    let ckbd = MeanScaleHyperprior::from_bytes(&bytes).unwrap();
    let relabelled = relabel_arch(&bytes, "ckbd-gain-v1", "ckbd-cc-v1");
    let cc = MeanScaleHyperprior::from_bytes(&relabelled).unwrap();
    assert_eq!(cc.config().arch.id(), "ckbd-cc-v1");
    let z = Array3::from_shape_fn((8, 2, 3), |(c, y, x)| {
        ((c * 3 + y + 2 * x) % 7) as f32 - 3.0
    });
    let y = Array3::from_shape_fn((16, 8, 12), |(c, r, q)| {
        ((c * 7 + r * 5 + q * 3) % 17) as f32 * 0.9 - 7.0
    });
    let (ma, sa, ya) = ckbd
        .context_quantize(ckbd.hyper_params(z.view()).unwrap().view(), y.view())
        .unwrap();
    let (mb, sb, yb) = cc
        .context_quantize(cc.hyper_params(z.view()).unwrap().view(), y.view())
        .unwrap();
    let close = |a: &Array3<f32>, b: &Array3<f32>| {
        a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-4 * (1.0 + y.abs()))
    };
    assert!(close(&ma, &mb) && close(&sa, &sb) && close(&ya, &yb));
}

/// The weights file `bytes` with the architecture id `from` replaced by `to` (no longer
/// than `from`; the header is padded with spaces, which JSON allows).
fn relabel_arch(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let head = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    let quoted = format!("\"{from}\"");
    assert!(head.contains(&quoted));
    let pad = " ".repeat(from.len() - to.len());
    let new = head.replace(&quoted, &format!("\"{to}\"{pad}"));
    assert_eq!(new.len(), n);
    let mut out = bytes.to_vec();
    out[8..8 + n].copy_from_slice(new.as_bytes());
    out
}
