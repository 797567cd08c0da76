//! Reading and writing weight files (safetensors) with shape checks, plus the f16
//! conversions used for compact storage.

use lcodec_core::{Error, Result};
use ndarray::{Array1, Array2, Array4};
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;

/// A parsed safetensors file: tensor lookup by name with dtype conversion and shape
/// checks, and the string metadata.
pub struct WeightFile<'a> {
    st: SafeTensors<'a>,
    meta: HashMap<String, String>,
}

fn bad(what: impl Into<String>) -> Error {
    Error::Codec {
        codec: "weights",
        message: what.into(),
    }
}

impl<'a> WeightFile<'a> {
    /// Parses `bytes` (a complete safetensors file).
    ///
    /// # Errors
    /// [`Error::Codec`] when the bytes are not a valid safetensors file.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let (_, m) = SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("bad safetensors header: {e}")))?;
        let meta = m.metadata().clone().unwrap_or_default();
        Ok(Self { st, meta })
    }

    /// A metadata value.
    ///
    /// # Errors
    /// [`Error::Codec`] when the key is missing.
    pub fn meta(&self, key: &str) -> Result<&str> {
        self.meta
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| bad(format!("metadata key `{key}` missing")))
    }

    /// A metadata value parsed as `T`.
    ///
    /// # Errors
    /// [`Error::Codec`] when the key is missing or does not parse.
    pub fn meta_parse<T: std::str::FromStr>(&self, key: &str) -> Result<T> {
        let v = self.meta(key)?;
        v.trim()
            .parse()
            .map_err(|_| bad(format!("metadata `{key}` = `{v}` does not parse")))
    }

    /// Tensor `name` as f32 (from F32, F16 or BF16 storage), checked against `shape`.
    ///
    /// # Errors
    /// [`Error::Codec`] when the tensor is missing, has another shape or dtype.
    pub fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self
            .st
            .tensor(name)
            .map_err(|_| bad(format!("tensor `{name}` missing")))?;
        if t.shape() != shape {
            return Err(bad(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                t.shape()
            )));
        }
        let d = t.data();
        let v = match t.dtype() {
            Dtype::F32 => d
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => d
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Dtype::BF16 => d
                .chunks_exact(2)
                .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                .collect(),
            other => {
                return Err(bad(format!(
                    "tensor `{name}` has dtype {other:?}, expected a float"
                )));
            }
        };
        Ok(v)
    }

    /// Tensor `name` as u32 (from U32 or I32 storage; negative values are an error).
    ///
    /// # Errors
    /// [`Error::Codec`] when the tensor is missing, has another shape or dtype.
    pub fn u32(&self, name: &str, shape: &[usize]) -> Result<Vec<u32>> {
        self.i64(name, shape)?
            .into_iter()
            .map(|v| {
                u32::try_from(v)
                    .map_err(|_| bad(format!("tensor `{name}`: value {v} out of u32 range")))
            })
            .collect()
    }

    /// Tensor `name` as i64 (from I32, U32 or I64 storage).
    ///
    /// # Errors
    /// [`Error::Codec`] when the tensor is missing, has another shape or dtype.
    pub fn i64(&self, name: &str, shape: &[usize]) -> Result<Vec<i64>> {
        let t = self
            .st
            .tensor(name)
            .map_err(|_| bad(format!("tensor `{name}` missing")))?;
        if t.shape() != shape {
            return Err(bad(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                t.shape()
            )));
        }
        let d = t.data();
        Ok(match t.dtype() {
            Dtype::I32 => d
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            Dtype::U32 => d
                .chunks_exact(4)
                .map(|c| i64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            Dtype::I64 => d
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
            other => {
                return Err(bad(format!(
                    "tensor `{name}` has dtype {other:?}, expected an integer"
                )));
            }
        })
    }

    /// 4-D float tensor.
    ///
    /// # Errors
    /// As [`WeightFile::f32`].
    pub fn array4(&self, name: &str, s: [usize; 4]) -> Result<Array4<f32>> {
        let v = self.f32(name, &s)?;
        Array4::from_shape_vec((s[0], s[1], s[2], s[3]), v).map_err(|e| bad(format!("{name}: {e}")))
    }

    /// 2-D float tensor.
    ///
    /// # Errors
    /// As [`WeightFile::f32`].
    pub fn array2(&self, name: &str, s: [usize; 2]) -> Result<Array2<f32>> {
        let v = self.f32(name, &s)?;
        Array2::from_shape_vec((s[0], s[1]), v).map_err(|e| bad(format!("{name}: {e}")))
    }

    /// 1-D float tensor.
    ///
    /// # Errors
    /// As [`WeightFile::f32`].
    pub fn array1(&self, name: &str, n: usize) -> Result<Array1<f32>> {
        Ok(Array1::from(self.f32(name, &[n])?))
    }
}

