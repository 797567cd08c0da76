//! Kernel throughput in GFLOP/s (2 FLOP per multiply-add), fast vs deterministic path,
//! on layer shapes of the image codec at Kodak size (768x512).
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lcodec_kernels::{Conv2dParams, ConvTranspose2dParams, Mode, conv_transpose2d, conv2d, gdn};
use ndarray::{Array2, Array3, Array4};

fn data3(d: (usize, usize, usize)) -> Array3<f32> {
    Array3::from_shape_fn(d, |(a, b, c)| {
        ((a * 7 + b * 3 + c) % 13) as f32 / 13.0 - 0.5
    })
}
fn data4(d: (usize, usize, usize, usize)) -> Array4<f32> {
    Array4::from_shape_fn(d, |(a, b, c, e)| {
        ((a * 5 + b * 3 + c * 2 + e) % 11) as f32 / 50.0 - 0.1
    })
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernels");
    g.sample_size(10);
    // g_a layer 2: 128 -> 128, 5x5 stride 2, input 384x256 -> output 192x128.
    let x = data3((128, 384 / 2, 256 / 2));
    let w = data4((128, 128, 5, 5));
    let p = Conv2dParams {
        stride: 2,
        padding: 2,
    };
    let flops: u64 = 2 * 128 * 128 * 25 * (96 * 64);
    g.throughput(Throughput::Elements(flops));
    for mode in [Mode::Fast, Mode::Deterministic] {
        g.bench_function(format!("conv5x5s2_128_{mode:?}"), |b| {
            b.iter(|| conv2d(x.view(), w.view(), None, p, mode))
        });
    }
    // g_s layer: 128 -> 128 transposed 5x5 stride 2, 96x64 -> 192x128.
    let x = data3((128, 96, 64));
    let wt = data4((128, 128, 5, 5));
    let pt = ConvTranspose2dParams {
        stride: 2,
        padding: 2,
        output_padding: 1,
    };
    let flops: u64 = 2 * 128 * 128 * 25 * (96 * 64);
    g.throughput(Throughput::Elements(flops));
    for mode in [Mode::Fast, Mode::Deterministic] {
        g.bench_function(format!("deconv5x5s2_128_{mode:?}"), |b| {
            b.iter(|| conv_transpose2d(x.view(), wt.view(), None, pt, mode))
        });
    }
    // h_s last layer: 288 -> 384, 3x3 stride 1 at 48x32.
    let x = data3((288, 48, 32));
    let w = data4((384, 288, 3, 3));
    let p1 = Conv2dParams {
        stride: 1,
        padding: 1,
    };
    let flops: u64 = 2 * 384 * 288 * 9 * (48 * 32);
    g.throughput(Throughput::Elements(flops));
    for mode in [Mode::Fast, Mode::Deterministic] {
        g.bench_function(format!("conv3x3s1_288_384_{mode:?}"), |b| {
            b.iter(|| conv2d(x.view(), w.view(), None, p1, mode))
        });
    }
    let x = data3((128, 192, 128));
    let gamma = Array2::from_elem((128, 128), 0.01f32);
    let beta = vec![1.0f32; 128];
    g.throughput(Throughput::Elements(2 * 128 * 128 * 192 * 128u64));
    for mode in [Mode::Fast, Mode::Deterministic] {
        g.bench_function(format!("gdn128_{mode:?}"), |b| {
            b.iter(|| gdn(x.view(), &beta, gamma.view(), false, mode))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
