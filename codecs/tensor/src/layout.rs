//! Finding the tensor data regions and their element types in safetensors, GGUF and raw
//! inputs. A layout only says how to *model* bytes: every byte of the input is coded
//! whatever the layout claims, so a lying header costs compression, never correctness.

/// How the bytes of a region are modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemKind {
    /// Opaque bytes (headers, quantized blocks, unknown dtypes).
    Bytes,
    /// Little-endian integers of this many bytes (1, 2, 4 or 8).
    Int(u8),
    /// bfloat16.
    Bf16,
    /// IEEE half precision.
    F16,
    /// IEEE single precision.
    F32,
    /// GGML quantized blocks of `block` bytes that start with `scale` bytes of F16 scales
    /// (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1).
    QBlocks {
        /// Bytes per block.
        block: u8,
        /// Leading bytes of F16 scales (2 or 4).
        scale: u8,
    },
}

impl ElemKind {
    /// Element size in bytes (1 for opaque bytes).
    pub fn width(self) -> usize {
        match self {
            ElemKind::Bytes => 1,
            ElemKind::Int(w) => w as usize,
            ElemKind::Bf16 | ElemKind::F16 => 2,
            ElemKind::F32 => 4,
            ElemKind::QBlocks { block, .. } => block as usize,
        }
    }

    /// The kind for a dtype name as written by safetensors (`BF16`, `F32`, `I8`, ...) or
    /// on the command line (`bf16`, `f32`, ...); `None` for names it does not know.
    pub fn from_dtype(dtype: &str) -> Option<ElemKind> {
        Some(match dtype.to_ascii_uppercase().as_str() {
            "BF16" => ElemKind::Bf16,
            "F16" | "FP16" => ElemKind::F16,
            "F32" | "FP32" => ElemKind::F32,
            "F64" | "I64" | "U64" => ElemKind::Int(8),
            "I32" | "U32" => ElemKind::Int(4),
            "I16" | "U16" => ElemKind::Int(2),
            "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" | "F8_E8M0" | "F4" | "F6_E2M3"
            | "F6_E3M2" => ElemKind::Int(1),
            _ => return None,
        })
    }
}

/// A typed byte range of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Offset from the start of the input.
    pub start: u64,
    /// Length in bytes (a multiple of the kind's width).
    pub len: u64,
    /// How to model it.
    pub kind: ElemKind,
}

/// One named tensor of the input, for random access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// The tensor's name.
    pub name: String,
    /// Its dtype as the file names it (`BF16`, `F32`, `Q4_K`, ...).
    pub dtype: String,
    /// Its shape as the file gives it.
    pub shape: Vec<u64>,
    /// Offset of its data in the original file.
    pub start: u64,
    /// Length of its data in bytes.
    pub len: u64,
}

/// Which container the input was recognised as (stored in the codec parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Not recognised: coded as bytes.
    Generic = 0,
    /// safetensors.
    Safetensors = 1,
    /// GGUF.
    Gguf = 2,
    /// Raw array of one dtype (`-p dtype=...`).
    Raw = 3,
}

/// Where the tensors are and how to model every byte.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Container format.
    pub format: Format,
    /// Typed regions, sorted and non-overlapping; gaps are bytes.
    pub regions: Vec<Region>,
    /// How to model everything after the last region.
    pub tail_kind: ElemKind,
    /// Named tensors (for the random-access index).
    pub tensors: Vec<TensorEntry>,
}

impl Layout {
    /// A layout that codes everything as bytes.
    pub fn generic() -> Self {
        Layout {
            format: Format::Generic,
            regions: Vec::new(),
            tail_kind: ElemKind::Bytes,
            tensors: Vec::new(),
        }
    }
}

/// Sorts typed regions and drops empty, misaligned-length or overlapping ones.
fn normalise(mut regions: Vec<Region>) -> Vec<Region> {
    regions.retain(|r| r.len > 0 && r.kind != ElemKind::Bytes);
    for r in regions.iter_mut() {
        r.len -= r.len % r.kind.width() as u64;
    }
    regions.sort_by_key(|r| (r.start, r.len));
    let mut out: Vec<Region> = Vec::with_capacity(regions.len());
    let mut end = 0u64;
    for r in regions {
        if r.len == 0 || r.start < end {
            continue;
        }
        end = r.start + r.len;
        out.push(r);
    }
    out
}

/// Largest safetensors / GGUF header this codec parses (bigger ones are coded generically).
pub const MAX_HEADER: u64 = 128 << 20;

/// Length of the safetensors JSON header if `head` starts like a safetensors file.
pub fn safetensors_header_len(head: &[u8]) -> Option<u64> {
    let n = u64::from_le_bytes(head.get(..8)?.try_into().ok()?);
    if !(2..=MAX_HEADER).contains(&n) || head.get(8) != Some(&b'{') {
        return None;
    }
    Some(n)
}

