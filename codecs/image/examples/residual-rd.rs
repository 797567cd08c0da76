//! Rate of the residual layer alone, for working on its entropy coding:
//!
//!     cargo run --release -p lcodec-image --example residual-rd -- WEIGHTS LEVEL STEPS IMG...
//!
//! `LEVEL` is the 1-based learned level under the layer, `STEPS` a comma-separated list of
//! quantiser steps. The learned reconstruction of each image is computed once and cached
//! beside the system's temporary directory (`lcodec-residual-cache/`, keyed by the weights'
//! hash, the level and the image name), so runs that change only the residual layer skip
//! the network. Prints per step: residual bytes, learned-payload bytes, total bpp and
//! PSNR. `RESIDUAL_VERSION=1` or `2` writes an older bitstream version, for comparison
//! (version 3 quantises differently: compare curves, not single steps).
//!
//! With `RESIDUAL_INIT_OUT=FILE` it learns version 5's starting context table instead:
//! the images are coded in the order given, every step of each, from the flat start,
//! each coding starting where the previous one left the contexts, and the final state
//! is written to `FILE` (the built-in table is `src/residual_init.bin`, made this way;
//! the command is in `models/TRAINING.md`).
use lcodec_image::{ImageCodec, residual};
use ndarray::Array3;
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: residual-rd WEIGHTS LEVEL STEPS IMG...");
        std::process::exit(2);
    }
    let weights = std::fs::read(&args[0]).expect("read weights");
    let codec = ImageCodec::try_new(&weights, "rd").expect("load weights");
    let model = codec.default_model().expect("model");
    let level: usize = args[1].parse().expect("level");
    let steps: Vec<f32> = args[2]
        .split(',')
        .map(|s| s.parse().expect("step"))
        .collect();
    let hash: String = model
        .model()
        .weights_hash()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let version: u8 = std::env::var("RESIDUAL_VERSION")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(residual::VERSION);
    let cache = std::env::temp_dir().join("lcodec-residual-cache");
    std::fs::create_dir_all(&cache).expect("cache dir");
    let mut tot = vec![(0usize, 0usize, 0.0f64, 0usize); steps.len()];
    let init_out = std::env::var_os("RESIDUAL_INIT_OUT").map(PathBuf::from);
    let mut carry = Vec::new();
    for path in &args[3..] {
        let img = image::open(path).expect("read image").to_rgb8();
        let (w, h) = (img.width(), img.height());
        let rgb = img.into_raw();
        let name = PathBuf::from(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = cache.join(format!("{hash}-{level}-{name}.f32"));
        let cached = std::fs::read(&file)
            .ok()
            .and_then(|b| parse_cache(&b, w, h));
        let (base, recon) = cached.unwrap_or_else(|| {
            let (p, r) = model
                .encode_rgb_recon(&rgb, w, h, level - 1)
                .expect("encode");
            let mut b = (p.len() as u64).to_le_bytes().to_vec();
            for v in &r {
                b.extend_from_slice(&v.to_le_bytes());
            }
            std::fs::write(&file, b).expect("write cache");
            (p.len(), r)
        });
        for (si, &step) in steps.iter().enumerate() {
            let grey = false;
            if init_out.is_some() {
                let (w, h) = (w as usize, h as usize);
                residual::encode_version(
                    &rgb,
                    recon.view(),
                    w,
                    h,
                    grey,
                    step,
                    residual::VERSION,
                    Some(&mut carry),
                )
                .expect("residual encode");
                continue;
            }
            let chunk = residual::encode_version(
                &rgb,
                recon.view(),
                w as usize,
                h as usize,
                grey,
                step,
                version,
                None,
            )
            .expect("residual encode");
            let mut x = recon.clone();
            residual::decode_into(&chunk, &mut x, w as usize, h as usize, grey)
                .expect("residual decode");
            let mse: f64 = x
                .indexed_iter()
                .map(|((c, yy, xx), &v)| {
                    let d = f64::from((v * 255.0).round().clamp(0.0, 255.0))
                        - f64::from(rgb[(yy * w as usize + xx) * 3 + c]);
                    d * d
                })
                .sum::<f64>()
                / rgb.len() as f64;
            let psnr = 10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10();
            let bpp = (base + chunk.len()) as f64 * 8.0 / f64::from(w * h);
            println!(
                "{name} step={step} residual={} base={base} bpp={bpp:.4} psnr={psnr:.3}",
                chunk.len()
            );
            let t = &mut tot[si];
            t.0 += chunk.len();
            t.1 += base;
            t.2 += psnr;
            t.3 += 1;
        }
    }
    if let Some(out) = init_out {
        std::fs::write(&out, &carry).expect("write context table");
        println!("context table: {} bytes -> {}", carry.len(), out.display());
        return;
    }
    for (si, (r, b, p, n)) in tot.iter().enumerate() {
        println!(
            "total step={} residual={r} base={b} psnr={:.3}",
            steps[si],
            p / *n as f64
        );
    }
}
/// `(base bytes, reconstruction)` from a cache file, if it fits the image.
fn parse_cache(b: &[u8], w: u32, h: u32) -> Option<(usize, Array3<f32>)> {
    let n = 3 * (w * h) as usize;
    if b.len() != 8 + 4 * n {
        return None;
    }
    let base = u64::from_le_bytes(b[..8].try_into().ok()?) as usize;
    let v: Vec<f32> = b[8..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some((
        base,
        Array3::from_shape_vec((3, h as usize, w as usize), v).ok()?,
    ))
}
