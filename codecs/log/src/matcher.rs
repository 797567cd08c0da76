//! The match model shared by the log coders: a history of coded bytes and a hash table of
//! the positions that followed each context of `min_len` bytes, predicting that the
//! longest recent repeat continues.

/// History plus the current match (`len` bytes matched so far, `ptr` the predicted byte's
/// position in `hist`; `len == 0` when there is no match).
pub(crate) struct Matcher {
    pub(crate) hist: Vec<u8>,
    table: Vec<u32>,
    table_bits: u32,
    min_len: usize,
    pub(crate) ptr: usize,
    pub(crate) len: u32,
}

impl Matcher {
    /// A matcher with a `2^table_bits` hash table, finding matches of at least `min_len`.
    pub(crate) fn new(table_bits: u32, min_len: usize) -> Self {
        Matcher {
            hist: Vec::new(),
            table: vec![0; 1 << table_bits],
            table_bits,
            min_len,
            ptr: 0,
            len: 0,
        }
    }

    /// Appends a coded byte: extends or ends the current match, looks a new one up when
    /// there is none, and records the position after the last `min_len` bytes.
    pub(crate) fn push(&mut self, b: u8) {
        if self.len > 0 && self.hist[self.ptr] == b {
            self.len += 1;
            self.ptr += 1;
        } else {
            self.len = 0;
        }
        self.hist.push(b);
        let n = self.hist.len();
        if n >= self.min_len {
            let mut h = 0u32;
            for &c in &self.hist[n - self.min_len..] {
                h = (h ^ c as u32).wrapping_mul(0x2C9E_6E5B).rotate_left(7);
            }
            let slot = (h >> (32 - self.table_bits)) as usize;
            if self.len == 0 {
                let cand = self.table[slot] as usize;
                if cand > 0 && cand < n {
                    let mut l = 0usize;
                    while l < 32 && l < cand && self.hist[cand - 1 - l] == self.hist[n - 1 - l] {
                        l += 1;
                    }
                    if l >= self.min_len {
                        self.len = l as u32;
                        self.ptr = cand;
                    }
                }
            }
            self.table[slot] = n as u32;
        }
    }
}
