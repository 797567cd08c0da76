//! 2-D convolution and transposed convolution.
//!
//! Fast path: im2col into a tile of columns, then one SGEMM per tile (`ndarray`'s
//! `general_mat_mul`, which runs `matrixmultiply`'s blocked kernels), tiles in parallel.
//!
//! Deterministic path: per output channel (the only parallel axis), the output plane is
//! accumulated over `(in_channel, ky, kx)` in that fixed order with a separate multiply
//! and add, then the bias is added. Vectorisation across output pixels does not change
//! any single value's operation sequence, so the bits do not depend on the CPU or on the
//! number of threads.
//!
//! A transposed convolution of stride `s` is computed as `s * s` ordinary stride-1
//! convolutions, one per output phase (`oy mod s`, `ox mod s`), each with the sub-kernel
//! of taps that reach that phase (the "sub-pixel" decomposition). This avoids both the
//! zero-insertion waste and an order-dependent col2im scatter.

use crate::Mode;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, Array3, Array4, ArrayView2, ArrayView3, ArrayView4, ArrayViewMut2, Axis, s};
use rayon::prelude::*;

/// Stride and zero padding of a [`conv2d`] (same value for both axes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    /// Step between output samples, >= 1.
    pub stride: usize,
    /// Zeros added on each side of both spatial axes.
    pub padding: usize,
}

/// Stride, padding and output padding of a [`conv_transpose2d`], as in PyTorch's
/// `ConvTranspose2d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dParams {
    /// Upsampling factor, >= 1.
    pub stride: usize,
    /// Rows/columns removed from each side of the full transposed output.
    pub padding: usize,
    /// Extra rows/columns added at the bottom/right (must be < stride).
    pub output_padding: usize,
}

/// Output length of a convolution along one axis: `(n + 2p - k) / s + 1`.
///
/// # Panics
/// If `n + 2p < k` or the stride is 0.
pub fn conv2d_output_size(n: usize, k: usize, p: Conv2dParams) -> usize {
    assert!(p.stride >= 1, "stride must be >= 1");
    assert!(
        n + 2 * p.padding >= k,
        "input {n} + 2*{} smaller than kernel {k}",
        p.padding
    );
    (n + 2 * p.padding - k) / p.stride + 1
}

/// Output length of a transposed convolution along one axis:
/// `(n - 1) * s - 2p + k + output_padding`.
///
/// # Panics
/// If the result would be negative or zero, or the stride is 0.
pub fn conv_transpose2d_output_size(n: usize, k: usize, p: ConvTranspose2dParams) -> usize {
    assert!(p.stride >= 1, "stride must be >= 1");
    let full = n.saturating_sub(1) * p.stride + k + p.output_padding;
    assert!(
        n >= 1 && full > 2 * p.padding,
        "empty transposed-conv output"
    );
    full - 2 * p.padding
}

/// 2-D convolution (cross-correlation, as in PyTorch) of `x: [C, H, W]` with
/// `w: [O, C, kh, kw]`, optional `bias: [O]`.
///
/// # Panics
/// If the shapes do not agree (channel count, bias length) or the padded input is
/// smaller than the kernel. Callers validate weight shapes when loading them.
pub fn conv2d(
    x: ArrayView3<'_, f32>,
    w: ArrayView4<'_, f32>,
    bias: Option<&[f32]>,
    p: Conv2dParams,
    mode: Mode,
) -> Array3<f32> {
    let (c, h, wd) = x.dim();
    let (o, ci, _, _) = w.dim();
    assert_eq!(c, ci, "conv2d: input has {c} channels, weight expects {ci}");
    if let Some(b) = bias {
        assert_eq!(b.len(), o, "conv2d: bias length {} != {o}", b.len());
    }
    let pad = p.padding as isize;
    let xp = pad_crop(x, pad, pad, pad, pad);
    debug_assert_eq!(xp.dim(), (c, h + 2 * p.padding, wd + 2 * p.padding));
    let mut out = conv_valid(xp.view(), w, p.stride, mode);
    if let Some(b) = bias {
        add_bias(&mut out, b);
    }
    out
}

