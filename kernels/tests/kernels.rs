//! Fast and deterministic kernels against the scalar reference, and determinism across
//! thread counts.
#![allow(clippy::unwrap_used)]
use lcodec_kernels::{
    Conv2dParams, ConvTranspose2dParams, Mode, conv_transpose2d, conv2d, gdn, leaky_relu, reference,
};
use ndarray::{Array1, Array2, Array3, Array4};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rand3(rng: &mut ChaCha8Rng, d: (usize, usize, usize)) -> Array3<f32> {
    Array3::from_shape_fn(d, |_| rng.random_range(-1.0f32..1.0))
}
fn rand4(rng: &mut ChaCha8Rng, d: (usize, usize, usize, usize)) -> Array4<f32> {
    Array4::from_shape_fn(d, |_| rng.random_range(-0.3f32..0.3))
}

fn max_rel_err(a: &Array3<f32>, b: &Array3<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

fn bits(a: &Array3<f32>) -> Vec<u32> {
    a.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn conv2d_matches_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for &(c, o, h, w, k, s, p) in &[
        (3, 8, 17, 13, 5, 2, 2),
        (4, 5, 9, 9, 3, 1, 1),
        (2, 3, 7, 11, 1, 1, 0),
        (6, 4, 16, 16, 5, 2, 2),
        (5, 7, 8, 6, 3, 2, 0),
        (3, 2, 12, 10, 4, 3, 1),
    ] {
        let x = rand3(&mut rng, (c, h, w));
        let wt = rand4(&mut rng, (o, c, k, k));
        let b: Vec<f32> = (0..o).map(|_| rng.random_range(-1.0..1.0)).collect();
        let prm = Conv2dParams {
            stride: s,
            padding: p,
        };
        let r = reference::conv2d(x.view(), wt.view(), Some(&b), prm);
        for mode in [Mode::Fast, Mode::Deterministic] {
            let y = conv2d(x.view(), wt.view(), Some(&b), prm, mode);
            let e = max_rel_err(&y, &r);
            assert!(
                e < 1e-5,
                "conv2d {mode:?} {:?}: rel err {e}",
                (c, o, h, w, k, s, p)
            );
        }
    }
}

#[test]
fn conv2d_on_a_very_wide_input_matches_reference() {
    // One output row of 64*5*5 x 1400 im2col entries is over the size of the per-thread
    // im2col buffer that is kept between calls, so this tile takes its own buffer; the
    // small convolution after it reuses the kept one.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x = rand3(&mut rng, (64, 5, 1404));
    let wt = rand4(&mut rng, (2, 64, 5, 5));
    let prm = Conv2dParams {
        stride: 1,
        padding: 0,
    };
    let r = reference::conv2d(x.view(), wt.view(), None, prm);
    let y = conv2d(x.view(), wt.view(), None, prm, Mode::Fast);
    let e = max_rel_err(&y, &r);
    assert!(e < 1e-4, "wide conv2d: rel err {e}");
    let x2 = rand3(&mut rng, (3, 9, 9));
    let w2 = rand4(&mut rng, (4, 3, 3, 3));
    let r2 = reference::conv2d(x2.view(), w2.view(), None, prm);
    let y2 = conv2d(x2.view(), w2.view(), None, prm, Mode::Fast);
    assert!(max_rel_err(&y2, &r2) < 1e-5);
}

#[test]
fn conv_transpose2d_matches_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for &(c, o, h, w, k, s, p, op) in &[
        (4, 3, 5, 7, 5, 2, 2, 1),
        (3, 5, 6, 4, 5, 2, 2, 0),
        (2, 2, 4, 4, 3, 1, 1, 0),
        (5, 4, 3, 5, 4, 2, 1, 0),
        (3, 3, 4, 3, 3, 3, 1, 2),
        (2, 6, 1, 1, 5, 2, 2, 1),
        (3, 2, 5, 5, 2, 3, 0, 0),
    ] {
        let x = rand3(&mut rng, (c, h, w));
        let wt = rand4(&mut rng, (c, o, k, k));
        let b: Vec<f32> = (0..o).map(|_| rng.random_range(-1.0..1.0)).collect();
        let prm = ConvTranspose2dParams {
            stride: s,
            padding: p,
            output_padding: op,
        };
        let r = reference::conv_transpose2d(x.view(), wt.view(), Some(&b), prm);
        for mode in [Mode::Fast, Mode::Deterministic] {
            let y = conv_transpose2d(x.view(), wt.view(), Some(&b), prm, mode);
            let e = max_rel_err(&y, &r);
            assert!(
                e < 1e-5,
                "deconv {mode:?} {:?}: rel err {e}",
                (c, o, h, w, k, s, p, op)
            );
        }
    }
}

