//! lcodec-models: network definitions, weight loading and training for the learned codecs.
#![forbid(unsafe_code)]
