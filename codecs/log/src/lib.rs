//! lcodec-log: the log codec (work in progress: not yet selectable).
#![forbid(unsafe_code)]

use std::io::{Read, Write};

use lcodec_core::container::{ChunkSink, ChunkSource, Header};
use lcodec_core::{Codec, CodecId, CodecInfo, Confidence, DecodeOptions, EncodeOptions, Error, Kind, Result};

static INFO: CodecInfo = CodecInfo {
    id: CodecId::LOG,
    name: "log",
    version: 1,
    lossless: true,
    kind: Kind::Log,
    description: "log codec (not implemented yet)",
};

/// The log codec.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogCodec;

impl Codec for LogCodec {
    fn info(&self) -> &'static CodecInfo {
        &INFO
    }
    fn sniff(&self, _head: &[u8], _file_name: Option<&str>) -> Option<Confidence> {
        None
    }
    fn encode(&self, _src: &mut dyn Read, _sink: &mut ChunkSink<'_>, _opts: &EncodeOptions) -> Result<()> {
        Err(Error::Unsupported("the log codec is not implemented yet".into()))
    }
    fn decode(&self, _h: &Header, _src: &mut ChunkSource<'_>, _dst: &mut dyn Write, _o: &DecodeOptions) -> Result<()> {
        Err(Error::Unsupported("the log codec is not implemented yet".into()))
    }
}
