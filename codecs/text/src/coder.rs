//! A 32-bit binary arithmetic coder (carry-less, bytewise output).
//!
//! The model predicts every bit, so the coder runs once per bit; a dedicated coder
//! of a few integer operations keeps that cost far below the model's. The shared
//! range coder in `lcodec-entropy` codes categorical symbols through constriction's
//! generic interface, which costs several times more per binary decision (measured
//! in the report of issue 7). The interval arithmetic follows the binary coder
//! described in Mahoney, "Data Compression Explained", section 4.1.

/// Encodes bits with 16-bit probabilities.
#[derive(Debug)]
pub struct BitEncoder {
    x1: u32,
    x2: u32,
    out: Vec<u8>,
}

impl Default for BitEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BitEncoder {
    /// An encoder with an empty output.
    pub fn new() -> Self {
        BitEncoder {
            x1: 0,
            x2: u32::MAX,
            out: Vec::new(),
        }
    }

    /// Codes `bit` where `p1` (1..=65535) is the probability of a 1 in units of 2^-16.
    #[inline]
    pub fn encode(&mut self, bit: u32, p1: u32) {
        let xmid = split(self.x1, self.x2, p1);
        if bit != 0 {
            self.x2 = xmid;
        } else {
            self.x1 = xmid + 1;
        }
        while (self.x1 ^ self.x2) & 0xff00_0000 == 0 {
            self.out.push((self.x2 >> 24) as u8);
            self.x1 <<= 8;
            self.x2 = (self.x2 << 8) | 255;
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Flushes the interval and returns the coded bytes.
    pub fn finish(mut self) -> Vec<u8> {
        // Any value in [x1, x2] decodes correctly; x1's top byte plus ones would do,
        // but four bytes of x1 are simplest and cost at most three bytes per chunk.
        self.out.extend_from_slice(&self.x1.to_be_bytes());
        self.out
    }
}

#[inline]
fn split(x1: u32, x2: u32, p1: u32) -> u32 {
    let r = (x2 - x1) as u64;
    // p1 < 2^16, so xmid < x2 and both sub-intervals are non-empty.
    x1 + ((r * p1 as u64) >> 16) as u32
}

/// Decodes bits coded by [`BitEncoder`]. Reading past the end yields zero bytes, so a
/// truncated or corrupt stream decodes to wrong bytes (caught by the container's hash)
/// but never panics.
#[derive(Debug)]
pub struct BitDecoder<'a> {
    x1: u32,
    x2: u32,
    x: u32,
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitDecoder<'a> {
    /// A decoder over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        let mut d = BitDecoder {
            x1: 0,
            x2: u32::MAX,
            x: 0,
            data,
            pos: 0,
        };
        for _ in 0..4 {
            d.x = (d.x << 8) | d.next_byte();
        }
        d
    }

    #[inline]
    fn next_byte(&mut self) -> u32 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b as u32
    }

    /// Decodes one bit with the same `p1` the encoder used.
    #[inline]
    pub fn decode(&mut self, p1: u32) -> u32 {
        let xmid = split(self.x1, self.x2, p1);
        let bit = if self.x <= xmid {
            self.x2 = xmid;
            1
        } else {
            self.x1 = xmid + 1;
            0
        };
        while (self.x1 ^ self.x2) & 0xff00_0000 == 0 {
            self.x1 <<= 8;
            self.x2 = (self.x2 << 8) | 255;
            self.x = (self.x << 8) | self.next_byte();
        }
        bit
    }

    /// Bytes consumed beyond the end of the input (more than 4 means the stream was short).
    pub fn overrun(&self) -> usize {
        self.pos.saturating_sub(self.data.len())
    }
}
