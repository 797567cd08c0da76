//! The text-cm model: bitwise context mixing in integer arithmetic.
//!
//! Structure after the PAQ / lpaq family as described by Mahoney ("Data Compression
//! Explained", sections 4.3 "context mixing" and 4.3.4 "SSE"; "Adaptive weighing of
//! context models for lossless data compression", 2005):
//!
//! * direct order-0 and order-1 tables and eight hashed context tables (orders 2, 3,
//!   4, 5, 6, 8, a case-folded word context and a word-bigram context). Each hashed
//!   table is split in 64-byte buckets, one per (context, nibble): slot 0 holds a
//!   check tag, slots 1..15 the 15 nodes of the nibble's binary tree, so a byte costs
//!   two cache misses per table. Two candidate buckets; a miss replaces the less used.
//! * each slot is an adaptive-rate probability counter (22-bit probability, 10-bit
//!   count; rate 1/(n+1.5) down to a per-table floor), read twice: directly, and
//!   through a small adaptive map indexed by (count, probability), which learns
//!   what "seen once" or "seen 40 times at 0.9" really predicts in this context order.
//! * a match model: the longest earlier occurrence of the last 6 bytes predicts the
//!   next bit, with an adaptive map indexed by match length.
//! * three gated logistic mixers (weights selected by match state × partial byte, by
//!   the previous byte, and by the highest order seen × bit position), combined by a
//!   second-layer mixer, then two APM / SSE stages.
//!
//! Every quantity is an integer; the stretch / squash tables are built from a fixed
//! 33-point table by integer interpolation, so encoder and decoder agree everywhere.

/// `4096 / (1 + e^-x)` at x = -8, -7.5, …, 8 (the logistic function, rounded).
const SQUASH_POINTS: [i32; 33] = [
    1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546, 2047, 2549, 2994, 3348,
    3607, 3785, 3901, 3975, 4024, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094,
];

/// Logistic function: stretch domain (±2047, 1/256 units) to a 12-bit probability.
#[inline]
pub fn squash(d: i32) -> i32 {
    if d > 2047 {
        return 4095;
    }
    if d < -2047 {
        return 1;
    }
    let w = d & 127;
    let i = ((d >> 7) + 16) as usize;
    (SQUASH_POINTS[i] * (128 - w) + SQUASH_POINTS[i + 1] * w + 64) >> 7
}

/// Inverse of [`squash`] on 12-bit probabilities.
fn stretch_table() -> Vec<i16> {
    invert_squash(squash, 2047, 4096)
}

/// The inverse of a monotonic `squash` over the stretch domain `-max..=max`, tabulated
/// for probabilities `0..entries`: each probability maps to the smallest stretch whose
/// squash reaches it.
pub(crate) fn invert_squash(squash: fn(i32) -> i32, max: i32, entries: usize) -> Vec<i16> {
    let mut t = vec![0i16; entries];
    let mut pi = 0usize;
    for x in -max..=max {
        let v = squash(x) as usize;
        for slot in t.iter_mut().take(v + 1).skip(pi) {
            *slot = x as i16;
        }
        pi = pi.max(v + 1);
    }
    for slot in t.iter_mut().skip(pi) {
        *slot = max as i16;
    }
    t
}

#[inline]
fn hash2(a: u32, b: u32) -> u32 {
    let mut h = a.wrapping_mul(0x9E37_79B1)
        ^ b.wrapping_add(0x7F4A_7C15)
            .wrapping_mul(0x85EB_CA6B)
            .rotate_left(13);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297A_2D39);
    h ^ (h >> 15)
}

/// Counter: probability in the high 22 bits, count in the low 10.
const COUNTER_INIT: u32 = 1 << 31;

/// `65536 / (n + 1.5)` for the adaptive counter rate.
fn recip_table() -> [u32; 1024] {
    let mut t = [0u32; 1024];
    for (n, v) in t.iter_mut().enumerate() {
        *v = (65536 * 2) / (2 * n as u32 + 3);
    }
    t
}

#[inline]
fn counter_update(s: &mut u32, bit: u32, limit: u32, recip: &[u32; 1024]) {
    let n = *s & 1023;
    let p = (*s >> 10) as i64;
    let target = if bit != 0 { (1i64 << 22) - 1 } else { 0 };
    let np = p + (((target - p) * recip[n as usize] as i64) >> 16);
    let nn = if n < limit { n + 1 } else { n };
    *s = ((np as u32) << 10) | nn;
}

