//! Running a sweep: inputs × codecs × settings, in parallel, each job measuring one real
//! encode and decode.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::media::{self, Audio, Video};
use crate::metrics::{self, Image8};
use crate::peers::{self, Output, Peer, PeerFiles};
use crate::{DataKind, Row, SweepConfig, SweepResults};

/// Lists the inputs: one file, or the files under a folder (recursively, sorted by path),
/// filtered by the extensions that fit the kind.
///
/// # Errors
/// The path does not exist or cannot be read.
pub fn list_inputs(kind: DataKind, data: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(data).with_context(|| format!("{}", data.display()))?;
    if meta.is_file() {
        return Ok(vec![data.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![data.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let p = e?.path();
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() && fits(kind, &p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn ext(p: &Path) -> String {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Data-set paperwork (READMEs, licences, checksums) that a folder sweep leaves out.
fn is_paperwork(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    [
        "readme",
        "source_readme",
        "license",
        "licence",
        "citation",
        "manifest",
        "copying",
    ]
    .iter()
    .any(|k| name.starts_with(k))
        || matches!(ext(p).as_str(), "md" | "sha256")
}

fn fits(kind: DataKind, p: &Path) -> bool {
    let e = ext(p);
    if kind.is_lossless() && is_paperwork(p) {
        return false;
    }
    match kind {
        DataKind::Image => matches!(e.as_str(), "png" | "ppm" | "pnm" | "pgm" | "pam"),
        DataKind::Audio => matches!(e.as_str(), "wav" | "flac" | "ogg" | "mp3" | "opus"),
        DataKind::Video => e == "y4m",
        DataKind::Lidar => e == "bin",
        DataKind::Tensor => !matches!(e.as_str(), "py" | "txt" | "json"),
        // Structured ground-truth tables next to logs are not logs.
        DataKind::Log => !matches!(e.as_str(), "csv" | "json"),
        _ => true,
    }
}

/// The reference an output is compared with.
enum Reference {
    Bytes,
    Image(Image8),
    Audio(Audio),
    Video(Video),
    Points(Vec<[f64; 3]>),
}

/// An input made ready for every codec: its bytes, the files the tools read, the reference.
struct Prepared {
    name: String,
    /// Bytes given to lcodec (and compared with, for lossless kinds).
    bytes: Vec<u8>,
    /// File given to lossless / audio / video peers.
    input: PathBuf,
    ppm: Option<PathBuf>,
    png: Option<PathBuf>,
    reference: Reference,
    units: f64,
    original_bytes: u64,
    sample_rate: Option<u32>,
    _dir: tempfile::TempDir,
}

fn prepare(
    kind: DataKind,
    path: &Path,
    name: String,
    codec_threads: usize,
) -> anyhow::Result<Prepared> {
    let dir = tempfile::Builder::new()
        .prefix("lcodec-sweep-")
        .tempdir()
        .context("creating a temporary folder")?;
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let original_bytes = raw.len() as u64;
    let mut p = Prepared {
        name,
        bytes: Vec::new(),
        input: path.to_path_buf(),
        ppm: None,
        png: None,
        reference: Reference::Bytes,
        units: raw.len() as f64,
        original_bytes,
        sample_rate: None,
        _dir: dir,
    };
    let d = p._dir.path().to_path_buf();
    match kind {
        DataKind::Image => {
            let img =
                media::decode_rgb8(&raw).with_context(|| format!("decoding {}", path.display()))?;
            // Every codec gets the same canonical 8-bit RGB picture: PPM for cjpeg, PNG for the others and lcodec.
            let ppm = d.join("input.ppm");
            std::fs::write(&ppm, media::ppm_bytes(&img))?;
            let png_bytes = media::png_bytes(&img)?;
            let png = d.join("input.png");
            std::fs::write(&png, &png_bytes)?;
            p.units = (img.width * img.height) as f64;
            p.input = png.clone();
            p.ppm = Some(ppm);
            p.png = Some(png);
            p.bytes = png_bytes;
            p.reference = Reference::Image(img);
        }
        DataKind::Audio => {
            let wav = match media::parse_wav(&raw) {
                Ok(_) => raw,
                Err(_) => to_wav(path, &d.join("input.wav"), codec_threads)?,
            };
            let audio = media::parse_wav(&wav)?;
            let input = d.join("input.wav");
            std::fs::write(&input, &wav)?;
            p.units = audio.samples.len() as f64;
            p.sample_rate = Some(audio.sample_rate);
            p.original_bytes = wav.len() as u64;
            p.input = input;
            p.bytes = wav;
            p.reference = Reference::Audio(audio);
        }
        DataKind::Video => {
            let video =
                media::parse_y4m(&raw).with_context(|| format!("reading {}", path.display()))?;
            p.units = (video.width * video.height * video.frames.len()) as f64;
            p.bytes = raw;
            p.reference = Reference::Video(video);
        }
        DataKind::Lidar => {
            let pts = kitti_points(&raw).with_context(|| format!("reading {}", path.display()))?;
            p.units = pts.len() as f64;
            p.bytes = raw;
            p.reference = Reference::Points(pts);
        }
        _ => p.bytes = raw,
    }
    Ok(p)
}

/// KITTI velodyne `.bin`: float32 little-endian x, y, z, reflectance per point.
fn kitti_points(b: &[u8]) -> anyhow::Result<Vec<[f64; 3]>> {
    if b.len() % 16 != 0 || b.is_empty() {
        bail!(
            "{} bytes is not a whole number of KITTI points (16 bytes each)",
            b.len()
        );
    }
    let f = |c: &[u8]| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    Ok(b.chunks_exact(16)
        .map(|c| [f(&c[0..4]), f(&c[4..8]), f(&c[8..12])])
        .collect())
}

/// Converts FLAC (flac) or other audio (ffmpeg) to WAV for the reference.
fn to_wav(src: &Path, dst: &Path, threads: usize) -> anyhow::Result<Vec<u8>> {
    let mut c = if ext(src) == "flac" && peers::which("flac").is_some() {
        let mut c = Command::new("flac");
        c.args(["-d", "-s", "-f", "-o"]).arg(dst).arg(src);
        c
    } else if peers::which("ffmpeg").is_some() {
        let mut c = Command::new("ffmpeg");
        c.args([
            "-nostdin",
            "-y",
            "-loglevel",
            "error",
            "-threads",
            &threads.to_string(),
            "-i",
        ])
        .arg(src)
        .arg(dst);
        c
    } else {
        bail!(
            "{}: needs flac or ffmpeg to convert to WAV (scripts/install-peers.sh)",
            src.display()
        );
    };
    run_tool(&mut c, None)?;
    std::fs::read(dst).with_context(|| format!("reading {}", dst.display()))
}

/// Runs a tool, optionally sending stdout to a file; returns the wall time in ms.
fn run_tool(cmd: &mut Command, stdout_to: Option<&Path>) -> anyhow::Result<f64> {
    cmd.stdin(Stdio::null()).stderr(Stdio::piped());
    match stdout_to {
        Some(p) => {
            cmd.stdout(File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => cmd.stdout(Stdio::null()),
    };
    let start = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim();
        bail!(
            "{} exited with {}: {}",
            cmd.get_program().to_string_lossy(),
            out.status,
            err.lines().last().unwrap_or("")
        );
    }
    Ok(ms)
}

/// A codec the sweep runs.
#[derive(Clone, Copy)]
enum Runner<'r> {
    Lcodec(&'r dyn lcodec::Codec),
    Peer(&'static Peer),
}

impl Runner<'_> {
    fn label(&self) -> String {
        match self {
            Runner::Lcodec(c) => format!("lcodec-{}", c.info().name),
            Runner::Peer(p) => p.name.to_string(),
        }
    }
    fn levels(&self, qualities: &[u32]) -> Vec<Option<u32>> {
        let takes = match self {
            Runner::Lcodec(_) => true,
            Runner::Peer(p) => p.takes_quality,
        };
        if !takes {
            vec![None]
        } else if qualities.is_empty() {
            match self {
                Runner::Lcodec(_) => vec![None],
                // A peer that takes levels runs at the middle level by default.
                Runner::Peer(_) => vec![Some(4)],
            }
        } else {
            qualities.iter().map(|&q| Some(q)).collect()
        }
    }
}

/// Runs the sweep described by `cfg` with lcodec codecs from `registry`.
///
/// Deterministic apart from the times: rows are ordered by input, codec, level whatever
/// the thread count.
///
/// # Errors
/// No inputs, an unknown peer name, or an input that cannot be read. Failures of single
/// codec runs are recorded in their rows, not returned.
pub fn sweep(cfg: &SweepConfig, registry: &lcodec::Registry) -> anyhow::Result<SweepResults> {
    let kind = cfg.kind;
    let notes = Mutex::new(Vec::<String>::new());
    let note = |s: String| {
        if cfg.verbose {
            eprintln!("note: {s}");
        }
        if let Ok(mut n) = notes.lock() {
            n.push(s);
        }
    };

    let mut paths = list_inputs(kind, &cfg.data)?;
    if let Some(l) = cfg.limit {
        paths.truncate(l);
    }
    if paths.is_empty() {
        bail!("no {} inputs under {}", kind, cfg.data.display());
    }
    // Names are paths relative to the folder (the file name when one file is given).
    let is_dir = cfg.data.is_dir();
    let names: Vec<String> = paths
        .iter()
        .map(|p| {
            is_dir
                .then(|| p.strip_prefix(&cfg.data).ok())
                .flatten()
                .filter(|r| !r.as_os_str().is_empty())
                .unwrap_or_else(|| Path::new(p.file_name().unwrap_or(p.as_os_str())))
                .to_string_lossy()
                .into_owned()
        })
        .collect();

    // lcodec codecs.
    let mut runners: Vec<Runner<'_>> = Vec::new();
    let mut commands = BTreeMap::new();
    let wanted: Vec<String> = if cfg.lcodec.is_empty() {
        let own = kind
            .lcodec_codecs()
            .iter()
            .find_map(|n| registry.by_name(n));
        match own {
            Some(c) => vec![c.info().name.to_string()],
            None if kind.is_lossless() => {
                note(format!(
                    "lcodec {} codec is not in this build yet; measuring lcodec raw instead",
                    kind.lcodec_codecs()[0]
                ));
                vec!["raw".to_string()]
            }
            None => {
                note(format!(
                    "lcodec {} codec is not in this build yet; running the peers only",
                    kind.lcodec_codecs()[0]
                ));
                Vec::new()
            }
        }
    } else {
        cfg.lcodec.clone()
    };
    for n in &wanted {
        match registry.by_name(n) {
            Some(c) => {
                commands.insert(
                    format!("lcodec-{}", c.info().name),
                    format!(
                        "lcodec --codec {} -q Q ({})",
                        c.info().name,
                        c.info().description
                    ),
                );
                runners.push(Runner::Lcodec(c));
            }
            None => note(format!("lcodec {n} codec is not in this build; skipped")),
        }
    }
    // Peers.
    for name in &cfg.peers {
        let Some(peer) = Peer::by_name(name) else {
            let known: Vec<_> = peers::PEERS.iter().map(|p| p.name).collect();
            bail!("unknown peer {name:?} (known: {})", known.join(", "));
        };
        if !peer.fits(kind) {
            note(format!(
                "peer {} does not apply to {kind} inputs; skipped",
                peer.name
            ));
        } else if !peer.wired() {
            note(format!(
                "peer {} ({}) is a hook for now; skipped",
                peer.name, peer.command
            ));
        } else if let Some(tool) = peer.missing_tool() {
            note(format!(
                "peer {} skipped: `{tool}` not found (scripts/install-peers.sh installs it)",
                peer.name
            ));
        } else if !runners
            .iter()
            .any(|r| matches!(r, Runner::Peer(p) if p.name == peer.name))
        {
            commands.insert(peer.name.to_string(), peer.command.to_string());
            runners.push(Runner::Peer(peer));
        }
    }

    let mut references = Vec::new();
    for path in &cfg.references {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let curve = crate::report::parse_reference(&text, &stem)
            .with_context(|| format!("{}", path.display()))?;
        commands.insert(
            curve.codec.clone(),
            format!("published points from {}", path.display()),
        );
        references.push(curve);
    }

    let jobs_per_input: Vec<(usize, Option<u32>)> = runners
        .iter()
        .enumerate()
        .flat_map(|(ri, r)| r.levels(&cfg.qualities).into_iter().map(move |l| (ri, l)))
        .collect();
    let total = (jobs_per_input.len() * paths.len()) as u64;
    // Without a terminal, long sweeps still report every 10 % (to a log file, say).
    let done = std::sync::atomic::AtomicU64::new(0);
    let text_progress = cfg.progress && !std::io::stderr().is_terminal();
    let bar = if cfg.progress && std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}",
        ) {
            b.set_style(style);
        }
        b
    } else {
        indicatif::ProgressBar::hidden()
    };

    // Runs go to plain threads that take the next job from a counter, not to a rayon pool:
    // a rayon worker waiting for an lcodec run's own thread pool may pick up other queued
    // runs meanwhile, and the time measured for its run would then include theirs
    // (seen as 100+ s "encodes" of a 1 s job).
    let threads = match cfg.threads {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => n,
    };
    let njobs = jobs_per_input.len();
    let preps: Vec<std::sync::OnceLock<anyhow::Result<Prepared>>> =
        paths.iter().map(|_| std::sync::OnceLock::new()).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let finished: Mutex<Vec<(usize, usize, Row)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.min(paths.len() * njobs).max(1) {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if k >= paths.len() * njobs {
                        break;
                    }
                    let (ii, ji) = (k / njobs, k % njobs);
                    let prep = preps[ii].get_or_init(|| {
                        prepare(kind, &paths[ii], names[ii].clone(), cfg.codec_threads)
                    });
                    let Ok(prep) = prep else { continue };
                    let (ri, level) = jobs_per_input[ji];
                    let row = run_job(cfg, registry, runners[ri], level, prep);
                    bar.set_message(format!("{} {}", row.codec, row.file));
                    bar.inc(1);
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    if text_progress && total >= 20 && n % total.div_ceil(10) == 0 {
                        eprintln!("progress: {n}/{total} runs");
                    }
                    if let Some(e) = &row.error {
                        note(format!("{} {} {}: {e}", row.file, row.codec, row.setting));
                    } else if row.exact == Some(false) {
                        note(format!(
                            "{} {} {}: round trip is NOT exact",
                            row.file, row.codec, row.setting
                        ));
                    }
                    finished
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((ii, ji, row));
                }
            });
        }
    });
    let mut finished = finished
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    finished.sort_by_key(|&(ii, ji, _)| (ii, ji));
    let mut by_input: Vec<Vec<Row>> = paths.iter().map(|_| Vec::new()).collect();
    for (ii, _, row) in finished {
        by_input[ii].push(row);
    }
    let per_input: Vec<anyhow::Result<Vec<Row>>> = preps
        .into_iter()
        .zip(by_input)
        .map(|(p, rows)| match p.into_inner() {
            Some(Err(e)) => Err(e),
            _ => Ok(rows),
        })
        .collect();
    bar.finish_and_clear();
    // An input that cannot be read or decoded is skipped with a note; the others go on.
    let mut rows = Vec::new();
    let mut inputs = Vec::new();
    for (r, name) in per_input.into_iter().zip(names) {
        match r {
            Ok(r) => {
                rows.extend(r);
                inputs.push(name);
            }
            Err(e) => note(format!("input {name} skipped: {e:#}")),
        }
    }
    if inputs.is_empty() {
        bail!(
            "none of the {} inputs under {} could be read",
            paths.len(),
            cfg.data.display()
        );
    }
    let mut notes = notes.into_inner().unwrap_or_default();
    // Notes from parallel jobs arrive in any order; sort for a deterministic summary.
    notes.sort();
    notes.dedup();
    Ok(SweepResults {
        kind,
        inputs,
        codecs: runners.iter().map(Runner::label).collect(),
        codec_commands: commands,
        rows,
        notes,
        codec_threads: cfg.codec_threads,
        threads,
        references,
    })
}

