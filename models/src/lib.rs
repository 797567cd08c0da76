//! lcodec-models: network definitions, weight loading and training for lcodec's learned
//! codecs.
//!
//! * [`hyperprior`]: the mean-scale hyperprior image model on the pure-Rust CPU kernels
//!   (default build, no libtorch).
//! * [`coding`]: entropy coding of the latents (the image codec's payload).
//! * [`weights`]: safetensors reading/writing with shape checks, f16 storage, weight hashes.
//! * `torch` (feature `torch`): the same networks in `tch` for training and GPU inference,
//!   and the `lcodec-train` command (see `models/TRAINING.md`).
//!
//! ```
//! use lcodec_models::hyperprior::{HyperpriorConfig, MeanScaleHyperprior, random_weights};
//! let cfg = HyperpriorConfig { n: 8, m: 12, lambdas: vec![0.01], arch: Default::default() };
//! let bytes = random_weights(&cfg, 1).unwrap();
//! let model = MeanScaleHyperprior::from_bytes(&bytes).unwrap();
//! let x = ndarray::Array3::<f32>::zeros((3, 64, 64));
//! let y = model.analysis(x.view(), 0).unwrap();
//! assert_eq!(y.dim(), (12, 4, 4));
//! ```
// `deny`, not `forbid`: ndarray's `s![]` macro expands to an `#[allow(unsafe_code)]` item.
#![deny(unsafe_code)]

pub mod coding;
pub mod hyperprior;
pub mod weights;

#[cfg(feature = "torch")]
pub mod torch;
