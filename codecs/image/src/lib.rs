//! lcodec-image: the learned image codec — mean-scale hyperprior with per-quality gains,
//! optionally with the checkerboard context model (see `lcodec_models::hyperprior`),
//! entropy-coded with `lcodec-entropy`.
//!
//! Bitstream (codec version 1):
//!
//! * header params: `[version=1, quality_index, n_levels, flags, arch]` (`flags` bit 0: an
//!   alpha chunk follows; bit 1: an ICC profile chunk follows; bit 2: a residual chunk
//!   follows; bit 3: a restoration-filter chunk follows; `arch`: [`Arch::code`]) + model id and weights hash in the
//!   container's `ModelRef`; metadata width / height, channels (1 grey, 2 grey + alpha,
//!   3 RGB, 4 RGBA) and the original's bits per sample.
//! * chunk 0: one range-coded stream: `ẑ` (channel-major, row-major) under the model's
//!   integer factorized tables, then `q = ⌊y - μ⌉` under the fixed quantized Gaussian
//!   tables at `scale_index(max(σ, 0.11))`. Mean-scale models: `(μ, σ) = h_s(ẑ)`, all of
//!   `y` channel-major. Checkerboard models: first every anchor (`(row + col)` even,
//!   channel-major, row-major) with `(μ, σ)` from `h_s(ẑ)`, then every non-anchor with
//!   `(μ, σ)` that also depend on the decoded anchors. Channel-group checkerboard models
//!   (`arch` 2): the same two halves, each split into the channel groups of
//!   `lcodec_models::hyperprior::channel_groups` (16, 16, 32, 64 channels for M = 128),
//!   group by group, each group's `(μ, σ)` depending on everything decoded before it.
//!   Every entropy parameter comes from
//!   the deterministic kernels, so encoder and decoder agree bit for bit on any CPU.
//!   Decoding rebuilds `ŷ = q + μ` and `x̂ = g_s(ŷ)`. (The latent coding lives in
//!   `lcodec_models::coding`, shared with the training command's real-bitstream eval.)
//! * next chunk (only with flag bit 2, added 2026-11-24; older builds refuse such files by
//!   the unknown flag): the residual layer ([`residual`]), which codes `x - x̂` with a
//!   classical transform coder and is added to the reconstruction before rounding.
//! * next chunk (only with flag bit 3, added 2026-12-07; older builds refuse such files by
//!   the unknown flag): the restoration filter ([`filter`]), per-image Wiener filters the
//!   decoder applies, in integer arithmetic, to the decoded 8-bit image (the grey plane
//!   for grey images). The encoder sends it when its gain is worth its bits.
//! * next chunk (only with flag bit 0): the alpha plane, lossless ([`alpha`]). An alpha
//!   channel that is 255 everywhere is not stored (the flag is clear, channels say 2 / 4).
//! * next chunk (only with flag bit 1, added 2026-11-23; older builds refuse such files by
//!   the unknown flag): the input's ICC colour profile, verbatim (at most [`MAX_ICC`]).
//!
//! Input: PNG, JPEG, BMP, TIFF, WebP, PNM (the `image` crate). Colour is coded as RGB;
//! grey images are coded as RGB with R = G = B and decoded back to grey (the mean of the
//! three reconstructed channels). Images with 16 bits per sample (or float) are reduced to
//! 8 bits with a message on stderr; the decoder writes 8 bits per sample. Sides are
//! padded to multiples of 64 by edge replication and cropped back on decode. An EXIF
//! orientation is applied before coding (the decoded image is upright; the EXIF block
//! itself is not kept), and the ICC profile is kept.
//!
//! Output: the format named by the `format` decode parameter (`png`, `jpg`/`jpeg`, `bmp`,
//! `tif`/`tiff`, `webp` (lossless), `ppm`/`pgm`/`pnm`; JPEG and PNM drop alpha), PNG for
//! anything else; PNG and JPEG outputs carry the ICC profile, the others drop it. The output is
//! never the original file, so [`Codec::decodes_transformed`] is always true.
//!
//! Weights are found at run time by [`discover`] (see [`model_dirs`] for the order).
#![deny(unsafe_code)]

pub mod alpha;
pub mod filter;
pub mod residual;
mod residual_v2;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use lcodec_core::container::{ChunkSink, ChunkSource, Header, ModelRef};
use lcodec_core::{
    Codec, CodecId, CodecInfo, Confidence, DecodeOptions, EncodeOptions, Error, FORMAT_PARAM, Kind,
    Metadata, Result,
};
use lcodec_models::coding::LatentCoder;
use lcodec_models::hyperprior::{Arch, MeanScaleHyperprior, Z_STRIDE};
use ndarray::{Array3, s};

static INFO: CodecInfo = CodecInfo {
    id: CodecId::IMAGE,
    name: "image",
    version: 1,
    lossless: false,
    kind: Kind::Image,
    description: "learned image codec (hyperprior + checkerboard context), --quality 1..N (higher = better)",
};

/// Bitstream version written in the codec parameters.
const PARAMS_VERSION: u8 = 1;
/// Flag bit: an alpha chunk follows the image chunk.
const FLAG_ALPHA: u8 = 1;
/// Codec parameter flag: an ICC profile chunk follows the image (and alpha) chunk.
const FLAG_ICC: u8 = 2;
/// Codec parameter flag: a residual-layer chunk ([`residual`]) follows the image chunk.
const FLAG_RESIDUAL: u8 = 4;
/// Encode parameter: the residual layer's quantiser step (8-bit sample units; 0 turns the
/// layer off), overriding the ladder's.
pub const RESIDUAL_PARAM: &str = "residual";
/// Codec parameter flag: a restoration-filter chunk ([`filter`]) follows the image and
/// residual chunks.
const FLAG_FILTER: u8 = 8;
/// Encode parameter: `filter=0` leaves the restoration filter out (default: the encoder
/// sends it when it pays for its bits).
pub const FILTER_PARAM: &str = "filter";
/// Largest image side accepted (pixels).
pub const MAX_SIDE: u32 = 1 << 15;
/// Largest image accepted (pixels): the CPU transforms hold whole feature maps in memory
/// (~1 KiB per pixel at the first layer of an N=128 model), so larger images are left to
/// other codecs ([`Codec::sniff`] declines them when their size is visible in the head).
pub const MAX_PIXELS: u64 = 1 << 25;
/// Environment variable naming a weights directory or file (see [`model_dirs`]).
pub const MODELS_ENV: &str = "LCODEC_MODELS";
/// Encode parameter choosing a model by id (file stem) among the discovered ones.
pub const MODEL_PARAM: &str = "model";

