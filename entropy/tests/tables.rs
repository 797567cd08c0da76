//! The parametric CDF tables: golden hash (identical on every machine), structure, and
//! closeness to the continuous distributions they quantize.

use lcodec_entropy::{
    Family, Model, NUM_SCALES, PRECISION, QuantizedCdf, SCALE_MAX, SCALE_MIN, TOTAL, scale_index,
    scale_table, tables, tables_fingerprint,
};

/// FNV-1a 64 of all tables, see `tables_fingerprint`. A change here changes every
/// learned-codec bitstream: bump the codec versions and note it in FORMAT.md.
/// Regenerate with `LCODEC_BLESS=1 cargo test -p lcodec-entropy --test tables -- --nocapture`
/// (it prints the new value) only after an intended change to the table construction.
const GOLDEN_TABLES_FNV64: u64 = 0xb8d6_9df4_5c95_270d;

#[test]
fn tables_match_golden_hash() {
    let h = tables_fingerprint();
    if std::env::var_os("LCODEC_BLESS").is_some() {
        println!("LCODEC_BLESS: GOLDEN_TABLES_FNV64 = {h:#018x}");
        return;
    }
    assert_eq!(
        h, GOLDEN_TABLES_FNV64,
        "CDF tables changed ({h:#018x}); see the comment on GOLDEN_TABLES_FNV64"
    );
}

#[test]
fn tables_are_valid_and_symmetric() {
    for family in Family::ALL {
        for (k, t) in tables(family).all().iter().enumerate() {
            let cdf = t.cdf();
            let r = t.radius() as usize;
            assert_eq!(cdf.len(), 2 * r + 3);
            assert_eq!(cdf[0], 0);
            assert_eq!(*cdf.last().expect("nonempty"), TOTAL);
            let freqs: Vec<u32> = cdf.windows(2).map(|w| w[1] - w[0]).collect();
            assert!(
                freqs.iter().all(|&f| f >= 1),
                "{family:?}/{k}: a bin has frequency 0"
            );
            for v in 1..=r {
                assert_eq!(
                    freqs[r + v],
                    freqs[r - v],
                    "{family:?}/{k}: asymmetric at {v}"
                );
                assert!(
                    freqs[r + v] <= freqs[r + v - 1],
                    "{family:?}/{k}: not unimodal at {v}"
                );
            }
            assert_eq!(t.scale_index(), k);
            assert_eq!(t.num_symbols(), 2 * r + 2);
            assert_eq!(*t, QuantizedCdf::new(family, k).expect("index"));
        }
    }
    assert!(QuantizedCdf::new(Family::Gaussian, NUM_SCALES).is_err());
    assert!(tables(Family::Laplace).get(NUM_SCALES).is_none());
}

#[test]
fn scale_table_and_index() {
    let s = scale_table();
    assert!((s[0] - SCALE_MIN).abs() < 1e-12 && (s[NUM_SCALES - 1] - SCALE_MAX).abs() < 1e-9);
    for k in 0..NUM_SCALES {
        assert_eq!(scale_index(s[k]), k);
        if k > 0 {
            assert!(s[k] > s[k - 1]);
            assert_eq!(scale_index((s[k] * s[k - 1]).sqrt() * 1.000_001), k);
            assert_eq!(scale_index((s[k] * s[k - 1]).sqrt() * 0.999_999), k - 1);
        }
    }
    assert_eq!(scale_index(0.0), 0);
    assert_eq!(scale_index(-3.0), 0);
    assert_eq!(scale_index(f64::NAN), 0);
    assert_eq!(scale_index(1e9), NUM_SCALES - 1);
    assert_eq!(
        tables(Family::Gaussian).nearest(1e9).scale_index(),
        NUM_SCALES - 1
    );
}

