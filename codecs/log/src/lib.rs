//! lcodec-log: lossless log compression by template extraction and typed columns.
//!
//! The input is cut into chunks at line ends (default 8 MiB). In each chunk, lines are
//! tokenised and clustered into templates (Drain-style, no per-system patterns); every
//! line is then coded as its template symbol plus its variable tokens, each column
//! (template and position) modelled on its own, with the previous line's fields at the same
//! position as context (which captures header fields such as timestamps, levels and pids
//! whatever their format). Output is byte-exact for any input: CRLF, no final newline, lines matching no
//! template, very long lines and binary junk (coded with zstd) all round-trip.
//!
//! Three modes, recorded in every chunk (one decoder reads them all):
//! - the default, `-p mode=columns`: every variable token is split into a skeleton (coded
//!   as an index into its column's dictionary) and typed numbers (decimal and hex runs,
//!   coded as the cheapest of raw / delta to the column / delta to the same header field /
//!   delta to the previous number), identifier-like tokens can repeat any of the last 4096,
//!   all through a fast adaptive binary range coder with small mixers
//!   (about 1.6x smaller than `xz -9` on the Loghub samples, 50-80 MB/s per core);
//! - `-p mode=max` (alias `strong`): every byte through the context-mixing coder (about
//!   1.8x smaller than `xz -9`, but only about 0.5-1 MB/s per core); it was the default of
//!   the first version and its files keep decoding;
//! - `-p mode=fast`: the template/column split compressed with zstd (`-q` = zstd level,
//!   default 9): about `xz -9` size.
//!
//! Chunks (`--chunk-size`, default 8 MiB) are coded independently on all threads.
//!
//! ```
//! use lcodec_core::{Codec, EncodeOptions};
//! let log = b"2024-01-01 10:00:00 INFO started worker 1\n2024-01-01 10:00:01 INFO started worker 2\n";
//! let packed = lcodec_log::compress(log, &EncodeOptions::default()).unwrap();
//! assert_eq!(lcodec_log::decompress(&packed).unwrap(), log);
//! ```
#![forbid(unsafe_code)]

mod chunk;
pub mod cm;
mod col;
mod matcher;
pub mod template;

use std::io::{Read, Write};

use lcodec_core::container::{ChunkSink, ChunkSource, Header};
use lcodec_core::parallel::{decode_byte_chunks, map_parallel, read_full};
use lcodec_core::{
    Codec, CodecId, CodecInfo, Confidence, DecodeOptions, EncodeOptions, Error, Kind, Result,
};

pub use chunk::{decode_chunk, encode_chunk};

/// Default chunk size in bytes of original (cut at the last line end before it).
pub const DEFAULT_CHUNK: usize = 8 << 20;
/// zstd level of `-p mode=fast` when `-q` is not given.
pub const DEFAULT_FAST_LEVEL: i32 = 9;
/// Largest chunk size accepted.
pub const MAX_CHUNK: usize = 256 << 20;
/// Confidence reported for inputs that look like logs: above content heuristics of generic
/// text codecs, below magic-byte matches.
pub const LOG_CONFIDENCE: Confidence = Confidence(75);

/// How chunks are coded (the mode is recorded in every chunk, so any mode decodes with
/// the same decoder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The default (`-p mode=columns`): typed columns (skeleton dictionaries, numbers as
    /// deltas) through a fast adaptive binary range coder.
    Columns,
    /// `-p mode=max` (also `strong`): the context-mixing coder; smallest, about 1 MB/s.
    Max,
    /// `-p mode=fast`: the columns as text through zstd at the given level.
    Fast(i32),
}

/// Bitstream version stored in the codec parameters.
const FORMAT_VERSION: u8 = 1;

static INFO: CodecInfo = CodecInfo {
    id: CodecId::LOG,
    name: "log",
    version: 1,
    lossless: true,
    kind: Kind::Log,
    description: "logs: template extraction + typed columns (byte-exact)",
};

/// The log codec.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogCodec;

impl LogCodec {
    /// Creates the codec.
    pub fn new() -> Self {
        LogCodec
    }
}

/// Reads chunks of about `size` bytes that end at a line end when one is found.
struct LineChunker<'a> {
    src: &'a mut dyn Read,
    size: usize,
    carry: Vec<u8>,
    eof: bool,
}

