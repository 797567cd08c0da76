//! lcodec-bench: the rate-distortion sweep harness behind `lcodec sweep` — lcodec and
//! peer codecs measured side by side on the same inputs, with metrics, a CSV, SVG plots
//! and BD-rates.
//!
//! The library API runs without clap:
//!
//! ```no_run
//! use lcodec_bench::{DataKind, SweepConfig};
//!
//! let mut cfg = SweepConfig::new(DataKind::Image, "/data/kodak");
//! cfg.qualities = vec![1, 3, 5];
//! cfg.peers = vec!["jpeg".into(), "webp".into()];
//! let results = lcodec_bench::sweep(&cfg, &lcodec::Registry::with_enabled())?;
//! lcodec_bench::write_outputs(&results, std::path::Path::new("sweep-out"), Some("jpeg"))?;
//! # Ok::<(), anyhow::Error>(())
//! ```
#![forbid(unsafe_code)]
// Tests may unwrap: a panic there is a test failure with its message.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::collections::BTreeMap;
use std::path::PathBuf;

pub mod bdrate;
pub mod media;
pub mod metrics;
pub mod peers;
pub mod report;
mod run;

pub use report::{Curve, Outputs, write_outputs};
pub use run::sweep;

/// The kind of data a sweep runs on (`--codec KIND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// Still images (PNG/PPM); lossy; bpp, PSNR, MS-SSIM.
    Image,
    /// Audio (WAV, FLAC); bits per sample, kbit/s, SNR, lossless exactness.
    Audio,
    /// Video (Y4M 4:2:0); bpp, PSNR-YUV, MS-SSIM on luma.
    Video,
    /// LiDAR point clouds (KITTI `.bin` float32 x,y,z,i); bits per point, largest
    /// coordinate error, mean and largest point distance.
    Lidar,
    /// Log files; lossless.
    Log,
    /// Text; lossless.
    Text,
    /// Model weights (safetensors); lossless.
    Tensor,
    /// Any bytes; lossless.
    Raw,
}

impl DataKind {
    /// Every kind, in `--help` order.
    pub const ALL: [DataKind; 8] = [
        DataKind::Image,
        DataKind::Audio,
        DataKind::Video,
        DataKind::Lidar,
        DataKind::Log,
        DataKind::Text,
        DataKind::Tensor,
        DataKind::Raw,
    ];

    /// Name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DataKind::Image => "image",
            DataKind::Audio => "audio",
            DataKind::Video => "video",
            DataKind::Lidar => "lidar",
            DataKind::Log => "log",
            DataKind::Text => "text",
            DataKind::Tensor => "tensor",
            DataKind::Raw => "raw",
        }
    }

    /// Parses a command-line name.
    ///
    /// # Errors
    /// An unknown name (the message lists the valid ones).
    pub fn parse(s: &str) -> anyhow::Result<DataKind> {
        DataKind::ALL
            .iter()
            .copied()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<_> = DataKind::ALL.iter().map(|k| k.name()).collect();
                anyhow::anyhow!("unknown kind {s:?} (expected one of: {})", names.join(", "))
            })
    }

    /// Whether every codec on this kind must restore the input byte for byte.
    pub fn is_lossless(self) -> bool {
        matches!(
            self,
            DataKind::Log | DataKind::Text | DataKind::Tensor | DataKind::Raw
        )
    }

    /// lcodec codec names tried for this kind, in order (the first found in the registry is used).
    pub fn lcodec_codecs(self) -> &'static [&'static str] {
        match self {
            DataKind::Image => &["image"],
            DataKind::Audio => &["audio"],
            DataKind::Video => &["video"],
            DataKind::Lidar => &["lidar"],
            DataKind::Log => &["log"],
            DataKind::Text => &["text", "text-cm"],
            DataKind::Tensor => &["tensor"],
            DataKind::Raw => &["raw"],
        }
    }

    /// Peers run when `--peers` is not given.
    pub fn default_peers(self) -> &'static [&'static str] {
        match self {
            DataKind::Image => &["jpeg", "webp", "avif", "jxl"],
            DataKind::Audio => &["flac", "opus"],
            DataKind::Video => &["x264", "x265"],
            DataKind::Lidar => &["laszip", "draco"],
            _ => &["gzip", "bzip2", "xz", "zstd", "zstd-ultra", "brotli"],
        }
    }

    /// Anchor for BD-rates / size ratios when `--anchor` is not given.
    pub fn default_anchor(self) -> &'static str {
        match self {
            DataKind::Image => "jpeg",
            DataKind::Audio => "opus",
            DataKind::Video => "x264",
            DataKind::Lidar => "laszip",
            _ => "xz",
        }
    }

    /// Name of the rate column (`bpp`, `bits_per_byte`, `bits_per_sample`, `bits_per_point`).
    pub fn rate_name(self) -> &'static str {
        match self {
            DataKind::Image | DataKind::Video => "bpp",
            DataKind::Audio => "bits_per_sample",
            DataKind::Lidar => "bits_per_point",
            _ => "bits_per_byte",
        }
    }

    /// Names of the quality metrics of this kind (higher = better, except `*_error`).
    pub fn metric_names(self) -> &'static [&'static str] {
        match self {
            DataKind::Image => &["psnr", "ms_ssim"],
            DataKind::Video => &["psnr_yuv", "psnr_y", "psnr_u", "psnr_v", "ms_ssim_y"],
            DataKind::Audio => &["kbps", "snr_db"],
            DataKind::Lidar => &["max_error", "mean_error", "max_distance"],
            _ => &[],
        }
    }

    /// Metrics plotted against the rate and used for BD-rates (higher = better).
    pub fn rd_metrics(self) -> &'static [&'static str] {
        match self {
            DataKind::Image => &["psnr", "ms_ssim"],
            DataKind::Video => &["psnr_yuv", "ms_ssim_y"],
            DataKind::Audio => &["snr_db"],
            _ => &[],
        }
    }
}