fn check_size(w: u32, h: u32) -> Result<()> {
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS
    {
        return Err(Error::Unsupported(format!(
            "image: size {w}x{h} (sides 1..={MAX_SIDE}, at most {MAX_PIXELS} pixels)"
        )));
    }
    Ok(())
}

/// One loaded model with its entropy tables: the encode / decode primitives.
pub struct ImageModel {
    model: MeanScaleHyperprior,
}

impl std::fmt::Debug for ImageModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageModel")
            .field("config", self.model.config())
            .finish()
    }
}

impl ImageModel {
    /// Loads a weights file (safetensors, as exported by `lcodec-train export`).
    ///
    /// # Errors
    /// When the weights do not load (see `MeanScaleHyperprior::from_bytes`).
    pub fn from_bytes(weights: &[u8]) -> Result<Self> {
        let model = MeanScaleHyperprior::from_bytes(weights)?;
        // Check the coding tables once.
        LatentCoder::new(&model)?;
        Ok(Self { model })
    }

    /// The network.
    pub fn model(&self) -> &MeanScaleHyperprior {
        &self.model
    }

    /// Number of quality levels (`--quality 1..=levels`).
    pub fn levels(&self) -> usize {
        self.model.config().levels()
    }

    /// The entropy model.
    pub fn arch(&self) -> Arch {
        self.model.config().arch
    }

    /// Encodes an RGB8 image (`rgb.len() == 3 * width * height`) at quality level
    /// `quality_index` (0-based) into the entropy-coded payload (CPU backend).
    ///
    /// # Errors
    /// Bad arguments, or an entropy-coder failure.
    pub fn encode_rgb(
        &self,
        rgb: &[u8],
        width: u32,
        height: u32,
        quality_index: usize,
    ) -> Result<Vec<u8>> {
        let x = padded_input(rgb, width, height)?;
        let y = self.model.analysis(x.view(), quality_index)?;
        let z = self.model.hyper_analysis(y.view())?;
        Ok(self.encode_latents(&y, &z)?.0)
    }

    /// [`ImageModel::encode_rgb`], also returning the reconstruction the decoder will make
    /// (`[3, height, width]` in `[0, 1]`, not clamped), for the residual layer.
    ///
    /// # Errors
    /// As [`ImageModel::encode_rgb`].
    pub fn encode_rgb_recon(
        &self,
        rgb: &[u8],
        width: u32,
        height: u32,
        quality_index: usize,
    ) -> Result<(Vec<u8>, Array3<f32>)> {
        let x = padded_input(rgb, width, height)?;
        let y = self.model.analysis(x.view(), quality_index)?;
        let z = self.model.hyper_analysis(y.view())?;
        let (payload, y_hat) = self.encode_latents(&y, &z)?;
        let (w, h) = (width as usize, height as usize);
        let recon = self.model.synthesis(y_hat.view(), quality_index)?;
        Ok((payload, recon.slice(s![.., 0..h, 0..w]).to_owned()))
    }

    /// Encodes with the analysis transforms on libtorch (`net`, e.g. on a GPU, made with
    /// `TchHyperprior::from_exported` from the same weights). Quantisation, the entropy
    /// parameters and the entropy coding stay on the deterministic CPU path, so the file
    /// decodes bit-exactly with the CPU decoder.
    ///
    /// # Errors
    /// Bad arguments, torch or entropy-coder failures.
    #[cfg(feature = "torch")]
    pub fn encode_rgb_torch(
        &self,
        net: &lcodec_models::torch::TchHyperprior,
        rgb: &[u8],
        width: u32,
        height: u32,
        quality_index: usize,
    ) -> Result<Vec<u8>> {
        use tch::{Kind, Tensor};
        let terr = |e: tch::TchError| Error::codec("image", format!("torch: {e}"));
        let x = padded_input(rgb, width, height)?;
        let (c, h, w) = x.dim();
        let data = x
            .as_slice()
            .ok_or_else(|| Error::codec("image", "non-contiguous input"))?;
        let xt = Tensor::f_from_slice(data)
            .map_err(terr)?
            .f_view([1, c as i64, h as i64, w as i64])
            .map_err(terr)?;
        let dev = net.device();
        let xt = xt.f_to_device(dev).map_err(terr)?;
        let q = Tensor::f_from_slice(&[quality_index as i64])
            .map_err(terr)?
            .f_to_device(dev)
            .map_err(terr)?;
        let (yt, zt) = tch::no_grad(|| {
            let y = net.analysis(&xt, &q);
            let z = net.hyper_analysis(&y);
            (y, z)
        });
        let to_array = |t: &Tensor| -> Result<Array3<f32>> {
            let sz = t.size();
            let flat = t
                .f_to_device(tch::Device::Cpu)
                .and_then(|t| t.f_to_kind(Kind::Float))
                .and_then(|t| t.f_flatten(0, -1))
                .map_err(terr)?;
            let v = Vec::<f32>::try_from(&flat).map_err(terr)?;
            Array3::from_shape_vec((sz[1] as usize, sz[2] as usize, sz[3] as usize), v)
                .map_err(|e| Error::codec("image", e.to_string()))
        };
        Ok(self.encode_latents(&to_array(&yt)?, &to_array(&zt)?)?.0)
    }

    /// Codes the analysis outputs `y` and `z`: returns the payload and the `ŷ` the decoder
    /// will reconstruct (exactly: the entropy parameters come from the deterministic
    /// kernels, fed only with decoded values).
    ///
    /// # Errors
    /// Shape mismatch with the model, or an entropy-coder failure.
    pub fn encode_latents(
        &self,
        y: &Array3<f32>,
        z: &Array3<f32>,
    ) -> Result<(Vec<u8>, Array3<f32>)> {
        LatentCoder::new(&self.model)?.encode(y, z)
    }

    /// Decodes the payload of a `width` x `height` image to `ŷ`.
    ///
    /// # Errors
    /// [`Error::Codec`] for a damaged payload.
    pub fn decode_latents(&self, payload: &[u8], width: u32, height: u32) -> Result<Array3<f32>> {
        check_size(width, height)?;
        let (w, h) = (width as usize, height as usize);
        let zh = h.div_ceil(Z_STRIDE);
        let zw = w.div_ceil(Z_STRIDE);
        LatentCoder::new(&self.model)?.decode(payload, zh, zw)
    }

