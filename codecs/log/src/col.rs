//! The default mode: typed columns coded with one fast adaptive binary range coder.
//!
//! Lines are split into templates and variables as in the other modes (a line symbol is
//! coded against the symbol that followed the previous one last time; a new template's
//! constant tokens go through a word dictionary with successor prediction). Every variable
//! token is then coded, in this order of preference:
//! - as a copy of an earlier variable of the same line, where the template's last line
//!   had the same equality (BGL's repeated node names);
//! - as a copy of one of the last 4096 long tokens, for identifier-like tokens (a hex run
//!   or a number of 6+ digits: request ids, block ids) and tokens new to their column,
//!   whatever their column; other tokens found there are copied when a rough bit count
//!   says the copy is cheaper than the column (dpkg's package names and versions, which
//!   recur across templates). In chunk mode 5 (the default since 2026-11-23; mode 4 is
//!   the same without this) a copied token also updates its column as if the column had
//!   coded it, so the next token of the column predicts from it;
//! - as a *skeleton* (the token with each run of up to 18 decimal digits, or of up to 16
//!   hex digits mixing digits and letters, replaced by a marker) and its numbers. Per
//!   column (template, token position) the skeletons form a dictionary: "same as last
//!   time" or an index (context: the previous variable's skeleton), a new one spelled out
//!   once. Each number is coded in its own sub-column (column, skeleton, run) as the
//!   cheapest, by a running estimate, of four predictions: the raw value, the difference
//!   to the sub-column's previous value, to the previous value at the same token position
//!   in any template with the same skeleton up to that number (header fields such as
//!   timestamps move line to line whatever the template), or to the previous number
//!   coded. The difference's bit count is coded
//!   against the sub-column's last bit count, its top 12 bits with the prefix as context,
//!   the rest as is; its digit count against the last one, so zero padding is free.
//!
//! All decisions go through an LZMA-style binary range coder. Probabilities are adaptive
//! counters in one hashed table (2^21 entries at most, fewer for small chunks); most
//! decisions mix a specific and a shared context with a small logistic mixer; literal text
//! (new skeletons and words, unmatched lines) mixes orders 1-4, the current word and a
//! match model, and inside a match first codes "the predicted byte". A typical variable
//! takes a handful of binary decisions, which decodes at 50+ MB/s per core.
//!
//! Payload after the mode byte: n_lines, flags u8 (bit 0: ends with '\n'), side_len,
//! side (zstd of lines longer than 16 KiB), then the range-coder bytes.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use lcodec_core::{Error, Result};

use crate::chunk::{
    LineKind, SYM_BASE, SYM_LONG, SYM_RAW, get_varint, put_varint, zstd_compress, zstd_decompress,
};
use crate::template::Template;

/// log2 of the probability table size.
const TBITS: u32 = 21;

/// Table size for a chunk of `len` bytes (the decoder derives it from the chunk length).
fn table_bits(len: usize) -> u32 {
    (usize::BITS - len.leading_zeros() + 3).clamp(12, TBITS)
}
/// Adaptation stops speeding down after this many updates of a context.
const RATE_LIMIT: u32 = 30;
/// Longest digit run coded as one number (10^18 < 2^63).
const MAX_RUN: usize = 18;
/// Marker of a number in a skeleton (digits never stay in skeletons).
const MARK: u8 = b'0';
/// Markers of a lower- and upper-case hexadecimal run (up to 16 digits).
const MARK_HEX: u8 = b'1';
const MARK_HEXU: u8 = b'2';
/// Size of the table of last values per (token position, skeleton, run).
const GLAST: usize = 4096;
/// Bits of a number's mantissa coded with the full prefix as context.
const PREFIX_BITS: u32 = 12;
/// Bit-count changes coded in unary before an escape.
const UNARY: u32 = 4;
/// Mixer learning rate.
const MIX_LR: i32 = 1;
/// Mixer weights stay within +-W_MAX (16.16: +-64).
const W_MAX: i32 = 1 << 22;
/// Shift of the mixer weight updates.
const MIX_SHIFT: u32 = 10;

fn bad(w: &str) -> Error {
    Error::codec("log", format!("column chunk: {w}"))
}

#[inline]
fn hh(a: u32, b: u32) -> u32 {
    let x = (a.rotate_left(13) ^ b.wrapping_mul(0x9E37_79B1)).wrapping_mul(0x85EB_CA6B);
    x ^ (x >> 15)
}

/// FNV-1a hasher for the encoder's skeleton dictionaries.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3);
        }
        self.0 = h;
    }
}

type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// One binary decision with a 12-bit probability of a 1.
trait BitIo {
    fn code(&mut self, bit: bool, p1: u32) -> bool;
}

/// Carry-propagating range encoder (the LZMA design).
struct Enc {
    low: u64,
    range: u32,
    cache: u8,
    cache_size: u64,
    out: Vec<u8>,
}

impl Enc {
    fn new() -> Self {
        Enc {
            low: 0,
            range: 0xFFFF_FFFF,
            cache: 0,
            cache_size: 1,
            out: Vec::new(),
        }
    }

    fn shift_low(&mut self) {
        if (self.low as u32) < 0xFF00_0000 || (self.low >> 32) != 0 {
            let carry = (self.low >> 32) as u8;
            let mut temp = self.cache;
            loop {
                self.out.push(temp.wrapping_add(carry));
                temp = 0xFF;
                self.cache_size -= 1;
                if self.cache_size == 0 {
                    break;
                }
            }
            self.cache = ((self.low >> 24) & 0xFF) as u8;
        }
        self.cache_size += 1;
        self.low = (self.low & 0x00FF_FFFF) << 8;
    }

    fn finish(mut self) -> Vec<u8> {
        for _ in 0..5 {
            self.shift_low();
        }
        self.out
    }
}

impl BitIo for Enc {
    #[inline]
    fn code(&mut self, bit: bool, p1: u32) -> bool {
        let bound = (self.range >> 12) * p1;
        if bit {
            self.range = bound;
        } else {
            self.low += bound as u64;
            self.range -= bound;
        }
        while self.range < (1 << 24) {
            self.range <<= 8;
            self.shift_low();
        }
        bit
    }
}

/// The matching decoder; reads zeros past the end (caught by [`Dec::check`]).
struct Dec<'a> {
    code: u32,
    range: u32,
    src: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    fn new(src: &'a [u8]) -> Self {
        let mut d = Dec {
            code: 0,
            range: 0xFFFF_FFFF,
            src,
            pos: 0,
        };
        for _ in 0..5 {
            d.code = (d.code << 8) | d.next() as u32;
        }
        d
    }

    #[inline]
    fn next(&mut self) -> u8 {
        let b = self.src.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn check(&self) -> Result<()> {
        if self.pos > self.src.len() + 8 {
            return Err(bad("range coder data ends early"));
        }
        Ok(())
    }
}

impl BitIo for Dec<'_> {
    #[inline]
    fn code(&mut self, _bit: bool, p1: u32) -> bool {
        let bound = (self.range >> 12) * p1;
        let bit = self.code < bound;
        if bit {
            self.range = bound;
        } else {
            self.code -= bound;
            self.range -= bound;
        }
        while self.range < (1 << 24) {
            self.range <<= 8;
            self.code = (self.code << 8) | self.next() as u32;
        }
        bit
    }
}