impl std::fmt::Display for DataKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything a sweep needs, without clap.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// What the inputs are.
    pub kind: DataKind,
    /// A folder (searched recursively, files in name order) or one file.
    pub data: PathBuf,
    /// Quality levels (lcodec's `--quality`; peers map them, see [`peers`]). Empty: one
    /// run at each codec's default.
    pub qualities: Vec<u32>,
    /// Peer names (see [`peers::PEERS`]); missing tools are skipped with a note.
    pub peers: Vec<String>,
    /// lcodec codec names to run; empty = the kind's own codec (for lossless kinds, `raw`
    /// when the kind's codec is not built yet).
    pub lcodec: Vec<String>,
    /// Extra lcodec codec parameters (`-p key=value`).
    pub params: BTreeMap<String, String>,
    /// Use at most this many inputs (after sorting by name).
    pub limit: Option<usize>,
    /// Jobs run at once (0 = all cores).
    pub threads: usize,
    /// Threads inside each codec run, lcodec and peers alike (default 1, so speeds compare).
    pub codec_threads: usize,
    /// Compute MS-SSIM (the slowest metric).
    pub ms_ssim: bool,
    /// Show a progress bar (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Print notes (skipped peers, missing codecs) to stderr as they happen.
    pub verbose: bool,
    /// Published curves to plot and compare with (CompressAI results JSON, see
    /// [`report::parse_reference`]).
    pub references: Vec<PathBuf>,
}

impl SweepConfig {
    /// A configuration with defaults: no quality levels, the kind's default peers, all
    /// cores for jobs, one thread per codec run, MS-SSIM on, no progress bar.
    pub fn new(kind: DataKind, data: impl Into<PathBuf>) -> Self {
        SweepConfig {
            kind,
            data: data.into(),
            qualities: Vec::new(),
            peers: kind.default_peers().iter().map(|s| s.to_string()).collect(),
            lcodec: Vec::new(),
            params: BTreeMap::new(),
            limit: None,
            threads: 0,
            codec_threads: 1,
            ms_ssim: true,
            progress: false,
            verbose: false,
            references: Vec::new(),
        }
    }
}

/// One measurement: one input coded by one codec at one setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Input path relative to `--data` (its file name when `--data` is a file).
    pub file: String,
    /// `lcodec-<codec>` or the peer's name.
    pub codec: String,
    /// The codec's own setting (`q3`, `q30`, `crf26`, `-9`).
    pub setting: String,
    /// The sweep quality level this row belongs to (`None` for fixed-setting peers).
    pub level: Option<u32>,
    /// Real compressed size in bytes (the whole file the tool wrote, or the whole `.lc`).
    pub bytes: u64,
    /// Size of the original in bytes.
    pub original_bytes: u64,
    /// Rate denominator: pixels (× frames), samples, points, or bytes of original.
    pub units: f64,
    /// Metric values by name ([`DataKind::metric_names`]).
    pub metrics: BTreeMap<String, f64>,
    /// For codecs that claim to be lossless: whether the round trip was exact.
    pub exact: Option<bool>,
    /// Encode wall time in ms (in-process for lcodec; process spawn to exit for peers).
    pub encode_ms: f64,
    /// Decode wall time in ms.
    pub decode_ms: f64,
    /// Why the measurement failed, if it did.
    pub error: Option<String>,
}

impl Row {
    /// Bits per rate unit (bpp, bits per byte, …).
    pub fn rate(&self) -> f64 {
        if self.units > 0.0 {
            self.bytes as f64 * 8.0 / self.units
        } else {
            f64::NAN
        }
    }
    /// Original size over compressed size.
    pub fn ratio(&self) -> f64 {
        if self.bytes > 0 {
            self.original_bytes as f64 / self.bytes as f64
        } else {
            f64::NAN
        }
    }
    /// Whether the measurement succeeded (no error and, for lossless codecs, exact).
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.exact != Some(false)
    }
}

