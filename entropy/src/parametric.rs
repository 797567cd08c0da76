//! Quantized Gaussian, Laplace and logistic models on integer bins, built from a fixed
//! scale table with deterministic arithmetic (see [`crate::detmath`]).
//!
//! # Construction
//!
//! For a family with upper tail `G(x) = P(X > x)` (zero mean, scale `s`) the table has the
//! value bins `v = -R..=R`, where `R = max(1, ceil(k s))` with `k` = 6 (Gaussian), 18
//! (Laplace), 19 (logistic) so the mass beyond `R` is below about 2^-25, and one escape
//! bin. The bin of `v` is `[v - 1/2, v + 1/2)`; its mass is `1 - 2 G(1/2)` for `v = 0` and
//! `G(|v| - 1/2) - G(|v| + 1/2)` otherwise (computed on the positive side, so the table is
//! symmetric); the escape bin gets `2 G(R + 1/2)`. With `n = 2R + 2` bins, each bin gets
//! frequency `1 + floor(mass · (2^24 - n))` and the rounding remainder goes to the zero
//! bin, so every bin has frequency `>= 1` and the total is exactly `2^24`.
//!
//! The scale means `σ` for the Gaussian, `b` for the Laplace (`G = e^{-x/b} / 2`) and `s`
//! for the logistic (`G = 1 / (1 + e^{x/s})`).
//!
//! # Means
//!
//! Tables are zero-mean. A codec with a predicted mean `μ` codes `v - round(μ)` (with its
//! own deterministic rounding) and adds `round(μ)` back after decoding, as in the
//! mean-scale hyperprior of Minnen et al. 2018 (CompressAI's `GaussianConditional`).

use std::sync::OnceLock;

use crate::detmath::{erfc, exp, ln};
use crate::model::{CdfTable, TOTAL};
use crate::{Error, Model, Result};

/// Number of scales in the scale table.
pub const NUM_SCALES: usize = 64;
/// Smallest scale in the table.
pub const SCALE_MIN: f64 = 0.11;
/// Largest scale in the table.
pub const SCALE_MAX: f64 = 256.0;

/// A distribution family for [`QuantizedCdf`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Normal distribution with standard deviation = scale.
    Gaussian,
    /// Laplace distribution with diversity `b` = scale.
    Laplace,
    /// Logistic distribution with scale `s` = scale.
    Logistic,
}

impl Family {
    /// All families, in a fixed order.
    pub const ALL: [Family; 3] = [Family::Gaussian, Family::Laplace, Family::Logistic];

    /// Table radius multiplier `k` (radius = `ceil(k · scale)`).
    fn radius_multiplier(self) -> f64 {
        match self {
            Family::Gaussian => 6.0,
            Family::Laplace => 18.0,
            Family::Logistic => 19.0,
        }
    }

    /// Upper tail `P(X > x)` for `x >= 0`.
    fn upper_tail(self, x: f64, scale: f64) -> f64 {
        match self {
            Family::Gaussian => 0.5 * erfc(x * std::f64::consts::FRAC_1_SQRT_2 / scale),
            Family::Laplace => 0.5 * exp(-(x / scale)),
            Family::Logistic => {
                let e = exp(-(x / scale));
                e / (1.0 + e)
            }
        }
    }
}

fn log_scales() -> (f64, f64) {
    let lo = ln(SCALE_MIN);
    let step = (ln(SCALE_MAX) - lo) / (NUM_SCALES - 1) as f64;
    (lo, step)
}

/// The fixed scale table: 64 log-spaced scales from [`SCALE_MIN`] to [`SCALE_MAX`],
/// `s_i = exp(ln 0.11 + i (ln 256 - ln 0.11) / 63)` with deterministic `exp`/`ln`.
pub fn scale_table() -> &'static [f64; NUM_SCALES] {
    static SCALES: OnceLock<[f64; NUM_SCALES]> = OnceLock::new();
    SCALES.get_or_init(|| {
        let (lo, step) = log_scales();
        std::array::from_fn(|i| exp(lo + step * i as f64))
    })
}

