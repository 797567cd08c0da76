//! Writing a sweep's results: `results.csv`, SVG plots (plotters, SVG backend only) and
//! `summary.md` with BD-rates against an anchor.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;

use crate::bdrate::{self, RdPoint};
use crate::{DataKind, Row, SweepResults};

/// Files written by [`write_outputs`].
#[derive(Debug, Clone)]
pub struct Outputs {
    /// The CSV, one row per input × codec × setting.
    pub csv: PathBuf,
    /// SVG plots.
    pub plots: Vec<PathBuf>,
    /// The markdown summary.
    pub summary: PathBuf,
}

/// One point of an averaged curve: a codec at one setting, averaged over the inputs.
#[derive(Debug, Clone)]
pub struct CurvePoint {
    /// Sweep level (`None` for fixed settings).
    pub level: Option<u32>,
    /// The codec's own setting (from the first input; the same for all inputs).
    pub setting: String,
    /// Mean rate over inputs (bpp, bits per sample, …).
    pub rate: f64,
    /// Mean of each metric over inputs.
    pub metrics: BTreeMap<String, f64>,
    /// Sum of original bytes.
    pub original_bytes: u64,
    /// Sum of compressed bytes.
    pub bytes: u64,
    /// Sum of encode times (ms).
    pub encode_ms: f64,
    /// Sum of decode times (ms).
    pub decode_ms: f64,
    /// Inputs averaged.
    pub inputs: usize,
    /// Inputs whose lossless round trip was exact (for lossless codecs).
    pub exact: usize,
}

impl CurvePoint {
    /// Σ original / Σ compressed.
    pub fn ratio(&self) -> f64 {
        self.original_bytes as f64 / self.bytes.max(1) as f64
    }
    /// Encode speed in MB/s of original (10⁶ bytes).
    pub fn encode_mb_s(&self) -> f64 {
        self.original_bytes as f64 / 1e3 / self.encode_ms.max(1e-9)
    }
    /// Decode speed in MB/s of original.
    pub fn decode_mb_s(&self) -> f64 {
        self.original_bytes as f64 / 1e3 / self.decode_ms.max(1e-9)
    }
}

/// A codec's points averaged over the inputs, in level order.
#[derive(Debug, Clone)]
pub struct Curve {
    /// Codec label (`lcodec-image`, `jpeg`, …).
    pub codec: String,
    /// Points; a level is kept only when every input succeeded at it.
    pub points: Vec<CurvePoint>,
}

impl Curve {
    /// The points as (rate, metric) pairs for BD-rate.
    pub fn rd(&self, metric: &str) -> Vec<RdPoint> {
        self.points
            .iter()
            .filter_map(|p| {
                p.metrics.get(metric).map(|&q| RdPoint {
                    rate: p.rate,
                    quality: q,
                })
            })
            .collect()
    }
}

/// Averages the rows of each codec and level over the inputs. A level is kept only when
/// every input has a successful row for it, so all points average the same inputs.
pub fn curves(results: &SweepResults) -> Vec<Curve> {
    let n_inputs = results.inputs.len();
    results
        .codecs
        .iter()
        .map(|codec| {
            let rows: Vec<&Row> = results.rows.iter().filter(|r| &r.codec == codec).collect();
            let mut levels: Vec<Option<u32>> = Vec::new();
            for r in &rows {
                if !levels.contains(&r.level) {
                    levels.push(r.level);
                }
            }
            let points = levels
                .into_iter()
                .filter_map(|level| {
                    let at: Vec<&&Row> =
                        rows.iter().filter(|r| r.level == level && r.ok()).collect();
                    if at.len() != n_inputs || at.is_empty() {
                        return None;
                    }
                    let n = at.len() as f64;
                    let mut metrics = BTreeMap::new();
                    for name in results.kind.metric_names() {
                        let vals: Vec<f64> = at
                            .iter()
                            .filter_map(|r| r.metrics.get(*name).copied())
                            .collect();
                        if vals.len() == at.len() {
                            metrics.insert(name.to_string(), vals.iter().sum::<f64>() / n);
                        }
                    }
                    Some(CurvePoint {
                        level,
                        setting: at[0].setting.clone(),
                        rate: at.iter().map(|r| r.rate()).sum::<f64>() / n,
                        metrics,
                        original_bytes: at.iter().map(|r| r.original_bytes).sum(),
                        bytes: at.iter().map(|r| r.bytes).sum(),
                        encode_ms: at.iter().map(|r| r.encode_ms).sum(),
                        decode_ms: at.iter().map(|r| r.decode_ms).sum(),
                        inputs: at.len(),
                        exact: at.iter().filter(|r| r.exact == Some(true)).count(),
                    })
                })
                .collect();
            Curve {
                codec: codec.clone(),
                points,
            }
        })
        .chain(results.references.iter().cloned())
        .collect()
}

