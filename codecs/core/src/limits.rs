//! Resource limits applied to every size or count read from untrusted input.

use crate::{Error, Result};

/// Upper bounds checked before any allocation sized by a value read from a file.
///
/// The defaults accept every file lcodec itself writes with default options while
/// keeping a hostile file from asking for more than a few GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest compressed chunk payload, in bytes.
    pub max_chunk_bytes: u64,
    /// Largest decoded chunk, in bytes.
    pub max_chunk_raw_bytes: u64,
    /// Largest number of chunks in one file.
    pub max_chunks: u64,
    /// Largest header (metadata + codec parameters), in bytes.
    pub max_header_bytes: u64,
    /// Largest single allocation a decoder may make from header values, in bytes.
    pub max_alloc: u64,
}

/// Default bound on a chunk's stored and decoded size (256 MiB); encoders refuse larger chunks.
pub const MAX_CHUNK_DEFAULT: u64 = 256 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Codecs write chunks of a few MiB; 256 MiB keeps a hostile chunk that
            // declares a huge decoded size from costing gigabytes.
            max_chunk_bytes: MAX_CHUNK_DEFAULT,
            max_chunk_raw_bytes: MAX_CHUNK_DEFAULT,
            max_chunks: 1 << 24,
            max_header_bytes: 64 << 20,
            max_alloc: 4 << 30,
        }
    }
}

impl Limits {
    /// Limits with no practical bound (trusted input only).
    pub fn none() -> Self {
        Limits {
            max_chunk_bytes: u64::MAX,
            max_chunk_raw_bytes: u64::MAX,
            max_chunks: u64::MAX,
            max_header_bytes: u64::MAX,
            max_alloc: u64::MAX,
        }
    }

    /// Errors with [`Error::Limit`] if `value > max`, naming `what`.
    pub fn check(value: u64, max: u64, what: &str) -> Result<()> {
        if value > max {
            Err(Error::Limit(format!("{what} is {value}, limit is {max}")))
        } else {
            Ok(())
        }
    }

    /// Checks an allocation of `bytes` against `max_alloc`.
    pub fn check_alloc(&self, bytes: u64, what: &str) -> Result<()> {
        Self::check(bytes, self.max_alloc, what)
    }
}

/// Allocates a zeroed `Vec<u8>` of `len` bytes after checking it against `limits`,
/// reporting allocation failure as an error instead of aborting.
///
/// # Errors
/// [`Error::Limit`] if `len` exceeds `limits.max_alloc` or the allocator refuses.
pub fn try_alloc_bytes(len: u64, limits: &Limits, what: &str) -> Result<Vec<u8>> {
    limits.check_alloc(len, what)?;
    let n = usize::try_from(len).map_err(|_| Error::Limit(format!("{what}: {len} bytes")))?;
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::Limit(format!("{what}: cannot allocate {len} bytes")))?;
    v.resize(n, 0);
    Ok(v)
}
