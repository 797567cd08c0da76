//! lcodec-tensor: lossless compression of model weights (safetensors, GGUF, raw arrays)
//! by entropy-coding float exponents, with parallel chunked coding and random access to
//! one tensor by name.
//!
//! BF16 / F16 / F32 values are split into an exponent stream, coded with a per-segment
//! order-0 model ([`lcodec_entropy::fast`]: canonical Huffman or tANS, whichever is
//! smaller; one table lookup per symbol, four interleaved streams), a sign +
//! top-mantissa stream and the lower mantissa bytes (kept raw unless an order-0 code
//! saves ≥ 2 %). GGML quantized blocks (Q4_0/Q4_1/Q5_x/Q8_x) have their F16 scales
//! split from the quants; integer, other quantized and unknown data get the smallest of
//! an order-0 code, byte planes and zstd, measured per segment. Headers and every other
//! byte are kept, so decoding reproduces the input byte for byte.
//!
//! The input is cut into independent chunks of about [`DEFAULT_CHUNK`] bytes, each
//! holding one or more *segments* (runs of one element type), coded and decoded on all
//! cores. The container's trailer stores an index (tensor name → byte range) so
//! [`decode_tensor`] decodes only the chunks holding one tensor.
//!
//! # Bitstream (codec version 1)
//! - Codec parameters: `[1, format]`, format 0 generic, 1 safetensors, 2 GGUF, 3 raw.
//! - Chunk payload: a mode byte; mode 0: segments back to back until the chunk's
//!   `raw_len` is covered; mode 1 (a kind occurs in several runs): LEB128 run count, each
//!   run's LEB128 length and kind code, then one segment per kind (in order of first
//!   appearance) holding that kind's runs concatenated. Segments are described in
//!   [`segment`] (length, method, body).
//! - Trailer index: `LTZ1`, LEB128 length, zstd frame of the plain index (when smaller),
//!   or the plain index: `LTI1`, LEB128 count, then per tensor: name, dtype (LEB128 length +
//!   UTF-8 each), LEB128 rank and dimensions, LEB128 start offset and length of its bytes
//!   in the original. Tensor boundaries are not chunk boundaries; the reader maps the
//!   byte range onto chunks with the chunk table's `raw_len`s.
//!
//! ```
//! use lcodec_core::container::{read_header, ChunkSink, ChunkSource};
//! use lcodec_core::{Codec, DecodeOptions, EncodeOptions};
//! use lcodec_tensor::TensorCodec;
//!
//! // A tiny safetensors file: one BF16 tensor of 4 values.
//! let json = br#"{"w":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]}}"#;
//! let mut file = (json.len() as u64).to_le_bytes().to_vec();
//! file.extend_from_slice(json);
//! file.extend_from_slice(&[0x80, 0x3f, 0x00, 0x40, 0x40, 0x40, 0x80, 0xbf]);
//!
//! let codec = TensorCodec;
//! let mut packed = Vec::new();
//! let mut sink = ChunkSink::new(&mut packed, lcodec_core::Codec::info(&codec), None);
//! codec.encode(&mut &file[..], &mut sink, &EncodeOptions::default())?;
//! sink.finish(file.len() as u64, None)?;
//!
//! let w = lcodec_tensor::decode_tensor(&mut std::io::Cursor::new(&packed), "w", &DecodeOptions::default())?;
//! assert_eq!(w, &file[file.len() - 8..]);
//! # Ok::<(), lcodec_core::Error>(())
//! ```
#![forbid(unsafe_code)]

pub mod layout;
pub mod segment;

use std::io::{Read, Seek, SeekFrom, Write};

use lcodec_core::container::{ChunkSink, ChunkSource, Header, read_header};
use lcodec_core::parallel::{decode_byte_chunks, map_parallel, read_full};
use lcodec_core::{
    Codec, CodecId, CodecInfo, Confidence, DecodeOptions, EncodeOptions, Error, Kind, Limits,
    Metadata, Result, try_alloc_bytes,
};

pub use layout::{ElemKind, Format, Layout, TensorEntry};
use layout::{
    GgufParse, MAX_HEADER, Region, parse_gguf, parse_safetensors, safetensors_header_len,
};
use segment::{Settings, decode_segment, encode_segment, get_varint, put_varint};

