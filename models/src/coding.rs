//! Entropy coding of the latents (`ẑ`, then `y` given its predicted means and scales) with
//! `lcodec-entropy`: the payload of the image codec's image chunk. Lives here so the
//! training command can measure the real bitstream; `lcodec-image` wraps it.
//!
//! Stream: `ẑ` (channel-major, row-major) under the model's integer factorized tables,
//! then `q = ⌊y - μ⌉` under the fixed quantized Gaussian tables at
//! `scale_index(max(σ, 0.11))`. Mean-scale models: `(μ, σ) = h_s(ẑ)`, all of `y`
//! channel-major. Context models: the steps of
//! [`context_steps`](crate::hyperprior::context_steps) in order, each step's channels
//! channel-major, row-major at its positions; checkerboard models: every anchor, then
//! every non-anchor with parameters that also depend on the decoded anchors; the
//! channel-group variant: the anchors group by group, then the non-anchors group by group,
//! each step conditioned on everything before it. All parameters come from the
//! deterministic kernels.

use crate::hyperprior::{ContextStep, MeanScaleHyperprior, SCALE_BOUND, is_anchor};
use lcodec_core::{Error, Result};
use lcodec_entropy::{Categorical, Decode, Encode, Family, RangeDecoder, RangeEncoder, tables};
use ndarray::Array3;

fn ent(e: lcodec_entropy::Error) -> Error {
    Error::codec("image", e.to_string())
}

/// The Gaussian table for a predicted scale (bounded below like in training).
fn table_for(g: &lcodec_entropy::FamilyTables, scale: f32) -> &lcodec_entropy::QuantizedCdf {
    let s = if scale.is_nan() {
        SCALE_BOUND
    } else {
        scale.abs().max(SCALE_BOUND)
    };
    g.nearest(f64::from(s))
}

/// A model with the coding tables of its factorized prior.
pub struct LatentCoder<'a> {
    model: &'a MeanScaleHyperprior,
    z_models: Vec<Categorical>,
}