impl LineChunker<'_> {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        let mut buf = std::mem::take(&mut self.carry);
        if !self.eof && buf.len() < self.size {
            let have = buf.len();
            buf.resize(self.size, 0);
            let n = read_full(self.src, &mut buf[have..])?;
            buf.truncate(have + n);
            if have + n < self.size {
                self.eof = true;
            }
        }
        if buf.is_empty() {
            return Ok(None);
        }
        if !self.eof {
            if let Some(p) = buf.iter().rposition(|&b| b == b'\n') {
                self.carry = buf.split_off(p + 1);
            }
        }
        Ok(Some(buf))
    }
}

/// Compresses a whole log in memory into chunk payloads preceded by their lengths (a
/// simple framing for library users and tests; files use the `.lc` container).
///
/// # Errors
/// Compressor errors.
pub fn compress(data: &[u8], opts: &EncodeOptions) -> Result<Vec<u8>> {
    let size = chunk_size(opts)?;
    let mut src: &[u8] = data;
    let mut ch = LineChunker {
        src: &mut src,
        size,
        carry: Vec::new(),
        eof: false,
    };
    let mut chunks = Vec::new();
    while let Some(c) = ch.next_chunk()? {
        chunks.push(c);
    }
    let mode = mode_of(opts)?;
    let enc = map_parallel(&chunks, opts.effective_threads(), &|c: &Vec<u8>| {
        encode_chunk(c, mode)
    })?;
    let mut out = Vec::new();
    for (raw, e) in chunks.iter().zip(enc) {
        out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
        out.extend_from_slice(&(e.len() as u64).to_le_bytes());
        out.extend_from_slice(&e);
    }
    Ok(out)
}

/// Reverses [`compress`].
///
/// # Errors
/// [`Error::Codec`] for malformed input.
pub fn decompress(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.len() < 16 {
            return Err(Error::codec("log", "truncated frame"));
        }
        let raw = u64::from_le_bytes(
            data[..8]
                .try_into()
                .map_err(|_| Error::codec("log", "frame"))?,
        );
        let len = u64::from_le_bytes(
            data[8..16]
                .try_into()
                .map_err(|_| Error::codec("log", "frame"))?,
        );
        data = &data[16..];
        if len > data.len() as u64 || raw > MAX_CHUNK as u64 {
            return Err(Error::codec("log", "frame length out of range"));
        }
        let (p, rest) = data.split_at(len as usize);
        let d = decode_chunk(p, raw as usize)?;
        if d.len() as u64 != raw {
            return Err(Error::codec("log", "chunk length mismatch"));
        }
        out.extend_from_slice(&d);
        data = rest;
    }
    Ok(out)
}

/// The coding mode from `-p mode=...`: `columns` (default), `max` (alias `strong`), or
/// `fast` (zstd level `-q`, default [`DEFAULT_FAST_LEVEL`]).
///
/// # Errors
/// [`Error::InvalidArgument`] for an unknown mode or a quality out of range.
pub fn mode_of(opts: &EncodeOptions) -> Result<Mode> {
    match opts.params.get("mode").map(String::as_str) {
        None | Some("columns") | Some("default") => Ok(Mode::Columns),
        Some("max") | Some("strong") => Ok(Mode::Max),
        Some("fast") => match opts.quality {
            None => Ok(Mode::Fast(DEFAULT_FAST_LEVEL)),
            Some(q) if (1..=22).contains(&q) => Ok(Mode::Fast(q as i32)),
            Some(q) => Err(Error::InvalidArgument(format!(
                "log: quality {q} out of range for mode=fast (1..=22)"
            ))),
        },
        Some(m) => Err(Error::InvalidArgument(format!(
            "log: mode {m:?} (expected columns, max or fast)"
        ))),
    }
}

fn chunk_size(opts: &EncodeOptions) -> Result<usize> {
    let size = match opts.param::<usize>("chunk")? {
        Some(s) => s,
        None => opts.chunk_size.unwrap_or(DEFAULT_CHUNK),
    };
    if !(1..=MAX_CHUNK).contains(&size) {
        return Err(Error::InvalidArgument(format!(
            "log: chunk size {size} (expected 1..={MAX_CHUNK})"
        )));
    }
    Ok(size)
}

