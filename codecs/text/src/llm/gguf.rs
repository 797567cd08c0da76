//! A small reader for GGUF files (the llama.cpp model format, version 2 and 3):
//! header, metadata key/values (arrays included), tensor infos, alignment and tensor
//! data, with dequantisation of F32, F16, Q4_0, Q4_1 and Q8_0 rows.
//!
//! Layout (ggml `docs/gguf.md`): magic `GGUF`, `u32` version, `u64` tensor count, `u64`
//! key/value count, the key/values, the tensor infos (name, dimension count, dimensions
//! with the fastest-varying first, type, offset relative to the data section), padding
//! to `general.alignment` (default 32), then the data section. All little-endian.
//!
//! Every count, length and offset is checked against the file size before it is used,
//! so a malformed file gives an [`Error`], never a panic or a huge allocation.

use lcodec_core::{Error, Result};

/// The GGUF magic, `GGUF` read as a little-endian `u32`.
pub const MAGIC: &[u8; 4] = b"GGUF";
/// Default data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Most dimensions a tensor may have.
pub const MAX_DIMS: u32 = 4;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Unsigned integer (u8, u16, u32 or u64 in the file).
    U64(u64),
    /// Signed integer (i8, i16, i32 or i64 in the file).
    I64(i64),
    /// Float (f32 or f64 in the file).
    F64(f64),
    /// Boolean.
    Bool(bool),
    /// UTF-8 string (invalid UTF-8 is replaced, as it is only descriptive).
    Str(String),
    /// Array of values.
    Array(Vec<Value>),
}

impl Value {
    /// The value as an unsigned integer, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U64(v) => Some(v),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
    /// The value as a float, if it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F64(v) => Some(v),
            Value::U64(v) => Some(v as f64),
            Value::I64(v) => Some(v as f64),
            _ => None,
        }
    }
    /// The value as a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The value as an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// ggml tensor element types this reader knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE half.
    F16,
    /// Blocks of 32: f16 scale `d`, 16 bytes of 4-bit `q`; value `(q - 8) d`.
    Q4_0,
    /// Blocks of 32: f16 `d`, f16 `m`, 16 bytes of 4-bit `q`; value `q d + m`.
    Q4_1,
    /// Blocks of 32: f16 `d`, 32 `i8`; value `q d`.
    Q8_0,
}

impl GgmlType {
    /// Parses the stored type number.
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            8 => GgmlType::Q8_0,
            _ => return None,
        })
    }
    /// The stored type number.
    pub fn to_u32(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q8_0 => 8,
        }
    }
    /// (elements per block, bytes per block).
    pub fn block(self) -> (u64, u64) {
        match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 => (1, 2),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q8_0 => (32, 34),
        }
    }
    /// Bytes of a row of `n` elements, if `n` is a whole number of blocks.
    pub fn row_bytes(self, n: u64) -> Option<u64> {
        let (be, bb) = self.block();
        if n % be != 0 {
            return None;
        }
        (n / be).checked_mul(bb)
    }
}

/// One tensor's description.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions, fastest-varying first (`dims[0]` is the row length).
    pub dims: Vec<u64>,
    /// Element type.
    pub ty: GgmlType,
    /// Absolute byte offset of the data in the file.
    pub offset: u64,
    /// Byte length of the data.
    pub len: u64,
}

impl TensorInfo {
    /// Row length (`dims[0]`).
    pub fn cols(&self) -> usize {
        self.dims.first().copied().unwrap_or(1) as usize
    }
    /// Number of rows (product of the other dimensions).
    pub fn rows(&self) -> usize {
        self.dims.iter().skip(1).product::<u64>() as usize
    }
}

