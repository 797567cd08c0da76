//! Round trips of 10^6 symbols per model through both coders, and coded size within 1%
//! of the model's cross-entropy on data drawn from the model.

use lcodec_entropy::{
    AdaptiveBit, AdaptiveFrequency, AnsDecoder, AnsEncoder, Categorical, Decode, Encode, Family,
    Model, NUM_SCALES, PRECISION, RangeDecoder, RangeEncoder, TOTAL, tables,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const N: usize = 1_000_000;

/// Cost in bits of a symbol of fixed-point frequency `freq`.
fn bits(freq: u32) -> f64 {
    f64::from(PRECISION) - f64::from(freq).log2()
}

/// Draws a symbol from `model` exactly (inverse CDF of a uniform quantile).
fn draw(model: &impl Model, rng: &mut impl Rng) -> usize {
    model.lookup(rng.random_range(0..TOTAL)).0
}

/// Asserts the coded size is within 1% of the ideal size (plus the final words).
fn assert_close(what: &str, coded_bytes: usize, ideal_bits: f64) {
    let coded = coded_bytes as f64 * 8.0;
    let excess = (coded - ideal_bits) / ideal_bits;
    println!(
        "{what}: coded {coded} bits, cross-entropy {ideal_bits:.0} bits, excess {:.4}%",
        excess * 100.0
    );
    assert!(
        coded <= ideal_bits * 1.01 + 128.0,
        "{what}: {coded} bits > 1.01 × {ideal_bits}"
    );
    assert!(
        coded >= ideal_bits * 0.99 - 128.0,
        "{what}: {coded} bits < 0.99 × {ideal_bits}?"
    );
}

/// A skewed 256-symbol histogram (geometric-ish with a few zero counts).
fn skewed_counts() -> Vec<u64> {
    (0..256u64)
        .map(|i| {
            if i % 37 == 36 {
                0
            } else {
                1 + (100_000 >> (i / 8)) + (i * 7919) % 13
            }
        })
        .collect()
}

macro_rules! both_coders {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;
            #[test]
            fn range() {
                $body::<RangeEncoder, RangeDecoder>(
                    "range",
                    RangeEncoder::new,
                    |b| RangeDecoder::new(b),
                    RangeEncoder::finish,
                    |d: RangeDecoder| d.finish(),
                );
            }
            #[test]
            fn ans() {
                $body::<AnsEncoder, AnsDecoder>(
                    "ans",
                    AnsEncoder::new,
                    |b| AnsDecoder::new(b),
                    AnsEncoder::finish,
                    |d: AnsDecoder| d.finish(),
                );
            }
        }
    };
}

type NewDec<D> = fn(&[u8]) -> lcodec_entropy::Result<D>;

fn categorical<E: Encode, D: Decode>(
    coder: &str,
    new_enc: fn() -> E,
    new_dec: NewDec<D>,
    finish: fn(E) -> Vec<u8>,
    end: fn(D) -> lcodec_entropy::Result<()>,
) {
    let model = Categorical::from_counts(&skewed_counts()).expect("model");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let data: Vec<usize> = (0..N).map(|_| draw(&model, &mut rng)).collect();
    let mut enc = new_enc();
    let mut ideal = 0.0;
    for &s in &data {
        enc.encode(s, &model).expect("encode");
        ideal += bits(model.interval(s).expect("codable").1);
    }
    let bytes = finish(enc);
    assert_close(&format!("categorical/{coder}"), bytes.len(), ideal);
    let mut dec = new_dec(&bytes).expect("decoder");
    for (i, &s) in data.iter().enumerate() {
        assert_eq!(dec.decode(&model).expect("decode"), s, "symbol {i}");
    }
    end(dec).expect("stream fully consumed");
}
both_coders!(categorical_256, categorical);

