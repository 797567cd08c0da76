//! lcodec-image: the learned image codec — mean-scale hyperprior with per-quality gains
//! (see `lcodec_models::hyperprior`), entropy-coded with `lcodec-entropy`.
//!
//! Bitstream (codec version 1), one chunk per image:
//!
//! * header params: `[version=1, quality_index, n_levels, 0]` + model id and weights
//!   hash in the container's `ModelRef`; metadata width / height / channels = 3 / depth 8.
//! * payload: one range-coded stream: `ẑ` (channel-major, row-major) under the model's
//!   integer factorized tables, then `q = ⌊y - μ⌉` under the fixed quantized Gaussian
//!   tables at `scale_index(max(σ, 0.11))`, where `(μ, σ) = h_s(ẑ)` runs on the
//!   deterministic kernels. Decoding rebuilds `ŷ = q + μ` and `x̂ = g_s(ŷ)`.
//!
//! Input: any format the `image` crate reads here (PNG, JPEG, BMP, TIFF, WebP, PNM);
//! colour is coded as RGB8 (16-bit input is reduced to 8 bits, alpha is dropped — both
//! still to do properly). Sides are padded to multiples of 64 by edge replication and
//! cropped back on decode. Output: PNG.
#![deny(unsafe_code)]

use std::io::{Read, Write};
use std::sync::Arc;

use lcodec_core::container::{ChunkSink, ChunkSource, Header, ModelRef};
use lcodec_core::{
    Codec, CodecId, CodecInfo, Confidence, DecodeOptions, EncodeOptions, Error, Kind, Metadata,
    Result,
};
use lcodec_entropy::{Categorical, Decode, Encode, Family, RangeDecoder, RangeEncoder, tables};
use lcodec_models::hyperprior::{MeanScaleHyperprior, SCALE_BOUND, Z_STRIDE};
use ndarray::{Array3, s};

static INFO: CodecInfo = CodecInfo {
    id: CodecId::IMAGE,
    name: "image",
    version: 1,
    lossless: false,
    kind: Kind::Image,
    description: "learned image codec (mean-scale hyperprior), --quality 1..N (higher = better)",
};

/// Bitstream version written in the codec parameters.
const PARAMS_VERSION: u8 = 1;
/// Largest image side accepted (pixels).
pub const MAX_SIDE: u32 = 1 << 15;

fn ent(e: lcodec_entropy::Error) -> Error {
    Error::codec("image", e.to_string())
}

/// The learned image codec with one loaded model.
#[derive(Clone)]
pub struct ImageCodec {
    model: Arc<MeanScaleHyperprior>,
    model_id: String,
    z_models: Arc<Vec<Categorical>>,
}

impl std::fmt::Debug for ImageCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageCodec")
            .field("model_id", &self.model_id)
            .finish()
    }
}

impl ImageCodec {
    /// A codec using the weights file `weights` (safetensors, as exported by
    /// `lcodec-train export`), named `model_id` in the files it writes.
    ///
    /// # Errors
    /// When the weights do not load (see `MeanScaleHyperprior::from_bytes`).
    pub fn try_new(weights: &[u8], model_id: &str) -> Result<Self> {
        let model = MeanScaleHyperprior::from_bytes(weights)?;
        let z_models = model
            .z_tables()
            .freqs
            .iter()
            .map(|f| {
                let counts: Vec<u64> = f.iter().map(|&v| u64::from(v)).collect();
                Categorical::from_counts(&counts).map_err(ent)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            model: Arc::new(model),
            model_id: model_id.to_string(),
            z_models: Arc::new(z_models),
        })
    }

    /// The loaded model.
    pub fn model(&self) -> &MeanScaleHyperprior {
        &self.model
    }

    fn model_ref(&self) -> ModelRef {
        ModelRef {
            id: self.model_id.clone(),
            weights_hash: self.model.weights_hash().to_vec(),
        }
    }