/// 2-D transposed convolution of `x: [C, H, W]` with `w: [C, O, kh, kw]` (PyTorch's
/// `ConvTranspose2d` weight layout), optional `bias: [O]`.
///
/// # Panics
/// If the shapes do not agree or `output_padding >= stride`.
pub fn conv_transpose2d(
    x: ArrayView3<'_, f32>,
    w: ArrayView4<'_, f32>,
    bias: Option<&[f32]>,
    p: ConvTranspose2dParams,
    mode: Mode,
) -> Array3<f32> {
    let (c, h, wd) = x.dim();
    let (ci, o, kh, kw) = w.dim();
    assert_eq!(
        c, ci,
        "conv_transpose2d: input has {c} channels, weight expects {ci}"
    );
    assert!(
        p.output_padding < p.stride.max(1),
        "output_padding must be < stride"
    );
    if let Some(b) = bias {
        assert_eq!(
            b.len(),
            o,
            "conv_transpose2d: bias length {} != {o}",
            b.len()
        );
    }
    let s = p.stride as isize;
    let pad = p.padding as isize;
    let ho = conv_transpose2d_output_size(h, kh, p);
    let wo = conv_transpose2d_output_size(wd, kw, p);
    let mut out = Array3::<f32>::zeros((o, ho, wo));
    // Each phase reads the input with its own zero border; pad once with the widest border
    // of all phases and give each phase a window of that.
    let mut phases = Vec::with_capacity((s * s) as usize);
    for ry in 0..s {
        let (ty, qy0, nqy) = phase(kh as isize, ry, s, pad, ho as isize);
        for rx in 0..s {
            let (tx, qx0, nqx) = phase(kw as isize, rx, s, pad, wo as isize);
            if nqy <= 0 || nqx <= 0 || ty == 0 || tx == 0 {
                continue; // only the bias reaches these outputs
            }
            phases.push((ry, rx, (ty, qy0, nqy), (tx, qx0, nqx)));
        }
    }
    // Zero border each phase's input needs, (top, bottom) and (left, right); negative crops.
    let border = |(taps, q0, n): (isize, isize, isize), len: usize| {
        let lo = taps - 1 - q0;
        (lo, n + taps - 1 - lo - len as isize)
    };
    let (mut bt, mut bb, mut bl, mut br) = (0, 0, 0, 0);
    for &(_, _, py, px) in &phases {
        let ((t, bo), (l, r)) = (border(py, h), border(px, wd));
        (bt, bb, bl, br) = (bt.max(t), bb.max(bo), bl.max(l), br.max(r));
    }
    let xp = pad_crop(x, bt, bb, bl, br);
    for &(ry, rx, py, px) in &phases {
        let ((ty, qy0, nqy), (tx, qx0, nqx)) = (py, px);
        let ((top, bottom), (left, right)) = (border(py, h), border(px, wd));
        // Sub-kernel, flipped so that the phase is a plain cross-correlation:
        // kp[o, i, a, b] = w[i, o, ry + s*(ty-1-a), rx + s*(tx-1-b)].
        let kp = Array4::from_shape_fn((o, c, ty as usize, tx as usize), |(oo, i, a, b)| {
            let ky = (ry + s * (ty - 1 - a as isize)) as usize;
            let kx = (rx + s * (tx - 1 - b as isize)) as usize;
            w[[i, oo, ky, kx]]
        });
        let (y0, x0) = ((bt - top) as usize, (bl - left) as usize);
        let (ph_h, ph_w) = (
            (h as isize + top + bottom) as usize,
            (wd as isize + left + right) as usize,
        );
        let win = xp.slice(s![.., y0..y0 + ph_h, x0..x0 + ph_w]);
        let ph = conv_valid(win, kp.view(), 1, mode);
        debug_assert_eq!(ph.dim(), (o, nqy as usize, nqx as usize));
        let oy0 = (qy0 * s + ry - pad) as usize;
        let ox0 = (qx0 * s + rx - pad) as usize;
        let su = s as usize;
        let mut dst = out.slice_mut(s![
            ..,
            oy0..oy0 + (nqy as usize - 1) * su + 1;su,
            ox0..ox0 + (nqx as usize - 1) * su + 1;su
        ]);
        let mut planes: Vec<_> = dst
            .axis_iter_mut(Axis(0))
            .zip(ph.axis_iter(Axis(0)))
            .collect();
        planes.par_iter_mut().for_each(|(d, p)| d.assign(p));
    }
    if let Some(b) = bias {
        add_bias(&mut out, b);
    }
    out
}

