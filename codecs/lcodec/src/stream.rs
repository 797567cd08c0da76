//! Push-style encoding: a [`Write`] that encodes what is written into it, for pipelines
//! that produce data over time (log shippers appending lines, sensor recorders).
//!
//! The codec runs on a worker thread and pulls the written bytes through a bounded
//! channel, so memory stays at about `4 × 1 MiB` plus what the codec buffers for one
//! batch of chunks, however long the stream runs. Completed chunks reach `dst` while
//! writing continues; [`StreamEncoder::finish`] writes the trailer. An encoder dropped
//! without `finish` aborts: the worker stops with an error and never writes a trailer, so
//! the output is recognisably incomplete (decoding it reports the truncation) rather than
//! a valid file that silently ends early.
//!
//! ```
//! use std::io::Write;
//! use lcodec::{EncodeOptions, Registry, StreamEncoder};
//!
//! let mut opts = EncodeOptions::default();
//! opts.params.insert("codec".into(), "log".into());
//! let mut enc = StreamEncoder::new(Registry::with_enabled(), Vec::new(), opts).unwrap();
//! for i in 0..1000 {
//!     writeln!(enc, "2026-11-23 10:00:{:02} INFO worker {} done", i % 60, i % 7).unwrap();
//! }
//! let (lc, report) = enc.finish().unwrap();
//! assert_eq!(report.codec, "log");
//! assert_eq!(report.compressed_size, lc.len() as u64);
//! ```

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::{EncodeOptions, EncodeReport, Error, Registry, Result, encode};

/// Bytes collected before they are handed to the worker.
const BLOCK: usize = 1 << 20;
/// Blocks in flight between the writer and the worker.
const IN_FLIGHT: usize = 4;

/// Encodes everything written into it; see the [module documentation](self).
pub struct StreamEncoder<W: Write + Send + 'static> {
    buf: Vec<u8>,
    tx: Option<SyncSender<Vec<u8>>>,
    abort: Arc<AtomicBool>,
    worker: Option<JoinHandle<Result<(W, EncodeReport)>>>,
}

impl<W: Write + Send + 'static> std::fmt::Debug for StreamEncoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamEncoder")
            .field("buffered", &self.buf.len())
            .finish()
    }
}

/// The worker's side of the channel: a `Read` over the blocks sent by the writer.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    block: Vec<u8>,
    pos: usize,
    abort: Arc<AtomicBool>,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.block.len() {
            match self.rx.recv() {
                Ok(b) => {
                    self.block = b;
                    self.pos = 0;
                }
                Err(_) if self.abort.load(Ordering::SeqCst) => {
                    return Err(io::Error::other(
                        "stream encoder dropped without finish(): output left incomplete",
                    ));
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.block.len() - self.pos);
        out[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl<W: Write + Send + 'static> StreamEncoder<W> {
    /// Starts encoding into `dst` with the codec named by `opts.params["codec"]` (or, if
    /// absent, the one detected from the first 64 KiB written).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a codec name not in `registry`; [`Error::Io`] if the
    /// worker thread cannot be started.
    pub fn new(registry: Registry, mut dst: W, opts: EncodeOptions) -> Result<Self> {
        if let Some(name) = opts.params.get("codec") {
            registry.resolve(name)?;
        }
        let (tx, rx) = sync_channel::<Vec<u8>>(IN_FLIGHT);
        let abort = Arc::new(AtomicBool::new(false));
        let mut reader = ChannelReader {
            rx,
            block: Vec::new(),
            pos: 0,
            abort: Arc::clone(&abort),
        };
        let worker = std::thread::Builder::new()
            .name("lcodec-stream".into())
            .spawn(move || {
                let report = encode(&registry, &mut reader, &mut dst, &opts)?;
                dst.flush()?;
                Ok((dst, report))
            })?;
        Ok(StreamEncoder {
            buf: Vec::with_capacity(BLOCK),
            tx: Some(tx),
            abort,
            worker: Some(worker),
        })
    }

    /// Hands the buffered bytes to the worker; on a dead worker, returns its error.
    fn send(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let block = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK));
        let sent = self.tx.as_ref().map(|tx| tx.send(block).is_ok());
        if sent == Some(true) {
            return Ok(());
        }
        // The worker stopped early (its receiver is gone): report why.
        self.tx = None;
        match self.join()? {
            Ok(_) => Err(Error::codec(
                "stream",
                "the encoder finished before all input was written",
            )),
            Err(e) => Err(e),
        }
    }

    fn join(&mut self) -> Result<Result<(W, EncodeReport)>> {
        let worker = self
            .worker
            .take()
            .ok_or_else(|| Error::codec("stream", "the encoder has already stopped"))?;
        worker
            .join()
            .map_err(|_| Error::codec("stream", "the encoder thread panicked"))
    }

    /// Encodes the rest, writes the trailer and returns the writer with the report.
    ///
    /// # Errors
    /// Any error of the codec or of `dst`.
    pub fn finish(mut self) -> Result<(W, EncodeReport)> {
        self.send()?;
        self.tx = None;
        self.join()?
    }
}

impl<W: Write + Send + 'static> Write for StreamEncoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BLOCK {
            self.send().map_err(io::Error::other)?;
        }
        Ok(n)
    }

    /// Hands buffered bytes to the encoder. This does not cut a chunk: chunks are written
    /// to `dst` when the codec completes them (or at [`StreamEncoder::finish`]).
    fn flush(&mut self) -> io::Result<()> {
        self.send().map_err(io::Error::other)
    }
}

impl<W: Write + Send + 'static> Drop for StreamEncoder<W> {
    fn drop(&mut self) {
        if self.worker.is_some() {
            self.abort.store(true, Ordering::SeqCst);
            self.tx = None;
            let _ = self.join();
        }
    }
}
