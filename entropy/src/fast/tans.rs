//! Table ANS (tANS) over bytes with 2^11 states: closer to the entropy than Huffman on
//! skewed sources (no whole-bit code lengths), decoded with one table lookup and one
//! bit read per symbol. Construction is deterministic from the counts.

/// log2 of the number of states.
pub const TABLE_LOG: u32 = 11;
/// Number of states; normalised counts sum to this.
pub const STATES: usize = 1 << TABLE_LOG;

/// Scales `counts` to integers summing to [`STATES`], each present symbol ≥ 1.
/// `None` if fewer than 2 symbols are present.
pub fn normalise(counts: &[u64; 256]) -> Option<[u32; 256]> {
    let total: u64 = counts.iter().sum();
    let present = counts.iter().filter(|&&c| c > 0).count();
    if present < 2 || total == 0 {
        return None;
    }
    let l = STATES as u64;
    let mut norm = [0u32; 256];
    let mut rem = [0u64; 256];
    let mut sum = 0i64;
    for s in 0..256 {
        if counts[s] == 0 {
            continue;
        }
        let scaled = u128::from(counts[s]) * u128::from(l);
        let q = (scaled / u128::from(total)) as u64;
        rem[s] = (scaled % u128::from(total)) as u64;
        norm[s] = q.max(1) as u32;
        if q == 0 {
            rem[s] = 0;
        }
        sum += i64::from(norm[s]);
    }
    let mut diff = l as i64 - sum;
    // Hand out the shortfall by largest remainder (ties: lower symbol).
    while diff > 0 {
        let mut best = 0usize;
        let mut found = false;
        for s in 0..256 {
            if counts[s] > 0 && (!found || rem[s] > rem[best]) {
                best = s;
                found = true;
            }
        }
        norm[best] += 1;
        rem[best] = 0;
        diff -= 1;
        if rem.iter().all(|&r| r == 0) {
            // Spread any remaining shortfall over the most frequent symbols.
            while diff > 0 {
                let s = (0..256)
                    .max_by_key(|&s| (counts[s], std::cmp::Reverse(s)))
                    .unwrap_or(0);
                norm[s] += 1;
                diff -= 1;
            }
        }
    }
    // Excess from the ≥ 1 floor: take from the symbols where one less costs least,
    // approximated by the largest normalised count above 1.
    while diff < 0 {
        let s = (0..256)
            .filter(|&s| norm[s] > 1)
            .max_by_key(|&s| (norm[s], std::cmp::Reverse(s)))?;
        norm[s] -= 1;
        diff += 1;
    }
    Some(norm)
}

/// Checks normalised counts read from a block: ≥ 2 symbols, summing to [`STATES`].
pub fn is_valid(norm: &[u32; 256]) -> bool {
    norm.iter().filter(|&&n| n > 0).count() >= 2
        && norm.iter().map(|&n| u64::from(n)).sum::<u64>() == STATES as u64
}

/// The symbol at each state (FSE-style spread with an odd step, so every slot is hit).
fn spread(norm: &[u32; 256]) -> Vec<u8> {
    let mut table = vec![0u8; STATES];
    let step = (STATES >> 1) + (STATES >> 3) + 3;
    let mut pos = 0usize;
    for (s, &n) in norm.iter().enumerate() {
        for _ in 0..n {
            table[pos] = s as u8;
            pos = (pos + step) & (STATES - 1);
        }
    }
    table
}

fn floor_log2(x: u32) -> u32 {
    31 - x.leading_zeros()
}

/// Decode table entry: `symbol | bits << 8 | base << 16`; the next state is
/// `base + (next `bits` bits of the stream)`.
pub fn decode_table(norm: &[u32; 256]) -> Box<[u32; STATES]> {
    let sp = spread(norm);
    let mut next = *norm;
    let mut t = Box::new([0u32; STATES]);
    for (u, &s) in sp.iter().enumerate() {
        let x = next[s as usize];
        next[s as usize] += 1;
        let bits = TABLE_LOG - floor_log2(x);
        let base = (x << bits) - STATES as u32;
        t[u] = u32::from(s) | (bits << 8) | (base << 16);
    }
    t
}

/// Encoder tables: for each symbol, the states (as `STATES + u`) of its occurrences in
/// spread order, starting at `start[s]`.
pub struct EncodeTable {
    norm: [u32; 256],
    start: [u32; 256],
    states: Vec<u16>,
}

impl EncodeTable {
    /// Builds the tables for `norm` (which must satisfy [`is_valid`]).
    pub fn new(norm: &[u32; 256]) -> Self {
        let sp = spread(norm);
        let mut start = [0u32; 256];
        let mut acc = 0u32;
        for s in 0..256 {
            start[s] = acc;
            acc += norm[s];
        }
        let mut fill = start;
        let mut states = vec![0u16; STATES];
        for (u, &s) in sp.iter().enumerate() {
            states[fill[s as usize] as usize] = (STATES + u) as u16;
            fill[s as usize] += 1;
        }
        EncodeTable {
            norm: *norm,
            start,
            states,
        }
    }

    /// Encodes `s` from state `x` (in `[STATES, 2·STATES)`): returns the new state and the
    /// low bits `(value, count)` to emit.
    #[inline(always)]
    pub fn step(&self, x: u32, s: u8) -> (u32, u32, u32) {
        let f = self.norm[s as usize];
        let a = floor_log2(f);
        let mut k = TABLE_LOG - a;
        if (x >> k) < f {
            k -= 1;
        }
        let low = x & ((1u32 << k) - 1);
        let xs = x >> k;
        let nx = u32::from(self.states[(self.start[s as usize] + xs - f) as usize]);
        (nx, low, k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_counts_sum_to_the_table_size() {
        let mut c = [0u64; 256];
        c[0] = 1_000_000;
        for (s, x) in c.iter_mut().enumerate().skip(1).take(200) {
            *x = s as u64;
        }
        let n = normalise(&c).expect("normalises");
        assert!(is_valid(&n));
        assert!((1..=200).all(|s| n[s] >= 1));
        let mut c = [0u64; 256];
        c[7] = 3;
        c[9] = 1;
        assert!(is_valid(&normalise(&c).expect("two symbols")));
        c[9] = 0;
        assert!(normalise(&c).is_none());
    }
}
