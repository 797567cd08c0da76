//! The [`Model`] trait and the static categorical model.

use crate::{Error, PRECISION, Result};

/// Total of every [`Model`]'s fixed-point frequencies: `1 << PRECISION`.
pub const TOTAL: u32 = 1 << PRECISION;

/// A probability model over the symbols `0..num_symbols()` with fixed-point frequencies
/// that sum to exactly [`TOTAL`] (`1 << PRECISION`).
///
/// Every model in this crate is built by integer (or carefully ordered, FMA-free `f64`)
/// code, so encoder and decoder on any machine see identical frequencies.
///
/// # For implementors
///
/// `interval` and `lookup` must describe the same table: for every `q < TOTAL`,
/// `lookup(q)` returns `(s, start, freq)` with `freq > 0` and
/// `start <= q < start + freq`, and `interval(s) == Some((start, freq))`. `lookup` must
/// not panic for any `q < TOTAL`: the decoder calls it with quantiles read from
/// untrusted data. Symbols with zero frequency make `interval` return `None`.
pub trait Model {
    /// Size of the alphabet (symbols are `0..num_symbols()`).
    fn num_symbols(&self) -> usize;

    /// The symbol's `(cumulative frequency before it, frequency)`, or `None` when the
    /// symbol is outside the alphabet or has zero frequency.
    fn interval(&self, symbol: usize) -> Option<(u32, u32)>;

    /// The symbol whose interval contains `quantile` (`< TOTAL`), with its interval:
    /// `(symbol, start, freq)`.
    fn lookup(&self, quantile: u32) -> (usize, u32, u32);
}

impl<M: Model + ?Sized> Model for &M {
    #[inline]
    fn num_symbols(&self) -> usize {
        (**self).num_symbols()
    }
    #[inline]
    fn interval(&self, symbol: usize) -> Option<(u32, u32)> {
        (**self).interval(symbol)
    }
    #[inline]
    fn lookup(&self, quantile: u32) -> (usize, u32, u32) {
        (**self).lookup(quantile)
    }
}

/// A model that learns from the symbols it codes.
///
/// [`crate::Encode::encode_adaptive`] and [`crate::Decode::decode_adaptive`] code a
/// symbol and then call [`Adapt::update`] with it, so encoder and decoder models evolve
/// identically.
pub trait Adapt {
    /// Records that `symbol` was coded. Symbols outside the alphabet are ignored.
    fn update(&mut self, symbol: usize);
}

/// Cumulative frequency table shared by the table-driven models: `cdf[0] = 0`,
/// `cdf[n] = TOTAL`, non-decreasing.
///
/// Tables with many symbols also keep a decoding index: for each of the `2^BUCKET_BITS`
/// equal quantile ranges, the symbol containing the range's first quantile, so `lookup`
/// searches only the few symbols between two index entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CdfTable {
    cdf: Vec<u32>,
    buckets: Vec<u32>,
}

/// log2 of the number of decoding-index buckets.
const BUCKET_BITS: u32 = 10;
const BUCKET_SHIFT: u32 = PRECISION - BUCKET_BITS;
/// Tables with fewer symbols are searched directly.
const MIN_INDEXED_SYMBOLS: usize = 24;

impl CdfTable {
    /// Wraps a table the caller has already checked (see the struct invariant), with a
    /// decoding index if it has enough symbols.
    pub(crate) fn from_checked(cdf: Vec<u32>) -> Self {
        Self::with_index_threshold(cdf, MIN_INDEXED_SYMBOLS)
    }

    /// Like `from_checked`, indexing only tables of at least `min_indexed` symbols (adaptive
    /// models rebuild often and index only large alphabets).
    pub(crate) fn with_index_threshold(cdf: Vec<u32>, min_indexed: usize) -> Self {
        debug_assert!(cdf.len() >= 2 && cdf[0] == 0 && cdf[cdf.len() - 1] == TOTAL);
        debug_assert!(cdf.windows(2).all(|w| w[0] <= w[1]));
        let n = cdf.len() - 1;
        let mut buckets = Vec::new();
        if n >= min_indexed {
            buckets.reserve((1 << BUCKET_BITS) + 1);
            let mut s = 0usize;
            for b in 0..(1u32 << BUCKET_BITS) {
                let q = b << BUCKET_SHIFT;
                // Advance to the last symbol with cdf[s] <= q.
                while s + 1 < n && cdf[s + 1] <= q {
                    s += 1;
                }
                buckets.push(s as u32);
            }
            buckets.push((n - 1) as u32);
        }
        Self { cdf, buckets }
    }

