//! Element-wise activations. All are exact (comparisons and one multiply), hence
//! deterministic in both modes.

use ndarray::{Array3, ArrayView3, ArrayViewMut3};

/// Leaky ReLU: `x` for `x > 0`, else `slope * x` (PyTorch's default slope is 0.01).
pub fn leaky_relu(x: ArrayView3<'_, f32>, slope: f32) -> Array3<f32> {
    x.mapv(|v| if v > 0.0 { v } else { v * slope })
}

/// In-place [`leaky_relu`].
pub fn leaky_relu_inplace(mut x: ArrayViewMut3<'_, f32>, slope: f32) {
    x.mapv_inplace(|v| if v > 0.0 { v } else { v * slope });
}

/// In-place ReLU (`max(x, 0)`; `-0.0` and NaN map to `0.0`).
pub fn relu_inplace(mut x: ArrayViewMut3<'_, f32>) {
    x.mapv_inplace(|v| if v > 0.0 { v } else { 0.0 });
}
