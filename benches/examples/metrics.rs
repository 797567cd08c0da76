//! Prints lcodec-bench's metrics of a decoded image against its reference, as one JSON line
//! (used by `benches/scripts/check_metrics.py` to compare with scikit-image and pytorch_msssim).
//!
//!     cargo run -p lcodec-bench --example metrics -- reference.png decoded.ppm

use anyhow::Context;
use lcodec_bench::{media, metrics};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [reference, decoded] = args.as_slice() else {
        anyhow::bail!("usage: metrics REFERENCE DECODED");
    };
    let a = media::decode_rgb8(&std::fs::read(reference).context("reading the reference")?)?;
    let b = media::decode_rgb8(&std::fs::read(decoded).context("reading the decoded image")?)?;
    let psnr = metrics::psnr(&a, &b).context("shapes differ")?;
    let ssim = metrics::ssim(&a, &b).context("too small for SSIM")?;
    let ms_ssim = metrics::ms_ssim(&a, &b).context("too small for MS-SSIM")?;
    println!("{{\"psnr\": {psnr:.10}, \"ssim\": {ssim:.10}, \"ms_ssim\": {ms_ssim:.10}}}");
    Ok(())
}
