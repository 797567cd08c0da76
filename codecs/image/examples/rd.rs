//! Real-bitstream rate-distortion of a weights file on some images, every quality level:
//!
//!     cargo run --release -p lcodec-image --example rd -- WEIGHTS.safetensors IMG...
//!
//! Prints per image and level: payload bytes, bpp (payload bits / pixels; the container
//! adds a fixed ~100 bytes), PSNR (RGB, 8-bit), encode and decode ms. With
//! `LCODEC_RD_PARTS=1`, also the time of each decoder stage on the first image.
use lcodec_image::ImageCodec;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: rd WEIGHTS IMG...");
        std::process::exit(2);
    }
    let weights = std::fs::read(&args[0]).expect("read weights");
    let codec = ImageCodec::try_new(&weights, "rd").expect("load weights");
    let levels = codec.levels();
    let mut sums = vec![(0.0f64, 0.0f64, 0usize); levels];
    for path in &args[1..] {
        let img = image::open(path).expect("read image").to_rgb8();
        let (w, h) = (img.width(), img.height());
        let rgb = img.into_raw();
        for (q, sum) in sums.iter_mut().enumerate() {
            let t0 = Instant::now();
            let payload = codec.encode_rgb(&rgb, w, h, q).expect("encode");
            let te = t0.elapsed().as_secs_f64() * 1e3;
            let t1 = Instant::now();
            let out = codec.decode_rgb(&payload, w, h, q).expect("decode");
            let td = t1.elapsed().as_secs_f64() * 1e3;
            let mse: f64 = rgb
                .iter()
                .zip(&out)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                .sum::<f64>()
                / rgb.len() as f64;
            let psnr = 10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10();
            let bpp = payload.len() as f64 * 8.0 / f64::from(w * h);
            println!(
                "{path} q={} bytes={} bpp={bpp:.4} psnr={psnr:.3} enc_ms={te:.0} dec_ms={td:.0}",
                q + 1,
                payload.len()
            );
            sum.0 += bpp;
            sum.1 += psnr;
            sum.2 += 1;
        }
    }
    if std::env::var_os("LCODEC_RD_PARTS").is_some() {
        parts(&codec, &args[1]);
    }
    for (q, (b, p, n)) in sums.iter().enumerate() {
        let n = *n as f64;
        println!("mean q={} bpp={:.4} psnr={:.3}", q + 1, b / n, p / n);
    }
}

/// Times the decoder's stages (deterministic hyper-synthesis and entropy parameters,
/// synthesis) on one image.
fn parts(codec: &ImageCodec, path: &str) {
    use lcodec_models::hyperprior::Z_STRIDE;
    let m = codec.default_model().expect("model");
    let net = m.model();
    let img = image::open(path).expect("read image").to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (pw, ph) = (
        w.div_ceil(Z_STRIDE) * Z_STRIDE,
        h.div_ceil(Z_STRIDE) * Z_STRIDE,
    );
    let z = ndarray::Array3::<f32>::zeros((net.config().n, ph / Z_STRIDE, pw / Z_STRIDE));
    let t = Instant::now();
    let hyper = net.hyper_params(z.view()).expect("h_s");
    println!(
        "parts: h_s (deterministic) {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let (mc, yh, yw) = (net.config().m, ph / 16, pw / 16);
    let y_hat = ndarray::Array3::<f32>::zeros((mc, yh, yw));
    if net.config().arch.has_context() {
        let t = Instant::now();
        let mut y_hat = y_hat.clone();
        net.run_context_steps(hyper.view(), &mut y_hat, |_, _, _, _| Ok(()))
            .expect("context steps");
        println!(
            "parts: context steps (context + ep) {:.0} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    let t = Instant::now();
    net.synthesis(y_hat.view(), 0).expect("g_s");
    println!("parts: g_s {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
}
