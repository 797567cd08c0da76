//! The libtorch backend of `text-llm` (feature `torch`): the same LLaMA forward pass as
//! [`super::model`], in f32 on libtorch (CUDA when available, else CPU), for speed.
//!
//! Its logits are close to the deterministic kernels' but not bit-identical (libtorch
//! picks its own kernels and summation orders per device and CPU), so a file records its
//! backend (`torch-cpu` or `torch-cuda`) and only the same backend decodes it; the CPU
//! kernels refuse it with a clear error, and this backend refuses `cpu-det` files. Even
//! between two machines of the same backend, libtorch does not promise identical floats:
//! use `cpu-det` (the default) for files that must decode anywhere.
//!
//! libtorch may also compute a row differently in batches of other shapes, so the
//! encoder runs the windows in exactly the decoder's lock-step batches (one token per
//! window per step) instead of a whole window at once, and equal-info windows (whose
//! ends the encoder finds one window at a time) are refused on this backend.

use lcodec_core::{Error, Result};
use tch::{Device, Kind, Tensor};

use super::Net;
use super::gguf::{Gguf, Value};
use super::model::Config;

/// Dequantized weights on a libtorch device. libtorch tensors are not `Sync`, so the
/// weights sit behind a mutex: chunks coded on several threads take turns (each
/// libtorch operation uses all cores, or the GPU, by itself).
pub struct TorchNet {
    cfg: Config,
    device: Device,
    max_pos: usize,
    w: std::sync::Mutex<Weights>,
}

struct Weights {
    layers: Vec<Layer>,
    embd: Tensor,
    /// The output projection (the embedding when tied).
    output: Tensor,
    out_norm: Tensor,
    /// RoPE cosines and sines per (position, pair), `[max_pos, head_dim / 2]`.
    cos: Tensor,
    sin: Tensor,
}

struct Layer {
    attn_norm: Tensor,
    ffn_norm: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
}

impl std::fmt::Debug for TorchNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchNet")
            .field("cfg", &self.cfg)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// Per-sequence key/value cache: per layer `[n_kv_head, positions, head_dim]`.
#[derive(Default)]
pub struct TorchCache {
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    len: usize,
}

impl Clone for TorchCache {
    fn clone(&self) -> Self {
        TorchCache {
            k: self.k.iter().map(|t| t.copy()).collect(),
            v: self.v.iter().map(|t| t.copy()).collect(),
            len: self.len,
        }
    }
}

fn torch_err(e: tch::TchError) -> Error {
    Error::codec("text-llm", format!("libtorch: {e}"))
}

impl TorchNet {
    /// The device `torch` backends run on here: CUDA when available.
    pub fn default_device() -> Device {
        if tch::Cuda::is_available() {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }
    }

