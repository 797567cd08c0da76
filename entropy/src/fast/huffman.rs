//! Canonical, length-limited Huffman codes over bytes: deterministic construction from
//! counts, bit-reversed codes for an LSB-first bit stream, and a single-lookup decode table.

/// Longest code length; one table lookup of this many bits decodes any symbol.
pub const MAX_CODE_LEN: u32 = 11;
/// Entries of the decode table.
pub const TABLE_SIZE: usize = 1 << MAX_CODE_LEN;
/// Mask selecting the table index from the low bits of the bit buffer.
pub const TABLE_MASK: u64 = (TABLE_SIZE - 1) as u64;

/// Optimal (unlimited) Huffman code lengths for the symbols with a non-zero count.
/// Ties are broken by symbol value, so the result depends only on `counts`.
fn unlimited_lengths(counts: &[u64; 256]) -> [u32; 256] {
    let mut lens = [0u32; 256];
    let mut syms: Vec<usize> = (0..256).filter(|&s| counts[s] > 0).collect();
    let m = syms.len();
    if m == 0 {
        return lens;
    }
    if m == 1 {
        lens[syms[0]] = 1;
        return lens;
    }
    syms.sort_by_key(|&s| (counts[s], s));
    let total = 2 * m - 1;
    let mut weight = vec![0u64; total];
    let mut parent = vec![0usize; total];
    for (i, &s) in syms.iter().enumerate() {
        weight[i] = counts[s];
    }
    // Two-queue construction: leaves sorted ascending, internal nodes created ascending.
    let (mut leaf, mut internal, mut next) = (0usize, m, m);
    while next < total {
        let mut pick = || {
            if leaf < m && (internal >= next || weight[leaf] <= weight[internal]) {
                leaf += 1;
                leaf - 1
            } else {
                internal += 1;
                internal - 1
            }
        };
        let a = pick();
        let b = pick();
        weight[next] = weight[a].saturating_add(weight[b]);
        parent[a] = next;
        parent[b] = next;
        next += 1;
    }
    let mut depth = vec![0u32; total];
    for i in (0..total - 1).rev() {
        depth[i] = depth[parent[i]] + 1;
    }
    for (i, &s) in syms.iter().enumerate() {
        lens[s] = depth[i];
    }
    lens
}

/// Code lengths (0 = symbol absent) for `counts`, limited to `MAX_CODE_LEN` bits and
/// forming a complete prefix code whenever at least two symbols occur. Deterministic.
pub fn code_lengths(counts: &[u64; 256]) -> [u8; 256] {
    let mut lens = unlimited_lengths(counts);
    let present = lens.iter().filter(|&&l| l > 0).count();
    let mut out = [0u8; 256];
    if present < 2 {
        for s in 0..256 {
            out[s] = lens[s] as u8;
        }
        return out;
    }
    let l = MAX_CODE_LEN;
    let cap: u64 = 1 << l;
    for x in lens.iter_mut() {
        if *x > l {
            *x = l;
        }
    }
    let kraft = |lens: &[u32; 256]| -> u64 {
        lens.iter()
            .filter(|&&x| x > 0)
            .map(|&x| 1u64 << (l - x))
            .sum()
    };
    let mut k = kraft(&lens);
    // Over-subscribed: lengthen the cheapest codes (lowest count, then longest) until it fits.
    while k > cap {
        let mut best: Option<usize> = None;
        for s in 0..256 {
            if lens[s] == 0 || lens[s] >= l {
                continue;
            }
            best = match best {
                None => Some(s),
                Some(b) => {
                    if (counts[s], std::cmp::Reverse(lens[s]))
                        < (counts[b], std::cmp::Reverse(lens[b]))
                    {
                        Some(s)
                    } else {
                        Some(b)
                    }
                }
            };
        }
        let Some(s) = best else { break };
        lens[s] += 1;
        k -= 1u64 << (l - lens[s]);
    }
    // Under-subscribed: shorten the most frequent code that still fits, until complete.
    while k < cap {
        let mut best: Option<usize> = None;
        for s in 0..256 {
            if lens[s] <= 1 || k + (1u64 << (l - lens[s])) > cap {
                continue;
            }
            best = match best {
                None => Some(s),
                Some(b) if counts[s] > counts[b] => Some(s),
                Some(b) => Some(b),
            };
        }
        let Some(s) = best else { break };
        k += 1u64 << (l - lens[s]);
        lens[s] -= 1;
    }
    for s in 0..256 {
        out[s] = lens[s] as u8;
    }
    out
}