/// Reads a published rate-distortion curve in CompressAI's results format
/// (`{"name": …, "results": {"bpp": […], "psnr": […], "ms-ssim": […]}}`), e.g. the VTM or
/// mbt2018 points of CompressAI's `results/image/kodak/*.json`. Metric keys are renamed to
/// this crate's (`ms-ssim` → `ms_ssim`); the rate is `bpp`.
///
/// # Errors
/// No `bpp` array, arrays of different lengths, numbers that do not parse.
pub fn parse_reference(json: &str, fallback_name: &str) -> anyhow::Result<Curve> {
    let name = json_string(json, "name").unwrap_or_else(|| fallback_name.to_string());
    let bpp = json_numbers(json, "bpp")?.ok_or_else(|| anyhow::anyhow!("no \"bpp\" array"))?;
    let mut metrics: Vec<(String, Vec<f64>)> = Vec::new();
    for (key, ours) in [
        ("psnr", "psnr"),
        ("ms-ssim", "ms_ssim"),
        ("ms_ssim", "ms_ssim"),
        ("psnr_yuv", "psnr_yuv"),
    ] {
        if let Some(v) = json_numbers(json, key)? {
            anyhow::ensure!(
                v.len() == bpp.len(),
                "\"{key}\" has {} values, \"bpp\" has {}",
                v.len(),
                bpp.len()
            );
            if !metrics.iter().any(|(k, _)| k == ours) {
                metrics.push((ours.to_string(), v));
            }
        }
    }
    let points = bpp
        .iter()
        .enumerate()
        .map(|(i, &rate)| CurvePoint {
            level: None,
            setting: format!("point {}", i + 1),
            rate,
            metrics: metrics.iter().map(|(k, v)| (k.clone(), v[i])).collect(),
            original_bytes: 0,
            bytes: 0,
            encode_ms: f64::NAN,
            decode_ms: f64::NAN,
            inputs: 0,
            exact: 0,
        })
        .collect();
    Ok(Curve {
        codec: format!("{name} (published)"),
        points,
    })
}

/// The string value of the first `"key": "value"` in a JSON text (no escapes needed here).
fn json_string(json: &str, key: &str) -> Option<String> {
    let at = json.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = json[at..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// The numbers of the first `"key": [ … ]` array in a JSON text; `None` if the key is absent.
fn json_numbers(json: &str, key: &str) -> anyhow::Result<Option<Vec<f64>>> {
    let Some(pos) = json.find(&format!("\"{key}\"")) else {
        return Ok(None);
    };
    let rest = json[pos + key.len() + 2..].trim_start();
    let rest = rest
        .strip_prefix(':')
        .map(str::trim_start)
        .and_then(|r| r.strip_prefix('['));
    let Some(rest) = rest else {
        anyhow::bail!("\"{key}\" is not an array")
    };
    let end = rest
        .find(']')
        .ok_or_else(|| anyhow::anyhow!("\"{key}\": unterminated array"))?;
    rest[..end]
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<f64>()
                .map_err(|_| anyhow::anyhow!("\"{key}\": {t:?} is not a number"))
        })
        .collect::<anyhow::Result<Vec<f64>>>()
        .map(Some)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else if v.is_nan() {
        String::new()
    } else {
        "inf".into()
    }
}

