//! Link settings for the optional libtorch backend.
//!
//! * `torch`: add an rpath to `$LIBTORCH/lib` so binaries and tests find libtorch here.
//! * `cuda`: keep `libtorch_cuda.so` as a dependency (Rust links with `--as-needed`, which
//!   would drop it and make `tch::Cuda::is_available()` false). The CUDA libraries are not
//!   present on the build machine, hence `--allow-shlib-undefined`.
//!
//! The body is `torch-link.rs`, shared with codecs/image/build.rs.
include!("torch-link.rs");
