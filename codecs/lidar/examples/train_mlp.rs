//! Trains the learned range predictor (see `lcodec_lidar::mlp`) with tch on KITTI frames,
//! quantizes it, and measures geometry bits per point with and without it on the
//! training and held-out frames (the real coder, not an estimate).
//!
//! ```text
//! export LIBTORCH=$(scripts/setup-torch.sh --print) LD_LIBRARY_PATH=$LIBTORCH/lib
//! cargo run --release -p lcodec-lidar --features torch --example train_mlp -- \
//!     --train A.bin,B.bin,... --heldout C.bin,D.bin [--steps 3000] [--hidden 16] \
//!     [--loss log|l1] [--seed 1] [--mode both|corr|compare|zprobe] \
//!     [--out models/weights/lidar-mlp-v1.safetensors]
//! ```
//!
//! `--mode both` (default) trains the range correction and the laser height, `corr` the
//! range correction only; `compare` measures simple linear predictors instead, `zprobe`
//! fits a laser height per elevation bucket (no network) to gauge the height gain.

use lcodec_lidar::format::{self, Format};
use lcodec_lidar::geom::{self, Learned, Sample};
use lcodec_lidar::mlp::{ACT_BITS, FEATURES, Mlp, OUTPUTS, WEIGHT_BITS};
use tch::{Device, Kind, Tensor, nn, nn::Module, nn::OptimizerConfig};

const PRECISION: f64 = 0.001;

struct Args {
    train: Vec<String>,
    heldout: Vec<String>,
    steps: usize,
    hidden: usize,
    loss: String,
    seed: i64,
    out: Option<String>,
    batch: i64,
    lr: f64,
    mode: String,
}

