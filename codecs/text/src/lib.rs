//! lcodec-text: text codecs. `text-cm` ([`TextCmCodec`]) is an online context-mixing
//! compressor that needs no weights: a bitwise model of orders 0–8, words and long
//! matches, mixed by gated logistic mixers and refined by SSE, drives a binary
//! arithmetic coder. (The pretrained-LM codec `text-llm` will live beside it.)
//!
//! ```
//! use lcodec_core::container::ChunkSink;
//! use lcodec_core::{Codec, EncodeOptions};
//! use lcodec_text::TextCmCodec;
//!
//! let text = b"It was the best of times, it was the worst of times. ".repeat(20);
//! let mut out = Vec::new();
//! let mut sink = ChunkSink::new(&mut out, TextCmCodec.info(), None);
//! TextCmCodec.encode(&mut &text[..], &mut sink, &EncodeOptions::default())?;
//! sink.finish(text.len() as u64, None)?;
//! assert!(out.len() < text.len() / 4);
//! # Ok::<(), lcodec_core::Error>(())
//! ```
//!
//! Chunks (default 16 MiB of input) are modelled independently, so a long file encodes
//! and decodes on all cores; each chunk's model holds at most `-p mem=MIB` MiB
//! (default 160, which gives 2^18 buckets per table, about 150 MiB; `mem=290` gives
//! 2^19 and about 1% fewer bits on large text): eight hashed tables of
//! `2^table_bits` 64-byte buckets plus small direct tables. Chunks smaller than the
//! tables get proportionally smaller tables.
//!
//! # Bitstream (codec version 1)
//! - Codec parameters: `[1, table_bits]` (format version, log2 buckets per table, 10..=22).
//! - Each chunk payload: one mode byte, then the body. Mode 0: the chunk stored as it is
//!   (used when coding would not shrink it). Mode 1: the output of [`coder::BitEncoder`]
//!   driven by [`cm::Model`] (fresh per chunk, sized by [`ModelSize::for_chunk`] from the
//!   chunk's length and `table_bits`), bits of each byte most significant first.
//!
//! The model is integer-only (no floating point anywhere in the model or coder), so a
//! file decodes identically on every machine and thread count.
#![forbid(unsafe_code)]

use std::io::{Read, Write};

use lcodec_core::container::{ChunkSink, ChunkSource, Header};
use lcodec_core::parallel::{decode_byte_chunks, encode_byte_chunks};
use lcodec_core::{
    Codec, CodecId, CodecInfo, Confidence, DecodeOptions, EncodeOptions, Error, Kind, Result,
};

pub mod cm;
pub mod coder;
pub mod llm;

pub use cm::ModelSize;

/// Default chunk size in bytes of input.
pub const DEFAULT_CHUNK: usize = 16 << 20;
/// Default model memory budget per chunk, in MiB.
pub const DEFAULT_MEM_MIB: u64 = 160;
/// Bitstream version stored as the first codec parameter byte.
pub const FORMAT_VERSION: u8 = 1;
/// Sniff confidence for text whose lines mostly start like log records (below the
/// log codec's 75 and below plain text's [`Confidence::CONTENT`]).
pub const LOGLIKE_CONFIDENCE: Confidence = Confidence(60);

/// Payload mode byte: chunk stored as it is (the model did not shrink it).
const MODE_STORED: u8 = 0;
/// Payload mode byte: context-mixing coded.
const MODE_CM: u8 = 1;

static CM_INFO: CodecInfo = CodecInfo {
    id: CodecId::TEXT_CM,
    name: "text-cm",
    version: 1,
    lossless: true,
    kind: Kind::Text,
    description: "text: online context mixing (orders 0-8, words, matches, SSE); no weights; -p mem=MIB",
};

/// The weight-free context-mixing text codec (`--codec text-cm`).
#[derive(Debug, Default, Clone, Copy)]
pub struct TextCmCodec;

impl TextCmCodec {
    /// Creates the codec.
    pub fn new() -> Self {
        TextCmCodec
    }
}

/// Largest `table_bits` whose model fits in `mem_mib` MiB.
///
/// # Errors
/// [`Error::InvalidArgument`] if even the smallest model does not fit.
pub fn table_bits_for_mem(mem_mib: u64) -> Result<u32> {
    let budget = mem_mib.saturating_mul(1 << 20);
    let mut best = None;
    for bits in ModelSize::MIN_BITS..=ModelSize::MAX_BITS {
        let s = ModelSize {
            table_bits: bits,
            match_bits: bits + 4,
        };
        if s.bytes() <= budget {
            best = Some(bits);
        }
    }
    best.ok_or_else(|| {
        let min = ModelSize {
            table_bits: ModelSize::MIN_BITS,
            match_bits: ModelSize::MIN_BITS + 4,
        }
        .bytes();
        Error::InvalidArgument(format!(
            "text-cm: mem={mem_mib} MiB is too small (need at least {} MiB)",
            min.div_ceil(1 << 20)
        ))
    })
}

/// Compresses one chunk into a payload (mode byte + body).
pub fn encode_chunk(data: &[u8], table_bits: u32) -> Vec<u8> {
    let coded = cm::compress(data, ModelSize::for_chunk(data.len(), table_bits));
    let mut out = Vec::with_capacity(coded.len().min(data.len()) + 1);
    if coded.len() < data.len() {
        out.push(MODE_CM);
        out.extend_from_slice(&coded);
    } else {
        out.push(MODE_STORED);
        out.extend_from_slice(data);
    }
    out
}