/// Count quantized to 8 levels for the indirect maps.
#[inline]
fn count_bucket(n: u32) -> usize {
    match n {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => 3,
        4..=6 => 4,
        7..=14 => 5,
        15..=40 => 6,
        _ => 7,
    }
}

/// Adaptive probability map with interpolation (APM / SSE stage).
struct Apm {
    t: Vec<u16>,
    idx: usize,
    rate: u32,
}

impl Apm {
    fn new(contexts: usize, rate: u32) -> Apm {
        let mut t = vec![0u16; contexts * 33];
        for c in 0..contexts {
            for j in 0..33 {
                t[c * 33 + j] = (squash((j as i32 - 16) * 128) * 16) as u16;
            }
        }
        Apm { t, idx: 0, rate }
    }

    /// Refines `st` (stretched probability) in context `cx`; returns a 16-bit probability.
    #[inline]
    fn refine(&mut self, st: i32, cx: usize) -> i32 {
        let s = (st.clamp(-2047, 2047) + 2048) as usize;
        let lo = s >> 7;
        let w = (s & 127) as i32;
        let i = cx * 33 + lo;
        self.idx = i + ((w >> 6) as usize);
        (self.t[i] as i32 * (128 - w) + self.t[i + 1] as i32 * w) >> 7
    }

    #[inline]
    fn update(&mut self, bit: u32) {
        let g = if bit != 0 { 65535 } else { 0 };
        let v = self.t[self.idx] as i32;
        self.t[self.idx] = (v + ((g - v) >> self.rate)) as u16;
    }
}

/// Number of mixer inputs (padded to a multiple of 8).
const N_IN: usize = 24;
/// Hashed context tables.
const N_HASHED: usize = 8;
/// Contexts read through counters (order 1 + hashed).
const N_CTX: usize = N_HASHED + 1;

/// Largest mixer weight magnitude (16.0 in 16.16 fixed point).
const W_MAX: i32 = (1 << 20) - 1;

struct Mixer {
    w: Vec<i32>,
    set: usize,
    dot: i32,
    pr: i32,
}

impl Mixer {
    fn new(sets: usize, init: i32) -> Mixer {
        Mixer {
            w: vec![init; sets * N_IN],
            set: 0,
            dot: 0,
            pr: 2048,
        }
    }

    #[inline]
    fn mix(&mut self, x: &[i32; N_IN], set: usize) -> i32 {
        self.set = set * N_IN;
        let w = &self.w[self.set..self.set + N_IN];
        // |x| < 2^11 and |w| <= W_MAX < 2^20, so every product and the sum fit in i32
        // (32-bit lanes let the compiler vectorise this loop).
        let s: i32 = x.iter().zip(w).map(|(&a, &b)| (a * b) >> 8).sum();
        self.dot = (s >> 8).clamp(-2047, 2047);
        self.pr = squash(self.dot);
        self.dot
    }

    #[inline]
    fn train(&mut self, x: &[i32; N_IN], bit: u32, lr: i32) {
        let err = ((bit as i32) << 12) - self.pr;
        let e = err * lr; // |e| < 2^12 · 16, so |x · e| < 2^31
        let w = &mut self.w[self.set..self.set + N_IN];
        for (wi, &xi) in w.iter_mut().zip(x) {
            *wi = (*wi + ((xi * e) >> 14)).clamp(-W_MAX, W_MAX);
        }
    }
}

/// Small final mixer over the first-layer outputs.
struct Mixer2 {
    w: Vec<i32>,
    set: usize,
    pr: i32,
}

const N_L1: usize = 3;

impl Mixer2 {
    fn new(sets: usize) -> Mixer2 {
        Mixer2 {
            w: vec![65536 / N_L1 as i32; sets * N_L1],
            set: 0,
            pr: 2048,
        }
    }

    #[inline]
    fn mix(&mut self, x: &[i32; N_L1], set: usize) -> i32 {
        self.set = set * N_L1;
        let w = &self.w[self.set..self.set + N_L1];
        let s: i64 = x.iter().zip(w).map(|(&a, &b)| a as i64 * b as i64).sum();
        let d = ((s >> 16) as i32).clamp(-2047, 2047);
        self.pr = squash(d);
        d
    }

