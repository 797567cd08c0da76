//! LLaMA-style decoder-only transformer (SmolLM2) on the CPU, deterministic.
//!
//! Per layer (Touvron et al. 2023, "LLaMA"): `h += Wo · attn(RoPE(Wq · n), RoPE(Wk · n),
//! Wv · n)` with `n = RMSNorm(h)` and grouped-query attention (Ainslie et al. 2023), then
//! `h += Wdown · (SiLU(Wgate · n) ⊙ Wup · n)` with `n = RMSNorm(h)`; the logits are the
//! (tied) token embedding times `RMSNorm(h)`. RoPE (Su et al. 2021) rotates adjacent
//! pairs `(x[2i], x[2i+1])` by `pos · base^(-2i/d)`: llama.cpp's GGUF conversion permutes
//! `Wq`/`Wk` so that this "normal" mode matches the Hugging Face model.
//!
//! Determinism: every number that reaches the probability model is computed in f32 or
//! f64 with a fixed operation order ([`super::kernels`]): matrix products add
//! `W[r][k]·x[k]` in the order of `k`, dot products use 16 accumulator lanes summed in a
//! fixed tree, no fused multiply-add, `exp` / `ln` / `sin` / `cos` are our own series
//! (`lcodec_entropy::detmath`, [`super::kernels::exp_neg`]), and parallel work is split
//! only over independent outputs (matrix rows, attention queries), never over a
//! reduction. So a token's logits are the same bits whatever the batch it is computed
//! in, the thread count or the machine (SSE2 or AVX2).
//!
//! The weights are repacked once at load into panels ([`Packed`]: Q4_1 codes as bytes
//! plus f32 scales, about 170 MB, or f32 for other types), so a batch of `n` tokens reads
//! each matrix once per step (a matrix product, not `n` vector ones); the kernel expands
//! a block of Q4_1 codes with the GGUF formula `q·d + m` into f32 in L1 before use.

use lcodec_core::{Error, Result};
use lcodec_entropy::detmath;
use rayon::prelude::*;

use super::gguf::{GgmlType, Gguf, TensorInfo, Value, dequantize_row};
pub use super::kernels::dot;
use super::kernels::{Packed, attend, gemm, push_keys, silu, softmax_terms};

/// Model hyper-parameters read from the GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Transformer blocks.
    pub n_layer: usize,
    /// Hidden size.
    pub d_model: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention).
    pub n_kv_head: usize,
    /// Feed-forward hidden size.
    pub d_ff: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// RoPE base frequency.
    pub rope_base: f64,
    /// RMSNorm epsilon.
    pub eps: f32,
    /// Context length the model was trained for.
    pub ctx_train: usize,
}

impl Config {
    /// Per-head dimension.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_head
    }
    /// Width of the key/value projections.
    pub fn kv_dim(&self) -> usize {
        self.head_dim() * self.n_kv_head
    }
}

/// A matrix in the file (packed at load).
#[derive(Debug, Clone, Copy)]
struct Weight {
    ty: GgmlType,
    offset: usize,
    rows: usize,
    row_bytes: usize,
}

#[derive(Debug, Clone)]
struct Layer {
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    q: Packed,
    k: Packed,
    v: Packed,
    o: Packed,
    gate: Packed,
    up: Packed,
    down: Packed,
}

/// The loaded model: f32 weights packed for the matrix kernel.
#[derive(Debug)]
pub struct Model {
    /// Hyper-parameters.
    pub cfg: Config,
    layers: Vec<Layer>,
    tok_embd: Packed,
    /// `None`: tied to `tok_embd`.
    output: Option<Packed>,
    out_norm: Vec<f32>,
    /// cos/sin per (position, pair): `rope[(pos * hd/2 + i) * 2 ..]`.
    rope: Vec<f32>,
    rope_len: usize,
}

/// Per-sequence key/value cache.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// Keys per (layer, key/value head), in blocks of positions (see `push_keys`).
    k: Vec<Vec<f32>>,
    /// Values per layer, `kv_dim` per position.
    v: Vec<Vec<f32>>,
    len: usize,
}