/// Default chunk size: bytes of original per independently coded chunk.
pub const DEFAULT_CHUNK: usize = 2 << 20;

/// Version byte at the start of the codec parameters.
const PARAMS_VERSION: u8 = 1;
/// Magic of the random-access index stored in the trailer.
const INDEX_MAGIC: &[u8; 4] = b"LTI1";
/// Magic of a zstd-compressed index (LEB128 raw length, then a zstd frame of an `LTI1` index).
const INDEX_MAGIC_ZSTD: &[u8; 4] = b"LTZ1";

/// The index, zstd-compressed when that is smaller (names repeat a lot).
fn pack_index(tensors: &[TensorEntry]) -> Vec<u8> {
    let plain = encode_index(tensors);
    if let Ok(frame) = zstd::bulk::compress(&plain, 19) {
        let mut z = INDEX_MAGIC_ZSTD.to_vec();
        put_varint(&mut z, plain.len() as u64);
        z.extend_from_slice(&frame);
        if z.len() < plain.len() {
            return z;
        }
    }
    plain
}

fn unpack_index(b: &[u8], limits: &Limits) -> Result<Vec<TensorEntry>> {
    if b.get(..4) != Some(&INDEX_MAGIC_ZSTD[..]) {
        return decode_index(b);
    }
    let mut at = 4;
    let n = get_varint(b, &mut at)?;
    Limits::check(n, limits.max_header_bytes, "tensor index length")?;
    let mut plain = try_alloc_bytes(n, limits, "tensor index")?;
    let got = zstd::bulk::Decompressor::new()?
        .decompress_to_buffer(&b[at..], &mut plain[..])
        .map_err(|e| err(format!("tensor index: zstd: {e}")))?;
    if got != plain.len() {
        return Err(err("tensor index: wrong decompressed length"));
    }
    decode_index(&plain)
}

static INFO: CodecInfo = CodecInfo {
    id: CodecId::TENSOR,
    name: "tensor",
    version: 1,
    lossless: true,
    kind: Kind::Tensor,
    description: "model weights (safetensors, GGUF, raw -p dtype=bf16|f16|f32|i8..): float exponent coding, random access by tensor",
};

/// The tensor codec. Parameters (`-p key=value`):
/// - `dtype=bf16|f16|f32|i8|i16|i32|i64|...`: treat the whole input as a raw array of that type;
/// - `mantissa=raw|auto|huffman`: `auto` (default) codes a near-random stream only if that
///   saves ≥ 2 %, `huffman` always tries (smaller, slower to decode), `raw` never;
/// - `coder=auto|huffman`: `auto` (default) lets skewed streams use tANS (closer to the
///   entropy), `huffman` keeps every block Huffman (exponent decoding ~1.5× faster);
/// - `zstd=N`: zstd level tried for byte / integer segments (default 19, 0 = off; `--quality` sets it too).
///
/// Inputs that are neither safetensors nor GGUF (and no `dtype` given) are coded as bytes
/// and still round-trip exactly.
///
/// Decoding with the `tensor=NAME` parameter ([`DecodeOptions::params`]) on a seekable
/// source ([`ChunkSource::seekable`]) writes only that tensor's bytes, decoding only the
/// chunks that hold it; the remaining chunk records are then read (not decoded) so the
/// caller's end-of-file checks pass. On a stream it is an [`Error::InvalidArgument`].
/// [`decode_tensor`] does the same from any `Read + Seek` without the facade.
#[derive(Debug, Default, Clone, Copy)]
pub struct TensorCodec;

fn err(msg: impl Into<String>) -> Error {
    Error::codec("tensor", msg)
}

