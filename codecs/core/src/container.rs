//! The `.lc` container: header, chunk records, trailer (chunk table) and footer.
//!
//! The byte layout is specified in `codecs/core/FORMAT.md`; keep the two in step.
//! Writing streams (no seeking), so `.lc` files can be produced on a pipe; reading works
//! both sequentially (pipes) and by chunk index (seekable files, via the trailer).

use std::io::{Read, Seek, SeekFrom, Write};

use xxhash_rust::xxh3::Xxh3;

use crate::codec::{CodecId, CodecInfo, Kind};
use crate::error::ChecksumLocation;
use crate::{Error, Limits, Result};

/// First 8 bytes of every `.lc` file.
pub const MAGIC: [u8; 8] = *b"\x89LC\r\n\x1a\n\0";
/// Last 8 bytes of every complete `.lc` file.
pub const END_MAGIC: [u8; 8] = *b"\x89LCEND\n\0";
/// Container format version written by this build.
pub const FORMAT_VERSION: u16 = 1;
/// Tag byte that starts a chunk record.
pub const TAG_CHUNK: u8 = b'C';
/// Tag byte that starts the trailer.
pub const TAG_TRAILER: u8 = b'T';
/// Bytes in a chunk record before its payload (tag, lengths, CRC).
pub const CHUNK_RECORD_OVERHEAD: u64 = 13;
/// Bytes of one chunk-table entry in the trailer.
pub const TABLE_ENTRY_BYTES: u64 = 20;
/// Bytes of the footer.
pub const FOOTER_BYTES: u64 = 16;

const FLAG_ORIGINAL_HASH: u16 = 1;

/// Description of the original stored in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// What the original is.
    pub kind: Kind,
    /// Width in pixels / points per row (0 = not applicable).
    pub width: u32,
    /// Height in pixels (0 = not applicable).
    pub height: u32,
    /// Channels (colour planes, audio channels; 0 = not applicable).
    pub channels: u16,
    /// Bits per sample of the original (0 = not applicable).
    pub bit_depth: u8,
    /// Audio sample rate in Hz, or video frame rate ×1000 (0 = not applicable).
    pub sample_rate: u32,
    /// Audio samples per channel or video frames (0 = not applicable).
    pub frames: u64,
    /// The original's file name, if the user asked to store it.
    pub file_name: Option<String>,
}

impl Metadata {
    /// Metadata carrying only a kind.
    pub fn new(kind: Kind) -> Self {
        Metadata {
            kind,
            width: 0,
            height: 0,
            channels: 0,
            bit_depth: 0,
            sample_rate: 0,
            frames: 0,
            file_name: None,
        }
    }
}

/// Identity of the model a learned codec used; empty for classical codecs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelRef {
    /// Model id, e.g. `hyperprior-q3` (at most 255 bytes).
    pub id: String,
    /// Hash of the weights file (at most 255 bytes; 32 recommended).
    pub weights_hash: Vec<u8>,
}

/// The parsed container header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Container format version of the file.
    pub format_version: u16,
    /// Codec that wrote the payloads.
    pub codec_id: CodecId,
    /// That codec's bitstream version.
    pub codec_version: u16,
    /// Whether the trailer holds a hash of the original to verify.
    pub has_original_hash: bool,
    /// Model used (learned codecs).
    pub model: ModelRef,
    /// Description of the original.
    pub metadata: Metadata,
    /// Codec-specific parameters, opaque to the container.
    pub params: Vec<u8>,
    /// Total header length in bytes (offset of the first chunk record).
    pub len: u64,
}

/// One entry of the chunk table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkEntry {
    /// Offset of the chunk record (its tag byte) from the start of the file.
    pub offset: u64,
    /// Payload length in bytes.
    pub comp_len: u32,
    /// Decoded length in bytes, as declared by the codec.
    pub raw_len: u32,
    /// CRC32C of the lengths and the payload.
    pub crc: u32,
}

/// The parsed trailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trailer {
    /// Offset of the trailer in the file.
    pub offset: u64,
    /// Size of the original in bytes.
    pub original_size: u64,
    /// XXH3-128 of the original (zero when the codec is lossy).
    pub original_hash: [u8; 16],
    /// Codec index blob (e.g. tensor name → chunk range), opaque to the container.
    pub index: Vec<u8>,
    /// The chunk table.
    pub chunks: Vec<ChunkEntry>,
}