/// The CSV text: a header and one line per row.
pub fn csv(results: &SweepResults) -> String {
    let kind = results.kind;
    let metrics = kind.metric_names();
    let mut s = String::new();
    let mut header = vec![
        "file",
        "codec",
        "setting",
        "level",
        "bytes",
        "original_bytes",
        kind.rate_name(),
        "ratio",
    ];
    header.extend_from_slice(metrics);
    header.extend_from_slice(&[
        "encode_ms",
        "decode_ms",
        "encode_mb_s",
        "decode_mb_s",
        "exact",
        "status",
    ]);
    s.push_str(&header.join(","));
    s.push('\n');
    for r in &results.rows {
        let mut f = vec![
            csv_field(&r.file),
            csv_field(&r.codec),
            csv_field(&r.setting),
            r.level.map(|l| l.to_string()).unwrap_or_default(),
        ];
        let measured = r.error.is_none();
        f.push(if measured {
            r.bytes.to_string()
        } else {
            String::new()
        });
        f.push(r.original_bytes.to_string());
        f.push(if measured {
            num(r.rate(), 6)
        } else {
            String::new()
        });
        f.push(if measured {
            num(r.ratio(), 4)
        } else {
            String::new()
        });
        for m in metrics {
            f.push(r.metrics.get(*m).map(|&v| num(v, 6)).unwrap_or_default());
        }
        f.push(num(r.encode_ms, 3));
        f.push(num(r.decode_ms, 3));
        let mb = |ms: f64| {
            if measured && ms > 0.0 {
                num(r.original_bytes as f64 / 1e3 / ms, 3)
            } else {
                String::new()
            }
        };
        f.push(mb(r.encode_ms));
        f.push(mb(r.decode_ms));
        f.push(r.exact.map(|e| e.to_string()).unwrap_or_default());
        f.push(match (&r.error, r.exact) {
            (Some(e), _) => csv_field(&format!("error: {e}")),
            (None, Some(false)) => "mismatch".into(),
            _ => "ok".into(),
        });
        s.push_str(&f.join(","));
        s.push('\n');
    }
    s
}

/// Picks the anchor curve: the named one (a bare `lcodec` matches the first lcodec curve),
/// else the kind's default, else the first curve with points.
fn pick_anchor<'c>(
    curves: &'c [Curve],
    wanted: Option<&str>,
    kind: DataKind,
    notes: &mut Vec<String>,
) -> Option<&'c Curve> {
    let find = |name: &str| {
        curves.iter().filter(|c| !c.points.is_empty()).find(|c| {
            c.codec.eq_ignore_ascii_case(name)
                || c.codec
                    .strip_suffix(" (published)")
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
                || (name.eq_ignore_ascii_case("lcodec") && c.codec.starts_with("lcodec-"))
        })
    };
    if let Some(w) = wanted {
        if let Some(c) = find(w) {
            return Some(c);
        }
        notes.push(format!("anchor {w:?} has no results in this sweep"));
    }
    find(kind.default_anchor()).or_else(|| curves.iter().find(|c| !c.points.is_empty()))
}

