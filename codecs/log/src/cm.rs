//! A small context-mixing bit coder: hashed adaptive-rate probability counters, two
//! "vertical match" inputs, a gated logistic mixer and an SSE stage, driving a 32-bit
//! binary arithmetic coder.
//!
//! The modelling follows the PAQ family (M. Mahoney, "Adaptive weighing of context
//! models for lossless data compression", 2005; lpaq1's StateMap/Mixer/APM design), written
//! here from that description with integer arithmetic only, so encoder and decoder compute
//! bit-identical probabilities on every platform.

// The hot loops index several parallel fixed-size arrays by the same input number.
#![allow(clippy::needless_range_loop)]

use lcodec_core::{Error, Result};

/// Number of hashed contexts each coded byte is predicted from.
pub const NCTX: usize = 8;
/// Number of match-model inputs.
pub const NM: usize = 4;
/// Mixer inputs: the hashed contexts, the match models, a bias.
const NIN: usize = NCTX + NM + 1;
/// Number of mixer weight sets (selected per bit by the caller's selector).
const NSEL: usize = 2048;

/// Logistic function on the stretch domain (x / 256 = logit), returning a 12-bit probability.
/// Values are round(4096 / (1 + exp(-(i - 16) / 2))) for i in 0..=32, linearly interpolated.
pub(crate) fn squash(d: i32) -> i32 {
    const T: [i32; 33] = [
        1, 2, 4, 6, 10, 17, 27, 45, 74, 120, 194, 311, 488, 747, 1102, 1546, 2048, 2550, 2994,
        3349, 3608, 3785, 3902, 3976, 4022, 4051, 4069, 4079, 4086, 4090, 4092, 4094, 4095,
    ];
    if d > 2047 {
        return 4095;
    }
    if d < -2047 {
        return 1;
    }
    let w = d & 127;
    let i = ((d >> 7) + 16) as usize;
    (T[i] * (128 - w) + T[i + 1] * w + 64) >> 7
}

/// Shared lookup tables (inverse of `squash`, counter step sizes).
pub struct Tables {
    stretch: Vec<i16>,
    dt: [i32; 1024],
}

impl Tables {
    /// Builds the tables (deterministic, integer only).
    pub fn new() -> Self {
        let mut stretch = vec![0i16; 4096];
        let mut pi = 0usize;
        for x in -2047..=2047 {
            let v = squash(x) as usize;
            for s in stretch.iter_mut().take(v + 1).skip(pi) {
                *s = x as i16;
            }
            pi = v + 1;
        }
        for s in stretch.iter_mut().skip(pi) {
            *s = 2047;
        }
        let mut dt = [0i32; 1024];
        for (i, d) in dt.iter_mut().enumerate() {
            *d = 65536 / (2 * i as i32 + 3);
        }
        Tables { stretch, dt }
    }
    #[inline]
    fn st(&self, p: i32) -> i32 {
        self.stretch[p.clamp(0, 4095) as usize] as i32
    }
}

impl Default for Tables {
    fn default() -> Self {
        Self::new()
    }
}

/// Adaptive probability counter packed in a u32: 22-bit probability, 10-bit hit count.
#[inline]
fn counter_update(slot: &mut u32, y: u32, limit: u32, dt: &[i32; 1024]) {
    let n = *slot & 1023;
    let p = (*slot >> 10) as i64;
    let target = (y as i64) << 22;
    let np = (p + (((target - p) * dt[n as usize] as i64) >> 16)).clamp(0, (1 << 22) - 1);
    let nn = if n < limit { n + 1 } else { n };
    *slot = ((np as u32) << 10) | nn;
}

const HALF: u32 = 1 << 31;
/// Collect per-class cost statistics (debug builds of the measuring tools only).
pub const STATS: bool = cfg!(feature = "stats");