/// Parses a safetensors file's first `8 + n` bytes; `None` if the JSON is not a
/// safetensors header.
pub fn parse_safetensors(buf: &[u8]) -> Option<Layout> {
    let n = safetensors_header_len(buf)? as usize;
    let json = buf.get(8..8 + n)?;
    let value: serde_json::Value = serde_json::from_slice(json).ok()?;
    let map = value.as_object()?;
    let base = 8 + n as u64;
    let mut regions = Vec::new();
    let mut tensors = Vec::new();
    for (name, info) in map {
        if name == "__metadata__" {
            continue;
        }
        let info = info.as_object()?;
        let dtype = info.get("dtype")?.as_str()?.to_string();
        let offs = info.get("data_offsets")?.as_array()?;
        let (a, b) = match offs.as_slice() {
            [a, b] => (a.as_u64()?, b.as_u64()?),
            _ => return None,
        };
        if b < a {
            return None;
        }
        let shape = match info.get("shape").and_then(|s| s.as_array()) {
            Some(s) => s.iter().filter_map(|d| d.as_u64()).collect(),
            None => Vec::new(),
        };
        let start = base.checked_add(a)?;
        let len = b - a;
        if let Some(kind) = ElemKind::from_dtype(&dtype) {
            regions.push(Region { start, len, kind });
        }
        tensors.push(TensorEntry {
            name: name.clone(),
            dtype,
            shape,
            start,
            len,
        });
    }
    tensors.sort_by(|x, y| (x.start, &x.name).cmp(&(y.start, &y.name)));
    Some(Layout {
        format: Format::Safetensors,
        regions: normalise(regions),
        tail_kind: ElemKind::Bytes,
        tensors,
    })
}

/// Outcome of trying to parse a GGUF header from a prefix of the file.
#[derive(Debug)]
pub enum GgufParse {
    /// Parsed.
    Done(Layout),
    /// The prefix ended inside the header: read more and try again.
    NeedMore,
    /// Not a GGUF header this parser understands.
    Invalid,
}

struct Cur<'a> {
    b: &'a [u8],
    at: usize,
}

/// `Err(true)` = ran past the end of the buffer; `Err(false)` = invalid.
type P<T> = std::result::Result<T, bool>;

impl Cur<'_> {
    fn take(&mut self, n: u64) -> P<&[u8]> {
        let n = usize::try_from(n).map_err(|_| false)?;
        if n > MAX_HEADER as usize {
            return Err(false);
        }
        let s = self
            .b
            .get(self.at..self.at.checked_add(n).ok_or(false)?)
            .ok_or(true)?;
        self.at += n;
        Ok(s)
    }
    fn u32(&mut self) -> P<u32> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> P<u64> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
    fn string(&mut self) -> P<&[u8]> {
        let n = self.u64()?;
        self.take(n)
    }
    /// Skips (or, for scalars, returns as u64) a metadata value of type `t`.
    fn value(&mut self, t: u32, depth: u32) -> P<Option<u64>> {
        let fixed = |t: u32| -> Option<u64> {
            match t {
                0 | 1 | 7 => Some(1),
                2 | 3 => Some(2),
                4..=6 => Some(4),
                10..=12 => Some(8),
                _ => None,
            }
        };
        if let Some(w) = fixed(t) {
            let s = self.take(w)?;
            let mut a = [0u8; 8];
            a[..s.len()].copy_from_slice(s);
            return Ok(Some(u64::from_le_bytes(a)));
        }
        match t {
            8 => {
                self.string()?;
                Ok(None)
            }
            9 if depth < 4 => {
                let et = self.u32()?;
                let n = self.u64()?;
                if let Some(w) = fixed(et) {
                    self.take(n.checked_mul(w).ok_or(false)?)?;
                } else {
                    for _ in 0..n {
                        self.value(et, depth + 1)?;
                    }
                }
                Ok(None)
            }
            _ => Err(false),
        }
    }
}

/// (block elements, block bytes) of a GGML tensor type, `None` if unknown.
fn ggml_block(t: u32) -> Option<(u64, u64)> {
    Some(match t {
        0 => (1, 4),       // F32
        1 | 30 => (1, 2),  // F16, BF16
        2 => (32, 18),     // Q4_0
        3 => (32, 20),     // Q4_1
        6 => (32, 22),     // Q5_0
        7 => (32, 24),     // Q5_1
        8 => (32, 34),     // Q8_0
        9 => (32, 36),     // Q8_1
        10 => (256, 84),   // Q2_K
        11 => (256, 110),  // Q3_K
        12 => (256, 144),  // Q4_K
        13 => (256, 176),  // Q5_K
        14 => (256, 210),  // Q6_K
        15 => (256, 292),  // Q8_K
        24 => (1, 1),      // I8
        25 => (1, 2),      // I16
        26 => (1, 4),      // I32
        27 | 28 => (1, 8), // I64, F64
        _ => return None,
    })
}

fn ggml_name(t: u32) -> String {
    match t {
        0 => "F32".into(),
        1 => "F16".into(),
        30 => "BF16".into(),
        2 => "Q4_0".into(),
        3 => "Q4_1".into(),
        6 => "Q5_0".into(),
        7 => "Q5_1".into(),
        8 => "Q8_0".into(),
        9 => "Q8_1".into(),
        10 => "Q2_K".into(),
        11 => "Q3_K".into(),
        12 => "Q4_K".into(),
        13 => "Q5_K".into(),
        14 => "Q6_K".into(),
        15 => "Q8_K".into(),
        24 => "I8".into(),
        25 => "I16".into(),
        26 => "I32".into(),
        27 => "I64".into(),
        28 => "F64".into(),
        t => format!("GGML_TYPE_{t}"),
    }
}

