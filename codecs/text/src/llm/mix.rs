//! Byte-level coding of the LLM's token predictions, mixed with the text-cm model.
//!
//! The language model predicts tokens; [`crate::cm`] predicts bits of bytes. To mix
//! them, a token is coded as the walk through a trie of the vocabulary's byte strings:
//! for every byte, its eight bits (most significant first), and after every byte that
//! completes some token while longer tokens continue it, an "end of token" flag. The
//! model's probability of each decision is the ratio of two sums of token frequencies:
//! the tokens are sorted by their bytes, so every node of the walk is a contiguous range
//! of the sorted order, and one prefix sum per token position answers every split in
//! two binary searches. The product of the decisions' probabilities is the token's own
//! probability, so the walk alone costs what token coding costs; decisions one side of
//! which holds no token are not coded at all.
//!
//! [`Mixer`] then combines, per bit, the LLM's probability with the context-mixing
//! model's in the logistic domain (a gated linear mixer trained online, then an adaptive
//! probability map), as in the PAQ family (Mahoney, "Data Compression Explained",
//! section 4.3). Everything past the integer token frequencies is integer arithmetic, so
//! every machine decodes what the encoder coded.

use lcodec_core::{Error, Result};
use lcodec_entropy::PRECISION;

use super::bpe::Tokenizer;
use super::model::{KvCache, frequencies};
use super::{LOGIT_BLOCK, LoadedModel};
use crate::cm;
use crate::coder::{BitDecoder, BitEncoder};

/// `65536 / (1 + e^-x)` at x = -12, -11.75, …, 12, rounded and clamped to 1..=65535.
const SQUASH16_POINTS: [i32; 97] = [
    1, 1, 1, 1, 1, 1, 2, 2, 3, 4, 5, 6, 8, 10, 13, 17, 22, 28, 36, 47, 60, 77, 98, 126, 162, 208,
    267, 342, 439, 562, 720, 922, 1179, 1506, 1921, 2446, 3108, 3938, 4971, 6249, 7812, 9702,
    11955, 14595, 17625, 21025, 24743, 28693, 32768, 36843, 40793, 44511, 47911, 50941, 53581,
    55834, 57724, 59287, 60565, 61598, 62428, 63090, 63615, 64030, 64357, 64614, 64816, 64974,
    65097, 65194, 65269, 65328, 65374, 65410, 65438, 65459, 65476, 65489, 65500, 65508, 65514,
    65519, 65523, 65526, 65528, 65530, 65531, 65532, 65533, 65534, 65534, 65535, 65535, 65535,
    65535, 65535, 65535,
];

/// Largest magnitude of the stretch domain (units of 1/256: ±12).
pub const ST_MAX: i32 = 3071;

/// Logistic function: stretch domain (±[`ST_MAX`], 1/256 units) to a 16-bit probability.
#[inline]
pub fn squash16(d: i32) -> i32 {
    let d = d.clamp(-ST_MAX, ST_MAX);
    let w = d & 63;
    let i = ((d >> 6) + 48) as usize;
    (SQUASH16_POINTS[i] * (64 - w) + SQUASH16_POINTS[i + 1] * w + 32) >> 6
}

/// Inverse of [`squash16`] on 16-bit probabilities.
fn stretch16_table() -> Vec<i16> {
    cm::invert_squash(squash16, ST_MAX, 65536)
}

/// The vocabulary's byte strings in sorted order.
#[derive(Debug)]
pub struct ByteTrie {
    /// Token ids, sorted by their bytes.
    order: Vec<u32>,
    /// Their bytes, in the same order.
    bytes: Vec<Box<[u8]>>,
    /// Vocabulary size (pseudo-tokens of raw bytes are above it).
    vocab: usize,
    /// The control token that announces a raw byte.
    escape: u32,
    /// Bytes without a single-byte token.
    n_missing: u32,
}

/// One binary decision of a token's walk, for the predictor.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    /// 0..=7: the bit of the current byte (0 = most significant); 8: end of token.
    pub kind: u8,
    /// Model mass of the 0 side (continue, for an end flag).
    pub m0: u64,
    /// Model mass of the 1 side (end, for an end flag).
    pub m1: u64,
}