fn settings(opts: &EncodeOptions) -> Result<Settings> {
    let mut s = Settings::default();
    if let Some(q) = opts.quality {
        s.zstd_level = q.min(22) as i32;
    }
    if let Some(z) = opts.param::<i32>("zstd")? {
        if !(0..=22).contains(&z) {
            return Err(Error::InvalidArgument(format!(
                "tensor: zstd={z} (expected 0..=22)"
            )));
        }
        s.zstd_level = z;
    }
    match opts.params.get("mantissa").map(String::as_str) {
        None | Some("auto") => {}
        Some("raw") => s.min_gain = 1.0,
        Some("huffman") => s.min_gain = 0.0,
        Some(m) => {
            return Err(Error::InvalidArgument(format!(
                "tensor: mantissa={m:?} (expected raw, auto or huffman)"
            )));
        }
    }
    match opts.params.get("coder").map(String::as_str) {
        None | Some("auto") => {}
        Some("huffman") => s.tans = false,
        Some(c) => {
            return Err(Error::InvalidArgument(format!(
                "tensor: coder={c:?} (expected auto or huffman)"
            )));
        }
    }
    Ok(s)
}

/// The input: a prefix already read for format detection, then the rest of the reader.
struct Input<'a> {
    prefix: Vec<u8>,
    ppos: usize,
    src: &'a mut dyn Read,
    eof: bool,
}

impl Input<'_> {
    /// Makes sure at least `n` bytes are buffered (fewer at end of input).
    fn fill_prefix(&mut self, n: usize) -> Result<()> {
        if self.prefix.len() < n && !self.eof {
            let have = self.prefix.len();
            self.prefix.resize(n, 0);
            let got = read_full(self.src, &mut self.prefix[have..])?;
            self.prefix.truncate(have + got);
            if have + got < n {
                self.eof = true;
            }
        }
        Ok(())
    }
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize> {
        let from_prefix = (self.prefix.len() - self.ppos).min(buf.len());
        buf[..from_prefix].copy_from_slice(&self.prefix[self.ppos..self.ppos + from_prefix]);
        self.ppos += from_prefix;
        if from_prefix == buf.len() || self.eof {
            return Ok(from_prefix);
        }
        let got = read_full(self.src, &mut buf[from_prefix..])?;
        Ok(from_prefix + got)
    }
}

/// Recognises the input and parses its header (reading a prefix into `input`).
fn detect_layout(input: &mut Input<'_>, opts: &EncodeOptions) -> Result<Layout> {
    if let Some(dtype) = opts.params.get("dtype") {
        let kind = ElemKind::from_dtype(dtype).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "tensor: dtype={dtype:?} (expected bf16, f16, f32, f64, i8, u8, i16, i32, i64, ...)"
            ))
        })?;
        return Ok(Layout {
            format: Format::Raw,
            regions: Vec::new(),
            tail_kind: kind,
            tensors: Vec::new(),
        });
    }
    input.fill_prefix(16)?;
    if let Some(n) = safetensors_header_len(&input.prefix) {
        input.fill_prefix(8 + n as usize)?;
        if let Some(l) = parse_safetensors(&input.prefix) {
            return Ok(l);
        }
    } else if input.prefix.starts_with(b"GGUF") {
        let mut want = 1usize << 20;
        loop {
            input.fill_prefix(want)?;
            match parse_gguf(&input.prefix) {
                GgufParse::Done(l) => return Ok(l),
                GgufParse::Invalid => break,
                GgufParse::NeedMore if input.eof || want as u64 >= MAX_HEADER => break,
                GgufParse::NeedMore => want *= 2,
            }
        }
    }
    Ok(Layout::generic())
}

/// One segment of a chunk plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seg {
    len: usize,
    kind: ElemKind,
}

/// Cuts the typed regions (gaps = bytes) into chunk plans of at most `chunk` bytes.
fn plan_chunks(regions: &[Region], chunk: usize) -> Vec<Vec<Seg>> {
    let mut plans = Vec::new();
    let mut cur: Vec<Seg> = Vec::new();
    let mut cur_len = 0usize;
    let mut emit = |mut len: u64, kind: ElemKind, plans: &mut Vec<Vec<Seg>>| {
        let w = kind.width();
        while len > 0 {
            let room = chunk - cur_len;
            let take = (len.min(room as u64) as usize) / w * w;
            if take == 0 {
                plans.push(std::mem::take(&mut cur));
                cur_len = 0;
                continue;
            }
            match cur.last_mut() {
                Some(last) if last.kind == kind => last.len += take,
                _ => cur.push(Seg { len: take, kind }),
            }
            cur_len += take;
            len -= take as u64;
            if cur_len == chunk {
                plans.push(std::mem::take(&mut cur));
                cur_len = 0;
            }
        }
    };
    let mut pos = 0u64;
    for r in regions {
        if r.start > pos {
            emit(r.start - pos, ElemKind::Bytes, &mut plans);
        }
        emit(r.len, r.kind, &mut plans);
        pos = r.start + r.len;
    }
    if !cur.is_empty() {
        plans.push(cur);
    }
    plans
}

