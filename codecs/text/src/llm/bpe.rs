//! GPT-2-style byte-level BPE tokenizer built from a GGUF vocabulary and merge list
//! (`tokenizer.ggml.model = gpt2`).
//!
//! Every byte maps to one printable character (the GPT-2 `bytes_to_unicode` table), a
//! token is a string of such characters, and merges join adjacent symbols in rank order
//! (Sennrich et al. 2016; Radford et al. 2019). Text is first split into pieces like the
//! SmolLM2 pre-tokenizer (each digit alone, then the GPT-2 pattern
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`), so the
//! token sequences look like the ones the model was trained on. Bytes that are not valid
//! UTF-8 are treated as punctuation. Any byte sequence round-trips: a byte with no
//! single-byte token (SmolLM2 lacks 21, e.g. 0x04 and 0xff) becomes the raw id
//! `vocab_size + byte`, which the codec codes as an escape token plus 8 bits.
//! Control tokens (`tokenizer.ggml.token_type` 3, e.g. `<|endoftext|>`) have no byte
//! form: BPE never produces them and decoding one is an error.

use std::collections::HashMap;

use lcodec_core::{Error, Result};

/// The GPT-2 byte → character table.
fn byte_chars() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..256u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        let c = if printable {
            b
        } else {
            extra += 1;
            255 + extra
        };
        table[b as usize] = char::from_u32(c).unwrap_or('\0');
    }
    table
}

/// The vocabulary string (in byte-char form) of a token's bytes.
#[cfg(test)]
pub(crate) fn token_string(bytes: &[u8]) -> String {
    let chars = byte_chars();
    bytes.iter().map(|&b| chars[b as usize]).collect()
}

/// A byte-level BPE tokenizer.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    /// Token id → bytes it stands for (`None` for special tokens not made of byte chars).
    token_bytes: Vec<Option<Vec<u8>>>,
    /// Byte-char token string → id.
    ids: HashMap<String, u32>,
    /// Merge rank by (left id, right id) → (rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Id of each single byte (`vocab_size + byte` when it has no token).
    byte_ids: [u32; 256],
}

impl Tokenizer {
    /// Builds the tokenizer from the token strings, their types (`3` = control; empty
    /// = all normal) and the merges (`"left right"`).
    ///
    /// # Errors
    /// [`Error::Malformed`] for a merge line without a space, or more than 2^31 tokens.
    pub fn new(tokens: &[String], types: &[u32], merges: &[String]) -> Result<Self> {
        if tokens.len() > 1 << 31 {
            return Err(Error::malformed(
                0,
                format!("tokenizer: {} tokens", tokens.len()),
            ));
        }
        let chars = byte_chars();
        let mut char_byte: HashMap<char, u8> = HashMap::new();
        for (b, c) in chars.iter().enumerate() {
            char_byte.insert(*c, b as u8);
        }
        let mut ids = HashMap::with_capacity(tokens.len());
        let mut token_bytes = Vec::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            if types.get(i) == Some(&3) {
                token_bytes.push(None);
                continue;
            }
            // Keep the first id of a duplicated string.
            ids.entry(t.clone()).or_insert(i as u32);
            let bytes: Option<Vec<u8>> = t.chars().map(|c| char_byte.get(&c).copied()).collect();
            token_bytes.push(bytes.filter(|b| !b.is_empty()));
        }
        let mut byte_ids = [0u32; 256];
        for b in 0..256 {
            byte_ids[b] = ids
                .get(&chars[b].to_string())
                .copied()
                .unwrap_or(tokens.len() as u32 + b as u32);
        }
        let mut merge_map = HashMap::with_capacity(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            let (l, r) = m.split_once(' ').ok_or_else(|| {
                Error::malformed(0, format!("tokenizer: merge {m:?} has no space"))
            })?;
            let (Some(&li), Some(&ri), Some(&mi)) =
                (ids.get(l), ids.get(r), ids.get(&format!("{l}{r}")))
            else {
                continue;
            };
            merge_map.entry((li, ri)).or_insert((rank as u32, mi));
        }
        Ok(Tokenizer {
            token_bytes,
            ids,
            merges: merge_map,
            byte_ids,
        })
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// Id of a token string (in byte-char form), if present.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// Bytes of token `id`, if it is an ordinary (byte-level) token.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.token_bytes.get(id as usize)?.as_deref()
    }

    /// Bytes that have no single-byte token (coded as raw ids `vocab_size + byte`).
    pub fn missing_bytes(&self) -> Vec<u8> {
        (0..=255u8)
            .filter(|&b| self.byte_ids[b as usize] as usize >= self.vocab_size())
            .collect()
    }

    /// Tokenises any byte sequence; `decode(encode(x)) == x` always.
    pub fn encode(&self, text: &[u8]) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let mut cache: HashMap<&[u8], Vec<u32>> = HashMap::new();
        for piece in pretokenize(text) {
            if let Some(ids) = cache.get(piece) {
                out.extend_from_slice(ids);
                continue;
            }
            let ids = self.bpe(piece);
            out.extend_from_slice(&ids);
            if cache.len() < 1 << 16 {
                cache.insert(piece, ids);
            }
        }
        out
    }

    /// BPE over one piece: repeatedly merge the adjacent pair with the lowest rank
    /// (leftmost on ties).
    fn bpe(&self, piece: &[u8]) -> Vec<u32> {
        let mut sym: Vec<u32> = piece.iter().map(|&b| self.byte_ids[b as usize]).collect();
        while sym.len() > 1 {
            let mut best: Option<(u32, usize, u32)> = None;
            for i in 0..sym.len() - 1 {
                if let Some(&(rank, merged)) = self.merges.get(&(sym[i], sym[i + 1])) {
                    if best.is_none_or(|(r, _, _)| rank < r) {
                        best = Some((rank, i, merged));
                    }
                }
            }
            let Some((_, i, merged)) = best else { break };
            sym[i] = merged;
            sym.remove(i + 1);
        }
        sym
    }

    /// Bytes of a token sequence.
    ///
    /// # Errors
    /// [`Error::Codec`] for an id outside the vocabulary or a special token.
    pub fn decode(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        let v = self.vocab_size();
        for &id in ids {
            let raw = (id as usize).checked_sub(v).filter(|&b| b < 256);
            if let Some(b) = raw {
                out.push(b as u8);
                continue;
            }
            out.extend_from_slice(self.token_bytes(id).ok_or_else(|| {
                Error::codec(
                    "text-llm",
                    format!("token {id} has no byte form (special or out of range)"),
                )
            })?);
        }
        Ok(out)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
    Space,
    Other,
}

/// Splits text into (byte offset, byte length, class) units: UTF-8 characters, or single
/// invalid bytes (class Other).
fn units(text: &[u8]) -> Vec<(usize, usize, Class, char)> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        let len = match b {
            0x00..=0x7f => 1,
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 0,
        };
        let ch = if len > 0 && i + len <= text.len() {
            std::str::from_utf8(&text[i..i + len])
                .ok()
                .and_then(|s| s.chars().next())
        } else {
            None
        };
        match ch {
            Some(c) => {
                let class = if c.is_alphabetic() {
                    Class::Letter
                } else if c.is_numeric() {
                    Class::Digit
                } else if c.is_whitespace() {
                    Class::Space
                } else {
                    Class::Other
                };
                out.push((i, len, class, c));
                i += len;
            }
            None => {
                out.push((i, 1, Class::Other, '\u{fffd}'));
                i += 1;
            }
        }
    }
    out
}

/// Splits text into pieces (byte slices) like SmolLM2's pre-tokenizer.
pub fn pretokenize(text: &[u8]) -> Vec<&[u8]> {
    let u = units(text);
    let mut pieces = Vec::new();
    let n = u.len();
    let mut i = 0;
    let slice = |a: usize, b: usize| -> &[u8] {
        let start = u[a].0;
        let end = if b < n { u[b].0 } else { text.len() };
        &text[start..end]
    };
    // Each digit is its own segment; the regex runs inside the segments between digits.
    while i < n {
        if u[i].2 == Class::Digit {
            pieces.push(slice(i, i + 1));
            i += 1;
            continue;
        }
        let seg_end = (i..n).find(|&k| u[k].2 == Class::Digit).unwrap_or(n);
        let mut k = i;
        while k < seg_end {
            let end = match_at(&u, k, seg_end);
            pieces.push(slice(k, end));
            k = end;
        }
        i = seg_end;
    }
    pieces
}

/// End (exclusive unit index) of the GPT-2 pattern match starting at unit `k`, within
/// `..end`.
fn match_at(u: &[(usize, usize, Class, char)], k: usize, end: usize) -> usize {
    let c = |j: usize| u[j].3;
    let class = |j: usize| u[j].2;
    // Contractions.
    if c(k) == '\'' && k + 1 < end {
        let c1 = c(k + 1);
        if matches!(c1, 's' | 't' | 'm' | 'd') {
            return k + 2;
        }
        if k + 2 < end {
            let c2 = c(k + 2);
            if matches!((c1, c2), ('r', 'e') | ('v', 'e') | ('l', 'l')) {
                return k + 3;
            }
        }
    }
    let run = |from: usize, cl: Class| -> usize {
        let mut j = from;
        while j < end && class(j) == cl {
            j += 1;
        }
        j
    };
    let start = if c(k) == ' ' && k + 1 < end { k + 1 } else { k };
    let first = if start == k + 1 {
        class(start)
    } else {
        class(k)
    };
    // ` ?\p{L}+`
    if first == Class::Letter && (start == k + 1 || class(k) == Class::Letter) {
        return run(start, Class::Letter);
    }
    // ` ?[^\s\p{L}\p{N}]+` (digits never occur inside a segment)
    if first == Class::Other && (start == k + 1 || class(k) == Class::Other) {
        return run(start, Class::Other);
    }
    // Whitespace: `\s+(?!\S)` then `\s+`.
    if class(k) == Class::Space {
        let j = run(k, Class::Space);
        if j == end || j - k == 1 {
            return j;
        }
        return j - 1;
    }
    // Unreachable in practice (every class is handled); take one unit.
    k + 1
}

/// A tiny vocabulary for tests: all 256 byte tokens, plus merges for "th", "the", " the", "in".
#[cfg(test)]
pub(crate) fn tiny() -> Tokenizer {
    let chars = byte_chars();
    let mut tokens: Vec<String> = vec!["<|endoftext|>".into()];
    tokens.extend(chars.iter().map(|c| c.to_string()));
    let sp = chars[b' ' as usize];
    for t in ["th", "the", &format!("{sp}the"), "in"] {
        tokens.push(t.to_string());
    }
    let merges = vec![
        "t h".to_string(),
        "th e".into(),
        format!("{sp} the"),
        "i n".into(),
    ];
    Tokenizer::new(&tokens, &[3], &merges).expect("tokenizer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_follow_the_gpt2_pattern() {
        let p: Vec<&[u8]> = pretokenize(b"Hello world's  end 123!!\n\nx");
        let s: Vec<String> = p
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        assert_eq!(
            s,
            [
                "Hello", " world", "'s", " ", " end", " ", "1", "2", "3", "!!", "\n", "\n", "x"
            ]
        );
    }

    #[test]
    fn merges_apply_in_rank_order() {
        let t = tiny();
        let ids = t.encode(b"the thin");
        let words: Vec<String> = ids
            .iter()
            .map(|&i| String::from_utf8_lossy(t.token_bytes(i).expect("byte token")).into())
            .collect();
        assert_eq!(words, ["the", " ", "th", "in"]);
        assert!(ids.len() < 8);
    }

    #[test]
    fn any_bytes_round_trip() {
        let t = tiny();
        let mut x: Vec<u8> = (0..=255u8).collect();
        x.extend_from_slice("naïve café — 東京 ’quotes’ 12.5%\r\n\t".as_bytes());
        x.extend_from_slice(&[0xff, 0xfe, 0xc3, b' ', 0xe2, 0x82, b'x', 0xf0, 0x9f]);
        let mut s = 1u32;
        for _ in 0..2000 {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            x.push((s >> 24) as u8);
        }
        let ids = t.encode(&x);
        assert_eq!(t.decode(&ids).expect("decode"), x);
        assert!(t.decode(&[0]).is_err(), "special token has no bytes");
        assert!(t.decode(&[1_000_000]).is_err());
        assert_eq!(t.encode(b""), Vec::<u32>::new());
    }

    #[test]
    fn bytes_without_a_token_become_raw_ids() {
        let tokens: Vec<String> = vec!["a".into(), "b".into(), "ab".into()];
        let t = Tokenizer::new(&tokens, &[], &["a b".to_string()]).expect("tokenizer");
        assert_eq!(t.missing_bytes().len(), 254);
        let ids = t.encode(b"ab\x04ba");
        assert_eq!(ids, [2, 3 + 4, 1, 0]);
        assert_eq!(t.decode(&ids).expect("decode"), b"ab\x04ba");
        assert!(t.decode(&[3 + 256]).is_err());
    }
}
