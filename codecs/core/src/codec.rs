//! The `Codec` trait every lcodec codec implements, its identity and its options.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use crate::container::{ChunkSink, ChunkSource, Header};
use crate::{Error, Limits, Result};

/// Stable numeric codec id stored in every `.lc` file. Never reuse a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CodecId(pub u16);

impl CodecId {
    /// Generic lossless byte codec (deflate / zstd).
    pub const RAW: CodecId = CodecId(1);
    /// Learned image codec (hyperprior).
    pub const IMAGE: CodecId = CodecId(2);
    /// Extreme-rate VQ image codec.
    pub const VQ: CodecId = CodecId(3);
    /// Wavelet-packet + shallow autoencoder codec.
    pub const WAVELET: CodecId = CodecId(4);
    /// Learned video codec.
    pub const VIDEO: CodecId = CodecId(5);
    /// Audio codec.
    pub const AUDIO: CodecId = CodecId(6);
    /// LiDAR point-cloud codec.
    pub const LIDAR: CodecId = CodecId(7);
    /// Log codec.
    pub const LOG: CodecId = CodecId(8);
    /// Text codec driven by a pretrained language model.
    pub const TEXT_LLM: CodecId = CodecId(9);
    /// Text codec with an online context-mixing model.
    pub const TEXT_CM: CodecId = CodecId(10);
    /// Model-weight (tensor) codec.
    pub const TENSOR: CodecId = CodecId(11);
}

impl std::fmt::Display for CodecId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What kind of data an original is; stored in the header metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// Opaque bytes.
    Bytes,
    /// A still image.
    Image,
    /// Audio samples.
    Audio,
    /// Video frames.
    Video,
    /// A point cloud.
    PointCloud,
    /// Log text.
    Log,
    /// Natural-language text.
    Text,
    /// Model weights.
    Tensor,
}

impl Kind {
    /// The byte stored in the container for this kind.
    pub fn to_u8(self) -> u8 {
        match self {
            Kind::Bytes => 0,
            Kind::Image => 1,
            Kind::Audio => 2,
            Kind::Video => 3,
            Kind::PointCloud => 4,
            Kind::Log => 5,
            Kind::Text => 6,
            Kind::Tensor => 7,
        }
    }
    /// Parses the stored byte; `None` for unknown values.
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            0 => Kind::Bytes,
            1 => Kind::Image,
            2 => Kind::Audio,
            3 => Kind::Video,
            4 => Kind::PointCloud,
            5 => Kind::Log,
            6 => Kind::Text,
            7 => Kind::Tensor,
            _ => return None,
        })
    }
    /// Lower-case name, as used on the command line (`lcodec sweep --codec`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Bytes => "bytes",
            Kind::Image => "image",
            Kind::Audio => "audio",
            Kind::Video => "video",
            Kind::PointCloud => "pointcloud",
            Kind::Log => "log",
            Kind::Text => "text",
            Kind::Tensor => "tensor",
        }
    }
}

/// Static description of a codec.
#[derive(Debug, Clone, Copy)]
pub struct CodecInfo {
    /// Stable id stored in files.
    pub id: CodecId,
    /// Short name used on the command line (`--codec NAME`).
    pub name: &'static str,
    /// Bitstream version written by this build; decoders accept `<=` this.
    pub version: u16,
    /// Whether decoding reproduces the input byte for byte. Lossless codecs get a hash of
    /// the original stored and verified by the container.
    pub lossless: bool,
    /// The kind of data it is made for.
    pub kind: Kind,
    /// One-line description for `--help` and `lcodec codecs`.
    pub description: &'static str,
}

/// How sure a codec is that it fits an input (higher wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Confidence(pub u8);

impl Confidence {
    /// Fallback: the codec can take anything (the `raw` codec).
    pub const FALLBACK: Confidence = Confidence(1);
    /// Guessed from the file name only.
    pub const EXTENSION: Confidence = Confidence(50);
    /// Content looks right (heuristics).
    pub const CONTENT: Confidence = Confidence(70);
    /// Magic bytes matched.
    pub const MAGIC: Confidence = Confidence(100);
}

/// Options for encoding.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// Quality level; meaning is per codec (higher = better / larger). `None` = codec default.
    pub quality: Option<u32>,
    /// Worker threads; 0 = all available cores.
    pub threads: usize,
    /// Target size of independently coded chunks, in bytes of original; `None` = codec default.
    pub chunk_size: Option<usize>,
    /// Codec-specific parameters (`-p key=value` on the command line).
    pub params: BTreeMap<String, String>,
    /// The original's file name (used for sniffing; stored only if `store_name`).
    pub file_name: Option<String>,
    /// Store `file_name` in the header.
    pub store_name: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            quality: None,
            threads: 0,
            chunk_size: None,
            params: BTreeMap::new(),
            file_name: None,
            store_name: false,
        }
    }
}