impl ByteTrie {
    /// The trie of a tokenizer's ordinary tokens (control tokens are left out: their
    /// probability is spread over the others). A byte without a single-byte token is
    /// the pseudo-token `vocab + byte`, weighted with the `escape` token's frequency
    /// shared among all such bytes.
    ///
    /// # Errors
    /// [`Error::Unsupported`] when two tokens have the same bytes (the walk could not
    /// name one token).
    pub fn new(tok: &Tokenizer, escape: u32) -> Result<ByteTrie> {
        let vocab = tok.vocab_size();
        let missing = tok.missing_bytes();
        let mut entries: Vec<(u32, Box<[u8]>)> = (0..vocab as u32)
            .filter_map(|i| {
                let b = tok.token_bytes(i)?;
                (!b.is_empty()).then(|| (i, b.into()))
            })
            .collect();
        entries.extend(
            missing
                .iter()
                .map(|&b| (vocab as u32 + u32::from(b), vec![b].into_boxed_slice())),
        );
        entries.sort_by(|a, b| a.1.cmp(&b.1));
        if entries.windows(2).any(|w| w[0].1 == w[1].1) {
            return Err(Error::Unsupported(
                "text-llm mixing: two tokens have the same bytes".into(),
            ));
        }
        let (order, bytes) = entries.into_iter().unzip();
        Ok(ByteTrie {
            order,
            bytes,
            vocab,
            escape,
            n_missing: missing.len() as u32,
        })
    }

    /// Prefix sums of `freq` (indexed by token id) in sorted order: `out[i]` is the mass
    /// of the first `i` sorted tokens.
    pub fn prefix_sums(&self, freq: &[u32], out: &mut Vec<u64>) {
        out.clear();
        out.reserve(self.order.len() + 1);
        let esc = freq[self.escape as usize]
            .checked_div(self.n_missing)
            .map_or(0, |f| u64::from(f.max(1)));
        let mut s = 0u64;
        out.push(0);
        for &t in &self.order {
            s += freq.get(t as usize).map_or(esc, |&f| u64::from(f));
            out.push(s);
        }
    }

    /// Walks one token: `target` is its bytes when encoding (`None` when decoding);
    /// `decide(decision, known)` codes or decodes one decision and returns its bit (it
    /// receives every byte bit, even those with an empty side, whose bit it must return
    /// unchanged; end flags only when both sides are possible). Returns the token id.
    ///
    /// # Errors
    /// Whatever `decide` returns; [`Error::Codec`] if the walk leaves the vocabulary.
    pub fn walk<F>(&self, sums: &[u64], target: Option<&[u8]>, mut decide: F) -> Result<u32>
    where
        F: FnMut(Decision, Option<u32>) -> Result<u32>,
    {
        let bad = || Error::codec("text-llm", "coded token is not in the vocabulary");
        let (mut lo, mut hi) = (0usize, self.order.len());
        let mut depth = 0usize;
        loop {
            // Every token in lo..hi starts with the same `depth` bytes.
            if depth > 0 {
                let ends_here = self.bytes[lo].len() == depth;
                if ends_here {
                    if hi == lo + 1 {
                        return Ok(self.order[lo]);
                    }
                    let d = Decision {
                        kind: 8,
                        m0: sums[hi] - sums[lo + 1],
                        m1: sums[lo + 1] - sums[lo],
                    };
                    let known = target.map(|t| u32::from(t.len() == depth));
                    if decide(d, known)? != 0 {
                        return Ok(self.order[lo]);
                    }
                    lo += 1;
                }
            }
            // The next byte, bit by bit.
            let mut byte = 0u32;
            for k in 0..8u32 {
                let shift = 7 - k;
                // Tokens in lo..hi agree on the bits above `shift` of byte `depth`; the
                // ones with a 1 at `shift` follow those with a 0.
                let mid = lo + self.bytes[lo..hi].partition_point(|b| (b[depth] >> shift) & 1 == 0);
                let d = Decision {
                    kind: k as u8,
                    m0: sums[mid] - sums[lo],
                    m1: sums[hi] - sums[mid],
                };
                let known = match target {
                    Some(t) => Some(u32::from((t.get(depth).ok_or_else(bad)? >> shift) & 1)),
                    None => None,
                };
                let bit = decide(d, known)?;
                if bit != 0 {
                    lo = mid;
                } else {
                    hi = mid;
                }
                if lo >= hi {
                    return Err(bad());
                }
                byte = byte << 1 | bit;
            }
            debug_assert_eq!(u32::from(self.bytes[lo][depth]), byte);
            depth += 1;
        }
    }

    /// Vocabulary size (token ids are below it).
    pub fn vocab(&self) -> usize {
        self.vocab
    }
}