    /// Decodes a payload to the reconstruction `[3, height, width]` in `[0, 1]` (not
    /// clamped).
    ///
    /// # Errors
    /// [`Error::Codec`] for a damaged payload.
    pub fn decode_float(
        &self,
        payload: &[u8],
        width: u32,
        height: u32,
        quality_index: usize,
    ) -> Result<Array3<f32>> {
        let y_hat = self.decode_latents(payload, width, height)?;
        let (w, h) = (width as usize, height as usize);
        let x = self.model.synthesis(y_hat.view(), quality_index)?;
        Ok(x.slice(s![.., 0..h, 0..w]).to_owned())
    }

    /// Decodes a payload made by [`ImageModel::encode_rgb`] back to RGB8.
    ///
    /// # Errors
    /// [`Error::Codec`] for a damaged payload.
    pub fn decode_rgb(
        &self,
        payload: &[u8],
        width: u32,
        height: u32,
        quality_index: usize,
    ) -> Result<Vec<u8>> {
        let x = self.decode_float(payload, width, height, quality_index)?;
        let (w, h) = (width as usize, height as usize);
        let mut out = vec![0u8; 3 * w * h];
        for ((c, yy, xx), &v) in x.indexed_iter() {
            out[(yy * w + xx) * 3 + c] = to_u8(v);
        }
        Ok(out)
    }
}

/// Checks that `bytes` hash (FNV-1a, 64 bits) to `golden`; with `LCODEC_BLESS` set,
/// prints the hash instead, to freeze a new stream.
#[cfg(test)]
pub(crate) fn assert_frozen(bytes: &[u8], golden: u64, what: &str) {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    if std::env::var_os("LCODEC_BLESS").is_some() {
        println!("LCODEC_BLESS: {what}: {h:#018x}");
    } else {
        assert_eq!(h, golden, "{what}: bytes changed");
    }
}

fn to_u8(v: f32) -> u8 {
    (v * 255.0).round().clamp(0.0, 255.0) as u8
}

/// The decoded image as 8-bit planes, before the restoration filter: from the
/// reconstruction `x` (`[3, h, w]` in `[0, 1]`), the three components, or for a grey
/// image one plane of their mean.
fn output_planes(x: &Array3<f32>, grey: bool) -> Vec<u8> {
    if grey {
        let (_, h, w) = x.dim();
        let mut v = Vec::with_capacity(w * h);
        for yy in 0..h {
            for xx in 0..w {
                v.push(to_u8(
                    (x[[0, yy, xx]] + x[[1, yy, xx]] + x[[2, yy, xx]]) / 3.0,
                ));
            }
        }
        v
    } else {
        x.iter().map(|&v| to_u8(v)).collect()
    }
}

/// The input (interleaved RGB8) as the planes [`output_planes`] makes of a decoded image.
fn input_planes(rgb: &[u8], w: usize, h: usize, grey: bool) -> Vec<u8> {
    let n = w * h;
    if grey {
        (0..n)
            .map(|i| {
                ((u32::from(rgb[3 * i])
                    + u32::from(rgb[3 * i + 1])
                    + u32::from(rgb[3 * i + 2])
                    + 1)
                    / 3) as u8
            })
            .collect()
    } else {
        (0..3 * n).map(|j| rgb[3 * (j % n) + j / n]).collect()
    }
}

/// A model the codec may use: loaded now, or a file loaded on first use.
#[derive(Clone)]
struct Slot {
    id: String,
    path: Option<PathBuf>,
    arch: Arch,
    loaded: OnceLock<std::result::Result<Arc<ImageModel>, String>>,
}

impl Slot {
    fn get(&self) -> Result<Arc<ImageModel>> {
        self.loaded
            .get_or_init(|| {
                let path = self.path.as_ref().ok_or("no weights")?;
                let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let m = ImageModel::from_bytes(&bytes)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(Arc::new(m))
            })
            .clone()
            .map_err(|e| Error::codec("image", format!("cannot load model: {e}")))
    }
}

/// Name of the file, in a weights directory, that maps `--quality` to models and levels
/// (see [`parse_ladder`]).
pub const LADDER_FILE: &str = "image-ladder.txt";

/// One rung of a quality ladder: `--quality` takes level `level` (0-based) of `model`,
/// plus a residual layer with quantiser step `residual` when there is one.
#[derive(Clone, Debug, PartialEq)]
pub struct Rung {
    /// Model id (weights file stem).
    pub model: String,
    /// Quality level of that model, 0-based.
    pub level: usize,
    /// Quantiser step of the residual layer ([`residual`]), in 8-bit sample units.
    pub residual: Option<f32>,
}

/// Parses a quality ladder: one line `QUALITY MODEL LEVEL [RESIDUAL]` per quality (1, 2,
/// 3, … in order; `LEVEL` 1-based as `--quality` counts a single model's levels;
/// `RESIDUAL`, when present, the quantiser step of a residual layer); `#` starts a
/// comment. A ladder lets a model fine-tuned for some levels (the top ones) serve them
/// while another model serves the rest. Decoding does not use it: a file names its model
/// and level.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the line for anything else.
pub fn parse_ladder(text: &str) -> Result<Vec<Rung>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = |what: &str| {
            Error::InvalidArgument(format!(
                "{LADDER_FILE} line {}: {what} (expected `QUALITY MODEL LEVEL [RESIDUAL]`)",
                i + 1
            ))
        };
        let f: Vec<&str> = line.split_whitespace().collect();
        let (q, model, level, step) = match f[..] {
            [q, m, l] => (q, m, l, None),
            [q, m, l, r] => (q, m, l, Some(r)),
            _ => return Err(bad(&format!("{} fields", f.len()))),
        };
        if q.parse::<usize>().ok() != Some(out.len() + 1) {
            return Err(bad(&format!("quality `{q}`, expected {}", out.len() + 1)));
        }
        let level = match level.parse::<usize>() {
            Ok(l) if l >= 1 => l - 1,
            _ => return Err(bad(&format!("level `{level}`"))),
        };
        let residual = match step.map(str::parse::<f32>) {
            None => None,
            Some(Ok(r)) if (residual::MIN_STEP..=residual::MAX_STEP).contains(&r) => Some(r),
            Some(_) => {
                return Err(bad(&format!(
                    "residual step `{}` (expected {}..={})",
                    step.unwrap_or(""),
                    residual::MIN_STEP,
                    residual::MAX_STEP
                )));
            }
        };
        out.push(Rung {
            model: model.to_string(),
            level,
            residual,
        });
    }
    if out.is_empty() {
        return Err(Error::InvalidArgument(format!("{LADDER_FILE}: no rungs")));
    }
    Ok(out)
}