/// A parsed GGUF file, holding its bytes.
#[derive(Debug, Clone)]
pub struct Gguf {
    /// The whole file.
    pub bytes: Vec<u8>,
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, Value)>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the data section.
    pub data_offset: u64,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let remaining = (self.b.len() - self.pos) as u64;
        if n > remaining {
            return Err(Error::truncated(
                self.pos as u64,
                format!("gguf: {what} ({n} bytes, {remaining} left)"),
            ));
        }
        let s = &self.b[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }
    fn remaining(&self) -> u64 {
        (self.b.len() - self.pos) as u64
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        let s = self.take(2, what)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        let s = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)?;
        let s = self.take(n, what)?;
        Ok(String::from_utf8_lossy(s).into_owned())
    }
    /// Reads a value of type `ty`; `depth` bounds nested arrays.
    fn value(&mut self, ty: u32, depth: u32) -> Result<Value> {
        let at = self.pos as u64;
        Ok(match ty {
            0 => Value::U64(u64::from(self.u8("u8")?)),
            1 => Value::I64(i64::from(self.u8("i8")? as i8)),
            2 => Value::U64(u64::from(self.u16("u16")?)),
            3 => Value::I64(i64::from(self.u16("i16")? as i16)),
            4 => Value::U64(u64::from(self.u32("u32")?)),
            5 => Value::I64(i64::from(self.u32("i32")? as i32)),
            6 => Value::F64(f64::from(f32::from_bits(self.u32("f32")?))),
            7 => match self.u8("bool")? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(Error::malformed(
                        at,
                        format!("gguf: bool value {b} (expected 0 or 1)"),
                    ));
                }
            },
            8 => Value::Str(self.string("string")?),
            9 => {
                if depth >= 4 {
                    return Err(Error::malformed(at, "gguf: arrays nested deeper than 4"));
                }
                let ety = self.u32("array type")?;
                let n = self.u64("array length")?;
                let min = value_min_bytes(ety).ok_or_else(|| {
                    Error::malformed(at, format!("gguf: unknown array element type {ety}"))
                })?;
                if n.saturating_mul(min) > self.remaining() {
                    return Err(Error::truncated(
                        at,
                        format!("gguf: array of {n} elements of type {ety}"),
                    ));
                }
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(self.value(ety, depth + 1)?);
                }
                Value::Array(v)
            }
            10 => Value::U64(self.u64("u64")?),
            11 => Value::I64(self.u64("i64")? as i64),
            12 => Value::F64(f64::from_bits(self.u64("f64")?)),
            t => {
                return Err(Error::malformed(
                    at,
                    format!("gguf: unknown value type {t}"),
                ));
            }
        })
    }
}

/// Smallest encoded size of a value of type `ty` (for bounding array lengths).
fn value_min_bytes(ty: u32) -> Option<u64> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8..=12 => 8,
        _ => return None,
    })
}

impl Gguf {
    /// Reads a GGUF file from disk.
    ///
    /// # Errors
    /// I/O errors, and everything [`Gguf::parse`] rejects.
    pub fn open(path: &std::path::Path) -> Result<Self> {
        let bytes = std::fs::read(path)?;
        Self::parse(bytes)
    }