fn adaptive_frequency<E: Encode, D: Decode>(
    coder: &str,
    new_enc: fn() -> E,
    new_dec: NewDec<D>,
    finish: fn(E) -> Vec<u8>,
    end: fn(D) -> lcodec_entropy::Result<()>,
) {
    // Non-stationary source: the distribution changes every 100k symbols.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut data = Vec::with_capacity(N);
    for block in 0..10u64 {
        let counts: Vec<u64> = (0..64u64)
            .map(|i| 1 + ((i * 31 + block * 17) % 64).pow(3))
            .collect();
        let src = Categorical::from_counts(&counts).expect("source");
        data.extend((0..N / 10).map(|_| draw(&src, &mut rng)));
    }
    let mut model = AdaptiveFrequency::new(64).expect("model");
    let mut enc = new_enc();
    let mut ideal = 0.0;
    for &s in &data {
        ideal += bits(model.interval(s).expect("codable").1);
        enc.encode_adaptive(s, &mut model).expect("encode");
    }
    let bytes = finish(enc);
    assert_close(&format!("adaptive-frequency/{coder}"), bytes.len(), ideal);
    let mut model = AdaptiveFrequency::new(64).expect("model");
    let mut dec = new_dec(&bytes).expect("decoder");
    for (i, &s) in data.iter().enumerate() {
        assert_eq!(
            dec.decode_adaptive(&mut model).expect("decode"),
            s,
            "symbol {i}"
        );
    }
    end(dec).expect("stream fully consumed");
}
both_coders!(adaptive_frequency_64, adaptive_frequency);

/// A model started from a prior that matches the source codes a short sequence in fewer
/// bytes than one started from all ones, and decodes with the same prior.
#[test]
fn adaptive_frequency_prior_pays_and_round_trips() {
    let counts: Vec<u64> = (0..16u64).map(|i| 1 + (15 - i).pow(3)).collect();
    let src = Categorical::from_counts(&counts).expect("source");
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let data: Vec<usize> = (0..100).map(|_| draw(&src, &mut rng)).collect();
    let prior: Vec<u32> = counts.iter().map(|&c| (c / 4).max(1) as u32).collect();
    let code = |model: &mut AdaptiveFrequency| {
        let mut enc = RangeEncoder::new();
        for &s in &data {
            enc.encode_adaptive(s, model).expect("encode");
        }
        enc.finish()
    };
    let flat = code(&mut AdaptiveFrequency::new(16).expect("model")).len();
    let bytes = code(&mut AdaptiveFrequency::with_counts(&prior, 32).expect("prior"));
    assert!(
        bytes.len() * 20 < flat * 19,
        "{} bytes with the prior, {flat} without",
        bytes.len()
    );
    let mut model = AdaptiveFrequency::with_counts(&prior, 32).expect("prior");
    let mut dec = RangeDecoder::new(&bytes).expect("decoder");
    for (i, &s) in data.iter().enumerate() {
        assert_eq!(
            dec.decode_adaptive(&mut model).expect("decode"),
            s,
            "symbol {i}"
        );
    }
    assert!(AdaptiveFrequency::with_counts(&[1, 0, 3], 32).is_err());
    assert!(AdaptiveFrequency::with_counts(&[40_000, 40_000], 32).is_err());
    assert!(AdaptiveFrequency::with_counts(&[], 32).is_err());
}

fn adaptive_bits<E: Encode, D: Decode>(
    coder: &str,
    new_enc: fn() -> E,
    new_dec: NewDec<D>,
    finish: fn(E) -> Vec<u8>,
    end: fn(D) -> lcodec_entropy::Result<()>,
) {
    // 16 contexts with different, slowly drifting biases (including near-certain ones).
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let data: Vec<(usize, bool)> = (0..N)
        .map(|i| {
            let ctx = rng.random_range(0..16usize);
            let p = match ctx {
                0 => 0.999,
                1 => 0.0005,
                _ => (ctx as f64 / 17.0 + i as f64 / N as f64 * 0.05).min(0.99),
            };
            (ctx, rng.random_bool(p))
        })
        .collect();
    let mut models = [AdaptiveBit::new(); 16];
    let mut enc = new_enc();
    let mut ideal = 0.0;
    for &(c, b) in &data {
        let p1 = u32::from(models[c].p1());
        ideal += f64::from(lcodec_entropy::BIT_PRECISION)
            - f64::from(if b { p1 } else { 65536 - p1 }).log2();
        enc.encode_bit_adaptive(b, &mut models[c]).expect("encode");
    }
    let bytes = finish(enc);
    assert_close(&format!("adaptive-bit/{coder}"), bytes.len(), ideal);
    let mut models = [AdaptiveBit::new(); 16];
    let mut dec = new_dec(&bytes).expect("decoder");
    for (i, &(c, b)) in data.iter().enumerate() {
        assert_eq!(
            dec.decode_bit_adaptive(&mut models[c]).expect("decode"),
            b,
            "bit {i}"
        );
    }
    end(dec).expect("stream fully consumed");
}
both_coders!(adaptive_bit, adaptive_bits);