impl KvCache {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn meta_u(g: &Gguf, key: &str) -> Result<usize> {
    g.get(key)
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .ok_or_else(|| {
            Error::malformed(0, format!("gguf: metadata {key} missing or not an integer"))
        })
}

/// Deterministic sine and cosine of `x` (|x| < 1e6): reduction by 2π in two parts, then
/// Taylor series to degree 27/28.
pub fn sin_cos(x: f64) -> (f64, f64) {
    const TWO_PI_HI: f64 = std::f64::consts::TAU;
    const TWO_PI_LO: f64 = 2.449_293_598_294_706_4e-16;
    let k = (x / TWO_PI_HI + 0.5).floor();
    let r = (x - k * TWO_PI_HI) - k * TWO_PI_LO;
    let r2 = r * r;
    // sin r = r (1 - r²/(2·3) (1 - r²/(4·5) (...))), innermost first.
    let mut s = 1.0;
    let mut c = 1.0;
    let mut n = 14i32;
    while n >= 1 {
        let a = f64::from(2 * n);
        s = 1.0 - r2 / (a * (a + 1.0)) * s;
        c = 1.0 - r2 / ((a - 1.0) * a) * c;
        n -= 1;
    }
    (r * s, c)
}

fn rmsnorm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let ss = dot(x, x) / x.len() as f32;
    let scale = 1.0 / (ss + eps).sqrt();
    for ((o, &xi), &wi) in out.iter_mut().zip(x).zip(w) {
        *o = xi * scale * wi;
    }
}

impl Model {
    /// The hyper-parameters of a GGUF LLaMA model, checked.
    ///
    /// # Errors
    /// Other architectures, missing metadata, unsupported shapes.
    pub fn config_of(g: &Gguf) -> Result<Config> {
        let arch = g
            .get("general.architecture")
            .and_then(Value::as_str)
            .unwrap_or("");
        if arch != "llama" {
            return Err(Error::Unsupported(format!(
                "gguf: architecture {arch:?} (expected llama)"
            )));
        }
        let n_head = meta_u(g, "llama.attention.head_count")?;
        let n_kv_head = meta_u(g, "llama.attention.head_count_kv").unwrap_or(n_head);
        let d_model = meta_u(g, "llama.embedding_length")?;
        let tok = g
            .tensor("token_embd.weight")
            .ok_or_else(|| Error::malformed(0, "gguf: no token_embd.weight"))?;
        let cfg = Config {
            n_layer: meta_u(g, "llama.block_count")?,
            d_model,
            n_head,
            n_kv_head,
            d_ff: meta_u(g, "llama.feed_forward_length")?,
            vocab: tok.rows(),
            rope_base: g
                .get("llama.rope.freq_base")
                .and_then(Value::as_f64)
                .unwrap_or(10000.0),
            eps: g
                .get("llama.attention.layer_norm_rms_epsilon")
                .and_then(Value::as_f64)
                .unwrap_or(1e-5) as f32,
            ctx_train: meta_u(g, "llama.context_length").unwrap_or(2048),
        };
        if n_head == 0
            || n_kv_head == 0
            || d_model % n_head != 0
            || n_head % n_kv_head != 0
            || cfg.head_dim() % 2 != 0
            || cfg.n_layer == 0
            || cfg.n_layer > 1024
            || d_model > 1 << 16
            || cfg.d_ff > 1 << 18
        {
            return Err(Error::malformed(
                0,
                format!("gguf: unsupported model shape {cfg:?}"),
            ));
        }
        if let Some(rd) = g.get("llama.rope.dimension_count").and_then(Value::as_u64) {
            if rd as usize != cfg.head_dim() {
                return Err(Error::Unsupported(format!(
                    "gguf: partial RoPE ({rd} of {} dims)",
                    cfg.head_dim()
                )));
            }
        }
        Ok(cfg)
    }

