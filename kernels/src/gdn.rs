//! Generalized divisive normalization (Ballé, Laparra, Simoncelli, "Density modeling of
//! images using a generalized normalization transformation", ICLR 2016, eq. 1 with
//! alpha = 2, epsilon = 1/2, as used by Ballé et al. 2018 and CompressAI):
//!
//! `GDN:  y_c = x_c / sqrt(beta_c + sum_j gamma[c, j] * x_j^2)`
//! `IGDN: y_c = x_c * sqrt(beta_c + sum_j gamma[c, j] * x_j^2)`

use crate::Mode;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;

/// GDN (or inverse GDN when `inverse`) of `x: [C, H, W]` with `beta: [C]` and
/// `gamma: [C, C]` (the effective, already non-negative parameters).
///
/// In [`Mode::Deterministic`] the sum over `j` runs in index order with separate multiply
/// and add, then `beta` is added; `sqrt` is correctly rounded by IEEE 754.
///
/// # Panics
/// If `beta` or `gamma` do not match the channel count.
pub fn gdn(
    x: ArrayView3<'_, f32>,
    beta: &[f32],
    gamma: ArrayView2<'_, f32>,
    inverse: bool,
    mode: Mode,
) -> Array3<f32> {
    let (c, h, w) = x.dim();
    assert_eq!(
        beta.len(),
        c,
        "gdn: beta has {} entries, input {c} channels",
        beta.len()
    );
    assert_eq!(
        gamma.dim(),
        (c, c),
        "gdn: gamma shape {:?} != ({c}, {c})",
        gamma.dim()
    );
    let n = h * w;
    let x = x.as_standard_layout();
    let xm = match x.view().into_shape_with_order((c, n)) {
        Ok(v) => v,
        Err(_) => unreachable!("standard layout reshapes"),
    };
    let x2 = xm.mapv(|v| v * v);
    let mut norm = Array2::<f32>::zeros((c, n));
    match mode {
        Mode::Fast => {
            let chunk = n.div_ceil(4 * rayon::current_num_threads()).max(256);
            let mut parts: Vec<_> = norm
                .axis_chunks_iter_mut(Axis(1), chunk)
                .zip(x2.axis_chunks_iter(Axis(1), chunk))
                .collect();
            parts.par_iter_mut().for_each(|(dst, src)| {
                general_mat_mul(1.0, &gamma, src, 0.0, dst);
            });
        }
        Mode::Deterministic => {
            let x2s = match x2.as_slice() {
                Some(v) => v,
                None => unreachable!("fresh array"),
            };
            let mut rows: Vec<_> = norm.axis_iter_mut(Axis(0)).enumerate().collect();
            rows.par_iter_mut().for_each(|(ci, row)| {
                let mut acc = vec![0.0f32; n];
                for j in 0..c {
                    let g = gamma[[*ci, j]];
                    for (a, &v) in acc.iter_mut().zip(&x2s[j * n..(j + 1) * n]) {
                        *a += g * v;
                    }
                }
                for (d, a) in row.iter_mut().zip(acc) {
                    *d = a;
                }
            });
        }
    }
    let mut out = Array2::<f32>::zeros((c, n));
    for (ci, &b) in beta.iter().enumerate() {
        let xr = xm.row(ci);
        let nr = norm.row(ci);
        let mut orow = out.row_mut(ci);
        for ((o, &xv), &nv) in orow.iter_mut().zip(xr.iter()).zip(nr.iter()) {
            let d = (nv + b).sqrt();
            *o = if inverse { xv * d } else { xv / d };
        }
    }
    match out.into_shape_with_order((c, h, w)) {
        Ok(v) => v,
        Err(_) => unreachable!("fresh array reshapes"),
    }
}
