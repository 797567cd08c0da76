//! Peer codecs run as external tools (Debian packages, see `scripts/install-peers.sh`).
//!
//! Every peer is described by the tools it needs and how a sweep quality level maps to
//! its own setting. Levels `1..=8` follow lcodec's scale (like CompressAI's 8 qualities:
//! higher = better and larger) and map through a per-peer table chosen so the peers span
//! roughly the same range of rates; a level above 8 is passed as the tool's own quality
//! (`cjpeg -quality`, `cwebp -q`, `cjxl -q`, AVIF `63 − level·63/100` quantizer, x264/x265
//! CRF `51 − level/2`, Opus kbit/s).

use std::path::Path;
use std::process::Command;

use crate::DataKind;

pub mod point;

/// What a peer compresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Still images (PPM/PNG in, PPM/PNG out).
    Image,
    /// Any bytes, lossless (file in, file out).
    Lossless,
    /// Audio (WAV in, WAV out).
    Audio,
    /// Video (Y4M in, Y4M out).
    Video,
    /// Point clouds (KITTI `.bin` frames; LASzip in-process, Draco through its tools).
    PointCloud,
}

/// A peer codec.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Name used with `--peers`.
    pub name: &'static str,
    /// What it compresses.
    pub family: Family,
    /// Executables it needs on `PATH` (encoder first, then decoder).
    pub tools: &'static [&'static str],
    /// Whether decoding restores the input exactly (checked byte for byte / sample for sample).
    pub lossless: bool,
    /// Whether the peer takes the sweep's quality levels (else it runs once, at `fixed`).
    pub takes_quality: bool,
    /// The command line, for the summary.
    pub command: &'static str,
}

/// Every peer the harness knows.
pub const PEERS: &[Peer] = &[
    Peer {
        name: "jpeg",
        family: Family::Image,
        tools: &["cjpeg", "djpeg"],
        lossless: false,
        takes_quality: true,
        command: "cjpeg -quality Q -sample 2x2 (4:2:0, libjpeg-turbo)",
    },
    Peer {
        name: "webp",
        family: Family::Image,
        tools: &["cwebp", "dwebp"],
        lossless: false,
        takes_quality: true,
        command: "cwebp -q Q (-m 4)",
    },
    Peer {
        name: "avif",
        family: Family::Image,
        tools: &["avifenc", "avifdec"],
        lossless: false,
        takes_quality: true,
        command: "avifenc -s 6 -j T --min Q --max Q (libaom, 4:4:4)",
    },
    Peer {
        name: "jxl",
        family: Family::Image,
        tools: &["cjxl", "djxl"],
        lossless: false,
        takes_quality: true,
        command: "cjxl -d D -e 7 --num_threads=T",
    },
    Peer {
        name: "gzip",
        family: Family::Lossless,
        tools: &["gzip"],
        lossless: true,
        takes_quality: false,
        command: "gzip -9",
    },
    Peer {
        name: "bzip2",
        family: Family::Lossless,
        tools: &["bzip2"],
        lossless: true,
        takes_quality: false,
        command: "bzip2 -9",
    },
    Peer {
        name: "xz",
        family: Family::Lossless,
        tools: &["xz"],
        lossless: true,
        takes_quality: false,
        command: "xz -9 -T1",
    },
    Peer {
        name: "xz-9e",
        family: Family::Lossless,
        tools: &["xz"],
        lossless: true,
        takes_quality: false,
        command: "xz -9e -T1",
    },
    Peer {
        name: "zstd",
        family: Family::Lossless,
        tools: &["zstd"],
        lossless: true,
        takes_quality: false,
        command: "zstd -19",
    },
    Peer {
        name: "zstd-ultra",
        family: Family::Lossless,
        tools: &["zstd"],
        lossless: true,
        takes_quality: false,
        command: "zstd --ultra -22 --long=27",
    },
    Peer {
        name: "brotli",
        family: Family::Lossless,
        tools: &["brotli"],
        lossless: true,
        takes_quality: false,
        command: "brotli -q 11",
    },
    Peer {
        name: "lz4",
        family: Family::Lossless,
        tools: &["lz4"],
        lossless: true,
        takes_quality: false,
        command: "lz4 -9",
    },
    Peer {
        name: "flac",
        family: Family::Audio,
        tools: &["flac"],
        lossless: true,
        takes_quality: false,
        command: "flac -8",
    },
    Peer {
        name: "opus",
        family: Family::Audio,
        tools: &["opusenc", "opusdec"],
        lossless: false,
        takes_quality: true,
        command: "opusenc --bitrate K (VBR); opusdec --rate <original rate>",
    },
    Peer {
        name: "x264",
        family: Family::Video,
        tools: &["ffmpeg"],
        lossless: false,
        takes_quality: true,
        command: "ffmpeg -c:v libx264 -preset medium -crf C -threads T (raw .264)",
    },
    Peer {
        name: "x265",
        family: Family::Video,
        tools: &["ffmpeg"],
        lossless: false,
        takes_quality: true,
        command: "ffmpeg -c:v libx265 -preset medium -crf C (raw .265)",
    },
    Peer {
        name: "draco",
        family: Family::PointCloud,
        tools: &["draco_encoder", "draco_decoder"],
        lossless: false,
        takes_quality: false,
        command: "draco_encoder -point_cloud -qp B -cl 10 (B = fewest position bits with step <= precision; PLY float32 in/out)",
    },
    Peer {
        name: "laszip",
        family: Family::PointCloud,
        tools: &[],
        lossless: false,
        takes_quality: false,
        command: "LASzip via the laz crate (LAS 1.2 point format 0, scale = precision, offset 0; bytes = 227 B header + LASzip VLR + compressed points)",
    },
    Peer {
        name: "laszip-xyz",
        family: Family::PointCloud,
        tools: &[],
        lossless: false,
        takes_quality: false,
        command: "LASzip as `laszip` with intensity 0 (geometry only, like draco)",
    },
];