/// Truncates a plan to the `got` bytes actually read; a partial element becomes bytes.
fn fit_plan(plan: Vec<Seg>, got: usize) -> Vec<Seg> {
    let mut out = Vec::new();
    let mut left = got;
    for s in plan {
        if left == 0 {
            break;
        }
        let take = s.len.min(left);
        let whole = take / s.kind.width() * s.kind.width();
        if whole > 0 {
            out.push(Seg {
                len: whole,
                kind: s.kind,
            });
        }
        if take > whole {
            out.push(Seg {
                len: take - whole,
                kind: ElemKind::Bytes,
            });
        }
        left -= take;
    }
    out
}

/// Chunk payload starts: segments in order.
const CHUNK_PLAIN: u8 = 0;
/// Chunk payload starts: segment table, then one segment per element kind (all pieces
/// of that kind concatenated), so interleaved small tensors share one model.
const CHUNK_GROUPED: u8 = 1;

fn kind_code(k: ElemKind) -> u8 {
    match k {
        ElemKind::Bytes => 0,
        ElemKind::Int(w) => w,
        ElemKind::Bf16 => 16,
        ElemKind::F16 => 17,
        ElemKind::F32 => 18,
        ElemKind::QBlocks { block, scale } => match (block, scale) {
            (18, 2) => 32,
            (20, 4) => 33,
            (22, 2) => 34,
            (24, 4) => 35,
            (34, 2) => 36,
            _ => 37,
        },
    }
}

fn kind_from_code(c: u8) -> Option<ElemKind> {
    Some(match c {
        0 => ElemKind::Bytes,
        1 | 2 | 4 | 8 => ElemKind::Int(c),
        16 => ElemKind::Bf16,
        17 => ElemKind::F16,
        18 => ElemKind::F32,
        32 => ElemKind::QBlocks {
            block: 18,
            scale: 2,
        },
        33 => ElemKind::QBlocks {
            block: 20,
            scale: 4,
        },
        34 => ElemKind::QBlocks {
            block: 22,
            scale: 2,
        },
        35 => ElemKind::QBlocks {
            block: 24,
            scale: 4,
        },
        36 => ElemKind::QBlocks {
            block: 34,
            scale: 2,
        },
        37 => ElemKind::QBlocks {
            block: 36,
            scale: 4,
        },
        _ => return None,
    })
}

/// Kinds in order of first appearance.
fn distinct_kinds(plan: &[Seg]) -> Vec<ElemKind> {
    let mut kinds = Vec::new();
    for s in plan {
        if !kinds.contains(&s.kind) {
            kinds.push(s.kind);
        }
    }
    kinds
}

