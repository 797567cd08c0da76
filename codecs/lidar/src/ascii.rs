//! ASCII point-cloud bodies (PCD `DATA ascii`, PLY `format ascii 1.0`).
//!
//! The body text is split into the x, y, z values (parsed as `f32`, coded lossily like
//! every other format) and a *skeleton*: the body with each x, y, z token replaced by a
//! one-byte marker, every other byte (separators, the other columns' tokens exactly as
//! written, line ends, blank lines) kept verbatim. The skeleton is stored losslessly
//! (zstd), so non-xyz columns round-trip byte for byte. Decoded x, y, z are written as
//! the shortest decimal that reads back as the decoded `f32` (Rust's `{}` formatting),
//! so the ASCII output is not byte-identical to the input, but every coordinate read
//! back is within `precision / 2` of the input read as `f32`. Coordinate tokens that do
//! not parse as a finite `f32` (`nan`, `inf`) are kept verbatim in the skeleton.

use std::io::Write as _;

use lcodec_core::{Error, Result};

/// Skeleton byte: a decoded coordinate goes here.
const MARK: u8 = 0;
/// Skeleton byte: the coordinate slot is kept verbatim (the token follows).
const LIT: u8 = 1;

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == b'\r'
}

/// Splits an ASCII body of `points` data lines of `tokens` whitespace-separated tokens
/// (x, y, z first) into coordinates and the skeleton. `base` is the body's offset in
/// the file (for error messages).
pub(crate) fn split_body(
    body: &[u8],
    points: u64,
    tokens: usize,
    base: u64,
) -> Result<(Vec<[f32; 3]>, Vec<u8>)> {
    if tokens < 3 {
        return Err(Error::malformed(
            base,
            "ASCII point lines need at least x y z",
        ));
    }
    if body.iter().any(|&b| b == MARK || b == LIT) {
        return Err(Error::Unsupported(
            "ASCII point cloud with control bytes 0x00/0x01 in its body".into(),
        ));
    }
    let mut xyz: Vec<[f32; 3]> = Vec::with_capacity(points.min(body.len() as u64 / 6) as usize);
    let mut skel = Vec::with_capacity(body.len() / 2);
    let mut pos = 0;
    let mut toks: Vec<(usize, usize)> = Vec::with_capacity(tokens);
    while pos < body.len() {
        let end = body[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |k| pos + k + 1);
        let line = &body[pos..end];
        toks.clear();
        let mut i = 0;
        while i < line.len() && line[i] != b'\n' {
            if is_space(line[i]) {
                i += 1;
                continue;
            }
            let s = i;
            while i < line.len() && line[i] != b'\n' && !is_space(line[i]) {
                i += 1;
            }
            toks.push((s, i));
        }
        if toks.is_empty() || xyz.len() as u64 >= points {
            skel.extend_from_slice(line);
            pos = end;
            continue;
        }
        if toks.len() != tokens {
            return Err(Error::malformed(
                base + pos as u64,
                format!(
                    "ASCII point line {} has {} values (expected {tokens})",
                    xyz.len(),
                    toks.len()
                ),
            ));
        }
        let prev = xyz.last().copied().unwrap_or([0.0; 3]);
        let mut p = [0f32; 3];
        let mut at = 0;
        for k in 0..3 {
            let (s, e) = toks[k];
            skel.extend_from_slice(&line[at..s]);
            let v = std::str::from_utf8(&line[s..e])
                .ok()
                .and_then(|t| t.parse::<f32>().ok())
                .filter(|v| v.is_finite());
            match v {
                Some(v) => {
                    skel.push(MARK);
                    p[k] = v;
                    at = e;
                }
                None => {
                    skel.push(LIT);
                    p[k] = prev[k];
                    at = s;
                }
            }
        }
        skel.extend_from_slice(&line[at..]);
        xyz.push(p);
        pos = end;
    }
    if (xyz.len() as u64) < points {
        return Err(Error::truncated(
            base + body.len() as u64,
            format!("{points} ASCII point lines, found {}", xyz.len()),
        ));
    }
    Ok((xyz, skel))
}

/// Writes the body back: the skeleton with each coordinate marker replaced by the
/// decoded value.
///
/// # Errors
/// [`Error::Codec`] when the skeleton and the number of points disagree.
pub(crate) fn fill(skel: &[u8], xyz: &[[f32; 3]], out: &mut Vec<u8>) -> Result<()> {
    let mut slot = 0usize;
    let mut pos = 0;
    while pos < skel.len() {
        let run = skel[pos..]
            .iter()
            .position(|&b| b == MARK || b == LIT)
            .unwrap_or(skel.len() - pos);
        out.extend_from_slice(&skel[pos..pos + run]);
        pos += run;
        if pos == skel.len() {
            break;
        }
        let p = xyz.get(slot / 3).ok_or_else(|| {
            Error::codec("lidar", "ASCII skeleton has more coordinates than points")
        })?;
        if skel[pos] == MARK {
            write!(out, "{}", p[slot % 3])?;
        }
        slot += 1;
        pos += 1;
    }
    if slot != 3 * xyz.len() {
        return Err(Error::codec(
            "lidar",
            format!(
                "ASCII skeleton has {slot} coordinates for {} points",
                xyz.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_fill() {
        let body = b"1.5 2 -3 7 x\n\n nan 0.25 1e2\t9 y\r\nextra\n";
        let (xyz, skel) = split_body(body, 2, 5, 0).expect("split");
        assert_eq!(xyz, vec![[1.5, 2.0, -3.0], [1.5, 0.25, 100.0]]);
        let mut out = Vec::new();
        fill(&skel, &xyz, &mut out).expect("fill");
        assert_eq!(out, b"1.5 2 -3 7 x\n\n nan 0.25 100\t9 y\r\nextra\n");
        assert!(split_body(b"1 2 3\n", 2, 3, 0).is_err());
        assert!(split_body(b"1 2 3 4\n", 1, 3, 0).is_err());
        assert!(fill(&skel, &xyz[..1], &mut out).is_err());
    }
}