/// The learned image codec with one or more models (the first is the default for
/// encoding; decoding picks the model named in the file), and optionally a quality ladder
/// spanning several models.
#[derive(Clone)]
pub struct ImageCodec {
    slots: Arc<Vec<Slot>>,
    /// `--quality` → (slot, level), or why the ladder file is unusable (reported when an
    /// encode needs it, so a bad file is never silently ignored).
    ladder: Option<std::result::Result<Arc<ResolvedLadder>, String>>,
}

/// A ladder resolved against the codec's slots: `(slot index, level, residual step)` per
/// quality.
type ResolvedLadder = Vec<(usize, usize, Option<f32>)>;

impl std::fmt::Debug for ImageCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.slots.iter().map(|s| s.id.as_str()).collect();
        f.debug_struct("ImageCodec").field("models", &ids).finish()
    }
}

impl ImageCodec {
    /// A codec using the weights file `weights` (safetensors, as exported by
    /// `lcodec-train export`), named `model_id` in the files it writes.
    ///
    /// # Errors
    /// When the weights do not load (see `MeanScaleHyperprior::from_bytes`).
    pub fn try_new(weights: &[u8], model_id: &str) -> Result<Self> {
        let m = ImageModel::from_bytes(weights)?;
        let slot = Slot {
            id: model_id.to_string(),
            path: None,
            arch: m.arch(),
            loaded: OnceLock::new(),
        };
        let _ = slot.loaded.set(Ok(Arc::new(m)));
        Ok(Self {
            slots: Arc::new(vec![slot]),
            ladder: None,
        })
    }

    /// A codec over weights files (loaded on first use; the architecture is read from
    /// each file's header now). The default model for encoding is the first checkerboard
    /// model in `paths` order, else the first one. Model ids are the file stems.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when no path is a readable weights file of a known
    /// architecture.
    pub fn from_paths(paths: &[PathBuf]) -> Result<Self> {
        let mut slots: Vec<Slot> = paths
            .iter()
            .filter_map(|p| {
                let arch = peek_arch(p).ok()?;
                let id = p.file_stem()?.to_string_lossy().to_string();
                Some(Slot {
                    id,
                    path: Some(p.clone()),
                    arch,
                    loaded: OnceLock::new(),
                })
            })
            .collect();
        if slots.is_empty() {
            return Err(Error::InvalidArgument(
                "image: no usable weights file".into(),
            ));
        }
        if let Some(i) = slots.iter().position(|s| s.arch.has_context()) {
            let s = slots.remove(i);
            slots.insert(0, s);
        }
        Ok(Self {
            slots: Arc::new(slots),
            ladder: None,
        })
    }

    /// This codec with a quality ladder (see [`parse_ladder`]): `--quality Q` encodes with
    /// the model and level of rung `Q`, and the first rung's model becomes the default.
    /// `ladder` is the ladder or why it could not be read; an unusable ladder (or one
    /// naming a model that is not here) makes encoding without `-p model=` fail with that
    /// reason.
    #[must_use]
    pub fn with_ladder(mut self, ladder: Result<Vec<Rung>>) -> Self {
        let resolved = ladder.map_err(bare_message).and_then(|rungs| {
            let mut slots: Vec<Slot> = self.slots.iter().cloned().collect();
            if let Some(i) = slots.iter().position(|s| s.id == rungs[0].model) {
                let s = slots.remove(i);
                slots.insert(0, s);
            }
            self.slots = Arc::new(slots);
            rungs
                .iter()
                .enumerate()
                .map(|(q, r)| {
                    self.slots
                        .iter()
                        .position(|s| s.id == r.model)
                        .map(|i| (i, r.level, r.residual))
                        .ok_or_else(|| {
                            format!(
                                "{LADDER_FILE}: quality {} names model `{}`, which is not here (have: {})",
                                q + 1,
                                r.model,
                                self.model_ids().join(", ")
                            )
                        })
                })
                .collect::<std::result::Result<Vec<_>, String>>()
                .map(Arc::new)
        });
        self.ladder = Some(resolved);
        self
    }

    /// The quality ladder in use, one rung per `--quality`; `None` without one.
    ///
    /// # Errors
    /// The reason a ladder file is unusable.
    pub fn ladder(&self) -> Result<Option<Vec<Rung>>> {
        match &self.ladder {
            None => Ok(None),
            Some(Err(e)) => Err(Error::InvalidArgument(format!("image: {e}"))),
            Some(Ok(l)) => Ok(Some(
                l.iter()
                    .map(|&(i, level, residual)| Rung {
                        model: self.slots[i].id.clone(),
                        level,
                        residual,
                    })
                    .collect(),
            )),
        }
    }

    /// Ids of the models, default first.
    pub fn model_ids(&self) -> Vec<String> {
        self.slots.iter().map(|s| s.id.clone()).collect()
    }

    /// The default model (loading it on first use).
    ///
    /// # Errors
    /// When its weights file does not load.
    pub fn default_model(&self) -> Result<Arc<ImageModel>> {
        self.slots
            .first()
            .ok_or_else(|| Error::codec("image", "no model"))?
            .get()
    }

    /// Number of quality levels: the ladder's rungs, else the default model's levels (0
    /// if it does not load).
    pub fn levels(&self) -> usize {
        if let Some(Ok(l)) = &self.ladder {
            return l.len();
        }
        self.default_model().map(|m| m.levels()).unwrap_or(0)
    }

    /// [`ImageModel::encode_rgb`] with the default model.
    ///
    /// # Errors
    /// As [`ImageModel::encode_rgb`].
    pub fn encode_rgb(&self, rgb: &[u8], w: u32, h: u32, quality_index: usize) -> Result<Vec<u8>> {
        self.default_model()?.encode_rgb(rgb, w, h, quality_index)
    }

    /// [`ImageModel::decode_rgb`] with the default model.
    ///
    /// # Errors
    /// As [`ImageModel::decode_rgb`].
    pub fn decode_rgb(
        &self,
        payload: &[u8],
        w: u32,
        h: u32,
        quality_index: usize,
    ) -> Result<Vec<u8>> {
        self.default_model()?
            .decode_rgb(payload, w, h, quality_index)
    }

    /// [`ImageModel::encode_latents`] with the default model.
    ///
    /// # Errors
    /// As [`ImageModel::encode_latents`].
    pub fn encode_latents(
        &self,
        y: &Array3<f32>,
        z: &Array3<f32>,
    ) -> Result<(Vec<u8>, Array3<f32>)> {
        self.default_model()?.encode_latents(y, z)
    }

    /// [`ImageModel::decode_latents`] with the default model.
    ///
    /// # Errors
    /// As [`ImageModel::decode_latents`].
    pub fn decode_latents(&self, payload: &[u8], w: u32, h: u32) -> Result<Array3<f32>> {
        self.default_model()?.decode_latents(payload, w, h)
    }