    #[inline]
    fn train(&mut self, x: &[i32; N_L1], bit: u32, lr: i64) {
        let err = ((bit as i64) << 12) - self.pr as i64;
        for (wi, &xi) in self.w[self.set..self.set + N_L1].iter_mut().zip(x) {
            *wi += ((xi as i64 * err * lr) >> 14) as i32;
        }
    }
}

/// Sizes of the model's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSize {
    /// log2 of the buckets (64 bytes each) of every hashed context table.
    pub table_bits: u32,
    /// log2 of the match model's hash table entries (4 bytes each).
    pub match_bits: u32,
}

impl ModelSize {
    /// Smallest table size used.
    pub const MIN_BITS: u32 = 10;
    /// Largest table size accepted (bounds memory at about 8 × 64 × 2^22 = 2 GiB).
    pub const MAX_BITS: u32 = 22;

    /// Table sizes for a chunk of `len` bytes whose tables may hold at most
    /// `2^max_bits` buckets: small chunks get small tables.
    pub fn for_chunk(len: usize, max_bits: u32) -> ModelSize {
        // A byte touches two buckets per table, so 2 × len buckets hold everything.
        let need = (2 * len.max(1)).next_power_of_two().trailing_zeros();
        let table_bits = need.clamp(
            Self::MIN_BITS,
            max_bits.clamp(Self::MIN_BITS, Self::MAX_BITS),
        );
        let match_bits =
            (len.max(1).next_power_of_two().trailing_zeros()).clamp(Self::MIN_BITS, table_bits + 4);
        ModelSize {
            table_bits,
            match_bits,
        }
    }

    /// Approximate bytes the model allocates (hashed tables, match table, and about
    /// 5 MiB of direct tables, mixer weights and SSE maps), plus the chunk's history.
    pub fn bytes(&self) -> u64 {
        N_HASHED as u64 * 64 * (1u64 << self.table_bits) + 4 * (1u64 << self.match_bits) + (6 << 20)
    }
}

/// Minimum match length looked up by the match model.
const MATCH_MIN: usize = 6;
/// Longest match length tracked.
const MATCH_MAX: u32 = 65535;

/// Learning rate of the first-layer mixers (weight step = x · err · rate / 2^30).
const MIXER_RATE: i32 = 6;
/// Learning rate of the second-layer mixer.
const MIXER2_RATE: i64 = 1;
/// Adaptation shift of the indirect (count, probability) maps.
const IMAP_RATE: i32 = 7;
/// Adaptation shift of the match model's length map.
const MMAP_RATE: i32 = 6;

/// Count limits (adaptation floors) of order 1 and the hashed tables.
const LIMITS: [u32; N_CTX] = [60, 60, 30, 16, 10, 10, 10, 16, 16];

/// The bitwise predictor. Call [`Model::p`] then [`Model::update`] for every bit,
/// most significant bit of each byte first.
pub struct Model {
    stretch: Vec<i16>,
    recip: [u32; 1024],
    // history
    buf: Vec<u8>,
    c0: u32,
    c4: u32,
    c8: u32,
    bitpos: u32,
    word0: u32,
    word1: u32,
    // counters
    o0: Vec<u32>,
    o1: Vec<u32>,
    /// All hashed tables, one after another (`tsize` slots each).
    tables: Vec<u32>,
    tsize: usize,
    mask: usize,
    hashes: [u32; N_HASHED],
    base: [usize; N_HASHED],
    slot: [usize; N_CTX],
    nib: usize,
    // indirect maps (count bucket × probability bucket) per context
    imap: Vec<u16>,
    iidx: [usize; N_CTX],
    // match model
    mtab: Vec<u32>,
    mmask: usize,
    mptr: usize,
    mlen: u32,
    mbit: u32,
    mmap: Vec<u16>,
    midx: usize,
    // mixing
    x: [i32; N_IN],
    m: [Mixer; N_L1],
    m2: Mixer2,
    l1: [i32; N_L1],
    a1: Apm,
    a2: Apm,
    a2_shift: u32,
    hi_order: usize,
    pr: i32,
}