impl<'a> LatentCoder<'a> {
    /// Builds the coding tables of `model`.
    ///
    /// # Errors
    /// When a frequency table is invalid (cannot happen for a loaded model).
    pub fn new(model: &'a MeanScaleHyperprior) -> Result<Self> {
        let z_models = model
            .z_tables()
            .freqs
            .iter()
            .map(|f| {
                let counts: Vec<u64> = f.iter().map(|&v| u64::from(v)).collect();
                Categorical::from_counts(&counts).map_err(ent)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { model, z_models })
    }

    /// Codes the analysis outputs `y` `[M, h, w]` and `z` `[N, h/4, w/4]`: returns the
    /// payload and the `ŷ` the decoder will reconstruct (exactly).
    ///
    /// # Errors
    /// Shape mismatch with the model, or an entropy-coder failure.
    pub fn encode(&self, y: &Array3<f32>, z: &Array3<f32>) -> Result<(Vec<u8>, Array3<f32>)> {
        let m = self.model;
        let zt = m.z_tables();
        if z.dim().0 != zt.offsets.len() {
            return Err(Error::InvalidArgument(format!(
                "z has {} channels",
                z.dim().0
            )));
        }
        // ẑ = round(z) clamped into each channel's table range.
        let mut z_hat = z.mapv(f32::round);
        for (c, mut plane) in z_hat.outer_iter_mut().enumerate() {
            let lo = zt.offsets[c] as f32;
            let hi = (zt.offsets[c] + zt.freqs[c].len() as i32 - 1) as f32;
            plane.mapv_inplace(|v| if v.is_nan() { lo } else { v.clamp(lo, hi) });
        }
        let mut enc = RangeEncoder::new();
        for (c, plane) in z_hat.outer_iter().enumerate() {
            for &v in plane.iter() {
                let sym = (v as i32 - zt.offsets[c]) as usize;
                enc.encode(sym, &self.z_models[c]).map_err(ent)?;
            }
        }
        let mut y_hat = Array3::<f32>::zeros(y.dim());
        let (_, h, w) = y.dim();
        let mut pass = |means: &Array3<f32>,
                        scales: &Array3<f32>,
                        step: Option<ContextStep>,
                        y_hat: &mut Array3<f32>|
         -> Result<()> {
            let (c0, len) = step.map_or((0, y.dim().0), |s| (s.start, s.len));
            if means.dim() != (len, h, w) || c0 + len > y.dim().0 {
                return Err(Error::InvalidArgument(format!(
                    "y is {:?}, the hyperprior predicts {:?}",
                    y.dim(),
                    means.dim()
                )));
            }
            let gauss = tables(Family::Gaussian);
            for ((c, r, col), &mu) in means.indexed_iter() {
                if step.is_some_and(|s| is_anchor(r, col) != s.anchors) {
                    continue;
                }
                let (yv, sc) = (y[[c0 + c, r, col]], scales[[c, r, col]]);
                // Values beyond ±1e9 cannot occur for a sane model; clamp anyway (NaN -> 0).
                let q = if (yv - mu).is_nan() {
                    0
                } else {
                    (yv - mu).round().clamp(-1e9, 1e9) as i32
                };
                enc.encode_integer(q, table_for(gauss, sc)).map_err(ent)?;
                y_hat[[c0 + c, r, col]] = q as f32 + mu;
            }
            Ok(())
        };
        if m.config().arch.has_context() {
            let hyper = m.hyper_params(z_hat.view())?;
            m.run_context_steps(hyper.view(), &mut y_hat, |st, mu, sc, yh| {
                pass(mu, sc, Some(st), yh)
            })?;
        } else {
            let (means, scales) = m.hyper_synthesis(z_hat.view())?;
            pass(&means, &scales, None, &mut y_hat)?;
        }
        Ok((enc.finish(), y_hat))
    }

    /// Decodes a payload to `ŷ`, with `ẑ` of `zh` x `zw` (the padded image / 64).
    ///
    /// # Errors
    /// [`Error::Codec`] for a damaged payload.
    pub fn decode(&self, payload: &[u8], zh: usize, zw: usize) -> Result<Array3<f32>> {
        let m = self.model;
        let zt = m.z_tables();
        let mut dec = RangeDecoder::new(payload).map_err(ent)?;
        let mut z_hat = Array3::<f32>::zeros((m.config().n, zh, zw));
        for (c, mut plane) in z_hat.outer_iter_mut().enumerate() {
            for v in plane.iter_mut() {
                let sym = dec.decode(&self.z_models[c]).map_err(ent)?;
                *v = (zt.offsets[c] + sym as i32) as f32;
            }
        }
        let mut pass = |means: &Array3<f32>,
                        scales: &Array3<f32>,
                        step: Option<ContextStep>,
                        y_hat: &mut Array3<f32>|
         -> Result<()> {
            let gauss = tables(Family::Gaussian);
            let c0 = step.map_or(0, |s| s.start);
            for ((c, r, col), &mu) in means.indexed_iter() {
                if step.is_some_and(|s| is_anchor(r, col) != s.anchors) {
                    continue;
                }
                let sc = scales[[c, r, col]];
                let q = dec.decode_integer(table_for(gauss, sc)).map_err(ent)?;
                y_hat[[c0 + c, r, col]] = q as f32 + mu;
            }
            Ok(())
        };
        let y_hat = if m.config().arch.has_context() {
            let hyper = m.hyper_params(z_hat.view())?;
            let (_, h, w) = hyper.dim();
            let mut y_hat = Array3::<f32>::zeros((m.config().m, h, w));
            m.run_context_steps(hyper.view(), &mut y_hat, |st, mu, sc, yh| {
                pass(mu, sc, Some(st), yh)
            })?;
            y_hat
        } else {
            let (means, scales) = m.hyper_synthesis(z_hat.view())?;
            let mut y_hat = Array3::<f32>::zeros(means.dim());
            pass(&means, &scales, None, &mut y_hat)?;
            y_hat
        };
        dec.finish().map_err(ent)?;
        Ok(y_hat)
    }
}
