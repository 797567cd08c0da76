//! Scalar reference kernels: straight from the definitions, `f64` accumulation, no
//! tiling, no parallelism. Slow; used by tests to check the fast and deterministic paths.

use crate::{
    Conv2dParams, ConvTranspose2dParams, conv_transpose2d_output_size, conv2d_output_size,
};
use ndarray::{Array3, ArrayView2, ArrayView3, ArrayView4};

/// Reference cross-correlation: `out[o,y,x] = b[o] + sum x[i, y*s+ky-p, x*s+kx-p] * w[o,i,ky,kx]`.
pub fn conv2d(
    x: ArrayView3<'_, f32>,
    w: ArrayView4<'_, f32>,
    bias: Option<&[f32]>,
    p: Conv2dParams,
) -> Array3<f32> {
    let (c, h, wd) = x.dim();
    let (o, _, kh, kw) = w.dim();
    let ho = conv2d_output_size(h, kh, p);
    let wo = conv2d_output_size(wd, kw, p);
    Array3::from_shape_fn((o, ho, wo), |(oc, oy, ox)| {
        let mut acc = bias.map_or(0.0, |b| f64::from(b[oc]));
        for i in 0..c {
            for ky in 0..kh {
                for kx in 0..kw {
                    let iy = (oy * p.stride + ky) as isize - p.padding as isize;
                    let ix = (ox * p.stride + kx) as isize - p.padding as isize;
                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                        acc += f64::from(x[[i, iy as usize, ix as usize]])
                            * f64::from(w[[oc, i, ky, kx]]);
                    }
                }
            }
        }
        acc as f32
    })
}

/// Reference transposed convolution as a scatter:
/// `out[o, iy*s+ky-p, ix*s+kx-p] += x[i,iy,ix] * w[i,o,ky,kx]`.
pub fn conv_transpose2d(
    x: ArrayView3<'_, f32>,
    w: ArrayView4<'_, f32>,
    bias: Option<&[f32]>,
    p: ConvTranspose2dParams,
) -> Array3<f32> {
    let (c, h, wd) = x.dim();
    let (_, o, kh, kw) = w.dim();
    let ho = conv_transpose2d_output_size(h, kh, p);
    let wo = conv_transpose2d_output_size(wd, kw, p);
    let mut acc = ndarray::Array3::<f64>::zeros((o, ho, wo));
    for i in 0..c {
        for iy in 0..h {
            for ix in 0..wd {
                let xv = f64::from(x[[i, iy, ix]]);
                for oc in 0..o {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let oy = (iy * p.stride + ky) as isize - p.padding as isize;
                            let ox = (ix * p.stride + kx) as isize - p.padding as isize;
                            if oy >= 0 && ox >= 0 && (oy as usize) < ho && (ox as usize) < wo {
                                acc[[oc, oy as usize, ox as usize]] +=
                                    xv * f64::from(w[[i, oc, ky, kx]]);
                            }
                        }
                    }
                }
            }
        }
    }
    Array3::from_shape_fn((o, ho, wo), |(oc, y, xx)| {
        (acc[[oc, y, xx]] + bias.map_or(0.0, |b| f64::from(b[oc]))) as f32
    })
}

/// Reference GDN / IGDN.
pub fn gdn(
    x: ArrayView3<'_, f32>,
    beta: &[f32],
    gamma: ArrayView2<'_, f32>,
    inverse: bool,
) -> Array3<f32> {
    let (c, h, w) = x.dim();
    Array3::from_shape_fn((c, h, w), |(ci, y, xx)| {
        let mut n = f64::from(beta[ci]);
        for j in 0..c {
            let v = f64::from(x[[j, y, xx]]);
            n += f64::from(gamma[[ci, j]]) * v * v;
        }
        let d = n.sqrt();
        let v = f64::from(x[[ci, y, xx]]);
        (if inverse { v * d } else { v / d }) as f32
    })
}