    /// [`ImageModel::encode_rgb_torch`] with the default model.
    ///
    /// # Errors
    /// As [`ImageModel::encode_rgb_torch`].
    #[cfg(feature = "torch")]
    pub fn encode_rgb_torch(
        &self,
        net: &lcodec_models::torch::TchHyperprior,
        rgb: &[u8],
        w: u32,
        h: u32,
        quality_index: usize,
    ) -> Result<Vec<u8>> {
        self.default_model()?
            .encode_rgb_torch(net, rgb, w, h, quality_index)
    }

    /// The model slot, 0-based level and residual step an encode uses: `-p model=ID` picks
    /// a model and `--quality` counts its levels; otherwise the ladder (when there is one)
    /// or the default model's levels. The default quality is the middle one. `-p
    /// residual=STEP` sets the residual layer's step (0: none) whatever the rung says.
    fn pick_for_encode(&self, opts: &EncodeOptions) -> Result<(&Slot, usize, Option<f32>)> {
        let (slot, qi, step) = self.pick_rung(opts)?;
        let Some(v) = opts.params.get(RESIDUAL_PARAM) else {
            return Ok((slot, qi, step));
        };
        match v.parse::<f32>() {
            Ok(0.0) => Ok((slot, qi, None)),
            Ok(r) if (residual::MIN_STEP..=residual::MAX_STEP).contains(&r) => {
                Ok((slot, qi, Some(r)))
            }
            _ => Err(Error::InvalidArgument(format!(
                "image: -p {RESIDUAL_PARAM}={v} (expected 0 for none, or a step in {}..={})",
                residual::MIN_STEP,
                residual::MAX_STEP
            ))),
        }
    }

    fn pick_rung(&self, opts: &EncodeOptions) -> Result<(&Slot, usize, Option<f32>)> {
        let range_err = |q: u32, n: usize| {
            Error::InvalidArgument(format!("image: --quality {q} (expected 1..={n})"))
        };
        let quality = |n: usize| -> Result<usize> {
            let q = opts.quality.unwrap_or((n as u32).div_ceil(2).max(1));
            if q == 0 || q as usize > n {
                return Err(range_err(q, n));
            }
            Ok(q as usize - 1)
        };
        let default = || {
            self.slots
                .first()
                .ok_or_else(|| Error::codec("image", "no model"))
        };
        if let Some(id) = opts.params.get(MODEL_PARAM) {
            let slot = self.slots.iter().find(|s| &s.id == id).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "image: no model `{id}` (have: {})",
                    self.model_ids().join(", ")
                ))
            })?;
            let qi = quality(slot.get()?.levels())?;
            return Ok((slot, qi, None));
        }
        match &self.ladder {
            None => {
                let slot = default()?;
                let qi = quality(slot.get()?.levels())?;
                Ok((slot, qi, None))
            }
            Some(Err(e)) => Err(Error::InvalidArgument(format!("image: {e}"))),
            Some(Ok(l)) => {
                let (i, level, step) = l[quality(l.len())?];
                let slot = &self.slots[i];
                let n = slot.get()?.levels();
                if level >= n {
                    return Err(Error::InvalidArgument(format!(
                        "image: {LADDER_FILE} gives quality {} level {} of `{}`, which has {n}",
                        quality(l.len())? + 1,
                        level + 1,
                        slot.id
                    )));
                }
                Ok((slot, level, step))
            }
        }
    }

    /// The model a file was written with: same id and weights hash.
    fn model_for_decode(&self, want: &ModelRef) -> Result<(String, Arc<ImageModel>)> {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        // Try the slot with the same id first, then all others (renamed files).
        let mut order: Vec<&Slot> = self.slots.iter().filter(|s| s.id == want.id).collect();
        order.extend(self.slots.iter().filter(|s| s.id != want.id));
        let mut found = Vec::new();
        for s in order {
            let Ok(m) = s.get() else { continue };
            if m.model.weights_hash().as_slice() == want.weights_hash.as_slice() {
                return Ok((s.id.clone(), m));
            }
            found.push(format!("{} ({})", s.id, hex(&m.model.weights_hash())));
        }
        Err(Error::ModelMismatch {
            expected: format!("{} ({})", want.id, hex(&want.weights_hash)),
            found: found.join(", "),
        })
    }
}

/// Reads only the safetensors header of `path` and returns its `lcodec.arch`.
///
/// # Errors
/// I/O errors, or not a weights file of a known architecture.
pub fn peek_arch(path: &Path) -> Result<Arch> {
    let mut f = std::fs::File::open(path)?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)?;
    let n = u64::from_le_bytes(len);
    if n > 1 << 20 {
        return Err(Error::codec(
            "image",
            "safetensors header larger than 1 MiB",
        ));
    }
    let mut head = vec![0u8; n as usize];
    f.read_exact(&mut head)?;
    let text = String::from_utf8_lossy(&head);
    // The value of "lcodec.arch" (the metadata writer emits plain strings).
    let key = "\"lcodec.arch\"";
    let rest = text
        .find(key)
        .map(|i| &text[i + key.len()..])
        .ok_or_else(|| Error::codec("image", "no lcodec.arch in the weights metadata"))?;
    let rest = rest
        .trim_start()
        .strip_prefix(':')
        .unwrap_or(rest)
        .trim_start();
    let value = rest
        .strip_prefix('"')
        .and_then(|r| r.split('"').next())
        .ok_or_else(|| Error::codec("image", "bad lcodec.arch value"))?;
    Arch::parse(value)
}

/// Where [`discover`] looks for weights, in order (the first that holds a usable weights
/// file wins):
///
/// 1. `$LCODEC_MODELS` when set and not empty: a directory or one `.safetensors` file,
///    and then nothing else is searched (set it to a missing path to disable the codec);
/// 2. `models/weights/` next to the executable (an installed bundle);
/// 3. the source tree's `models/weights/` (path fixed at compile time, for builds run from
///    a checkout).
pub fn model_dirs() -> Vec<PathBuf> {
    model_dirs_with(std::env::var_os(MODELS_ENV))
}

/// [`model_dirs`] with the value of `$LCODEC_MODELS` given.
pub fn model_dirs_with(env: Option<std::ffi::OsString>) -> Vec<PathBuf> {
    if let Some(v) = env.filter(|v| !v.is_empty()) {
        return vec![PathBuf::from(v)];
    }
    let mut out = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.push(dir.join("models").join("weights"));
    }
    out.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/weights"));
    out
}