/// Reference CDF with std's libm (not deterministic across machines, fine for a check).
fn reference_upper_tail(family: Family, x: f64, s: f64) -> f64 {
    match family {
        // erfc via the complementary normal: use a high-accuracy series-free identity
        // from lcodec's own erfc would be circular, so integrate the density instead.
        Family::Gaussian => {
            // Simpson integration of the density from x to x + 40 s.
            let n = 4000;
            let h = 40.0 * s / n as f64;
            let pdf = |t: f64| {
                (-(t * t) / (2.0 * s * s)).exp() / (s * (2.0 * std::f64::consts::PI).sqrt())
            };
            let mut acc = pdf(x) + pdf(x + 40.0 * s);
            for i in 1..n {
                acc += pdf(x + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
            }
            acc * h / 3.0
        }
        Family::Laplace => 0.5 * (-x / s).exp(),
        Family::Logistic => 1.0 / (1.0 + (x / s).exp()),
    }
}

#[test]
fn tables_are_close_to_the_continuous_distributions() {
    for family in Family::ALL {
        for k in (0..NUM_SCALES).step_by(3) {
            let t = tables(family).get(k).expect("scale");
            let s = t.scale();
            let r = t.radius() as i64;
            // Entropy of the discretised continuous distribution vs the cross-entropy of
            // coding it with the table (the excess is the KL divergence).
            let mut entropy = 0.0;
            let mut cross = 0.0;
            let mut mass_total = 0.0;
            for v in -r..=r {
                let a = v.unsigned_abs() as f64;
                let m = if v == 0 {
                    1.0 - 2.0 * reference_upper_tail(family, 0.5, s)
                } else {
                    reference_upper_tail(family, a - 0.5, s)
                        - reference_upper_tail(family, a + 0.5, s)
                };
                if m <= 0.0 {
                    continue;
                }
                mass_total += m;
                entropy -= m * m.log2();
                cross += m * (f64::from(PRECISION) - f64::from(t.frequency(v as i32)).log2());
            }
            assert!(
                mass_total > 1.0 - 1e-6,
                "{family:?}/{k}: table misses mass {mass_total}"
            );
            let excess = cross - entropy;
            println!(
                "{family:?} scale {s:8.3}: entropy {entropy:8.5} bits, excess {excess:.2e} bits"
            );
            assert!(
                excess >= -1e-9 && excess < 1e-3 * entropy.max(0.01),
                "{family:?}/{k}: excess {excess}"
            );
        }
    }
}

/// `lookup` (indexed search) agrees with `interval` for every table, at every
/// decoding-index bucket boundary and around every symbol's start.
#[test]
fn lookup_agrees_with_interval() {
    fn check(model: &impl Model, what: &str) {
        let n = model.num_symbols();
        let mut quantiles: Vec<u32> = (0..=1024u32).map(|b| (b << 14).min(TOTAL - 1)).collect();
        for s in 0..n {
            if let Some((start, freq)) = model.interval(s) {
                quantiles.extend([start, start + freq - 1]);
                if start > 0 {
                    quantiles.push(start - 1);
                }
            }
        }
        for q in quantiles {
            let (s, start, freq) = model.lookup(q);
            assert!(
                s < n && freq > 0 && start <= q && q < start + freq,
                "{what}: q={q}"
            );
            assert_eq!(model.interval(s), Some((start, freq)), "{what}: q={q}");
        }
    }
    for family in Family::ALL {
        for (k, t) in tables(family).all().iter().enumerate() {
            check(t, &format!("{family:?}/{k}"));
        }
    }
    // Zero-frequency symbols and a heavy symbol spanning many buckets.
    let counts: Vec<u64> = (0..100u64)
        .map(|i| {
            if i % 3 == 0 {
                0
            } else if i == 50 {
                1 << 30
            } else {
                i
            }
        })
        .collect();
    check(
        &lcodec_entropy::Categorical::from_counts(&counts).expect("model"),
        "categorical",
    );
    check(
        &lcodec_entropy::Categorical::uniform(5000).expect("model"),
        "uniform5000",
    );
}
