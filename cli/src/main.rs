//! The `lcodec` command-line tool: encode, decode, inspect and sweep.
//!
//! This crate only parses arguments, opens files, shows progress and sets exit codes;
//! every codec lives behind the `lcodec` library.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lcodec::{DecodeOptions, EncodeOptions, Registry};

/// lcodec: learned and classical compression for images, audio, video, LiDAR, logs,
/// text and model weights, in one `.lc` container.
#[derive(Parser, Debug)]
#[command(name = "lcodec", version, about, long_about = None)]
struct Cli {
    /// Print what is being done (codec chosen, sizes, timings).
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compress a file (`-` = stdin) into an .lc file (`-` = stdout).
    Encode {
        /// Input file, or `-` for stdin.
        input: PathBuf,
        /// Output .lc file, or `-` for stdout (default: INPUT.lc).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Codec to use (default: detected from the input; see `lcodec codecs`).
        #[arg(long)]
        codec: Option<String>,
        /// Quality level (meaning per codec; higher = better / larger).
        #[arg(short, long)]
        quality: Option<u32>,
        /// Codec parameter KEY=VALUE (repeatable), e.g. `-p method=deflate`.
        #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Chunk size in bytes of original (default: per codec).
        #[arg(long)]
        chunk_size: Option<usize>,
        /// Coordinate precision in metres for point clouds (same as `-p precision=P`).
        #[arg(long, value_name = "P")]
        precision: Option<f64>,
        /// Store the input's file name in the header.
        #[arg(long)]
        store_name: bool,
        /// Overwrite the output if it exists.
        #[arg(short, long)]
        force: bool,
        /// Worker threads (0 = all cores).
        #[arg(short = 'T', long, default_value_t = 0)]
        threads: usize,
    },
    /// Decompress an .lc file (`-` = stdin) into the original (`-` = stdout).
    Decode {
        /// Input .lc file, or `-` for stdin.
        input: PathBuf,
        /// Output file, or `-` for stdout (default: INPUT without `.lc`).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Decode only the tensor with this name (tensor codec, seekable input).
        #[arg(long)]
        tensor: Option<String>,
        /// Codec parameter KEY=VALUE (repeatable), e.g. `-p model=PATH` for text-llm, `-p residual=STEP` for image.
        #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Skip checksum and hash verification (not recommended).
        #[arg(long)]
        no_verify: bool,
        /// Overwrite the output if it exists.
        #[arg(short, long)]
        force: bool,
        /// Worker threads (0 = all cores).
        #[arg(short = 'T', long, default_value_t = 0)]
        threads: usize,
    },
    /// Show the header and chunk table of an .lc file.
    Info {
        /// The .lc file.
        file: PathBuf,
    },
    /// List the codecs in this build.
    Codecs,
    /// Rate-distortion sweep with peer codecs side by side (CSV, SVG, BD-rate).
    Sweep(lcodec_bench::SweepArgs),
}

/// An error with the file it concerns, printed as one line.
struct CliError {
    file: Option<PathBuf>,
    message: String,
}

impl CliError {
    fn new(file: Option<&Path>, message: impl std::fmt::Display) -> Self {
        CliError {
            file: file.map(Path::to_path_buf),
            message: message.to_string(),
        }
    }
}

type CliResult<T> = Result<T, CliError>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Encode {
            input,
            output,
            codec,
            quality,
            mut params,
            chunk_size,
            precision,
            store_name,
            force,
            threads,
        } => {
            if let Some(p) = precision {
                params.push(format!("precision={p}"));
            }
            cmd_encode(
                &input,
                output,
                codec,
                quality,
                &params,
                chunk_size,
                store_name,
                force,
                threads,
                cli.verbose,
            )
        }
        Command::Decode {
            input,
            output,
            tensor,
            params,
            no_verify,
            force,
            threads,
        } => cmd_decode(
            &input,
            output,
            tensor,
            &params,
            no_verify,
            force,
            threads,
            cli.verbose,
        ),
        Command::Info { file } => cmd_info(&file),
        Command::Codecs => {
            for c in Registry::with_enabled().codecs() {
                let i = c.info();
                println!(
                    "{:<10} id {:<3} {:<9} {}",
                    i.name,
                    i.id.0,
                    if i.lossless { "lossless" } else { "lossy" },
                    i.description
                );
            }
            Ok(())
        }
        Command::Sweep(args) => {
            lcodec_bench::run_sweep(&args).map_err(|e| CliError::new(None, format!("{e:#}")))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match &e.file {
                Some(f) => eprintln!("lcodec: {}: {}", f.display(), e.message),
                None => eprintln!("lcodec: {}", e.message),
            }
            ExitCode::from(1)
        }
    }
}

fn is_dash(p: &Path) -> bool {
    p.as_os_str() == "-"
}

fn open_input(path: &Path) -> CliResult<(Box<dyn Read>, Option<u64>)> {
    if is_dash(path) {
        return Ok((Box::new(io::stdin().lock()), None));
    }
    let f = File::open(path).map_err(|e| CliError::new(Some(path), e))?;
    let meta = f.metadata().map_err(|e| CliError::new(Some(path), e))?;
    if meta.is_dir() {
        return Err(CliError::new(Some(path), "is a directory"));
    }
    Ok((
        Box::new(BufReader::with_capacity(1 << 20, f)),
        Some(meta.len()),
    ))
}