    /// Parses a GGUF file held in memory.
    ///
    /// # Errors
    /// [`Error::Malformed`] / [`Error::Truncated`] for a wrong magic or version, unknown
    /// types, or any count, length or offset that does not fit in the file.
    pub fn parse(bytes: Vec<u8>) -> Result<Self> {
        let mut c = Cursor { b: &bytes, pos: 0 };
        if c.take(4, "magic")? != MAGIC {
            return Err(Error::malformed(0, "gguf: magic is not GGUF"));
        }
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(Error::malformed(
                4,
                format!("gguf: version {version} (expected 2 or 3)"),
            ));
        }
        let n_tensors = c.u64("tensor count")?;
        let n_kv = c.u64("metadata count")?;
        // A key/value takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info
        // at least 8 + 4 + 4 + 8.
        if n_kv.saturating_mul(13) > c.remaining() || n_tensors.saturating_mul(24) > c.remaining() {
            return Err(Error::malformed(
                8,
                format!("gguf: {n_tensors} tensors / {n_kv} key-values exceed the file"),
            ));
        }
        let mut metadata = Vec::with_capacity(n_kv as usize);
        for _ in 0..n_kv {
            let key = c.string("metadata key")?;
            let ty = c.u32("metadata type")?;
            let v = c.value(ty, 0)?;
            metadata.push((key, v));
        }
        let mut alignment = DEFAULT_ALIGNMENT;
        if let Some((_, v)) = metadata.iter().find(|(k, _)| k == "general.alignment") {
            alignment = v
                .as_u64()
                .filter(|a| *a > 0 && a.is_power_of_two() && *a <= 1 << 16)
                .ok_or_else(|| {
                    Error::malformed(
                        0,
                        format!("gguf: general.alignment {v:?} (expected a power of two)"),
                    )
                })?;
        }
        let mut raw = Vec::with_capacity(n_tensors as usize);
        for _ in 0..n_tensors {
            let at = c.pos as u64;
            let name = c.string("tensor name")?;
            let nd = c.u32("dimension count")?;
            if nd == 0 || nd > MAX_DIMS {
                return Err(Error::malformed(
                    at,
                    format!("gguf: tensor {name}: {nd} dimensions (expected 1..=4)"),
                ));
            }
            let mut dims = Vec::with_capacity(nd as usize);
            for _ in 0..nd {
                dims.push(c.u64("dimension")?);
            }
            let t = c.u32("tensor type")?;
            let ty = GgmlType::from_u32(t)
                .ok_or_else(|| Error::Unsupported(format!("gguf: tensor {name}: ggml type {t}")))?;
            let off = c.u64("tensor offset")?;
            raw.push((at, name, dims, ty, off));
        }
        let data_offset = (c.pos as u64).div_ceil(alignment) * alignment;
        let file_len = bytes.len() as u64;
        if data_offset > file_len {
            return Err(Error::truncated(c.pos as u64, "gguf: data section"));
        }
        let mut tensors = Vec::with_capacity(raw.len());
        for (at, name, dims, ty, off) in raw {
            let mut n: u64 = 1;
            for &d in &dims {
                n = n.checked_mul(d).ok_or_else(|| {
                    Error::malformed(at, format!("gguf: tensor {name}: size overflows"))
                })?;
            }
            let row = ty.row_bytes(dims[0]).ok_or_else(|| {
                Error::malformed(
                    at,
                    format!(
                        "gguf: tensor {name}: row of {} is not whole {ty:?} blocks",
                        dims[0]
                    ),
                )
            })?;
            let len = row.checked_mul(n / dims[0].max(1)).ok_or_else(|| {
                Error::malformed(at, format!("gguf: tensor {name}: size overflows"))
            })?;
            let len = if dims[0] == 0 { 0 } else { len };
            if off % alignment != 0 {
                return Err(Error::malformed(
                    at,
                    format!("gguf: tensor {name}: offset {off} not aligned to {alignment}"),
                ));
            }
            let offset = data_offset
                .checked_add(off)
                .filter(|o| o.checked_add(len).is_some_and(|e| e <= file_len))
                .ok_or_else(|| {
                    Error::truncated(
                        at,
                        format!(
                            "gguf: tensor {name}: {len} bytes at data offset {off} exceed the file"
                        ),
                    )
                })?;
            tensors.push(TensorInfo {
                name,
                dims,
                ty,
                offset,
                len,
            });
        }
        Ok(Gguf {
            bytes,
            version,
            metadata,
            tensors,
            data_offset,
        })
    }

    /// The metadata value for `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The raw bytes of a tensor.
    pub fn tensor_bytes(&self, t: &TensorInfo) -> &[u8] {
        // Offsets and lengths were checked against the file in `parse`.
        &self.bytes[t.offset as usize..(t.offset + t.len) as usize]
    }

    /// Dequantises a whole tensor to f32 (row-major, `dims[0]` fastest).
    ///
    /// # Errors
    /// [`Error::Limit`] above 2^28 elements.
    pub fn dequantize(&self, t: &TensorInfo) -> Result<Vec<f32>> {
        let n = t.dims.iter().product::<u64>();
        if n > 1 << 28 {
            return Err(Error::Limit(format!(
                "gguf: tensor {} has {n} elements",
                t.name
            )));
        }
        let mut out = vec![0f32; n as usize];
        let cols = t.cols();
        if cols == 0 {
            return Ok(out);
        }
        let rb = t.ty.row_bytes(cols as u64).unwrap_or(0) as usize;
        let data = self.tensor_bytes(t);
        for (r, o) in out.chunks_exact_mut(cols).enumerate() {
            dequantize_row(t.ty, &data[r * rb..(r + 1) * rb], o);
        }
        Ok(out)
    }
}