/// The bit predictor. Use [`Predictor::set_byte_context`] before each byte, then
/// [`Predictor::p`] / [`Predictor::update`] for each of its 8 bits (MSB first).
pub struct Predictor {
    tables: Tables,
    bits: u32,
    t: Vec<u32>,
    ctx: [u32; NCTX],
    base: [usize; NCTX],
    idx: [usize; NCTX],
    nib: u32,
    st_in: [i32; NIN],
    w: Vec<i32>,
    sel: usize,
    w2: Vec<i32>,
    sel2: usize,
    sel2base: usize,
    pr2: i32,
    pr1: i32,
    selbase: usize,
    c0: u32,
    // match models: expected byte (or -1) and state counters
    mexp: [i32; NM],
    mlen: [u32; NM],
    mmiss: [bool; NM],
    mt: Vec<u32>,
    midx: [usize; NM],
    // SSE
    apm: Vec<u16>,
    apm_idx: usize,
    apm_ctx: u32,
    pr_mix: i32,
    pr: i32,
    lr: i32,
    lim: u32,
}

impl Predictor {
    /// A predictor with a 2^`bits`-slot counter table.
    pub fn new(bits: u32) -> Self {
        let bits = bits.clamp(12, 26);
        let mut apm = vec![0u16; 4096 * 33];
        for c in 0..4096 {
            for j in 0..33 {
                apm[c * 33 + j] = (squash((j as i32 - 16) * 128) * 16) as u16;
            }
        }
        Predictor {
            tables: Tables::new(),
            bits,
            t: vec![HALF; 1usize << bits],
            ctx: [0; NCTX],
            base: [0; NCTX],
            idx: [0; NCTX],
            nib: 1,
            st_in: [0; NIN],
            w: vec![
                if STATS {
                    std::env::var("LOG_W0")
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(30000)
                } else {
                    30000
                };
                NIN * NSEL
            ],
            sel: 0,
            w2: vec![30000; NIN * 4096],
            sel2: 0,
            sel2base: 0,
            pr2: 2048,
            pr1: 2048,
            selbase: 0,
            c0: 1,
            mexp: [-1; NM],
            mlen: [0; NM],
            mmiss: [false; NM],
            mt: vec![HALF; NM * 64 * 2 * 8],
            midx: [0; NM],
            apm,
            apm_idx: 0,
            apm_ctx: 0,
            pr_mix: 2048,
            pr: 2048,
            lim: if STATS {
                std::env::var("LOG_LIM")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(30)
            } else {
                30
            },
            lr: if STATS {
                std::env::var("LOG_LR")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(4)
            } else {
                4
            },
        }
    }

    /// Sets the contexts for the next byte: `ctx` hashes, the mixer selector base (< 64),
    /// the expected bytes of the two match models (or -1) with their current match
    /// lengths, and an SSE context (< 16).
    pub fn set_byte_context(
        &mut self,
        ctx: &[u32; NCTX],
        sel: u32,
        sel2: u32,
        mexp: [i32; NM],
        mlen: [u32; NM],
        apm: u32,
    ) {
        self.sel2base = (sel2 as usize & 1023) * 4;
        for (i, c) in ctx.iter().enumerate() {
            self.ctx[i] = finalize(c.wrapping_add((i as u32).wrapping_mul(0x9E37_79B9)));
        }
        self.selbase = (sel as usize & 31) * 64;
        self.mexp = mexp;
        self.mlen = mlen;
        for m in 0..NM {
            self.mmiss[m] = mexp[m] < 0;
        }
        self.apm_ctx = apm & 15;
        self.c0 = 1;
        self.nib = 1;
        self.set_bases(0);
        self.predict();
    }

    /// Picks, per context, the 16-slot block (one cache line) for the current nibble.
    fn set_bases(&mut self, hi: u32) {
        let shift = 32 - self.bits + 4;
        let hm = hi.wrapping_mul(0x2F0B_3A49);
        for i in 0..NCTX {
            let h = (self.ctx[i] ^ hm).wrapping_mul(0x9E37_79B1);
            let b = ((h >> shift) as usize) << 4;
            // Slot 0 of each block holds a check value; a different context takes the
            // block over with fresh counters instead of inheriting the other's statistics.
            let chk = (h & 0xFFFF) | 0x1_0000;
            if self.t[b] != chk {
                self.t[b] = chk;
                for s in &mut self.t[b + 1..b + 16] {
                    *s = HALF;
                }
            }
            self.base[i] = b;
        }
    }