/// Taps, first phase index and phase length of output phase `r` along one axis:
/// outputs `oy = q*s + r - pad` for `q in q0..q0+n`, each the sum over `t < taps` of
/// `w[r + s*t] * x[q - t]`.
fn phase(k: isize, r: isize, s: isize, pad: isize, out_len: isize) -> (isize, isize, isize) {
    let taps = if r >= k { 0 } else { (k - r + s - 1) / s };
    let q0 = div_ceil(pad - r, s);
    let q1 = div_floor(out_len - 1 + pad - r, s);
    (taps, q0, q1 - q0 + 1)
}

fn div_floor(a: isize, b: isize) -> isize {
    a.div_euclid(b)
}

fn div_ceil(a: isize, b: isize) -> isize {
    -((-a).div_euclid(b))
}

/// Copy of `x` with `top/bottom/left/right` zero rows/columns added (negative values crop).
fn pad_crop(
    x: ArrayView3<'_, f32>,
    top: isize,
    bottom: isize,
    left: isize,
    right: isize,
) -> Array3<f32> {
    let (c, h, w) = x.dim();
    let (h, w) = (h as isize, w as isize);
    let nh = (h + top + bottom).max(0) as usize;
    let nw = (w + left + right).max(0) as usize;
    let mut out = Array3::<f32>::zeros((c, nh, nw));
    // Source rows/cols [ys0, ys1) land at [ys0 + top, ...).
    let ys0 = (-top).max(0);
    let ys1 = h.min(nh as isize - top);
    let xs0 = (-left).max(0);
    let xs1 = w.min(nw as isize - left);
    if ys1 > ys0 && xs1 > xs0 {
        let src = x.slice(s![.., ys0..ys1, xs0..xs1]);
        let mut dst = out.slice_mut(s![.., ys0 + top..ys1 + top, xs0 + left..xs1 + left]);
        let mut planes: Vec<_> = dst
            .axis_iter_mut(Axis(0))
            .zip(src.axis_iter(Axis(0)))
            .collect();
        planes.par_iter_mut().for_each(|(d, s)| d.assign(s));
    }
    out
}

fn add_bias(out: &mut Array3<f32>, b: &[f32]) {
    for (mut plane, &bv) in out.axis_iter_mut(Axis(0)).zip(b) {
        plane.mapv_inplace(|v| v + bv);
    }
}

/// Convolution without padding ("valid"), no bias.
fn conv_valid(
    x: ArrayView3<'_, f32>,
    w: ArrayView4<'_, f32>,
    stride: usize,
    mode: Mode,
) -> Array3<f32> {
    let (c, h, wd) = x.dim();
    let (_, ci, kh, kw) = w.dim();
    debug_assert_eq!(c, ci);
    assert!(stride >= 1, "stride must be >= 1");
    assert!(
        h >= kh && wd >= kw,
        "input {h}x{wd} smaller than kernel {kh}x{kw}"
    );
    let ho = (h - kh) / stride + 1;
    let wo = (wd - kw) / stride + 1;
    let w = w.as_standard_layout();
    match mode {
        // im2col reads rows of any view; no copy of a window.
        Mode::Fast => conv_valid_gemm(x, w.view(), stride, ho, wo),
        Mode::Deterministic => {
            let x = x.as_standard_layout();
            conv_valid_det(x.view(), w.view(), stride, ho, wo)
        }
    }
}

/// Target number of f32 in one im2col tile (~4 MiB) — keeps tiles cache-friendly and the
/// memory bounded whatever the image size.
const TILE_ELEMS: usize = 1 << 20;