    /// Loads the GGUF model at `path` onto `device`, with RoPE tables for `max_pos`
    /// positions.
    ///
    /// # Errors
    /// I/O errors, malformed or unsupported files, libtorch failures.
    pub fn load(path: &std::path::Path, device: Device, max_pos: usize) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::InvalidArgument(format!(
                "text-llm: cannot read model {}: {e}",
                path.display()
            ))
        })?;
        let g = Gguf::parse(bytes)?;
        let cfg = super::model::Model::config_of(&g)?;
        let tensor = |name: &str, dims: &[i64]| -> Result<Tensor> {
            let t = g
                .tensor(name)
                .ok_or_else(|| Error::malformed(0, format!("gguf: no tensor {name}")))?;
            let n: i64 = dims.iter().product();
            if t.dims.iter().product::<u64>() != n as u64 {
                return Err(Error::malformed(
                    0,
                    format!("gguf: {name} has dims {:?}, expected {dims:?}", t.dims),
                ));
            }
            let data = g.dequantize(t)?;
            Tensor::f_from_slice(&data)
                .and_then(|x| x.f_reshape(dims))
                .and_then(|x| x.f_to_device(device))
                .map_err(torch_err)
        };
        let (d, kv, ff) = (cfg.d_model as i64, cfg.kv_dim() as i64, cfg.d_ff as i64);
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            let p = |s: &str| format!("blk.{l}.{s}.weight");
            layers.push(Layer {
                attn_norm: tensor(&p("attn_norm"), &[d])?,
                ffn_norm: tensor(&p("ffn_norm"), &[d])?,
                q: tensor(&p("attn_q"), &[d, d])?,
                k: tensor(&p("attn_k"), &[kv, d])?,
                v: tensor(&p("attn_v"), &[kv, d])?,
                o: tensor(&p("attn_output"), &[d, d])?,
                gate: tensor(&p("ffn_gate"), &[ff, d])?,
                up: tensor(&p("ffn_up"), &[ff, d])?,
                down: tensor(&p("ffn_down"), &[d, ff])?,
            });
        }
        let vocab = cfg.vocab as i64;
        let embd = tensor("token_embd.weight", &[vocab, d])?;
        let output = if g.tensor("output.weight").is_some() {
            tensor("output.weight", &[vocab, d])?
        } else {
            embd.shallow_clone()
        };
        let out_norm = tensor("output_norm.weight", &[d])?;
        let half = cfg.head_dim() / 2;
        let base = g
            .get("llama.rope.freq_base")
            .and_then(Value::as_f64)
            .unwrap_or(cfg.rope_base);
        let mut cos = Vec::with_capacity(max_pos * half);
        let mut sin = Vec::with_capacity(max_pos * half);
        for pos in 0..max_pos {
            for i in 0..half {
                let f = base.powf(-(2.0 * i as f64) / cfg.head_dim() as f64);
                let (s, c) = (pos as f64 * f).sin_cos();
                cos.push(c as f32);
                sin.push(s as f32);
            }
        }
        let table = |v: Vec<f32>| -> Result<Tensor> {
            Tensor::f_from_slice(&v)
                .and_then(|x| x.f_reshape([max_pos as i64, half as i64]))
                .and_then(|x| x.f_to_device(device))
                .map_err(torch_err)
        };
        Ok(TorchNet {
            w: std::sync::Mutex::new(Weights {
                cos: table(cos)?,
                sin: table(sin)?,
                layers,
                embd,
                output,
                out_norm,
            }),
            cfg,
            device,
            max_pos,
        })
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.device
    }

    fn rmsnorm(&self, x: &Tensor, w: &Tensor) -> Tensor {
        let ms = x.square().mean_dim(-1, true, Kind::Float);
        x * (ms + f64::from(self.cfg.eps)).rsqrt() * w
    }

    fn weights(&self) -> Result<std::sync::MutexGuard<'_, Weights>> {
        self.w
            .lock()
            .map_err(|_| Error::codec("text-llm", "libtorch weights poisoned"))
    }

    /// Interleaved-pair RoPE of `x` (`[n, heads, head_dim]`) with `cos`/`sin`
    /// `[n, 1, head_dim / 2]`.
    fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
        let s = x.size();
        let pairs = x.reshape([s[0], s[1], s[2] / 2, 2]);
        let a = pairs.select(-1, 0);
        let b = pairs.select(-1, 1);
        let ra = &a * cos - &b * sin;
        let rb = &a * sin + &b * cos;
        Tensor::stack(&[ra, rb], -1).reshape(&s)
    }

    fn run(&self, caches: &mut [TorchCache], batch: &[(usize, u32)]) -> Result<Tensor> {
        let cfg = &self.cfg;
        let n = batch.len();
        let (d, hd) = (cfg.d_model as i64, cfg.head_dim() as i64);
        let (nh, nkv) = (cfg.n_head as i64, cfg.n_kv_head as i64);
        let (pos, next) = super::model::batch_positions(
            cfg.vocab,
            self.max_pos,
            caches.iter().map(|c| c.len).collect(),
            batch,
        )?;
        // Per sequence: its batch rows (in order) and its cache length before the batch.
        let mut groups: Vec<(usize, Vec<i64>, usize)> = Vec::new();
        for (t, (&(s, _), &p)) in batch.iter().zip(&pos).enumerate() {
            match groups.iter_mut().find(|g| g.0 == s) {
                Some(g) => g.1.push(t as i64),
                None => groups.push((s, vec![t as i64], p)),
            }
        }
        let pos: Vec<i64> = pos.iter().map(|&p| p as i64).collect();
        let dev = self.device;
        let w = self.weights()?;
        let ids: Vec<i64> = batch.iter().map(|&(_, t)| i64::from(t)).collect();
        let ids = Tensor::from_slice(&ids).to_device(dev);
        let post = Tensor::from_slice(&pos).to_device(dev);
        let cos = w.cos.index_select(0, &post).unsqueeze(1);
        let sin = w.sin.index_select(0, &post).unsqueeze(1);
        let mut h = w.embd.index_select(0, &ids);
        let group_rows: Vec<Tensor> = groups
            .iter()
            .map(|g| Tensor::from_slice(&g.1).to_device(dev))
            .collect();
        let scale = 1.0 / (hd as f64).sqrt();
        for (li, layer) in w.layers.iter().enumerate() {
            let x = self.rmsnorm(&h, &layer.attn_norm);
            let q = Self::rope(
                &x.linear::<Tensor>(&layer.q, None)
                    .reshape([n as i64, nh, hd]),
                &cos,
                &sin,
            );
            let k = Self::rope(
                &x.linear::<Tensor>(&layer.k, None)
                    .reshape([n as i64, nkv, hd]),
                &cos,
                &sin,
            );
            let v = x
                .linear::<Tensor>(&layer.v, None)
                .reshape([n as i64, nkv, hd]);
            let mut att = Tensor::zeros([n as i64, d], (Kind::Float, dev));
            for ((s, rows, past), it) in groups.iter().zip(&group_rows) {
                let m = rows.len() as i64;
                let c = &mut caches[*s];
                if c.k.len() != cfg.n_layer {
                    c.k = (0..cfg.n_layer)
                        .map(|_| Tensor::zeros([nkv, 0, hd], (Kind::Float, dev)))
                        .collect();
                    c.v = (0..cfg.n_layer)
                        .map(|_| Tensor::zeros([nkv, 0, hd], (Kind::Float, dev)))
                        .collect();
                }
                let ks = k.index_select(0, it).transpose(0, 1);
                let vs = v.index_select(0, it).transpose(0, 1);
                c.k[li] = Tensor::cat(&[&c.k[li], &ks], 1);
                c.v[li] = Tensor::cat(&[&c.v[li], &vs], 1);
                let group = nh / nkv;
                let keys = c.k[li].repeat_interleave_self_int(group, Some(0), None::<i64>);
                let vals = c.v[li].repeat_interleave_self_int(group, Some(0), None::<i64>);
                let total = *past as i64 + m;
                let qs = q.index_select(0, it).transpose(0, 1);
                let scores = qs.matmul(&keys.transpose(1, 2)) * scale;
                // Query i (position past + i) sees keys 0..=past + i.
                let qi = Tensor::arange(m, (Kind::Int64, dev)).unsqueeze(1) + *past as i64;
                let kj = Tensor::arange(total, (Kind::Int64, dev)).unsqueeze(0);
                let masked = scores.masked_fill(&kj.gt_tensor(&qi), f64::NEG_INFINITY);
                let out = masked
                    .softmax(-1, Kind::Float)
                    .matmul(&vals)
                    .transpose(0, 1)
                    .reshape([m, d]);
                let _ = att.index_copy_(0, it, &out);
            }
            h = h + att.linear::<Tensor>(&layer.o, None);
            let x = self.rmsnorm(&h, &layer.ffn_norm);
            let g = x.linear::<Tensor>(&layer.gate, None).silu();
            let u = x.linear::<Tensor>(&layer.up, None);
            h = h + (g * u).linear::<Tensor>(&layer.down, None);
        }
        for (c, &nx) in caches.iter_mut().zip(&next) {
            c.len = nx;
        }
        Ok(self.rmsnorm(&h, &w.out_norm))
    }
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Vec::<f32>::try_from(t.to_device(Device::Cpu).flatten(0, -1)).map_err(torch_err)
}

impl Net for TorchNet {
    type Cache = TorchCache;
    const BATCH_SENSITIVE: bool = true;

    fn forward(&self, caches: &mut [TorchCache], batch: &[(usize, u32)]) -> Result<Vec<f32>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let _guard = tch::no_grad_guard();
        to_vec(&self.run(caches, batch)?)
    }

    fn logits(&self, hidden: &[f32], n: usize) -> Result<Vec<f32>> {
        let _guard = tch::no_grad_guard();
        let h = Tensor::from_slice(hidden)
            .reshape([n as i64, self.cfg.d_model as i64])
            .to_device(self.device);
        to_vec(&h.linear::<Tensor>(&self.weights()?.output, None))
    }

    fn vocab(&self) -> usize {
        self.cfg.vocab
    }

    fn d_model(&self) -> usize {
        self.cfg.d_model
    }
}
