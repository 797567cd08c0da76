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
    Codec, CodecId, CodecInfo, Confidence, DecodeOptions, EncodeOptions, FORMAT_PARAM, Kind,
    effective_threads, extension,
};
pub use container::{
    Chunk, ChunkEntry, ChunkSink, ChunkSource, Header, Metadata, ModelRef, Trailer,
};
pub use error::{ChecksumLocation, Error, Result};
pub use limits::{Limits, MAX_CHUNK_DEFAULT, try_alloc_bytes};