fn run_job(
    cfg: &SweepConfig,
    registry: &lcodec::Registry,
    runner: Runner<'_>,
    level: Option<u32>,
    prep: &Prepared,
) -> Row {
    let mut row = Row {
        file: prep.name.clone(),
        codec: runner.label(),
        setting: match runner {
            Runner::Lcodec(_) => level.map_or_else(|| "default".to_string(), |l| format!("q{l}")),
            Runner::Peer(p) => p.setting(level),
        },
        level,
        bytes: 0,
        original_bytes: prep.original_bytes,
        units: prep.units,
        metrics: BTreeMap::new(),
        exact: None,
        encode_ms: f64::NAN,
        decode_ms: f64::NAN,
        error: None,
    };
    let result = match runner {
        Runner::Lcodec(c) => run_lcodec(cfg, registry, c, level, prep, &mut row),
        Runner::Peer(p) => run_peer(cfg, p, level, prep, &mut row),
    };
    if let Err(e) = result {
        row.error = Some(format!("{e:#}"));
    }
    row
}

fn run_lcodec(
    cfg: &SweepConfig,
    registry: &lcodec::Registry,
    codec: &dyn lcodec::Codec,
    level: Option<u32>,
    prep: &Prepared,
    row: &mut Row,
) -> anyhow::Result<()> {
    let opts = lcodec::EncodeOptions {
        quality: level,
        threads: cfg.codec_threads,
        params: cfg.params.clone(),
        file_name: Some(prep.name.clone()),
        ..Default::default()
    };
    let mut packed = Vec::new();
    let t = Instant::now();
    lcodec::encode_with(codec, &mut &prep.bytes[..], &mut packed, &opts)
        .context("lcodec encode")?;
    row.encode_ms = t.elapsed().as_secs_f64() * 1e3;
    row.bytes = packed.len() as u64;
    let dopts = lcodec::DecodeOptions {
        threads: cfg.codec_threads,
        ..Default::default()
    };
    let mut out = Vec::new();
    let t = Instant::now();
    lcodec::decode(registry, &mut &packed[..], &mut out, &dopts).context("lcodec decode")?;
    row.decode_ms = t.elapsed().as_secs_f64() * 1e3;
    evaluate(cfg, prep, &out, codec.info().lossless, row)
}