thread_local! {
    /// The im2col tile of [`conv_valid_gemm`] on this thread.
    static COLS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn conv_valid_gemm(
    x: ArrayView3<'_, f32>,
    w: ArrayView4<'_, f32>,
    stride: usize,
    ho: usize,
    wo: usize,
) -> Array3<f32> {
    let (c, _, _) = x.dim();
    let (o, _, kh, kw) = w.dim();
    let k = c * kh * kw;
    let n = ho * wo;
    let wm: ArrayView2<'_, f32> = match w.into_shape_with_order((o, k)) {
        Ok(v) => v,
        Err(_) => unreachable!("standard layout weight reshapes"),
    };
    let mut out = Array2::<f32>::zeros((o, n));
    // Tiles of whole output rows; at least a few tiles per thread for balance.
    let rows_budget = (TILE_ELEMS / (k * wo).max(1)).max(1);
    let rows_balance = ho.div_ceil(4 * rayon::current_num_threads()).max(1);
    let rows_per_tile = rows_budget.min(rows_balance).max(1);
    let mut tiles: Vec<(usize, ArrayViewMut2<'_, f32>)> = out
        .axis_chunks_iter_mut(Axis(1), rows_per_tile * wo)
        .enumerate()
        .map(|(t, v)| (t * rows_per_tile, v))
        .collect();
    tiles.par_iter_mut().for_each(|(oy0, dst)| {
        let tn = dst.ncols();
        let nrows = tn / wo;
        // One im2col buffer per thread, reused across tiles and calls: every entry is
        // written below, and fresh multi-megabyte buffers cost a page fault per 4 KiB.
        // (A tile larger than the usual budget, from a very wide image, is not kept.)
        COLS.with(|cell| {
            let mut own = Vec::new();
            // (`try_borrow_mut` only fails if this thread re-entered here, which the code
            // inside does not do; the tile then simply gets its own buffer.)
            let mut cached = cell.try_borrow_mut().ok();
            let buf = match cached.as_deref_mut() {
                Some(b) if k * tn <= 2 * TILE_ELEMS => b,
                _ => &mut own,
            };
            if buf.len() < k * tn {
                buf.resize(k * tn, 0.0);
            }
            let mut cols = match ArrayViewMut2::from_shape((k, tn), &mut buf[..k * tn]) {
                Ok(v) => v,
                Err(_) => unreachable!("buffer has k * tn entries"),
            };
            for i in 0..c {
                let plane = x.index_axis(Axis(0), i);
                for ky in 0..kh {
                    for kx in 0..kw {
                        let r = (i * kh + ky) * kw + kx;
                        let mut crow = cols.row_mut(r);
                        for dy in 0..nrows {
                            let iy = (*oy0 + dy) * stride + ky;
                            let src = plane.row(iy);
                            let src = src.slice(s![kx..kx + (wo - 1) * stride + 1;stride]);
                            crow.slice_mut(s![dy * wo..(dy + 1) * wo]).assign(&src);
                        }
                    }
                }
            }
            general_mat_mul(1.0, &wm, &cols.view(), 0.0, dst);
        });
    });
    match out.into_shape_with_order((o, ho, wo)) {
        Ok(v) => v,
        Err(_) => unreachable!("fresh array reshapes"),
    }
}

fn conv_valid_det(
    x: ArrayView3<'_, f32>,
    w: ArrayView4<'_, f32>,
    stride: usize,
    ho: usize,
    wo: usize,
) -> Array3<f32> {
    let (c, _, wd) = x.dim();
    let (o, _, kh, kw) = w.dim();
    let xs = match x.as_slice() {
        Some(v) => v,
        None => unreachable!("standard layout"),
    };
    let h = x.dim().1;
    let mut out = Array3::<f32>::zeros((o, ho, wo));
    let mut planes: Vec<_> = out.axis_iter_mut(Axis(0)).enumerate().collect();
    planes.par_iter_mut().for_each(|(oc, plane)| {
        let mut acc = vec![0.0f32; ho * wo];
        for i in 0..c {
            let xi = &xs[i * h * wd..(i + 1) * h * wd];
            for ky in 0..kh {
                for kx in 0..kw {
                    let wv = w[[*oc, i, ky, kx]];
                    for oy in 0..ho {
                        let row = &xi[(oy * stride + ky) * wd..(oy * stride + ky + 1) * wd];
                        let a = &mut acc[oy * wo..(oy + 1) * wo];
                        if stride == 1 {
                            for (av, &xv) in a.iter_mut().zip(&row[kx..kx + wo]) {
                                // Separate multiply and add (`+=` is a plain add; Rust never
                                // contracts to an FMA without `mul_add`).
                                *av += wv * xv;
                            }
                        } else {
                            for (av, &xv) in a.iter_mut().zip(row[kx..].iter().step_by(stride)) {
                                *av += wv * xv;
                            }
                        }
                    }
                }
            }
        }
        for (d, v) in plane.iter_mut().zip(acc) {
            *d = v;
        }
    });
    out
}