/// IEEE half to f32, exactly.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = if exp == 0 {
        if man == 0 {
            sign
        } else {
            // Subnormal half: normalise.
            let mut e: i32 = -14;
            let mut m = man;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (((e + 127) as u32) << 23) | ((m & 0x3ff) << 13)
        }
    } else if exp == 31 {
        sign | 0x7f80_0000 | (man << 13)
    } else {
        sign | ((exp + 112) << 23) | (man << 13)
    };
    f32::from_bits(bits)
}

fn half(b: &[u8], i: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[i], b[i + 1]]))
}

/// Dequantises one row: `src` holds exactly `ty.row_bytes(out.len())` bytes.
/// Each value is computed with one rounding per operation in a fixed order (no FMA), so
/// every machine gets the same bits.
pub fn dequantize_row(ty: GgmlType, src: &[u8], out: &mut [f32]) {
    match ty {
        GgmlType::F32 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        GgmlType::F16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = f16_to_f32(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        GgmlType::Q4_0 => {
            for (o, b) in out.chunks_exact_mut(32).zip(src.chunks_exact(18)) {
                let d = half(b, 0);
                for j in 0..16 {
                    let q = b[2 + j];
                    o[j] = ((q & 15) as i32 - 8) as f32 * d;
                    o[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
                }
            }
        }
        GgmlType::Q4_1 => {
            for (o, b) in out.chunks_exact_mut(32).zip(src.chunks_exact(20)) {
                let d = half(b, 0);
                let m = half(b, 2);
                for j in 0..16 {
                    let q = b[4 + j];
                    o[j] = f32::from(q & 15) * d + m;
                    o[j + 16] = f32::from(q >> 4) * d + m;
                }
            }
        }
        GgmlType::Q8_0 => {
            for (o, b) in out.chunks_exact_mut(32).zip(src.chunks_exact(34)) {
                let d = half(b, 0);
                for j in 0..32 {
                    o[j] = f32::from(b[2 + j] as i8) * d;
                }
            }
        }
    }
}

/// Writes a GGUF v3 file (for tests and fixtures): metadata and tensors given as
/// `(name, dims, type, raw bytes)`.
pub fn write_gguf(
    metadata: &[(&str, Value)],
    tensors: &[(&str, Vec<u64>, GgmlType, Vec<u8>)],
) -> Vec<u8> {
    fn put_str(o: &mut Vec<u8>, s: &str) {
        o.extend_from_slice(&(s.len() as u64).to_le_bytes());
        o.extend_from_slice(s.as_bytes());
    }
    fn type_of(v: &Value) -> u32 {
        match v {
            Value::U64(_) => 10,
            Value::I64(_) => 11,
            Value::F64(_) => 12,
            Value::Bool(_) => 7,
            Value::Str(_) => 8,
            Value::Array(_) => 9,
        }
    }
    fn put_val(o: &mut Vec<u8>, v: &Value) {
        match v {
            Value::U64(x) => o.extend_from_slice(&x.to_le_bytes()),
            Value::I64(x) => o.extend_from_slice(&x.to_le_bytes()),
            Value::F64(x) => o.extend_from_slice(&x.to_le_bytes()),
            Value::Bool(b) => o.push(u8::from(*b)),
            Value::Str(s) => put_str(o, s),
            Value::Array(a) => {
                let et = a.first().map_or(10, type_of);
                o.extend_from_slice(&et.to_le_bytes());
                o.extend_from_slice(&(a.len() as u64).to_le_bytes());
                for x in a {
                    put_val(o, x);
                }
            }
        }
    }
    let mut o = Vec::new();
    o.extend_from_slice(MAGIC);
    o.extend_from_slice(&3u32.to_le_bytes());
    o.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    o.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut o, k);
        o.extend_from_slice(&type_of(v).to_le_bytes());
        put_val(&mut o, v);
    }
    let mut off = 0u64;
    let mut offs = Vec::new();
    for (name, dims, ty, data) in tensors {
        put_str(&mut o, name);
        o.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            o.extend_from_slice(&d.to_le_bytes());
        }
        o.extend_from_slice(&ty.to_u32().to_le_bytes());
        o.extend_from_slice(&off.to_le_bytes());
        offs.push(off);
        off = (off + data.len() as u64).div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT;
    }
    let start = (o.len() as u64).div_ceil(DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT;
    o.resize(start as usize, 0);
    for ((_, _, _, data), off) in tensors.iter().zip(offs) {
        o.resize((start + off) as usize, 0);
        o.extend_from_slice(data);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_bits(x: f32) -> u16 {
        // Exact for the small test values used here (normal, few mantissa bits).
        let b = x.to_bits();
        let sign = ((b >> 16) & 0x8000) as u16;
        if x == 0.0 {
            return sign;
        }
        let e = ((b >> 23) & 0xff) as i32 - 127 + 15;
        sign | ((e as u16) << 10) | ((b >> 13) & 0x3ff) as u16
    }

    fn synthetic() -> Vec<u8> {
        // A 2x32 Q4_1 tensor, a 32 Q8_0 tensor, a 3-element F32 tensor, F16.
        let mut q41 = Vec::new();
        for r in 0..2u8 {
            q41.extend_from_slice(&f16_bits(0.5).to_le_bytes());
            q41.extend_from_slice(&f16_bits(-1.0 - f32::from(r)).to_le_bytes());
            for j in 0..16u8 {
                q41.push(j | ((15 - j) << 4));
            }
        }
        let mut q80 = f16_bits(0.25).to_le_bytes().to_vec();
        q80.extend((0..32).map(|j| (j as i8 - 16) as u8));
        let f32s: Vec<u8> = [1.5f32, -2.0, 3.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let f16s: Vec<u8> = [f16_bits(1.0), f16_bits(-0.75)]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        write_gguf(
            &[
                ("general.architecture", Value::Str("llama".into())),
                ("n", Value::U64(7)),
                (
                    "names",
                    Value::Array(vec![Value::Str("a".into()), Value::Str("bc".into())]),
                ),
            ],
            &[
                ("w", vec![32, 2], GgmlType::Q4_1, q41),
                ("e", vec![32], GgmlType::Q8_0, q80),
                ("f", vec![3], GgmlType::F32, f32s),
                ("h", vec![2], GgmlType::F16, f16s),
            ],
        )
    }

    #[test]
    fn synthetic_file_parses_and_dequantizes() {
        let g = Gguf::parse(synthetic()).expect("parse");
        assert_eq!(g.version, 3);
        assert_eq!(
            g.get("general.architecture").and_then(Value::as_str),
            Some("llama")
        );
        assert_eq!(g.get("n").and_then(Value::as_u64), Some(7));
        assert_eq!(
            g.get("names").and_then(Value::as_array).map(<[_]>::len),
            Some(2)
        );
        let w = g.tensor("w").expect("w");
        assert_eq!((w.rows(), w.cols()), (2, 32));
        let v = g.dequantize(w).expect("deq");
        assert_eq!(v[0], -1.0);
        assert_eq!(v[1], -0.5);
        assert_eq!(v[16], 15.0 * 0.5 - 1.0);
        assert_eq!(v[32], -2.0);
        let e = g.dequantize(g.tensor("e").expect("e")).expect("deq");
        assert_eq!(e[0], -4.0);
        assert_eq!(e[31], 15.0 * 0.25);
        assert_eq!(
            g.dequantize(g.tensor("f").expect("f")).expect("deq"),
            vec![1.5, -2.0, 3.25]
        );
        assert_eq!(
            g.dequantize(g.tensor("h").expect("h")).expect("deq"),
            vec![1.0, -0.75]
        );
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error() {
        let good = synthetic();
        for n in 0..good.len() {
            // Truncations before the end of the last tensor must fail cleanly.
            let r = Gguf::parse(good[..n].to_vec());
            let last_end =
                Gguf::parse(good.clone()).map(|g| g.tensors.iter().map(|t| t.offset + t.len).max());
            if let Ok(Some(end)) = last_end {
                if (n as u64) < end {
                    assert!(r.is_err(), "truncated at {n} parsed");
                }
            }
        }
        // Byte flips anywhere: never panic.
        for i in 0..good.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut b = good.clone();
                b[i] ^= x;
                let _ = Gguf::parse(b);
            }
        }
        let mut huge = good.clone();
        huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Gguf::parse(huge).is_err());
        assert!(Gguf::parse(b"GGUF".to_vec()).is_err());
        assert!(Gguf::parse(b"GGML\x03\0\0\0".to_vec()).is_err());
    }

    #[test]
    fn f16_conversion_is_exact() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7c00).is_infinite());
    }
}