#[test]
fn gdn_and_igdn_match_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let c = 7;
    let x = rand3(&mut rng, (c, 9, 11));
    let beta: Vec<f32> = (0..c).map(|_| rng.random_range(0.5..1.5)).collect();
    let gamma = Array2::from_shape_fn((c, c), |(i, j)| {
        if i == j {
            0.1
        } else {
            rng.random_range(0.0..0.05)
        }
    });
    for inverse in [false, true] {
        let r = reference::gdn(x.view(), &beta, gamma.view(), inverse);
        for mode in [Mode::Fast, Mode::Deterministic] {
            let y = gdn(x.view(), &beta, gamma.view(), inverse, mode);
            let e = max_rel_err(&y, &r);
            assert!(e < 1e-5, "gdn inverse={inverse} {mode:?}: rel err {e}");
        }
    }
}

#[test]
fn leaky_relu_is_exact() {
    let x = Array1::from(vec![-2.0f32, -0.0, 0.0, 3.5])
        .into_shape_with_order((1, 1, 4))
        .unwrap();
    let y = leaky_relu(x.view(), 0.01);
    assert_eq!(y.as_slice().unwrap(), &[-0.02f32, -0.0, 0.0, 3.5]);
}

/// Runs `f` in a pool of `n` threads.
fn with_threads<T: Send>(n: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn deterministic_mode_has_same_bits_for_any_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    // Hyper-synthesis-like chain: deconv, leaky relu, deconv, conv 3x3, gdn.
    let z = rand3(&mut rng, (16, 6, 5));
    let w1 = rand4(&mut rng, (16, 24, 5, 5));
    let w2 = rand4(&mut rng, (24, 24, 5, 5));
    let w3 = rand4(&mut rng, (48, 24, 3, 3));
    let b3: Vec<f32> = (0..48).map(|_| rng.random_range(-1.0..1.0)).collect();
    let beta: Vec<f32> = (0..48).map(|_| rng.random_range(0.5..1.5)).collect();
    let gamma = Array2::from_shape_fn((48, 48), |_| rng.random_range(0.0..0.05));
    let up = ConvTranspose2dParams {
        stride: 2,
        padding: 2,
        output_padding: 1,
    };
    let run = || {
        let m = Mode::Deterministic;
        let a = leaky_relu(
            conv_transpose2d(z.view(), w1.view(), None, up, m).view(),
            0.01,
        );
        let a = leaky_relu(
            conv_transpose2d(a.view(), w2.view(), None, up, m).view(),
            0.01,
        );
        let a = conv2d(
            a.view(),
            w3.view(),
            Some(&b3),
            Conv2dParams {
                stride: 1,
                padding: 1,
            },
            m,
        );
        gdn(a.view(), &beta, gamma.view(), false, m)
    };
    let one = with_threads(1, run);
    let four = with_threads(4, run);
    let three = with_threads(3, run);
    assert_eq!(bits(&one), bits(&four));
    assert_eq!(bits(&one), bits(&three));
    // And the fast path on the same data agrees within float tolerance.
    let fast = with_threads(4, || {
        let m = Mode::Fast;
        let a = leaky_relu(
            conv_transpose2d(z.view(), w1.view(), None, up, m).view(),
            0.01,
        );
        let a = leaky_relu(
            conv_transpose2d(a.view(), w2.view(), None, up, m).view(),
            0.01,
        );
        let a = conv2d(
            a.view(),
            w3.view(),
            Some(&b3),
            Conv2dParams {
                stride: 1,
                padding: 1,
            },
            m,
        );
        gdn(a.view(), &beta, gamma.view(), false, m)
    });
    assert!(max_rel_err(&fast, &one) < 1e-4);
}

/// A golden checksum of the deterministic path: if this changes, the bits of the entropy
/// parameters changed and old files would no longer decode.
#[test]
fn deterministic_conv_golden_checksum() {
    let x = Array3::from_shape_fn((3, 7, 6), |(c, y, x)| {
        ((c * 31 + y * 7 + x * 3) % 17) as f32 / 7.0 - 1.0
    });
    let w = Array4::from_shape_fn((4, 3, 3, 3), |(o, i, a, b)| {
        ((o * 13 + i * 5 + a * 3 + b) % 11) as f32 / 13.0 - 0.4
    });
    let y = conv2d(
        x.view(),
        w.view(),
        Some(&[0.1, -0.2, 0.3, 0.05]),
        Conv2dParams {
            stride: 1,
            padding: 1,
        },
        Mode::Deterministic,
    );
    let h = bits(&y).iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    let reference = reference::conv2d(
        x.view(),
        w.view(),
        Some(&[0.1, -0.2, 0.3, 0.05]),
        Conv2dParams {
            stride: 1,
            padding: 1,
        },
    );
    assert!(max_rel_err(&y, &reference) < 1e-6);
    println!("golden hash {h:#x}");
    assert_eq!(h, GOLDEN);
}
const GOLDEN: u64 = 0x1afce77d23762fc;
