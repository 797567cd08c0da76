//! Order-preserving parallel chunk processing with bounded memory.
//!
//! Codecs whose chunks are independent use [`encode_byte_chunks`] and
//! [`decode_byte_chunks`]: at most `2 × threads` chunks are in memory at once, and output
//! order equals input order whatever the thread count.

use std::io::{Read, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::container::{Chunk, ChunkSink, ChunkSource};
use crate::{Error, Result};

/// Applies `f` to every item on up to `threads` scoped threads, keeping order.
/// Returns the first error (by item order) if any item fails.
///
/// # Errors
/// The first error returned by `f`.
pub fn map_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: &(dyn Fn(&T) -> Result<R> + Sync),
) -> Result<Vec<R>> {
    let threads = threads.max(1).min(items.len().max(1));
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<R>>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() {
                        break;
                    }
                    let r = f(&items[i]);
                    if let Ok(mut g) = slots[i].lock() {
                        *g = Some(r);
                    }
                }
            });
        }
    });
    let mut out = Vec::with_capacity(items.len());
    for s in slots {
        match s.into_inner() {
            Ok(Some(r)) => out.push(r?),
            _ => return Err(Error::InvalidArgument("a worker thread panicked".into())),
        }
    }
    Ok(out)
}

/// Reads up to `buf.len()` bytes, stopping early only at end of input.
///
/// # Errors
/// I/O errors other than `Interrupted`.
pub fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

/// Splits `src` into chunks of `chunk_size` bytes, encodes them with `f` on `threads`
/// threads and pushes the payloads in order. An empty input produces no chunk.
///
/// # Errors
/// I/O errors and errors from `f`.
pub fn encode_byte_chunks(
    src: &mut dyn Read,
    sink: &mut ChunkSink<'_>,
    chunk_size: usize,
    threads: usize,
    f: &(dyn Fn(&[u8]) -> Result<Vec<u8>> + Sync),
) -> Result<()> {
    let chunk_size = chunk_size.clamp(1, u32::MAX as usize);
    let threads = threads.max(1);
    loop {
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut eof = false;
        while batch.len() < threads {
            let mut buf = vec![0u8; chunk_size];
            let n = read_full(src, &mut buf)?;
            buf.truncate(n);
            if n > 0 {
                batch.push(buf);
            }
            if n < chunk_size {
                eof = true;
                break;
            }
        }
        let encoded = map_parallel(&batch, threads, &|b: &Vec<u8>| f(b))?;
        for (raw, enc) in batch.iter().zip(encoded) {
            sink.push(&enc, raw.len() as u32)?;
        }
        if eof {
            return Ok(());
        }
    }
}

/// Decodes every remaining chunk of `src` with `f` on `threads` threads and writes the
/// results in order. Each result must be exactly the chunk's declared `raw_len` bytes.
///
/// # Errors
/// Container errors, errors from `f`, a length mismatch naming the chunk, I/O errors.
pub fn decode_byte_chunks(
    src: &mut ChunkSource<'_>,
    dst: &mut dyn Write,
    threads: usize,
    f: &(dyn Fn(&Chunk) -> Result<Vec<u8>> + Sync),
) -> Result<()> {
    let threads = threads.max(1);
    loop {
        let batch = src.next_batch(threads)?;
        if batch.is_empty() {
            return Ok(());
        }
        let decoded = map_parallel(&batch, threads, &|c: &Chunk| {
            let out = f(c)?;
            if out.len() != c.raw_len as usize {
                return Err(c.malformed(format!(
                    "decoded to {} bytes, expected {}",
                    out.len(),
                    c.raw_len
                )));
            }
            Ok(out)
        })?;
        for d in decoded {
            dst.write_all(&d)?;
        }
    }
}
