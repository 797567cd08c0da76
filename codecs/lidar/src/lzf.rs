//! LZF, the byte-oriented LZ77 variant used by PCD `DATA binary_compressed`.
//!
//! A stream is a sequence of items: a control byte `c < 32` starts a literal run of
//! `c + 1` bytes; otherwise `c >> 5` is a length (7 means "7 plus the next byte") and
//! the low 5 bits with the following byte form an offset: copy `length + 2` bytes from
//! `offset + 1` bytes back in the output (the copy may overlap itself).

use lcodec_core::{Error, Result};

const MAX_OFF: usize = 1 << 13;
const MAX_LEN: usize = 7 + 255 + 2;
const HASH_BITS: u32 = 14;

/// Decompresses `src`, which must expand to exactly `size` bytes.
///
/// # Errors
/// [`Error::Malformed`] for a damaged stream (every length and offset is checked).
pub fn decompress(src: &[u8], size: usize) -> Result<Vec<u8>> {
    let bad = |at: usize, what: &str| Error::malformed(at as u64, format!("LZF stream: {what}"));
    let mut out = Vec::with_capacity(size);
    let mut i = 0;
    while i < src.len() {
        let c = usize::from(src[i]);
        i += 1;
        if c < 32 {
            let n = c + 1;
            let lit = src
                .get(i..i + n)
                .ok_or_else(|| bad(i, "literal run past the end"))?;
            if out.len() + n > size {
                return Err(bad(i, "output longer than declared"));
            }
            out.extend_from_slice(lit);
            i += n;
        } else {
            let mut len = c >> 5;
            if len == 7 {
                len += usize::from(*src.get(i).ok_or_else(|| bad(i, "truncated length"))?);
                i += 1;
            }
            let lo = usize::from(*src.get(i).ok_or_else(|| bad(i, "truncated offset"))?);
            i += 1;
            let back = ((c & 0x1f) << 8) + lo + 1;
            if back > out.len() {
                return Err(bad(i, "back-reference before the start"));
            }
            let n = len + 2;
            if out.len() + n > size {
                return Err(bad(i, "output longer than declared"));
            }
            let from = out.len() - back;
            for k in 0..n {
                let b = out[from + k];
                out.push(b);
            }
        }
    }
    if out.len() != size {
        return Err(bad(src.len(), "output shorter than declared"));
    }
    Ok(out)
}

fn hash(d: &[u8], i: usize) -> usize {
    let v = u32::from(d[i]) << 16 | u32::from(d[i + 1]) << 8 | u32::from(d[i + 2]);
    (v.wrapping_mul(2_654_435_761) >> (32 - HASH_BITS)) as usize
}

fn literals(mut lit: &[u8], out: &mut Vec<u8>) {
    while !lit.is_empty() {
        let n = lit.len().min(32);
        out.push((n - 1) as u8);
        out.extend_from_slice(&lit[..n]);
        lit = &lit[n..];
    }
}

/// Compresses `src` (greedy matching with a hash of the next three bytes).
pub fn compress(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len() / 2 + 16);
    let mut table = vec![usize::MAX; 1 << HASH_BITS];
    let (mut i, mut lit) = (0, 0);
    while i + 2 < src.len() {
        let h = hash(src, i);
        let cand = table[h];
        table[h] = i;
        if cand < i && i - cand <= MAX_OFF && src[cand..cand + 3] == src[i..i + 3] {
            let max = MAX_LEN.min(src.len() - i);
            let mut len = 3;
            while len < max && src[cand + len] == src[i + len] {
                len += 1;
            }
            literals(&src[lit..i], &mut out);
            let off = i - cand - 1;
            let l = len - 2;
            if l < 7 {
                out.push(((l << 5) | (off >> 8)) as u8);
            } else {
                out.push(((7 << 5) | (off >> 8)) as u8);
                out.push((l - 7) as u8);
            }
            out.push((off & 0xff) as u8);
            i += len;
            lit = i;
        } else {
            i += 1;
        }
    }
    literals(&src[lit..], &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let mut d = Vec::new();
        for i in 0..20000u32 {
            d.extend_from_slice(&(i / 7).to_le_bytes());
            d.push((i * 31 % 251) as u8);
        }
        d.extend(std::iter::repeat_n(9u8, 1000));
        for s in [&d[..], &d[..1], &d[..2], &[][..], &d[..300]] {
            let c = compress(s);
            assert_eq!(decompress(&c, s.len()).expect("decompress"), s);
        }
        let c = compress(&d);
        assert!(c.len() < d.len());
        assert!(decompress(&c, d.len() + 1).is_err());
        assert!(decompress(&c, d.len() - 1).is_err());
        assert!(decompress(&c[..c.len() - 1], d.len()).is_err());
        assert!(decompress(&[0x20, 0x05], 10).is_err());
        assert!(decompress(&[5, 1], 10).is_err());
        for k in 0..c.len().min(2000) {
            let mut e = c.clone();
            e[k] ^= 0x5a;
            let _ = decompress(&e, d.len());
        }
    }
}
