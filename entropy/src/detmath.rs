//! Deterministic elementary functions: `exp`, `ln`, `erfc` in plain IEEE-754 `f64`
//! arithmetic.
//!
//! Platform `libm` functions differ in their last bits between systems, so a probability
//! table built with them could differ between the encoding and the decoding machine.
//! These functions use only `+ - * /`, `floor` and bit manipulation, each exactly
//! rounded by IEEE 754, in a fixed order; Rust never contracts `a * b + c` into a fused
//! multiply-add, so every conforming target (x86-64, aarch64, wasm, and i686 with SSE2)
//! computes the same bits. Accuracy is a few ulp, ample for 24-bit probability tables.
//!
//! Methods: `exp` by Cody–Waite reduction `x = k ln 2 + r` and the Taylor series of
//! `e^r` (|r| ≤ ln2 / 2) to degree 13; `ln` by `x = m 2^e` and the series of
//! `2 atanh((m - 1) / (m + 1))`; `erfc` by the Maclaurin series of `erf` below 2 and the
//! Laplace continued fraction `erfc z = e^{-z^2}/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/…)))`
//! (Abramowitz & Stegun 7.1.5 and 7.1.14), evaluated bottom-up at a fixed depth, above.

/// High part of ln 2 (its low 32 bits are zero, so `k * LN2_HI` is exact for |k| < 2^20).
const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
/// ln 2 - LN2_HI.
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
const LOG2_E: f64 = std::f64::consts::LOG2_E;

/// `2^k` for `-1022 <= k <= 1023`.
fn pow2(k: i64) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// Deterministic `e^x`. Returns 0 below -708, infinity above 709, NaN for NaN.
pub fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    if x < -708.0 {
        return 0.0;
    }
    let k = (x * LOG2_E + 0.5).floor();
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // e^r = 1 + r (1 + r/2 (1 + r/3 (1 + ...))), innermost first.
    let mut p = 1.0;
    let mut n = 13;
    while n >= 1 {
        p = 1.0 + r * p / f64::from(n);
        n -= 1;
    }
    p * pow2(k as i64)
}

/// Deterministic natural logarithm for positive normal `x`; NaN for `x <= 0` or NaN,
/// infinity for infinity. Subnormal inputs are not supported (NaN).
pub fn ln(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 || x < f64::MIN_POSITIVE {
        return f64::NAN;
    }
    if x.is_infinite() {
        return x;
    }
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7FF) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52)); // [1, 2)
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let z = (m - 1.0) / (m + 1.0); // |z| <= 0.1716
    let z2 = z * z;
    // atanh z / z = sum z^(2j) / (2j + 1), innermost (highest order) first.
    let mut s = 0.0;
    let mut j: i32 = 20;
    while j >= 0 {
        s = s * z2 + 1.0 / f64::from(2 * j + 1);
        j -= 1;
    }
    let ef = e as f64;
    ef * LN2_HI + (ef * LN2_LO + 2.0 * z * s)
}

/// Deterministic complementary error function `erfc(z) = 1 - erf(z)`, accurate to a
/// relative ~1e-13 for all `z`.
pub fn erfc(z: f64) -> f64 {
    if z.is_nan() {
        return z;
    }
    if z < 0.0 {
        return 2.0 - erfc(-z);
    }
    if z < 2.0 {
        // erf z = 2/√π Σ (-1)^n z^(2n+1) / (n! (2n+1))
        let z2 = z * z;
        let mut term = z; // (-1)^n z^(2n+1) / n!
        let mut sum = z;
        let mut n = 1;
        while n <= 60 {
            term = term * -z2 / f64::from(n);
            sum += term / f64::from(2 * n + 1);
            n += 1;
        }
        return 1.0 - std::f64::consts::FRAC_2_SQRT_PI * sum;
    }
    if z > 27.0 {
        return 0.0;
    }
    // erfc z = e^{-z^2} / √π · 1 / (z + (1/2) / (z + 1 / (z + (3/2) / (z + ...))))
    let mut t = z;
    let mut k = 120;
    while k >= 1 {
        t = z + (f64::from(k) * 0.5) / t;
        k -= 1;
    }
    let inv_sqrt_pi = std::f64::consts::FRAC_2_SQRT_PI * 0.5;
    exp(-(z * z)) * inv_sqrt_pi / t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    #[test]
    fn exp_matches_known_values() {
        assert_eq!(exp(0.0), 1.0);
        assert!(rel(exp(1.0), std::f64::consts::E) < 4e-16);
        assert!(rel(exp(-1.0), 0.367_879_441_171_442_33) < 4e-16);
        assert!(rel(exp(10.0), 22_026.465_794_806_718) < 1e-15);
        assert!(rel(exp(-20.0), 2.061_153_622_438_558e-9) < 1e-15);
        assert!(rel(exp(std::f64::consts::LN_2 * 7.0), 128.0) < 1e-15);
        assert_eq!(exp(-800.0), 0.0);
        assert!(exp(800.0).is_infinite());
        // Monotone on a fine grid.
        let mut prev = 0.0;
        for i in -2000..2000 {
            let v = exp(f64::from(i) * 0.01);
            assert!(v > prev);
            prev = v;
        }
    }

    #[test]
    fn ln_matches_known_values() {
        assert_eq!(ln(1.0), 0.0);
        assert!(rel(ln(2.0), std::f64::consts::LN_2) < 2e-16);
        assert!(rel(ln(10.0), std::f64::consts::LN_10) < 2e-16);
        assert!(rel(ln(0.11), -2.207_274_913_189_721) < 1e-15);
        assert!(rel(ln(256.0), 5.545_177_444_479_562) < 1e-15);
        assert!(ln(0.0).is_nan() && ln(-1.0).is_nan());
        for i in 1..1000 {
            let x = f64::from(i) * 0.37;
            assert!(rel(exp(ln(x)), x) < 1e-14);
        }
    }

    #[test]
    fn erfc_matches_known_values() {
        assert_eq!(erfc(0.0), 1.0);
        assert!(rel(erfc(0.5), 0.479_500_122_186_953_5) < 1e-14);
        assert!(rel(erfc(1.0), 0.157_299_207_050_285_13) < 1e-14);
        assert!(rel(erfc(2.0), 0.004_677_734_981_047_266) < 1e-13);
        assert!(rel(erfc(3.0), 2.209_049_699_858_544e-5) < 1e-13);
        assert!(rel(erfc(5.0), 1.537_459_794_428_034_8e-12) < 1e-13);
        assert!(rel(erfc(-1.0), 1.842_700_792_949_715) < 1e-15);
        // Continuous across the series / continued-fraction switch, and decreasing.
        assert!(rel(erfc(1.999_999_999_999), erfc(2.0)) < 1e-11);
        let mut prev = 2.0;
        for i in -400..=600 {
            let v = erfc(f64::from(i) * 0.01);
            assert!(v <= prev, "erfc not monotone at {i}");
            prev = v;
        }
    }
}