    /// Builds the model from a parsed GGUF file (`general.architecture = llama`).
    ///
    /// # Errors
    /// [`Error::Malformed`] / [`Error::Unsupported`] for missing or ill-shaped tensors
    /// and metadata.
    pub fn from_gguf(g: Gguf) -> Result<Self> {
        let cfg = Self::config_of(&g)?;
        let bytes = &g.bytes;
        let weight = |name: &str, rows: usize, cols: usize| -> Result<Packed> {
            let t: &TensorInfo = g
                .tensor(name)
                .ok_or_else(|| Error::malformed(0, format!("gguf: no tensor {name}")))?;
            if t.dims.len() != 2 || t.cols() != cols || t.rows() != rows {
                return Err(Error::malformed(
                    0,
                    format!(
                        "gguf: {name} has dims {:?}, expected [{cols}, {rows}]",
                        t.dims
                    ),
                ));
            }
            let row_bytes = t.ty.row_bytes(cols as u64).unwrap_or(0) as usize;
            let w = Weight {
                ty: t.ty,
                offset: t.offset as usize,
                rows,
                row_bytes,
            };
            let end = w.offset as u128 + w.rows as u128 * w.row_bytes as u128;
            if row_bytes == 0 || end > bytes.len() as u128 {
                return Err(Error::malformed(
                    0,
                    format!("gguf: {name} data lies outside the file"),
                ));
            }
            if w.ty == GgmlType::Q4_1 && cols % 32 == 0 {
                return Ok(Packed::from_q4_1(rows, cols, &|r| {
                    let s = w.offset + r * w.row_bytes;
                    &bytes[s..s + w.row_bytes]
                }));
            }
            Ok(Packed::from_rows(rows, cols, &|r, out| {
                let s = w.offset + r * w.row_bytes;
                dequantize_row(w.ty, &bytes[s..s + w.row_bytes], out);
            }))
        };
        let vector = |name: &str, n: usize| -> Result<Vec<f32>> {
            let t = g
                .tensor(name)
                .ok_or_else(|| Error::malformed(0, format!("gguf: no tensor {name}")))?;
            if t.dims.iter().product::<u64>() != n as u64 {
                return Err(Error::malformed(
                    0,
                    format!("gguf: {name} has dims {:?}, expected [{n}]", t.dims),
                ));
            }
            g.dequantize(t)
        };
        let (d, kv, ff) = (cfg.d_model, cfg.kv_dim(), cfg.d_ff);
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            let p = |s: &str| format!("blk.{l}.{s}.weight");
            layers.push(Layer {
                attn_norm: vector(&p("attn_norm"), d)?,
                ffn_norm: vector(&p("ffn_norm"), d)?,
                q: weight(&p("attn_q"), d, d)?,
                k: weight(&p("attn_k"), kv, d)?,
                v: weight(&p("attn_v"), kv, d)?,
                o: weight(&p("attn_output"), d, d)?,
                gate: weight(&p("ffn_gate"), ff, d)?,
                up: weight(&p("ffn_up"), ff, d)?,
                down: weight(&p("ffn_down"), d, ff)?,
            });
        }
        let tok_embd = weight("token_embd.weight", cfg.vocab, d)?;
        let output = if g.tensor("output.weight").is_some() {
            Some(weight("output.weight", cfg.vocab, d)?)
        } else {
            None
        };
        let out_norm = vector("output_norm.weight", d)?;
        let m = Model {
            cfg,
            layers,
            tok_embd,
            output,
            out_norm,
            rope: Vec::new(),
            rope_len: 0,
        };
        Ok(m)
    }

    /// Prepares RoPE tables for positions `0..n` (call before [`Model::forward`]).
    pub fn ensure_positions(&mut self, n: usize) {
        if n <= self.rope_len {
            return;
        }
        let half = self.cfg.head_dim() / 2;
        let hd = self.cfg.head_dim() as f64;
        let ln_base = detmath::ln(self.cfg.rope_base);
        let freqs: Vec<f64> = (0..half)
            .map(|i| detmath::exp(-(2.0 * i as f64 / hd) * ln_base))
            .collect();
        let mut rope = Vec::with_capacity(n * half * 2);
        for pos in 0..n {
            for &f in &freqs {
                let (s, c) = sin_cos(pos as f64 * f);
                rope.push(c as f32);
                rope.push(s as f32);
            }
        }
        self.rope = rope;
        self.rope_len = n;
    }

    /// Positions the RoPE table covers.
    pub fn max_positions(&self) -> usize {
        self.rope_len
    }

    /// Bytes of f32 weights held.
    pub fn weight_bytes(&self) -> usize {
        let l: usize = self
            .layers
            .iter()
            .map(|l| {
                [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down]
                    .iter()
                    .map(|p| p.bytes())
                    .sum::<usize>()
            })
            .sum();
        l + self.tok_embd.bytes() + self.output.as_ref().map_or(0, Packed::bytes)
    }

    fn rope_apply(&self, x: &mut [f32], pos: usize) {
        let hd = self.cfg.head_dim();
        let half = hd / 2;
        let tab = &self.rope[pos * half * 2..(pos + 1) * half * 2];
        for head in x.chunks_exact_mut(hd) {
            for i in 0..half {
                let (c, s) = (tab[2 * i], tab[2 * i + 1]);
                let (a, b) = (head[2 * i], head[2 * i + 1]);
                head[2 * i] = a * c - b * s;
                head[2 * i + 1] = a * s + b * c;
            }
        }
    }

    /// Runs the tokens of `batch` (each `(sequence index, token)`; a sequence's tokens in
    /// order) through the model, appending them to the caches, and returns the final
    /// normalised hidden state of each (`batch.len() × d_model`). Positions continue
    /// each sequence's cache.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a token outside the vocabulary, a bad sequence
    /// index or a position beyond [`Model::max_positions`].
    pub fn forward(&self, caches: &mut [KvCache], batch: &[(usize, u32)]) -> Result<Vec<f32>> {
        let cfg = &self.cfg;
        let (d, kvd, hd, ff) = (cfg.d_model, cfg.kv_dim(), cfg.head_dim(), cfg.d_ff);
        let n = batch.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        // Positions.
        let (pos, next) = batch_positions(
            cfg.vocab,
            self.rope_len,
            caches.iter().map(|c| c.len).collect(),
            batch,
        )?;
        for c in caches.iter_mut() {
            if c.k.len() != cfg.n_layer * cfg.n_kv_head {
                c.k = vec![Vec::new(); cfg.n_layer * cfg.n_kv_head];
                c.v = vec![Vec::new(); cfg.n_layer];
            }
        }
        let mut h = vec![0f32; n * d];
        for (t, &(_, tok)) in batch.iter().enumerate() {
            self.tok_embd.row(tok as usize, &mut h[t * d..(t + 1) * d]);
        }
        let mut xn = vec![0f32; n * d];
        let mut q = vec![0f32; n * d];
        let mut k = vec![0f32; n * kvd];
        let mut v = vec![0f32; n * kvd];
        let mut att = vec![0f32; n * d];
        let mut proj = vec![0f32; n * d];
        let mut g = vec![0f32; n * ff];
        let mut u = vec![0f32; n * ff];
        let group = cfg.n_head / cfg.n_kv_head;
        let scale = 1.0 / (hd as f32).sqrt();
        for (li, layer) in self.layers.iter().enumerate() {
            for t in 0..n {
                rmsnorm(
                    &h[t * d..(t + 1) * d],
                    &layer.attn_norm,
                    cfg.eps,
                    &mut xn[t * d..(t + 1) * d],
                );
            }
            gemm(&layer.q, &xn, n, &mut q);
            gemm(&layer.k, &xn, n, &mut k);
            gemm(&layer.v, &xn, n, &mut v);
            for t in 0..n {
                self.rope_apply(&mut q[t * d..(t + 1) * d], pos[t]);
                self.rope_apply(&mut k[t * kvd..(t + 1) * kvd], pos[t]);
                let c = &mut caches[batch[t].0];
                let nkv = cfg.n_kv_head;
                push_keys(
                    &mut c.k[li * nkv..(li + 1) * nkv],
                    &k[t * kvd..(t + 1) * kvd],
                    hd,
                    pos[t],
                );
                c.v[li].extend_from_slice(&v[t * kvd..(t + 1) * kvd]);
            }
            let caches_ro: &[KvCache] = caches;
            att.par_chunks_mut(d).enumerate().for_each(|(t, out)| {
                let c = &caches_ro[batch[t].0];
                attend(
                    &q[t * d..(t + 1) * d],
                    &c.k[li * cfg.n_kv_head..(li + 1) * cfg.n_kv_head],
                    &c.v[li],
                    pos[t] + 1,
                    kvd,
                    hd,
                    group,
                    scale,
                    out,
                );
            });
            gemm(&layer.o, &att, n, &mut proj);
            for (hi, pi) in h.iter_mut().zip(&proj) {
                *hi += *pi;
            }
            for t in 0..n {
                rmsnorm(
                    &h[t * d..(t + 1) * d],
                    &layer.ffn_norm,
                    cfg.eps,
                    &mut xn[t * d..(t + 1) * d],
                );
            }
            gemm(&layer.gate, &xn, n, &mut g);
            gemm(&layer.up, &xn, n, &mut u);
            for (gi, &ui) in g.iter_mut().zip(&u) {
                *gi = silu(*gi) * ui;
            }
            gemm(&layer.down, &g, n, &mut proj);
            for (hi, pi) in h.iter_mut().zip(&proj) {
                *hi += *pi;
            }
        }
        for (c, &nx) in caches.iter_mut().zip(&next) {
            c.len = nx;
        }
        let mut out = vec![0f32; n * d];
        for t in 0..n {
            rmsnorm(
                &h[t * d..(t + 1) * d],
                &self.out_norm,
                cfg.eps,
                &mut out[t * d..(t + 1) * d],
            );
        }
        Ok(out)
    }

    /// Logits (`n × vocab`) for `n` final hidden states.
    pub fn logits(&self, hidden: &[f32], n: usize) -> Vec<f32> {
        let mut out = vec![0f32; n * self.cfg.vocab];
        gemm(
            self.output.as_ref().unwrap_or(&self.tok_embd),
            hidden,
            n,
            &mut out,
        );
        out
    }
}