/// Adaptive binary contexts in a hashed table over a range coder.
struct Model<C> {
    c: C,
    /// Cost statistics (feature `stats`): the current category and bits per category.
    cat: usize,
    cost: [f64; 10],
    calls: [u64; 10],
    /// Per slot: 16-bit probability of a 1 (high half), update count (low byte).
    t: Vec<u32>,
    mask: usize,
    rate: [i32; RATE_LIMIT as usize + 1],
    stretch: Vec<i16>,
    /// `squash` over -2047..=2047 (index + 2047).
    squash: Vec<u16>,
    /// Mixer weights (16.16) per selector: two inputs and a bias.
    w: Vec<[i32; 3]>,
    /// Weights of the three-input mixer (three inputs and a bias).
    w3: Vec<[i32; 4]>,
    /// Weights of the literal mixer: [`LIT_IN`] inputs and a bias.
    wl: Vec<[i32; LIT_IN + 1]>,
    /// Literal history (all strings, each ended by '\n') and its match model.
    mm: crate::matcher::Matcher,
    word: u32,
}

/// Inputs of the literal mixer: orders 1-4, the current word, the match model.
const LIT_IN: usize = 6;
const MTAB_BITS: u32 = 16;
const MINLEN: usize = 5;

/// Number of mixer weight sets.
const NSEL: usize = 64;

impl<C: BitIo> Model<C> {
    fn new(c: C, bits: u32) -> Self {
        let mut rate = [0i32; RATE_LIMIT as usize + 1];
        for (n, r) in rate.iter_mut().enumerate() {
            *r = 8192 / (2 * n as i32 + 3);
        }
        let mut stretch = vec![0i16; 4096];
        let mut pi = 0usize;
        for x in -2047..=2047 {
            let v = crate::cm::squash(x) as usize;
            for s in stretch.iter_mut().take(v + 1).skip(pi) {
                *s = x as i16;
            }
            pi = pi.max(v + 1);
        }
        for s in stretch.iter_mut().skip(pi) {
            *s = 2047;
        }
        Model {
            c,
            cat: 0,
            cost: [0.0; 10],
            calls: [0; 10],
            t: vec![0x8000_0000; 1 << bits],
            mask: (1 << bits) - 1,
            rate,
            stretch,
            squash: (-2047..=2047)
                .map(|d| crate::cm::squash(d).clamp(1, 4095) as u16)
                .collect(),
            w: vec![[40_000, 40_000, 0]; NSEL],
            w3: vec![[30_000, 30_000, 30_000, 0]; NSEL],
            wl: vec![[16_000; LIT_IN + 1]; 64],
            mm: crate::matcher::Matcher::new(MTAB_BITS, MINLEN),
            word: 0,
        }
    }

    #[inline]
    fn upd(&mut self, i: usize, r: bool) {
        let s = &mut self.t[i];
        let p16 = (*s >> 16) as i32;
        let n = *s & 0xFF;
        let tgt = if r { 65535 } else { 0 };
        let np = p16 + (((tgt - p16) * self.rate[n as usize]) >> 12);
        *s = ((np as u32) << 16) | (n + (n < RATE_LIMIT) as u32);
    }

    /// One bit predicted from two contexts mixed by weight set `sel`.
    #[inline]
    fn bit2(&mut self, i1: u32, i2: u32, sel: usize, b: bool) -> bool {
        let (i1, i2) = (i1 as usize & self.mask, i2 as usize & self.mask);
        let x1 = self.stretch[(self.t[i1] >> 20) as usize] as i32;
        let x2 = self.stretch[(self.t[i2] >> 20) as usize] as i32;
        let w = &mut self.w[sel];
        let dot = (w[0] as i64 * x1 as i64 + w[1] as i64 * x2 as i64 + w[2] as i64 * 256) >> 16;
        let p = self.squash[(dot.clamp(-2047, 2047) + 2047) as usize] as u32;
        let r = self.c.code(b, p);
        if crate::cm::STATS {
            self.calls[self.cat] += 2;
            let q = if r { p } else { 4096 - p };
            self.cost[self.cat] -= (q as f64 / 4096.0).log2();
        }
        let err = (((r as i32) << 12) - p as i32) * MIX_LR;
        w[0] = (w[0] + ((x1 * err) >> MIX_SHIFT)).clamp(-W_MAX, W_MAX);
        w[1] = (w[1] + ((x2 * err) >> MIX_SHIFT)).clamp(-W_MAX, W_MAX);
        w[2] = (w[2] + ((256 * err) >> MIX_SHIFT)).clamp(-W_MAX, W_MAX);
        self.upd(i1, r);
        self.upd(i2, r);
        r
    }

    /// One literal byte: orders 1-4 (`kind` separates string kinds), the current word and
    /// the match model over the literal history, mixed.
    fn lit_byte(&mut self, kind: u32, b: u8) -> u8 {
        let n = self.mm.hist.len();
        let mut c4 = 0u32;
        for k in 1..=4 {
            if n >= k {
                c4 |= (self.mm.hist[n - k] as u32) << (8 * (k - 1));
            }
        }
        let bases = [
            hh(kind, c4 & 0xFFFF),
            hh(kind ^ 0x0101, c4 & 0xFF),
            hh(kind ^ 0x0303, c4 & 0xFF_FFFF),
            hh(0x0404, c4),
            hh(kind ^ 0x0505, self.word),
        ];
        let exp: i32 = if self.mm.len > 0 {
            self.mm.hist[self.mm.ptr] as i32
        } else {
            -1
        };
        let ml = self.mm.len.min(15);
        if exp >= 0 {
            // Inside a match: one decision "the predicted byte" before the full byte.
            let hit = self.bit2(
                hh(0x3A7E, ml),
                hh(kind ^ 0x3A7F, (c4 & 0xFFFF) << 4 | ml.min(3)),
                14,
                b as i32 == exp,
            );
            if hit {
                let got = exp as u8;
                self.push_hist(got);
                return got;
            }
        }
        let sel = if exp >= 0 { 1 + ml.min(6) as usize } else { 0 };
        let mut node = 1u32;
        for i in (0..8).rev() {
            let mi = if exp >= 0 && ((exp as u32 | 0x100) >> (i + 1)) == node {
                hh(0x3A7C, (ml << 1) | ((exp as u32 >> i) & 1))
            } else {
                hh(0x3A7D, i)
            };
            let idx = [
                bases[0].wrapping_add(node),
                bases[1].wrapping_add(node),
                bases[2].wrapping_add(node),
                bases[3].wrapping_add(node),
                bases[4].wrapping_add(node),
                mi,
            ];
            let bit = self.bitn(idx, sel * 8 + i as usize, (b >> i) & 1 != 0);
            node = (node << 1) | bit as u32;
        }
        let got = (node & 0xFF) as u8;
        self.push_hist(got);
        got
    }

    /// Makes the match model predict the literal history from `pos` on (0: no change),
    /// unless it already follows a match.
    fn point_match(&mut self, pos: usize) {
        if pos > 0 && pos < self.mm.hist.len() && self.mm.len == 0 {
            self.mm.ptr = pos;
            self.mm.len = 1;
        }
    }

    fn push_hist(&mut self, b: u8) {
        self.mm.push(b);
        self.word = if b.is_ascii_alphanumeric() || b >= 0x80 {
            hh(self.word, b as u32)
        } else {
            0
        };
    }

