//! Range coder and ANS wrappers over `constriction`, and the [`Encode`] / [`Decode`]
//! traits they share.

use core::borrow::Borrow;
use core::num::NonZeroU32;

use constriction::stream::model::{DecoderModel, EncoderModel, EntropyModel};
use constriction::stream::queue::{DefaultRangeDecoder, DefaultRangeEncoder};
use constriction::stream::stack::DefaultAnsCoder;
use constriction::stream::{Decode as CDecode, Encode as CEncode};

use crate::adaptive::AdaptiveBit;
use crate::parametric::QuantizedCdf;
use crate::{Adapt, BIT_PRECISION, Error, Model, PRECISION, Result};

const P: usize = PRECISION as usize;
const BP: usize = BIT_PRECISION as usize;
const BIT_TOTAL: u32 = 1 << BIT_PRECISION;

/// End marker written by the encoders' `finish` and checked by the decoders' `finish`
/// (16 bypass bits), so truncated or mismatched streams are detected with probability
/// about 1 - 2^-16.
const END_MARKER: u32 = 0xA5C3;

/// Longest Exp-Golomb prefix the decoder accepts (values are `u32`).
const MAX_EXP_GOLOMB_ZEROS: u32 = 32;

// ---------------------------------------------------------------------------------------
// constriction adapters
// ---------------------------------------------------------------------------------------

/// A one-interval "model": encodes a precomputed `(start, freq)` at precision `Q`.
#[derive(Clone, Copy)]
struct Interval<const Q: usize> {
    start: u32,
    freq: NonZeroU32,
}

impl<const Q: usize> EntropyModel<Q> for Interval<Q> {
    type Symbol = ();
    type Probability = u32;
}

impl<const Q: usize> EncoderModel<Q> for Interval<Q> {
    #[inline(always)]
    fn left_cumulative_and_probability(&self, _: impl Borrow<()>) -> Option<(u32, NonZeroU32)> {
        Some((self.start, self.freq))
    }
}

/// A [`Model`] seen as a constriction decoder model at [`PRECISION`].
struct Lookup<'a, M: ?Sized>(&'a M);

impl<M: ?Sized> Clone for Lookup<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M: ?Sized> Copy for Lookup<'_, M> {}

impl<M: Model + ?Sized> EntropyModel<P> for Lookup<'_, M> {
    type Symbol = usize;
    type Probability = u32;
}

impl<M: Model + ?Sized> DecoderModel<P> for Lookup<'_, M> {
    #[inline(always)]
    fn quantile_function(&self, quantile: u32) -> (usize, u32, NonZeroU32) {
        let (s, start, freq) = self.0.lookup(quantile);
        (s, start, NonZeroU32::new(freq).unwrap_or(NonZeroU32::MIN))
    }
}

/// `nbits` (1..=16) raw bits at [`BIT_PRECISION`].
#[derive(Clone, Copy)]
struct RawBits {
    nbits: u32,
}

impl EntropyModel<BP> for RawBits {
    type Symbol = u32;
    type Probability = u32;
}

impl DecoderModel<BP> for RawBits {
    #[inline(always)]
    fn quantile_function(&self, quantile: u32) -> (u32, u32, NonZeroU32) {
        let shift = BIT_PRECISION - self.nbits;
        let v = quantile >> shift;
        let freq = NonZeroU32::new(1 << shift).unwrap_or(NonZeroU32::MIN);
        (v, v << shift, freq)
    }
}

/// A bit with `P(0) = p0 / 2^16`.
#[derive(Clone, Copy)]
struct BinModel {
    p0: u32,
}

impl EntropyModel<BP> for BinModel {
    type Symbol = bool;
    type Probability = u32;
}

impl DecoderModel<BP> for BinModel {
    #[inline(always)]
    fn quantile_function(&self, quantile: u32) -> (bool, u32, NonZeroU32) {
        if quantile < self.p0 {
            (
                false,
                0,
                NonZeroU32::new(self.p0).unwrap_or(NonZeroU32::MIN),
            )
        } else {
            let f = BIT_TOTAL - self.p0;
            (true, self.p0, NonZeroU32::new(f).unwrap_or(NonZeroU32::MIN))
        }
    }
}