impl Peer {
    /// Looks a peer up by name (case-insensitive).
    pub fn by_name(name: &str) -> Option<&'static Peer> {
        PEERS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// Whether this peer applies to inputs of `kind`.
    pub fn fits(&self, kind: DataKind) -> bool {
        match self.family {
            Family::Image => kind == DataKind::Image,
            Family::Lossless => kind.is_lossless(),
            Family::Audio => kind == DataKind::Audio,
            Family::Video => kind == DataKind::Video,
            Family::PointCloud => kind == DataKind::Lidar,
        }
    }

    /// The first of its tools missing from `PATH`, if any.
    pub fn missing_tool(&self) -> Option<&'static str> {
        self.tools.iter().copied().find(|t| which(t).is_none())
    }

    /// Whether the harness can run it (every known peer is wired; point-cloud peers run
    /// in-process or through [`crate::peers::point`]).
    pub fn wired(&self) -> bool {
        true
    }

    /// The tool's own setting for a sweep level, as a short label (`-quality 30`, `crf 28`).
    pub fn setting(&self, level: Option<u32>) -> String {
        match (self.name, level) {
            (_, None) => self.fixed_label().to_string(),
            ("jpeg", Some(l)) => format!("q{}", jpeg_quality(l)),
            ("webp", Some(l)) => format!("q{}", webp_quality(l)),
            ("avif", Some(l)) => format!("qp{}", avif_quantizer(l)),
            ("jxl", Some(l)) => format!("d{}", jxl_distance(l)),
            ("opus", Some(l)) => format!("{}kbps", opus_kbps(l)),
            ("x264" | "x265", Some(l)) => format!("crf{}", video_crf(l)),
            (_, Some(l)) => format!("level{l}"),
        }
    }

    fn fixed_label(&self) -> &'static str {
        match self.name {
            "gzip" | "bzip2" | "xz" | "lz4" => "-9",
            "xz-9e" => "-9e",
            "zstd" => "-19",
            "zstd-ultra" => "--ultra -22 --long",
            "brotli" => "-q11",
            "flac" => "-8",
            _ => "default",
        }
    }
}