    /// One bit from [`LIT_IN`] contexts mixed by literal weight set `sel`.
    #[inline]
    fn bitn<const N: usize>(&mut self, idx: [u32; N], sel: usize, b: bool) -> bool {
        let mut x = [0i32; LIT_IN + 1];
        let mut slots = [0usize; N];
        for k in 0..N {
            slots[k] = idx[k] as usize & self.mask;
            x[k] = self.stretch[(self.t[slots[k]] >> 20) as usize] as i32;
        }
        x[LIT_IN] = 256;
        let w = &mut self.wl[sel];
        let mut dot = 0i64;
        for k in 0..=LIT_IN {
            dot += w[k] as i64 * x[k] as i64;
        }
        let dot = dot >> 16;
        let p = self.squash[(dot.clamp(-2047, 2047) + 2047) as usize] as u32;
        let r = self.c.code(b, p);
        if crate::cm::STATS {
            self.calls[self.cat] += N as u64;
            let q = if r { p } else { 4096 - p };
            self.cost[self.cat] -= (q as f64 / 4096.0).log2();
        }
        let err = (((r as i32) << 12) - p as i32) * MIX_LR;
        for k in 0..=LIT_IN {
            w[k] = (w[k] + ((x[k] * err) >> MIX_SHIFT)).clamp(-W_MAX, W_MAX);
        }
        for &sl in &slots {
            self.upd(sl, r);
        }
        r
    }

    /// One bit predicted from three contexts mixed by weight set `sel`.
    #[inline]
    fn bit3(&mut self, idx: [u32; 3], sel: usize, b: bool) -> bool {
        let i = [
            idx[0] as usize & self.mask,
            idx[1] as usize & self.mask,
            idx[2] as usize & self.mask,
        ];
        let x = [
            self.stretch[(self.t[i[0]] >> 20) as usize] as i32,
            self.stretch[(self.t[i[1]] >> 20) as usize] as i32,
            self.stretch[(self.t[i[2]] >> 20) as usize] as i32,
        ];
        let w = &mut self.w3[sel];
        let dot = (w[0] as i64 * x[0] as i64
            + w[1] as i64 * x[1] as i64
            + w[2] as i64 * x[2] as i64
            + w[3] as i64 * 256)
            >> 16;
        let p = self.squash[(dot.clamp(-2047, 2047) + 2047) as usize] as u32;
        let r = self.c.code(b, p);
        if crate::cm::STATS {
            self.calls[self.cat] += 3;
            let q = if r { p } else { 4096 - p };
            self.cost[self.cat] -= (q as f64 / 4096.0).log2();
        }
        let err = (((r as i32) << 12) - p as i32) * MIX_LR;
        w[0] = (w[0] + ((x[0] * err) >> MIX_SHIFT)).clamp(-W_MAX, W_MAX);
        w[1] = (w[1] + ((x[1] * err) >> MIX_SHIFT)).clamp(-W_MAX, W_MAX);
        w[2] = (w[2] + ((x[2] * err) >> MIX_SHIFT)).clamp(-W_MAX, W_MAX);
        w[3] = (w[3] + ((256 * err) >> MIX_SHIFT)).clamp(-W_MAX, W_MAX);
        self.upd(i[0], r);
        self.upd(i[1], r);
        self.upd(i[2], r);
        r
    }

    /// [`Model::tree`] with two mixed context bases.
    #[inline]
    fn tree2(&mut self, b1: u32, b2: u32, sel: usize, nbits: u32, v: u32) -> u32 {
        let mut node = 1u32;
        for i in (0..nbits).rev() {
            let b = self.bit2(
                b1.wrapping_add(node),
                b2.wrapping_add(node),
                sel,
                (v >> i) & 1 != 0,
            );
            node = (node << 1) | b as u32;
        }
        node - (1 << nbits)
    }

    #[inline]
    fn bit(&mut self, idx: u32, b: bool) -> bool {
        let s = &mut self.t[idx as usize & self.mask];
        let p16 = (*s >> 16) as i32;
        let p12 = ((p16 >> 4) as u32).clamp(1, 4095);
        let r = self.c.code(b, p12);
        if crate::cm::STATS {
            self.calls[self.cat] += 1;
            let p = if r { p12 } else { 4096 - p12 };
            self.cost[self.cat] -= (p as f64 / 4096.0).log2();
        }
        let n = *s & 0xFF;
        let tgt = if r { 65535 } else { 0 };
        let np = p16 + (((tgt - p16) * self.rate[n as usize]) >> 12);
        *s = ((np as u32) << 16) | (n + (n < RATE_LIMIT) as u32);
        r
    }

    /// Codes the low `nbits` bits of `v` MSB first, contexts `base + node`.
    #[inline]
    fn tree(&mut self, base: u32, nbits: u32, v: u32) -> u32 {
        let mut node = 1u32;
        for i in (0..nbits).rev() {
            let b = self.bit(base.wrapping_add(node), (v >> i) & 1 != 0);
            node = (node << 1) | b as u32;
        }
        node - (1 << nbits)
    }

    /// Codes `nbits` bits of `v` at probability one half.
    #[inline]
    fn direct(&mut self, nbits: u32, v: u64) -> u64 {
        let mut r = 0u64;
        for i in (0..nbits).rev() {
            r = (r << 1) | self.c.code((v >> i) & 1 != 0, 2048) as u64;
            if crate::cm::STATS {
                self.cost[self.cat] += 1.0;
            }
        }
        r
    }

    /// A 32-bit length: its bit count under a context, then the bits below the top one.
    fn length(&mut self, ctx: u32, v: u32) -> u32 {
        let n = self.tree(hh(ctx, 0x4C45), 6, 32 - v.leading_zeros());
        if n <= 1 {
            return n;
        }
        let n = n.min(32);
        let low = self.direct(n - 1, v as u64) as u32;
        (1u32 << (n - 1)) | low
    }
}

/// Per number sub-column: the previous value and width and the running costs of the
/// three predictions.
/// Per number sub-column: the previous value and width and the running costs of the
/// three predictions.
#[derive(Clone, Default)]
struct Sub {
    last: u64,
    lastw: u8,
    prev_n: u8,
    cost: [u32; 4],
}

struct Skel {
    bytes: Vec<u8>,
    /// Per number: its key (see [`Col::add_skel`]) and sub-column index.
    keys: Vec<u32>,
    subs: Vec<u32>,
    /// Hash of the whole skeleton.
    h: u32,
}

/// After a ring copy: a skeleton new to the column joins its dictionary (both sides).
fn learn_skel(col: &mut Col, skel: &[u8], p: usize) -> u32 {
    match col.map.get(skel) {
        Some(&id) => id,
        None => {
            let id = col.skels.len() as u32;
            col.map.insert(skel.to_vec(), id);
            col.add_skel(skel, p);
            id
        }
    }
}

impl Col {
    /// Adds a skeleton of this column (at token position `p`). Each of its numbers gets its
    /// own sub-column and a key from the token position and the skeleton up to that number
    /// (numbers of different skeletons and templates with a common start share the
    /// previous value of [`St::glast`] and some contexts).
    fn add_skel(&mut self, bytes: &[u8], p: usize) {
        let mut keys = Vec::new();
        let mut subs = Vec::new();
        let mut h = hh(0x5049, p as u32);
        for &b in bytes {
            if is_mark(b) {
                keys.push(hh(h, b as u32 | (keys.len() as u32) << 8));
                subs.push(self.subs.len() as u32);
                self.subs.push(Sub {
                    cost: [16, 0, 16, 24],
                    ..Sub::default()
                });
            }
            h = hh(h, b as u32);
        }
        self.skels.push(Skel {
            bytes: bytes.to_vec(),
            keys,
            subs,
            h,
        });
    }
}

