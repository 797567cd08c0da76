//! lcodec-entropy: entropy coders and deterministic probability models over `constriction`.
//!
//! This crate knows symbols and probabilities, nothing about pixels or samples. Every
//! lcodec codec writes its entropy-coded payloads through it.
//!
//! # Coders
//!
//! - [`RangeEncoder`] / [`RangeDecoder`]: constriction's range coder (a queue), 32-bit
//!   words, 64-bit state. Streams; the default choice.
//! - [`AnsEncoder`] / [`AnsDecoder`]: constriction's ANS coder (a stack). The encoder
//!   records the coded intervals and pushes them in reverse when finished, so the
//!   decoder returns symbols in *encoding order* like the range coder; decoding is faster,
//!   encoding buffers 8 bytes per symbol.
//!
//! Both implement [`Encode`] / [`Decode`]: `encode(symbol, &model)`, bypass bits,
//! single bits under a probability (for context mixing), adaptive models, Exp-Golomb,
//! and integers under a [`QuantizedCdf`] with an escape for out-of-range values.
//! `finish()` returns the bytes (a multiple of 4, ending with a 16-bit end marker);
//! decoders are built from a byte slice. Decoding damaged bytes returns
//! [`Error::Malformed`] or wrong symbols, never panics and never loops; the decoders'
//! `finish()` checks the end marker and that the data was consumed, which detects
//! truncation and model mismatch (bit flips are the container checksum's job: ANS
//! resynchronises after a damaged word and may not notice).
//!
//! # Models
//!
//! All multi-symbol models implement [`Model`]: integer frequencies that sum to exactly
//! `2^PRECISION` (`PRECISION` = 24) and are identical on every machine.
//!
//! - [`Categorical`]: static, from fixed-point frequencies or from a histogram
//!   (normalised with integer arithmetic only).
//! - [`AdaptiveFrequency`]: adaptive counts over `0..n`, periodically rescaled.
//! - [`AdaptiveBit`]: a 16-bit probability with shift update, for binary contexts.
//! - [`QuantizedCdf`]: zero-mean quantized Gaussian / Laplace / logistic on integer bins at
//!   one of 64 fixed scales ([`scale_table`], 0.11 … 256), built with the deterministic
//!   `exp` / `ln` / `erfc` of [`detmath`] (no platform libm, no FMA); [`tables`] gives the
//!   shared, lazily built set and [`tables_fingerprint`] their hash.
//!
//! Bits ([`Encode::encode_bit`], bypass bits) are coded at [`BIT_PRECISION`] = 16 bits
//! in the same stream: there is no separate binary arithmetic coder. A 16-bit bit
//! probability keeps the range coder's rounding loss negligible even for bits that are
//! almost certain.
//!
//! # Example
//!
//! ```
//! use lcodec_entropy::{
//!     AdaptiveBit, AdaptiveFrequency, Categorical, Decode, Encode, Family, RangeDecoder,
//!     RangeEncoder, tables,
//! };
//!
//! let gaussian = tables(Family::Gaussian);
//! let static_model = Categorical::from_counts(&[5, 1, 1, 1])?;
//!
//! // Encode: a few model kinds into one stream.
//! let mut enc = RangeEncoder::new();
//! let mut adaptive = AdaptiveFrequency::new(16)?;
//! let mut bit = AdaptiveBit::new();
//! for i in 0..100i32 {
//!     enc.encode((i % 4) as usize, &static_model)?;
//!     enc.encode_adaptive((i % 16) as usize, &mut adaptive)?;
//!     enc.encode_bit_adaptive(i % 3 == 0, &mut bit)?;
//!     // A latent value with mean 0 and a scale chosen by the codec (index 20).
//!     let table = gaussian.get(20).expect("index < 64");
//!     enc.encode_integer(i - 50, table)?;
//! }
//! let bytes = enc.finish();
//!
//! // Decode: the same calls, in the same order, with fresh copies of the models.
//! let mut dec = RangeDecoder::new(&bytes)?;
//! let mut adaptive = AdaptiveFrequency::new(16)?;
//! let mut bit = AdaptiveBit::new();
//! for i in 0..100i32 {
//!     assert_eq!(dec.decode(&static_model)?, (i % 4) as usize);
//!     assert_eq!(dec.decode_adaptive(&mut adaptive)?, (i % 16) as usize);
//!     assert_eq!(dec.decode_bit_adaptive(&mut bit)?, i % 3 == 0);
//!     assert_eq!(dec.decode_integer(gaussian.get(20).expect("index < 64"))?, i - 50);
//! }
//! dec.finish()?;
//! # Ok::<(), lcodec_entropy::Error>(())
//! ```
#![forbid(unsafe_code)]

mod adaptive;
mod coder;
pub mod detmath;
mod error;
pub mod fast;
mod model;
mod parametric;

pub use adaptive::{AdaptiveBit, AdaptiveFrequency, MAX_ADAPTIVE_SYMBOLS};
pub use coder::{AnsDecoder, AnsEncoder, Decode, Encode, RangeDecoder, RangeEncoder};
pub use error::{Error, Result};
pub use model::{Adapt, Categorical, Model, TOTAL};
pub use parametric::{
    Family, FamilyTables, NUM_SCALES, QuantizedCdf, SCALE_MAX, SCALE_MIN, scale_index, scale_table,
    tables, tables_fingerprint,
};

/// Fixed-point precision, in bits, of every [`Model`]: frequencies sum to
/// `1 << PRECISION`.
pub const PRECISION: u32 = 24;

/// Fixed-point precision, in bits, of single bits ([`Encode::encode_bit`],
/// [`AdaptiveBit`]) and bypass bits.
pub const BIT_PRECISION: u32 = 16;
