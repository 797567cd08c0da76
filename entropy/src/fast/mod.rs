//! Fast table-driven entropy coding of byte streams (alphabet ≤ 256 symbols).
//!
//! A block is a canonical Huffman code limited to [`MAX_CODE_LEN`] = 11 bits, so one
//! lookup in a 2048-entry table decodes a symbol, and the symbols are dealt round-robin
//! into [`STREAMS`] = 4 independent bit streams so a decoder runs four lookups in
//! parallel. The code is built deterministically from the symbol counts and stored as
//! code lengths. Blocks that would not shrink are stored raw; blocks of one repeated
//! symbol store just that symbol. The caller keeps the symbol count (it is not stored).
//!
//! ```
//! use lcodec_entropy::fast;
//! let data: Vec<u8> = (0..10_000u32).map(|i| (i % 7 + i % 3) as u8).collect();
//! let mut packed = Vec::new();
//! fast::encode(&data, &mut packed);
//! assert!(packed.len() < data.len() / 2);
//! let mut back = vec![0u8; data.len()];
//! let used = fast::decode(&packed, &mut back)?;
//! assert_eq!((used, back), (packed.len(), data));
//! # Ok::<(), fast::DecodeError>(())
//! ```
//!
//! Block layout: mode byte; mode 0 (raw): the n symbols; mode 1 (constant): the symbol;
//! mode 2 (Huffman): lowest and highest present symbol, their code lengths as 4-bit
//! nibbles (low nibble first), four little-endian `u32` stream lengths, the four streams
//! (LSB-first bit order, symbol `i` in stream `i % 4`).

pub mod huffman;
pub mod tans;

pub use huffman::MAX_CODE_LEN;
use huffman::{TABLE_MASK, TABLE_SIZE, canonical_codes, code_lengths, decode_table, is_complete};

/// Number of interleaved bit streams in a Huffman block.
pub const STREAMS: usize = 4;

const MODE_RAW: u8 = 0;
const MODE_CONST: u8 = 1;
const MODE_HUFFMAN: u8 = 2;
const MODE_TANS: u8 = 3;

/// A malformed block: what was wrong, with the byte offset inside the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the block where the problem was found.
    pub offset: usize,
    /// What is wrong.
    pub what: String,
}

impl DecodeError {
    fn new(offset: usize, what: impl Into<String>) -> Self {
        DecodeError {
            offset,
            what: what.into(),
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fast entropy block, offset {}: {}",
            self.offset, self.what
        )
    }
}

impl std::error::Error for DecodeError {}

/// Symbol counts of `data`.
pub fn histogram(data: &[u8]) -> [u64; 256] {
    // Four sub-histograms break the store-to-load dependency on repeated symbols.
    let mut h = [[0u32; 256]; 4];
    let mut total = [0u64; 256];
    for part in data.chunks(1 << 30) {
        let mut it = part.chunks_exact(4);
        for c in &mut it {
            h[0][c[0] as usize] += 1;
            h[1][c[1] as usize] += 1;
            h[2][c[2] as usize] += 1;
            h[3][c[3] as usize] += 1;
        }
        for &b in it.remainder() {
            h[0][b as usize] += 1;
        }
        for s in 0..256 {
            total[s] +=
                u64::from(h[0][s]) + u64::from(h[1][s]) + u64::from(h[2][s]) + u64::from(h[3][s]);
        }
        h = [[0u32; 256]; 4];
    }
    total
}

/// Size in bytes a Huffman block for these counts would take (exact).
fn huffman_block_len(counts: &[u64; 256], lens: &[u8; 256]) -> usize {
    let (lo, hi) = symbol_range(lens);
    let mut bits = [0u64; STREAMS];
    // Streams get symbols round-robin; their bit totals are close to a quarter each,
    // but the exact lengths depend on order, so estimate with an upper bound per stream.
    let total_bits: u64 = (0..256).map(|s| counts[s] * u64::from(lens[s])).sum();
    for b in bits.iter_mut() {
        *b = total_bits / STREAMS as u64 + u64::from(MAX_CODE_LEN);
    }
    1 + 2
        + (hi - lo + 2) / 2
        + 4 * STREAMS
        + bits.iter().map(|b| b.div_ceil(8) as usize).sum::<usize>()
}