#[derive(Default)]
struct Col {
    skels: Vec<Skel>,
    subs: Vec<Sub>,
    last: u32,
    /// Where the column's last new skeleton starts in the literal history (0: none).
    lit_pos: usize,
    /// Skeleton -> index.
    map: FnvMap<Vec<u8>, u32>,
}

/// Per template: its columns and, per position, an earlier variable position whose token
/// equalled this one on the template's last line (`u16::MAX`: none).
struct Tpl {
    cols: Vec<Col>,
    links: Vec<u16>,
}

/// Coding state shared by encoder and decoder.
struct St {
    tpls: Vec<Tpl>,
    /// Per line symbol: the last two different symbols that followed it.
    succ: Vec<[u32; 2]>,
    prev_sym: u32,
    prev2: u32,
    prev_cr: bool,
    /// The last number coded (any column).
    line_num: u64,
    /// The bit count of the last number coded.
    line_n: u32,
    glast: Vec<u64>,
    /// Constant tokens of template definitions, in order of first use.
    words: Vec<Vec<u8>>,
    /// Encoder only: word -> index.
    word_ids: FnvMap<Vec<u8>, u32>,
    /// Per word + 1 (0: template start): the word that followed it last time.
    wsucc: Vec<u32>,
    /// Decoder only: the last [`RING`] variable tokens of at least [`RING_MIN`] bytes, any
    /// column.
    ring: Vec<Vec<u8>>,
    ring_pos: u64,
    /// Encoder only: token -> its last ring position.
    ring_map: FnvMap<Vec<u8>, u64>,
}

/// Size of the ring of recent long tokens (a power of two).
const RING: usize = 4096;
const RING_BITS: u32 = 12;
/// Identifier-like tokens (which may be coded as ring copies) have a hex run or a number
/// of at least this many digits.
const ID_MIN: u8 = 6;
/// Shortest token kept in the ring.
const RING_MIN: usize = 5;

impl St {
    fn new() -> Self {
        St {
            tpls: Vec::new(),
            succ: vec![[0; 2]; 2],
            prev_sym: 0,
            prev2: 0,
            prev_cr: false,
            line_num: 0,
            line_n: 0,
            glast: vec![0; GLAST],
            words: Vec::new(),
            word_ids: FnvMap::default(),
            wsucc: vec![u32::MAX],
            ring: Vec::new(),
            ring_pos: 0,
            ring_map: FnvMap::default(),
        }
    }
}

#[inline]
fn is_mark(b: u8) -> bool {
    matches!(b, MARK | MARK_HEX | MARK_HEXU)
}

#[inline]
fn zz(d: i64) -> u64 {
    ((d << 1) ^ (d >> 63)) as u64
}

#[inline]
fn unzz(x: u64) -> i64 {
    ((x >> 1) as i64) ^ -((x & 1) as i64)
}

#[inline]
fn bitlen(x: u64) -> u32 {
    64 - x.leading_zeros()
}

fn digits(v: u64, hex: bool) -> u8 {
    if hex {
        return (bitlen(v).max(1)).div_ceil(4) as u8;
    }
    let mut n = 1u8;
    let mut x = v;
    while x >= 10 {
        x /= 10;
        n += 1;
    }
    n
}

const MAX_VALUE: u64 = 999_999_999_999_999_999;

/// Codes a line symbol: a hit on the last successor of the previous symbol, or the
/// symbol itself (at most `max`).
fn code_sym<C: BitIo>(m: &mut Model<C>, st: &mut St, sym: u32, max: u32) -> Result<u32> {
    m.cat = 0;
    let [pred, pred2] = st.succ[st.prev_sym as usize];
    let hit = m.bit2(
        hh(0x5359_4D00, st.prev_sym),
        hh(hh(0x5359_4D03, st.prev_sym), st.prev2),
        15,
        sym == pred,
    );
    let s = if hit {
        pred
    } else if pred2 != pred
        && m.bit2(
            hh(0x5359_4D04, st.prev_sym),
            hh(hh(0x5359_4D05, st.prev_sym), st.prev2),
            17,
            sym == pred2,
        )
    {
        pred2
    } else {
        let nb = 32 - max.leading_zeros();
        let s = m.tree2(
            hh(0x5359_4D01, nb),
            hh(hh(0x5359_4D02, st.prev_sym), nb),
            1,
            nb,
            sym,
        );
        if s > max {
            return Err(bad("line symbol out of range"));
        }
        s
    };
    let e = &mut st.succ[st.prev_sym as usize];
    if e[0] != s {
        *e = [s, e[0]];
    }
    st.prev2 = st.prev_sym;
    st.prev_sym = s;
    Ok(s)
}

fn code_cr<C: BitIo>(m: &mut Model<C>, st: &mut St, cr: bool, sym: u32) -> bool {
    m.cat = 1;
    let got = m.bit(hh(0x4352_0000 | st.prev_cr as u32, sym), cr);
    st.prev_cr = got;
    got
}

/// Encodes a byte string ended by '\n' (which it must not contain), order-2 contexts.
fn enc_str(m: &mut Model<Enc>, kind: u32, s: &[u8]) {
    for &b in s.iter().chain(std::iter::once(&b'\n')) {
        m.lit_byte(kind, b);
    }
}

/// Decodes a string written by [`enc_str`], appending it to `out` (at most `budget` bytes).
fn dec_str(m: &mut Model<Dec<'_>>, kind: u32, out: &mut Vec<u8>, budget: usize) -> Result<()> {
    let start = out.len();
    loop {
        let b = m.lit_byte(kind, 0);
        if b == b'\n' {
            return Ok(());
        }
        if out.len() - start >= budget {
            return Err(bad("string longer than the chunk"));
        }
        out.push(b);
    }
}