/// Checks a forward batch (`(sequence, token)`) and gives each token its position: the
/// sequences' cache lengths `next` continue in batch order. Returns the positions and the
/// new lengths.
///
/// # Errors
/// [`Error::InvalidArgument`] for a bad sequence index, a token outside the vocabulary or
/// a position at or beyond `max_pos`.
pub(crate) fn batch_positions(
    vocab: usize,
    max_pos: usize,
    mut next: Vec<usize>,
    batch: &[(usize, u32)],
) -> Result<(Vec<usize>, Vec<usize>)> {
    let mut pos = Vec::with_capacity(batch.len());
    for &(s, tok) in batch {
        let p = next
            .get_mut(s)
            .ok_or_else(|| Error::InvalidArgument(format!("sequence {s} out of range")))?;
        if tok as usize >= vocab {
            return Err(Error::InvalidArgument(format!(
                "token {tok} >= vocabulary {vocab}"
            )));
        }
        if *p >= max_pos {
            return Err(Error::InvalidArgument(format!(
                "position {} beyond the prepared {max_pos}",
                *p
            )));
        }
        pos.push(*p);
        *p += 1;
    }
    Ok((pos, next))
}

/// Turns logits into fixed-point frequencies summing to `1 << precision`, every token
/// `>= 1`: softmax in f64 with the deterministic exp, each token gets
/// `1 + floor(p · spare)`, and the rounding remainder goes to the most likely token.
///
/// # Errors
/// [`Error::InvalidArgument`] if the vocabulary does not fit the precision.
pub fn frequencies(logits: &[f32], precision: u32, out: &mut Vec<u32>) -> Result<()> {
    let total: u64 = 1 << precision;
    let n = logits.len() as u64;
    if n == 0 || n * 2 > total {
        return Err(Error::InvalidArgument(format!(
            "vocabulary of {n} does not fit 2^{precision}"
        )));
    }
    let mut e = Vec::with_capacity(logits.len());
    let (sum, mx, arg) = softmax_terms(logits, &mut e);
    if !mx.is_finite() {
        return Err(Error::InvalidArgument("non-finite logits".into()));
    }
    let spare = (total - n) as f64;
    let k = spare / sum;
    out.clear();
    let mut used: u64 = 0;
    for &x in &e {
        // `x · k >= 0`, so the truncating conversion is the floor.
        let f = 1 + (x * k) as u64;
        used += f;
        out.push(f as u32);
    }
    // The floors leave `total - used >= 0` (each floor <= the exact share; f64 rounding
    // could overshoot by a hair, so clamp by taking from the top token).
    if used <= total {
        out[arg] += (total - used) as u32;
    } else {
        let over = (used - total) as u32;
        out[arg] = out[arg].saturating_sub(over).max(1);
        let s: u64 = out.iter().map(|&f| u64::from(f)).sum();
        if s != total {
            return Err(Error::InvalidArgument(
                "frequency normalisation failed".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sin_cos_is_accurate() {
        for i in 0..2000 {
            let x = i as f64 * 3.7 - 100.0;
            let (s, c) = sin_cos(x);
            assert!((s - x.sin()).abs() < 1e-12, "{x}");
            assert!((c - x.cos()).abs() < 1e-12, "{x}");
        }
    }

    #[test]
    fn frequencies_sum_and_floor() {
        let mut out = Vec::new();
        let logits: Vec<f32> = (0..1000).map(|i| (i % 17) as f32 * 0.7 - 3.0).collect();
        frequencies(&logits, 24, &mut out).expect("freq");
        assert_eq!(out.iter().map(|&f| u64::from(f)).sum::<u64>(), 1 << 24);
        assert!(out.iter().all(|&f| f >= 1));
        let peaked: Vec<f32> = (0..1000)
            .map(|i| if i == 5 { 100.0 } else { 0.0 })
            .collect();
        frequencies(&peaked, 24, &mut out).expect("freq");
        assert_eq!(out[5], (1 << 24) - 999);
        assert!(frequencies(&[f32::NAN; 4], 24, &mut out).is_err());
    }
}