/// `P(0)` at 16 bits for a caller's `P(1)`, clamped so both bits stay codable.
#[inline(always)]
fn p0_of(p1: u16) -> u32 {
    BIT_TOTAL - u32::from(p1.max(1))
}

#[inline(always)]
fn nz(f: u32) -> NonZeroU32 {
    NonZeroU32::new(f).unwrap_or(NonZeroU32::MIN)
}

fn words_from_bytes(bytes: &[u8]) -> Result<Vec<u32>> {
    if bytes.len() % 4 != 0 {
        return Err(Error::Malformed(format!(
            "entropy-coded length {} is not a multiple of 4 bytes",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn bytes_from_words(words: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(words.len() * 4);
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out
}

fn impossible(symbol: usize, model: &(impl Model + ?Sized)) -> Error {
    Error::ImpossibleSymbol {
        symbol: symbol as u64,
        num_symbols: model.num_symbols(),
    }
}

// ---------------------------------------------------------------------------------------
// The traits
// ---------------------------------------------------------------------------------------

pub(crate) mod sealed {
    use crate::{Model, Result};

    /// The one primitive every encoder implements: code the interval
    /// `[start, start + freq)` of a table at `BIT_PRECISION` (`wide == false`) or
    /// `PRECISION` (`wide == true`).
    pub trait EncodePrimitive {
        fn put(&mut self, start: u32, freq: u32, wide: bool) -> Result<()>;
    }

    /// The decoder primitives.
    pub trait DecodePrimitive {
        fn get<M: Model + ?Sized>(&mut self, model: &M) -> Result<usize>;
        /// 1..=16 raw bits.
        fn get_bits16(&mut self, nbits: u32) -> Result<u32>;
        fn get_bin(&mut self, p0: u32) -> Result<bool>;
    }
}

/// Encoding: implemented by [`RangeEncoder`] and [`AnsEncoder`].
///
/// Both encoders are *queues* from the caller's view: the decoder returns the symbols in
/// the order they were encoded, with the same models in the same order. The trait is
/// sealed; all methods are provided.
pub trait Encode: sealed::EncodePrimitive {
    /// Encodes `symbol` under `model`.
    ///
    /// # Errors
    /// [`Error::ImpossibleSymbol`] if `symbol` is outside the alphabet or has frequency 0.
    #[inline]
    fn encode<M: Model + ?Sized>(&mut self, symbol: usize, model: &M) -> Result<()> {
        let (start, freq) = model
            .interval(symbol)
            .ok_or_else(|| impossible(symbol, model))?;
        self.put(start, freq, true)
    }

    /// Encodes `symbol` under an adaptive model, then updates the model with it.
    ///
    /// # Errors
    /// As [`Encode::encode`]; the model is not updated on error.
    #[inline]
    fn encode_adaptive<M: Model + Adapt + ?Sized>(
        &mut self,
        symbol: usize,
        model: &mut M,
    ) -> Result<()> {
        self.encode(symbol, &*model)?;
        model.update(symbol);
        Ok(())
    }

    /// Encodes `value`, which must fit in `nbits` (0..=32) bits, with uniform probability
    /// (bypass bits). Decode it with [`Decode::decode_bits`] and the same `nbits`: a
    /// chunk of n bits is a different coder operation from n single bits.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `nbits > 32` or `value` does not fit in `nbits`.
    fn encode_bits(&mut self, value: u32, nbits: u32) -> Result<()> {
        if nbits > 32 || (nbits < 32 && value >> nbits != 0) {
            return Err(Error::InvalidArgument(format!(
                "value {value} does not fit in {nbits} bits (at most 32)"
            )));
        }
        if nbits > 16 {
            // High chunk (nbits - 16 bits) first, then the low 16 bits.
            put_bits16(self, value >> 16, nbits - 16)?;
            put_bits16(self, value & 0xFFFF, 16)
        } else if nbits > 0 {
            put_bits16(self, value, nbits)
        } else {
            Ok(())
        }
    }

    /// Encodes one bit whose probability of being 1 is `p1 / 65536` (`p1` is clamped to
    /// `1..=65535`). This is the path for context mixing: mix, then code under the mix.
    ///
    /// # Errors
    /// None in practice; the `Result` keeps the signature uniform.
    #[inline]
    fn encode_bit(&mut self, bit: bool, p1: u16) -> Result<()> {
        let p0 = p0_of(p1);
        if bit {
            self.put(p0, BIT_TOTAL - p0, false)
        } else {
            self.put(0, p0, false)
        }
    }

    /// Encodes one bit under an [`AdaptiveBit`], then updates it.
    ///
    /// # Errors
    /// As [`Encode::encode_bit`].
    #[inline]
    fn encode_bit_adaptive(&mut self, bit: bool, model: &mut AdaptiveBit) -> Result<()> {
        self.encode_bit(bit, model.p1())?;
        model.update_bit(bit);
        Ok(())
    }

    /// Encodes any `u32` with an order-0 Exp-Golomb code in bypass bits (1 bit for 0, 3
    /// bits for 1..=2, …, 65 bits for `u32::MAX`).
    ///
    /// # Errors
    /// None in practice.
    fn encode_exp_golomb(&mut self, value: u32) -> Result<()> {
        let w = u64::from(value) + 1;
        let len = 63 - w.leading_zeros(); // bits after the leading 1: 0..=32
        // The prefix goes bit by bit: the decoder reads it one bit at a time, and a
        // chunk of n bits is not the same coder operation as n single bits.
        for _ in 0..len {
            self.encode_bits(0, 1)?;
        }
        self.encode_bits(1, 1)?;
        let low = (w & ((1u64 << len) - 1)) as u32;
        self.encode_bits(low, len)
    }

    /// Encodes an integer under a quantized parametric table: values within
    /// `±table.radius()` are one symbol; others are the escape symbol, a sign bit and the
    /// excess `|value| - radius - 1` in Exp-Golomb bypass bits, so every `i32` is codable.
    ///
    /// For a distribution with mean `m`, the codec codes `value - round(m)` (its own
    /// deterministic rounding) under the zero-mean table.
    ///
    /// # Errors
    /// None in practice.
    fn encode_integer(&mut self, value: i32, table: &QuantizedCdf) -> Result<()> {
        let r = i64::from(table.radius());
        let v = i64::from(value);
        if (-r..=r).contains(&v) {
            return self.encode((v + r) as usize, table);
        }
        self.encode(table.escape_symbol(), table)?;
        self.encode_bits(u32::from(v < 0), 1)?;
        self.encode_exp_golomb((v.abs() - r - 1) as u32)
    }
}

#[inline]
fn put_bits16<E: sealed::EncodePrimitive + ?Sized>(
    e: &mut E,
    value: u32,
    nbits: u32,
) -> Result<()> {
    let shift = BIT_PRECISION - nbits;
    e.put(value << shift, 1 << shift, false)
}

/// Decoding: implemented by [`RangeDecoder`] and [`AnsDecoder`].
///
/// Call the methods mirroring the encoder's calls, in the same order, with the same
/// models. On damaged input, decoding returns [`Error::Malformed`] or wrong symbols; it
/// never panics and never loops (every method reads a bounded amount). The trait is
/// sealed; all methods are provided.
pub trait Decode: sealed::DecodePrimitive {
    /// Decodes one symbol under `model`.
    ///
    /// # Errors
    /// [`Error::Malformed`] if the data is detectably invalid.
    #[inline]
    fn decode<M: Model + ?Sized>(&mut self, model: &M) -> Result<usize> {
        self.get(model)
    }

    /// Decodes one symbol under an adaptive model, then updates the model with it.
    ///
    /// # Errors
    /// As [`Decode::decode`].
    #[inline]
    fn decode_adaptive<M: Model + Adapt + ?Sized>(&mut self, model: &mut M) -> Result<usize> {
        let s = self.get(&*model)?;
        model.update(s);
        Ok(s)
    }

    /// Decodes `nbits` (0..=32) bypass bits.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `nbits > 32`; [`Error::Malformed`] on invalid data.
    fn decode_bits(&mut self, nbits: u32) -> Result<u32> {
        if nbits > 32 {
            return Err(Error::InvalidArgument(format!(
                "{nbits} bits requested (at most 32)"
            )));
        }
        if nbits > 16 {
            let hi = self.get_bits16(nbits - 16)?;
            let lo = self.get_bits16(16)?;
            Ok((hi << 16) | lo)
        } else if nbits > 0 {
            self.get_bits16(nbits)
        } else {
            Ok(0)
        }
    }

    /// Decodes one bit coded with [`Encode::encode_bit`] under the same `p1`.
    ///
    /// # Errors
    /// [`Error::Malformed`] on invalid data.
    #[inline]
    fn decode_bit(&mut self, p1: u16) -> Result<bool> {
        self.get_bin(p0_of(p1))
    }

    /// Decodes one bit under an [`AdaptiveBit`], then updates it.
    ///
    /// # Errors
    /// As [`Decode::decode_bit`].
    #[inline]
    fn decode_bit_adaptive(&mut self, model: &mut AdaptiveBit) -> Result<bool> {
        let b = self.decode_bit(model.p1())?;
        model.update_bit(b);
        Ok(b)
    }

    /// Decodes a value written by [`Encode::encode_exp_golomb`].
    ///
    /// # Errors
    /// [`Error::Malformed`] if the prefix is longer than any `u32` needs.
    fn decode_exp_golomb(&mut self) -> Result<u32> {
        let mut zeros = 0u32;
        while self.get_bits16(1)? == 0 {
            zeros += 1;
            if zeros > MAX_EXP_GOLOMB_ZEROS {
                return Err(Error::Malformed(
                    "Exp-Golomb prefix longer than 32 bits".into(),
                ));
            }
        }
        let low = self.decode_bits(zeros)?;
        let w = (1u64 << zeros) | u64::from(low);
        u32::try_from(w - 1).map_err(|_| Error::Malformed("Exp-Golomb value exceeds u32".into()))
    }

    /// Decodes an integer written by [`Encode::encode_integer`] with the same table.
    ///
    /// # Errors
    /// [`Error::Malformed`] if an escaped value does not fit in `i32`.
    fn decode_integer(&mut self, table: &QuantizedCdf) -> Result<i32> {
        let s = self.get(table)?;
        let r = i64::from(table.radius());
        if s < table.escape_symbol() {
            return Ok((s as i64 - r) as i32);
        }
        let negative = self.get_bits16(1)? == 1;
        let mag = r + 1 + i64::from(self.decode_exp_golomb()?);
        let v = if negative { -mag } else { mag };
        i32::try_from(v).map_err(|_| Error::Malformed(format!("escaped value {v} exceeds i32")))
    }
}

impl<T: sealed::EncodePrimitive> Encode for T {}
impl<T: sealed::DecodePrimitive> Decode for T {}

// ---------------------------------------------------------------------------------------
// Range coder (queue)
// ---------------------------------------------------------------------------------------

/// A range encoder (constriction's `DefaultRangeEncoder`: 32-bit words, 64-bit state).
///
/// Symbols come back from [`RangeDecoder`] in the order they were encoded. Use it for
/// streams and for adaptive models.
#[derive(Debug, Default)]
pub struct RangeEncoder {
    inner: DefaultRangeEncoder,
}

impl RangeEncoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of compressed words written so far; [`RangeEncoder::finish`] adds the
    /// pending state and end marker (at most 12 bytes). For rate estimates.
    pub fn num_bytes(&self) -> usize {
        self.inner.num_words() * 4
    }

    /// Finishes the stream (appending a 16-bit end marker that [`RangeDecoder::finish`]
    /// checks) and returns the compressed bytes (little-endian 32-bit words).
    pub fn finish(mut self) -> Vec<u8> {
        let marker = Interval::<BP> {
            start: END_MARKER,
            freq: NonZeroU32::MIN,
        };
        if self.inner.encode_symbol((), marker).is_err() {
            unreachable!("range coding of a nonzero interval failed");
        }
        let Ok(words) = self.inner.into_compressed();
        bytes_from_words(&words)
    }
}

impl sealed::EncodePrimitive for RangeEncoder {
    #[inline(always)]
    fn put(&mut self, start: u32, freq: u32, wide: bool) -> Result<()> {
        let r = if wide {
            self.inner.encode_symbol(
                (),
                Interval::<P> {
                    start,
                    freq: nz(freq),
                },
            )
        } else {
            self.inner.encode_symbol(
                (),
                Interval::<BP> {
                    start,
                    freq: nz(freq),
                },
            )
        };
        r.map_err(|_| Error::ImpossibleSymbol {
            symbol: u64::from(start),
            num_symbols: 0,
        })
    }
}

/// A range decoder for the bytes of a [`RangeEncoder`].
#[derive(Debug)]
pub struct RangeDecoder {
    inner: DefaultRangeDecoder,
}

impl RangeDecoder {
    /// A decoder over compressed bytes (copied).
    ///
    /// # Errors
    /// [`Error::Malformed`] if the length is not a multiple of 4.
    pub fn new(bytes: &[u8]) -> Result<Self> {
        let words = words_from_bytes(bytes)?;
        let Ok(inner) = DefaultRangeDecoder::from_compressed(words);
        Ok(Self { inner })
    }

    /// Checks, after the last symbol, the end marker written by [`RangeEncoder::finish`]
    /// and that the data was consumed up to its end. This detects truncated, damaged or
    /// mismatched streams with probability about 1 - 2^-16.
    ///
    /// # Errors
    /// [`Error::Malformed`] if the marker is wrong or compressed data is left over.
    pub fn finish(mut self) -> Result<()> {
        use sealed::DecodePrimitive as _;
        if self.get_bits16(16)? != END_MARKER {
            return Err(Error::Malformed(
                "range-coded data: end marker mismatch".into(),
            ));
        }
        if self.inner.maybe_exhausted() {
            Ok(())
        } else {
            Err(Error::Malformed(
                "range-coded data continues after the last symbol".into(),
            ))
        }
    }
}

fn range_err<E: core::fmt::Debug>(e: E) -> Error {
    Error::Malformed(format!("range decoder: {e:?}"))
}

impl sealed::DecodePrimitive for RangeDecoder {
    #[inline(always)]
    fn get<M: Model + ?Sized>(&mut self, model: &M) -> Result<usize> {
        self.inner.decode_symbol(Lookup(model)).map_err(range_err)
    }
    #[inline(always)]
    fn get_bits16(&mut self, nbits: u32) -> Result<u32> {
        self.inner
            .decode_symbol(RawBits { nbits })
            .map_err(range_err)
    }
    #[inline(always)]
    fn get_bin(&mut self, p0: u32) -> Result<bool> {
        self.inner.decode_symbol(BinModel { p0 }).map_err(range_err)
    }
}

// ---------------------------------------------------------------------------------------
// ANS (stack), presented as a queue
// ---------------------------------------------------------------------------------------

/// An ANS encoder (constriction's `DefaultAnsCoder`: 32-bit words, 64-bit state).
///
/// ANS is a stack: the last symbol encoded is the first decoded. This wrapper records
/// each coded interval (8 bytes per symbol) and pushes them in reverse in
/// [`AnsEncoder::finish`], so [`AnsDecoder`] returns symbols in encoding order, exactly
/// like the range coder, and adaptive models work unchanged. ANS decodes faster than the
/// range coder; the range coder streams without buffering.
#[derive(Debug, Default, Clone)]
pub struct AnsEncoder {
    // start (24 bits) | (freq - 1) << 24 (24 bits) | wide << 48
    ops: Vec<u64>,
}

impl AnsEncoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of coded intervals recorded so far (symbols, bit chunks).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether nothing was encoded yet.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Encodes the recorded symbols, with a 16-bit end marker that
    /// [`AnsDecoder::finish`] checks, and returns the compressed bytes (little-endian
    /// 32-bit words).
    pub fn finish(self) -> Vec<u8> {
        let mut coder = DefaultAnsCoder::new();
        // Pushed first, so decoded last.
        let marker = Interval::<BP> {
            start: END_MARKER,
            freq: NonZeroU32::MIN,
        };
        if coder.encode_symbol((), marker).is_err() {
            unreachable!("ANS encoding of a nonzero interval failed");
        }
        for &op in self.ops.iter().rev() {
            let start = (op & 0xFF_FFFF) as u32;
            let freq = nz(((op >> 24) & 0xFF_FFFF) as u32 + 1);
            let r = if op >> 48 != 0 {
                coder.encode_symbol((), Interval::<P> { start, freq })
            } else {
                coder.encode_symbol((), Interval::<BP> { start, freq })
            };
            // `Interval` always returns a nonzero probability and `Vec` writes cannot
            // fail, so constriction cannot return an error here.
            if r.is_err() {
                unreachable!("ANS encoding of a nonzero interval failed");
            }
        }
        let Ok(words) = coder.into_compressed();
        bytes_from_words(&words)
    }
}

impl sealed::EncodePrimitive for AnsEncoder {
    #[inline(always)]
    fn put(&mut self, start: u32, freq: u32, wide: bool) -> Result<()> {
        debug_assert!(freq >= 1 && start + freq <= 1 << PRECISION);
        let op = u64::from(start) | (u64::from(freq - 1) << 24) | (u64::from(wide) << 48);
        self.ops.push(op);
        Ok(())
    }
}

/// An ANS decoder for the bytes of an [`AnsEncoder`]; returns symbols in encoding order.
#[derive(Debug)]
pub struct AnsDecoder {
    inner: DefaultAnsCoder,
}

impl AnsDecoder {
    /// A decoder over compressed bytes (copied).
    ///
    /// # Errors
    /// [`Error::Malformed`] if the length is not a multiple of 4 or the data ends in a
    /// zero word (which [`AnsEncoder`] never writes).
    pub fn new(bytes: &[u8]) -> Result<Self> {
        let words = words_from_bytes(bytes)?;
        let inner = DefaultAnsCoder::from_compressed(words)
            .map_err(|_| Error::Malformed("ANS data ends in a zero word".into()))?;
        Ok(Self { inner })
    }

    /// Checks, after the last symbol, the end marker written by [`AnsEncoder::finish`]
    /// and that the data was consumed exactly (ANS returns to its initial state). This
    /// detects truncated, damaged or mismatched streams with probability about 1 - 2^-16.
    ///
    /// # Errors
    /// [`Error::Malformed`] if the marker is wrong or the decoder is not back at its
    /// initial state.
    pub fn finish(mut self) -> Result<()> {
        use sealed::DecodePrimitive as _;
        if self.get_bits16(16)? != END_MARKER {
            return Err(Error::Malformed("ANS data: end marker mismatch".into()));
        }
        if self.inner.is_empty() {
            Ok(())
        } else {
            Err(Error::Malformed(
                "ANS data not fully consumed after the last symbol".into(),
            ))
        }
    }
}

impl sealed::DecodePrimitive for AnsDecoder {
    #[inline(always)]
    fn get<M: Model + ?Sized>(&mut self, model: &M) -> Result<usize> {
        let Ok(s) = self.inner.decode_symbol(Lookup(model));
        Ok(s)
    }
    #[inline(always)]
    fn get_bits16(&mut self, nbits: u32) -> Result<u32> {
        let Ok(v) = self.inner.decode_symbol(RawBits { nbits });
        Ok(v)
    }
    #[inline(always)]
    fn get_bin(&mut self, p0: u32) -> Result<bool> {
        let Ok(b) = self.inner.decode_symbol(BinModel { p0 });
        Ok(b)
    }
}