/// Codes one number of a sub-column (`hex`: a hexadecimal run). `sc` is the sub-column's
/// hash.
#[allow(clippy::too_many_arguments)]
fn code_num<C: BitIo>(
    m: &mut Model<C>,
    sub: &mut Sub,
    g: &mut u64,
    lp: &mut u64,
    line_n: &mut u32,
    sc: u32,
    pk: u32,
    hex: bool,
    v: u64,
    w: u8,
) -> Result<(u64, u8)> {
    let mut mode = 0usize;
    for k in 1..4 {
        if sub.cost[k] < sub.cost[mode] {
            mode = k;
        }
    }
    let refs = [sub.last, *g, 0, *lp];
    let x = if mode == 2 {
        v
    } else {
        zz(v.wrapping_sub(refs[mode]) as i64)
    };
    m.cat = 5;
    let mc = hh(sc, mode as u32);
    let coarse = hh(0xC0A5, (mode as u32) << 8 | (hex as u32) << 7);
    let pn = sub.prev_n as u32;
    let ln = hh(hh(pk, mode as u32), *line_n);
    let n = if m.bit3(
        [
            hh(mc, 0x180 | pn),
            hh(coarse, 0x180 | pn),
            hh(ln, 0x180 | pn),
        ],
        30 + mode,
        bitlen(x) == pn,
    ) {
        pn
    } else {
        // Direction, then the distance in unary up to UNARY steps, then an escape.
        let v = bitlen(x);
        let bases = [
            hh(mc, 0x100 | pn),
            hh(coarse, 0x100 | pn),
            hh(ln, 0x100 | pn),
        ];
        let up = m.bit3(bases, 36 + mode, v > pn);
        let room = if up { 64 - pn } else { pn };
        if room == 0 {
            return Err(bad("number length out of range"));
        }
        let want = if up {
            v.wrapping_sub(pn)
        } else {
            pn.wrapping_sub(v)
        };
        let mut d = 1u32;
        loop {
            if d == room || d > UNARY {
                break;
            }
            let node = (up as u32) << 5 | d;
            let stop = m.bit3(
                [
                    bases[0].wrapping_add(node),
                    bases[1].wrapping_add(node),
                    bases[2].wrapping_add(node),
                ],
                36 + mode,
                want == d,
            );
            if stop {
                break;
            }
            d += 1;
        }
        if d > UNARY {
            // Escape: the rest of the distance in 6 bits.
            let rest = m.tree2(
                hh(mc, 0x1C0 | up as u32),
                hh(coarse, 0x1C0 | up as u32),
                30 + mode,
                6,
                want.wrapping_sub(d),
            );
            d += rest;
        }
        if d > room {
            return Err(bad("number length out of range"));
        }
        if up { pn + d } else { pn - d }
    };
    *line_n = n;
    if n > 64 {
        return Err(bad("number too long"));
    }
    let x = if n <= 1 {
        n as u64
    } else {
        let nb = n - 1;
        let hb = nb.min(PREFIX_BITS);
        m.cat = 6;
        let top = m.tree2(
            hh(mc, 0x200 | n),
            hh(coarse, 0x200 | n),
            40 + mode,
            hb,
            (x >> (nb - hb)) as u32,
        ) as u64;
        let low = m.direct(nb - hb, x);
        (1u64 << nb) | (top << (nb - hb)) | (low & ((1u64 << (nb - hb)) - 1))
    };
    let v = if mode == 2 {
        x
    } else {
        refs[mode].wrapping_add(unzz(x) as u64)
    };
    let (max_v, max_w) = if hex {
        (u64::MAX, 16)
    } else {
        (MAX_VALUE, MAX_RUN)
    };
    if v > max_v {
        return Err(bad("number out of range"));
    }
    // Width: as last time, else natural, else explicit.
    m.cat = 7;
    let nat = digits(v, hex);
    let same = m.bit2(
        hh(sc, 0x300 | (nat == sub.lastw) as u32),
        hh(
            0x3000 | (hex as u32) << 10 | (nat as u32) << 5,
            sub.lastw as u32,
        ),
        18,
        w == sub.lastw,
    );
    let w = if same {
        sub.lastw
    } else if m.bit2(
        hh(sc, 0x302),
        hh(
            0x3100 | (hex as u32) << 10 | (nat as u32) << 5,
            sub.lastw as u32,
        ),
        19,
        w == nat,
    ) {
        nat
    } else {
        nat + m.tree2(
            hh(sc, 0x303),
            hh(
                0x3200 | (hex as u32) << 10 | (nat as u32) << 5,
                sub.lastw as u32,
            ),
            20,
            5,
            w.wrapping_sub(nat) as u32,
        ) as u8
    };
    if w < nat || w as usize > max_w {
        return Err(bad("number width out of range"));
    }
    num_seen(sub, g, lp, v, w, n);
    Ok((v, w))
}

/// The state updates of [`code_num`] once `v` (width `w`, coded with `n` bits) is known.
fn num_seen(sub: &mut Sub, g: &mut u64, lp: &mut u64, v: u64, w: u8, n: u32) {
    let refs = [sub.last, *g, 0, *lp];
    for (k, r) in refs.iter().enumerate() {
        let xk = if k == 2 {
            v
        } else {
            zz(v.wrapping_sub(*r) as i64)
        };
        sub.cost[k] = sub.cost[k] - (sub.cost[k] >> 8) + (bitlen(xk) << 4);
    }
    sub.last = v;
    sub.lastw = w;
    sub.prev_n = n as u8;
    *g = v;
    *lp = v;
}

/// Encoder only: whether a ring copy at distance `d` is likely cheaper than coding the
/// token (skeleton `skel`, numbers `nums`) through its column: a rough bit count of each.
fn ring_cheaper(
    col: &Col,
    glast: &[u64],
    lp: u64,
    skel: &[u8],
    nums: &[(u64, u8, u8)],
    d: u64,
) -> bool {
    let ring = 2.0 + (d as f64).log2();
    let (mut c, id) = match col.map.get(skel) {
        Some(&id) if id == col.last => (0.3, id),
        Some(&id) => (1.0 + (col.skels.len() as f64).log2(), id),
        None => return true,
    };
    let sk = &col.skels[id as usize];
    for (k, &(v, _, _)) in nums.iter().enumerate() {
        let sub = &col.subs[sk.subs[k] as usize];
        let g = glast[sk.keys[k] as usize % GLAST];
        let mut mode = 0usize;
        for j in 1..4 {
            if sub.cost[j] < sub.cost[mode] {
                mode = j;
            }
        }
        let r = [sub.last, g, 0, lp][mode];
        let n = bitlen(if mode == 2 {
            v
        } else {
            zz(v.wrapping_sub(r) as i64)
        });
        c += 0.3 + n as f64;
    }
    ring < c
}

/// Chunk mode 5: after a ring copy, the column learns the token as if it had coded it
/// (its last skeleton, and each number's previous value, width and prediction costs), so
/// a later token of the column predicts from it.
fn ring_seen(
    col: &mut Col,
    st_glast: &mut [u64],
    lp: &mut u64,
    line_n: &mut u32,
    nums: &[(u64, u8, u8)],
) {
    let id = col.last;
    let sk = &col.skels[id as usize];
    for (k, &(v, w, _)) in nums.iter().enumerate() {
        let sub = &mut col.subs[sk.subs[k] as usize];
        let g = &mut st_glast[sk.keys[k] as usize % GLAST];
        let mut mode = 0usize;
        for j in 1..4 {
            if sub.cost[j] < sub.cost[mode] {
                mode = j;
            }
        }
        let r = [sub.last, *g, 0, *lp][mode];
        let n = bitlen(if mode == 2 {
            v
        } else {
            zz(v.wrapping_sub(r) as i64)
        });
        *line_n = n;
        num_seen(sub, g, lp, v, w, n);
    }
}

/// Codes which skeleton of column `col` a token uses (`n` = the column's count means new).
fn code_skel<C: BitIo>(m: &mut Model<C>, col: &Col, ch: u32, pctx: u32, id: u32) -> Result<u32> {
    m.cat = 3;
    let n = col.skels.len() as u32;
    if n > 0
        && m.bit3(
            [hh(ch, 1), hh(hh(ch, 4), pctx), hh(0x5CE0, n.min(64))],
            16,
            id == col.last,
        )
    {
        return Ok(col.last);
    }
    let nb = 32 - n.leading_zeros();
    let v = m.tree2(hh(ch, 2), hh(hh(ch, 3), pctx), 9, nb, id);
    if v > n {
        return Err(bad("skeleton index out of range"));
    }
    Ok(v)
}

/// Whether `seg` is a hexadecimal run in one case with at least one digit and one letter.
fn hex_case(seg: &[u8]) -> Option<u8> {
    let (mut dig, mut lo, mut up) = (false, false, false);
    for &b in seg {
        match b {
            b'0'..=b'9' => dig = true,
            b'a'..=b'f' => lo = true,
            b'A'..=b'F' => up = true,
            _ => return None,
        }
    }
    match (dig, lo, up) {
        (true, true, false) => Some(MARK_HEX),
        (true, false, true) => Some(MARK_HEXU),
        _ => None,
    }
}