/// The markdown summary.
pub fn summary(results: &SweepResults, anchor: Option<&str>) -> String {
    let kind = results.kind;
    let curves = curves(results);
    let mut notes = results.notes.clone();
    let anchor_curve = pick_anchor(&curves, anchor, kind, &mut notes);
    let mut s = String::new();
    let _ = writeln!(s, "# lcodec sweep: {kind}\n");
    let _ = writeln!(
        s,
        "{} inputs, codecs: {}. Jobs in parallel: {}, threads per codec run: {}. Sizes are real file sizes; \
         times are wall-clock (lcodec in-process, peers including process start and file I/O).\n",
        results.inputs.len(),
        results.codecs.join(", "),
        results.threads,
        results.codec_threads
    );
    let _ = writeln!(s, "| codec | command |\n|---|---|");
    for c in results
        .codecs
        .iter()
        .chain(results.references.iter().map(|r| &r.codec))
    {
        let _ = writeln!(
            s,
            "| {c} | `{}` |",
            results
                .codec_commands
                .get(c)
                .map(String::as_str)
                .unwrap_or("")
        );
    }
    s.push('\n');

    if kind.is_lossless() {
        lossless_summary(&mut s, &curves, anchor_curve);
    } else {
        lossy_summary(&mut s, kind, &curves, anchor_curve);
    }

    let failed: Vec<&Row> = results.rows.iter().filter(|r| !r.ok()).collect();
    if !failed.is_empty() {
        let _ = writeln!(s, "\n## Failed runs ({})\n", failed.len());
        for r in failed {
            let why = r
                .error
                .clone()
                .unwrap_or_else(|| "round trip not exact".into());
            let _ = writeln!(s, "- {} / {} / {}: {}", r.file, r.codec, r.setting, why);
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(s, "\n## Notes\n");
        for n in notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    let _ = writeln!(s, "\n## Inputs\n");
    for i in &results.inputs {
        let _ = writeln!(s, "- {i}");
    }
    s
}

fn lossless_summary(s: &mut String, curves: &[Curve], anchor: Option<&Curve>) {
    let anchor_bytes = anchor.and_then(|a| a.points.first()).map(|p| p.bytes);
    let aname = anchor.map(|a| a.codec.as_str()).unwrap_or("-");
    let _ = writeln!(s, "## Sizes (all inputs together)\n");
    let _ = writeln!(
        s,
        "Ratio = Σ original / Σ compressed; speeds in MB/s (10⁶ bytes) of original per run. \
         \"vs {aname}\" is Σ compressed relative to the anchor (negative = smaller).\n"
    );
    let _ = writeln!(
        s,
        "| codec | setting | Σ original | Σ compressed | ratio | bits/byte | encode MB/s | decode MB/s | vs {aname} | exact |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    for c in curves {
        for p in &c.points {
            let vs = anchor_bytes
                .map(|a| format!("{:+.1}%", (p.bytes as f64 / a.max(1) as f64 - 1.0) * 100.0))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.3} | {:.3} | {:.2} | {:.2} | {} | {}/{} |",
                c.codec,
                p.setting,
                p.original_bytes,
                p.bytes,
                p.ratio(),
                p.bytes as f64 * 8.0 / p.original_bytes.max(1) as f64,
                p.encode_mb_s(),
                p.decode_mb_s(),
                vs,
                p.exact,
                p.inputs
            );
        }
        if c.points.is_empty() {
            let _ = writeln!(s, "| {} | (no complete setting) | | | | | | | | |", c.codec);
        }
    }
}

fn lossy_summary(s: &mut String, kind: DataKind, curves: &[Curve], anchor: Option<&Curve>) {
    let metrics = kind.metric_names();
    let _ = writeln!(s, "## Averages over the inputs\n");
    let mut head = format!("| codec | setting | {} |", kind.rate_name());
    let mut rule = "|---|---|---|".to_string();
    for m in metrics {
        head.push_str(&format!(" {m} |"));
        rule.push_str("---|");
    }
    head.push_str(" encode ms/input | decode ms/input |");
    rule.push_str("---|---|");
    let _ = writeln!(s, "{head}\n{rule}");
    for c in curves {
        for p in &c.points {
            let mut line = format!("| {} | {} | {:.4} |", c.codec, p.setting, p.rate);
            for m in metrics {
                line.push_str(&format!(
                    " {} |",
                    // Small values (LiDAR errors in metres) need more decimals.
                    p.metrics
                        .get(*m)
                        .map(|v| num(*v, if v.abs() < 0.1 { 7 } else { 4 }))
                        .unwrap_or_default()
                ));
            }
            let n = p.inputs.max(1) as f64;
            if p.inputs == 0 {
                line.push_str(" (published) | |");
            } else {
                line.push_str(&format!(
                    " {:.1} | {:.1} |",
                    p.encode_ms / n,
                    p.decode_ms / n
                ));
            }
            let _ = writeln!(s, "{line}");
        }
        if c.points.is_empty() {
            let _ = writeln!(s, "| {} | (no complete setting) | |", c.codec);
        }
    }
    let Some(a) = anchor else {
        let _ = writeln!(s, "\nNo anchor curve: no BD-rates.");
        return;
    };
    for m in kind.rd_metrics() {
        let ra = a.rd(m);
        if ra.is_empty() {
            continue;
        }
        let _ = writeln!(
            s,
            "\n## BD-rate on {m} against {}\n\nBjøntegaard (VCEG-M33): least-squares cubic of ln(rate) over {m}, \
             integrated over the overlapping {m} range (degree 2 or 1 when a curve has only 3 or 2 points). \
             Positive = more bits than {} at equal quality. BD-{m} is the mean quality gain at equal rate.\n",
            a.codec, a.codec
        );
        let _ = writeln!(
            s,
            "| codec | points | fit degree (anchor/curve) | BD-rate | BD-{m} |\n|---|---|---|---|---|"
        );
        for c in curves {
            let rc = c.rd(m);
            let deg = format!(
                "{}/{}",
                bdrate::fit_degree(ra.len()),
                bdrate::fit_degree(rc.len())
            );
            let bd = bdrate::bd_rate(&ra, &rc)
                .map(|v| format!("{v:+.2}%"))
                .unwrap_or_else(|| "n/a".into());
            let bq = bdrate::bd_quality(&ra, &rc)
                .map(|v| format!("{v:+.4}"))
                .unwrap_or_else(|| "n/a".into());
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                c.codec,
                rc.len(),
                deg,
                bd,
                bq
            );
        }
    }
    head_to_head(s, kind, curves);
}