fn run_peer(
    cfg: &SweepConfig,
    peer: &'static Peer,
    level: Option<u32>,
    prep: &Prepared,
    row: &mut Row,
) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("lcodec-peer-")
        .tempdir()
        .context("creating a temporary folder")?;
    if peer.family == peers::Family::PointCloud {
        return run_point_peer(cfg, peer, prep, dir.path(), row);
    }
    let encoded = dir.path().join(format!("enc.{}", peers::encoded_ext(peer)));
    let decoded = dir.path().join(format!("dec.{}", peers::decoded_ext(peer)));
    let files = PeerFiles {
        input_ppm: prep.ppm.as_deref(),
        input_png: prep.png.as_deref(),
        input: &prep.input,
        encoded: &encoded,
        decoded: &decoded,
    };
    let (mut enc, out) = peers::encode_command(peer, level, &files, cfg.codec_threads)?;
    row.encode_ms = run_tool(
        &mut enc,
        matches!(out, Output::Stdout).then_some(encoded.as_path()),
    )?;
    row.bytes = std::fs::metadata(&encoded)
        .with_context(|| format!("{} wrote no output", peer.name))?
        .len();
    let (mut dec, out) = peers::decode_command(peer, &files, cfg.codec_threads, prep.sample_rate)?;
    row.decode_ms = run_tool(
        &mut dec,
        matches!(out, Output::Stdout).then_some(decoded.as_path()),
    )?;
    let bytes =
        std::fs::read(&decoded).with_context(|| format!("reading {}", decoded.display()))?;
    evaluate(cfg, prep, &bytes, peer.lossless, row)
}