/// Whether `head` looks like log text: printable lines, most of which carry a
/// timestamp-like or level-like token near their start.
pub fn looks_like_log(head: &[u8]) -> bool {
    if head.len() < 64 {
        return false;
    }
    let bad = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x1B))
        .count();
    if bad * 200 > head.len() {
        return false;
    }
    let mut lines: Vec<&[u8]> = head.split(|&b| b == b'\n').collect();
    if !head.ends_with(b"\n") {
        lines.pop(); // possibly cut
    }
    let lines: Vec<&[u8]> = lines.into_iter().filter(|l| !l.is_empty()).collect();
    if lines.len() < 3 {
        return false;
    }
    let hits = lines.iter().filter(|l| line_has_log_header(l)).count();
    hits * 10 >= lines.len() * 6
}

fn line_has_log_header(l: &[u8]) -> bool {
    let w = &l[..l.len().min(64)];
    let d = |i: usize| w.get(i).is_some_and(u8::is_ascii_digit);
    for i in 0..w.len() {
        // hh:mm or mm:ss
        if d(i) && d(i + 1) && w.get(i + 2) == Some(&b':') && d(i + 3) && d(i + 4) {
            return true;
        }
        // yyyy-mm-dd, yyyy/mm/dd, yyyy.mm.dd
        if (0..4).all(|k| d(i + k))
            && matches!(w.get(i + 4), Some(b'-' | b'/' | b'.'))
            && d(i + 5)
            && d(i + 6)
        {
            return true;
        }
    }
    // A run of 6+ digits at the start (epoch seconds, yymmdd).
    let lead = w
        .iter()
        .skip_while(|b| !b.is_ascii_digit())
        .take_while(|b| b.is_ascii_digit())
        .count();
    let first_digit = w.iter().position(u8::is_ascii_digit).unwrap_or(usize::MAX);
    if lead >= 6 && first_digit < 4 {
        return true;
    }
    const LEVELS: [&[u8]; 10] = [
        b"INFO",
        b"WARN",
        b"ERROR",
        b"DEBUG",
        b"TRACE",
        b"FATAL",
        b"NOTICE",
        b"SEVERE",
        b"CRITICAL",
        b"WARNING",
    ];
    w.split(|&b| matches!(b, b' ' | b'[' | b']' | b':' | b'|' | b'\t'))
        .any(|t| LEVELS.iter().any(|lv| t.eq_ignore_ascii_case(lv)))
}

impl Codec for LogCodec {
    fn info(&self) -> &'static CodecInfo {
        &INFO
    }

    fn sniff(&self, head: &[u8], _file_name: Option<&str>) -> Option<Confidence> {
        looks_like_log(head).then_some(LOG_CONFIDENCE)
    }

    fn encode(
        &self,
        src: &mut dyn Read,
        sink: &mut ChunkSink<'_>,
        opts: &EncodeOptions,
    ) -> Result<()> {
        let size = chunk_size(opts)?;
        let mode = mode_of(opts)?;
        let threads = opts.effective_threads();
        sink.begin(
            lcodec_core::Metadata::new(Kind::Log),
            Default::default(),
            &[FORMAT_VERSION],
        )?;
        let mut ch = LineChunker {
            src,
            size,
            carry: Vec::new(),
            eof: false,
        };
        loop {
            let mut batch = Vec::new();
            while batch.len() < threads {
                match ch.next_chunk()? {
                    Some(c) => batch.push(c),
                    None => break,
                }
            }
            if batch.is_empty() {
                return Ok(());
            }
            let enc = map_parallel(&batch, threads, &|c: &Vec<u8>| encode_chunk(c, mode))?;
            for (raw, e) in batch.iter().zip(enc) {
                sink.push(&e, raw.len() as u32)?;
            }
        }
    }

    fn decode(
        &self,
        header: &Header,
        src: &mut ChunkSource<'_>,
        dst: &mut dyn Write,
        opts: &DecodeOptions,
    ) -> Result<()> {
        match header.params.as_slice() {
            [FORMAT_VERSION] => {}
            p => {
                return Err(Error::malformed(
                    0,
                    format!("log: codec parameters {p:?} (expected [{FORMAT_VERSION}])"),
                ));
            }
        }
        let limits = opts.limits;
        decode_byte_chunks(src, dst, opts.effective_threads(), &|c| {
            limits.check_alloc(c.raw_len as u64, "log chunk")?;
            decode_chunk(&c.payload, c.raw_len as usize).map_err(|e| c.malformed(e))
        })
    }
}