/// BD-rates of each lcodec curve with every other curve as the anchor: the direct
/// comparison ("smaller than WebP at equal PSNR?"), which two BD-rates against a common
/// anchor only approximate (they integrate over different quality ranges).
fn head_to_head(s: &mut String, kind: DataKind, curves: &[Curve]) {
    let ours: Vec<&Curve> = curves
        .iter()
        .filter(|c| c.codec.starts_with("lcodec"))
        .collect();
    if ours.is_empty() || curves.len() < 2 {
        return;
    }
    for m in kind.rd_metrics() {
        let _ = writeln!(
            s,
            "\n## lcodec against each curve on {m}\n\nBD-rate of the lcodec curve with the other \
             curve as the anchor, over the {m} range both cover. Negative = lcodec needs fewer bits.\n\n\
             | lcodec curve | anchor | {m} range | BD-rate |\n|---|---|---|---|"
        );
        for o in &ours {
            let ro = o.rd(m);
            for a in curves.iter().filter(|a| a.codec != o.codec) {
                let ra = a.rd(m);
                let range = match (bdrate::quality_range(&ra), bdrate::quality_range(&ro)) {
                    (Some((a0, a1)), Some((o0, o1))) if a0.max(o0) < a1.min(o1) => {
                        format!("{:.4}–{:.4}", a0.max(o0), a1.min(o1))
                    }
                    _ => "no overlap".into(),
                };
                let bd = bdrate::bd_rate(&ra, &ro)
                    .map(|v| format!("{v:+.2}%"))
                    .unwrap_or_else(|| "n/a".into());
                let _ = writeln!(s, "| {} | {} | {range} | {bd} |", o.codec, a.codec);
            }
        }
    }
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
];

fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let span = (hi - lo).abs().max(1e-9);
    (lo - span * 0.05, hi + span * 0.05)
}

/// Axis label of a metric or rate name.
fn axis_label(name: &str) -> &str {
    match name {
        "psnr" => "PSNR, RGB (dB)",
        "ms_ssim" => "MS-SSIM (RGB mean)",
        "psnr_yuv" => "PSNR-YUV 6:1:1 (dB)",
        "ms_ssim_y" => "MS-SSIM (luma)",
        "snr_db" => "SNR (dB)",
        "bpp" => "bits per pixel",
        "bits_per_sample" => "bits per sample",
        other => other,
    }
}

