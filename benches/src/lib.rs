//! lcodec-bench: the rate-distortion sweep harness behind `lcodec sweep` (peers, metrics,
//! CSV, SVG, BD-rate).
#![forbid(unsafe_code)]

use std::path::PathBuf;

/// Arguments of `lcodec sweep`.
#[derive(clap::Args, Debug, Clone)]
pub struct SweepArgs {
    /// Kind of data / lcodec codec to sweep: image, audio, video, lidar, log, text, tensor, raw.
    #[arg(long)]
    pub codec: String,
    /// Folder (or file) of inputs.
    #[arg(long)]
    pub data: PathBuf,
    /// Comma-separated quality levels for lcodec.
    #[arg(long, value_delimiter = ',')]
    pub quality: Vec<u32>,
    /// Comma-separated peer codecs to run side by side.
    #[arg(long, value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Output folder for the CSV, SVG plots and summary.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs a sweep (not implemented yet).
///
/// # Errors
/// Always, until the harness lands.
pub fn run_sweep(args: &SweepArgs) -> anyhow::Result<()> {
    anyhow::bail!("sweep is not implemented yet ({})", args.codec)
}