impl Trailer {
    /// Total file length implied by the trailer (trailer + footer end).
    pub fn file_len(&self) -> u64 {
        self.offset + trailer_body_len(self.index.len(), self.chunks.len()) + FOOTER_BYTES
    }
}

fn trailer_body_len(index_len: usize, chunks: usize) -> u64 {
    1 + 8 + 8 + 16 + 4 + index_len as u64 + chunks as u64 * TABLE_ENTRY_BYTES + 4
}

/// A chunk read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Zero-based index.
    pub index: u64,
    /// Offset of its record in the file.
    pub offset: u64,
    /// Declared decoded length.
    pub raw_len: u32,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Chunk {
    /// A [`Error::Malformed`] naming this chunk.
    pub fn malformed(&self, what: impl std::fmt::Display) -> Error {
        Error::malformed(self.offset, format!("chunk {}: {what}", self.index))
    }
}

fn chunk_crc(comp_len: u32, raw_len: u32, payload: &[u8]) -> u32 {
    let mut lens = [0u8; 8];
    lens[..4].copy_from_slice(&comp_len.to_le_bytes());
    lens[4..].copy_from_slice(&raw_len.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&lens), payload)
}

// ---------------------------------------------------------------------------------------
// Writing

/// Writes a container: the codec's only way to emit output.
pub struct ChunkSink<'a> {
    out: &'a mut dyn Write,
    info: &'static CodecInfo,
    pos: u64,
    header_written: bool,
    default_meta: Metadata,
    table: Vec<ChunkEntry>,
    index: Vec<u8>,
}

impl std::fmt::Debug for ChunkSink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkSink")
            .field("codec", &self.info.name)
            .field("pos", &self.pos)
            .finish()
    }
}

impl<'a> ChunkSink<'a> {
    /// A sink writing a container for `info`'s codec to `out`. `file_name` is stored in
    /// the header when `Some` (the default metadata; a codec's `begin` may override it).
    pub fn new(
        out: &'a mut dyn Write,
        info: &'static CodecInfo,
        file_name: Option<String>,
    ) -> Self {
        let mut default_meta = Metadata::new(info.kind);
        default_meta.file_name = file_name;
        ChunkSink {
            out,
            info,
            pos: 0,
            header_written: false,
            default_meta,
            table: Vec::new(),
            index: Vec::new(),
        }
    }

    /// The file name given to [`ChunkSink::new`], for codecs that build their own metadata.
    pub fn file_name(&self) -> Option<&str> {
        self.default_meta.file_name.as_deref()
    }

    /// Writes the header. Call once, before the first chunk; if a codec never calls it,
    /// the first `push` (or `finish`) writes a header with default metadata.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if called twice or a field is too long; I/O errors.
    pub fn begin(&mut self, mut meta: Metadata, model: ModelRef, params: &[u8]) -> Result<()> {
        if self.header_written {
            return Err(Error::InvalidArgument(
                "ChunkSink::begin called twice".into(),
            ));
        }
        if meta.file_name.is_none() {
            meta.file_name = self.default_meta.file_name.clone();
        }
        let bytes = encode_header(self.info, &model, &meta, params)?;
        self.write_all(&bytes)?;
        self.header_written = true;
        Ok(())
    }