/// The index of the table scale nearest to `scale` in log space (midpoints are geometric
/// means). Scales below the table map to 0, above it to 63, NaN to 0. Only comparisons
/// are used, so the result is as deterministic as `scale` itself.
pub fn scale_index(scale: f64) -> usize {
    static BOUNDS: OnceLock<[f64; NUM_SCALES - 1]> = OnceLock::new();
    let bounds = BOUNDS.get_or_init(|| {
        let (lo, step) = log_scales();
        std::array::from_fn(|i| exp(lo + step * (i as f64 + 0.5)))
    });
    bounds.partition_point(|&b| b <= scale)
}

/// A quantized zero-mean distribution on the integers `-radius..=radius`, plus an escape
/// symbol for everything else; a [`Model`] at [`crate::PRECISION`] bits.
///
/// Code values with [`crate::Encode::encode_integer`] /
/// [`crate::Decode::decode_integer`], which handle the escape. As a plain [`Model`], symbol
/// `v + radius` is the value `v` and symbol `2 radius + 1` is the escape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantizedCdf {
    family: Family,
    scale_index: usize,
    radius: u32,
    table: CdfTable,
}

impl QuantizedCdf {
    /// Builds the table for `family` at `scale_table()[scale_index]`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `scale_index >= NUM_SCALES`.
    pub fn new(family: Family, scale_index: usize) -> Result<Self> {
        let &scale = scale_table().get(scale_index).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "scale index {scale_index} (expected < {NUM_SCALES})"
            ))
        })?;
        Ok(Self::build(family, scale_index, scale))
    }

    fn build(family: Family, scale_index: usize, scale: f64) -> Self {
        let radius = ((family.radius_multiplier() * scale).ceil() as u32).max(1);
        let r = radius as usize;
        let n = 2 * r + 2;
        let spare = f64::from(TOTAL - n as u32);
        // Masses of the bins v = 0..=R (positive side), then the escape mass.
        let mut half = Vec::with_capacity(r + 1);
        half.push(1.0 - 2.0 * family.upper_tail(0.5, scale));
        let mut prev_tail = family.upper_tail(0.5, scale);
        for v in 1..=r {
            let tail = family.upper_tail(v as f64 + 0.5, scale);
            half.push((prev_tail - tail).max(0.0));
            prev_tail = tail;
        }
        let escape_mass = 2.0 * prev_tail;
        let freq_of = |m: f64| -> i64 { 1 + (m.clamp(0.0, 1.0) * spare).floor() as i64 };
        let mut freqs = vec![0i64; n];
        for v in 1..=r {
            let f = freq_of(half[v]);
            freqs[r + v] = f;
            freqs[r - v] = f;
        }
        freqs[r] = freq_of(half[0]);
        freqs[n - 1] = freq_of(escape_mass);
        // The remainder (>= 0 up to float rounding) goes to the zero bin, which holds the
        // most mass; keep it >= 1 in any case.
        let sum: i64 = freqs.iter().sum();
        freqs[r] = (freqs[r] + i64::from(TOTAL) - sum).max(1);
        let mut cdf = Vec::with_capacity(n + 1);
        let mut acc: i64 = 0;
        cdf.push(0u32);
        for &f in &freqs {
            acc += f;
            cdf.push(acc.clamp(0, i64::from(TOTAL)) as u32);
        }
        // Float rounding could only make the sum exceed TOTAL by a few units, which the
        // clamp above absorbs into the last bins; force the exact end point.
        if let Some(last) = cdf.last_mut() {
            *last = TOTAL;
        }
        Self {
            family,
            scale_index,
            radius,
            table: CdfTable::from_checked(cdf),
        }
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Index into [`scale_table`].
    pub fn scale_index(&self) -> usize {
        self.scale_index
    }

    /// The scale (`scale_table()[scale_index]`).
    pub fn scale(&self) -> f64 {
        scale_table()[self.scale_index]
    }

    /// Largest magnitude coded without the escape.
    pub fn radius(&self) -> u32 {
        self.radius
    }

    /// The escape symbol (`2 radius + 1`).
    pub fn escape_symbol(&self) -> usize {
        2 * self.radius as usize + 1
    }

    /// The cumulative table (`2 radius + 3` entries from 0 to `2^24`).
    pub fn cdf(&self) -> &[u32] {
        self.table.as_slice()
    }

    /// Fixed-point frequency of the bin that codes `value` (the escape bin's for values
    /// beyond the radius).
    pub fn frequency(&self, value: i32) -> u32 {
        let r = i64::from(self.radius);
        let v = i64::from(value);
        let s = if (-r..=r).contains(&v) {
            (v + r) as usize
        } else {
            self.escape_symbol()
        };
        self.table.interval(s).map_or(0, |(_, f)| f)
    }

    /// Estimated cost in bits of coding `value` (including escape bits). For rate
    /// estimates only: uses the platform `log2`, never feeds a model.
    pub fn cost_bits(&self, value: i32) -> f64 {
        let model_bits = f64::from(crate::PRECISION) - f64::from(self.frequency(value)).log2();
        let excess = i64::from(value).abs() - i64::from(self.radius);
        if excess <= 0 {
            return model_bits;
        }
        let w = (excess - 1) as u64 + 1;
        let len = 63 - w.leading_zeros();
        model_bits + 1.0 + f64::from(2 * len + 1)
    }
}