    pub(crate) fn as_slice(&self) -> &[u32] {
        &self.cdf
    }

    #[inline]
    pub(crate) fn num_symbols(&self) -> usize {
        self.cdf.len() - 1
    }

    #[inline]
    pub(crate) fn interval(&self, symbol: usize) -> Option<(u32, u32)> {
        let lo = *self.cdf.get(symbol)?;
        let hi = *self.cdf.get(symbol + 1)?;
        (hi > lo).then_some((lo, hi - lo))
    }

    #[inline]
    pub(crate) fn lookup(&self, quantile: u32) -> (usize, u32, u32) {
        // The last index i with cdf[i] <= quantile; cdf[0] = 0 <= quantile and
        // cdf[n] = TOTAL > quantile, so 0 <= i < n and cdf[i + 1] > quantile.
        let n = self.num_symbols();
        let i = if self.buckets.is_empty() {
            self.cdf
                .partition_point(|&c| c <= quantile)
                .saturating_sub(1)
        } else {
            // The answer lies in [first, last]: `first` contains the bucket's first
            // quantile (<= quantile), `last` the next bucket's (> quantile).
            let b = (quantile >> BUCKET_SHIFT) as usize;
            let first = self.buckets.get(b).map_or(0, |&v| v as usize);
            let last = self
                .buckets
                .get(b + 1)
                .map_or(n - 1, |&v| v as usize)
                .min(n - 1);
            let candidates = self.cdf.get(first + 1..=last).unwrap_or(&[]);
            first + candidates.partition_point(|&c| c <= quantile)
        }
        .min(n - 1);
        let lo = self.cdf[i];
        let hi = self.cdf[i + 1];
        (i, lo, hi.saturating_sub(lo).max(1))
    }