    fn write_all(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn ensure_header(&mut self) -> Result<()> {
        if !self.header_written {
            let meta = self.default_meta.clone();
            self.begin(meta, ModelRef::default(), &[])?;
        }
        Ok(())
    }

    /// Appends one chunk. `raw_len` is the number of original bytes (or the codec's
    /// decoded unit count) it stands for; it is checked again on decode.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the payload is 4 GiB or more; I/O errors.
    pub fn push(&mut self, payload: &[u8], raw_len: u32) -> Result<()> {
        self.ensure_header()?;
        let comp_len = u32::try_from(payload.len()).map_err(|_| {
            Error::InvalidArgument(format!("chunk payload of {} bytes", payload.len()))
        })?;
        let crc = chunk_crc(comp_len, raw_len, payload);
        let offset = self.pos;
        let mut rec = [0u8; CHUNK_RECORD_OVERHEAD as usize];
        rec[0] = TAG_CHUNK;
        rec[1..5].copy_from_slice(&comp_len.to_le_bytes());
        rec[5..9].copy_from_slice(&raw_len.to_le_bytes());
        rec[9..13].copy_from_slice(&crc.to_le_bytes());
        self.write_all(&rec)?;
        self.write_all(payload)?;
        self.table.push(ChunkEntry {
            offset,
            comp_len,
            raw_len,
            crc,
        });
        Ok(())
    }

    /// Number of chunks pushed so far.
    pub fn chunk_count(&self) -> usize {
        self.table.len()
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.pos
    }

    /// Sets the codec index blob stored in the trailer (read back with
    /// [`ChunkSource::trailer`]); used for random access.
    pub fn set_index(&mut self, index: Vec<u8>) {
        self.index = index;
    }

    /// Writes the trailer and footer. Called by the library facade, not by codecs.
    ///
    /// # Errors
    /// I/O errors.
    pub fn finish(mut self, original_size: u64, original_hash: Option<[u8; 16]>) -> Result<u64> {
        self.ensure_header()?;
        let trailer_offset = self.pos;
        let mut t =
            Vec::with_capacity(trailer_body_len(self.index.len(), self.table.len()) as usize);
        t.push(TAG_TRAILER);
        t.extend_from_slice(&(self.table.len() as u64).to_le_bytes());
        t.extend_from_slice(&original_size.to_le_bytes());
        t.extend_from_slice(&original_hash.unwrap_or([0; 16]));
        let index_len = u32::try_from(self.index.len())
            .map_err(|_| Error::InvalidArgument("codec index over 4 GiB".into()))?;
        t.extend_from_slice(&index_len.to_le_bytes());
        t.extend_from_slice(&self.index);
        for e in &self.table {
            t.extend_from_slice(&e.offset.to_le_bytes());
            t.extend_from_slice(&e.comp_len.to_le_bytes());
            t.extend_from_slice(&e.raw_len.to_le_bytes());
            t.extend_from_slice(&e.crc.to_le_bytes());
        }
        let crc = crc32c::crc32c(&t);
        t.extend_from_slice(&crc.to_le_bytes());
        t.extend_from_slice(&trailer_offset.to_le_bytes());
        t.extend_from_slice(&END_MAGIC);
        self.write_all(&t)?;
        self.out.flush()?;
        Ok(self.pos)
    }
}

fn put_str8(b: &mut Vec<u8>, s: &[u8], what: &str) -> Result<()> {
    let n = u8::try_from(s.len())
        .map_err(|_| Error::InvalidArgument(format!("{what} longer than 255 bytes")))?;
    b.push(n);
    b.extend_from_slice(s);
    Ok(())
}

fn encode_header(
    info: &CodecInfo,
    model: &ModelRef,
    meta: &Metadata,
    params: &[u8],
) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    body.extend_from_slice(&info.id.0.to_le_bytes());
    body.extend_from_slice(&info.version.to_le_bytes());
    let flags = if info.lossless { FLAG_ORIGINAL_HASH } else { 0 };
    body.extend_from_slice(&flags.to_le_bytes());
    put_str8(&mut body, model.id.as_bytes(), "model id")?;
    put_str8(&mut body, &model.weights_hash, "weights hash")?;
    body.push(meta.kind.to_u8());
    body.extend_from_slice(&meta.width.to_le_bytes());
    body.extend_from_slice(&meta.height.to_le_bytes());
    body.extend_from_slice(&meta.channels.to_le_bytes());
    body.push(meta.bit_depth);
    body.extend_from_slice(&meta.sample_rate.to_le_bytes());
    body.extend_from_slice(&meta.frames.to_le_bytes());
    let name = meta.file_name.as_deref().unwrap_or("").as_bytes();
    let name_len = u16::try_from(name.len())
        .map_err(|_| Error::InvalidArgument("file name longer than 65535 bytes".into()))?;
    body.extend_from_slice(&name_len.to_le_bytes());
    body.extend_from_slice(name);
    let plen = u32::try_from(params.len())
        .map_err(|_| Error::InvalidArgument("codec params over 4 GiB".into()))?;
    body.extend_from_slice(&plen.to_le_bytes());
    body.extend_from_slice(params);