/// What a sweep measured.
#[derive(Debug, Clone)]
pub struct SweepResults {
    /// The kind swept.
    pub kind: DataKind,
    /// Inputs, in order.
    pub inputs: Vec<String>,
    /// Codecs measured (lcodec ones first, then peers in `--peers` order).
    pub codecs: Vec<String>,
    /// Command lines / descriptions of the codecs, for the summary.
    pub codec_commands: BTreeMap<String, String>,
    /// Rows ordered by input, codec, level.
    pub rows: Vec<Row>,
    /// Notes (skipped peers, missing lcodec codecs, failures).
    pub notes: Vec<String>,
    /// Threads per codec run.
    pub codec_threads: usize,
    /// Jobs run at once.
    pub threads: usize,
    /// Published curves given with `--reference` (plotted and compared, no CSV rows).
    pub references: Vec<Curve>,
}

/// Arguments of `lcodec sweep`.
#[derive(clap::Args, Debug, Clone)]
pub struct SweepArgs {
    /// Kind of data / lcodec codec to sweep: image, audio, video, lidar, log, text, tensor, raw.
    #[arg(long, value_name = "KIND")]
    pub codec: String,
    /// Folder (searched recursively) or file of inputs.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Comma-separated quality levels (lcodec's --quality; 1..8 map to each peer's range,
    /// larger values are passed as the peer's own quality).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub quality: Vec<u32>,
    /// Comma-separated peer codecs (default: the kind's usual peers). Known: jpeg, webp,
    /// avif, jxl, gzip, bzip2, xz, xz-9e, zstd, zstd-ultra, brotli, lz4, flac, opus, x264, x265,
    /// laszip, laszip-xyz, draco (LiDAR peers take `-p precision=P`, default 0.001).
    /// `none` runs lcodec alone.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub peers: Vec<String>,
    /// Output folder for results.csv, the SVG plots and summary.md (created if needed).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Curve the BD-rates (or size ratios for lossless kinds) are measured against
    /// (default: jpeg for images, xz for lossless kinds, opus, x264).
    #[arg(long, value_name = "NAME")]
    pub anchor: Option<String>,
    /// Jobs run at once (0 = all cores).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub threads: usize,
    /// Threads inside each codec run, lcodec and peers alike.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub codec_threads: usize,
    /// Use only the first N inputs (in name order).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Comma-separated lcodec codec names to run instead of the kind's own (e.g. `log,raw`).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub lcodec: Vec<String>,
    /// lcodec codec parameter KEY=VALUE (repeatable).
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Skip MS-SSIM (the slowest metric).
    #[arg(long)]
    pub no_ms_ssim: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Published RD curve(s) to plot and compute BD-rates with, in CompressAI's results
    /// JSON format (e.g. its results/image/kodak/vtm.json); comma-separated or repeated.
    /// Usable as `--anchor NAME` by the "name" in the file.
    #[arg(long, value_delimiter = ',', value_name = "FILE")]
    pub reference: Vec<PathBuf>,
}

impl SweepArgs {
    /// The library configuration these arguments describe.
    ///
    /// # Errors
    /// An unknown kind, a malformed `-p` parameter.
    pub fn to_config(&self) -> anyhow::Result<SweepConfig> {
        let kind = DataKind::parse(&self.codec)?;
        let mut cfg = SweepConfig::new(kind, self.data.clone());
        cfg.qualities = self.quality.clone();
        if !self.peers.is_empty() {
            cfg.peers = self
                .peers
                .iter()
                .filter(|p| !p.is_empty() && *p != "none")
                .cloned()
                .collect();
        }
        cfg.lcodec = self.lcodec.clone();
        for p in &self.params {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("parameter {p:?} is not KEY=VALUE"))?;
            cfg.params.insert(k.to_string(), v.to_string());
        }
        cfg.limit = self.limit;
        cfg.threads = self.threads;
        cfg.codec_threads = self.codec_threads.max(1);
        cfg.ms_ssim = !self.no_ms_ssim;
        cfg.progress = !self.quiet;
        cfg.verbose = true;
        cfg.references = self.reference.clone();
        Ok(cfg)
    }
}

/// Runs `lcodec sweep`: measures, writes results.csv, the SVG plots and summary.md into
/// `--out`, and prints where they are.
///
/// # Errors
/// Bad arguments, no inputs, unwritable output folder. Failures of single codec runs are
/// recorded in the CSV and the summary, not returned.
pub fn run_sweep(args: &SweepArgs) -> anyhow::Result<()> {
    let cfg = args.to_config()?;
    let registry = lcodec::Registry::with_enabled();
    let results = sweep(&cfg, &registry)?;
    let anchor = args.anchor.as_deref();
    let out = write_outputs(&results, &args.out, anchor)?;
    let failed = results.rows.iter().filter(|r| !r.ok()).count();
    eprintln!(
        "sweep: {} inputs x {} codecs, {} rows ({} failed) -> {}",
        results.inputs.len(),
        results.codecs.len(),
        results.rows.len(),
        failed,
        out.csv.display()
    );
    for p in &out.plots {
        eprintln!("  plot: {}", p.display());
    }
    eprintln!("  summary: {}", out.summary.display());
    Ok(())
}