/// Level → `cjpeg -quality`.
pub fn jpeg_quality(level: u32) -> u32 {
    const T: [u32; 8] = [10, 20, 30, 45, 60, 75, 85, 92];
    table_or_native(&T, level).min(100)
}
/// Level → `cwebp -q`.
pub fn webp_quality(level: u32) -> u32 {
    const T: [u32; 8] = [5, 15, 30, 45, 60, 75, 85, 92];
    table_or_native(&T, level).min(100)
}
/// Level → AVIF quantizer (0..63, lower = better).
pub fn avif_quantizer(level: u32) -> u32 {
    const T: [u32; 8] = [52, 46, 40, 34, 28, 22, 16, 10];
    match level {
        1..=8 => T[level as usize - 1],
        _ => 63 - (level.min(100) * 63 + 50) / 100,
    }
}
/// Level → `cjxl -d` (as a string, e.g. `2.2`); levels above 8 map like `cjxl -q`.
pub fn jxl_distance(level: u32) -> String {
    const T: [&str; 8] = ["6", "4", "3", "2.2", "1.6", "1.1", "0.7", "0.4"];
    match level {
        1..=8 => T[level as usize - 1].to_string(),
        // cjxl's own quality → distance mapping for q >= 30: d = 0.1 + (100 - q) * 0.09.
        _ => format!("{:.2}", 0.1 + f64::from(100 - level.min(100)) * 0.09),
    }
}
/// Level → Opus bit rate in kbit/s.
pub fn opus_kbps(level: u32) -> u32 {
    const T: [u32; 8] = [8, 12, 16, 24, 32, 48, 64, 96];
    table_or_native(&T, level)
}
/// Level → x264/x265 CRF.
pub fn video_crf(level: u32) -> u32 {
    const T: [u32; 8] = [40, 36, 32, 29, 26, 23, 20, 17];
    match level {
        1..=8 => T[level as usize - 1],
        _ => 51 - level.min(100) / 2,
    }
}

fn table_or_native(t: &[u32; 8], level: u32) -> u32 {
    match level {
        1..=8 => t[level as usize - 1],
        _ => level,
    }
}

/// Finds an executable on `PATH`.
pub fn which(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Paths a peer job works with.
#[derive(Debug)]
pub struct PeerFiles<'a> {
    /// The input as a file the tool reads (PPM for cjpeg, PNG for others, WAV, Y4M, or the original bytes).
    pub input_ppm: Option<&'a Path>,
    /// PNG form of an image input.
    pub input_png: Option<&'a Path>,
    /// Generic input (lossless, audio WAV, video Y4M).
    pub input: &'a Path,
    /// Compressed output.
    pub encoded: &'a Path,
    /// Decoded output.
    pub decoded: &'a Path,
}

/// How a command's output is captured.
#[derive(Debug)]
pub enum Output {
    /// The tool writes the output file itself.
    File,
    /// The tool writes to stdout, which is redirected to this file.
    Stdout,
}

/// File extension of the compressed stream.
pub fn encoded_ext(peer: &Peer) -> &'static str {
    match peer.name {
        "jpeg" => "jpg",
        "webp" => "webp",
        "avif" => "avif",
        "jxl" => "jxl",
        "gzip" => "gz",
        "bzip2" => "bz2",
        "xz" | "xz-9e" => "xz",
        "zstd" | "zstd-ultra" => "zst",
        "brotli" => "br",
        "lz4" => "lz4",
        "flac" => "flac",
        "opus" => "opus",
        "x264" => "264",
        "x265" => "265",
        _ => "bin",
    }
}

