//! The learned range predictor: a small MLP evaluated in integer arithmetic.
//!
//! For a point predicted from its ring predecessor `W` (scan-order rings, see
//! [`crate::geom`]), the MLP reads [`FEATURES`] causal features computed from decoded
//! points only, in quantization units: this ring's last two range steps, the ring
//! above's range change between `W`'s azimuth and the predicted one, the ring above's
//! offset from `W` and its two neighbouring range steps, `W`'s range / 64, two
//! availability flags, `W`'s elevation slope `1024 z / range` and the predicted
//! half-step flag. Its first output is a correction added to the predicted range (`W`'s
//! range), in quantization units. Its second output is the height `h` of the laser's
//! origin: the height is predicted as `h + (z_W - h) · range / range_W` (constant
//! elevation seen from the laser, not from the sensor frame's origin) instead of
//! `z_W · range / range_W`. On KITTI the network learns `h` per laser from the
//! elevation slope (about 0.1–0.35 m).
//!
//! **Arithmetic.** The network was trained in floating point on features `x / 256` and
//! targets `residual / 256`. Weights are stored as integers `round(w · 2^10)` (at most
//! 2^15 in magnitude), biases as `round(b · 2^18)`; inference keeps activations in fixed
//! point with 8 fractional bits: `h = min(2^15, max(0, (W·x + b + 2^9) >> 10))` per
//! hidden layer and `(W·h + b + 2^9) >> 10` for the outputs, in wrapping `i32`
//! arithmetic with inputs clamped to ±[`CLAMP`], so results are identical on every
//! machine (no floating point at all).
//!
//! Weights are a safetensors file (tensors `w1 [16, F]`, `b1 [16]`, `w2 [16, 16]`,
//! `b2 [16]`, `w3 [2, 16]`, `b3 [2]`, dtype I32; metadata `lcodec.arch` = [`ARCH`]);
//! the shipped one is `models/weights/lidar-mlp-v1.safetensors`, embedded in the
//! binary; its XXH3-128 is recorded in the `.lc` header of files that use it.

use lcodec_core::{Error, Result};
use safetensors::{Dtype, SafeTensors};

/// Number of input features.
pub const FEATURES: usize = 11;
/// Largest input magnitude (quantization units).
pub const CLAMP: i64 = 2048;
/// Architecture tag in the weights' metadata.
pub const ARCH: &str = "lidar-range-height-mlp-v1";
/// Fractional bits of the weights.
pub const WEIGHT_BITS: u32 = 10;
/// Fractional bits of activations (features and targets are in units of `2^-8`... of
/// the network's float scale: `x_int = 256 · x_float`).
pub const ACT_BITS: u32 = 8;
/// Activation clamp.
const ACT_MAX: i32 = (1 << 15) - 1;
/// Width of both hidden layers.
pub const HIDDEN: usize = 16;

/// A quantized MLP `FEATURES → 16 → 16 → 2` with ReLU hidden layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mlp {
    // Input-major 16-bit weights of the hidden layers (`w[input][output]`: each input
    // updates all 16 outputs side by side, which vectorises without reordering sums),
    // and the output rows.
    w1: [[i16; HIDDEN]; FEATURES],
    b1: [i32; HIDDEN],
    w2: [[i16; HIDDEN]; HIDDEN],
    b2: [i32; HIDDEN],
    w3: [[i16; HIDDEN]; OUTPUTS],
    b3: [i32; OUTPUTS],
    // The row-major weights as given, for serialisation.
    raw: [Vec<i64>; 6],
}

/// Number of outputs: the range correction and the height offset.
pub const OUTPUTS: usize = 2;

/// What the network's outputs mean, in quantization units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prediction {
    /// Correction of the predicted range (within ±[`CLAMP`]).
    pub correction: i64,
    /// Height of the laser's origin `h` (within ±[`CLAMP`]): the height prediction
    /// becomes `h + (z_W - h) · range / range_W` instead of `z_W · range / range_W`.
    pub height: i64,
}