/// Point-cloud peers (LASzip in-process, Draco through its tools) at the sweep's
/// `precision` parameter (metres, default 0.001 like lcodec's LiDAR codec).
fn run_point_peer(
    cfg: &SweepConfig,
    peer: &'static Peer,
    prep: &Prepared,
    dir: &Path,
    row: &mut Row,
) -> anyhow::Result<()> {
    let precision = match cfg.params.get("precision") {
        Some(p) => p
            .parse::<f64>()
            .with_context(|| format!("precision {p:?} is not a number"))?,
        None => 0.001,
    };
    let Reference::Points(reference) = &prep.reference else {
        bail!("{} applies to point clouds only", peer.name);
    };
    let records = peers::point::kitti_records(&prep.bytes)?;
    let run = match peer.name {
        "laszip" => peers::point::laszip(&records, precision, true)?,
        "laszip-xyz" => peers::point::laszip(&records, precision, false)?,
        "draco" => peers::point::draco(&records, precision, dir)?,
        other => bail!("point-cloud peer {other} is not wired"),
    };
    row.setting = format!("p{precision} {}", run.setting);
    row.bytes = run.bytes;
    row.encode_ms = run.encode_ms;
    row.decode_ms = run.decode_ms;
    let e = if run.ordered {
        metrics::point_errors(reference, &run.decoded)
    } else {
        peers::point::nearest_errors(reference, &run.decoded, precision)
    }
    .with_context(|| {
        format!(
            "{} decoded {} points for {} (or found no match)",
            peer.name,
            run.decoded.len(),
            reference.len()
        )
    })?;
    row.metrics.insert("max_error".into(), e.max_coordinate);
    row.metrics.insert("mean_error".into(), e.mean_distance);
    row.metrics.insert("max_distance".into(), e.max_distance);
    Ok(())
}