const N_IN: usize = 3;
/// Confidence buckets of the LLM input that select weight sets.
const CONF: usize = 12;
/// Weight step shift: `w += x · err >> LR_SHIFT` (chosen on enwik8 among 12..17).
const LR_SHIFT: i32 = 15;

/// Mixes the LLM's decision probabilities with a [`cm::Model`]'s bit predictions: a
/// linear mixer in the logistic domain over (LLM, context mixing, bias), whose weight
/// set is chosen by the decision kind (bit position or end flag) and the LLM's
/// confidence. Measured alternatives that did no better on enwik8: a final adaptive
/// probability map (+0.2 %), weight sets by the match model's state, and the
/// context-mixing model's inner mixer outputs as extra inputs.
pub struct Mixer {
    cm: cm::Model,
    stretch: Vec<i16>,
    w: Vec<[i32; N_IN]>,
    x: [i32; N_IN],
    set: usize,
    pr: i32,
    is_byte_bit: bool,
}

impl Mixer {
    /// A fresh mixer around a fresh context-mixing model of `size`.
    pub fn new(size: cm::ModelSize) -> Mixer {
        // The LLM alone at first.
        let w = vec![[1 << 16, 0, 0]; 9 * CONF];
        Mixer {
            cm: cm::Model::new(size),
            stretch: stretch16_table(),
            w,
            x: [0; N_IN],
            set: 0,
            pr: 32768,
            is_byte_bit: false,
        }
    }

    #[inline]
    fn st(&self, p16: u32) -> i32 {
        i32::from(self.stretch[p16.clamp(1, 65535) as usize])
    }

    /// Probability (1..=65535, units of 2^-16) that decision `d` is 1.
    pub fn p(&mut self, d: &Decision) -> u32 {
        let tot = d.m0 + d.m1;
        let p_llm = ((u128::from(d.m1) << 16) / u128::from(tot.max(1))) as u32;
        let st_llm = self.st(p_llm);
        self.is_byte_bit = d.kind < 8;
        let st_cm = if self.is_byte_bit {
            self.st(self.cm.p())
        } else {
            0
        };
        self.x = [st_llm, st_cm, 256];
        let conf = ((st_llm.unsigned_abs() >> 8) as usize).min(CONF - 1);
        self.set = usize::from(d.kind.min(8)) * CONF + conf;
        let dot: i64 = self.w[self.set]
            .iter()
            .zip(&self.x)
            .map(|(&a, &b)| i64::from(a) * i64::from(b))
            .sum();
        let st = (dot >> 16).clamp(-i64::from(ST_MAX), i64::from(ST_MAX)) as i32;
        self.pr = squash16(st).clamp(1, 65535);
        self.pr as u32
    }

    /// Learns the decided bit of the decision last predicted by [`Mixer::p`].
    pub fn update(&mut self, bit: u32) {
        let err = ((bit as i32) << 16) - self.pr;
        for (w, &x) in self.w[self.set].iter_mut().zip(&self.x) {
            *w += ((i64::from(x) * i64::from(err)) >> LR_SHIFT) as i32;
        }
        if self.is_byte_bit {
            self.cm.update(bit);
        }
    }

    /// Tells the context-mixing model a byte bit that was not coded (one side empty).
    pub fn skip_bit(&mut self, bit: u32) {
        self.cm.update(bit);
    }

    /// The context-mixing model's own probability of the next byte bit (16-bit).
    pub fn cm_p(&self) -> u32 {
        self.cm.p()
    }
}

/// Context kept when a window slides: the next window starts from the last
/// `ctx / KEEP_DIV` tokens, so every token is predicted from at least that many.
pub const KEEP_DIV: usize = 2;

/// Table size cap of the context-mixing model of a mixed chunk (2^15 buckets of 64 B
/// = 16 MiB; up to [`super::MAX_LOCKSTEP`] of them run at once in the decoder).
pub const CM_TABLE_BITS: u32 = 15;

fn cm_size(raw_len: usize) -> cm::ModelSize {
    cm::ModelSize::for_chunk(raw_len, CM_TABLE_BITS)
}

/// Bytes one mixed chunk's decoder state takes (for the decoder's memory limit).
pub fn state_bytes(raw_len: usize) -> u64 {
    cm_size(raw_len).bytes() + 65536 * 2 + raw_len as u64 * 8
}

/// The tokens kept from before a window that starts at token `start` (0 for the
/// first window).
fn window_context(start: usize, ctx: usize) -> usize {
    if start == 0 {
        0
    } else {
        start - ctx / KEEP_DIV
    }
}