/// One hidden layer: `min(2^15 - 1, max(0, (W·x + b + 2^9) >> 10))` with input-major
/// weights `w[input][output]`, all outputs accumulated side by side (vectorises).
#[inline]
fn layer<const N: usize>(w: &[[i16; HIDDEN]; N], b: &[i32; HIDDEN], x: &[i16; N]) -> [i16; HIDDEN] {
    let mut acc = *b;
    for (row, &v) in w.iter().zip(x) {
        let v = i32::from(v);
        for (a, &wi) in acc.iter_mut().zip(row) {
            *a = a.wrapping_add(i32::from(wi) * v);
        }
    }
    acc.map(|s| shift_round(s).clamp(0, ACT_MAX) as i16)
}

/// Dot product of 16-bit vectors in wrapping `i32` (exact for the network's bounds:
/// weights and activations below 2^15 in magnitude, 16 terms).
#[inline]
fn dot(w: &[i16; HIDDEN], x: &[i16; HIDDEN]) -> i32 {
    let mut s = 0i32;
    for (a, b) in w.iter().zip(x) {
        s = s.wrapping_add(i32::from(*a) * i32::from(*b));
    }
    s
}

#[inline]
fn shift_round(v: i32) -> i32 {
    v.wrapping_add(1 << (WEIGHT_BITS - 1)) >> WEIGHT_BITS
}