fn symbol_range(lens: &[u8; 256]) -> (usize, usize) {
    let lo = lens.iter().position(|&l| l > 0).unwrap_or(0);
    let hi = lens.iter().rposition(|&l| l > 0).unwrap_or(0);
    (lo, hi)
}

/// Appends an encoded block for `data` to `out` and returns the number of bytes written.
/// Picks raw, constant or Huffman, whichever is smallest.
pub fn encode(data: &[u8], out: &mut Vec<u8>) -> usize {
    let counts = histogram(data);
    encode_with_counts(data, &counts, out)
}

/// Like [`encode`] with the histogram already computed (must be `histogram(data)`).
pub fn encode_with_counts(data: &[u8], counts: &[u64; 256], out: &mut Vec<u8>) -> usize {
    encode_impl(data, counts, true, out)
}

/// Like [`encode`] but never picks tANS: Huffman, constant or raw only. Decodes about
/// twice as fast as a tANS block, at up to a few percent more size on skewed sources.
pub fn encode_no_tans(data: &[u8], out: &mut Vec<u8>) -> usize {
    encode_impl(data, &histogram(data), false, out)
}

fn encode_impl(data: &[u8], counts: &[u64; 256], allow_tans: bool, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    let distinct = counts.iter().filter(|&&c| c > 0).count();
    if distinct == 1 {
        let s = counts.iter().position(|&c| c > 0).unwrap_or(0);
        out.push(MODE_CONST);
        out.push(s as u8);
        return out.len() - start;
    }
    if distinct >= 2 {
        let lens = code_lengths(counts);
        let huff_bits: u64 = (0..256).map(|s| counts[s] * u64::from(lens[s])).sum();
        // tANS when its estimated size (ideal code lengths under the normalised counts,
        // plus its bigger header) beats Huffman's exact size by > 1 % (it decodes ~1.5× slower).
        let norm = tans::normalise(counts).filter(|norm| {
            if !allow_tans {
                return false;
            }
            let (lo, hi) = symbol_range(&lens);
            let bits: f64 = (0..256)
                .filter(|&s| counts[s] > 0)
                .map(|s| counts[s] as f64 * (tans::STATES as f64 / f64::from(norm[s])).log2())
                .sum();
            let extra_header = 8.0 * (2 * (hi - lo + 1) - (hi - lo + 2) / 2 + 8) as f64;
            bits + extra_header < huff_bits as f64 * 0.99
        });
        if let Some(norm) = norm {
            encode_tans(data, &norm, out);
        } else if huffman_block_len(counts, &lens) < data.len() + 1 {
            encode_huffman(data, &lens, out);
        }
        if out.len() - start > 0 && out.len() - start < data.len() + 1 {
            return out.len() - start;
        }
        out.truncate(start);
    }
    out.push(MODE_RAW);
    out.extend_from_slice(data);
    out.len() - start
}

/// Appends a raw (stored) block for `data` to `out`; returns the bytes written. For
/// streams a caller knows are near-random, this skips Huffman at a one-byte cost and
/// decodes at memory speed.
pub fn encode_raw(data: &[u8], out: &mut Vec<u8>) -> usize {
    out.push(MODE_RAW);
    out.extend_from_slice(data);
    1 + data.len()
}

struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    fn with_capacity(cap: usize) -> Self {
        BitWriter {
            out: Vec::with_capacity(cap),
            acc: 0,
            n: 0,
        }
    }
    #[inline(always)]
    fn put(&mut self, code: u32, len: u32) {
        self.acc |= u64::from(code) << self.n;
        self.n += len;
        if self.n >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.n -= 32;
        }
    }
    fn finish(mut self) -> Vec<u8> {
        while self.n > 0 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n = self.n.saturating_sub(8);
        }
        self.out
    }
}

fn encode_huffman(data: &[u8], lens: &[u8; 256], out: &mut Vec<u8>) {
    let codes = canonical_codes(lens);
    let (lo, hi) = symbol_range(lens);
    out.push(MODE_HUFFMAN);
    out.push(lo as u8);
    out.push(hi as u8);
    let mut s = lo;
    while s <= hi {
        let a = lens[s];
        let b = if s < hi { lens[s + 1] } else { 0 };
        out.push(a | (b << 4));
        s += 2;
    }
    let cap = data.len() / STREAMS + 16;
    let mut w: [BitWriter; STREAMS] = std::array::from_fn(|_| BitWriter::with_capacity(cap));
    let mut it = data.chunks_exact(STREAMS);
    for c in &mut it {
        for j in 0..STREAMS {
            let (code, len) = codes[c[j] as usize];
            w[j].put(code, len);
        }
    }
    for (j, &b) in it.remainder().iter().enumerate() {
        let (code, len) = codes[b as usize];
        w[j].put(code, len);
    }
    let streams: Vec<Vec<u8>> = w.into_iter().map(BitWriter::finish).collect();
    for st in &streams {
        out.extend_from_slice(&(st.len() as u32).to_le_bytes());
    }
    for st in &streams {
        out.extend_from_slice(st);
    }
}