impl Model {
    /// A fresh model with the given table sizes.
    pub fn new(size: ModelSize) -> Model {
        let buckets = 1usize << size.table_bits;
        let mut imap = vec![0u16; N_CTX * 8 * 64];
        for (i, v) in imap.iter_mut().enumerate() {
            *v = (((i % 64) as u32 * 64 + 32) * 16) as u16;
        }
        let mut mmap = vec![0u16; 64 * 2];
        for (i, v) in mmap.iter_mut().enumerate() {
            *v = if i & 1 == 1 { 50000 } else { 15536 };
        }
        Model {
            stretch: stretch_table(),
            recip: recip_table(),
            buf: Vec::new(),
            c0: 1,
            c4: 0,
            c8: 0,
            bitpos: 0,
            word0: 0,
            word1: 0,
            o0: vec![COUNTER_INIT; 256],
            o1: vec![COUNTER_INIT; 65536],
            tables: vec![0u32; N_HASHED * buckets * 16],
            tsize: buckets * 16,
            mask: buckets - 1,
            hashes: [0; N_HASHED],
            base: [0; N_HASHED],
            slot: [0; N_CTX],
            nib: 1,
            imap,
            iidx: [0; N_CTX],
            mtab: vec![0u32; 1 << size.match_bits],
            mmask: (1 << size.match_bits) - 1,
            mptr: 0,
            mlen: 0,
            mbit: 0,
            mmap,
            midx: 0,
            x: [0; N_IN],
            m: [
                Mixer::new(7 * 256, 12000),
                Mixer::new(256 * 8, 12000),
                Mixer::new(8 * 8 * 4, 12000),
            ],
            m2: Mixer2::new(7 * 8),
            l1: [0; N_L1],
            a1: Apm::new(7 * 256, 7),
            a2: Apm::new(1 << size.table_bits.min(16), 7),
            a2_shift: 16 - size.table_bits.min(16),
            hi_order: 0,
            pr: 32768,
        }
        .primed()
    }

    fn primed(mut self) -> Model {
        self.byte_update();
        self.predict();
        self
    }

    /// Reserves history for `n` bytes (the chunk length), avoiding regrowth.
    pub fn reserve(&mut self, n: usize) {
        self.buf.reserve_exact(n);
    }

    /// Probability that the next bit is 1, in units of 2^-16 (1..=65535).
    #[inline]
    pub fn p(&self) -> u32 {
        self.pr as u32
    }

    #[inline]
    fn st(&self, p12: i32) -> i32 {
        self.stretch[p12 as usize] as i32
    }

    /// First candidate bucket (slot index) of hash `h` in table `t`.
    #[inline]
    fn bucket_index(&self, t: usize, h: u32) -> usize {
        t * self.tsize + (((h.wrapping_mul(0x2545_F491) >> 8) as usize & self.mask) << 4)
    }

    /// Looks up all tables' buckets: first touches every candidate so the cache misses
    /// overlap, then claims them one by one.
    ///
    /// The second nibble's bucket lies in the same 4 KiB page as the first nibble's
    /// (64 buckets), which halves the TLB misses: without huge pages those cost as
    /// much as the cache misses.
    fn find_all(&mut self, h: &[u32; N_HASHED], second_nibble: bool) {
        let mut idx = [0usize; N_HASHED];
        let mut touch = 0u32;
        for (t, &hh) in h.iter().enumerate() {
            idx[t] = if second_nibble && self.mask >= 63 {
                (self.base[t] & !(64 * 16 - 1)) | ((hh >> 26) as usize) << 4
            } else {
                self.bucket_index(t, hh)
            };
            touch ^= self.tables[idx[t]];
        }
        std::hint::black_box(touch);
        for (t, &hh) in h.iter().enumerate() {
            self.base[t] = self.find_bucket(idx[t], hh);
        }
    }

    /// Bucket for context hash `h` at candidate `i0` (or its neighbour), claiming one if
    /// neither matches.
    #[inline]
    fn find_bucket(&mut self, i0: usize, h: u32) -> usize {
        let tag = (h & 0xffff) | 1; // never 0, so a zeroed bucket is empty
        let i1 = i0 ^ 16;
        let tab = &mut self.tables;
        if tab[i0] == tag {
            return i0;
        }
        if tab[i1] == tag {
            return i1;
        }
        // Replace the candidate whose first node saw fewer bits (empty ones count 0).
        let n0 = if tab[i0] == 0 { 0 } else { tab[i0 + 1] & 1023 };
        let n1 = if tab[i1] == 0 { 0 } else { tab[i1 + 1] & 1023 };
        let b = if n1 < n0 { i1 } else { i0 };
        tab[b] = tag;
        for s in &mut tab[b + 1..b + 16] {
            *s = COUNTER_INIT;
        }
        b
    }