fn parametric<E: Encode, D: Decode>(
    coder: &str,
    new_enc: fn() -> E,
    new_dec: NewDec<D>,
    finish: fn(E) -> Vec<u8>,
    end: fn(D) -> lcodec_entropy::Result<()>,
) {
    for family in Family::ALL {
        let t = tables(family);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        // Every scale, values drawn from the table itself (escapes included at their
        // model rate; a few forced far escapes on top).
        let data: Vec<(usize, i32)> = (0..N)
            .map(|i| {
                let k = i % NUM_SCALES;
                let table = t.get(k).expect("scale");
                let s = draw(table, &mut rng);
                let r = table.radius() as i32;
                let v = if s == table.escape_symbol() || i % 50_000 == 7 {
                    let sign = if rng.random_bool(0.5) { -1 } else { 1 };
                    sign * (r + 1 + rng.random_range(0..1_000_000))
                } else {
                    s as i32 - r
                };
                (k, v)
            })
            .collect();
        let mut enc = new_enc();
        let mut ideal = 0.0;
        for &(k, v) in &data {
            let table = t.get(k).expect("scale");
            ideal += table.cost_bits(v);
            enc.encode_integer(v, table).expect("encode");
        }
        let bytes = finish(enc);
        assert_close(&format!("{family:?}/{coder}"), bytes.len(), ideal);
        let mut dec = new_dec(&bytes).expect("decoder");
        for (i, &(k, v)) in data.iter().enumerate() {
            assert_eq!(
                dec.decode_integer(t.get(k).expect("scale"))
                    .expect("decode"),
                v,
                "value {i}"
            );
        }
        end(dec).expect("stream fully consumed");
    }
}
both_coders!(parametric_all_scales, parametric);

fn bypass<E: Encode, D: Decode>(
    coder: &str,
    new_enc: fn() -> E,
    new_dec: NewDec<D>,
    finish: fn(E) -> Vec<u8>,
    end: fn(D) -> lcodec_entropy::Result<()>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let data: Vec<(u32, u32, u32, bool, u16)> = (0..N / 4)
        .map(|_| {
            let n = rng.random_range(0..=32u32);
            let v = if n == 32 {
                rng.random()
            } else {
                rng.random::<u32>() & ((1u32 << n) - 1)
            };
            let eg = rng.random::<u32>() >> rng.random_range(0..32);
            (
                n,
                v,
                eg,
                rng.random_bool(0.3),
                rng.random_range(0..=u16::MAX),
            )
        })
        .collect();
    let mut enc = new_enc();
    for &(n, v, eg, b, p) in &data {
        enc.encode_bits(v, n).expect("bits");
        enc.encode_exp_golomb(eg).expect("exp-golomb");
        enc.encode_bit(b, p).expect("bit");
    }
    enc.encode_exp_golomb(u32::MAX).expect("max");
    let bytes = finish(enc);
    println!("bypass/{coder}: {} bytes", bytes.len());
    let mut dec = new_dec(&bytes).expect("decoder");
    for (i, &(n, v, eg, b, p)) in data.iter().enumerate() {
        assert_eq!(dec.decode_bits(n).expect("bits"), v, "bits {i}");
        assert_eq!(dec.decode_exp_golomb().expect("eg"), eg, "eg {i}");
        assert_eq!(dec.decode_bit(p).expect("bit"), b, "bit {i}");
    }
    assert_eq!(dec.decode_exp_golomb().expect("max"), u32::MAX);
    end(dec).expect("stream fully consumed");
}
both_coders!(bypass_bits_and_exp_golomb, bypass);