    /// Frequency of each symbol.
    pub(crate) fn frequencies(&self) -> Vec<u32> {
        self.cdf.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// Deterministically turns counts into a cumulative table summing to [`TOTAL`].
///
/// Every nonzero count gets frequency `>= 1`; zero counts get frequency 0. The remaining
/// `TOTAL - nonzero` units are shared in proportion to the counts by flooring the scaled
/// prefix sums, so the result depends only on integer arithmetic.
pub(crate) fn normalize_counts<I>(counts: I, num: usize) -> Result<Vec<u32>>
where
    I: Iterator<Item = u64> + Clone,
{
    let mut total: u128 = 0;
    let mut nonzero: u64 = 0;
    for c in counts.clone() {
        total += u128::from(c);
        nonzero += u64::from(c > 0);
    }
    if nonzero == 0 {
        return Err(Error::InvalidArgument(format!(
            "histogram of {num} symbols has no nonzero count"
        )));
    }
    if nonzero > u64::from(TOTAL) {
        return Err(Error::InvalidArgument(format!(
            "{nonzero} symbols with nonzero count exceed the {TOTAL} units of {PRECISION}-bit precision"
        )));
    }
    let spare = u64::from(TOTAL) - nonzero;
    let mut cdf = Vec::with_capacity(num + 1);
    cdf.push(0u32);
    let mut cum: u128 = 0;
    let mut seen: u64 = 0;
    // Fast path when the products fit in u64 (always true for adaptive models).
    let small = total
        .checked_mul(u128::from(spare))
        .is_some_and(|p| p < u128::from(u64::MAX));
    let total64 = total as u64;
    for c in counts {
        cum += u128::from(c);
        seen += u64::from(c > 0);
        let q = if small {
            (cum as u64 * spare) / total64
        } else {
            ((cum * u128::from(spare)) / total) as u64
        };
        // q <= spare and seen <= nonzero, so q + seen <= TOTAL fits in u32.
        cdf.push((q + seen) as u32);
    }
    Ok(cdf)
}

/// A static categorical model: fixed-point frequencies over `0..n`.
///
/// Build it from exact fixed-point frequencies ([`Categorical::from_frequencies`]), from a
/// histogram ([`Categorical::from_counts`], normalised by integer arithmetic only), or as
/// a uniform model. A codec that transmits its histogram stores the counts and rebuilds
/// the model with `from_counts` on both sides.
///
/// ```
/// use lcodec_entropy::{Categorical, Decode, Encode, RangeDecoder, RangeEncoder};
///
/// let model = Categorical::from_counts(&[10, 0, 3, 1])?;
/// let mut enc = RangeEncoder::new();
/// for &s in &[0, 2, 0, 3] {
///     enc.encode(s, &model)?;
/// }
/// let bytes = enc.finish();
/// let mut dec = RangeDecoder::new(&bytes)?;
/// let out: Vec<usize> = (0..4).map(|_| dec.decode(&model)).collect::<Result<_, _>>()?;
/// assert_eq!(out, [0, 2, 0, 3]);
/// // Symbol 1 had count 0: it cannot be encoded.
/// assert!(RangeEncoder::new().encode(1, &model).is_err());
/// # Ok::<(), lcodec_entropy::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Categorical {
    table: CdfTable,
}

impl Categorical {
    /// A model from fixed-point frequencies that sum to exactly [`TOTAL`]
    /// (`1 << PRECISION`). Zero frequencies make a symbol uncodable.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `frequencies` is empty or does not sum to `TOTAL`.
    pub fn from_frequencies(frequencies: &[u32]) -> Result<Self> {
        if frequencies.is_empty() {
            return Err(Error::InvalidArgument("empty frequency table".into()));
        }
        let mut cdf = Vec::with_capacity(frequencies.len() + 1);
        cdf.push(0u32);
        let mut sum: u64 = 0;
        for &f in frequencies {
            sum += u64::from(f);
            if sum > u64::from(TOTAL) {
                break;
            }
            cdf.push(sum as u32);
        }
        if sum != u64::from(TOTAL) || cdf.len() != frequencies.len() + 1 {
            return Err(Error::InvalidArgument(format!(
                "frequencies sum to {sum}+ (expected exactly {TOTAL} = 1 << {PRECISION})"
            )));
        }
        Ok(Self {
            table: CdfTable::from_checked(cdf),
        })
    }

    /// A model from a histogram, normalised deterministically: every symbol with a
    /// nonzero count gets frequency `>= 1`, symbols with count 0 get frequency 0 (they
    /// cannot be coded; add 1 to every count if all symbols must stay codable), the rest
    /// of [`TOTAL`] is shared in proportion to the counts (floored prefix sums).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if all counts are zero or more than `TOTAL` counts are
    /// nonzero.
    pub fn from_counts(counts: &[u64]) -> Result<Self> {
        let cdf = normalize_counts(counts.iter().copied(), counts.len())?;
        Ok(Self {
            table: CdfTable::from_checked(cdf),
        })
    }

    /// The uniform model over `0..num_symbols`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `num_symbols` is 0 or exceeds [`TOTAL`].
    pub fn uniform(num_symbols: usize) -> Result<Self> {
        if num_symbols == 0 || num_symbols > TOTAL as usize {
            return Err(Error::InvalidArgument(format!(
                "uniform model of {num_symbols} symbols (expected 1..={TOTAL})"
            )));
        }
        let cdf = normalize_counts(std::iter::repeat_n(1u64, num_symbols), num_symbols)?;
        Ok(Self {
            table: CdfTable::from_checked(cdf),
        })
    }

    /// The fixed-point frequency of each symbol (they sum to [`TOTAL`]).
    pub fn frequencies(&self) -> Vec<u32> {
        self.table.frequencies()
    }

    /// The cumulative table: `num_symbols() + 1` entries from 0 to [`TOTAL`].
    pub fn cdf(&self) -> &[u32] {
        self.table.as_slice()
    }
}

impl Model for Categorical {
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
