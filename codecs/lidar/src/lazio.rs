//! LAZ (LASzip) input and output through the `laz` crate.
//!
//! Reading decompresses the point records and hands them to the LAS path; writing
//! re-compresses them with the LASzip VLR found in the kept header, so the output is an
//! equivalent LAZ: same header and VLR bytes, identical point records after
//! decompression, compressed bytes possibly different from the input's.

use std::io::Cursor;

use laz::{LasZipCompressor, LasZipDecompressor, LazVlr};
use lcodec_core::{Error, Result};

use crate::format::{Cloud, Format, las_records, u16_at, u32_at};

/// Points decompressed per step (bounds the allocation for a lying header).
const STEP: usize = 1 << 16;

fn laz_err(e: impl std::fmt::Display) -> Error {
    Error::malformed(0, format!("LAZ: {e}"))
}

/// Finds and parses the LASzip VLR of a LAS header (bytes before the point data).
fn find_vlr(header: &[u8]) -> Result<LazVlr> {
    if header.len() < 227 {
        return Err(Error::truncated(header.len() as u64, "LAS header"));
    }
    let hsize = usize::from(u16_at(header, 94));
    let count = u32_at(header, 100);
    let mut p = hsize;
    for _ in 0..count {
        let h = header
            .get(p..p + 54)
            .ok_or_else(|| Error::truncated(p as u64, "LAS VLR header"))?;
        let user = &h[2..18];
        let id = u16_at(h, 18);
        let len = usize::from(u16_at(h, 20));
        let body = header
            .get(p + 54..p + 54 + len)
            .ok_or_else(|| Error::truncated(p as u64 + 54, "LAS VLR body"))?;
        if user.starts_with(b"laszip encoded") && id == LazVlr::RECORD_ID {
            return LazVlr::read_from(body).map_err(laz_err);
        }
        p += 54 + len;
    }
    Err(Error::malformed(
        hsize as u64,
        "LAZ file without a LASzip VLR",
    ))
}

/// Runs `f`, turning a panic inside the `laz` crate into an error.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(Error::malformed(0, "LAZ data rejected by the decompressor")))
}

/// Parses a LAZ file (the caller checked the LAS signature and the compression bits).
pub(crate) fn parse_laz(data: &[u8]) -> Result<Cloud> {
    let hsize = usize::from(u16_at(data, 94));
    let offset = u32_at(data, 96) as usize;
    let rec = usize::from(u16_at(data, 105));
    if hsize < 227 || offset < hsize || offset + 8 > data.len() || rec < 12 {
        return Err(Error::malformed(
            94,
            format!("LAZ header size {hsize}, point data offset {offset}, record {rec}"),
        ));
    }
    let mut n = u64::from(u32_at(data, 107));
    if n == 0 && hsize >= 255 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&data[247..255]);
        n = u64::from_le_bytes(b);
    }
    let vlr = find_vlr(&data[..offset])?;
    if vlr.items_size() != rec as u64 {
        return Err(Error::malformed(
            105,
            format!(
                "LAZ items of {} bytes, record length {rec}",
                vlr.items_size()
            ),
        ));
    }
    // Extended VLRs (LAS 1.4) follow the compressed points: keep them as the trailer.
    let mut trailer = Vec::new();
    if data[25] >= 4 && hsize >= 255 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&data[235..243]);
        let start = u64::from_le_bytes(b);
        if u32_at(data, 243) > 0 {
            if start < offset as u64 + 8 || start > data.len() as u64 {
                return Err(Error::malformed(235, format!("LAS EVLR offset {start}")));
            }
            trailer = data[start as usize..].to_vec();
        }
    }
    let recs = guarded(|| {
        let mut cur = Cursor::new(data);
        cur.set_position(offset as u64);
        let mut dec = LasZipDecompressor::new(cur, vlr).map_err(laz_err)?;
        let mut recs = Vec::new();
        let mut left = n;
        while left > 0 {
            let k = left.min(STEP as u64) as usize;
            let old = recs.len();
            recs.resize(old + k * rec, 0);
            dec.decompress_many(&mut recs[old..])
                .map_err(|e| Error::truncated(data.len() as u64, format!("LAZ points: {e}")))?;
            left -= k as u64;
        }
        Ok(recs)
    })?;
    let (ixyz, attrs) = las_records(&recs, rec);
    Ok(Cloud {
        format: Format::Laz,
        header: data[..offset].to_vec(),
        fields: 3 + attrs.len(),
        record_bytes: rec,
        xyz: Vec::new(),
        ixyz,
        trailer,
        attrs,
        ring_column: None,
    })
}

/// Writes a LAZ file: `header` (with its LASzip VLR), the compressed `records`, then
/// `trailer` (EVLRs, whose offset in the header is updated).
pub(crate) fn write_laz(
    header: &[u8],
    records: &[u8],
    trailer: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let vlr = find_vlr(header)?;
    let mut buf = header.to_vec();
    guarded(|| {
        let mut cur = Cursor::new(&mut buf);
        cur.set_position(header.len() as u64);
        let mut c = LasZipCompressor::new(&mut cur, vlr).map_err(laz_err)?;
        c.compress_many(records)?;
        c.done()?;
        Ok(())
    })?;
    if !trailer.is_empty() && buf.len() >= 243 {
        let at = buf.len() as u64;
        buf[235..243].copy_from_slice(&at.to_le_bytes());
    }
    out.extend_from_slice(&buf);
    out.extend_from_slice(trailer);
    Ok(())
}