/// Compares a decoded output with the reference and fills the row's metrics.
fn evaluate(
    cfg: &SweepConfig,
    prep: &Prepared,
    decoded: &[u8],
    lossless: bool,
    row: &mut Row,
) -> anyhow::Result<()> {
    match &prep.reference {
        Reference::Bytes => {
            row.exact = Some(decoded == prep.bytes.as_slice());
        }
        Reference::Image(reference) => {
            let img = media::decode_rgb8(decoded).context("decoded output")?;
            if (img.width, img.height) != (reference.width, reference.height) {
                bail!(
                    "decoded {}x{}, expected {}x{}",
                    img.width,
                    img.height,
                    reference.width,
                    reference.height
                );
            }
            let psnr = metrics::psnr(reference, &img).context("PSNR")?;
            row.metrics.insert("psnr".into(), psnr);
            if cfg.ms_ssim {
                if let Some(m) = metrics::ms_ssim(reference, &img) {
                    row.metrics.insert("ms_ssim".into(), m);
                }
            }
            if lossless {
                row.exact = Some(img.data == reference.data);
            }
        }
        Reference::Audio(reference) => {
            let a = media::parse_wav(decoded).context("decoded output")?;
            if a.channels != reference.channels {
                bail!(
                    "decoded {} channels, expected {}",
                    a.channels,
                    reference.channels
                );
            }
            // Best alignment within ±1 ms (at least ±16 frames): resampling decoders shift by a sample or so.
            let max_lag = (reference.sample_rate as usize / 1000).max(16);
            let (snr, _lag) = metrics::snr_db_aligned(
                &reference.samples,
                &a.samples,
                usize::from(a.channels),
                max_lag,
            )
            .context("SNR of empty audio")?;
            row.metrics.insert("snr_db".into(), snr);
            row.metrics.insert(
                "kbps".into(),
                row.bytes as f64 * 8.0 / reference.seconds().max(1e-9) / 1e3,
            );
            if lossless {
                row.exact = Some(a.samples == reference.samples);
            }
        }
        Reference::Video(reference) => {
            let v = media::parse_y4m(decoded).context("decoded output")?;
            if (v.width, v.height, v.frames.len())
                != (reference.width, reference.height, reference.frames.len())
            {
                bail!(
                    "decoded {}x{} x {} frames, expected {}x{} x {}",
                    v.width,
                    v.height,
                    v.frames.len(),
                    reference.width,
                    reference.height,
                    reference.frames.len()
                );
            }
            video_metrics(cfg, reference, &v, row);
            if lossless {
                row.exact = Some(v.frames == reference.frames);
            }
        }
        Reference::Points(reference) => {
            let pts = kitti_points(decoded).context("decoded output")?;
            let e = metrics::point_errors(reference, &pts).context("point counts differ")?;
            row.metrics.insert("max_error".into(), e.max_coordinate);
            row.metrics.insert("mean_error".into(), e.mean_distance);
            row.metrics.insert("max_distance".into(), e.max_distance);
            if lossless {
                row.exact = Some(decoded == prep.bytes.as_slice());
            }
        }
    }
    Ok(())
}