/// Splits a token into its skeleton and numbers `(value, width, marker)`.
fn split_token(tok: &[u8], skel: &mut Vec<u8>, nums: &mut Vec<(u64, u8, u8)>) {
    skel.clear();
    nums.clear();
    let mut i = 0;
    while i < tok.len() {
        if tok[i].is_ascii_alphanumeric() {
            let s = i;
            let mut e = i;
            while e < tok.len() && tok[e].is_ascii_alphanumeric() {
                e += 1;
            }
            if let Some(mk) = hex_case(&tok[s..e]) {
                for piece in tok[s..e].chunks(16) {
                    let mut v = 0u64;
                    for &b in piece {
                        let d = match b {
                            b'0'..=b'9' => b - b'0',
                            b'a'..=b'f' => b - b'a' + 10,
                            _ => b - b'A' + 10,
                        };
                        v = (v << 4) | d as u64;
                    }
                    skel.push(mk);
                    nums.push((v, piece.len() as u8, mk));
                }
                i = e;
                continue;
            }
            while i < e {
                if tok[i].is_ascii_digit() {
                    let s = i;
                    let mut v = 0u64;
                    while i < e && tok[i].is_ascii_digit() && i - s < MAX_RUN {
                        v = v * 10 + (tok[i] - b'0') as u64;
                        i += 1;
                    }
                    skel.push(MARK);
                    nums.push((v, (i - s) as u8, MARK));
                } else {
                    skel.push(tok[i]);
                    i += 1;
                }
            }
        } else {
            skel.push(tok[i]);
            i += 1;
        }
    }
}

fn col_hash(c: u32, p: usize) -> u32 {
    hh(hh(c, p as u32), 0xC01)
}

fn add_template(st: &mut St, n: usize) {
    st.tpls.push(Tpl {
        cols: (0..n).map(|_| Col::default()).collect(),
        links: vec![u16::MAX; n],
    });
    st.succ.push([0; 2]);
}

/// Codes a constant token of a template definition by the word model: the successor of
/// the previous word, a known word, or new text. Returns the word's index.
fn code_word<C: BitIo>(m: &mut Model<C>, st: &mut St, prev: u32, id: u32) -> Result<u32> {
    let pred = st.wsucc[prev as usize];
    let n = st.words.len() as u32;
    let id =
        if pred != u32::MAX && m.bit2(hh(0x5757_0000, 0), hh(0x5757_0003, prev), 25, id == pred) {
            pred
        } else {
            let nb = 32 - n.leading_zeros();
            let v = m.tree2(
                hh(0x5757_0001, nb),
                hh(hh(0x5757_0002, prev), nb),
                10,
                nb,
                id,
            );
            if v > n {
                return Err(bad("word index out of range"));
            }
            v
        };
    st.wsucc[prev as usize] = id;
    Ok(id)
}

/// Codes a template definition (the constant tokens; `None` marks a variable).
fn enc_template(m: &mut Model<Enc>, st: &mut St, tm: &Template) -> Result<()> {
    m.cat = 2;
    m.tree(0x7E0_0000, 8, tm.len() as u32);
    let mut prev_c = 0u32;
    let mut prev_w = 0u32;
    for (p, slot) in tm.iter().enumerate() {
        let c = m.bit2(
            hh(0x7E0_0001, prev_c),
            hh(hh(0x7E0_0003, p as u32), prev_w),
            24,
            slot.is_some(),
        );
        prev_c = c as u32;
        if let Some(v) = slot {
            let id = match st.word_ids.get(v.as_slice()) {
                Some(&i) => i,
                None => st.words.len() as u32,
            };
            m.cat = 1;
            code_word(m, st, prev_w, id)?;
            if id as usize == st.words.len() {
                m.cat = 8;
                enc_str(m, 0x7E0_0002, v);
                m.cat = 2;
                st.word_ids.insert(v.clone(), id);
                st.words.push(v.clone());
                st.wsucc.push(u32::MAX);
            }
            prev_w = id + 1;
        }
    }
    Ok(())
}

fn dec_template(m: &mut Model<Dec<'_>>, st: &mut St, budget: usize) -> Result<Template> {
    let n = m.tree(0x7E0_0000, 8, 0) as usize;
    if n == 0 {
        return Err(bad("template with no tokens"));
    }
    let mut t = Vec::with_capacity(n);
    let mut prev_c = 0u32;
    let mut prev_w = 0u32;
    let mut used = 0usize;
    for p in 0..n {
        let c = m.bit2(
            hh(0x7E0_0001, prev_c),
            hh(hh(0x7E0_0003, p as u32), prev_w),
            24,
            false,
        );
        prev_c = c as u32;
        if c {
            let id = code_word(m, st, prev_w, 0)?;
            if id as usize == st.words.len() {
                let mut v = Vec::new();
                dec_str(m, 0x7E0_0002, &mut v, budget.saturating_sub(used))?;
                st.words.push(v);
                st.wsucc.push(u32::MAX);
            }
            let v = &st.words[id as usize];
            used += v.len() + 1;
            // Tokens are joined by one space: n tokens take their lengths + n - 1 bytes.
            if used > budget + 1 {
                return Err(bad("template longer than the chunk"));
            }
            t.push(Some(v.clone()));
            prev_w = id + 1;
        } else {
            t.push(None);
        }
    }
    Ok(t)
}

/// After a line of template `c`: which variable positions repeated an earlier one.
fn update_links(tpl: &mut Tpl, tm: &Template, tok: &dyn Fn(usize) -> (usize, usize), line: &[u8]) {
    for p in 0..tm.len() {
        tpl.links[p] = u16::MAX;
        if tm[p].is_some() {
            continue;
        }
        let (a, b) = tok(p);
        if b - a < 2 {
            continue;
        }
        let v = &line[a..b];
        if let Some(q) = (0..p).find(|&q| {
            tm[q].is_none() && {
                let (x, y) = tok(q);
                &line[x..y] == v
            }
        }) {
            tpl.links[p] = q as u16;
        }
    }
}