/// One tensor to write with [`write_safetensors`].
pub enum OutTensor {
    /// Float data stored as F32.
    F32(Vec<usize>, Vec<f32>),
    /// Float data stored as F16 (round to nearest even).
    F16(Vec<usize>, Vec<f32>),
    /// Integer data stored as I32.
    I32(Vec<usize>, Vec<i32>),
}

/// Serialises tensors and string metadata into safetensors bytes.
///
/// The output is a pure function of the input (tensors and metadata in sorted key order),
/// so exporting the same weights twice gives the same file and the same weights hash.
///
/// # Errors
/// [`Error::InvalidArgument`] when a tensor's data length does not match its shape or a
/// name is duplicated.
pub fn write_safetensors(
    tensors: &[(String, OutTensor)],
    meta: HashMap<String, String>,
) -> Result<Vec<u8>> {
    use std::collections::BTreeMap;
    let mut sorted: BTreeMap<&str, (&str, &Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, t) in tensors {
        let (dt, shape, bytes): (&str, &Vec<usize>, Vec<u8>) = match t {
            OutTensor::F32(s, v) => ("F32", s, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            OutTensor::F16(s, v) => (
                "F16",
                s,
                v.iter()
                    .flat_map(|x| f32_to_f16(*x).to_le_bytes())
                    .collect(),
            ),
            OutTensor::I32(s, v) => ("I32", s, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        };
        let elems: usize = shape.iter().product();
        if bytes.len() != elems * if dt == "F16" { 2 } else { 4 } {
            return Err(Error::InvalidArgument(format!(
                "tensor `{name}`: data does not match shape {shape:?}"
            )));
        }
        if sorted.insert(name, (dt, shape, bytes)).is_some() {
            return Err(Error::InvalidArgument(format!(
                "tensor `{name}` given twice"
            )));
        }
    }
    let meta: BTreeMap<String, String> = meta.into_iter().collect();
    let mut header = String::from("{");
    header.push_str("\"__metadata__\":{");
    let m: Vec<String> = meta
        .iter()
        .map(|(k, v)| format!("{}:{}", json_str(k), json_str(v)))
        .collect();
    header.push_str(&m.join(","));
    header.push('}');
    let mut offset = 0usize;
    for (name, (dt, shape, bytes)) in &sorted {
        let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
        header.push_str(&format!(
            ",{}:{{\"dtype\":\"{dt}\",\"shape\":[{}],\"data_offsets\":[{offset},{}]}}",
            json_str(name),
            dims.join(","),
            offset + bytes.len()
        ));
        offset += bytes.len();
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for (_, (_, _, bytes)) in sorted {
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Converts IEEE half-precision bits to f32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = if exp == 0 {
        if man == 0 {
            sign
        } else {
            // Subnormal: value = man * 2^-24.
            let v = man as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
    } else if exp == 31 {
        sign | 0x7f80_0000 | (man << 13)
    } else {
        sign | ((exp + 112) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}

/// Converts f32 to IEEE half-precision bits, rounding to nearest even; overflow gives ±inf.
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 255 {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 31 {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let mut r = m >> shift;
        let rem = m & ((1 << shift) - 1);
        if rem > half || (rem == half && (r & 1) == 1) {
            r += 1;
        }
        return sign | r as u16;
    }
    let mut r = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    if rem > 0x1000 || (rem == 0x1000 && (r & 1) == 1) {
        r += 1; // may carry into the exponent: still correct (up to inf)
    }
    sign | r as u16
}

/// 16-byte hash of a weights file (XXH3-128 of the bytes), stored in `.lc` headers.
pub fn weights_hash(bytes: &[u8]) -> [u8; 16] {
    xxhash_rust::xxh3::xxh3_128(bytes).to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_round_trip_is_exact_for_halves() {
        for h in 0u16..=0xffff {
            let f = f16_to_f32(h);
            if f.is_nan() {
                continue;
            }
            assert_eq!(f32_to_f16(f), h, "h={h:#x} f={f}");
        }
    }

    #[test]
    fn f32_to_f16_rounds_to_nearest() {
        assert_eq!(f16_to_f32(f32_to_f16(1.0 + 1.0 / 4096.0)), 1.0);
        assert_eq!(f16_to_f32(f32_to_f16(0.1)), 0.099975586);
        assert_eq!(f32_to_f16(1e6), 0x7c00);
    }
}