    /// Number of quality levels (`--quality 1..=levels`).
    pub fn levels(&self) -> usize {
        self.model.config().levels()
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

    /// Encodes with the analysis transforms on libtorch (`net`, e.g. on a GPU, made with
    /// `TchHyperprior::from_exported` from the same weights). Quantisation, the
    /// hyper-synthesis and the entropy coding stay on the deterministic CPU path, so the
    /// file decodes bit-exactly with the CPU decoder.
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
    /// hyper-synthesis of the coded `ẑ`).
    ///
    /// # Errors
    /// Shape mismatch with the model, or an entropy-coder failure.
    pub fn encode_latents(
        &self,
        y: &Array3<f32>,
        z: &Array3<f32>,
    ) -> Result<(Vec<u8>, Array3<f32>)> {
        let m = &self.model;
        let zt = m.z_tables();
        if z.dim().0 != zt.offsets.len() {
            return Err(Error::InvalidArgument(format!(
                "z has {} channels",
                z.dim().0
            )));
        }
        // ẑ = round(z) clamped into each channel's table range.
        let mut z_hat = z.mapv(f32::round);
        for (c, mut plane) in z_hat.outer_iter_mut().enumerate() {
            let lo = zt.offsets[c] as f32;
            let hi = (zt.offsets[c] + zt.freqs[c].len() as i32 - 1) as f32;
            plane.mapv_inplace(|v| if v.is_nan() { lo } else { v.clamp(lo, hi) });
        }
        let mut enc = RangeEncoder::new();
        for (c, plane) in z_hat.outer_iter().enumerate() {
            for &v in plane.iter() {
                let sym = (v as i32 - zt.offsets[c]) as usize;
                enc.encode(sym, &self.z_models[c]).map_err(ent)?;
            }
        }
        let (means, scales) = m.hyper_synthesis(z_hat.view())?;
        if means.dim() != y.dim() {
            return Err(Error::InvalidArgument(format!(
                "y is {:?}, the hyperprior predicts {:?}",
                y.dim(),
                means.dim()
            )));
        }
        let gauss = tables(Family::Gaussian);
        let mut y_hat = Array3::<f32>::zeros(y.dim());
        for (((o, &yv), &mu), &sc) in y_hat
            .iter_mut()
            .zip(y.iter())
            .zip(means.iter())
            .zip(scales.iter())
        {
            // Values beyond ±1e9 cannot occur for a sane model; clamp anyway (NaN -> 0).
            let q = if (yv - mu).is_nan() {
                0
            } else {
                (yv - mu).round().clamp(-1e9, 1e9) as i32
            };
            enc.encode_integer(q, table_for(gauss, sc)).map_err(ent)?;
            *o = q as f32 + mu;
        }
        Ok((enc.finish(), y_hat))
    }

    /// Decodes the payload of a `width` x `height` image to `ŷ`.
    ///
    /// # Errors
    /// [`Error::Codec`] for a damaged payload.
    pub fn decode_latents(&self, payload: &[u8], width: u32, height: u32) -> Result<Array3<f32>> {
        let (w, h) = (width as usize, height as usize);
        if w == 0 || h == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(Error::InvalidArgument(format!(
                "image size {width}x{height}"
            )));
        }
        let pw = w.div_ceil(Z_STRIDE) * Z_STRIDE;
        let ph = h.div_ceil(Z_STRIDE) * Z_STRIDE;
        let m = &self.model;
        let zt = m.z_tables();
        let mut dec = RangeDecoder::new(payload).map_err(ent)?;
        let (zh, zw) = (ph / Z_STRIDE, pw / Z_STRIDE);
        let mut z_hat = Array3::<f32>::zeros((m.config().n, zh, zw));
        for (c, mut plane) in z_hat.outer_iter_mut().enumerate() {
            for v in plane.iter_mut() {
                let sym = dec.decode(&self.z_models[c]).map_err(ent)?;
                *v = (zt.offsets[c] + sym as i32) as f32;
            }
        }
        let (means, scales) = m.hyper_synthesis(z_hat.view())?;
        let gauss = tables(Family::Gaussian);
        let mut y_hat = Array3::<f32>::zeros(means.dim());
        for ((o, &mu), &sc) in y_hat.iter_mut().zip(means.iter()).zip(scales.iter()) {
            let q = dec.decode_integer(table_for(gauss, sc)).map_err(ent)?;
            *o = q as f32 + mu;
        }
        dec.finish().map_err(ent)?;
        Ok(y_hat)
    }

    /// Decodes a payload made by [`ImageCodec::encode_rgb`] back to RGB8.
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
        let y_hat = self.decode_latents(payload, width, height)?;
        let (w, h) = (width as usize, height as usize);
        let x = self.model.synthesis(y_hat.view(), quality_index)?;
        let x = x.slice(s![.., 0..h, 0..w]);
        let mut out = vec![0u8; 3 * w * h];
        for c in 0..3 {
            for yy in 0..h {
                for xx in 0..w {
                    let v = (x[[c, yy, xx]] * 255.0).round().clamp(0.0, 255.0);
                    out[(yy * w + xx) * 3 + c] = v as u8;
                }
            }
        }
        Ok(out)
    }
}

