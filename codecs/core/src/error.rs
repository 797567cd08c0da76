//! The error type shared by every lcodec library crate.

use std::fmt;

/// Result alias used across lcodec.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while encoding or decoding.
///
/// Variants are split by what a caller can do about them: `Io` (retry / check the
/// device), `Malformed` / `Checksum` / `Truncated` (the input is damaged or not an
/// `.lc` file), `Unsupported` (a newer format or a codec not built in), `Limit` (raise
/// [`crate::Limits`] if the input is trusted), `InvalidArgument` (a bug in the caller),
/// `ModelMismatch` (decode with the weights the file names).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error from the underlying reader or writer.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The input ended before a complete structure was read.
    #[error("offset {offset}: truncated: expected {what}")]
    Truncated {
        /// Byte offset in the stream where more data was expected.
        offset: u64,
        /// What was expected there.
        what: String,
    },
    /// A structure was read but its contents are invalid.
    #[error("offset {offset}: {what}")]
    Malformed {
        /// Byte offset of the offending structure.
        offset: u64,
        /// What is wrong, with the value found and the value expected.
        what: String,
    },
    /// A checksum did not match: the data was damaged.
    #[error("{location}: checksum mismatch")]
    Checksum {
        /// Which part failed, e.g. `chunk 3 (offset 81920)` or `header`.
        location: ChecksumLocation,
    },
    /// Valid input this build cannot handle (newer version, codec not compiled in, ...).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A size or count exceeds the configured [`crate::Limits`].
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// The caller passed an invalid argument or option.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The file was made with a model or weights this decoder does not have.
    #[error("model mismatch: file needs {expected}, this build has {found}")]
    ModelMismatch {
        /// The model id / weights hash stored in the file.
        expected: String,
        /// What this decoder has.
        found: String,
    },
    /// A codec-specific failure that does not fit the other variants.
    #[error("{codec}: {message}")]
    Codec {
        /// The codec's name.
        codec: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// Where a checksum failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChecksumLocation {
    /// The container header.
    Header,
    /// A chunk payload.
    Chunk {
        /// Zero-based chunk index.
        index: u64,
        /// Byte offset of the chunk record in the file.
        offset: u64,
    },
    /// The trailer (chunk table).
    Trailer,
    /// The hash of the decoded original (lossless codecs).
    Original,
}

impl fmt::Display for ChecksumLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChecksumLocation::Header => write!(f, "header"),
            ChecksumLocation::Chunk { index, offset } => {
                write!(f, "chunk {index} (offset {offset})")
            }
            ChecksumLocation::Trailer => write!(f, "trailer"),
            ChecksumLocation::Original => write!(f, "decoded data (hash of the original)"),
        }
    }
}

impl Error {
    /// Shorthand for [`Error::Malformed`].
    pub fn malformed(offset: u64, what: impl Into<String>) -> Self {
        Error::Malformed {
            offset,
            what: what.into(),
        }
    }
    /// Shorthand for [`Error::Truncated`].
    pub fn truncated(offset: u64, what: impl Into<String>) -> Self {
        Error::Truncated {
            offset,
            what: what.into(),
        }
    }
    /// Shorthand for [`Error::Codec`].
    pub fn codec(codec: &'static str, message: impl Into<String>) -> Self {
        Error::Codec {
            codec,
            message: message.into(),
        }
    }
}