    fn byte_update(&mut self) {
        let c = (self.c4 & 0xff) as u8;
        let n = self.buf.len();
        // word hashes: letters (ASCII case-folded, and all non-ASCII UTF-8 bytes)
        if c.is_ascii_alphabetic() || c >= 0x80 {
            self.word0 = (self.word0 ^ c.to_ascii_lowercase() as u32)
                .wrapping_add(1)
                .wrapping_mul(0x2F0B_4A73);
        } else if self.word0 != 0 {
            self.word1 = self.word0;
            self.word0 = 0;
        }
        let c4 = self.c4;
        let c8 = self.c8;
        let h = [
            hash2(2, c4 & 0xffff),
            hash2(3, c4 & 0xff_ffff),
            hash2(4, c4),
            hash2(hash2(5, c4), c8 & 0xff),
            hash2(hash2(6, c4), c8 & 0xffff),
            hash2(hash2(8, c4), c8),
            hash2(hash2(9, self.word0), c4 & 0xff),
            hash2(hash2(10, self.word0), self.word1),
        ];
        self.hashes = h;
        self.find_all(&h, false);
        // match model
        if self.mlen > 0 {
            if self.mptr < n && self.buf[self.mptr] == c {
                self.mlen = (self.mlen + 1).min(MATCH_MAX);
                self.mptr += 1;
            } else {
                self.mlen = 0;
            }
        }
        if n >= MATCH_MIN {
            let mut hm = 0u32;
            for &b in &self.buf[n - MATCH_MIN..n] {
                hm = (hm.wrapping_add(b as u32 + 1)).wrapping_mul(0x6F4F_2A35);
            }
            let hi = (hm >> 8) as usize & self.mmask;
            if self.mlen == 0 {
                let cand = self.mtab[hi] as usize;
                if cand > 0 && cand < n {
                    let mut l = 0usize;
                    while l < cand
                        && l < MATCH_MAX as usize
                        && self.buf[cand - 1 - l] == self.buf[n - 1 - l]
                    {
                        l += 1;
                    }
                    if l >= MATCH_MIN {
                        self.mlen = l as u32;
                        self.mptr = cand;
                    }
                }
            }
            self.mtab[hi] = n as u32;
        }
        self.hi_order = 0;
    }

    fn nibble_update(&mut self) {
        let hi = self.c0; // 1xxxx: the high nibble with its leading 1
        let mut h = [0u32; N_HASHED];
        for (t, v) in h.iter_mut().enumerate() {
            *v = hash2(self.hashes[t], hi);
        }
        self.find_all(&h, true);
    }

    fn predict(&mut self) {
        let c0 = self.c0 as usize;
        let c1 = (self.c4 & 0xff) as usize;
        let mut x = [0i32; N_IN];
        // order 0
        let p0 = (self.o0[c0] >> 20) as i32;
        x[0] = self.st(p0);
        x[1] = 256;
        // order 1 and the hashed contexts
        self.slot[0] = c1 << 8 | c0;
        let mut hi = 0usize;
        for i in 0..N_CTX {
            let s = if i == 0 {
                self.o1[self.slot[0]]
            } else {
                self.slot[i] = self.base[i - 1] + self.nib;
                self.tables[self.slot[i]]
            };
            let n = s & 1023;
            let p = (s >> 20) as i32;
            if n > 0 {
                x[2 + 2 * i] = self.st(p);
                if i <= 6 {
                    hi = i + 1;
                }
            }
            let ii = ((i * 8 + count_bucket(n)) << 6) | (p as usize >> 6);
            self.iidx[i] = ii;
            x[3 + 2 * i] = self.st((self.imap[ii] >> 4) as i32);
        }
        self.hi_order = hi;
        // match model
        let mut mstate = 0usize;
        if self.mlen > 0 {
            let pb = self.buf.get(self.mptr).map_or(0, |&b| b as u32 | 0x100);
            // predicted byte agrees with the bits seen so far?
            let shift = 8 - self.bitpos;
            if (pb >> shift) == self.c0 {
                self.mbit = (pb >> (shift - 1)) & 1;
                let lq = if self.mlen < 16 {
                    self.mlen
                } else {
                    12 + self.mlen.ilog2()
                } as usize;
                self.midx = (lq << 1) | self.mbit as usize;
                let pm = (self.mmap[self.midx] >> 4) as i32;
                x[20] = self.st(pm);
                let strength = (self.mlen.min(31) as i32) * 64;
                x[21] = if self.mbit != 0 { strength } else { -strength };
                mstate = if self.mlen < 16 {
                    1
                } else if self.mlen < 32 {
                    2
                } else {
                    3
                };
                mstate = mstate * 2 - 1 + self.mbit as usize;
            } else {
                self.mlen = 0;
            }
        }
        self.x = x;
        let bp = self.bitpos as usize;
        let s0 = mstate * 256 + c0;
        let s1 = c1 * 8 + bp;
        let s2 = (hi * 8 + bp) * 4 + mstate.div_ceil(2);
        self.l1[0] = self.m[0].mix(&self.x, s0);
        self.l1[1] = self.m[1].mix(&self.x, s1);
        self.l1[2] = self.m[2].mix(&self.x, s2);
        let d = self.m2.mix(&self.l1, mstate * 8 + bp);
        // SSE
        let pa1 = self.a1.refine(d, mstate * 256 + c0);
        let h2 = (c1 << 8 | c0) >> self.a2_shift;
        let pa2 = self.a2.refine(d, h2);
        let p = (pa1 + 3 * pa2 + 2) >> 2;
        self.pr = p.clamp(32, 65535 - 32);
    }