/// Encodes one chunk: its segments in order, or grouped by kind when a kind repeats.
fn encode_chunk(plan: &[Seg], data: &[u8], s: &Settings) -> Result<Vec<u8>> {
    let total: usize = plan.iter().map(|p| p.len).sum();
    if total != data.len() {
        return Err(Error::InvalidArgument(
            "chunk plan does not match its data".into(),
        ));
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    let kinds = distinct_kinds(plan);
    if kinds.len() == plan.len() {
        out.push(CHUNK_PLAIN);
        let mut at = 0;
        for seg in plan {
            encode_segment(seg.kind, &data[at..at + seg.len], s, &mut out)?;
            at += seg.len;
        }
        return Ok(out);
    }
    out.push(CHUNK_GROUPED);
    put_varint(&mut out, plan.len() as u64);
    for seg in plan {
        put_varint(&mut out, seg.len as u64);
        out.push(kind_code(seg.kind));
    }
    for k in kinds {
        let mut joined = Vec::new();
        let mut at = 0;
        for seg in plan {
            if seg.kind == k {
                joined.extend_from_slice(&data[at..at + seg.len]);
            }
            at += seg.len;
        }
        encode_segment(k, &joined, s, &mut out)?;
    }
    Ok(out)
}

/// Decodes one chunk payload that must expand to exactly `raw_len` bytes.
///
/// # Errors
/// [`Error::Codec`] for malformed payloads; [`Error::Limit`] for an oversized chunk.
pub fn decode_chunk(payload: &[u8], raw_len: u32, limits: &Limits) -> Result<Vec<u8>> {
    let mut out = try_alloc_bytes(u64::from(raw_len), limits, "tensor chunk")?;
    let mut at = 1;
    match payload.first() {
        Some(&CHUNK_PLAIN) => {
            let mut pos = 0;
            while pos < out.len() {
                pos += decode_segment(payload, &mut at, &mut out[pos..])?;
            }
        }
        Some(&CHUNK_GROUPED) => {
            let n = get_varint(payload, &mut at)?;
            if n > u64::from(raw_len) || n > payload.len() as u64 {
                return Err(err(format!("chunk lists {n} segments for {raw_len} bytes")));
            }
            let mut segs = Vec::with_capacity(n as usize);
            let mut sum = 0u64;
            for _ in 0..n {
                let len = get_varint(payload, &mut at)?;
                let code = *payload
                    .get(at)
                    .ok_or_else(|| err("truncated segment table"))?;
                at += 1;
                let kind = kind_from_code(code)
                    .ok_or_else(|| err(format!("unknown element kind {code}")))?;
                sum = sum.saturating_add(len);
                segs.push(Seg {
                    len: len as usize,
                    kind,
                });
            }
            if sum != u64::from(raw_len) {
                return Err(err(format!(
                    "segment table covers {sum} bytes, the chunk has {raw_len}"
                )));
            }
            for k in distinct_kinds(&segs) {
                let total: usize = segs.iter().filter(|s| s.kind == k).map(|s| s.len).sum();
                let mut joined = try_alloc_bytes(total as u64, limits, "tensor segment")?;
                let got = decode_segment(payload, &mut at, &mut joined)?;
                if got != total {
                    return Err(err(format!(
                        "grouped segment holds {got} bytes, the table says {total}"
                    )));
                }
                let (mut pos, mut from) = (0usize, 0usize);
                for s in &segs {
                    if s.kind == k {
                        out[pos..pos + s.len].copy_from_slice(&joined[from..from + s.len]);
                        from += s.len;
                    }
                    pos += s.len;
                }
            }
        }
        Some(m) => return Err(err(format!("unknown chunk mode {m}"))),
        None => return Err(err("empty chunk payload")),
    }
    if at != payload.len() {
        return Err(err(format!(
            "{} unexpected bytes after the last segment",
            payload.len().saturating_sub(at)
        )));
    }
    Ok(out)
}

fn encode_index(tensors: &[TensorEntry]) -> Vec<u8> {
    let mut b = INDEX_MAGIC.to_vec();
    put_varint(&mut b, tensors.len() as u64);
    for t in tensors {
        put_varint(&mut b, t.name.len() as u64);
        b.extend_from_slice(t.name.as_bytes());
        put_varint(&mut b, t.dtype.len() as u64);
        b.extend_from_slice(t.dtype.as_bytes());
        put_varint(&mut b, t.shape.len() as u64);
        for &d in &t.shape {
            put_varint(&mut b, d);
        }
        put_varint(&mut b, t.start);
        put_varint(&mut b, t.len);
    }
    b
}

fn decode_index(b: &[u8]) -> Result<Vec<TensorEntry>> {
    if b.is_empty() {
        return Ok(Vec::new());
    }
    if b.get(..4) != Some(&INDEX_MAGIC[..]) {
        return Err(err("the tensor index has an unknown format"));
    }
    let mut at = 4;
    let n = get_varint(b, &mut at)?;
    let mut out = Vec::new();
    let string = |at: &mut usize| -> Result<String> {
        let n = get_varint(b, at)?;
        let s = usize::try_from(n)
            .ok()
            .and_then(|n| b.get(*at..at.checked_add(n)?))
            .ok_or_else(|| err("tensor index: truncated name"))?;
        *at += s.len();
        Ok(String::from_utf8_lossy(s).into_owned())
    };
    for _ in 0..n {
        let name = string(&mut at)?;
        let dtype = string(&mut at)?;
        let nd = get_varint(b, &mut at)?;
        if nd > 64 {
            return Err(err(format!("tensor index: {nd} dimensions")));
        }
        let mut shape = Vec::new();
        for _ in 0..nd {
            shape.push(get_varint(b, &mut at)?);
        }
        let start = get_varint(b, &mut at)?;
        let len = get_varint(b, &mut at)?;
        out.push(TensorEntry {
            name,
            dtype,
            shape,
            start,
            len,
        });
    }
    Ok(out)
}

impl Codec for TensorCodec {
    fn info(&self) -> &'static CodecInfo {
        &INFO
    }

    fn sniff(&self, head: &[u8], file_name: Option<&str>) -> Option<Confidence> {
        if safetensors_header_len(head).is_some() && head.get(8..10) == Some(b"{\"") {
            return Some(Confidence::MAGIC);
        }
        if head.len() >= 8
            && head.starts_with(b"GGUF")
            && matches!(head[4], 2 | 3)
            && head[5..8] == [0, 0, 0]
        {
            return Some(Confidence::MAGIC);
        }
        match lcodec_core::extension(file_name).as_deref() {
            Some("safetensors" | "gguf") => Some(Confidence::EXTENSION),
            _ => None,
        }
    }

    fn encode(
        &self,
        src: &mut dyn Read,
        sink: &mut ChunkSink<'_>,
        opts: &EncodeOptions,
    ) -> Result<()> {
        let s = settings(opts)?;
        let chunk = opts.chunk_size.unwrap_or(DEFAULT_CHUNK).clamp(64, 1 << 30) / 8 * 8;
        let threads = opts.effective_threads();
        let mut input = Input {
            prefix: Vec::new(),
            ppos: 0,
            src,
            eof: false,
        };
        let layout = detect_layout(&mut input, opts)?;
        sink.begin(
            Metadata::new(Kind::Tensor),
            Default::default(),
            &[PARAMS_VERSION, layout.format as u8],
        )?;
        let tail_chunk = (chunk / layout.tail_kind.width()).max(1) * layout.tail_kind.width();
        let mut plans = plan_chunks(&layout.regions, chunk).into_iter();
        let mut total = 0u64;
        let mut eof = false;
        while !eof {
            let mut batch: Vec<(Vec<Seg>, Vec<u8>)> = Vec::new();
            while batch.len() < threads.max(1) && !eof {
                let plan = plans.next().unwrap_or_else(|| {
                    vec![Seg {
                        len: tail_chunk,
                        kind: layout.tail_kind,
                    }]
                });
                let want: usize = plan.iter().map(|s| s.len).sum();
                let mut buf = vec![0u8; want];
                let got = input.read_full(&mut buf)?;
                buf.truncate(got);
                let plan = if got < want {
                    eof = true;
                    fit_plan(plan, got)
                } else {
                    plan
                };
                if got > 0 {
                    batch.push((plan, buf));
                }
            }
            let encoded = map_parallel(&batch, threads, &|(plan, data): &(Vec<Seg>, Vec<u8>)| {
                encode_chunk(plan, data, &s)
            })?;
            for ((_, data), payload) in batch.iter().zip(encoded) {
                sink.push(&payload, data.len() as u32)?;
                total += data.len() as u64;
            }
        }
        let tensors: Vec<TensorEntry> = layout
            .tensors
            .into_iter()
            .filter(|t| t.start.saturating_add(t.len) <= total)
            .collect();
        sink.set_index(pack_index(&tensors));
        Ok(())
    }

    fn decodes_transformed(&self, _header: &Header, opts: &DecodeOptions) -> bool {
        opts.params.contains_key("tensor")
    }

    fn decode(
        &self,
        header: &Header,
        src: &mut ChunkSource<'_>,
        dst: &mut dyn Write,
        opts: &DecodeOptions,
    ) -> Result<()> {
        match header.params.as_slice() {
            [PARAMS_VERSION, f] if *f <= 3 => {}
            p => {
                return Err(Error::malformed(
                    0,
                    format!("tensor: codec parameters {p:?} (expected [1, format 0..=3])"),
                ));
            }
        }
        if let Some(name) = opts.params.get("tensor") {
            let data = tensor_from_source(src, name, opts)?;
            dst.write_all(&data)?;
            // The facade expects every chunk consumed: a seekable file jumps to its
            // trailer, a stream reads the rest without decoding it.
            src.skip_rest()?;
            return Ok(());
        }
        let limits = opts.limits;
        decode_byte_chunks(src, dst, opts.effective_threads(), &|c| {
            decode_chunk(&c.payload, c.raw_len, &limits).map_err(|e| c.malformed(e))
        })
    }
}