/// PSNR per plane averaged over frames, PSNR-YUV = (6·Y + U + V) / 8 (the JVET common
/// test conditions weighting), MS-SSIM on luma averaged over frames.
fn video_metrics(cfg: &SweepConfig, r: &Video, d: &Video, row: &mut Row) {
    let (w, h) = (r.width, r.height);
    let (cw, ch) = r.chroma();
    let (ylen, clen) = (w * h, cw * ch);
    let mut sums = [0.0f64; 3];
    let mut ms = 0.0;
    let mut ms_ok = cfg.ms_ssim;
    for (fr, fd) in r.frames.iter().zip(&d.frames) {
        let planes = [
            (0, ylen),
            (ylen, ylen + clen),
            (ylen + clen, ylen + 2 * clen),
        ];
        for (k, (a, b)) in planes.iter().enumerate() {
            let m = metrics::mse(&fr[*a..*b], &fd[*a..*b]).unwrap_or(0.0);
            // Identical planes would be infinite; cap at 100 dB so averages stay finite.
            sums[k] += metrics::psnr_from_mse(m).min(100.0);
        }
        if ms_ok {
            let plane = |f: &[u8]| Image8 {
                width: w,
                height: h,
                channels: 1,
                data: f[..ylen].to_vec(),
            };
            match metrics::ms_ssim(&plane(fr), &plane(fd)) {
                Some(v) => ms += v,
                None => ms_ok = false,
            }
        }
    }
    let n = r.frames.len().max(1) as f64;
    let [y, u, v] = sums.map(|s| s / n);
    row.metrics.insert("psnr_y".into(), y);
    row.metrics.insert("psnr_u".into(), u);
    row.metrics.insert("psnr_v".into(), v);
    row.metrics
        .insert("psnr_yuv".into(), (6.0 * y + u + v) / 8.0);
    if ms_ok {
        row.metrics.insert("ms_ssim_y".into(), ms / n);
    }
}