    let mut out = Vec::with_capacity(body.len() + 18);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    let blen = u32::try_from(body.len())
        .map_err(|_| Error::InvalidArgument("header over 4 GiB".into()))?;
    out.extend_from_slice(&blen.to_le_bytes());
    out.extend_from_slice(&body);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Reading

/// `Read + Seek`, as a trait object.
pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// Reads exactly `buf.len()` bytes at the tracked position, naming what was expected on EOF.
fn read_exact_tracked(r: &mut dyn Read, pos: &mut u64, buf: &mut [u8], what: &str) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Err(Error::truncated(*pos + filled as u64, what.to_string())),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    *pos += buf.len() as u64;
    Ok(())
}

/// Little cursor over an in-memory structure with offset-aware errors.
struct Cur<'b> {
    b: &'b [u8],
    at: usize,
    base: u64,
}

impl<'b> Cur<'b> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'b [u8]> {
        if self.b.len() - self.at < n {
            return Err(Error::malformed(
                self.base + self.at as u64,
                format!("{what} runs past the end of its structure"),
            ));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        let s = self.take(2, what)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        let s = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    fn pos(&self) -> u64 {
        self.base + self.at as u64
    }
}

/// Reads and validates the header from the start of `r`.
///
/// # Errors
/// [`Error::Malformed`] for a wrong magic or bad fields, [`Error::Unsupported`] for a
/// newer format version, [`Error::Checksum`] for a damaged header, truncation.
pub fn read_header(r: &mut dyn Read, limits: &Limits) -> Result<Header> {
    let mut pos = 0u64;
    let mut fixed = [0u8; 14];
    read_exact_tracked(r, &mut pos, &mut fixed[..8], "the .lc magic bytes")?;
    if fixed[..8] != MAGIC {
        return Err(Error::malformed(
            0,
            "not an .lc file (magic bytes do not match)",
        ));
    }
    read_exact_tracked(
        r,
        &mut pos,
        &mut fixed[8..14],
        "format version and header length",
    )?;
    let version = u16::from_le_bytes([fixed[8], fixed[9]]);
    if version == 0 || version > FORMAT_VERSION {
        return Err(Error::Unsupported(format!(
            "container format version {version} (this build reads 1..={FORMAT_VERSION})"
        )));
    }
    let blen = u32::from_le_bytes([fixed[10], fixed[11], fixed[12], fixed[13]]) as u64;
    Limits::check(blen, limits.max_header_bytes, "header length")?;
    let mut body = vec![0u8; blen as usize];
    read_exact_tracked(r, &mut pos, &mut body, "header body")?;
    let mut crcb = [0u8; 4];
    read_exact_tracked(r, &mut pos, &mut crcb, "header checksum")?;
    let crc = crc32c::crc32c_append(crc32c::crc32c(&fixed), &body);
    if crc != u32::from_le_bytes(crcb) {
        return Err(Error::Checksum {
            location: ChecksumLocation::Header,
        });
    }
    let mut c = Cur {
        b: &body,
        at: 0,
        base: 14,
    };
    let codec_id = CodecId(c.u16("codec id")?);
    let codec_version = c.u16("codec version")?;
    let flags = c.u16("flags")?;
    if flags & !FLAG_ORIGINAL_HASH != 0 {
        return Err(Error::Unsupported(format!("header flags {flags:#06x}")));
    }
    let n = c.u8("model id length")? as usize;
    let id_at = c.pos();
    let model_id = String::from_utf8(c.take(n, "model id")?.to_vec())
        .map_err(|_| Error::malformed(id_at, "model id is not UTF-8"))?;
    let n = c.u8("weights hash length")? as usize;
    let weights_hash = c.take(n, "weights hash")?.to_vec();
    let kind_at = c.pos();
    let kb = c.u8("kind")?;
    let kind =
        Kind::from_u8(kb).ok_or_else(|| Error::malformed(kind_at, format!("unknown kind {kb}")))?;
    let width = c.u32("width")?;
    let height = c.u32("height")?;
    let channels = c.u16("channels")?;
    let bit_depth = c.u8("bit depth")?;
    let sample_rate = c.u32("sample rate")?;
    let frames = c.u64("frames")?;
    let n = c.u16("file name length")? as usize;
    let name_at = c.pos();
    let name = c.take(n, "file name")?;
    let file_name = if n == 0 {
        None
    } else {
        Some(
            String::from_utf8(name.to_vec())
                .map_err(|_| Error::malformed(name_at, "file name is not UTF-8"))?,
        )
    };
    let n = c.u32("codec params length")? as usize;
    let params = c.take(n, "codec params")?.to_vec();
    if c.at != body.len() {
        return Err(Error::malformed(
            c.pos(),
            format!(
                "{} unexpected bytes at the end of the header",
                body.len() - c.at
            ),
        ));
    }
    Ok(Header {
        format_version: version,
        codec_id,
        codec_version,
        has_original_hash: flags & FLAG_ORIGINAL_HASH != 0,
        model: ModelRef {
            id: model_id,
            weights_hash,
        },
        metadata: Metadata {
            kind,
            width,
            height,
            channels,
            bit_depth,
            sample_rate,
            frames,
            file_name,
        },
        params,
        len: pos,
    })
}