fn open<'r, R: Read + Seek>(reader: &'r mut R, opts: &DecodeOptions) -> Result<ChunkSource<'r>> {
    reader.seek(SeekFrom::Start(0))?;
    let header = read_header(reader, &opts.limits)?;
    if header.codec_id != CodecId::TENSOR {
        return Err(Error::InvalidArgument(format!(
            "the file was written by codec id {}, not the tensor codec ({})",
            header.codec_id,
            CodecId::TENSOR
        )));
    }
    if header.codec_version > INFO.version {
        return Err(Error::Unsupported(format!(
            "tensor bitstream version {}",
            header.codec_version
        )));
    }
    ChunkSource::seekable(reader, &header, opts.limits, opts.verify)
}

/// Lists the tensors of a seekable `.lc` file written by the tensor codec (from the
/// trailer's index; empty for raw or unrecognised inputs).
///
/// # Errors
/// Not a tensor `.lc` file, a damaged header or trailer.
pub fn list_tensors<R: Read + Seek>(
    reader: &mut R,
    opts: &DecodeOptions,
) -> Result<Vec<TensorEntry>> {
    let src = open(reader, opts)?;
    let t = src.trailer().ok_or_else(|| err("missing trailer"))?;
    unpack_index(&t.index, &opts.limits)
}