/// Decodes one payload to exactly `raw_len` bytes.
///
/// # Errors
/// [`Error::Codec`] for an unknown mode, a short stream or a length mismatch.
pub fn decode_chunk(payload: &[u8], raw_len: usize, table_bits: u32) -> Result<Vec<u8>> {
    let (&mode, body) = payload
        .split_first()
        .ok_or_else(|| Error::codec("text-cm", "empty payload"))?;
    match mode {
        MODE_STORED if body.len() == raw_len => Ok(body.to_vec()),
        MODE_STORED => Err(Error::codec(
            "text-cm",
            format!("stored chunk of {} bytes, expected {raw_len}", body.len()),
        )),
        MODE_CM => cm::decompress(body, raw_len, ModelSize::for_chunk(raw_len, table_bits))
            .ok_or_else(|| Error::codec("text-cm", "coded stream ends early")),
        m => Err(Error::codec("text-cm", format!("unknown payload mode {m}"))),
    }
}

/// How natural-language-like `head` is: `None` for binary or non-text, else the share of
/// lines that start like log records (a timestamp in their first 64 bytes), in percent.
fn text_profile(head: &[u8]) -> Option<usize> {
    if head.len() < 16 {
        return None;
    }
    // Valid UTF-8 (a sequence cut at the end of the head is fine).
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    };
    if !valid {
        return None;
    }
    let control = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c))
        .count();
    if control * 100 > head.len() {
        return None;
    }
    let letters = head
        .iter()
        .filter(|b| b.is_ascii_alphabetic() || **b >= 0x80)
        .count();
    let spaces = head.iter().filter(|&&b| b == b' ' || b == b'\n').count();
    // Natural language (and markup, code, logs): a third or more letters, word breaks.
    if letters * 3 < head.len() || spaces * 30 < head.len() {
        return None;
    }
    let lines: Vec<&[u8]> = head
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let loglike = lines.iter().filter(|l| starts_with_timestamp(l)).count();
    Some(loglike * 100 / lines.len().max(1))
}

fn starts_with_timestamp(l: &[u8]) -> bool {
    let w = &l[..l.len().min(64)];
    let d = |i: usize| w.get(i).is_some_and(u8::is_ascii_digit);
    (0..w.len()).any(|i| {
        (d(i) && d(i + 1) && w.get(i + 2) == Some(&b':') && d(i + 3) && d(i + 4))
            || ((0..4).all(|k| d(i + k))
                && matches!(w.get(i + 4), Some(b'-' | b'/'))
                && d(i + 5)
                && d(i + 6))
    })
}

impl Codec for TextCmCodec {
    fn info(&self) -> &'static CodecInfo {
        &CM_INFO
    }

    /// Natural-language text (valid UTF-8, mostly letters, word breaks) gets
    /// [`Confidence::CONTENT`]; text where a third or more of the lines carry a
    /// timestamp gets [`LOGLIKE_CONFIDENCE`] so the log codec wins; binary data, or
    /// anything else, `None`.
    fn sniff(&self, head: &[u8], _file_name: Option<&str>) -> Option<Confidence> {
        let loglike = text_profile(head)?;
        Some(if loglike >= 33 {
            LOGLIKE_CONFIDENCE
        } else {
            Confidence::CONTENT
        })
    }

    fn encode(
        &self,
        src: &mut dyn Read,
        sink: &mut ChunkSink<'_>,
        opts: &EncodeOptions,
    ) -> Result<()> {
        let mem = opts.param::<u64>("mem")?.unwrap_or(DEFAULT_MEM_MIB);
        let bits = table_bits_for_mem(mem)?;
        let chunk = opts.chunk_size.unwrap_or(DEFAULT_CHUNK);
        sink.begin(
            lcodec_core::Metadata::new(Kind::Text),
            Default::default(),
            &[FORMAT_VERSION, bits as u8],
        )?;
        encode_byte_chunks(src, sink, chunk, opts.effective_threads(), &|b| {
            Ok(encode_chunk(b, bits))
        })
    }

    fn decode(
        &self,
        header: &Header,
        src: &mut ChunkSource<'_>,
        dst: &mut dyn Write,
        opts: &DecodeOptions,
    ) -> Result<()> {
        let bits = match header.params.as_slice() {
            [FORMAT_VERSION, b]
                if (ModelSize::MIN_BITS..=ModelSize::MAX_BITS).contains(&(*b as u32)) =>
            {
                *b as u32
            }
            p => {
                return Err(Error::malformed(
                    header.len,
                    format!(
                        "text-cm: codec parameters {p:?} (expected [{FORMAT_VERSION}, table bits 10..=22])"
                    ),
                ));
            }
        };
        let limits = opts.limits;
        decode_byte_chunks(src, dst, opts.effective_threads(), &|c| {
            let size = ModelSize::for_chunk(c.raw_len as usize, bits);
            limits.check_alloc(size.bytes() + c.raw_len as u64, "text-cm model")?;
            decode_chunk(&c.payload, c.raw_len as usize, bits).map_err(|e| c.malformed(e))
        })
    }
}