fn encode_tans(data: &[u8], norm: &[u32; 256], out: &mut Vec<u8>) {
    let lo = norm.iter().position(|&n| n > 0).unwrap_or(0);
    let hi = norm.iter().rposition(|&n| n > 0).unwrap_or(0);
    out.push(MODE_TANS);
    out.push(lo as u8);
    out.push(hi as u8);
    for &n in &norm[lo..=hi] {
        out.extend_from_slice(&(n as u16).to_le_bytes());
    }
    let table = tans::EncodeTable::new(norm);
    let mut streams: Vec<Vec<u8>> = Vec::with_capacity(STREAMS);
    let mut rec: Vec<(u32, u32)> = Vec::with_capacity(data.len() / STREAMS + 1);
    for j in 0..STREAMS {
        rec.clear();
        let mut x = tans::STATES as u32;
        // Encode this stream's symbols last to first; the decoder reads them forward.
        let count = if data.len() > j {
            (data.len() - j).div_ceil(STREAMS)
        } else {
            0
        };
        for i in (0..count).rev() {
            let (nx, low, k) = table.step(x, data[j + i * STREAMS]);
            rec.push((low, k));
            x = nx;
        }
        let mut w = BitWriter::with_capacity(rec.len() / 2 + 8);
        w.put(x - tans::STATES as u32, tans::TABLE_LOG);
        for &(low, k) in rec.iter().rev() {
            w.put(low, k);
        }
        streams.push(w.finish());
    }
    for st in &streams {
        out.extend_from_slice(&(st.len() as u32).to_le_bytes());
    }
    for st in &streams {
        out.extend_from_slice(st);
    }
}

/// LSB-first bit reader that refills 7–8 bytes at a time and reads zeros past the end
/// (overruns are detected afterwards from the position).
#[derive(Clone, Copy)]
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    bits: u64,
    n: u32,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            pos: 0,
            bits: 0,
            n: 0,
        }
    }
    #[inline(always)]
    fn refill(&mut self) {
        let w = match self.data.get(self.pos..self.pos + 8) {
            Some(s) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                u64::from_le_bytes(a)
            }
            None => self.tail_word(),
        };
        self.bits |= w << self.n;
        self.pos += ((63 - self.n) >> 3) as usize;
        self.n |= 56;
    }
    #[cold]
    fn tail_word(&self) -> u64 {
        let mut a = [0u8; 8];
        for (i, x) in a.iter_mut().enumerate() {
            *x = self.data.get(self.pos + i).copied().unwrap_or(0);
        }
        u64::from_le_bytes(a)
    }
    #[inline(always)]
    fn symbol(&mut self, table: &[u16; TABLE_SIZE]) -> u8 {
        let e = table[(self.bits & TABLE_MASK) as usize];
        let len = u32::from(e >> 8);
        self.bits >>= len;
        self.n -= len;
        e as u8
    }
    /// One tANS step: the symbol at `*state`, then the next state from the stream.
    #[inline(always)]
    fn tans(&mut self, table: &[u32; tans::STATES], state: &mut u32) -> u8 {
        let e = table[(*state as usize) & (tans::STATES - 1)];
        let k = (e >> 8) & 0xff;
        let low = (self.bits & ((1u64 << k) - 1)) as u32;
        self.bits >>= k;
        self.n -= k;
        *state = (e >> 16) + low;
        e as u8
    }
    #[inline(always)]
    fn take(&mut self, k: u32) -> u32 {
        let v = (self.bits & ((1u64 << k) - 1)) as u32;
        self.bits >>= k;
        self.n -= k;
        v
    }
    /// True if the reader consumed more bits than the stream holds.
    fn overran(&self) -> bool {
        (self.pos as u64) * 8 - u64::from(self.n) > (self.data.len() as u64) * 8
    }
}