/// Decodes one tensor's bytes (as stored in the original file) by name from a seekable
/// `.lc` file, reading and decoding only the chunks that hold it.
///
/// # Errors
/// [`Error::InvalidArgument`] if no tensor has that name; damaged or malformed input.
pub fn decode_tensor<R: Read + Seek>(
    reader: &mut R,
    name: &str,
    opts: &DecodeOptions,
) -> Result<Vec<u8>> {
    let mut src = open(reader, opts)?;
    tensor_from_source(&mut src, name, opts)
}

fn tensor_from_source(
    src: &mut ChunkSource<'_>,
    name: &str,
    opts: &DecodeOptions,
) -> Result<Vec<u8>> {
    let t = src.trailer().ok_or_else(|| {
        Error::InvalidArgument("decoding one tensor needs a seekable input".into())
    })?;
    let entries = unpack_index(&t.index, &opts.limits)?;
    let e = entries.iter().find(|e| e.name == name).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "no tensor named {name:?} in the file ({} tensors)",
            entries.len()
        ))
    })?;
    let (start, end) = (e.start, e.start.saturating_add(e.len));
    // Chunk i holds original bytes [starts[i], starts[i] + raw_len).
    let mut wanted = Vec::new();
    let mut pos = 0u64;
    for (i, c) in t.chunks.iter().enumerate() {
        let c_end = pos + u64::from(c.raw_len);
        if c_end > start && pos < end {
            wanted.push((i as u64, pos));
        }
        pos = c_end;
    }
    if end > pos {
        return Err(err(format!(
            "tensor {name:?} ends at byte {end}, past the original's {pos} bytes"
        )));
    }
    let mut out = try_alloc_bytes(e.len, &opts.limits, "tensor")?;
    let threads = opts.effective_threads().max(1);
    for group in wanted.chunks(threads) {
        let mut chunks = Vec::with_capacity(group.len());
        for &(i, _) in group {
            chunks.push(src.read_chunk(i)?);
        }
        let limits = opts.limits;
        let decoded = map_parallel(&chunks, threads, &|c| {
            decode_chunk(&c.payload, c.raw_len, &limits).map_err(|e| c.malformed(e))
        })?;
        for (&(_, c_start), d) in group.iter().zip(decoded) {
            let lo = start.max(c_start);
            let hi = end.min(c_start + d.len() as u64);
            if hi <= lo {
                continue;
            }
            let dst = &mut out[(lo - start) as usize..(hi - start) as usize];
            dst.copy_from_slice(&d[(lo - c_start) as usize..(hi - c_start) as usize]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_split_regions_at_element_boundaries_and_fill_gaps() {
        let regions = [
            Region {
                start: 10,
                len: 100,
                kind: ElemKind::F32,
            },
            Region {
                start: 110,
                len: 6,
                kind: ElemKind::Bf16,
            },
        ];
        let plans = plan_chunks(&regions, 64);
        let flat: Vec<Seg> = plans.iter().flatten().copied().collect();
        assert_eq!(flat.iter().map(|s| s.len).sum::<usize>(), 116);
        assert!(
            plans
                .iter()
                .all(|p| p.iter().map(|s| s.len).sum::<usize>() <= 64)
        );
        assert_eq!(
            plans[0][0],
            Seg {
                len: 10,
                kind: ElemKind::Bytes
            }
        );
        assert_eq!(
            plans[0][1],
            Seg {
                len: 52,
                kind: ElemKind::F32
            }
        );
    }

    #[test]
    fn fit_plan_turns_a_partial_element_into_bytes() {
        let p = fit_plan(
            vec![
                Seg {
                    len: 4,
                    kind: ElemKind::Bytes,
                },
                Seg {
                    len: 16,
                    kind: ElemKind::F32,
                },
            ],
            10,
        );
        assert_eq!(
            p,
            vec![
                Seg {
                    len: 4,
                    kind: ElemKind::Bytes
                },
                Seg {
                    len: 4,
                    kind: ElemKind::F32
                },
                Seg {
                    len: 2,
                    kind: ElemKind::Bytes
                }
            ]
        );
    }

    #[test]
    fn chunks_with_a_repeated_kind_are_grouped_and_round_trip() {
        let plan = [
            Seg {
                len: 400,
                kind: ElemKind::F32,
            },
            Seg {
                len: 7,
                kind: ElemKind::Bytes,
            },
            Seg {
                len: 800,
                kind: ElemKind::F32,
            },
            Seg {
                len: 64,
                kind: ElemKind::Int(1),
            },
            Seg {
                len: 5,
                kind: ElemKind::Bytes,
            },
        ];
        let data: Vec<u8> = (0..1276u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8 | 0x3c)
            .collect();
        let payload = encode_chunk(&plan, &data, &Settings::default()).expect("encodes");
        assert_eq!(payload[0], CHUNK_GROUPED);
        let limits = Limits::default();
        assert_eq!(
            decode_chunk(&payload, data.len() as u32, &limits).expect("decodes"),
            data
        );
        assert!(decode_chunk(&payload, data.len() as u32 + 1, &limits).is_err());
        for i in 0..payload.len() {
            let mut bad = payload.clone();
            bad[i] ^= 0x41;
            let _ = decode_chunk(&bad, data.len() as u32, &limits);
            assert!(decode_chunk(&payload[..i], data.len() as u32, &limits).is_err());
        }
    }

    #[test]
    fn index_round_trips() {
        let t = vec![TensorEntry {
            name: "a.b".into(),
            dtype: "BF16".into(),
            shape: vec![3, 4],
            start: 99,
            len: 24,
        }];
        assert_eq!(decode_index(&encode_index(&t)).expect("parses"), t);
        assert!(decode_index(b"LTI1\x05").is_err());
        let many: Vec<TensorEntry> = (0..200)
            .map(|i| TensorEntry {
                name: format!("layers.{i}.attn.weight"),
                dtype: "BF16".into(),
                shape: vec![64, 64],
                start: i * 8192,
                len: 8192,
            })
            .collect();
        let packed = pack_index(&many);
        assert_eq!(&packed[..4], INDEX_MAGIC_ZSTD);
        assert_eq!(
            unpack_index(&packed, &Limits::default()).expect("unpacks"),
            many
        );
        assert!(unpack_index(&packed[..packed.len() - 3], &Limits::default()).is_err());
    }
}
