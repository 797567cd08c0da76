//! lcodec: one library for learned and classical compression of images, audio, video,
//! LiDAR point clouds, logs, text and model weights, all written into one `.lc`
//! container.
//!
//! A storage pipeline streams data through [`encode`] and [`decode`]; the codec is chosen
//! from the input (or named in [`EncodeOptions`]), and the `.lc` header says which codec
//! to decode with:
//!
//! ```
//! use lcodec::{Registry, EncodeOptions, DecodeOptions};
//!
//! let registry = Registry::with_enabled();
//! let original = b"2026-11-23 05:58:32 INFO stored block 17\n".repeat(1000);
//!
//! let mut packed = Vec::new();
//! let report = lcodec::encode(&registry, &mut &original[..], &mut packed, &EncodeOptions::default())?;
//! assert!(packed.len() < original.len() / 10);
//! println!("{} -> {} bytes with {}", report.original_size, report.compressed_size, report.codec);
//!
//! let mut restored = Vec::new();
//! lcodec::decode(&registry, &mut &packed[..], &mut restored, &DecodeOptions::default())?;
//! assert_eq!(restored, original);
//! # Ok::<(), lcodec::Error>(())
//! ```
#![forbid(unsafe_code)]

use std::io::{Read, Seek, Write};

mod stream;
pub use stream::StreamEncoder;

use lcodec_core::ChecksumLocation;
use lcodec_core::container::{
    ChunkSink, ChunkSource, HashingReader, HashingWriter, read_header, read_trailer_seek,
};
pub use lcodec_core::{
    Codec, CodecId, CodecInfo, Confidence, DecodeOptions, EncodeOptions, Error, FORMAT_PARAM,
    Header, Kind, Limits, Metadata, ModelRef, Result, Trailer, container, extension, parallel,
};

/// Bytes of input examined for detection.
pub const SNIFF_BYTES: usize = 64 * 1024;

/// The set of codecs available to encode and decode; a value, not global state.
pub struct Registry {
    codecs: Vec<Box<dyn Codec>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.codecs.iter().map(|c| c.info().name))
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Self {
        Registry { codecs: Vec::new() }
    }

    /// A registry holding every codec compiled into this build.
    pub fn with_enabled() -> Self {
        let mut r = Registry::empty();
        #[cfg(feature = "raw")]
        r.register(Box::new(lcodec_raw::RawCodec::new()));
        #[cfg(feature = "tensor")]
        r.register(Box::new(lcodec_tensor::TensorCodec));
        #[cfg(feature = "log")]
        r.register(Box::new(lcodec_log::LogCodec));
        #[cfg(feature = "lidar")]
        r.register(Box::new(lcodec_lidar::LidarCodec::new()));
        #[cfg(feature = "text")]
        r.register(Box::new(lcodec_text::TextCmCodec::new()));
        #[cfg(feature = "text")]
        r.register(Box::new(lcodec_text::llm::TextLlmCodec::new()));
        // Only when weights are found (no weights: images go to the other codecs).
        #[cfg(feature = "image")]
        if let Some(c) = lcodec_image::discover() {
            r.register(Box::new(c));
        }
        r
    }

    /// Adds a codec (replacing one with the same id).
    pub fn register(&mut self, codec: Box<dyn Codec>) {
        let id = codec.info().id;
        self.codecs.retain(|c| c.info().id != id);
        self.codecs.push(codec);
    }

    /// All registered codecs.
    pub fn codecs(&self) -> impl Iterator<Item = &dyn Codec> {
        self.codecs.iter().map(|c| c.as_ref())
    }

    /// The codec with this id.
    pub fn by_id(&self, id: CodecId) -> Option<&dyn Codec> {
        self.codecs().find(|c| c.info().id == id)
    }

    /// The codec with this name.
    pub fn by_name(&self, name: &str) -> Option<&dyn Codec> {
        self.codecs()
            .find(|c| c.info().name.eq_ignore_ascii_case(name))
    }

    /// Picks the best codec for an input from its first bytes and file name.
    ///
    /// # Errors
    /// [`Error::Unsupported`] if no codec accepts the input (only when `raw` is not built).
    pub fn detect(&self, head: &[u8], file_name: Option<&str>) -> Result<&dyn Codec> {
        self.codecs()
            .filter_map(|c| c.sniff(head, file_name).map(|conf| (conf, c)))
            .max_by_key(|(conf, c)| (*conf, std::cmp::Reverse(c.info().id)))
            .map(|(_, c)| c)
            .ok_or_else(|| Error::Unsupported("no codec in this build accepts the input".into()))
    }

    fn resolve(&self, name: &str) -> Result<&dyn Codec> {
        self.by_name(name).ok_or_else(|| {
            let names: Vec<_> = self.codecs().map(|c| c.info().name).collect();
            Error::InvalidArgument(format!(
                "unknown codec {name:?} (this build has: {})",
                names.join(", ")
            ))
        })
    }
}