/// `*.safetensors` files of a directory (sorted), or the file itself.
fn weight_files(p: &Path) -> Vec<PathBuf> {
    if p.is_file() {
        return vec![p.to_path_buf()];
    }
    let Ok(rd) = std::fs::read_dir(p) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    v.sort();
    v
}

/// The codec over the first location of [`model_dirs`] that holds usable weights, or
/// `None` (no weights shipped / found: the facade then leaves images to other codecs).
/// Cheap: only file headers are read; weights load on first use.
pub fn discover() -> Option<ImageCodec> {
    discover_in(&model_dirs())
}

/// [`discover`] over the given locations (directories or weights files), in order.
/// A directory's [`LADDER_FILE`], when it has one, is the quality ladder.
pub fn discover_in(dirs: &[PathBuf]) -> Option<ImageCodec> {
    dirs.iter().find_map(|d| {
        let c = ImageCodec::from_paths(&weight_files(d)).ok()?;
        let ladder = d.join(LADDER_FILE);
        if !d.is_dir() || !ladder.exists() {
            return Some(c);
        }
        let rungs = std::fs::read_to_string(&ladder)
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", ladder.display())))
            .and_then(|t| {
                parse_ladder(&t).map_err(|e| {
                    Error::InvalidArgument(format!("{}: {}", d.display(), bare_message(e)))
                })
            });
        Some(c.with_ladder(rungs))
    })
}

/// An error's message without the "invalid argument: " of its kind (for re-wrapping).
fn bare_message(e: Error) -> String {
    match e {
        Error::InvalidArgument(m) => m,
        e => e.to_string(),
    }
}

/// Runs `f` on a rayon pool of `threads` workers (0: the global pool, all cores). The
/// kernels that feed the entropy coder give the same result on any number of threads.
fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    if threads == 0 {
        return f();
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Io(std::io::Error::other(format!("thread pool: {e}"))))?
        .install(f)
}

/// `[3, H', W']` input in `[0, 1]`, sides padded to multiples of 64 by edge replication.
fn padded_input(rgb: &[u8], width: u32, height: u32) -> Result<Array3<f32>> {
    check_size(width, height)?;
    let (w, h) = (width as usize, height as usize);
    if rgb.len() != 3 * w * h {
        return Err(Error::InvalidArgument(format!(
            "image {width}x{height} with {} bytes",
            rgb.len()
        )));
    }
    let pw = w.div_ceil(Z_STRIDE) * Z_STRIDE;
    let ph = h.div_ceil(Z_STRIDE) * Z_STRIDE;
    Ok(Array3::from_shape_fn((3, ph, pw), |(c, y, xx)| {
        let (sy, sx) = (y.min(h - 1), xx.min(w - 1));
        f32::from(rgb[(sy * w + sx) * 3 + c]) / 255.0
    }))
}

/// An input image, reduced to what the codec codes.
#[derive(Debug)]
pub struct InputImage {
    /// RGB8 pixels (grey replicated into R, G, B).
    pub rgb: Vec<u8>,
    /// The alpha plane, when the input has alpha.
    pub alpha: Option<Vec<u8>>,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Whether the input is grey (no colour).
    pub grey: bool,
    /// Bits per sample of the input (8, 16 or 32).
    pub bit_depth: u8,
    /// The input's ICC colour profile, if it has one (at most [`MAX_ICC`] bytes).
    pub icc: Option<Vec<u8>>,
}

/// Largest ICC profile kept (bigger ones are dropped: no real profile is near this).
pub const MAX_ICC: usize = 1 << 20;

/// Reads an image with the `image` crate (8-bit samples; deeper samples are reduced).
///
/// # Errors
/// [`Error::Unsupported`] for unreadable input or an out-of-range size.
pub fn read_image(bytes: &[u8]) -> Result<InputImage> {
    use image::ImageDecoder;
    let bad = |e: image::ImageError| Error::Unsupported(format!("image: cannot read input: {e}"));
    let mut dec = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(Error::Io)?
        .into_decoder()
        .map_err(bad)?;
    // The colour profile travels with the file; the EXIF orientation is applied here, so
    // the decoded image is upright in any viewer.
    let icc = dec
        .icc_profile()
        .ok()
        .flatten()
        .filter(|p| !p.is_empty() && p.len() <= MAX_ICC);
    let orientation = dec
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = image::DynamicImage::from_decoder(dec).map_err(bad)?;
    img.apply_orientation(orientation);
    let (w, h) = (img.width(), img.height());
    check_size(w, h)?;
    let color = img.color();
    let grey = !color.has_color();
    let has_alpha = color.has_alpha();
    let bit_depth = (color.bits_per_pixel() / u16::from(color.channel_count().max(1))) as u8;
    let rgba = img.to_rgba8().into_raw();
    let rgb: Vec<u8> = rgba
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    let alpha = has_alpha.then(|| rgba.chunks_exact(4).map(|p| p[3]).collect());
    Ok(InputImage {
        rgb,
        alpha,
        width: w,
        height: h,
        grey,
        bit_depth,
        icc,
    })
}

/// Image formats the decoder can write, from a `format` parameter (file extension).
fn output_format(ext: Option<&str>) -> image::ImageFormat {
    use image::ImageFormat as F;
    match ext.map(str::to_ascii_lowercase).as_deref() {
        Some("jpg" | "jpeg") => F::Jpeg,
        Some("bmp") => F::Bmp,
        Some("tif" | "tiff") => F::Tiff,
        Some("webp") => F::WebP,
        Some("ppm" | "pgm" | "pnm") => F::Pnm,
        _ => F::Png,
    }
}

/// Encodes a decoded image into `format`; falls back to RGB(A) 8-bit when the encoder
/// does not take the colour type, and drops alpha for JPEG and PNM.
fn write_image(
    img: image::DynamicImage,
    format: image::ImageFormat,
    icc: Option<Vec<u8>>,
) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    let no_alpha = matches!(format, image::ImageFormat::Jpeg | image::ImageFormat::Pnm);
    let img = if no_alpha && img.color().has_alpha() {
        if img.color().has_color() {
            image::DynamicImage::ImageRgb8(img.to_rgb8())
        } else {
            image::DynamicImage::ImageLuma8(img.to_luma8())
        }
    } else {
        img
    };
    // PNG and JPEG get the input's colour profile back; other formats drop it.
    let enc = |im: &image::DynamicImage| -> std::result::Result<Vec<u8>, image::ImageError> {
        let mut out = std::io::Cursor::new(Vec::new());
        let unsupported = |e: image::error::UnsupportedError| image::ImageError::Unsupported(e);
        match format {
            image::ImageFormat::Jpeg => {
                let mut e = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95);
                if let Some(p) = &icc {
                    e.set_icc_profile(p.clone()).map_err(unsupported)?;
                }
                e.encode_image(im)?;
            }
            image::ImageFormat::Png => {
                let mut e = image::codecs::png::PngEncoder::new(&mut out);
                if let Some(p) = &icc {
                    e.set_icc_profile(p.clone()).map_err(unsupported)?;
                }
                im.write_with_encoder(e)?;
            }
            _ => im.write_to(&mut out, format)?,
        }
        Ok(out.into_inner())
    };
    match enc(&img) {
        Ok(v) => Ok(v),
        Err(_) => {
            let wide = if img.color().has_alpha() {
                image::DynamicImage::ImageRgba8(img.to_rgba8())
            } else {
                image::DynamicImage::ImageRgb8(img.to_rgb8())
            };
            enc(&wide).map_err(|e| Error::codec("image", format!("writing {format:?}: {e}")))
        }
    }
}