/// File extension of the decoded output.
pub fn decoded_ext(peer: &Peer) -> &'static str {
    match peer.family {
        Family::Image => match peer.name {
            "avif" => "png",
            _ => "ppm",
        },
        Family::Audio => "wav",
        Family::Video => "y4m",
        _ => "out",
    }
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The encode command for a peer; `threads` is the per-tool thread count.
///
/// # Errors
/// When the input form the tool needs was not prepared.
pub fn encode_command(
    peer: &Peer,
    level: Option<u32>,
    f: &PeerFiles<'_>,
    threads: usize,
) -> anyhow::Result<(Command, Output)> {
    let t = threads.max(1).to_string();
    let png = || {
        f.input_png
            .ok_or_else(|| anyhow::anyhow!("{}: no PNG form of the input", peer.name))
    };
    let ppm = || {
        f.input_ppm
            .ok_or_else(|| anyhow::anyhow!("{}: no PPM form of the input", peer.name))
    };
    let lvl = level.unwrap_or(4);
    let mut out = Output::File;
    let cmd = match peer.name {
        "jpeg" => cmd(
            "cjpeg",
            &[
                "-quality",
                &jpeg_quality(lvl).to_string(),
                "-sample",
                "2x2",
                "-outfile",
                &s(f.encoded),
                &s(ppm()?),
            ],
        ),
        "webp" => cmd(
            "cwebp",
            &[
                "-quiet",
                "-q",
                &webp_quality(lvl).to_string(),
                &s(png()?),
                "-o",
                &s(f.encoded),
            ],
        ),
        "avif" => {
            let q = avif_quantizer(lvl).to_string();
            cmd(
                "avifenc",
                &[
                    "-s",
                    "6",
                    "-j",
                    &t,
                    "--min",
                    &q,
                    "--max",
                    &q,
                    &s(png()?),
                    &s(f.encoded),
                ],
            )
        }
        "jxl" => cmd(
            "cjxl",
            &[
                &s(png()?),
                &s(f.encoded),
                "-d",
                &jxl_distance(lvl),
                "-e",
                "7",
                &format!("--num_threads={t}"),
                "--quiet",
            ],
        ),
        "gzip" => {
            out = Output::Stdout;
            cmd("gzip", &["-9", "-c", "-n", &s(f.input)])
        }
        "bzip2" => {
            out = Output::Stdout;
            cmd("bzip2", &["-9", "-c", &s(f.input)])
        }
        "xz" => {
            out = Output::Stdout;
            cmd("xz", &["-9", "-T1", "-c", &s(f.input)])
        }
        "xz-9e" => {
            out = Output::Stdout;
            cmd("xz", &["-9e", "-T1", "-c", &s(f.input)])
        }
        "zstd" => {
            out = Output::Stdout;
            cmd("zstd", &["-19", "-q", "-c", &s(f.input)])
        }
        "zstd-ultra" => {
            out = Output::Stdout;
            cmd(
                "zstd",
                &["--ultra", "-22", "--long=27", "-q", "-c", &s(f.input)],
            )
        }
        "brotli" => {
            out = Output::Stdout;
            cmd("brotli", &["-q", "11", "-c", &s(f.input)])
        }
        "lz4" => {
            out = Output::Stdout;
            cmd("lz4", &["-9", "-q", "-c", &s(f.input)])
        }
        "flac" => cmd(
            "flac",
            &["-8", "-s", "-f", "-o", &s(f.encoded), &s(f.input)],
        ),
        "opus" => cmd(
            "opusenc",
            &[
                "--quiet",
                "--serial",
                "1",
                "--bitrate",
                &opus_kbps(lvl).to_string(),
                &s(f.input),
                &s(f.encoded),
            ],
        ),
        "x264" => cmd(
            "ffmpeg",
            &[
                "-nostdin",
                "-y",
                "-loglevel",
                "error",
                "-i",
                &s(f.input),
                "-c:v",
                "libx264",
                "-preset",
                "medium",
                "-crf",
                &video_crf(lvl).to_string(),
                "-threads",
                &t,
                "-pix_fmt",
                "yuv420p",
                "-f",
                "h264",
                &s(f.encoded),
            ],
        ),
        "x265" => cmd(
            "ffmpeg",
            &[
                "-nostdin",
                "-y",
                "-loglevel",
                "error",
                "-i",
                &s(f.input),
                "-c:v",
                "libx265",
                "-preset",
                "medium",
                "-crf",
                &video_crf(lvl).to_string(),
                "-x265-params",
                &format!("log-level=error:pools={t}"),
                "-pix_fmt",
                "yuv420p",
                "-f",
                "hevc",
                &s(f.encoded),
            ],
        ),
        other => anyhow::bail!("peer {other} is not wired into the harness yet"),
    };
    Ok((cmd, out))
}