/// Checks that `lens` (each ≤ `MAX_CODE_LEN`) is a complete prefix code over ≥ 2 symbols.
pub fn is_complete(lens: &[u8; 256]) -> bool {
    let mut k = 0u64;
    let mut present = 0;
    for &x in lens.iter() {
        if x == 0 {
            continue;
        }
        if u32::from(x) > MAX_CODE_LEN {
            return false;
        }
        present += 1;
        k += 1u64 << (MAX_CODE_LEN - u32::from(x));
    }
    present >= 2 && k == 1u64 << MAX_CODE_LEN
}

fn reverse_bits(mut v: u32, n: u32) -> u32 {
    let mut r = 0;
    for _ in 0..n {
        r = (r << 1) | (v & 1);
        v >>= 1;
    }
    r
}

/// Canonical codes, bit-reversed for LSB-first output: `(code, len)` per symbol.
pub fn canonical_codes(lens: &[u8; 256]) -> [(u32, u32); 256] {
    let mut order: Vec<usize> = (0..256).filter(|&s| lens[s] > 0).collect();
    order.sort_by_key(|&s| (lens[s], s));
    let mut codes = [(0u32, 0u32); 256];
    let mut code = 0u32;
    let mut prev_len = 0u32;
    for &s in &order {
        let len = u32::from(lens[s]);
        code <<= len - prev_len;
        codes[s] = (reverse_bits(code, len), len);
        code += 1;
        prev_len = len;
    }
    codes
}

/// Decode table: entry = `symbol | (length << 8)`, indexed by the next `MAX_CODE_LEN`
/// bits of the stream (LSB first). `lens` must be complete (see [`is_complete`]).
pub fn decode_table(lens: &[u8; 256]) -> Box<[u16; TABLE_SIZE]> {
    let mut table = Box::new([0u16; TABLE_SIZE]);
    let codes = canonical_codes(lens);
    for (s, &(code, len)) in codes.iter().enumerate() {
        if len == 0 {
            continue;
        }
        let entry = (s as u16) | ((len as u16) << 8);
        let step = 1usize << len;
        let mut i = code as usize;
        while i < TABLE_SIZE {
            table[i] = entry;
            i += step;
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_limited_and_complete_for_skewed_counts() {
        let mut counts = [0u64; 256];
        // Fibonacci-like counts force very deep unlimited trees.
        let (mut a, mut b) = (1u64, 1u64);
        for c in counts.iter_mut().take(40) {
            *c = a;
            let t = a + b;
            a = b;
            b = t;
        }
        let lens = code_lengths(&counts);
        assert!(lens.iter().all(|&x| u32::from(x) <= MAX_CODE_LEN));
        assert!(is_complete(&lens));
        assert_eq!(lens.iter().filter(|&&x| x > 0).count(), 40);
    }

    #[test]
    fn uniform_256_symbols_get_8_bits() {
        let counts = [7u64; 256];
        let lens = code_lengths(&counts);
        assert!(lens.iter().all(|&x| x == 8));
    }

    #[test]
    fn table_covers_every_index() {
        let mut counts = [0u64; 256];
        counts[3] = 100;
        counts[9] = 1;
        counts[200] = 50;
        let lens = code_lengths(&counts);
        let t = decode_table(&lens);
        assert!(t.iter().all(|&e| e >> 8 != 0));
    }
}