    fn predict(&mut self) {
        let c0 = self.c0;
        let nib = self.nib as usize;
        for i in 0..NCTX {
            let ix = self.base[i] + nib;
            self.idx[i] = ix;
            self.st_in[i] = self.tables.st((self.t[ix] >> 20) as i32);
        }
        let bitpos = 31 - c0.leading_zeros(); // bits of this byte already coded, 0..7
        let mut msel = 0usize;
        for m in 0..NM {
            if self.mmiss[m] {
                self.st_in[NCTX + m] = 0;
                self.midx[m] = usize::MAX;
            } else {
                let e = self.mexp[m] as u32;
                let ebit = (e >> (7 - bitpos)) & 1;
                let l = self.mlen[m].min(63) as usize;
                let ix = ((m * 64 + l) * 2 + ebit as usize) * 8 + bitpos as usize;
                self.midx[m] = ix;
                self.st_in[NCTX + m] = self.tables.st((self.mt[ix] >> 20) as i32);
                msel |= 1 << m;
            }
        }
        self.st_in[NCTX + NM] = 256;
        // Weight set: caller's selector, match state, bit position.
        self.sel = (self.selbase + (msel & 7) * 8 + (msel >> 3) * 4 + (bitpos as usize >> 1)) * NIN;
        let w = &self.w[self.sel..self.sel + NIN];
        let mut dot: i64 = 0;
        for i in 0..NIN {
            dot += self.st_in[i] as i64 * w[i] as i64;
        }
        let d1 = (dot >> 16).clamp(-2047, 2047) as i32;
        self.sel2 = (self.sel2base + (bitpos as usize >> 1)) * NIN;
        let w2 = &self.w2[self.sel2..self.sel2 + NIN];
        let mut dot2: i64 = 0;
        for i in 0..NIN {
            dot2 += self.st_in[i] as i64 * w2[i] as i64;
        }
        let d2 = (dot2 >> 16).clamp(-2047, 2047) as i32;
        self.pr1 = squash(d1);
        self.pr2 = squash(d2);
        let d = (d1 + d2) >> 1;
        self.pr_mix = squash(d);
        // SSE on (apm ctx, c0), interpolating between 33 buckets of the stretched input.
        let s = d + 2048; // 1..4095
        let lo = (s >> 7) as usize;
        let wgt = s & 127;
        let base = ((self.apm_ctx as usize) * 256 + c0 as usize) * 33 + lo;
        self.apm_idx = base + if wgt >= 64 { 1 } else { 0 };
        let a = (self.apm[base] as i32 * (128 - wgt) + self.apm[base + 1] as i32 * wgt) >> 11;
        // The SSE output alone measured best (mixing back the mixer's output did not help).
        let p = a;
        self.pr = p.clamp(1, 4095);
    }

    /// Probability (12 bits) that the next bit is 1.
    #[inline]
    pub fn p(&self) -> u32 {
        self.pr as u32
    }

    /// Learns the coded bit and moves to the next.
    pub fn update(&mut self, y: u32) {
        let dt = &self.tables.dt;
        for i in 0..NCTX {
            counter_update(&mut self.t[self.idx[i]], y, self.lim, dt);
        }
        for m in 0..NM {
            if self.midx[m] != usize::MAX {
                counter_update(&mut self.mt[self.midx[m]], y, 1023, dt);
                let e = self.mexp[m] as u32;
                let bitpos = 31 - self.c0.leading_zeros();
                if (e >> (7 - bitpos)) & 1 != y {
                    self.mmiss[m] = true;
                }
            }
        }
        let err = ((y as i32) << 12) - self.pr1;
        let w = &mut self.w[self.sel..self.sel + NIN];
        for i in 0..NIN {
            w[i] += (self.st_in[i] * err * self.lr) >> 12;
        }
        let err2 = ((y as i32) << 12) - self.pr2;
        let w2 = &mut self.w2[self.sel2..self.sel2 + NIN];
        for i in 0..NIN {
            w2[i] += (self.st_in[i] * err2 * self.lr) >> 12;
        }
        let target = (y as i32) << 16;
        let a = &mut self.apm[self.apm_idx];
        *a = (*a as i32 + ((target - *a as i32) >> 6)).clamp(0, 65535) as u16;
        self.c0 = (self.c0 << 1) | y;
        self.nib = (self.nib << 1) | y;
        if self.nib >= 16 {
            self.nib = 1;
            if self.c0 < 256 {
                self.set_bases(self.c0 | 0x100);
            }
        }
        if self.c0 < 256 {
            self.predict();
        }
    }
}