/// Codes one token by its trie walk (encoder).
fn encode_token(
    trie: &ByteTrie,
    sums: &[u64],
    mixer: &mut Mixer,
    enc: &mut BitEncoder,
    target: &[u8],
) -> Result<u32> {
    trie.walk(sums, Some(target), |d, known| {
        let bit = known.unwrap_or(0);
        if d.m0 == 0 || d.m1 == 0 {
            mixer.skip_bit(bit);
        } else {
            enc.encode(bit, mixer.p(&d));
            mixer.update(bit);
        }
        Ok(bit)
    })
}

/// Decodes one token by its trie walk.
fn decode_token(
    trie: &ByteTrie,
    sums: &[u64],
    mixer: &mut Mixer,
    dec: &mut BitDecoder<'_>,
) -> Result<u32> {
    trie.walk(sums, None, |d, _| {
        if d.m0 == 0 || d.m1 == 0 {
            let bit = u32::from(d.m0 == 0);
            mixer.skip_bit(bit);
            return Ok(bit);
        }
        let bit = dec.decode(mixer.p(&d));
        mixer.update(bit);
        Ok(bit)
    })
}

/// The bytes a token id stands for (an ordinary token or a raw byte `vocab + b`).
fn token_bytes(lm: &LoadedModel, t: u32) -> Result<Vec<u8>> {
    lm.tokenizer.decode(&[t])
}

/// Codes `tokens` (the tokenisation of one chunk) in the mixed mode: one window after
/// another, each starting from `<|endoftext|>` and the last `ctx / KEEP_DIV` tokens of
/// the one before, every token's trie walk mixed with a context-mixing model that sees
/// the whole chunk; returns the bit stream.
///
/// # Errors
/// Forward-pass errors.
pub fn encode_tokens(
    lm: &LoadedModel,
    trie: &ByteTrie,
    tokens: &[u32],
    raw_len: usize,
    ctx: usize,
) -> Result<Vec<u8>> {
    let mut mixer = Mixer::new(cm_size(raw_len));
    let mut enc = BitEncoder::new();
    for_each_prediction(lm, trie, tokens, ctx, |sums, t| {
        let got = encode_token(trie, sums, &mut mixer, &mut enc, &token_bytes(lm, t)?)?;
        if got != t {
            return Err(Error::codec(
                "text-llm",
                format!("token {t} walked to {got}"),
            ));
        }
        Ok(())
    })?;
    Ok(enc.finish())
}

/// Runs the mixed mode's windows over `tokens` and calls `f(prefix sums, token)` for
/// every token in order, with the trie prefix sums of its predicted frequencies.
///
/// # Errors
/// Forward-pass errors and those of `f`.
pub fn for_each_prediction(
    lm: &LoadedModel,
    trie: &ByteTrie,
    tokens: &[u32],
    ctx: usize,
    mut f: impl FnMut(&[u64], u32) -> Result<()>,
) -> Result<()> {
    let model = &lm.model;
    let vocab = model.cfg.vocab;
    let d = model.cfg.d_model;
    let mut freq = Vec::with_capacity(vocab);
    let mut sums = Vec::new();
    let mut start = 0;
    while start < tokens.len() {
        let c0 = window_context(start, ctx);
        let end = (c0 + ctx).min(tokens.len());
        let mut caches = vec![KvCache::default()];
        let mut batch = Vec::with_capacity(end - c0);
        batch.push((0usize, lm.bos));
        batch.extend(
            tokens[c0..end - 1]
                .iter()
                .map(|&t| (0usize, lm.model_token(t))),
        );
        let hidden = model.forward(&mut caches, &batch)?;
        // Row r predicts token c0 + r; the window codes start..end.
        let mut r0 = start - c0;
        while r0 < end - c0 {
            let r1 = (r0 + LOGIT_BLOCK).min(end - c0);
            let logits = model.logits(&hidden[r0 * d..r1 * d], r1 - r0);
            for (i, l) in logits.chunks(vocab).enumerate() {
                frequencies(l, PRECISION, &mut freq)?;
                trie.prefix_sums(&freq, &mut sums);
                f(&sums, tokens[c0 + r0 + i])?;
            }
            r0 = r1;
        }
        start = end;
    }
    Ok(())
}

/// One chunk being decoded in the mixed mode.
struct Stream<'a> {
    dec: BitDecoder<'a>,
    mixer: Mixer,
    tokens: Vec<u32>,
    out: Vec<u8>,
    raw_len: usize,
    /// First token of the current window's context.
    c0: usize,
}

