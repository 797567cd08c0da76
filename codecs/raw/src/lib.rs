//! lcodec-raw: the generic lossless codec. Every input round-trips through it; the
//! library falls back to it when no specialised codec recognises the input.
//!
//! Each chunk (default 4 MiB) is compressed independently with zstd (default, level 19
//! unless `--quality` says otherwise) or deflate (`-p method=deflate`), so encode and
//! decode run on all cores with memory bounded by chunk size × threads.
#![forbid(unsafe_code)]

use std::io::{Read, Write};

use lcodec_core::container::{ChunkSink, ChunkSource, Header};
use lcodec_core::parallel::{decode_byte_chunks, encode_byte_chunks};
use lcodec_core::{
    Codec, CodecId, CodecInfo, Confidence, DecodeOptions, EncodeOptions, Error, Kind, Result,
};

/// Default chunk size in bytes.
pub const DEFAULT_CHUNK: usize = 4 << 20;
/// Default zstd level.
pub const DEFAULT_ZSTD_LEVEL: i32 = 19;

/// Compression method stored in the codec parameters (one byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Chunks stored as they are.
    Store = 0,
    /// Raw deflate (RFC 1951) via flate2.
    Deflate = 1,
    /// zstd frames.
    Zstd = 2,
}

static INFO: CodecInfo = CodecInfo {
    id: CodecId::RAW,
    name: "raw",
    version: 1,
    lossless: true,
    kind: Kind::Bytes,
    description: "generic lossless: zstd (default, -q 1..22) or deflate (-p method=deflate, -q 0..9)",
};

/// The generic lossless codec.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawCodec;

impl RawCodec {
    /// Creates the codec.
    pub fn new() -> Self {
        RawCodec
    }
}

fn parse_method(opts: &EncodeOptions) -> Result<Method> {
    match opts.params.get("method").map(String::as_str) {
        None | Some("zstd") => Ok(Method::Zstd),
        Some("deflate") => Ok(Method::Deflate),
        Some("store") => Ok(Method::Store),
        Some(m) => Err(Error::InvalidArgument(format!(
            "raw: method {m:?} (expected zstd, deflate or store)"
        ))),
    }
}

/// Compresses one chunk with the given method and level.
///
/// # Errors
/// I/O errors from the compressor.
pub fn compress(method: Method, level: i32, data: &[u8]) -> Result<Vec<u8>> {
    match method {
        Method::Store => Ok(data.to_vec()),
        Method::Deflate => {
            let mut e = flate2::write::DeflateEncoder::new(
                Vec::new(),
                flate2::Compression::new(level as u32),
            );
            e.write_all(data)?;
            Ok(e.finish()?)
        }
        Method::Zstd => {
            let mut c = zstd::bulk::Compressor::new(level)?;
            // Content size lets the decoder check the frame; a long window helps big chunks.
            c.include_contentsize(true)?;
            c.include_checksum(false)?;
            if level >= 18 {
                c.long_distance_matching(true)?;
                c.window_log(27.min(bits_for(data.len())))?;
            }
            Ok(c.compress(data)?)
        }
    }
}

fn method_from_byte(b: u8) -> Option<Method> {
    match b {
        0 => Some(Method::Store),
        1 => Some(Method::Deflate),
        2 => Some(Method::Zstd),
        _ => None,
    }
}

fn bits_for(n: usize) -> u32 {
    let mut b = 10;
    while b < 27 && (1usize << b) < n {
        b += 1;
    }
    b
}

/// Decompresses one chunk that must expand to exactly `raw_len` bytes.
///
/// # Errors
/// [`Error::Codec`] for corrupt data or a length mismatch.
pub fn decompress(method: Method, data: &[u8], raw_len: usize) -> Result<Vec<u8>> {
    match method {
        Method::Store => Ok(data.to_vec()),
        Method::Deflate => {
            let mut out = Vec::with_capacity(raw_len);
            let mut d = flate2::read::DeflateDecoder::new(data).take(raw_len as u64 + 1);
            d.read_to_end(&mut out)
                .map_err(|e| Error::codec("raw", format!("deflate: {e}")))?;
            Ok(out)
        }
        Method::Zstd => {
            let mut d = zstd::bulk::Decompressor::new()?;
            d.window_log_max(27)?;
            let mut out = Vec::with_capacity(raw_len);
            d.decompress_to_buffer(data, &mut out)
                .map_err(|e| Error::codec("raw", format!("zstd: {e}")))?;
            Ok(out)
        }
    }
}

impl Codec for RawCodec {
    fn info(&self) -> &'static CodecInfo {
        &INFO
    }

    fn sniff(&self, _head: &[u8], _file_name: Option<&str>) -> Option<Confidence> {
        Some(Confidence::FALLBACK)
    }

    fn encode(
        &self,
        src: &mut dyn Read,
        sink: &mut ChunkSink<'_>,
        opts: &EncodeOptions,
    ) -> Result<()> {
        let method = parse_method(opts)?;
        let level = match (method, opts.quality) {
            (Method::Zstd, None) => DEFAULT_ZSTD_LEVEL,
            (Method::Deflate, None) => 9,
            (Method::Store, _) => 0,
            (Method::Zstd, Some(q)) if (1..=22).contains(&q) => q as i32,
            (Method::Deflate, Some(q)) if q <= 9 => q as i32,
            (m, Some(q)) => {
                return Err(Error::InvalidArgument(format!(
                    "raw: quality {q} out of range for {m:?} (zstd 1..22, deflate 0..9)"
                )));
            }
        };
        let chunk = opts.chunk_size.unwrap_or(DEFAULT_CHUNK);
        let meta = lcodec_core::Metadata::new(Kind::Bytes);
        sink.begin(meta, Default::default(), &[method as u8])?;
        encode_byte_chunks(src, sink, chunk, opts.effective_threads(), &|b| {
            // Each payload starts with its own method byte, so a chunk that does not
            // shrink is stored as it is (no expansion beyond one byte, fast decode).
            let packed = compress(method, level, b)?;
            let (m, body) = if packed.len() < b.len() {
                (method, &packed[..])
            } else {
                (Method::Store, b)
            };
            let mut out = Vec::with_capacity(body.len() + 1);
            out.push(m as u8);
            out.extend_from_slice(body);
            Ok(out)
        })
    }

    fn decode(
        &self,
        header: &Header,
        src: &mut ChunkSource<'_>,
        dst: &mut dyn Write,
        opts: &DecodeOptions,
    ) -> Result<()> {
        if header.params.len() != 1 || method_from_byte(header.params[0]).is_none() {
            return Err(Error::malformed(
                header.len,
                format!(
                    "raw: codec parameters {:?} (expected one method byte 0..=2)",
                    header.params
                ),
            ));
        }
        decode_byte_chunks(src, dst, opts.effective_threads(), &|c| {
            let (&m, body) = c
                .payload
                .split_first()
                .ok_or_else(|| c.malformed("raw: empty payload"))?;
            let method = method_from_byte(m)
                .ok_or_else(|| c.malformed(format!("raw: unknown method byte {m}")))?;
            decompress(method, body, c.raw_len as usize).map_err(|e| c.malformed(e))
        })
    }
}