fn ggml_kind(t: u32) -> ElemKind {
    match t {
        0 => ElemKind::F32,
        1 => ElemKind::F16,
        30 => ElemKind::Bf16,
        25 => ElemKind::Int(2),
        26 => ElemKind::Int(4),
        27 | 28 => ElemKind::Int(8),
        24 => ElemKind::Int(1),
        2 => ElemKind::QBlocks {
            block: 18,
            scale: 2,
        },
        3 => ElemKind::QBlocks {
            block: 20,
            scale: 4,
        },
        6 => ElemKind::QBlocks {
            block: 22,
            scale: 2,
        },
        7 => ElemKind::QBlocks {
            block: 24,
            scale: 4,
        },
        8 => ElemKind::QBlocks {
            block: 34,
            scale: 2,
        },
        9 => ElemKind::QBlocks {
            block: 36,
            scale: 4,
        },
        _ => ElemKind::Bytes,
    }
}

/// Parses a GGUF (version 2 or 3) header from a prefix of the file.
pub fn parse_gguf(buf: &[u8]) -> GgufParse {
    match parse_gguf_inner(buf) {
        Ok(l) => GgufParse::Done(l),
        Err(true) => GgufParse::NeedMore,
        Err(false) => GgufParse::Invalid,
    }
}

fn parse_gguf_inner(buf: &[u8]) -> P<Layout> {
    let mut c = Cur { b: buf, at: 0 };
    if c.take(4)? != b"GGUF" {
        return Err(false);
    }
    let version = c.u32()?;
    if !(2..=3).contains(&version) {
        return Err(false);
    }
    let n_tensors = c.u64()?;
    let n_kv = c.u64()?;
    if n_tensors > 1 << 24 || n_kv > 1 << 24 {
        return Err(false);
    }
    let mut alignment = 32u64;
    for _ in 0..n_kv {
        let key = c.string()?.to_vec();
        let t = c.u32()?;
        let v = c.value(t, 0)?;
        if key == b"general.alignment" {
            if let Some(a) = v {
                alignment = a;
            }
        }
    }
    if alignment == 0 || alignment > 1 << 20 {
        return Err(false);
    }
    let mut infos = Vec::new();
    for _ in 0..n_tensors {
        let name = String::from_utf8_lossy(c.string()?).into_owned();
        let nd = c.u32()?;
        if nd > 8 {
            return Err(false);
        }
        let mut shape = Vec::new();
        for _ in 0..nd {
            shape.push(c.u64()?);
        }
        let t = c.u32()?;
        let off = c.u64()?;
        infos.push((name, shape, t, off));
    }
    let data_start = (c.at as u64).div_ceil(alignment) * alignment;
    let mut regions = Vec::new();
    let mut tensors = Vec::new();
    for (name, shape, t, off) in infos {
        let Some(start) = data_start.checked_add(off) else {
            continue;
        };
        let elems = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        let len = match (ggml_block(t), elems) {
            (Some((be, bb)), Some(n)) if n % be == 0 => (n / be).checked_mul(bb),
            _ => None,
        };
        let Some(len) = len else { continue };
        regions.push(Region {
            start,
            len,
            kind: ggml_kind(t),
        });
        // GGUF lists dimensions innermost first; report them outermost first like safetensors.
        let mut shape = shape;
        shape.reverse();
        tensors.push(TensorEntry {
            name,
            dtype: ggml_name(t),
            shape,
            start,
            len,
        });
    }
    tensors.sort_by(|x, y| (x.start, &x.name).cmp(&(y.start, &y.name)));
    Ok(Layout {
        format: Format::Gguf,
        regions: normalise(regions),
        tail_kind: ElemKind::Bytes,
        tensors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_and_ragged_regions_are_dropped_or_trimmed() {
        let r = normalise(vec![
            Region {
                start: 10,
                len: 9,
                kind: ElemKind::F32,
            },
            Region {
                start: 12,
                len: 4,
                kind: ElemKind::Bf16,
            },
            Region {
                start: 30,
                len: 0,
                kind: ElemKind::F32,
            },
            Region {
                start: 40,
                len: 8,
                kind: ElemKind::Bytes,
            },
        ]);
        assert_eq!(
            r,
            vec![Region {
                start: 10,
                len: 8,
                kind: ElemKind::F32
            }]
        );
    }

    #[test]
    fn truncated_gguf_asks_for_more() {
        let mut g = b"GGUF".to_vec();
        g.extend_from_slice(&3u32.to_le_bytes());
        g.extend_from_slice(&1u64.to_le_bytes());
        assert!(matches!(parse_gguf(&g), GgufParse::NeedMore));
        assert!(matches!(parse_gguf(b"GGUX\x03\0\0\0"), GgufParse::Invalid));
    }
}