impl EncodeOptions {
    /// The effective thread count (resolves 0 to the number of cores).
    pub fn effective_threads(&self) -> usize {
        effective_threads(self.threads)
    }
    /// Reads a codec parameter, parsing it; errors name the key and the bad value.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the value does not parse.
    pub fn param<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>> {
        match self.params.get(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                Error::InvalidArgument(format!("parameter {key}={v:?} does not parse"))
            }),
        }
    }
}

/// Options for decoding.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Worker threads; 0 = all available cores.
    pub threads: usize,
    /// Verify chunk checksums and the hash of the original (default true).
    pub verify: bool,
    /// Limits applied to values read from the file.
    pub limits: Limits,
    /// Codec-specific parameters (e.g. `tensor=NAME` for random access).
    pub params: BTreeMap<String, String>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            threads: 0,
            verify: true,
            limits: Limits::default(),
            params: BTreeMap::new(),
        }
    }
}

impl DecodeOptions {
    /// The effective thread count (resolves 0 to the number of cores).
    pub fn effective_threads(&self) -> usize {
        effective_threads(self.threads)
    }
}

/// Resolves a thread count of 0 to the number of available cores.
pub fn effective_threads(threads: usize) -> usize {
    if threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        threads
    }
}

/// A codec: turns an original into chunk payloads and back.
///
/// # For implementations
/// - `encode` reads the whole original from `src`, calls [`ChunkSink::begin`] once with
///   the metadata and codec parameters (before the first chunk), then
///   [`ChunkSink::push`] for each chunk, in order. It never writes headers itself.
/// - `decode` gets the parsed [`Header`] and pulls chunks from `src` in order (or by
///   index when the source is seekable), writing the original to `dst`.
/// - Every value read from a payload is checked before use; malformed payloads return
///   [`Error::Malformed`] or [`Error::Codec`], never panic. Errors from `decode` are not
///   recoverable for that file; the caller should discard the partial output.
pub trait Codec: Send + Sync {
    /// Static identity of the codec.
    fn info(&self) -> &'static CodecInfo;

    /// How well the codec fits an input, from its first bytes and its file name.
    fn sniff(&self, head: &[u8], file_name: Option<&str>) -> Option<Confidence>;

    /// Encodes `src` into chunks.
    ///
    /// # Errors
    /// I/O errors from `src` or the sink, and input the codec cannot handle.
    fn encode(
        &self,
        src: &mut dyn Read,
        sink: &mut ChunkSink<'_>,
        opts: &EncodeOptions,
    ) -> Result<()>;

    /// Decodes the chunks of a file whose header is `header` into `dst`.
    ///
    /// # Errors
    /// Damaged or malformed input, I/O errors.
    fn decode(
        &self,
        header: &Header,
        src: &mut ChunkSource<'_>,
        dst: &mut dyn Write,
        opts: &DecodeOptions,
    ) -> Result<()>;

    /// Whether [`Codec::decode`] with `opts` writes something other than the original's
    /// bytes: one tensor of a file (`tensor=NAME`), or a point cloud or image converted to
    /// the format named by the `format` parameter (the CLI sets `format` to the extension
    /// of `-o`). The facade then skips the whole-file size and hash check; chunk checksums
    /// are still verified. The default is `false`: codecs ignore `format`.
    fn decodes_transformed(&self, header: &Header, opts: &DecodeOptions) -> bool {
        let _ = (header, opts);
        false
    }

    /// A one-line, human-readable account of the codec parameters in `header` (e.g. the
    /// quality level a file was coded at), for `lcodec info`; `None` (the default) when
    /// the codec has nothing to add or does not recognise them.
    fn describe(&self, header: &Header) -> Option<String> {
        let _ = header;
        None
    }
}

/// Decode parameter naming the wanted output format (a lower-case file extension without
/// the dot, e.g. `ply`); see [`Codec::decodes_transformed`].
pub const FORMAT_PARAM: &str = "format";

/// Lower-cased extension of a file name, if any.
pub fn extension(file_name: Option<&str>) -> Option<String> {
    let name = file_name?;
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let (_, ext) = base.rsplit_once('.')?;
    Some(ext.to_ascii_lowercase())
}