/// Decodes one block from the start of `data` into `out` (whose length is the symbol
/// count the encoder was given) and returns the number of bytes of `data` it used.
///
/// # Errors
/// [`DecodeError`] for a truncated or malformed block; never panics or reads out of bounds.
pub fn decode(data: &[u8], out: &mut [u8]) -> Result<usize, DecodeError> {
    let mut d = Decoder::new(data, out.len())?;
    d.fill(out)?;
    Ok(d.block_len())
}

enum Body<'a> {
    Raw(&'a [u8]),
    Const(u8),
    Huffman(Box<[u16; TABLE_SIZE]>, [BitReader<'a>; STREAMS]),
    Tans(
        Box<[u32; tans::STATES]>,
        [BitReader<'a>; STREAMS],
        [u32; STREAMS],
    ),
}

/// Incremental decoder of one block of `n` symbols, for callers that decode in pieces
/// (e.g. into a small cache-resident buffer) instead of into one large array.
pub struct Decoder<'a> {
    body: Body<'a>,
    /// Symbols not yet decoded.
    left: usize,
    /// Symbols decoded so far.
    done: usize,
    block_len: usize,
}

impl std::fmt::Debug for Decoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("left", &self.left)
            .field("block_len", &self.block_len)
            .finish()
    }
}

impl<'a> Decoder<'a> {
    /// Parses the header of the block at the start of `data`, which codes `n` symbols.
    ///
    /// # Errors
    /// A truncated or malformed header, or streams running past `data`.
    pub fn new(data: &'a [u8], n: usize) -> Result<Self, DecodeError> {
        let mode = *data
            .first()
            .ok_or_else(|| DecodeError::new(0, "empty block"))?;
        let (body, block_len) = match mode {
            MODE_RAW => {
                let src = data.get(1..).and_then(|d| d.get(..n)).ok_or_else(|| {
                    DecodeError::new(
                        1,
                        format!(
                            "raw block needs {n} bytes, {} left",
                            data.len().saturating_sub(1)
                        ),
                    )
                })?;
                (Body::Raw(src), 1 + n)
            }
            MODE_CONST => {
                let s = *data
                    .get(1)
                    .ok_or_else(|| DecodeError::new(1, "constant block without its symbol"))?;
                (Body::Const(s), 2)
            }
            MODE_HUFFMAN => huffman_header(data)?,
            MODE_TANS => tans_header(data)?,
            m => return Err(DecodeError::new(0, format!("unknown block mode {m}"))),
        };
        Ok(Decoder {
            body,
            left: n,
            done: 0,
            block_len,
        })
    }

    /// Bytes of input the whole block occupies.
    pub fn block_len(&self) -> usize {
        self.block_len
    }