/// The decode command for a peer.
///
/// # Errors
/// For peers that are not wired.
pub fn decode_command(
    peer: &Peer,
    f: &PeerFiles<'_>,
    threads: usize,
    sample_rate: Option<u32>,
) -> anyhow::Result<(Command, Output)> {
    let t = threads.max(1).to_string();
    let mut out = Output::File;
    let (enc, dec) = (s(f.encoded), s(f.decoded));
    let cmd = match peer.name {
        "jpeg" => cmd("djpeg", &["-pnm", "-outfile", &dec, &enc]),
        "webp" => cmd("dwebp", &["-quiet", &enc, "-ppm", "-o", &dec]),
        "avif" => cmd("avifdec", &["-j", &t, &enc, &dec]),
        "jxl" => cmd(
            "djxl",
            &[&enc, &dec, &format!("--num_threads={t}"), "--quiet"],
        ),
        "gzip" => {
            out = Output::Stdout;
            cmd("gzip", &["-d", "-c", &enc])
        }
        "bzip2" => {
            out = Output::Stdout;
            cmd("bzip2", &["-d", "-c", &enc])
        }
        "xz" | "xz-9e" => {
            out = Output::Stdout;
            cmd("xz", &["-d", "-c", &enc])
        }
        "zstd" => {
            out = Output::Stdout;
            cmd("zstd", &["-d", "-q", "-c", &enc])
        }
        "zstd-ultra" => {
            out = Output::Stdout;
            cmd("zstd", &["-d", "--long=27", "-q", "-c", &enc])
        }
        "brotli" => {
            out = Output::Stdout;
            cmd("brotli", &["-d", "-c", &enc])
        }
        "lz4" => {
            out = Output::Stdout;
            cmd("lz4", &["-d", "-q", "-c", &enc])
        }
        "flac" => cmd("flac", &["-d", "-s", "-f", "-o", &dec, &enc]),
        "opus" => {
            let rate = sample_rate.unwrap_or(48_000).to_string();
            cmd("opusdec", &["--quiet", "--rate", &rate, &enc, &dec])
        }
        "x264" | "x265" => cmd(
            "ffmpeg",
            &[
                "-nostdin",
                "-y",
                "-loglevel",
                "error",
                "-threads",
                &t,
                "-i",
                &enc,
                "-pix_fmt",
                "yuv420p",
                "-f",
                "yuv4mpegpipe",
                &dec,
            ],
        ),
        other => anyhow::bail!("peer {other} is not wired into the harness yet"),
    };
    Ok((cmd, out))
}

fn cmd(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_monotonically() {
        for l in 1..8 {
            assert!(jpeg_quality(l) < jpeg_quality(l + 1));
            assert!(webp_quality(l) < webp_quality(l + 1));
            assert!(avif_quantizer(l) > avif_quantizer(l + 1));
            assert!(video_crf(l) > video_crf(l + 1));
            assert!(opus_kbps(l) < opus_kbps(l + 1));
            let (a, b): (f64, f64) = (
                jxl_distance(l).parse().unwrap(),
                jxl_distance(l + 1).parse().unwrap(),
            );
            assert!(a > b);
        }
        // Above 8 the level is the tool's own quality.
        assert_eq!(jpeg_quality(75), 75);
        assert_eq!(avif_quantizer(100), 0);
        assert_eq!(jxl_distance(90), "1.00");
    }

    #[test]
    fn every_peer_has_a_unique_name() {
        for (i, p) in PEERS.iter().enumerate() {
            assert!(
                PEERS[i + 1..].iter().all(|q| q.name != p.name),
                "{}",
                p.name
            );
            assert!(Peer::by_name(&p.name.to_uppercase()).is_some());
        }
    }
}