/// Encodes the lines of a chunk (already split and clustered by the caller).
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_col(
    data: &[u8],
    lines: &[&[u8]],
    crs: &[bool],
    kinds: &[LineKind],
    toks: &[Vec<(u32, u32)>],
    templates: &[Template],
    final_nl: bool,
    mode_byte: u8,
) -> Result<Vec<u8>> {
    let sync = mode_byte == crate::chunk::MODE_COL2;
    let mut m = Model::new(Enc::new(), table_bits(data.len()));
    let mut st = St::new();
    let mut side = Vec::new();
    let mut n_defined = 0u32;
    let mut skel = Vec::new();
    let mut nums = Vec::new();
    for (li, l) in lines.iter().enumerate() {
        let sym = match kinds[li] {
            LineKind::Raw => SYM_RAW,
            LineKind::Long => SYM_LONG,
            LineKind::Tmpl(c) => SYM_BASE + c,
        };
        code_sym(&mut m, &mut st, sym, SYM_BASE + n_defined)?;
        match kinds[li] {
            LineKind::Raw => {
                code_cr(&mut m, &mut st, crs[li], sym);
                m.cat = 8;
                enc_str(&mut m, 0x5241_5700, l);
            }
            LineKind::Long => {
                code_cr(&mut m, &mut st, crs[li], sym);
                m.length(0x4C4F_4E47, l.len() as u32);
                side.extend_from_slice(l);
            }
            LineKind::Tmpl(c) => {
                let tm = &templates[c as usize];
                if c == n_defined {
                    enc_template(&mut m, &mut st, tm)?;
                    add_template(&mut st, tm.len());
                    n_defined += 1;
                }
                code_cr(&mut m, &mut st, crs[li], sym);
                let tk = &toks[li];
                let tpl = &mut st.tpls[c as usize];
                let mut pctx = 0u32;
                for (p, slot) in tm.iter().enumerate() {
                    if slot.is_some() {
                        continue;
                    }
                    let (a, b) = tk[p];
                    let tok = &l[a as usize..b as usize];
                    let ch = col_hash(c, p);
                    let q = tpl.links[p];
                    if q != u16::MAX {
                        let (x, y) = tk[q as usize];
                        m.cat = 9;
                        if m.bit2(
                            hh(ch, 0x11),
                            hh(0x1111, p.min(63) as u32),
                            21,
                            &l[x as usize..y as usize] == tok,
                        ) {
                            continue;
                        }
                    }
                    let pos = st.ring_pos;
                    let long = tok.len() >= RING_MIN;
                    split_token(tok, &mut skel, &mut nums);
                    // Identifier-like tokens (a hex run or a long number) and tokens whose
                    // skeleton is new to this column may use the ring; a ring copy adds the
                    // skeleton to the column, so later repeats use the column models.
                    let id_like = nums.iter().any(|&(_, w, mk)| mk != MARK || w >= ID_MIN)
                        || !tpl.cols[p].map.contains_key(skel.as_slice());
                    // Other tokens found in the ring go either way, by the column's running
                    // cost of each (encoder only: the decoder follows the flag).
                    let hit = if long {
                        st.ring_map
                            .get(tok)
                            .map(|&at| pos - at)
                            .filter(|&d| d >= 1 && d <= RING as u64)
                    } else {
                        None
                    };
                    let use_ring = hit.is_some_and(|d| {
                        id_like
                            || (sync
                                && ring_cheaper(
                                    &tpl.cols[p],
                                    &st.glast,
                                    st.line_num,
                                    &skel,
                                    &nums,
                                    d,
                                ))
                    });
                    if long {
                        // The encoder keeps no ring copies, only the positions.
                        st.ring_map.insert(tok.to_vec(), pos);
                        st.ring_pos += 1;
                    }
                    if pos > 0 {
                        m.cat = 9;
                        if m.bit2(hh(ch, 0x12), hh(0x1212, p.min(63) as u32), 22, use_ring) {
                            let d = hit.unwrap_or(1) - 1;
                            m.tree2(hh(ch, 0x13), 0x1313_0000, 11, RING_BITS, d as u32);
                            let id = learn_skel(&mut tpl.cols[p], &skel, p);
                            if sync {
                                let col = &mut tpl.cols[p];
                                col.last = id;
                                pctx = hh(id, p as u32);
                                ring_seen(
                                    col,
                                    &mut st.glast,
                                    &mut st.line_num,
                                    &mut st.line_n,
                                    &nums,
                                );
                            }
                            continue;
                        }
                    }
                    let col = &mut tpl.cols[p];
                    let id = match col.map.get(skel.as_slice()) {
                        Some(&i) => i,
                        None => col.skels.len() as u32,
                    };
                    code_skel(&mut m, col, ch, pctx, id)?;
                    pctx = hh(id, p as u32);
                    if id as usize == col.skels.len() {
                        m.cat = 4;
                        m.point_match(col.lit_pos);
                        col.lit_pos = m.mm.hist.len();
                        enc_str(&mut m, hh(0x534B_454C, p.min(15) as u32), &skel);
                        col.map.insert(skel.clone(), id);
                        col.add_skel(&skel, p);
                    }
                    col.last = id;
                    let sk = &col.skels[id as usize];
                    for (k, &(v, w, mk)) in nums.iter().enumerate() {
                        let sc = hh(hh(ch, sk.h), k as u32);
                        let g = &mut st.glast[sk.keys[k] as usize % GLAST];
                        code_num(
                            &mut m,
                            &mut col.subs[sk.subs[k] as usize],
                            g,
                            &mut st.line_num,
                            &mut st.line_n,
                            sc,
                            sk.keys[k],
                            mk != MARK,
                            v,
                            w,
                        )?;
                    }
                }
                let tok = |p: usize| (tk[p].0 as usize, tk[p].1 as usize);
                update_links(tpl, tm, &tok, l);
            }
        }
    }
    if crate::cm::STATS {
        let names = [
            "sym", "cr", "tdef", "skel_id", "skel_lit", "num_n", "num_mant", "width", "raw", "link",
        ];
        let tot: f64 = m.cost.iter().sum();
        let parts: Vec<String> = names
            .iter()
            .zip(m.cost)
            .map(|(n, c)| format!("{n} {:.0}", c / 8.0))
            .collect();
        eprintln!("col bytes {:.0}: {}", tot / 8.0, parts.join(" | "));
        eprintln!("lookups per category {:?}", m.calls);
    }
    let rc = m.c.finish();
    let mut out = vec![mode_byte];
    put_varint(&mut out, lines.len() as u64);
    out.push(final_nl as u8);
    let side_z = if side.is_empty() {
        Vec::new()
    } else {
        zstd_compress(&side)?
    };
    put_varint(&mut out, side_z.len() as u64);
    out.extend_from_slice(&side_z);
    out.extend_from_slice(&rc);
    if out.len() > data.len() + 1 {
        out.clear();
        out.push(crate::chunk::MODE_STORED);
        out.extend_from_slice(data);
    }
    Ok(out)
}

/// Writes `v` with at least `w` digits (zero-padded), in decimal or hexadecimal.
fn push_num(out: &mut Vec<u8>, v: u64, w: u8, mark: u8) {
    let mut buf = [b'0'; 24];
    let mut i = buf.len();
    let mut x = v;
    let (base, alpha) = match mark {
        MARK => (10, b'a'),
        MARK_HEX => (16, b'a'),
        _ => (16, b'A'),
    };
    loop {
        i -= 1;
        let d = (x % base) as u8;
        buf[i] = if d < 10 { b'0' + d } else { alpha + d - 10 };
        x /= base;
        if x == 0 {
            break;
        }
    }
    let start = buf.len().saturating_sub(w as usize).min(i);
    out.extend_from_slice(&buf[start..]);
}