/// What an encode produced.
#[derive(Debug, Clone)]
pub struct EncodeReport {
    /// Name of the codec used.
    pub codec: &'static str,
    /// Bytes of original read.
    pub original_size: u64,
    /// Bytes of `.lc` written.
    pub compressed_size: u64,
}

/// Encodes `src` into an `.lc` stream on `dst`, picking the codec by
/// `opts.params["codec"]` if present, else by detection.
///
/// # Errors
/// I/O errors, an unknown codec name, input the chosen codec cannot handle.
pub fn encode(
    registry: &Registry,
    src: &mut dyn Read,
    dst: &mut dyn Write,
    opts: &EncodeOptions,
) -> Result<EncodeReport> {
    // Read a prefix for detection, then chain it back in front of the rest.
    let mut head = vec![0u8; SNIFF_BYTES];
    let n = lcodec_core::parallel::read_full(src, &mut head)?;
    head.truncate(n);
    let codec = match opts.params.get("codec") {
        Some(name) => registry.resolve(name)?,
        None => registry.detect(&head, opts.file_name.as_deref())?,
    };
    encode_with(codec, &mut (&head[..]).chain(src), dst, opts)
}

/// Encodes with a given codec.
///
/// # Errors
/// As [`encode`].
pub fn encode_with(
    codec: &dyn Codec,
    src: &mut dyn Read,
    dst: &mut dyn Write,
    opts: &EncodeOptions,
) -> Result<EncodeReport> {
    let info = codec.info();
    if let Some(c) = opts.chunk_size {
        if c == 0 || c as u64 > lcodec_core::MAX_CHUNK_DEFAULT {
            return Err(Error::InvalidArgument(format!(
                "chunk size {c} (expected 1..={} bytes, so default decoders accept the file)",
                lcodec_core::MAX_CHUNK_DEFAULT
            )));
        }
    }
    let mut hr = HashingReader::new(src);
    let stored_name = if opts.store_name {
        opts.file_name.as_ref().map(|n| base_name(n))
    } else {
        None
    };
    let mut sink = ChunkSink::new(dst, info, stored_name);
    codec.encode(&mut hr, &mut sink, opts)?;
    let hash = info.lossless.then(|| hr.digest());
    let compressed_size = sink.finish(hr.count(), hash)?;
    Ok(EncodeReport {
        codec: info.name,
        original_size: hr.count(),
        compressed_size,
    })
}

fn base_name(n: &str) -> String {
    n.rsplit(['/', '\\']).next().unwrap_or(n).to_string()
}

/// What a decode produced.
#[derive(Debug, Clone)]
pub struct DecodeReport {
    /// The file's header.
    pub header: Header,
    /// The file's trailer.
    pub trailer: Trailer,
    /// Bytes written.
    pub decoded_size: u64,
}

/// Decodes an `.lc` stream from `src` into `dst`, verifying checksums and (for lossless
/// codecs) the hash of the original.
///
/// On error, whatever was already written to `dst` must be discarded: the CLI writes to
/// a temporary file and removes it.
///
/// # Errors
/// Not an `.lc` file, damaged or truncated input (naming the chunk and offset), a codec
/// not in this build, a hash mismatch, I/O errors.
pub fn decode(
    registry: &Registry,
    src: &mut dyn Read,
    dst: &mut dyn Write,
    opts: &DecodeOptions,
) -> Result<DecodeReport> {
    let header = read_header(src, &opts.limits)?;
    let codec = codec_for(registry, &header)?;
    let mut source = ChunkSource::stream(src, header.len, opts.limits, opts.verify);
    decode_source(codec, header, &mut source, dst, opts)
}