impl Mlp {
    /// Builds a network from integer weights (row-major `[out, in]` matrices); `h1` and
    /// `h2` must be [`HIDDEN`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the shapes disagree, a weight exceeds ±(2^15 - 1) or a
    /// bias ±2^28.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        h1: usize,
        h2: usize,
        w1: Vec<i64>,
        b1: Vec<i64>,
        w2: Vec<i64>,
        b2: Vec<i64>,
        w3: Vec<i64>,
        b3: [i64; OUTPUTS],
    ) -> Result<Mlp> {
        let ok = h1 == HIDDEN
            && h2 == HIDDEN
            && w1.len() == h1 * FEATURES
            && b1.len() == h1
            && w2.len() == h2 * h1
            && b2.len() == h2
            && w3.len() == OUTPUTS * h2;
        let big = |v: &i64| v.abs() >= 1 << 15;
        let big_b = |v: &i64| v.abs() > 1 << 28;
        if !ok
            || w1.iter().chain(&w2).chain(&w3).any(big)
            || b1.iter().chain(&b2).any(big_b)
            || b3.iter().any(big_b)
        {
            return Err(Error::InvalidArgument(
                "lidar MLP: bad shapes or weights out of range".into(),
            ));
        }
        // In range for i32 (checked above).
        let c = |v: i64| v as i32;
        let h = |v: i64| v as i16;
        let mut m = Mlp {
            w1: [[0; HIDDEN]; FEATURES],
            b1: [0; HIDDEN],
            w2: [[0; HIDDEN]; HIDDEN],
            b2: [0; HIDDEN],
            w3: [[0; HIDDEN]; OUTPUTS],
            b3: b3.map(c),
            raw: [w1, b1, w2, b2, w3, b3.to_vec()],
        };
        for i in 0..HIDDEN {
            for j in 0..FEATURES {
                m.w1[j][i] = h(m.raw[0][i * FEATURES + j]);
            }
            for j in 0..HIDDEN {
                m.w2[j][i] = h(m.raw[2][i * HIDDEN + j]);
            }
            m.b1[i] = c(m.raw[1][i]);
            m.b2[i] = c(m.raw[3][i]);
            for k in 0..OUTPUTS {
                m.w3[k][i] = h(m.raw[4][k * HIDDEN + i]);
            }
        }
        Ok(m)
    }

    /// Parses a weights file (see the module docs).
    ///
    /// # Errors
    /// [`Error::Malformed`] for a file that is not such a network.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Mlp> {
        let bad = |m: String| Error::malformed(0, format!("lidar MLP weights: {m}"));
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
        let arch = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("lcodec.arch").cloned());
        if arch.as_deref() != Some(ARCH) {
            return Err(bad(format!("architecture {arch:?}, expected {ARCH}")));
        }
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
        let get = |name: &str| -> Result<(Vec<usize>, Vec<i64>)> {
            let t = st.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
            if t.dtype() != Dtype::I32 {
                return Err(bad(format!("{name}: dtype {:?}, expected I32", t.dtype())));
            }
            let v = t
                .data()
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect();
            Ok((t.shape().to_vec(), v))
        };
        let (s1, w1) = get("w1")?;
        let (_, b1) = get("b1")?;
        let (s2, w2) = get("w2")?;
        let (_, b2) = get("b2")?;
        let (_, w3) = get("w3")?;
        let (_, b3) = get("b3")?;
        if s1.len() != 2 || s2.len() != 2 || s1[1] != FEATURES || b3.len() != OUTPUTS {
            return Err(bad(format!("shapes {s1:?} {s2:?}")));
        }
        Mlp::new(s1[0], s2[0], w1, b1, w2, b2, w3, [b3[0], b3[1]]).map_err(|e| bad(e.to_string()))
    }

    /// Serialises the network as a safetensors file (deterministic bytes).
    ///
    /// # Errors
    /// Serialisation errors (none in practice).
    pub fn to_safetensors(&self, extra_meta: &[(&str, String)]) -> Result<Vec<u8>> {
        use safetensors::tensor::TensorView;
        let as_bytes = |v: &[i64]| -> Vec<u8> {
            v.iter()
                .flat_map(|&x| {
                    (x.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32).to_le_bytes()
                })
                .collect()
        };
        let r = &self.raw;
        let data: Vec<(&str, Vec<usize>, Vec<u8>)> = vec![
            ("w1", vec![HIDDEN, FEATURES], as_bytes(&r[0])),
            ("b1", vec![HIDDEN], as_bytes(&r[1])),
            ("w2", vec![HIDDEN, HIDDEN], as_bytes(&r[2])),
            ("b2", vec![HIDDEN], as_bytes(&r[3])),
            ("w3", vec![OUTPUTS, HIDDEN], as_bytes(&r[4])),
            ("b3", vec![OUTPUTS], as_bytes(&r[5])),
        ];
        let views: Vec<(String, TensorView<'_>)> = data
            .iter()
            .map(|(n, s, d)| {
                TensorView::new(Dtype::I32, s.clone(), d)
                    .map(|v| (n.to_string(), v))
                    .map_err(|e| Error::InvalidArgument(e.to_string()))
            })
            .collect::<Result<_>>()?;
        let mut meta = std::collections::HashMap::new();
        meta.insert("lcodec.arch".to_string(), ARCH.to_string());
        for (k, v) in extra_meta {
            meta.insert((*k).to_string(), v.clone());
        }
        safetensors::serialize(views, Some(meta)).map_err(|e| Error::InvalidArgument(e.to_string()))
    }

    /// Evaluates the network on integer features (quantization units). All sums are
    /// wrapping `i32` (deterministic everywhere; the weight bounds keep them in range
    /// for inputs within ±[`CLAMP`]).
    #[inline]
    pub fn eval(&self, x: &[i64; FEATURES]) -> Prediction {
        let mut xi = [0i16; FEATURES];
        for (d, &v) in xi.iter_mut().zip(x) {
            *d = v.clamp(-CLAMP, CLAMP) as i16;
        }
        let a = layer(&self.w1, &self.b1, &xi);
        let h = layer(&self.w2, &self.b2, &a);
        let mut out = self.b3;
        for (o, row) in out.iter_mut().zip(&self.w3) {
            *o = o.wrapping_add(dot(row, &h));
        }
        Prediction {
            correction: i64::from(shift_round(out[0])).clamp(-CLAMP, CLAMP),
            height: i64::from(shift_round(out[1])).clamp(-CLAMP, CLAMP),
        }
    }
}

