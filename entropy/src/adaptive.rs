//! Adaptive models: a frequency model over `0..n` and a binary probability state.

use crate::model::{CdfTable, normalize_counts};
use crate::{Adapt, Error, Model, Result};

/// Adaptive tables with at least this many symbols get a decoding index.
const ADAPTIVE_INDEX_THRESHOLD: usize = 512;

/// Largest alphabet an [`AdaptiveFrequency`] model accepts.
pub const MAX_ADAPTIVE_SYMBOLS: usize = 1 << 20;

/// An adaptive frequency model over the symbols `0..n`.
///
/// Every symbol starts with count 1. Coding symbol `s` (through
/// [`crate::Encode::encode_adaptive`] / [`crate::Decode::decode_adaptive`]) adds
/// `increment` (default 32) to its count; when the counts' total exceeds a limit
/// (`max(2^16, 64 n)`) every count is halved, rounding up, so the model follows
/// non-stationary data. The coding table is rebuilt from the counts (integer
/// normalisation, see [`crate::Categorical::from_counts`]) after 1, 2, 4, … updates, up
/// to every `clamp(4 n, 32, 1024)` updates, which keeps the cost per symbol O(1) on
/// average. Everything is integer arithmetic, so encoder and decoder stay in lockstep.
///
/// Meant for alphabets up to a few thousand symbols (a rebuild is O(n)); for larger
/// alphabets prefer a static [`crate::Categorical`] from transmitted counts.
#[derive(Debug, Clone)]
pub struct AdaptiveFrequency {
    counts: Vec<u32>,
    total: u64,
    limit: u64,
    increment: u32,
    table: CdfTable,
    since_rebuild: u32,
    period: u32,
    max_period: u32,
}

impl AdaptiveFrequency {
    /// A model over `0..num_symbols` with all counts 1 and the default increment 32.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `num_symbols` is 0 or exceeds
    /// [`MAX_ADAPTIVE_SYMBOLS`].
    pub fn new(num_symbols: usize) -> Result<Self> {
        Self::with_increment(num_symbols, 32)
    }

    /// Like [`AdaptiveFrequency::new`] with another count increment (larger adapts faster;
    /// 1..=1024).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an out-of-range alphabet size or increment.
    pub fn with_increment(num_symbols: usize, increment: u32) -> Result<Self> {
        if num_symbols == 0 || num_symbols > MAX_ADAPTIVE_SYMBOLS {
            return Err(Error::InvalidArgument(format!(
                "adaptive model of {num_symbols} symbols (expected 1..={MAX_ADAPTIVE_SYMBOLS})"
            )));
        }
        if !(1..=1024).contains(&increment) {
            return Err(Error::InvalidArgument(format!(
                "adaptive increment {increment} (expected 1..=1024)"
            )));
        }
        let counts = vec![1u32; num_symbols];
        let table = CdfTable::with_index_threshold(
            normalize_counts(counts.iter().map(|&c| u64::from(c)), num_symbols)?,
            ADAPTIVE_INDEX_THRESHOLD,
        );
        let n = num_symbols as u64;
        Ok(Self {
            counts,
            total: n,
            limit: (64 * n).max(1 << 16),
            increment,
            table,
            since_rebuild: 0,
            period: 1,
            max_period: (4 * num_symbols).clamp(32, 1024) as u32,
        })
    }

    /// A model that starts from `counts` (a learned prior: each at least 1, their sum at
    /// most `max(64 · counts.len(), 65536)`, the total at which counts are halved) instead
    /// of all ones, with count increment `increment`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an out-of-range alphabet size or increment, a zero
    /// count or too large a sum.
    pub fn with_counts(counts: &[u32], increment: u32) -> Result<Self> {
        let mut m = Self::with_increment(counts.len(), increment)?;
        let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        if counts.contains(&0) || total > m.limit {
            return Err(Error::InvalidArgument(format!(
                "adaptive model prior: {} counts summing to {total} (expected each >= 1, \
                 sum <= {})",
                counts.len(),
                m.limit
            )));
        }
        m.counts = counts.to_vec();
        m.total = total;
        m.rebuild();
        Ok(m)
    }

    /// The current counts (not the coding table, which lags by up to one rebuild period).
    pub fn counts(&self) -> &[u32] {
        &self.counts
    }

    fn rebuild(&mut self) {
        // The counts are all >= 1 and at most `limit` in total, so normalisation cannot
        // fail; keep the old table if it ever did.
        if let Ok(cdf) =
            normalize_counts(self.counts.iter().map(|&c| u64::from(c)), self.counts.len())
        {
            self.table = CdfTable::with_index_threshold(cdf, ADAPTIVE_INDEX_THRESHOLD);
        }
    }
}

impl Adapt for AdaptiveFrequency {
    fn update(&mut self, symbol: usize) {
        let Some(c) = self.counts.get_mut(symbol) else {
            return;
        };
        *c += self.increment;
        self.total += u64::from(self.increment);
        if self.total > self.limit {
            let mut total = 0u64;
            for c in &mut self.counts {
                *c = c.div_ceil(2);
                total += u64::from(*c);
            }
            self.total = total;
        }
        self.since_rebuild += 1;
        if self.since_rebuild >= self.period {
            self.rebuild();
            self.since_rebuild = 0;
            self.period = (self.period * 2).min(self.max_period);
        }
    }
}

impl Model for AdaptiveFrequency {
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

/// An adaptive binary model: the probability that the next bit is 1, as a 16-bit
/// fixed-point number in `1..=65535` (of 65536), updated by a shift.
///
/// After a 1 the probability moves up by `(65536 - p) >> shift`, after a 0 down by
/// `p >> shift`; it never reaches 0 or 65536, so both bits stay codable. The default shift
/// 5 adapts over roughly 32 bits. Code with [`crate::Encode::encode_bit_adaptive`]; for
/// context mixing read [`AdaptiveBit::p1`], mix, and code with
/// [`crate::Encode::encode_bit`] under the mixed probability.
///
/// Bits are coded through the same range coder (or ANS) as every other symbol, as a
/// two-symbol model at [`crate::BIT_PRECISION`] = 16 bits: there is no separate binary
/// arithmetic coder, so bits and multi-symbol models share one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveBit {
    p1: u16,
    shift: u8,
}

impl Default for AdaptiveBit {
    fn default() -> Self {
        Self::new()
    }
}

impl AdaptiveBit {
    /// Probability 1/2, shift 5.
    pub const fn new() -> Self {
        Self {
            p1: 1 << 15,
            shift: 5,
        }
    }

    /// Probability 1/2 with the given adaptation shift, clamped to `1..=15` (smaller
    /// adapts faster, larger is more precise on stationary data).
    pub const fn with_shift(shift: u32) -> Self {
        let s = if shift < 1 {
            1
        } else if shift > 15 {
            15
        } else {
            shift
        };
        Self {
            p1: 1 << 15,
            shift: s as u8,
        }
    }

    /// Probability that the next bit is 1, in units of 2^-16 (always in `1..=65535`).
    pub const fn p1(&self) -> u16 {
        self.p1
    }

    /// Records a coded bit.
    #[inline]
    pub fn update_bit(&mut self, bit: bool) {
        let p = u32::from(self.p1);
        let p = if bit {
            p + ((65536 - p) >> self.shift)
        } else {
            p - (p >> self.shift)
        };
        // shift >= 1 keeps p in 1..=65535.
        self.p1 = p.clamp(1, 65535) as u16;
    }
}

impl Adapt for AdaptiveBit {
    fn update(&mut self, symbol: usize) {
        self.update_bit(symbol != 0);
    }
}