/// An RD plot of `metric` against the rate, one line per codec.
fn rd_plot(path: &Path, kind: DataKind, metric: &str, curves: &[Curve]) -> anyhow::Result<bool> {
    let series: Vec<(&str, Vec<(f64, f64)>)> = curves
        .iter()
        .map(|c| {
            let mut pts: Vec<(f64, f64)> = c
                .rd(metric)
                .iter()
                .map(|p| (p.rate, p.quality))
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (c.codec.as_str(), pts)
        })
        .filter(|(_, p)| !p.is_empty())
        .collect();
    if series.is_empty() {
        return Ok(false);
    }
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    let (x0, x1) = padded(x0.min(0.0), x1);
    let (y0, y1) = padded(y0, y1);
    let root = SVGBackend::new(path, (800, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{kind}: {metric} vs {}", kind.rate_name()),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(axis_label(kind.rate_name()))
        .y_desc(axis_label(metric))
        .draw()
        .map_err(plot_err)?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let width = if name.starts_with("lcodec") { 3 } else { 2 };
        chart
            .draw_series(LineSeries::new(
                pts.iter().copied(),
                color.stroke_width(width),
            ))
            .map_err(plot_err)?
            .label(name.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(plot_err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(true)
}

/// Ratio against encode speed for lossless kinds, one point per codec setting.
fn ratio_plot(path: &Path, curves: &[Curve]) -> anyhow::Result<bool> {
    let pts: Vec<(String, f64, f64)> = curves
        .iter()
        .flat_map(|c| {
            c.points.iter().map(move |p| {
                let label = if c.points.len() > 1 {
                    format!("{} {}", c.codec, p.setting)
                } else {
                    c.codec.clone()
                };
                (label, p.encode_mb_s(), p.ratio())
            })
        })
        .filter(|(_, x, y)| x.is_finite() && *x > 0.0 && y.is_finite())
        .collect();
    if pts.is_empty() {
        return Ok(false);
    }
    let xs = pts.iter().map(|p| p.1);
    let (x0, x1) = xs.fold((f64::INFINITY, 0.0f64), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let (y0, y1) = pts.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), p| {
        (lo.min(p.2), hi.max(p.2))
    });
    let (y0, y1) = padded(y0.min(1.0), y1);
    let root = SVGBackend::new(path, (800, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("compression ratio vs encode speed", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d((x0 / 1.5..x1 * 1.5).log_scale(), y0..y1)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("encode MB/s (log)")
        .y_desc("ratio (Σ original / Σ compressed)")
        .draw()
        .map_err(plot_err)?;
    for (i, (label, x, y)) in pts.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(std::iter::once(Circle::new((*x, *y), 5, color.filled())))
            .map_err(plot_err)?
            .label(label.clone())
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(true)
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plotting: {e:?}")
}

/// Writes `results.csv`, the plots (`rd_<metric>.svg`, or `ratio_speed.svg` for lossless
/// kinds) and `summary.md` into `out` (created if needed).
///
/// # Errors
/// The folder or a file cannot be written.
pub fn write_outputs(
    results: &SweepResults,
    out: &Path,
    anchor: Option<&str>,
) -> anyhow::Result<Outputs> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let csv_path = out.join("results.csv");
    std::fs::write(&csv_path, csv(results))
        .with_context(|| format!("writing {}", csv_path.display()))?;
    let cs = curves(results);
    let mut plots = Vec::new();
    if results.kind.is_lossless() {
        let p = out.join("ratio_speed.svg");
        if ratio_plot(&p, &cs)? {
            plots.push(p);
        }
    } else {
        for m in results.kind.rd_metrics() {
            let p = out.join(format!("rd_{m}.svg"));
            if rd_plot(&p, results.kind, m, &cs)? {
                plots.push(p);
            }
        }
    }
    let summary_path = out.join("summary.md");
    std::fs::write(&summary_path, summary(results, anchor))
        .with_context(|| format!("writing {}", summary_path.display()))?;
    Ok(Outputs {
        csv: csv_path,
        plots,
        summary: summary_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressai_results_json_parses() {
        let j = r#"{"name": "VTM", "description": "x", "results": {"psnr": [26.1, 28.5],
            "ms-ssim": [0.86, 0.91], "bpp": [0.048, 0.112], "encoding_time": [18.9, 39.7]}}"#;
        let c = parse_reference(j, "file").unwrap();
        assert_eq!(c.codec, "VTM (published)");
        assert_eq!(c.points.len(), 2);
        assert_eq!(c.points[1].rate, 0.112);
        assert_eq!(c.points[0].metrics["ms_ssim"], 0.86);
        assert!(parse_reference(r#"{"results": {"psnr": [1, 2]}}"#, "f").is_err());
        assert!(parse_reference(r#"{"results": {"bpp": [1, 2], "psnr": [1]}}"#, "f").is_err());
        assert!(parse_reference(r#"{"results": {"bpp": [1, "x"]}}"#, "f").is_err());
        assert_eq!(
            parse_reference(r#"{"results": {"bpp": [0.5]}}"#, "f")
                .unwrap()
                .codec,
            "f (published)"
        );
    }

    #[test]
    fn csv_fields_with_commas_are_quoted() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\", ok"), "\"say \"\"hi\"\", ok\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