fn parse_trailer_body(body: &[u8], offset: u64, limits: &Limits) -> Result<Trailer> {
    let mut c = Cur {
        b: body,
        at: 0,
        base: offset,
    };
    let tag = c.u8("trailer tag")?;
    if tag != TAG_TRAILER {
        return Err(Error::malformed(
            offset,
            format!("expected trailer tag 0x54, found {tag:#04x}"),
        ));
    }
    let count = c.u64("chunk count")?;
    Limits::check(count, limits.max_chunks, "chunk count")?;
    let original_size = c.u64("original size")?;
    let mut original_hash = [0u8; 16];
    original_hash.copy_from_slice(c.take(16, "original hash")?);
    let n = c.u32("index length")? as usize;
    let index = c.take(n, "codec index")?.to_vec();
    let table_bytes = count
        .checked_mul(TABLE_ENTRY_BYTES)
        .ok_or_else(|| Error::malformed(c.pos(), "chunk count overflows"))?;
    if table_bytes > (body.len() - c.at) as u64 {
        return Err(Error::malformed(
            c.pos(),
            format!("chunk table of {count} entries runs past the trailer"),
        ));
    }
    let mut chunks = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let offset = c.u64("chunk offset")?;
        let comp_len = c.u32("chunk length")?;
        let raw_len = c.u32("chunk raw length")?;
        let crc = c.u32("chunk crc")?;
        chunks.push(ChunkEntry {
            offset,
            comp_len,
            raw_len,
            crc,
        });
    }
    let crc_at = c.pos();
    let crc = c.u32("trailer checksum")?;
    if c.at != body.len() {
        return Err(Error::malformed(
            c.pos(),
            "unexpected bytes after the trailer checksum",
        ));
    }
    if crc32c::crc32c(&body[..body.len() - 4]) != crc {
        let _ = crc_at;
        return Err(Error::Checksum {
            location: ChecksumLocation::Trailer,
        });
    }
    Ok(Trailer {
        offset,
        original_size,
        original_hash,
        index,
        chunks,
    })
}

enum Mode<'a> {
    Stream(&'a mut dyn Read),
    Seek(&'a mut dyn ReadSeek),
}

/// Gives a codec the chunks of a file, in order or by index, checking each CRC.
pub struct ChunkSource<'a> {
    mode: Mode<'a>,
    limits: Limits,
    verify: bool,
    pos: u64,
    next: u64,
    seen: Vec<ChunkEntry>,
    trailer: Option<Trailer>,
}

impl std::fmt::Debug for ChunkSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkSource")
            .field("pos", &self.pos)
            .field("next", &self.next)
            .finish()
    }
}

impl<'a> ChunkSource<'a> {
    /// A sequential source over `r`, positioned just after a header of `header_len` bytes.
    pub fn stream(r: &'a mut dyn Read, header_len: u64, limits: Limits, verify: bool) -> Self {
        ChunkSource {
            mode: Mode::Stream(r),
            limits,
            verify,
            pos: header_len,
            next: 0,
            seen: Vec::new(),
            trailer: None,
        }
    }