/// Final avalanche of a 32-bit hash.
#[inline]
pub fn finalize(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x7FEB_352D);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846C_A68B);
    h ^= h >> 16;
    h
}

/// Combines a hash with one more value.
#[inline]
pub fn hc(h: u32, v: u32) -> u32 {
    (h ^ v)
        .wrapping_mul(0x0100_0193)
        .rotate_left(13)
        .wrapping_add(0x6A09_E667)
}

/// Binary arithmetic encoder (carry-less, 32-bit range, 12-bit probabilities).
pub struct Encoder {
    x1: u32,
    x2: u32,
    out: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Encoder {
            x1: 0,
            x2: u32::MAX,
            out: Vec::new(),
        }
    }
    /// Codes bit `y` with probability `p` (12-bit, of a 1).
    #[inline]
    pub fn encode(&mut self, y: u32, p: u32) {
        let xmid = self.x1 + (((self.x2 - self.x1) as u64 * p as u64) >> 12) as u32;
        if y != 0 {
            self.x2 = xmid;
        } else {
            self.x1 = xmid + 1;
        }
        while (self.x1 ^ self.x2) & 0xFF00_0000 == 0 {
            self.out.push((self.x2 >> 24) as u8);
            self.x1 <<= 8;
            self.x2 = (self.x2 << 8) | 255;
        }
    }
    /// Flushes and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let x = self.x1;
        self.out.extend_from_slice(&x.to_be_bytes());
        self.out
    }
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Binary arithmetic decoder matching [`Encoder`].
pub struct Decoder<'a> {
    x1: u32,
    x2: u32,
    x: u32,
    src: &'a [u8],
    pos: usize,
    overrun: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder over `src`.
    pub fn new(src: &'a [u8]) -> Self {
        let mut d = Decoder {
            x1: 0,
            x2: u32::MAX,
            x: 0,
            src,
            pos: 0,
            overrun: 0,
        };
        for _ in 0..4 {
            d.x = (d.x << 8) | d.next_byte();
        }
        d
    }
    #[inline]
    fn next_byte(&mut self) -> u32 {
        if self.pos < self.src.len() {
            let b = self.src[self.pos];
            self.pos += 1;
            b as u32
        } else {
            self.overrun += 1;
            0
        }
    }
    /// Decodes one bit given probability `p` (12-bit, of a 1).
    #[inline]
    pub fn decode(&mut self, p: u32) -> u32 {
        let xmid = self.x1 + (((self.x2 - self.x1) as u64 * p as u64) >> 12) as u32;
        let y = if self.x <= xmid {
            self.x2 = xmid;
            1
        } else {
            self.x1 = xmid + 1;
            0
        };
        while (self.x1 ^ self.x2) & 0xFF00_0000 == 0 {
            self.x1 <<= 8;
            self.x2 = (self.x2 << 8) | 255;
            self.x = (self.x << 8) | self.next_byte();
        }
        y
    }
    /// Errors if the decoder ran far past the end of its input (corrupt stream).
    pub fn check(&self) -> Result<()> {
        if self.overrun > 8 {
            Err(Error::codec("log", "context-mixing stream ended early"))
        } else {
            Ok(())
        }
    }
}

/// Either side of the coder, so modelling code is written once.
pub enum Coder<'a> {
    /// Encoding.
    Enc(Encoder),
    /// Decoding.
    Dec(Decoder<'a>),
}

impl Coder<'_> {
    /// Codes one bit: on encode `y` is coded and returned; on decode `y` is ignored and
    /// the decoded bit returned.
    #[inline]
    pub fn bit(&mut self, y: u32, p: u32) -> u32 {
        match self {
            Coder::Enc(e) => {
                e.encode(y, p);
                y
            }
            Coder::Dec(d) => d.decode(p),
        }
    }
}