/// Output written to a temporary file beside the target and renamed only on success,
/// so a failed run leaves nothing behind; or straight to stdout for `-`.
enum Output {
    Stdout(BufWriter<io::Stdout>),
    Temp {
        tmp: BufWriter<tempfile::NamedTempFile>,
        target: PathBuf,
        force: bool,
    },
}

impl Output {
    fn create(target: &Path, force: bool, input: &Path) -> CliResult<Output> {
        if is_dash(target) {
            return Ok(Output::Stdout(BufWriter::with_capacity(
                1 << 20,
                io::stdout(),
            )));
        }
        if target.exists() {
            if !force {
                return Err(CliError::new(
                    Some(target),
                    "output exists (use -f to overwrite)",
                ));
            }
            if !is_dash(input) && same_file(input, target) {
                return Err(CliError::new(Some(target), "output is the input file"));
            }
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut builder = tempfile::Builder::new();
        #[cfg(unix)]
        {
            // Like any other file the user creates: 0666 less the umask (open(2) applies it).
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let tmp = builder
            .prefix(".lcodec-")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(|e| {
                CliError::new(
                    Some(target),
                    format!("cannot create a temporary file in {}: {e}", dir.display()),
                )
            })?;
        Ok(Output::Temp {
            tmp: BufWriter::with_capacity(1 << 20, tmp),
            target: target.to_path_buf(),
            force,
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Stdout(w) => w,
            Output::Temp { tmp, .. } => tmp,
        }
    }

    /// Flushes and moves the temporary file into place. Dropping an `Output` without
    /// calling this deletes the temporary file.
    fn commit(self) -> CliResult<()> {
        match self {
            Output::Stdout(mut w) => w
                .flush()
                .map_err(|e| CliError::new(Some(Path::new("-")), e)),
            Output::Temp { tmp, target, force } => {
                let tmp = tmp
                    .into_inner()
                    .map_err(|e| CliError::new(Some(&target), e.error()))?;
                tmp.as_file()
                    .sync_all()
                    .map_err(|e| CliError::new(Some(&target), e))?;
                let r = if force {
                    tmp.persist(&target).map(|_| ())
                } else {
                    tmp.persist_noclobber(&target).map(|_| ())
                };
                r.map_err(|e| {
                    if e.error.kind() == io::ErrorKind::AlreadyExists {
                        CliError::new(Some(&target), "output exists (use -f to overwrite)")
                    } else {
                        CliError::new(Some(&target), e.error)
                    }
                })
            }
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Counts bytes through a reader and drives a progress bar.
struct ProgressReader<R> {
    inner: R,
    bar: Option<indicatif::ProgressBar>,
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
        Ok(n)
    }
}

fn progress_bar(total: Option<u64>) -> Option<indicatif::ProgressBar> {
    let total = total?;
    if !io::stderr().is_terminal() || total < (8 << 20) {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}

fn parse_params(params: &[String]) -> CliResult<std::collections::BTreeMap<String, String>> {
    let mut map = std::collections::BTreeMap::new();
    for p in params {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| CliError::new(None, format!("parameter {p:?} is not KEY=VALUE")))?;
        map.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(map)
}

#[allow(clippy::too_many_arguments)]
fn cmd_encode(
    input: &Path,
    output: Option<PathBuf>,
    codec: Option<String>,
    quality: Option<u32>,
    params: &[String],
    chunk_size: Option<usize>,
    store_name: bool,
    force: bool,
    threads: usize,
    verbose: bool,
) -> CliResult<()> {
    let output = match output {
        Some(o) => o,
        None if is_dash(input) => PathBuf::from("-"),
        None => {
            let mut s = input.as_os_str().to_owned();
            s.push(".lc");
            PathBuf::from(s)
        }
    };
    let mut opts = EncodeOptions {
        quality,
        threads,
        chunk_size,
        params: parse_params(params)?,
        file_name: (!is_dash(input)).then(|| input.to_string_lossy().into_owned()),
        store_name,
    };
    let chosen = codec.is_some();
    if let Some(c) = codec {
        opts.params.insert("codec".into(), c);
    }
    let (reader, size) = open_input(input)?;
    let mut out = Output::create(&output, force, input)?;
    let bar = progress_bar(size);
    let mut reader = ProgressReader {
        inner: reader,
        bar: bar.clone(),
    };
    let registry = Registry::with_enabled();
    let t = std::time::Instant::now();
    let report = lcodec::encode(&registry, &mut reader, out.writer(), &opts).map_err(|e| {
        // Reading errors belong to the input, everything else is about the encode.
        CliError::new(Some(input), e)
    })?;
    out.commit()?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    // Detection picked a lossy codec (a photo, a LiDAR scan): say so once, with the way
    // to keep the file bit-exact, so nobody loses data by surprise.
    if !chosen
        && registry
            .by_name(report.codec)
            .is_some_and(|c| !c.info().lossless)
    {
        eprintln!(
            "lcodec: note: {}: coded with the lossy `{}` codec (the decoded file is close to the input, not identical); `--codec raw` keeps it bit-exact",
            input.display(),
            report.codec
        );
    }
    if verbose {
        eprintln!(
            "lcodec: {} -> {}: {} {} -> {} bytes (ratio {:.3}) in {:.2} s",
            input.display(),
            output.display(),
            report.codec,
            report.original_size,
            report.compressed_size,
            report.original_size as f64 / report.compressed_size.max(1) as f64,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn cmd_decode(
    input: &Path,
    output: Option<PathBuf>,
    tensor: Option<String>,
    params: &[String],
    no_verify: bool,
    force: bool,
    threads: usize,
    verbose: bool,
) -> CliResult<()> {
    let output = match output {
        Some(o) => o,
        None if is_dash(input) => PathBuf::from("-"),
        None => {
            let s = input.to_string_lossy();
            match s.strip_suffix(".lc") {
                Some(base) if !base.is_empty() => PathBuf::from(base),
                _ => {
                    return Err(CliError::new(
                        Some(input),
                        "cannot derive the output name (no .lc suffix); use -o",
                    ));
                }
            }
        }
    };
    let mut opts = DecodeOptions {
        threads,
        verify: !no_verify,
        params: parse_params(params)?,
        ..Default::default()
    };
    if let Some(t) = tensor {
        opts.params.insert("tensor".into(), t);
    }
    // Point-cloud and image codecs write the format of the -o extension; the others
    // ignore it. An explicit `-p format=…` wins.
    if !opts.params.contains_key(lcodec::FORMAT_PARAM) {
        if let Some(ext) = lcodec::extension(output.to_str()).filter(|e| e != "lc") {
            opts.params.insert(lcodec::FORMAT_PARAM.into(), ext);
        }
    }
    let registry = Registry::with_enabled();
    let t = std::time::Instant::now();
    let mut out = Output::create(&output, force, input)?;
    let report = if is_dash(input) {
        let (reader, _) = open_input(input)?;
        let mut reader = reader;
        lcodec::decode(&registry, &mut reader, out.writer(), &opts)
    } else {
        let f = File::open(input).map_err(|e| CliError::new(Some(input), e))?;
        let size = f.metadata().ok().map(|m| m.len());
        let mut r = BufReader::with_capacity(1 << 20, f);
        let bar = progress_bar(size);
        let res = lcodec::decode_seekable(&registry, &mut r, out.writer(), &opts);
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        res
    }
    .map_err(|e| CliError::new(Some(input), e))?;
    out.commit()?;
    if verbose {
        eprintln!(
            "lcodec: {} -> {}: {} bytes decoded in {:.2} s",
            input.display(),
            output.display(),
            report.decoded_size,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn cmd_info(path: &Path) -> CliResult<()> {
    let f = File::open(path).map_err(|e| CliError::new(Some(path), e))?;
    let mut r = BufReader::new(f);
    let registry = Registry::with_enabled();
    let info = lcodec::inspect(&registry, &mut r, &lcodec::Limits::default())
        .map_err(|e| CliError::new(Some(path), e))?;
    let h = &info.header;
    let t = &info.trailer;
    let m = &h.metadata;
    println!("file:            {}", path.display());
    println!(
        "codec:           {} (id {}, bitstream version {})",
        info.codec_name.unwrap_or("unknown to this build"),
        h.codec_id.0,
        h.codec_version
    );
    if let Some(d) = registry.by_id(h.codec_id).and_then(|c| c.describe(h)) {
        println!("coding:          {d}");
    }
    println!("container:       .lc format version {}", h.format_version);
    if h.model.id.is_empty() {
        println!("model:           none");
    } else {
        let hash: String = h
            .model
            .weights_hash
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        println!("model:           {} (weights {})", h.model.id, hash);
    }
    println!("kind:            {}", m.kind.name());
    if m.width > 0 || m.height > 0 {
        println!(
            "dimensions:      {} x {} x {} ({} bits)",
            m.width, m.height, m.channels, m.bit_depth
        );
    }
    if m.sample_rate > 0 {
        println!("sample rate:     {} Hz, {} frames", m.sample_rate, m.frames);
    }
    if let Some(n) = &m.file_name {
        println!("file name:       {n}");
    }
    println!("original size:   {} bytes", t.original_size);
    println!("compressed size: {} bytes", info.file_len);
    let ratio = t.original_size as f64 / info.file_len.max(1) as f64;
    let bpb = if t.original_size > 0 {
        8.0 * info.file_len as f64 / t.original_size as f64
    } else {
        0.0
    };
    println!("ratio:           {ratio:.3} ({bpb:.3} bits per byte)");
    println!("chunks:          {}", t.chunks.len());
    if h.has_original_hash {
        let hash: String = t
            .original_hash
            .iter()
            .rev()
            .map(|b| format!("{b:02x}"))
            .collect();
        println!("original hash:   xxh3-128 {hash} (verified on decode)");
    }
    Ok(())
}