/// Formats the sniffer claims (the ones this build decodes).
fn readable(f: image::ImageFormat) -> bool {
    use image::ImageFormat as F;
    matches!(f, F::Png | F::Jpeg | F::Bmp | F::Tiff | F::WebP | F::Pnm)
}

impl Codec for ImageCodec {
    fn info(&self) -> &'static CodecInfo {
        &INFO
    }

    fn sniff(&self, head: &[u8], file_name: Option<&str>) -> Option<Confidence> {
        // Decline images whose size is visible in the head and too large.
        let reader = image::ImageReader::new(std::io::Cursor::new(head)).with_guessed_format();
        if let Ok(r) = reader {
            if let Some(f) = r.format() {
                if !readable(f) {
                    return None;
                }
                return match r.into_dimensions() {
                    Ok((w, h)) if check_size(w, h).is_err() => None,
                    _ => Some(Confidence::MAGIC),
                };
            }
        }
        match lcodec_core::extension(file_name).as_deref() {
            Some("png" | "jpg" | "jpeg" | "bmp" | "tif" | "tiff" | "webp" | "ppm" | "pgm") => {
                Some(Confidence::EXTENSION)
            }
            _ => None,
        }
    }

    fn encode(
        &self,
        src: &mut dyn Read,
        sink: &mut ChunkSink<'_>,
        opts: &EncodeOptions,
    ) -> Result<()> {
        let mut bytes = Vec::new();
        src.read_to_end(&mut bytes)?;
        let img = read_image(&bytes)?;
        drop(bytes);
        if img.bit_depth > 8 {
            eprintln!(
                "lcodec image: the input has {} bits per sample; coded with 8 (the decoder writes 8-bit samples)",
                img.bit_depth
            );
        }
        let (slot, qi, step) = self.pick_for_encode(opts)?;
        let use_filter = match opts.params.get(FILTER_PARAM).map(String::as_str) {
            None | Some("1") => true,
            Some("0") => false,
            Some(v) => {
                return Err(Error::InvalidArgument(format!(
                    "image: -p {FILTER_PARAM}={v} (expected 0 or 1)"
                )));
            }
        };
        let model = slot.get()?;
        let levels = model.levels();
        let (w, h) = (img.width, img.height);
        let (wu, hu) = (w as usize, h as usize);
        let (payload, residual_chunk, filter_chunk) = with_threads(opts.threads, || {
            if step.is_none() && !use_filter {
                return Ok((model.encode_rgb(&img.rgb, w, h, qi)?, None, None));
            }
            let (payload, mut recon) = model.encode_rgb_recon(&img.rgb, w, h, qi)?;
            let residual_chunk = match step {
                Some(step) => {
                    let r = residual::encode(&img.rgb, recon.view(), wu, hu, img.grey, step)?;
                    if use_filter {
                        residual::decode_into(&r, &mut recon, wu, hu, img.grey)?;
                    }
                    Some(r)
                }
                None => None,
            };
            if !use_filter {
                return Ok((payload, residual_chunk, None));
            }
            // Bits worth one unit of squared error in RGB: the trade-off the rest was
            // coded at (the residual's search weight, or the learned level's λ in
            // bits per pixel per unit of mean squared error over 3 samples).
            let mut mu = match step {
                Some(step) => 1.0 / (residual::DQ_LAMBDA * f64::from(step / 2.0).powi(2)),
                None => f64::from(model.model().config().lambdas[qi]) / 3.0,
            };
            let comps = if img.grey {
                // One grey sample stands for three equal RGB samples.
                mu *= 3.0;
                1
            } else {
                3
            };
            let decoded = output_planes(&recon, img.grey);
            let orig = input_planes(&img.rgb, wu, hu, img.grey);
            let f = filter::encode(&orig, &decoded, comps, wu, hu, mu)?;
            Ok((payload, residual_chunk, f))
        })?;
        let alpha_chunk = match &img.alpha {
            Some(a) if a.iter().any(|&v| v != 255) => {
                Some(alpha::encode_plane(a, w as usize, h as usize)?)
            }
            _ => None,
        };
        let mut meta = Metadata::new(Kind::Image);
        meta.width = w;
        meta.height = h;
        meta.channels = match (img.grey, img.alpha.is_some()) {
            (true, false) => 1,
            (true, true) => 2,
            (false, false) => 3,
            (false, true) => 4,
        };
        meta.bit_depth = img.bit_depth;
        let mut flags = if alpha_chunk.is_some() { FLAG_ALPHA } else { 0 };
        if img.icc.is_some() {
            flags |= FLAG_ICC;
        }
        if residual_chunk.is_some() {
            flags |= FLAG_RESIDUAL;
        }
        if filter_chunk.is_some() {
            flags |= FLAG_FILTER;
        }
        let model_ref = ModelRef {
            id: slot.id.clone(),
            weights_hash: model.model.weights_hash().to_vec(),
        };
        sink.begin(
            meta,
            model_ref,
            &[
                PARAMS_VERSION,
                qi as u8,
                levels as u8,
                flags,
                model.arch().code(),
            ],
        )?;
        let px = u64::from(w) * u64::from(h);
        sink.push(&payload, u32::try_from(3 * px).unwrap_or(u32::MAX))?;
        if let Some(r) = residual_chunk {
            sink.push(&r, u32::try_from(3 * px).unwrap_or(u32::MAX))?;
        }
        if let Some(f) = filter_chunk {
            sink.push(&f, u32::try_from(3 * px).unwrap_or(u32::MAX))?;
        }
        if let Some(a) = alpha_chunk {
            sink.push(&a, u32::try_from(px).unwrap_or(u32::MAX))?;
        }
        if let Some(icc) = &img.icc {
            sink.push(icc, icc.len() as u32)?;
        }
        Ok(())
    }

    fn decode(
        &self,
        header: &Header,
        src: &mut ChunkSource<'_>,
        dst: &mut dyn Write,
        opts: &DecodeOptions,
    ) -> Result<()> {
        let p = &header.params;
        if p.len() != 5
            || p[0] != PARAMS_VERSION
            || p[3] & !(FLAG_ALPHA | FLAG_ICC | FLAG_RESIDUAL | FLAG_FILTER) != 0
        {
            return Err(Error::malformed(
                header.len,
                format!("image: codec parameters {p:?} (expected [1, q, levels, flags, arch])"),
            ));
        }
        let (_, model) = self.model_for_decode(&header.model)?;
        let qi = p[1] as usize;
        if qi >= model.levels() || p[2] as usize != model.levels() || p[4] != model.arch().code() {
            return Err(Error::malformed(
                header.len,
                format!(
                    "image: quality index {qi} / {} levels / arch {} for a {}-level {} model",
                    p[2],
                    p[4],
                    model.levels(),
                    model.arch().id()
                ),
            ));
        }
        let md = &header.metadata;
        let (w, h) = (md.width, md.height);
        if check_size(w, h).is_err() || !(1..=4).contains(&md.channels) {
            return Err(Error::malformed(
                header.len,
                format!("image: {w}x{h}x{} in the header", md.channels),
            ));
        }
        let has_alpha = md.channels == 2 || md.channels == 4;
        let alpha_chunk = p[3] & FLAG_ALPHA != 0;
        if alpha_chunk && !has_alpha {
            return Err(Error::malformed(
                header.len,
                "image: alpha chunk without alpha channel",
            ));
        }
        // Every chunk is read (and its checksum verified) before the transforms run, so a
        // truncated or damaged file fails before the expensive part.
        let chunk = src
            .next_chunk()?
            .ok_or_else(|| Error::truncated(header.len, "image: the image chunk"))?;
        let mut flagged = |flag: u8, what: &str| -> Result<Option<_>> {
            if p[3] & flag == 0 {
                return Ok(None);
            }
            let c = src.next_chunk()?;
            c.map(Some)
                .ok_or_else(|| Error::truncated(header.len, format!("image: the {what} chunk")))
        };
        let residual_chunk = flagged(FLAG_RESIDUAL, "residual")?;
        let filter_chunk = flagged(FLAG_FILTER, "filter")?;
        let alpha = if alpha_chunk {
            let c = src
                .next_chunk()?
                .ok_or_else(|| Error::truncated(header.len, "image: the alpha chunk"))?;
            Some(
                alpha::decode_plane(&c.payload, w as usize, h as usize)
                    .map_err(|e| c.malformed(e))?,
            )
        } else {
            None
        };
        let icc = if p[3] & FLAG_ICC != 0 {
            let c = src
                .next_chunk()?
                .ok_or_else(|| Error::truncated(header.len, "image: the ICC profile chunk"))?;
            if c.payload.len() != c.raw_len as usize || c.payload.len() > MAX_ICC {
                return Err(c.malformed("image: ICC profile chunk of a wrong size"));
            }
            Some(c.payload)
        } else {
            None
        };
        if src.next_chunk()?.is_some() {
            return Err(Error::malformed(
                header.len,
                "image: unexpected extra chunk",
            ));
        }
        let (wu, hu) = (w as usize, h as usize);
        let grey = md.channels <= 2;
        let planes = with_threads(opts.threads, || {
            let mut x = model
                .decode_float(&chunk.payload, w, h, qi)
                .map_err(|e| chunk.malformed(e))?;
            if let Some(c) = &residual_chunk {
                residual::decode_into(&c.payload, &mut x, wu, hu, grey)
                    .map_err(|e| c.malformed(e))?;
            }
            let mut planes = output_planes(&x, grey);
            if let Some(c) = &filter_chunk {
                filter::apply(&c.payload, &mut planes, if grey { 1 } else { 3 }, wu, hu)
                    .map_err(|e| c.malformed(e))?;
            }
            Ok(planes)
        })?;
        let alpha_at = |i: usize| alpha.as_ref().map_or(255, |a| a[i]);
        let n = wu * hu;
        let img = if grey {
            let mut v = Vec::with_capacity(n * 2);
            for (i, &g) in planes.iter().enumerate() {
                v.push(g);
                if has_alpha {
                    v.push(alpha_at(i));
                }
            }
            if has_alpha {
                image::GrayAlphaImage::from_raw(w, h, v).map(image::DynamicImage::ImageLumaA8)
            } else {
                image::GrayImage::from_raw(w, h, v).map(image::DynamicImage::ImageLuma8)
            }
        } else {
            let ch = if has_alpha { 4 } else { 3 };
            let mut v = vec![0u8; n * ch];
            for i in 0..n {
                for c in 0..3 {
                    v[i * ch + c] = planes[c * n + i];
                }
                if has_alpha {
                    v[i * 4 + 3] = alpha_at(i);
                }
            }
            if has_alpha {
                image::RgbaImage::from_raw(w, h, v).map(image::DynamicImage::ImageRgba8)
            } else {
                image::RgbImage::from_raw(w, h, v).map(image::DynamicImage::ImageRgb8)
            }
        }
        .ok_or_else(|| Error::codec("image", "buffer size"))?;
        let format = output_format(opts.params.get(FORMAT_PARAM).map(String::as_str));
        dst.write_all(&write_image(img, format, icc)?)?;
        Ok(())
    }

    fn describe(&self, header: &Header) -> Option<String> {
        let p = &header.params;
        if p.len() != 5 || p[0] != PARAMS_VERSION {
            return None;
        }
        let arch = match p[4] {
            c if c == Arch::Checkerboard.code() => "checkerboard context",
            c if c == Arch::ChannelCheckerboard.code() => "channel-group checkerboard context",
            c if c == Arch::MeanScale.code() => "mean-scale",
            _ => "unknown entropy model",
        };
        let mut parts = vec![
            format!("level {} of {}", u32::from(p[1]) + 1, p[2]),
            arch.to_string(),
        ];
        for (bit, what) in [
            (FLAG_RESIDUAL, "residual layer"),
            (FLAG_FILTER, "restoration filter"),
            (FLAG_ALPHA, "alpha plane"),
            (FLAG_ICC, "ICC profile"),
        ] {
            if p[3] & bit != 0 {
                parts.push(format!("+ {what}"));
            }
        }
        Some(parts.join(", "))
    }

    fn decodes_transformed(&self, _header: &Header, _opts: &DecodeOptions) -> bool {
        // Lossy: the output is a new image file, never the original's bytes.
        true
    }
}