/// How the codec uses the shipped network: both outputs.
pub const LEARNED: crate::geom::Learned = crate::geom::Learned {
    correct: true,
    height: true,
};

/// The shipped weights file (`models/weights/lidar-mlp-v1.safetensors`).
pub const SHIPPED: &[u8] = include_bytes!("../../../models/weights/lidar-mlp-v1.safetensors");
/// Model id recorded in `.lc` headers of files coded with the shipped network.
pub const MODEL_ID: &str = "lidar-mlp-v1";

/// XXH3-128 of the shipped weights file (big-endian bytes), recorded in `.lc` headers.
pub fn shipped_hash() -> [u8; 16] {
    xxhash_rust::xxh3::xxh3_128(SHIPPED).to_be_bytes()
}

/// The shipped network, parsed once.
///
/// # Errors
/// Never for the shipped file (a test parses it).
pub fn shipped() -> Result<&'static Mlp> {
    static NET: std::sync::OnceLock<std::result::Result<Mlp, String>> = std::sync::OnceLock::new();
    NET.get_or_init(|| Mlp::from_safetensors(SHIPPED).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::codec("lidar", e.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_weights_parse() {
        let m = shipped().expect("shipped weights");
        let y = m.eval(&[0; FEATURES]);
        assert!(y.correction.abs() < 100);
        // Weights must fit 16 bits, shapes must match.
        let w = |n: usize, v: i64| vec![v; n];
        let h = HIDDEN;
        let ok = Mlp::new(
            h,
            h,
            w(h * FEATURES, 1),
            w(h, 0),
            w(h * h, 1),
            w(h, 0),
            w(2 * h, 1),
            [0, 0],
        );
        assert!(ok.is_ok());
        let big = Mlp::new(
            h,
            h,
            w(h * FEATURES, 1 << 15),
            w(h, 0),
            w(h * h, 1),
            w(h, 0),
            w(2 * h, 1),
            [0, 0],
        );
        assert!(big.is_err());
        let shape = Mlp::new(
            8,
            8,
            w(8 * FEATURES, 1),
            w(8, 0),
            w(64, 1),
            w(8, 0),
            w(16, 1),
            [0, 0],
        );
        assert!(shape.is_err());
    }

    #[test]
    fn safetensors_round_trip_and_eval() {
        let h1 = HIDDEN;
        let h2 = HIDDEN;
        let w1: Vec<i64> = (0..h1 * FEATURES)
            .map(|i| (i as i64 * 37) % 200 - 100)
            .collect();
        let b1: Vec<i64> = (0..h1 as i64).map(|i| i * 1000 - 7000).collect();
        let w2: Vec<i64> = (0..h2 * h1).map(|i| (i as i64 * 53) % 300 - 150).collect();
        let b2: Vec<i64> = (0..h2 as i64).map(|i| 3 - i).collect();
        let w3: Vec<i64> = (0..2 * h2 as i64).map(|i| i * 64 - 900).collect();
        let m = Mlp::new(h1, h2, w1, b1, w2, b2, w3, [4096, 77]).expect("mlp");
        let bytes = m.to_safetensors(&[]).expect("ser");
        let back = Mlp::from_safetensors(&bytes).expect("parse");
        assert_eq!(back, m);
        let x = [100, -50, 3000, 7, 0, 0, 1250, 256, 256, -90, 0];
        let y = m.eval(&x);
        assert_eq!(y, back.eval(&x));
        assert!(y.correction.abs() <= CLAMP && y.height.abs() <= CLAMP);
        assert!(Mlp::from_safetensors(&bytes[..bytes.len() - 3]).is_err());
        assert!(Mlp::from_safetensors(b"not a weights file").is_err());
    }
}
