//! Link settings for the optional libtorch backend: the same as the models crate's
//! (`models/torch-link.rs`; see the docs in `models/build.rs`).
include!("../../models/torch-link.rs");