#[test]
fn degenerate_models_cost_nothing() {
    // A one-symbol alphabet has probability one: coding it takes no bits.
    let one = Categorical::from_counts(&[7]).expect("model");
    let other = Categorical::from_counts(&[0, 0, 3, 0]).expect("model");
    for ans in [false, true] {
        let bytes = if ans {
            let mut e = AnsEncoder::new();
            for _ in 0..10_000 {
                e.encode(0, &one).expect("one");
                e.encode(2, &other).expect("other");
            }
            e.encode_bits(5, 3).expect("bits");
            e.finish()
        } else {
            let mut e = RangeEncoder::new();
            for _ in 0..10_000 {
                e.encode(0, &one).expect("one");
                e.encode(2, &other).expect("other");
            }
            e.encode_bits(5, 3).expect("bits");
            e.finish()
        };
        assert!(bytes.len() <= 8, "{} bytes for 3 bits", bytes.len());
        if ans {
            let mut d = AnsDecoder::new(&bytes).expect("dec");
            for _ in 0..10_000 {
                assert_eq!(d.decode(&one).expect("one"), 0);
                assert_eq!(d.decode(&other).expect("other"), 2);
            }
            assert_eq!(d.decode_bits(3).expect("bits"), 5);
            d.finish().expect("consumed");
        } else {
            let mut d = RangeDecoder::new(&bytes).expect("dec");
            for _ in 0..10_000 {
                assert_eq!(d.decode(&one).expect("one"), 0);
                assert_eq!(d.decode(&other).expect("other"), 2);
            }
            assert_eq!(d.decode_bits(3).expect("bits"), 5);
            d.finish().expect("consumed");
        }
    }
}

#[test]
fn empty_streams_round_trip() {
    let bytes = RangeEncoder::new().finish();
    RangeDecoder::new(&bytes)
        .expect("dec")
        .finish()
        .expect("empty range stream");
    let bytes = AnsEncoder::new().finish();
    AnsDecoder::new(&bytes)
        .expect("dec")
        .finish()
        .expect("empty ans stream");
}

#[test]
fn random_models_round_trip() {
    // Property: any histogram (sizes 1..300, zeros, huge counts) gives a model whose
    // frequencies sum to TOTAL, keep nonzero counts codable, and round-trip.
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    for case in 0..300 {
        let n = rng.random_range(1..300usize);
        let big = case % 7 == 0;
        let mut counts: Vec<u64> = (0..n)
            .map(|_| {
                if rng.random_bool(0.3) {
                    0
                } else if big {
                    rng.random::<u64>() >> 2
                } else {
                    rng.random_range(1..1000)
                }
            })
            .collect();
        let forced = rng.random_range(0..n);
        counts[forced] = counts[forced].max(1);
        let model = Categorical::from_counts(&counts).expect("model");
        let freqs = model.frequencies();
        assert_eq!(
            freqs.iter().map(|&f| u64::from(f)).sum::<u64>(),
            u64::from(TOTAL)
        );
        for (c, f) in counts.iter().zip(&freqs) {
            assert_eq!(*c == 0, *f == 0, "case {case}: count {c} got frequency {f}");
        }
        let data: Vec<usize> = (0..500).map(|_| draw(&model, &mut rng)).collect();
        let mut r = RangeEncoder::new();
        let mut a = AnsEncoder::new();
        for &s in &data {
            r.encode(s, &model).expect("range");
            a.encode(s, &model).expect("ans");
        }
        let (rb, ab) = (r.finish(), a.finish());
        let mut rd = RangeDecoder::new(&rb).expect("range dec");
        let mut ad = AnsDecoder::new(&ab).expect("ans dec");
        for &s in &data {
            assert_eq!(rd.decode(&model).expect("range"), s);
            assert_eq!(ad.decode(&model).expect("ans"), s);
        }
        rd.finish().expect("range end");
        ad.finish().expect("ans end");
    }
}

#[test]
fn adaptive_frequency_rescales_and_stays_in_sync() {
    // Long runs of one symbol force many rescales; a large alphabet exercises rebuilds.
    for (n, inc) in [(2usize, 1024u32), (3000, 32), (1, 32)] {
        let mut rng = ChaCha8Rng::seed_from_u64(7 + n as u64);
        let data: Vec<usize> = (0..200_000)
            .map(|i| {
                if (i / 5000) % 2 == 0 {
                    0
                } else {
                    rng.random_range(0..n)
                }
            })
            .collect();
        let mut m = AdaptiveFrequency::with_increment(n, inc).expect("model");
        let mut e = RangeEncoder::new();
        for &s in &data {
            e.encode_adaptive(s, &mut m).expect("encode");
        }
        assert!(m.counts().iter().all(|&c| c >= 1));
        let b = e.finish();
        let mut m = AdaptiveFrequency::with_increment(n, inc).expect("model");
        let mut d = RangeDecoder::new(&b).expect("decoder");
        for (i, &s) in data.iter().enumerate() {
            assert_eq!(
                d.decode_adaptive(&mut m).expect("decode"),
                s,
                "n={n} symbol {i}"
            );
        }
        d.finish().expect("end");
    }
}
