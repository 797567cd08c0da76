//! lcodec-entropy: entropy coders and deterministic probability models over `constriction`.
#![forbid(unsafe_code)]
