//! `lcodec sweep` without the CLI crate: the same arguments, for working on the harness.
//!
//!     cargo run -p lcodec-bench --release --example sweep -- --codec image \
//!         --data ../shared/data/images/kodak --limit 3 --quality 1,3,5 --peers jpeg,webp --out /tmp/sweep

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "sweep",
    about = "Rate-distortion sweep of lcodec and peer codecs"
)]
struct Cli {
    #[command(flatten)]
    args: lcodec_bench::SweepArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    lcodec_bench::run_sweep(&cli.args)
}