impl Model for QuantizedCdf {
    #[inline]
    fn num_symbols(&self) -> usize {
        self.table.num_symbols()
    }
    #[inline]
    fn interval(&self, symbol: usize) -> Option<(u32, u32)> {
        self.table.interval(symbol)
    }
    #[inline]
    fn lookup(&self, quantile: u32) -> (usize, u32, u32) {
        self.table.lookup(quantile)
    }
}

/// The [`QuantizedCdf`]s of one family at all [`NUM_SCALES`] scales.
#[derive(Debug, Clone)]
pub struct FamilyTables {
    family: Family,
    tables: Vec<QuantizedCdf>,
}

impl FamilyTables {
    /// Builds all 64 tables of `family` (a few milliseconds). Prefer the shared
    /// [`tables`], built once per process.
    pub fn build(family: Family) -> Self {
        let scales = scale_table();
        let tables = (0..NUM_SCALES)
            .map(|i| QuantizedCdf::build(family, i, scales[i]))
            .collect();
        Self { family, tables }
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The table at `scale_index`, or `None` if `scale_index >= NUM_SCALES` (e.g. an index
    /// read from damaged data).
    pub fn get(&self, scale_index: usize) -> Option<&QuantizedCdf> {
        self.tables.get(scale_index)
    }

    /// The table whose scale is nearest to `scale` (see [`scale_index`]).
    pub fn nearest(&self, scale: f64) -> &QuantizedCdf {
        let i = scale_index(scale).min(self.tables.len() - 1);
        &self.tables[i]
    }

    /// All tables, in scale order.
    pub fn all(&self) -> &[QuantizedCdf] {
        &self.tables
    }
}

/// The shared, lazily built tables of `family` (built once per process, thread-safe).
pub fn tables(family: Family) -> &'static FamilyTables {
    static T: [OnceLock<FamilyTables>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let i = match family {
        Family::Gaussian => 0,
        Family::Laplace => 1,
        Family::Logistic => 2,
    };
    T[i].get_or_init(|| FamilyTables::build(family))
}

/// FNV-1a 64 over the little-endian bytes of every table (all families × all scales:
/// family index, scale index, radius, then the cumulative table), and of the scale table's
/// bit patterns. Equal on every machine; the crate's tests compare it with a golden value.
pub fn tables_fingerprint() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for s in scale_table() {
        feed(&s.to_bits().to_le_bytes());
    }
    for (fi, family) in Family::ALL.into_iter().enumerate() {
        for t in tables(family).all() {
            feed(&(fi as u32).to_le_bytes());
            feed(&(t.scale_index as u32).to_le_bytes());
            feed(&t.radius.to_le_bytes());
            for c in t.cdf() {
                feed(&c.to_le_bytes());
            }
        }
    }
    h
}