    /// Learns from the coded bit and prepares the next prediction.
    #[inline]
    pub fn update(&mut self, bit: u32) {
        // mixers
        for m in &mut self.m {
            m.train(&self.x, bit, MIXER_RATE);
        }
        self.m2.train(&self.l1, bit, MIXER2_RATE);
        self.a1.update(bit);
        self.a2.update(bit);
        // counters and indirect maps
        let c0 = self.c0 as usize;
        counter_update(&mut self.o0[c0], bit, 1023, &self.recip);
        counter_update(&mut self.o1[self.slot[0]], bit, LIMITS[0], &self.recip);
        for (&s, &limit) in self.slot.iter().zip(&LIMITS).skip(1) {
            counter_update(&mut self.tables[s], bit, limit, &self.recip);
        }
        let g: i32 = if bit != 0 { 65535 } else { 0 };
        for &ii in &self.iidx {
            let v = self.imap[ii] as i32;
            self.imap[ii] = (v + ((g - v) >> IMAP_RATE)) as u16;
        }
        if self.mlen > 0 {
            let v = self.mmap[self.midx] as i32;
            self.mmap[self.midx] = (v + ((g - v) >> MMAP_RATE)) as u16;
            if self.mbit != bit {
                self.mlen = 0;
            }
        }
        // advance
        self.c0 = (self.c0 << 1) | bit;
        self.bitpos += 1;
        self.nib = (self.nib << 1) | bit as usize;
        if self.bitpos == 8 {
            let c = (self.c0 & 0xff) as u8;
            self.buf.push(c);
            self.c8 = (self.c8 << 8) | (self.c4 >> 24);
            self.c4 = (self.c4 << 8) | c as u32;
            self.c0 = 1;
            self.bitpos = 0;
            self.nib = 1;
            self.byte_update();
        } else if self.bitpos == 4 {
            self.nib = 1;
            self.nibble_update();
        }
        self.predict();
    }
}

/// Compresses `data` with a fresh model of the given size.
pub fn compress(data: &[u8], size: ModelSize) -> Vec<u8> {
    let mut m = Model::new(size);
    m.reserve(data.len());
    let mut enc = crate::coder::BitEncoder::new();
    for &c in data {
        for k in (0..8).rev() {
            let bit = ((c >> k) & 1) as u32;
            enc.encode(bit, m.p());
            m.update(bit);
        }
    }
    enc.finish()
}

/// Decompresses `n` bytes; `None` if the stream ends more than its flush allows.
pub fn decompress(data: &[u8], n: usize, size: ModelSize) -> Option<Vec<u8>> {
    let mut m = Model::new(size);
    m.reserve(n);
    let mut dec = crate::coder::BitDecoder::new(data);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = 0u32;
        for _ in 0..8 {
            let bit = dec.decode(m.p());
            m.update(bit);
            c = (c << 1) | bit;
        }
        out.push(c as u8);
        if dec.overrun() > 4 {
            return None;
        }
    }
    Some(out)
}