    /// A random-access source over a seekable file: reads and validates the trailer first.
    ///
    /// # Errors
    /// A missing, truncated or damaged trailer / footer, chunk offsets that do not fit.
    pub fn seekable(
        r: &'a mut dyn ReadSeek,
        header: &Header,
        limits: Limits,
        verify: bool,
    ) -> Result<Self> {
        let trailer = read_trailer_seek(r, header, &limits)?;
        r.seek(SeekFrom::Start(header.len))?;
        Ok(ChunkSource {
            mode: Mode::Seek(r),
            limits,
            verify,
            pos: header.len,
            next: 0,
            seen: Vec::new(),
            trailer: Some(trailer),
        })
    }

    /// The trailer, once known: always for a seekable source, after the last chunk for a stream.
    pub fn trailer(&self) -> Option<&Trailer> {
        self.trailer.as_ref()
    }

    /// Number of chunks, if known (seekable sources).
    pub fn chunk_count(&self) -> Option<u64> {
        self.trailer.as_ref().map(|t| t.chunks.len() as u64)
    }

    fn reader(&mut self) -> &mut dyn Read {
        match &mut self.mode {
            Mode::Stream(r) => *r,
            Mode::Seek(r) => *r,
        }
    }

    /// Reads the next chunk in file order; `Ok(None)` after the last one (the trailer has
    /// then been read and checked against the chunks seen).
    ///
    /// # Errors
    /// Truncation, a bad tag, a length over the limits, a CRC mismatch naming the chunk.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        if let Some(t) = &self.trailer {
            if self.next >= t.chunks.len() as u64 {
                if matches!(self.mode, Mode::Stream(_)) {
                    return Ok(None);
                }
                // Seekable: the trailer was read up front; make sure the sequence matched.
                if self.pos != t.offset {
                    return Err(Error::malformed(
                        self.pos,
                        format!(
                            "chunk records end here but the trailer starts at {}",
                            t.offset
                        ),
                    ));
                }
                return Ok(None);
            }
        }
        let mut pos = self.pos;
        let mut tag = [0u8; 1];
        read_exact_tracked(
            self.reader(),
            &mut pos,
            &mut tag,
            "a chunk record or the trailer",
        )?;
        match tag[0] {
            TAG_CHUNK => {}
            TAG_TRAILER if matches!(self.mode, Mode::Stream(_)) => {
                self.pos = pos - 1;
                self.read_stream_trailer()?;
                return Ok(None);
            }
            t => {
                return Err(Error::malformed(
                    self.pos,
                    format!("expected a chunk record (tag 0x43) or trailer (0x54), found {t:#04x}"),
                ));
            }
        }
        let offset = self.pos;
        let mut rec = [0u8; 12];
        read_exact_tracked(self.reader(), &mut pos, &mut rec, "chunk record header")?;
        let comp_len = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
        let raw_len = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
        let crc = u32::from_le_bytes([rec[8], rec[9], rec[10], rec[11]]);
        let index = self.next;
        Limits::check(
            comp_len as u64,
            self.limits.max_chunk_bytes,
            &format!("chunk {index} length"),
        )?;
        Limits::check(
            raw_len as u64,
            self.limits.max_chunk_raw_bytes,
            &format!("chunk {index} decoded length"),
        )?;
        Limits::check(index + 1, self.limits.max_chunks, "chunk count")?;
        if let Some(t) = &self.trailer {
            let e = t.chunks[index as usize];
            if e.offset != offset || e.comp_len != comp_len || e.raw_len != raw_len || e.crc != crc
            {
                return Err(Error::malformed(
                    offset,
                    format!("chunk {index} record does not match the chunk table"),
                ));
            }
        }
        let mut payload =
            crate::limits::try_alloc_bytes(comp_len as u64, &self.limits, "chunk payload")?;
        read_exact_tracked(
            self.reader(),
            &mut pos,
            &mut payload,
            &format!("chunk {index} payload ({comp_len} bytes)"),
        )?;
        if self.verify && chunk_crc(comp_len, raw_len, &payload) != crc {
            return Err(Error::Checksum {
                location: ChecksumLocation::Chunk { index, offset },
            });
        }
        if self.trailer.is_none() {
            self.seen.push(ChunkEntry {
                offset,
                comp_len,
                raw_len,
                crc,
            });
        }
        self.pos = pos;
        self.next += 1;
        Ok(Some(Chunk {
            index,
            offset,
            raw_len,
            payload,
        }))
    }

    /// Reads up to `n` chunks in order (fewer at the end).
    ///
    /// # Errors
    /// As [`ChunkSource::next_chunk`].
    pub fn next_batch(&mut self, n: usize) -> Result<Vec<Chunk>> {
        let mut v = Vec::new();
        while v.len() < n {
            match self.next_chunk()? {
                Some(c) => v.push(c),
                None => break,
            }
        }
        Ok(v)
    }

    /// Reads chunk `index` directly (seekable sources only). Does not change the
    /// sequential position used by [`ChunkSource::next_chunk`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] on a stream or for an index past the end; I/O, CRC errors.
    pub fn read_chunk(&mut self, index: u64) -> Result<Chunk> {
        let t = self
            .trailer
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("random access needs a seekable input".into()))?;
        let e = *t.chunks.get(index as usize).ok_or_else(|| {
            Error::InvalidArgument(format!("chunk {index} of {}", t.chunks.len()))
        })?;
        let Mode::Seek(r) = &mut self.mode else {
            return Err(Error::InvalidArgument(
                "random access needs a seekable input".into(),
            ));
        };
        r.seek(SeekFrom::Start(e.offset + CHUNK_RECORD_OVERHEAD))?;
        let mut payload =
            crate::limits::try_alloc_bytes(e.comp_len as u64, &self.limits, "chunk payload")?;
        let mut p = e.offset + CHUNK_RECORD_OVERHEAD;
        read_exact_tracked(*r, &mut p, &mut payload, &format!("chunk {index} payload"))?;
        r.seek(SeekFrom::Start(self.pos))?;
        if self.verify && chunk_crc(e.comp_len, e.raw_len, &payload) != e.crc {
            return Err(Error::Checksum {
                location: ChecksumLocation::Chunk {
                    index,
                    offset: e.offset,
                },
            });
        }
        Ok(Chunk {
            index,
            offset: e.offset,
            raw_len: e.raw_len,
            payload,
        })
    }

    fn read_stream_trailer(&mut self) -> Result<()> {
        let start = self.pos;
        let mut pos = start + 1;
        let mut fixed = [0u8; 36];
        read_exact_tracked(self.reader(), &mut pos, &mut fixed, "trailer")?;
        let count = u64::from_le_bytes(fixed[0..8].try_into().unwrap_or([0; 8]));
        let index_len = u32::from_le_bytes(fixed[32..36].try_into().unwrap_or([0; 4])) as u64;
        if count != self.seen.len() as u64 {
            return Err(Error::malformed(
                start,
                format!(
                    "trailer lists {count} chunks, the file has {}",
                    self.seen.len()
                ),
            ));
        }
        Limits::check(
            index_len,
            self.limits.max_header_bytes,
            "codec index length",
        )?;
        let rest = index_len + count * TABLE_ENTRY_BYTES + 4;
        let mut body = crate::limits::try_alloc_bytes(1 + 36 + rest, &self.limits, "trailer")?;
        body[0] = TAG_TRAILER;
        body[1..37].copy_from_slice(&fixed);
        read_exact_tracked(self.reader(), &mut pos, &mut body[37..], "trailer")?;
        let t = parse_trailer_body(&body, start, &self.limits)?;
        if t.chunks != self.seen {
            return Err(Error::malformed(
                start,
                "chunk table does not match the chunk records",
            ));
        }
        let mut footer = [0u8; FOOTER_BYTES as usize];
        read_exact_tracked(self.reader(), &mut pos, &mut footer, "footer")?;
        let toff = u64::from_le_bytes(footer[..8].try_into().unwrap_or([0; 8]));
        if footer[8..] != END_MAGIC || toff != start {
            return Err(Error::malformed(pos - FOOTER_BYTES, "bad footer"));
        }
        let mut extra = [0u8; 1];
        loop {
            match self.reader().read(&mut extra) {
                Ok(0) => break,
                Ok(_) => {
                    return Err(Error::malformed(
                        pos,
                        "unexpected data after the end of the .lc file",
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.pos = pos;
        self.trailer = Some(t);
        Ok(())
    }

    /// Skips the chunks not yet read, for codecs that decode a part of a file (one tensor).
    /// A seekable source jumps to its trailer (checked when the source was opened) without
    /// reading the chunk records; a stream reads and checks them.
    ///
    /// # Errors
    /// For streams: as [`ChunkSource::next_chunk`].
    pub fn skip_rest(&mut self) -> Result<()> {
        if let (Mode::Seek(r), Some(t)) = (&mut self.mode, &self.trailer) {
            r.seek(SeekFrom::Start(t.offset))?;
            self.pos = t.offset;
            self.next = t.chunks.len() as u64;
            return Ok(());
        }
        while self.next_chunk()?.is_some() {}
        Ok(())
    }

    /// Consumes the rest of the file and returns the trailer; errors if chunks remain
    /// that the codec did not read (a sign of a malformed file or a codec bug).
    ///
    /// # Errors
    /// Unread chunks, truncation, a damaged trailer.
    pub fn finish(mut self) -> Result<Trailer> {
        match self.next_chunk()? {
            None => {}
            Some(c) => {
                return Err(Error::malformed(
                    c.offset,
                    format!("chunk {} was not consumed by the codec", c.index),
                ));
            }
        }
        self.trailer
            .ok_or_else(|| Error::malformed(self.pos, "missing trailer"))
    }
}

/// Reads the footer and trailer of a seekable file and checks them against the header.
///
/// # Errors
/// A missing or damaged footer / trailer, chunk offsets outside the file.
pub fn read_trailer_seek(
    r: &mut dyn ReadSeek,
    header: &Header,
    limits: &Limits,
) -> Result<Trailer> {
    let file_len = r.seek(SeekFrom::End(0))?;
    if file_len < header.len + FOOTER_BYTES {
        return Err(Error::truncated(file_len, "the trailer and footer"));
    }
    r.seek(SeekFrom::Start(file_len - FOOTER_BYTES))?;
    let mut footer = [0u8; FOOTER_BYTES as usize];
    let mut p = file_len - FOOTER_BYTES;
    read_exact_tracked(r, &mut p, &mut footer, "footer")?;
    if footer[8..] != END_MAGIC {
        return Err(Error::truncated(
            file_len,
            "the end-of-file marker (file truncated or damaged)",
        ));
    }
    let toff = u64::from_le_bytes(footer[..8].try_into().unwrap_or([0; 8]));
    if toff < header.len || toff > file_len - FOOTER_BYTES {
        return Err(Error::malformed(
            file_len - FOOTER_BYTES,
            format!("trailer offset {toff} outside the file"),
        ));
    }
    let tlen = file_len - FOOTER_BYTES - toff;
    Limits::check(
        tlen,
        limits
            .max_header_bytes
            .saturating_add(limits.max_chunks.saturating_mul(TABLE_ENTRY_BYTES)),
        "trailer length",
    )?;
    let mut body = crate::limits::try_alloc_bytes(tlen, limits, "trailer")?;
    r.seek(SeekFrom::Start(toff))?;
    let mut p = toff;
    read_exact_tracked(r, &mut p, &mut body, "trailer")?;
    let t = parse_trailer_body(&body, toff, limits)?;
    let mut expect = header.len;
    for (i, e) in t.chunks.iter().enumerate() {
        if e.offset != expect {
            return Err(Error::malformed(
                toff,
                format!(
                    "chunk table entry {i}: offset {} (expected {expect})",
                    e.offset
                ),
            ));
        }
        expect = e.offset + CHUNK_RECORD_OVERHEAD + e.comp_len as u64;
    }
    if expect != toff {
        return Err(Error::malformed(
            toff,
            format!("chunks end at {expect} but the trailer starts at {toff}"),
        ));
    }
    Ok(t)
}

// ---------------------------------------------------------------------------------------
// Hashing of the original

/// Wraps a reader, counting bytes and hashing them (XXH3-128).
pub struct HashingReader<R> {
    inner: R,
    hasher: Xxh3,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Xxh3::new(),
            count: 0,
        }
    }
    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// XXH3-128 of the bytes read so far, little-endian.
    pub fn digest(&self) -> [u8; 16] {
        self.hasher.digest128().to_le_bytes()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Wraps a writer, counting bytes and hashing them (XXH3-128).
pub struct HashingWriter<W> {
    inner: W,
    hasher: Xxh3,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Xxh3::new(),
            count: 0,
        }
    }
    /// Bytes written so far.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// XXH3-128 of the bytes written so far, little-endian.
    pub fn digest(&self) -> [u8; 16] {
        self.hasher.digest128().to_le_bytes()
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