/// Decodes mixed-mode chunks `(stream, raw length)` together: every step runs one
/// token of each unfinished chunk in one batched forward pass (windows start with a
/// batched pass over their kept context). On failure, returns the index of the chunk
/// at fault with the error.
///
/// # Errors
/// `(chunk index, error)` for corrupt streams or forward-pass errors.
pub fn decode_streams(
    lm: &LoadedModel,
    trie: &ByteTrie,
    chunks: &[(&[u8], usize)],
    ctx: usize,
) -> std::result::Result<Vec<Vec<u8>>, (usize, Error)> {
    let model = &lm.model;
    let vocab = model.cfg.vocab;
    let d = model.cfg.d_model;
    let mut st: Vec<Stream<'_>> = chunks
        .iter()
        .map(|&(s, n)| Stream {
            dec: BitDecoder::new(s),
            mixer: Mixer::new(cm_size(n)),
            tokens: Vec::new(),
            out: Vec::with_capacity(n),
            raw_len: n,
            c0: 0,
        })
        .collect();
    let mut caches = vec![KvCache::default(); chunks.len()];
    let mut freq = Vec::with_capacity(vocab);
    let mut sums = Vec::new();
    let at = |w: usize| move |e: Error| (w, e);
    loop {
        let active: Vec<usize> = (0..st.len())
            .filter(|&w| st[w].out.len() < st[w].raw_len)
            .collect();
        if active.is_empty() {
            break;
        }
        // Hidden state predicting each active chunk's next token.
        let mut hidden = vec![0f32; active.len() * d];
        let mut step: Vec<(usize, u32)> = Vec::new();
        let mut step_rows = Vec::new();
        for (row, &w) in active.iter().enumerate() {
            let k = st[w].tokens.len();
            if k == 0 || k == st[w].c0 + ctx {
                // A new window: its kept context in one pass.
                let c0 = window_context(k, ctx);
                st[w].c0 = c0;
                caches[w] = KvCache::default();
                let mut batch = Vec::with_capacity(k - c0 + 1);
                batch.push((0usize, lm.bos));
                batch.extend(
                    st[w].tokens[c0..k]
                        .iter()
                        .map(|&t| (0usize, lm.model_token(t))),
                );
                let h = model.forward(&mut caches[w..=w], &batch).map_err(at(w))?;
                hidden[row * d..(row + 1) * d].copy_from_slice(&h[(batch.len() - 1) * d..]);
            } else {
                step.push((w, lm.model_token(st[w].tokens[k - 1])));
                step_rows.push(row);
            }
        }
        if !step.is_empty() {
            let h = model.forward(&mut caches, &step).map_err(at(step[0].0))?;
            for (i, &row) in step_rows.iter().enumerate() {
                hidden[row * d..(row + 1) * d].copy_from_slice(&h[i * d..(i + 1) * d]);
            }
        }
        let logits = model.logits(&hidden, active.len());
        for (&w, l) in active.iter().zip(logits.chunks(vocab)) {
            frequencies(l, PRECISION, &mut freq).map_err(at(w))?;
            trie.prefix_sums(&freq, &mut sums);
            let s = &mut st[w];
            let t = decode_token(trie, &sums, &mut s.mixer, &mut s.dec).map_err(at(w))?;
            let b = token_bytes(lm, t).map_err(at(w))?;
            if s.out.len() + b.len() > s.raw_len || s.dec.overrun() > 4 {
                return Err((
                    w,
                    Error::codec(
                        "text-llm",
                        format!("mixed stream decodes past its {} bytes", s.raw_len),
                    ),
                ));
            }
            s.out.extend_from_slice(&b);
            s.tokens.push(t);
        }
    }
    Ok(st.into_iter().map(|s| s.out).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::bpe::tiny;

    #[test]
    fn squash16_and_stretch16_are_inverse_and_monotonic() {
        let st = stretch16_table();
        assert_eq!(squash16(0), 32768);
        let mut prev = 0;
        for x in -ST_MAX..=ST_MAX {
            let p = squash16(x);
            assert!(p >= prev && (1..=65535).contains(&p), "squash16({x}) = {p}");
            prev = p;
            if x.abs() < 1800 {
                let back = i32::from(st[p as usize]);
                assert!((back - x).abs() <= 8, "stretch16(squash16({x})) = {back}");
            }
        }
        assert!(st.windows(2).all(|w| w[0] <= w[1]));
    }

    /// Deterministic pseudo-random frequencies over `n` ids, each at least 1.
    fn freqs(n: usize, seed: &mut u64) -> Vec<u32> {
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                1 + (*seed >> 40) as u32 % 5000
            })
            .collect()
    }

    #[test]
    fn walks_round_trip_and_cost_what_the_token_costs() {
        let tok = tiny();
        let trie = ByteTrie::new(&tok, 0).expect("trie");
        let text = b"the thin theme in the inn: \xff\x00 then";
        let tokens = tok.encode(text);
        let n = tok.vocab_size();
        let mut seed = 0x1234_5678_9abc_def1u64;
        let fs: Vec<Vec<u32>> = tokens.iter().map(|_| freqs(n, &mut seed)).collect();
        let size = cm::ModelSize::for_chunk(text.len(), 10);
        let mut mixer = Mixer::new(size);
        let mut enc = BitEncoder::new();
        let mut sums = Vec::new();
        for (&t, f) in tokens.iter().zip(&fs) {
            trie.prefix_sums(f, &mut sums);
            // The walk's decisions multiply to the token's share of the ordinary mass.
            let mut logp = 0f64;
            let bytes = tok.token_bytes(t).expect("ordinary").to_vec();
            trie.walk(&sums, Some(&bytes), |d, k| {
                let bit = k.expect("encoding");
                let m = if bit != 0 { d.m1 } else { d.m0 };
                logp += (m as f64 / (d.m0 + d.m1) as f64).ln();
                Ok(bit)
            })
            .expect("walk");
            let ordinary: f64 = (1..n).map(|i| f64::from(f[i])).sum();
            let want = (f64::from(f[t as usize]) / ordinary).ln();
            assert!((logp - want).abs() < 1e-9, "token {t}: {logp} vs {want}");
            let got = encode_token(&trie, &sums, &mut mixer, &mut enc, &bytes).expect("encode");
            assert_eq!(got, t);
        }
        let stream = enc.finish();
        let mut mixer = Mixer::new(size);
        let mut dec = BitDecoder::new(&stream);
        for (&t, f) in tokens.iter().zip(&fs) {
            trie.prefix_sums(f, &mut sums);
            assert_eq!(
                decode_token(&trie, &sums, &mut mixer, &mut dec).expect("decode"),
                t
            );
        }
        // Any bit stream walks to ordinary tokens: garbage decodes, never panics.
        let junk: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(151) ^ 0x5a).collect();
        let mut mixer = Mixer::new(size);
        let mut dec = BitDecoder::new(&junk);
        for f in &fs {
            trie.prefix_sums(f, &mut sums);
            let t = decode_token(&trie, &sums, &mut mixer, &mut dec).expect("decode");
            assert!(tok.token_bytes(t).is_some(), "token {t}");
        }
    }

    #[test]
    fn missing_bytes_become_pseudo_tokens() {
        // A vocabulary without a token for 'z': it walks to the pseudo-token vocab + 'z'.
        let full = tiny();
        let mut tokens = vec!["<|endoftext|>".to_string()];
        let mut types = vec![3];
        for id in 1..full.vocab_size() as u32 {
            let b = full.token_bytes(id).expect("ordinary");
            if b != b"z" {
                tokens.push(crate::llm::bpe::token_string(b));
                types.push(1);
            }
        }
        let tok = Tokenizer::new(&tokens, &types, &[]).expect("tokenizer");
        assert_eq!(tok.missing_bytes(), b"z");
        let trie = ByteTrie::new(&tok, 0).expect("trie");
        let ids = tok.encode(b"zaz");
        let z = tok.vocab_size() as u32 + u32::from(b'z');
        assert_eq!(ids[0], z);
        let mut f = vec![7u32; tok.vocab_size()];
        f[0] = 300; // the escape's mass, shared by the missing bytes
        let mut sums = Vec::new();
        trie.prefix_sums(&f, &mut sums);
        let size = cm::ModelSize::for_chunk(8, 10);
        let (mut m, mut enc) = (Mixer::new(size), BitEncoder::new());
        for &t in &ids {
            let b = tok.decode(&[t]).expect("bytes");
            assert_eq!(
                encode_token(&trie, &sums, &mut m, &mut enc, &b).expect("encode"),
                t
            );
        }
        let stream = enc.finish();
        let (mut m, mut dec) = (Mixer::new(size), BitDecoder::new(&stream));
        for &t in &ids {
            assert_eq!(
                decode_token(&trie, &sums, &mut m, &mut dec).expect("decode"),
                t
            );
        }
    }
}
