//! lcodec-core: the `Codec` trait, the `.lc` container format, errors, limits and metadata
//! shared by every lcodec codec.
//!
//! Codecs never write container headers themselves: they receive a
//! [`ChunkSink`] to push chunk payloads into and a [`ChunkSource`] to read them back.
//! The format is specified in `FORMAT.md` beside this crate.
#![forbid(unsafe_code)]

mod codec;
pub mod container;
mod error;
mod limits;
pub mod parallel;

pub use codec::{
    effective_threads, extension, Codec, CodecId, CodecInfo, Confidence, DecodeOptions, EncodeOptions, Kind,
};
pub use container::{Chunk, ChunkEntry, ChunkSink, ChunkSource, Header, Metadata, ModelRef, Trailer};
pub use error::{ChecksumLocation, Error, Result};
pub use limits::{try_alloc_bytes, Limits};