    /// The symbols themselves if the block is stored raw (no decoding needed).
    pub fn raw(&self) -> Option<&'a [u8]> {
        match self.body {
            Body::Raw(r) => Some(r),
            _ => None,
        }
    }

    /// Decodes the next `out.len()` symbols. Every call but the last must ask for a
    /// multiple of [`STREAMS`] symbols.
    ///
    /// # Errors
    /// Asking for more symbols than remain, a non-multiple of 4 before the end, or a
    /// corrupt stream (detected when the block is finished).
    pub fn fill(&mut self, out: &mut [u8]) -> Result<(), DecodeError> {
        if out.len() > self.left {
            return Err(DecodeError::new(
                0,
                format!("asked for {} symbols, {} left", out.len(), self.left),
            ));
        }
        if out.len() < self.left && out.len() % STREAMS != 0 {
            return Err(DecodeError::new(
                0,
                "partial decodes must be multiples of 4 symbols",
            ));
        }
        match &mut self.body {
            Body::Raw(r) => out.copy_from_slice(&r[self.done..self.done + out.len()]),
            Body::Const(s) => out.fill(*s),
            Body::Huffman(table, readers) => decode_symbols(table, readers, out),
            Body::Tans(table, readers, states) => decode_tans(table, readers, states, out),
        }
        self.left -= out.len();
        self.done += out.len();
        if self.left == 0 {
            let readers = match &self.body {
                Body::Huffman(_, r) => &r[..],
                Body::Tans(_, r, states) => {
                    if states.iter().any(|&x| x != 0) {
                        return Err(DecodeError::new(
                            self.block_len,
                            "tANS streams did not end in the initial state",
                        ));
                    }
                    &r[..]
                }
                _ => &[],
            };
            for (j, r) in readers.iter().enumerate() {
                if r.overran() {
                    return Err(DecodeError::new(
                        self.block_len,
                        format!("stream {j} ended before all symbols were decoded"),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn huffman_header(data: &[u8]) -> Result<(Body<'_>, usize), DecodeError> {
    let (lo, hi) = match data.get(1..3) {
        Some(&[lo, hi]) => (lo as usize, hi as usize),
        _ => return Err(DecodeError::new(1, "truncated Huffman block header")),
    };
    if lo > hi {
        return Err(DecodeError::new(
            1,
            format!("symbol range {lo}..={hi} is empty"),
        ));
    }
    let nib = (hi - lo + 2) / 2;
    let nibbles = data
        .get(3..3 + nib)
        .ok_or_else(|| DecodeError::new(3, "truncated code lengths"))?;
    let mut lens = [0u8; 256];
    for (i, s) in (lo..=hi).enumerate() {
        let b = nibbles[i / 2];
        lens[s] = if i % 2 == 0 { b & 15 } else { b >> 4 };
    }
    if !is_complete(&lens) {
        return Err(DecodeError::new(
            3,
            "code lengths do not form a complete prefix code",
        ));
    }
    let mut at = 3 + nib;
    let mut sizes = [0usize; STREAMS];
    for s in sizes.iter_mut() {
        let b = data
            .get(at..at + 4)
            .ok_or_else(|| DecodeError::new(at, "truncated stream lengths"))?;
        *s = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        at += 4;
    }
    let mut streams: [&[u8]; STREAMS] = [&[]; STREAMS];
    for (j, st) in streams.iter_mut().enumerate() {
        *st = data.get(at..at.saturating_add(sizes[j])).ok_or_else(|| {
            DecodeError::new(
                at,
                format!("stream {j} of {} bytes runs past the block", sizes[j]),
            )
        })?;
        at += sizes[j];
    }
    Ok((
        Body::Huffman(decode_table(&lens), streams.map(BitReader::new)),
        at,
    ))
}

fn tans_header(data: &[u8]) -> Result<(Body<'_>, usize), DecodeError> {
    let (lo, hi) = match data.get(1..3) {
        Some(&[lo, hi]) => (lo as usize, hi as usize),
        _ => return Err(DecodeError::new(1, "truncated tANS block header")),
    };
    if lo > hi {
        return Err(DecodeError::new(
            1,
            format!("symbol range {lo}..={hi} is empty"),
        ));
    }
    let counts = data
        .get(3..3 + 2 * (hi - lo + 1))
        .ok_or_else(|| DecodeError::new(3, "truncated tANS counts"))?;
    let mut norm = [0u32; 256];
    for (i, c) in counts.chunks_exact(2).enumerate() {
        norm[lo + i] = u32::from(u16::from_le_bytes([c[0], c[1]]));
    }
    if !tans::is_valid(&norm) {
        return Err(DecodeError::new(
            3,
            format!("tANS counts do not sum to {}", tans::STATES),
        ));
    }
    let mut at = 3 + counts.len();
    let mut sizes = [0usize; STREAMS];
    for s in sizes.iter_mut() {
        let b = data
            .get(at..at + 4)
            .ok_or_else(|| DecodeError::new(at, "truncated stream lengths"))?;
        *s = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        at += 4;
    }
    let mut streams: [&[u8]; STREAMS] = [&[]; STREAMS];
    for (j, st) in streams.iter_mut().enumerate() {
        *st = data.get(at..at.saturating_add(sizes[j])).ok_or_else(|| {
            DecodeError::new(
                at,
                format!("stream {j} of {} bytes runs past the block", sizes[j]),
            )
        })?;
        at += sizes[j];
    }
    let mut readers = streams.map(BitReader::new);
    let mut states = [0u32; STREAMS];
    for (r, x) in readers.iter_mut().zip(states.iter_mut()) {
        r.refill();
        *x = r.take(tans::TABLE_LOG);
    }
    Ok((Body::Tans(tans::decode_table(&norm), readers, states), at))
}

fn decode_tans(
    table: &[u32; tans::STATES],
    readers: &mut [BitReader<'_>; STREAMS],
    states: &mut [u32; STREAMS],
    out: &mut [u8],
) {
    let [mut r0, mut r1, mut r2, mut r3] = *readers;
    let [mut x0, mut x1, mut x2, mut x3] = *states;
    const PER_ROUND: usize = 5 * STREAMS;
    let mut it = out.chunks_exact_mut(PER_ROUND);
    for c in &mut it {
        r0.refill();
        r1.refill();
        r2.refill();
        r3.refill();
        for g in c.chunks_exact_mut(STREAMS) {
            g[0] = r0.tans(table, &mut x0);
            g[1] = r1.tans(table, &mut x1);
            g[2] = r2.tans(table, &mut x2);
            g[3] = r3.tans(table, &mut x3);
        }
    }
    for (i, v) in it.into_remainder().iter_mut().enumerate() {
        let (r, x) = match i % STREAMS {
            0 => (&mut r0, &mut x0),
            1 => (&mut r1, &mut x1),
            2 => (&mut r2, &mut x2),
            _ => (&mut r3, &mut x3),
        };
        r.refill();
        *v = r.tans(table, x);
    }
    *readers = [r0, r1, r2, r3];
    *states = [x0, x1, x2, x3];
}

fn decode_symbols(
    table: &[u16; TABLE_SIZE],
    readers: &mut [BitReader<'_>; STREAMS],
    out: &mut [u8],
) {
    let [mut r0, mut r1, mut r2, mut r3] = *readers;
    // Each refill leaves ≥ 56 bits: five 11-bit symbols per stream per round.
    const PER_ROUND: usize = 5 * STREAMS;
    let mut it = out.chunks_exact_mut(PER_ROUND);
    for c in &mut it {
        r0.refill();
        r1.refill();
        r2.refill();
        r3.refill();
        for g in c.chunks_exact_mut(STREAMS) {
            g[0] = r0.symbol(table);
            g[1] = r1.symbol(table);
            g[2] = r2.symbol(table);
            g[3] = r3.symbol(table);
        }
    }
    for (i, x) in it.into_remainder().iter_mut().enumerate() {
        let r = match i % STREAMS {
            0 => &mut r0,
            1 => &mut r1,
            2 => &mut r2,
            _ => &mut r3,
        };
        r.refill();
        *x = r.symbol(table);
    }
    *readers = [r0, r1, r2, r3];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(data: &[u8]) -> usize {
        let mut packed = vec![0xAA]; // a prefix, to check offsets are block-relative
        let n = encode(data, &mut packed);
        assert_eq!(n, packed.len() - 1);
        let mut back = vec![0u8; data.len()];
        let used = decode(&packed[1..], &mut back).expect("decodes");
        assert_eq!(used, n);
        assert_eq!(back, data);
        n
    }

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    #[test]
    fn empty_input() {
        assert_eq!(round_trip(&[]), 1);
    }

    #[test]
    fn one_symbol_repeated() {
        assert_eq!(round_trip(&[42u8; 1000]), 2);
        assert_eq!(round_trip(&[0u8; 1]), 2);
    }

    #[test]
    fn uniform_256_symbols_stay_near_raw() {
        let mut seed = 1;
        let data: Vec<u8> = (0..100_000).map(|_| lcg(&mut seed) as u8).collect();
        let n = round_trip(&data);
        assert!(n <= data.len() + 1);
    }

    #[test]
    fn all_256_symbols_each_once_and_sequence() {
        let data: Vec<u8> = (0..=255u8).collect();
        round_trip(&data);
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 256) as u8).collect();
        round_trip(&data);
    }

    #[test]
    fn skewed_sources_compress_and_round_trip_at_every_length() {
        let mut seed = 7;
        for len in [2usize, 3, 5, 19, 20, 21, 39, 40, 41, 100, 1001, 65_537] {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    let r = lcg(&mut seed);
                    (r.trailing_zeros().min(30) + 100) as u8
                })
                .collect();
            round_trip(&data);
        }
        let data: Vec<u8> = (0..200_000)
            .map(|_| (lcg(&mut seed).trailing_zeros().min(40) + 3) as u8)
            .collect();
        let n = round_trip(&data);
        assert!(n < data.len() / 3, "{n}");
    }

    #[test]
    fn rare_symbols_force_length_limit() {
        let mut data = vec![0u8; 1 << 20];
        for (i, x) in data.iter_mut().enumerate() {
            *x = if i % 2 == 0 { 1 } else { 2 };
        }
        for s in 3..=255u8 {
            data[s as usize * 97] = s; // 253 symbols seen once each
        }
        round_trip(&data);
    }

    #[test]
    fn both_coders_are_chosen_where_they_fit() {
        let mut seed = 8;
        // Uniform over 16 symbols: Huffman is exact; tANS is not worth its header.
        let flat: Vec<u8> = (0..50_000).map(|_| (lcg(&mut seed) % 16) as u8).collect();
        let mut p = Vec::new();
        encode(&flat, &mut p);
        assert_eq!(p[0], MODE_HUFFMAN);
        // One symbol at ~90 %: Huffman pays ≥ 1 bit per symbol, tANS does not.
        let skew: Vec<u8> = (0..50_000)
            .map(|_| {
                if lcg(&mut seed) % 10 == 0 {
                    (lcg(&mut seed) % 5) as u8
                } else {
                    9
                }
            })
            .collect();
        let mut p = Vec::new();
        let n = encode(&skew, &mut p);
        assert_eq!(p[0], MODE_TANS);
        assert!(n < skew.len() / 10, "{n}");
        round_trip(&skew);
    }

    #[test]
    fn corrupt_blocks_error_and_never_panic() {
        let mut seed = 3;
        let flat: Vec<u8> = (0..5000).map(|_| (lcg(&mut seed) % 16) as u8).collect();
        let skew: Vec<u8> = (0..5000)
            .map(|_| {
                if lcg(&mut seed) % 10 == 0 {
                    (lcg(&mut seed) % 5) as u8
                } else {
                    9
                }
            })
            .collect();
        for (data, mode) in [(flat, MODE_HUFFMAN), (skew, MODE_TANS)] {
            corrupt_block_checks(&data, mode, &mut seed);
        }
    }

    fn corrupt_block_checks(data: &[u8], mode: u8, seed: &mut u64) {
        let mut packed = Vec::new();
        encode(data, &mut packed);
        assert_eq!(packed[0], mode);
        let mut out = vec![0u8; data.len()];
        // Every truncation errors.
        for cut in 0..packed.len() {
            assert!(decode(&packed[..cut], &mut out).is_err(), "cut at {cut}");
        }
        // Flipped bytes never panic; header damage is detected.
        for i in 0..packed.len() {
            for bit in [1u8, 0x10, 0x80] {
                let mut bad = packed.clone();
                bad[i] ^= bit;
                let _ = decode(&bad, &mut out);
            }
        }
        let mut bad = packed.clone();
        bad[0] = 9;
        assert!(decode(&bad, &mut out).is_err());
        // Asking for more symbols than were coded overruns the streams.
        let mut more = vec![0u8; data.len() * 4];
        assert!(decode(&packed, &mut more).is_err());
        // Random garbage never panics.
        for _ in 0..2000 {
            let len = (lcg(seed) % 64) as usize;
            let mut g: Vec<u8> = (0..len).map(|_| lcg(seed) as u8).collect();
            if !g.is_empty() {
                g[0] %= 4;
            }
            let _ = decode(&g, &mut out[..100]);
        }
    }

    #[test]
    fn incremental_decoding_matches_whole_decoding() {
        let mut seed = 5;
        let data: Vec<u8> = (0..10_007)
            .map(|_| (lcg(&mut seed).trailing_zeros() + 60) as u8)
            .collect();
        let mut packed = Vec::new();
        encode(&data, &mut packed);
        let mut d = Decoder::new(&packed, data.len()).expect("header");
        assert_eq!(d.block_len(), packed.len());
        let mut back = Vec::new();
        for piece in [4usize, 16, 20, 44, 1000, 8000, 923] {
            let mut buf = vec![0u8; piece];
            d.fill(&mut buf).expect("fills");
            back.extend_from_slice(&buf);
        }
        assert_eq!(back, data);
        assert!(d.fill(&mut [0u8; 1]).is_err());
        let mut d = Decoder::new(&packed, data.len()).expect("header");
        assert!(
            d.fill(&mut [0u8; 3]).is_err(),
            "non-multiple of 4 before the end"
        );
    }

    #[test]
    fn table_construction_is_deterministic() {
        let mut seed = 11;
        let data: Vec<u8> = (0..10_000).map(|_| (lcg(&mut seed) % 50) as u8).collect();
        let mut a = Vec::new();
        let mut b = Vec::new();
        encode(&data, &mut a);
        encode(&data, &mut b);
        assert_eq!(a, b);
    }
}