fn args() -> Args {
    let mut a = Args {
        train: Vec::new(),
        heldout: Vec::new(),
        steps: 3000,
        hidden: 16,
        loss: "log".into(),
        seed: 1,
        out: None,
        batch: 8192,
        lr: 3e-3,
        mode: "both".into(),
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < v.len() {
        let val = v[i + 1].clone();
        let list = || val.split(',').map(str::to_string).collect::<Vec<_>>();
        match v[i].as_str() {
            "--train" => a.train = list(),
            "--heldout" => a.heldout = list(),
            "--steps" => a.steps = val.parse().expect("steps"),
            "--hidden" => a.hidden = val.parse().expect("hidden"),
            "--loss" => a.loss = val,
            "--seed" => a.seed = val.parse().expect("seed"),
            "--out" => a.out = Some(val),
            "--batch" => a.batch = val.parse().expect("batch"),
            "--lr" => a.lr = val.parse().expect("lr"),
            "--mode" => a.mode = val,
            o => panic!("unknown option {o}"),
        }
        i += 2;
    }
    a
}

/// The frame's chunks as the codec codes them: (quantized points, step parameters).
fn chunks(path: &str) -> Vec<(Vec<[i32; 3]>, geom::GeomParams)> {
    let data = std::fs::read(path).expect("read frame");
    let fmt = format::detect(&data, Some(path), Some(data.len() as u64)).unwrap_or(Format::Kitti);
    let cloud = format::parse(&data, fmt).expect("parse");
    let n = cloud.len();
    let mut out = Vec::new();
    let cp = lcodec_lidar::DEFAULT_CHUNK_POINTS;
    for a in (0..n).step_by(cp) {
        let b = (a + cp).min(n);
        let (_, q) = lcodec_lidar::quantize(&cloud.xyz[a..b], PRECISION).expect("quantize");
        let p = geom::estimate_step(&q, None);
        out.push((q, p));
    }
    out
}

fn samples(paths: &[String]) -> Vec<Sample> {
    let mut v = Vec::new();
    for p in paths {
        for (q, gp) in chunks(p) {
            v.extend(geom::training_samples(&q, None, gp).expect("samples"));
        }
    }
    v
}

/// Geometry bytes and points over `paths`, with and without `mlp`.
fn measure(paths: &[String], mlp: &Mlp, l: Learned) -> (usize, usize, usize) {
    let (mut base, mut learned, mut n) = (0, 0, 0);
    let (mut pb, mut pl) = ([0usize; 4], [0usize; 4]);
    for path in paths {
        for (q, gp) in chunks(path) {
            let a = geom::part_bytes(&q, None, gp, None).expect("parts");
            let b = geom::part_bytes(&q, None, gp, Some((mlp, l))).expect("parts");
            for k in 0..4 {
                pb[k] += a[k];
                pl[k] += b[k];
            }
            base += geom::encode(&q, None, gp).expect("encode").len();
            let g = geom::encode_with(&q, None, gp, Some((mlp, l))).expect("encode mlp");
            let back =
                geom::decode_with(&g, q.len(), None, gp, Some((mlp, l))).expect("decode mlp");
            assert_eq!(back, q, "learned predictor does not round-trip");
            learned += g.len();
            n += q.len();
        }
    }
    let bpp = |v: [usize; 4]| v.map(|b| format!("{:.3}", b as f64 * 8.0 / n as f64));
    println!(
        "  radial / tangential / height / fallback b/p: classical {:?}, learned {:?}",
        bpp(pb),
        bpp(pl)
    );
    (base, learned, n)
}

/// Parent folder and file name of each path, comma-separated.
fn names(paths: &[String]) -> String {
    paths
        .iter()
        .map(|p| {
            let p = std::path::Path::new(p);
            let f = |q: Option<&std::path::Path>| {
                q.and_then(|q| q.file_name())
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default()
            };
            format!("{}/{}", f(p.parent()), f(Some(p)))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A network whose correction is `k` times feature `f` (a linear predictor written as
/// ReLU pairs), for comparison with simpler predictors.
fn linear(f: usize, k: f64) -> Mlp {
    let h = lcodec_lidar::mlp::HIDDEN;
    let one = 1i64 << WEIGHT_BITS;
    let mut w1 = vec![0i64; h * FEATURES];
    w1[f] = one;
    w1[FEATURES + f] = -one;
    let mut w2 = vec![0i64; h * h];
    w2[0] = one;
    w2[h + 1] = one;
    let mut w3 = vec![0i64; 2 * h];
    w3[0] = (k * one as f64).round() as i64;
    w3[1] = -(k * one as f64).round() as i64;
    Mlp::new(h, h, w1, vec![0; h], w2, vec![0; h], w3, [0, 0]).expect("linear network")
}

fn main() {
    let a = args();
    if a.mode == "zprobe" {
        // How much a per-laser height offset h (z += h · (1 - range / W's range)) could
        // save, with h fitted per elevation-slope bucket on the training samples.
        let tr = samples(&a.train);
        let ho = samples(&a.heldout);
        let bucket = |f: &[i64; FEATURES]| ((f[9] + 512).clamp(0, 1023) / 16) as usize;
        let cost = |dz: i64, t: f64, h: f64| (1.0 + (dz as f64 - h * t).round().abs()).log2();
        let mut best = vec![0f64; 64];
        for (b, slot) in best.iter_mut().enumerate() {
            let sub: Vec<&Sample> = tr.iter().filter(|s| bucket(&s.0) == b).collect();
            if sub.is_empty() {
                continue;
            }
            let mut bc = f64::MAX;
            for hi in -300..=300 {
                let h = hi as f64 * 10.0;
                let c: f64 = sub.iter().map(|s| cost(s.2, s.3, h)).sum();
                if c < bc {
                    bc = c;
                    *slot = h;
                }
            }
        }
        for (name, set) in [("train", &tr), ("held-out", &ho)] {
            let c0: f64 = set.iter().map(|s| cost(s.2, s.3, 0.0)).sum::<f64>() / set.len() as f64;
            let c1: f64 = set
                .iter()
                .map(|s| cost(s.2, s.3, best[bucket(&s.0)]))
                .sum::<f64>()
                / set.len() as f64;
            println!("{name}: log2(1+|dz|) {c0:.4} -> {c1:.4} with per-bucket offsets");
        }
        println!("offsets: {best:?}");
        return;
    }
    if a.mode == "compare" {
        let l = Learned {
            correct: true,
            height: false,
        };
        for (what, f, k) in [
            ("extrapolate this ring, k = 0.25", 0, 0.25),
            ("extrapolate this ring, k = 0.5", 0, 0.5),
            ("extrapolate this ring, k = 1", 0, 1.0),
            ("ring above's range change, k = 0.5", 2, 0.5),
            ("ring above's range change, k = 1", 2, 1.0),
        ] {
            println!("{what}:");
            for (set, paths) in [("train", &a.train), ("held-out", &a.heldout)] {
                let (b, v, n) = measure(paths, &linear(f, k), l);
                println!(
                    "  {set}: classical {:.4} b/p, this {:.4} b/p ({:+.2}%)",
                    b as f64 * 8.0 / n as f64,
                    v as f64 * 8.0 / n as f64,
                    (v as f64 / b as f64 - 1.0) * 100.0
                );
            }
        }
        return;
    }
    tch::manual_seed(a.seed);
    tch::set_num_threads(1);
    let t0 = std::time::Instant::now();
    let train = samples(&a.train);
    let held = samples(&a.heldout);
    println!(
        "{} training samples, {} held-out samples ({:.1} s)",
        train.len(),
        held.len(),
        t0.elapsed().as_secs_f64()
    );
    let to_tensors = |s: &[Sample]| {
        let clamp = lcodec_lidar::mlp::CLAMP;
        let scale = f64::from(1u32 << ACT_BITS);
        let x: Vec<f32> = s
            .iter()
            .flat_map(|(f, ..)| f.map(|v| (v.clamp(-clamp, clamp) as f64 / scale) as f32))
            .collect();
        // Targets: radial residual, height residual (both / 256), and the height
        // offset's factor 1 - range / W's range.
        let y: Vec<f32> = s
            .iter()
            .flat_map(|&(_, er, dz, t)| {
                [
                    (er.clamp(-clamp, clamp) as f64 / scale) as f32,
                    (dz.clamp(-clamp, clamp) as f64 / scale) as f32,
                    t as f32,
                ]
            })
            .collect();
        (
            Tensor::from_slice(&x).view([s.len() as i64, FEATURES as i64]),
            Tensor::from_slice(&y).view([s.len() as i64, 3]),
        )
    };
    let (xt, yt) = to_tensors(&train);
    let (xh, yh) = to_tensors(&held);
    let vs = nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    let h = a.hidden as i64;
    let net = nn::seq()
        .add(nn::linear(
            &root / "l1",
            FEATURES as i64,
            h,
            Default::default(),
        ))
        .add_fn(|x| x.relu())
        .add(nn::linear(&root / "l2", h, h, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(
            &root / "l3",
            h,
            OUTPUTS as i64,
            Default::default(),
        ));
    let learned = Learned {
        correct: true,
        height: a.mode != "corr",
    };
    let mut opt = nn::Adam::default().build(&vs, a.lr).expect("adam");
    let scale = f64::from(1u32 << ACT_BITS);
    // Losses (≈ bits: log2(1 + |residual in units|), or L1) of the corrected range and,
    // with `--mode both`, of the height predicted with the learned laser height.
    let corr_loss = |c: &Tensor, y: &Tensor| -> Tensor {
        let e = (y - c).abs();
        if a.loss == "l1" {
            e.mean(Kind::Float)
        } else {
            (e * scale + 1.0).log2().mean(Kind::Float)
        }
    };
    let loss_of = |pred: &Tensor, y: &Tensor| -> Tensor {
        let mut loss = corr_loss(&pred.narrow(1, 0, 1), &y.narrow(1, 0, 1));
        if learned.height {
            let hz = pred.narrow(1, 1, 1) * y.narrow(1, 2, 1);
            loss += corr_loss(&hz, &y.narrow(1, 1, 1));
        }
        loss
    };
    let zero = |y: &Tensor| {
        let z = Tensor::zeros([y.size()[0], 2], (Kind::Float, Device::Cpu));
        loss_of(&z, y).double_value(&[])
    };
    let (base_t, base_h) = (zero(&yt), zero(&yh));
    println!("loss with zero correction: train {base_t:.4}, held-out {base_h:.4}");
    let n = xt.size()[0];
    for step in 0..a.steps {
        let lr = if step * 10 >= a.steps * 8 {
            a.lr * 0.1
        } else {
            a.lr
        };
        opt.set_lr(lr);
        let idx = Tensor::randint(n, [a.batch], (Kind::Int64, Device::Cpu));
        let xb = xt.index_select(0, &idx);
        let yb = yt.index_select(0, &idx);
        let loss = loss_of(&net.forward(&xb), &yb);
        opt.backward_step(&loss);
        if step % 500 == 0 || step + 1 == a.steps {
            let lh = tch::no_grad(|| loss_of(&net.forward(&xh), &yh).double_value(&[]));
            println!(
                "step {step}: batch loss {:.4}, held-out {lh:.4} ({:.0} s)",
                loss.double_value(&[]),
                t0.elapsed().as_secs_f64()
            );
        }
    }
    // Quantize (see lcodec_lidar::mlp for the fixed-point convention).
    let vars = vs.variables();
    let get = |name: &str| -> Vec<f64> {
        let t = vars
            .get(name)
            .expect("variable")
            .to_kind(Kind::Double)
            .flatten(0, -1);
        Vec::<f64>::try_from(&t).expect("to vec")
    };
    let wq = |v: Vec<f64>| -> Vec<i64> {
        v.iter()
            .map(|w| (w * f64::from(1u32 << WEIGHT_BITS)).round() as i64)
            .collect()
    };
    let bq = |v: Vec<f64>| -> Vec<i64> {
        v.iter()
            .map(|b| (b * f64::from(1u32 << (WEIGHT_BITS + ACT_BITS))).round() as i64)
            .collect()
    };
    let b3 = bq(get("l3.bias"));
    let b3 = [b3[0], b3[1]];
    let mlp = Mlp::new(
        a.hidden,
        a.hidden,
        wq(get("l1.weight")),
        bq(get("l1.bias")),
        wq(get("l2.weight")),
        bq(get("l2.bias")),
        wq(get("l3.weight")),
        b3,
    )
    .expect("quantized network");
    // Check the integer network against the float one on the held-out samples.
    let float_pred = tch::no_grad(|| net.forward(&xh)).narrow(1, 0, 1) * scale;
    let fp = Vec::<f64>::try_from(&float_pred.to_kind(Kind::Double).flatten(0, -1)).expect("vec");
    let mut maxdiff = 0f64;
    for ((f, ..), p) in held.iter().zip(&fp).take(100_000) {
        maxdiff = maxdiff.max((mlp.eval(f).correction as f64 - p.clamp(-2048.0, 2048.0)).abs());
    }
    println!("integer vs float network on 100k held-out samples: max |diff| {maxdiff:.2} units");
    for (what, paths) in [("train", &a.train), ("held-out", &a.heldout)] {
        let (b, l, n) = measure(paths, &mlp, learned);
        println!(
            "{what}: {n} points, geometry classical {:.4} b/p, learned {:.4} b/p ({:+.2}%)",
            b as f64 * 8.0 / n as f64,
            l as f64 * 8.0 / n as f64,
            (l as f64 / b as f64 - 1.0) * 100.0
        );
    }
    if let Some(out) = &a.out {
        let meta = [
            ("lcodec.train", names(&a.train)),
            ("lcodec.heldout", names(&a.heldout)),
            ("lcodec.hidden", a.hidden.to_string()),
            ("lcodec.steps", a.steps.to_string()),
            ("lcodec.loss", a.loss.clone()),
            ("lcodec.mode", a.mode.clone()),
        ];
        let bytes = mlp.to_safetensors(&meta).expect("serialise");
        std::fs::write(out, &bytes).expect("write weights");
        println!("wrote {out} ({} bytes)", bytes.len());
    }
}
