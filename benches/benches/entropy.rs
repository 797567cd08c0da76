//! Entropy-coder throughput: symbols per second, encode and decode, per model and coder.
//!
//! `cargo bench -p lcodec-bench --bench entropy` (add `-- --quick` for a fast, noisier run).
//! Each iteration codes `N` symbols drawn from the model (seeded), including `finish` (for
//! ANS the actual coding happens there) and decoder construction.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lcodec_entropy::{
    AdaptiveBit, AdaptiveFrequency, AnsDecoder, AnsEncoder, Categorical, Decode, Encode, Family,
    Model, NUM_SCALES, RangeDecoder, RangeEncoder, TOTAL, tables,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const N: usize = 100_000;

/// Scale indices the parametric workloads cycle through (the typical latent range).
const SCALES_USED: usize = 40;
const _: () = assert!(SCALES_USED <= NUM_SCALES);

/// One benchmark workload: data plus how to encode and decode it with any coder.
trait Workload {
    fn name(&self) -> &'static str;
    fn encode<E: Encode>(&self, enc: &mut E);
    fn decode<D: Decode>(&self, dec: &mut D) -> u64;
}

struct CategoricalLoad {
    model: Categorical,
    data: Vec<usize>,
}

impl CategoricalLoad {
    fn new() -> Self {
        let counts: Vec<u64> = (0..256u64).map(|i| 1 + (1_000_000 >> (i / 16))).collect();
        let model = Categorical::from_counts(&counts).expect("model");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let data = (0..N)
            .map(|_| model.lookup(rng.random_range(0..TOTAL)).0)
            .collect();
        Self { model, data }
    }
}

impl Workload for CategoricalLoad {
    fn name(&self) -> &'static str {
        "categorical256"
    }
    fn encode<E: Encode>(&self, enc: &mut E) {
        for &s in &self.data {
            enc.encode(s, &self.model).expect("encode");
        }
    }
    fn decode<D: Decode>(&self, dec: &mut D) -> u64 {
        (0..N)
            .map(|_| dec.decode(&self.model).expect("decode") as u64)
            .sum()
    }
}

struct AdaptiveLoad {
    data: Vec<usize>,
}

impl AdaptiveLoad {
    fn new() -> Self {
        let counts: Vec<u64> = (0..64u64).map(|i| 1 + (i * 37 % 64).pow(2)).collect();
        let src = Categorical::from_counts(&counts).expect("model");
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        Self {
            data: (0..N)
                .map(|_| src.lookup(rng.random_range(0..TOTAL)).0)
                .collect(),
        }
    }
}

impl Workload for AdaptiveLoad {
    fn name(&self) -> &'static str {
        "adaptive_frequency64"
    }
    fn encode<E: Encode>(&self, enc: &mut E) {
        let mut m = AdaptiveFrequency::new(64).expect("model");
        for &s in &self.data {
            enc.encode_adaptive(s, &mut m).expect("encode");
        }
    }
    fn decode<D: Decode>(&self, dec: &mut D) -> u64 {
        let mut m = AdaptiveFrequency::new(64).expect("model");
        (0..N)
            .map(|_| dec.decode_adaptive(&mut m).expect("decode") as u64)
            .sum()
    }
}

struct BitLoad {
    data: Vec<(u8, bool)>,
}

impl BitLoad {
    fn new() -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        Self {
            data: (0..N)
                .map(|_| {
                    let c = rng.random_range(0..16u8);
                    (c, rng.random_bool(f64::from(c) / 16.0 + 0.02))
                })
                .collect(),
        }
    }
}

impl Workload for BitLoad {
    fn name(&self) -> &'static str {
        "adaptive_bit"
    }
    fn encode<E: Encode>(&self, enc: &mut E) {
        let mut m = [AdaptiveBit::new(); 16];
        for &(c, b) in &self.data {
            enc.encode_bit_adaptive(b, &mut m[usize::from(c)])
                .expect("encode");
        }
    }
    fn decode<D: Decode>(&self, dec: &mut D) -> u64 {
        let mut m = [AdaptiveBit::new(); 16];
        self.data
            .iter()
            .map(|&(c, _)| {
                u64::from(
                    dec.decode_bit_adaptive(&mut m[usize::from(c)])
                        .expect("decode"),
                )
            })
            .sum()
    }
}

struct ParametricLoad {
    family: Family,
    /// (scale index, value); scales cycle over `0..SCALES_USED`.
    data: Vec<(usize, i32)>,
}

impl ParametricLoad {
    fn new(family: Family) -> Self {
        let t = tables(family);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let data = (0..N)
            .map(|i| {
                let k = (i * 7) % SCALES_USED;
                let table = t.get(k).expect("scale");
                let s = table.lookup(rng.random_range(0..TOTAL)).0;
                let v = if s == table.escape_symbol() {
                    1 + table.radius() as i32
                } else {
                    s as i32 - table.radius() as i32
                };
                (k, v)
            })
            .collect();
        Self { family, data }
    }
}

impl Workload for ParametricLoad {
    fn name(&self) -> &'static str {
        match self.family {
            Family::Gaussian => "gaussian",
            Family::Laplace => "laplace",
            Family::Logistic => "logistic",
        }
    }
    fn encode<E: Encode>(&self, enc: &mut E) {
        let t = tables(self.family).all();
        for &(k, v) in &self.data {
            enc.encode_integer(v, &t[k]).expect("encode");
        }
    }
    fn decode<D: Decode>(&self, dec: &mut D) -> u64 {
        let t = tables(self.family).all();
        self.data
            .iter()
            .map(|&(k, _)| dec.decode_integer(&t[k]).expect("decode") as u64)
            .sum()
    }
}

fn bench_load<W: Workload>(c: &mut Criterion, w: &W) {
    let mut range = RangeEncoder::new();
    w.encode(&mut range);
    let range_bytes = range.finish();
    let mut ans = AnsEncoder::new();
    w.encode(&mut ans);
    let ans_bytes = ans.finish();

    let mut g = c.benchmark_group(format!("entropy/{}", w.name()));
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function(BenchmarkId::new("encode", "range"), |b| {
        b.iter(|| {
            let mut e = RangeEncoder::new();
            w.encode(&mut e);
            black_box(e.finish())
        })
    });
    g.bench_function(BenchmarkId::new("decode", "range"), |b| {
        b.iter(|| {
            let mut d = RangeDecoder::new(black_box(&range_bytes)).expect("decoder");
            black_box(w.decode(&mut d))
        })
    });
    g.bench_function(BenchmarkId::new("encode", "ans"), |b| {
        b.iter(|| {
            let mut e = AnsEncoder::new();
            w.encode(&mut e);
            black_box(e.finish())
        })
    });
    g.bench_function(BenchmarkId::new("decode", "ans"), |b| {
        b.iter(|| {
            let mut d = AnsDecoder::new(black_box(&ans_bytes)).expect("decoder");
            black_box(w.decode(&mut d))
        })
    });
    g.finish();
}

fn entropy(c: &mut Criterion) {
    bench_load(c, &CategoricalLoad::new());
    bench_load(c, &AdaptiveLoad::new());
    bench_load(c, &BitLoad::new());
    for f in Family::ALL {
        bench_load(c, &ParametricLoad::new(f));
    }
}

criterion_group!(benches, entropy);
criterion_main!(benches);