/// Decodes a payload written by [`encode_col`] (after its mode byte).
pub(crate) fn decode_col(rest: &[u8], raw_len: usize, sync: bool) -> Result<Vec<u8>> {
    let mut pos = 0usize;
    let n_lines = get_varint(rest, &mut pos)?;
    if n_lines > raw_len as u64 + 1 {
        return Err(bad("too many lines"));
    }
    let flags = *rest.get(pos).ok_or_else(|| bad("truncated"))?;
    pos += 1;
    let side_len = get_varint(rest, &mut pos)? as usize;
    if side_len > rest.len() - pos {
        return Err(bad("side stream past the end"));
    }
    let side = if side_len == 0 {
        Vec::new()
    } else {
        zstd_decompress(&rest[pos..pos + side_len], raw_len)?
    };
    pos += side_len;
    let mut side_pos = 0usize;
    let mut m = Model::new(Dec::new(&rest[pos..]), table_bits(raw_len));
    let mut st = St::new();
    st.ring = vec![Vec::new(); RING];
    let mut dnums = Vec::new();
    let mut templates: Vec<Template> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    out.try_reserve_exact(raw_len)
        .map_err(|_| Error::Limit(format!("log: cannot allocate {raw_len} bytes")))?;
    let mut skel = Vec::new();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for li in 0..n_lines {
        let budget = raw_len.saturating_sub(out.len());
        let sym = code_sym(&mut m, &mut st, 0, SYM_BASE + templates.len() as u32)?;
        match sym {
            SYM_RAW => {
                let cr = code_cr(&mut m, &mut st, false, sym);
                dec_str(&mut m, 0x5241_5700, &mut out, budget)?;
                if cr {
                    out.push(b'\r');
                }
            }
            SYM_LONG => {
                let cr = code_cr(&mut m, &mut st, false, sym);
                let len = m.length(0x4C4F_4E47, 0) as usize;
                let piece = side
                    .get(side_pos..side_pos.saturating_add(len))
                    .ok_or_else(|| bad("long line past the end of the side stream"))?;
                side_pos += len;
                out.extend_from_slice(piece);
                if cr {
                    out.push(b'\r');
                }
            }
            s => {
                let c = s - SYM_BASE;
                if c as usize == templates.len() {
                    let tm = dec_template(&mut m, &mut st, budget)?;
                    add_template(&mut st, tm.len());
                    templates.push(tm);
                }
                let cr = code_cr(&mut m, &mut st, false, sym);
                let tm = &templates[c as usize];
                let tpl = &mut st.tpls[c as usize];
                let mut pctx = 0u32;
                let line_start = out.len();
                spans.clear();
                for (p, slot) in tm.iter().enumerate() {
                    if p > 0 {
                        out.push(b' ');
                    }
                    let start = out.len();
                    if let Some(v) = slot {
                        out.extend_from_slice(v);
                        spans.push((start - line_start, out.len() - line_start));
                        continue;
                    }
                    let ch = col_hash(c, p);
                    let q = tpl.links[p];
                    if q != u16::MAX
                        && m.bit2(hh(ch, 0x11), hh(0x1111, p.min(63) as u32), 21, false)
                    {
                        let (x, y) = spans[q as usize];
                        out.extend_from_within(line_start + x..line_start + y);
                        spans.push((start - line_start, out.len() - line_start));
                        continue;
                    }
                    let ring_at = if st.ring_pos > 0
                        && m.bit2(hh(ch, 0x12), hh(0x1212, p.min(63) as u32), 22, false)
                    {
                        let d = m.tree2(hh(ch, 0x13), 0x1313_0000, 11, RING_BITS, 0) as u64 + 1;
                        if d > st.ring_pos {
                            return Err(bad("ring distance past the start"));
                        }
                        Some(st.ring_pos - d)
                    } else {
                        None
                    };
                    if let Some(at) = ring_at {
                        out.extend_from_slice(&st.ring[(at % RING as u64) as usize]);
                        split_token(&out[start..], &mut skel, &mut dnums);
                        let id = learn_skel(&mut tpl.cols[p], &skel, p);
                        if sync {
                            let col = &mut tpl.cols[p];
                            col.last = id;
                            pctx = hh(id, p as u32);
                            ring_seen(col, &mut st.glast, &mut st.line_num, &mut st.line_n, &dnums);
                        }
                    } else {
                        let col = &mut tpl.cols[p];
                        let id = code_skel(&mut m, col, ch, pctx, 0)?;
                        pctx = hh(id, p as u32);
                        if id as usize == col.skels.len() {
                            skel.clear();
                            m.point_match(col.lit_pos);
                            col.lit_pos = m.mm.hist.len();
                            dec_str(
                                &mut m,
                                hh(0x534B_454C, p.min(15) as u32),
                                &mut skel,
                                raw_len.saturating_sub(out.len()),
                            )?;
                            col.map.insert(skel.clone(), id);
                            col.add_skel(&skel, p);
                        }
                        col.last = id;
                        let sk = &col.skels[id as usize];
                        let mut k = 0usize;
                        for &b in &sk.bytes {
                            if !is_mark(b) {
                                out.push(b);
                                continue;
                            }
                            let sc = hh(hh(ch, sk.h), k as u32);
                            let g = &mut st.glast[sk.keys[k] as usize % GLAST];
                            let (v, w) = code_num(
                                &mut m,
                                &mut col.subs[sk.subs[k] as usize],
                                g,
                                &mut st.line_num,
                                &mut st.line_n,
                                sc,
                                sk.keys[k],
                                b != MARK,
                                0,
                                0,
                            )?;
                            push_num(&mut out, v, w, b);
                            k += 1;
                        }
                    }
                    if out.len() - start >= RING_MIN {
                        let slot = &mut st.ring[(st.ring_pos % RING as u64) as usize];
                        slot.clear();
                        slot.extend_from_slice(&out[start..]);
                        st.ring_pos += 1;
                    }
                    spans.push((start - line_start, out.len() - line_start));
                    if out.len() > raw_len {
                        return Err(bad("decodes past the chunk"));
                    }
                }
                let tok = |p: usize| spans[p];
                update_links(tpl, tm, &tok, &out[line_start..]);
                if cr {
                    out.push(b'\r');
                }
            }
        }
        if li + 1 < n_lines || flags & 1 != 0 {
            out.push(b'\n');
        }
        if out.len() > raw_len {
            return Err(bad("decodes past the chunk"));
        }
        m.c.check()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rebuild(skel: &[u8], nums: &[(u64, u8, u8)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut k = 0;
        for &b in skel {
            if is_mark(b) {
                let (v, w, mk) = nums[k];
                assert_eq!(mk, b);
                push_num(&mut out, v, w, mk);
                k += 1;
            } else {
                out.push(b);
            }
        }
        assert_eq!(k, nums.len());
        out
    }

    #[test]
    fn tokens_split_into_skeleton_and_numbers_and_back() {
        let (mut skel, mut nums) = (Vec::new(), Vec::new());
        for tok in [
            "",
            "0",
            "007",
            "abc",
            "0x1F",
            "deadbeef12",
            "DEADBEEF12",
            "DeadBeef12",
            "1e5",
            "R02-M1-N0-C:J12-U11",
            "2005-06-03-15.42.50.675872",
            "blk_-6952295868487656571",
            "00000000000000000000000000000000000000001",
            "60c3da91-bd1c-4693-991e-fa3580fa22c2113d3a99c3da401fbd62cc2caa5b96d2",
            "ffffffffffffffffffff",
            " \u{e9}t\u{e9} 42",
        ] {
            split_token(tok.as_bytes(), &mut skel, &mut nums);
            assert!(skel.iter().all(|b| !b.is_ascii_digit() || is_mark(*b)));
            assert_eq!(rebuild(&skel, &nums), tok.as_bytes(), "{tok}");
        }
        split_token(b"a12b", &mut skel, &mut nums);
        assert_eq!(skel, b"1", "a12b is one hex run");
        split_token(b"x12y", &mut skel, &mut nums);
        assert_eq!(skel, b"x0y");
    }

    #[test]
    fn range_coder_round_trips_skewed_bits() {
        let mut e = Model::new(Enc::new(), 12);
        let bits: Vec<bool> = (0..20_000u32).map(|i| i % 7 == 0 || i % 13 == 0).collect();
        for (i, &b) in bits.iter().enumerate() {
            e.bit((i % 5) as u32, b);
            e.direct(3, i as u64);
        }
        let bytes = e.c.finish();
        assert!(bytes.len() < 20_000 * 3 / 8 + 20_000 / 8, "{}", bytes.len());
        let mut d = Model::new(Dec::new(&bytes), 12);
        for (i, &b) in bits.iter().enumerate() {
            assert_eq!(d.bit((i % 5) as u32, false), b);
            assert_eq!(d.direct(3, 0), (i as u64) & 7);
        }
        assert!(d.c.check().is_ok());
    }
}