/// Decodes a seekable `.lc` file, reading its chunk table first (enables random access
/// inside codecs, e.g. one tensor by name).
///
/// # Errors
/// As [`decode`].
pub fn decode_seekable<R: Read + Seek>(
    registry: &Registry,
    src: &mut R,
    dst: &mut dyn Write,
    opts: &DecodeOptions,
) -> Result<DecodeReport> {
    let header = read_header(src, &opts.limits)?;
    let codec = codec_for(registry, &header)?;
    let mut source = ChunkSource::seekable(src, &header, opts.limits, opts.verify)?;
    decode_source(codec, header, &mut source, dst, opts)
}

fn decode_source(
    codec: &dyn Codec,
    header: Header,
    source: &mut ChunkSource<'_>,
    dst: &mut dyn Write,
    opts: &DecodeOptions,
) -> Result<DecodeReport> {
    let mut hw = HashingWriter::new(dst);
    codec.decode(&header, source, &mut hw, opts)?;
    // Take the source by value to finish it without moving out of the caller's borrow.
    let trailer = finish_source(source)?;
    hw.flush()?;
    let partial = codec.decodes_transformed(&header, opts);
    if !partial && opts.verify {
        if hw.count() != trailer.original_size {
            return Err(Error::malformed(
                trailer.offset,
                format!(
                    "decoded {} bytes, the file says the original had {}",
                    hw.count(),
                    trailer.original_size
                ),
            ));
        }
        if header.has_original_hash && hw.digest() != trailer.original_hash {
            return Err(Error::Checksum {
                location: ChecksumLocation::Original,
            });
        }
    }
    Ok(DecodeReport {
        header,
        trailer,
        decoded_size: hw.count(),
    })
}

fn finish_source(source: &mut ChunkSource<'_>) -> Result<Trailer> {
    if let Some(c) = source.next_chunk()? {
        return Err(Error::malformed(
            c.offset,
            format!("chunk {} was not consumed by the codec", c.index),
        ));
    }
    source
        .trailer()
        .cloned()
        .ok_or_else(|| Error::malformed(0, "missing trailer"))
}

fn codec_for<'r>(registry: &'r Registry, header: &Header) -> Result<&'r dyn Codec> {
    let codec = registry.by_id(header.codec_id).ok_or_else(|| {
        let hint = if header.codec_id == CodecId::IMAGE {
            " (the image codec is registered only when its weights are found: set \
             LCODEC_MODELS to the folder holding the file's model, see models/weights)"
        } else {
            ""
        };
        Error::Unsupported(format!(
            "codec id {} is not in this build{hint}",
            header.codec_id
        ))
    })?;
    let info = codec.info();
    if header.codec_version > info.version {
        return Err(Error::Unsupported(format!(
            "{} bitstream version {} (this build reads up to {})",
            info.name, header.codec_version, info.version
        )));
    }
    Ok(codec)
}

/// Summary of an `.lc` file, for `lcodec info`.
#[derive(Debug, Clone)]
pub struct FileInfo {
    /// The header.
    pub header: Header,
    /// The trailer (chunk table).
    pub trailer: Trailer,
    /// The codec's name, if it is in this build.
    pub codec_name: Option<&'static str>,
    /// Total file length.
    pub file_len: u64,
}

/// Reads the header and trailer of a seekable `.lc` file without decoding payloads.
///
/// # Errors
/// Not an `.lc` file, damaged header or trailer.
pub fn inspect<R: Read + Seek>(
    registry: &Registry,
    src: &mut R,
    limits: &Limits,
) -> Result<FileInfo> {
    src.seek(std::io::SeekFrom::Start(0))?;
    let header = read_header(src, limits)?;
    let trailer = read_trailer_seek(src, &header, limits)?;
    let file_len = src.seek(std::io::SeekFrom::End(0))?;
    let codec_name = registry.by_id(header.codec_id).map(|c| c.info().name);
    Ok(FileInfo {
        header,
        trailer,
        codec_name,
        file_len,
    })
}