/// `[3, H', W']` input in `[0, 1]`, sides padded to multiples of 64 by edge replication.
fn padded_input(rgb: &[u8], width: u32, height: u32) -> Result<Array3<f32>> {
    let (w, h) = (width as usize, height as usize);
    if w == 0 || h == 0 || width > MAX_SIDE || height > MAX_SIDE || rgb.len() != 3 * w * h {
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

/// The Gaussian table for a predicted scale (bounded below like in training).
fn table_for(g: &lcodec_entropy::FamilyTables, scale: f32) -> &lcodec_entropy::QuantizedCdf {
    let s = if scale.is_nan() {
        SCALE_BOUND
    } else {
        scale.abs().max(SCALE_BOUND)
    };
    g.nearest(f64::from(s))
}

/// Reads an image with the `image` crate and returns RGB8 pixels.
fn read_rgb(bytes: &[u8]) -> Result<(Vec<u8>, u32, u32)> {
    let img = image::load_from_memory(bytes)
        .map_err(|e| Error::Unsupported(format!("image: cannot read input: {e}")))?;
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(Error::Unsupported(format!(
            "image: size {w}x{h} (sides 1..={MAX_SIDE})"
        )));
    }
    Ok((img.to_rgb8().into_raw(), w, h))
}

impl Codec for ImageCodec {
    fn info(&self) -> &'static CodecInfo {
        &INFO
    }

    fn sniff(&self, head: &[u8], file_name: Option<&str>) -> Option<Confidence> {
        if image::guess_format(head).is_ok() {
            return Some(Confidence::MAGIC);
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
        let (rgb, w, h) = read_rgb(&bytes)?;
        let levels = self.levels();
        let quality = opts.quality.unwrap_or((levels as u32).div_ceil(2).max(1));
        if quality == 0 || quality as usize > levels {
            return Err(Error::InvalidArgument(format!(
                "image: --quality {quality} (expected 1..={levels})"
            )));
        }
        let qi = quality as usize - 1;
        let payload = self.encode_rgb(&rgb, w, h, qi)?;
        let mut meta = Metadata::new(Kind::Image);
        meta.width = w;
        meta.height = h;
        meta.channels = 3;
        meta.bit_depth = 8;
        sink.begin(
            meta,
            self.model_ref(),
            &[PARAMS_VERSION, qi as u8, levels as u8, 0],
        )?;
        let raw_len = u32::try_from(rgb.len()).unwrap_or(u32::MAX);
        sink.push(&payload, raw_len)
    }

    fn decode(
        &self,
        header: &Header,
        src: &mut ChunkSource<'_>,
        dst: &mut dyn Write,
        _opts: &DecodeOptions,
    ) -> Result<()> {
        let p = &header.params;
        if p.len() != 4 || p[0] != PARAMS_VERSION {
            return Err(Error::malformed(
                header.len,
                format!("image: codec parameters {p:?} (expected [1, q, levels, 0])"),
            ));
        }
        let mine = self.model_ref();
        if header.model != mine {
            let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            return Err(Error::ModelMismatch {
                expected: format!("{} ({})", header.model.id, hex(&header.model.weights_hash)),
                found: format!("{} ({})", mine.id, hex(&mine.weights_hash)),
            });
        }
        let qi = p[1] as usize;
        if qi >= self.levels() || p[2] as usize != self.levels() {
            return Err(Error::malformed(
                header.len,
                format!("image: quality index {qi} / {} levels", p[2]),
            ));
        }
        let md = &header.metadata;
        let (w, h) = (md.width, md.height);
        if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE || md.channels != 3 {
            return Err(Error::malformed(
                header.len,
                format!("image: {w}x{h}x{} in the header", md.channels),
            ));
        }
        let chunk = src
            .next_chunk()?
            .ok_or_else(|| Error::truncated(header.len, "image: the image chunk"))?;
        let rgb = self
            .decode_rgb(&chunk.payload, w, h, qi)
            .map_err(|e| chunk.malformed(e))?;
        if src.next_chunk()?.is_some() {
            return Err(Error::malformed(header.len, "image: more than one chunk"));
        }
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&rgb, w, h, image::ExtendedColorType::Rgb8)
            .map_err(|e| Error::codec("image", format!("png: {e}")))?;
        dst.write_all(&png)?;
        Ok(())
    }
}

use image::ImageEncoder as _;