/// A predictor plus the coder: codes whole bytes with given contexts.
pub struct ByteCoder<'a> {
    /// The model.
    pub pred: Predictor,
    /// The coder.
    pub coder: Coder<'a>,
    /// Direct counters for flag bits.
    flags: Vec<u32>,
    /// Encoder-side cost accounting in bits, per selector class (debug statistics).
    pub cost: [f64; 8],
    /// Bytes coded per class.
    pub count: [u64; 8],
}

impl<'a> ByteCoder<'a> {
    /// A byte coder with a 2^`bits` counter table.
    pub fn new(bits: u32, coder: Coder<'a>) -> Self {
        ByteCoder {
            pred: Predictor::new(bits),
            coder,
            flags: vec![HALF; 1 << 16],
            cost: [0.0; 8],
            count: [0; 8],
        }
    }

    /// Codes one byte (returns it; on decode the argument is ignored).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn byte(
        &mut self,
        b: u8,
        ctx: &[u32; NCTX],
        sel: u32,
        sel2: u32,
        mexp: [i32; NM],
        mlen: [u32; NM],
        apm: u32,
    ) -> u8 {
        self.pred.set_byte_context(ctx, sel, sel2, mexp, mlen, apm);
        let mut c = 0u32;
        for i in (0..8).rev() {
            let y = ((b as u32) >> i) & 1;
            let p = self.pred.p();
            if STATS {
                let q = if y == 1 { p } else { 4096 - p };
                self.cost[(sel as usize / 8) & 7] -= (q as f64 / 4096.0).log2();
            }
            let y = self.coder.bit(y, p);
            self.pred.update(y);
            c = (c << 1) | y;
        }
        if STATS {
            self.count[(sel as usize / 8) & 7] += 1;
        }
        c as u8
    }

    /// Codes a flag bit with an adaptive counter in slot `ctx` (< 65536).
    #[inline]
    pub fn flag(&mut self, y: bool, ctx: usize) -> bool {
        let slot = &mut self.flags[ctx & 0xFFFF];
        let p = (*slot >> 20).clamp(1, 4095);
        if STATS {
            let q = if y { p } else { 4096 - p };
            self.cost[7] -= (q as f64 / 4096.0).log2();
        }
        let y = self.coder.bit(y as u32, p);
        let dt = &self.pred.tables.dt;
        counter_update(slot, y, 1023, dt);
        y != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squash_and_stretch_are_inverse_enough() {
        let t = Tables::new();
        for x in (-1500..1500).step_by(37) {
            let p = squash(x);
            let back = t.st(p);
            assert!((back - x).abs() < 40, "x={x} p={p} back={back}");
        }
    }

    #[test]
    fn bytes_round_trip() {
        let data: Vec<u8> = (0..5000u32)
            .map(|i| ((i * 7) % 13 + i / 100) as u8)
            .collect();
        let ctx_of = |prev: u8| {
            let mut c = [0u32; NCTX];
            c[0] = prev as u32;
            c[1] = 77;
            c
        };
        let mut bc = ByteCoder::new(16, Coder::Enc(Encoder::new()));
        let mut prev = 0u8;
        for &b in &data {
            bc.byte(
                b,
                &ctx_of(prev),
                1,
                0,
                [prev as i32, -1, -1, -1],
                [3, 0, 0, 0],
                0,
            );
            bc.flag(b & 1 == 1, 5);
            prev = b;
        }
        let Coder::Enc(e) = bc.coder else {
            unreachable!()
        };
        let bytes = e.finish();
        assert!(bytes.len() < data.len() / 2, "{} bytes", bytes.len());
        let mut bc = ByteCoder::new(16, Coder::Dec(Decoder::new(&bytes)));
        let mut prev = 0u8;
        for &b in &data {
            let d = bc.byte(
                0,
                &ctx_of(prev),
                1,
                0,
                [prev as i32, -1, -1, -1],
                [3, 0, 0, 0],
                0,
            );
            assert_eq!(d, b);
            assert_eq!(bc.flag(false, 5), b & 1 == 1);
            prev = d;
        }
    }
}
