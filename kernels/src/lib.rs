//! lcodec-kernels: CPU compute kernels (convolution, transposed convolution, GDN,
//! activations) on `ndarray` + `rayon` for lcodec's learned codecs.
//!
//! Every kernel comes in two flavours, chosen by [`Mode`]:
//!
//! * [`Mode::Fast`]: im2col + a blocked SGEMM (`matrixmultiply`), parallel over tiles. Its
//!   result may depend on the CPU (FMA, SIMD width), so it is used only where the output
//!   affects quality, never probabilities (analysis / synthesis transforms).
//! * [`Mode::Deterministic`]: every output value is computed by one fixed sequential loop
//!   (fixed operation order, separate multiply and add — Rust never contracts `a * b + c`
//!   into an FMA unless `mul_add` is called — no reduction whose order depends on the
//!   thread count; work is split over output channels only). The bits are the same on any
//!   x86-64 / aarch64 CPU with any number of threads. Used for everything that feeds an
//!   entropy model (the hyper-synthesis transform of the image codec).
//!
//! Tensors are `[C, H, W]` (one image; batching is the caller's loop). Weight layouts
//! follow PyTorch: convolution `[out, in, kh, kw]`, transposed convolution
//! `[in, out, kh, kw]`, so weights trained with libtorch load unchanged.
//!
//! A scalar reference of each kernel lives in [`reference`]; the tests compare the fast
//! and deterministic paths against it.
//!
//! ```
//! use lcodec_kernels::{conv2d, Conv2dParams, Mode};
//! use ndarray::{Array3, Array4};
//! let x = Array3::<f32>::ones((3, 8, 8));
//! let w = Array4::<f32>::ones((4, 3, 5, 5));
//! let p = Conv2dParams { stride: 2, padding: 2 };
//! let y = conv2d(x.view(), w.view(), None, p, Mode::Fast);
//! assert_eq!(y.dim(), (4, 4, 4));
//! ```
// `deny`, not `forbid`: ndarray's `s![]` macro expands to an `#[allow(unsafe_code)]` item,
// which `forbid` rejects. This crate itself contains no unsafe code.
#![deny(unsafe_code)]

mod act;
mod conv;
mod gdn;
pub mod reference;

pub use act::{leaky_relu, leaky_relu_inplace, relu_inplace};
pub use conv::{
    Conv2dParams, ConvTranspose2dParams, conv_transpose2d, conv_transpose2d_output_size, conv2d,
    conv2d_output_size,
};
pub use gdn::gdn;

/// Which implementation a kernel uses; see the crate documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// im2col + SGEMM; fastest, bits may differ between CPUs.
    Fast,
    /// Fixed operation order, no FMA, thread-count independent: same bits everywhere.
    Deterministic,
}
