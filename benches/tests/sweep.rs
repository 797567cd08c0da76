//! End-to-end sweeps through the library API: real encodes and decodes with lcodec and
//! the peer tools that are installed (missing ones are skipped with a printed note),
//! checking the CSV, the plots and the summary.

#![allow(clippy::unwrap_used)] // a panic in a test is a failure with its message

use std::path::{Path, PathBuf};

use lcodec_bench::{DataKind, SweepConfig, media, metrics::Image8, peers, sweep, write_outputs};

fn shared(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(rel);
    p.exists().then_some(p)
}

fn installed(peer: &str) -> bool {
    let ok = peers::Peer::by_name(peer).is_some_and(|p| p.missing_tool().is_none());
    if !ok {
        eprintln!(
            "note: peer {peer} not installed; its checks are skipped (scripts/install-peers.sh)"
        );
    }
    ok
}

fn csv_rows(csv: &str) -> Vec<Vec<String>> {
    csv.lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

fn column(rows: &[Vec<String>], name: &str) -> usize {
    rows[0]
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", rows[0]))
}

/// A natural-ish test picture (smooth gradients plus texture), big enough for MS-SSIM.
fn picture(w: usize, h: usize, seed: u32) -> Image8 {
    let mut data = Vec::with_capacity(w * h * 3);
    let mut s = seed;
    for y in 0..h {
        for x in 0..w {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let n = ((s >> 16) % 24) as usize;
            let v =
                ((x * 200 / w + y * 40 / h) + if (x / 16 + y / 16) % 2 == 0 { 30 } else { 0 } + n)
                    % 256;
            data.extend_from_slice(&[v as u8, ((v + x / 3) % 256) as u8, (255 - v) as u8]);
        }
    }
    Image8 {
        width: w,
        height: h,
        channels: 3,
        data,
    }
}

#[test]
fn image_sweep_runs_the_peers_and_writes_csv_svg_and_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("images");
    let kodak = shared("images/kodak");
    let mut cfg = match &kodak {
        Some(k) => {
            let mut c = SweepConfig::new(DataKind::Image, k.clone());
            c.limit = Some(2);
            c
        }
        None => {
            eprintln!("note: Kodak not found; using two generated 192x176 pictures");
            std::fs::create_dir_all(&data).unwrap();
            for i in 0..2 {
                std::fs::write(
                    data.join(format!("p{i}.png")),
                    media::png_bytes(&picture(192, 176, i)).unwrap(),
                )
                .unwrap();
            }
            SweepConfig::new(DataKind::Image, data.clone())
        }
    };
    cfg.qualities = vec![1, 3, 5];
    cfg.peers = vec!["jpeg".into(), "webp".into()];
    cfg.threads = 2;
    cfg.references =
        vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/compressai_kodak_vtm.json")];
    let registry = lcodec::Registry::with_enabled();
    let res = sweep(&cfg, &registry).unwrap();
    assert_eq!(res.inputs.len(), 2);
    assert_eq!(res.references[0].codec, "VTM (published)");
    if registry.by_name("image").is_none() {
        assert!(
            res.notes
                .iter()
                .any(|n| n.contains("lcodec image codec is not in this build")),
            "{:?}",
            res.notes
        );
    }
    let out = tmp.path().join("out");
    let files = write_outputs(&res, &out, Some("jpeg")).unwrap();
    let csv = std::fs::read_to_string(&files.csv).unwrap();
    let rows = csv_rows(&csv);
    let (codec, bpp, psnr, ms) = (
        column(&rows, "codec"),
        column(&rows, "bpp"),
        column(&rows, "psnr"),
        column(&rows, "ms_ssim"),
    );
    let summary = std::fs::read_to_string(&files.summary).unwrap();
    for peer in ["jpeg", "webp"] {
        if !installed(peer) {
            continue;
        }
        let mine: Vec<_> = rows.iter().filter(|r| r[codec] == peer).collect();
        assert_eq!(mine.len(), 2 * 3, "{peer}: one row per input x level");
        let mut last = 0.0;
        for r in &mine {
            let (b, p, m): (f64, f64, f64) = (
                r[bpp].parse().unwrap(),
                r[psnr].parse().unwrap(),
                r[ms].parse().unwrap(),
            );
            assert!(b > 0.01 && b < 8.0, "{peer} bpp {b}");
            assert!(p > 15.0 && p < 60.0, "{peer} psnr {p}");
            assert!(m > 0.5 && m <= 1.0, "{peer} ms-ssim {m}");
            assert_eq!(r.last().map(String::as_str), Some("ok"));
            if r[0] == mine[0][0] {
                assert!(b > last, "{peer}: rate grows with the level");
                last = b;
            }
        }
        assert!(summary.contains(&format!("| {peer} |")), "{summary}");
    }
    if installed("jpeg") && installed("webp") {
        assert!(files.plots.iter().any(|p| p.ends_with("rd_psnr.svg")));
        let svg = std::fs::read_to_string(out.join("rd_psnr.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("webp") && svg.contains("jpeg"));
        assert!(
            summary.contains("BD-rate on psnr against jpeg"),
            "{summary}"
        );
        assert!(
            summary.contains("| VTM (published) | 8 | 2/3 |"),
            "{summary}"
        );
        assert!(svg.contains("VTM (published)"));
        // WebP beats JPEG 4:2:0 on PSNR by a wide margin (PEERS.md: about -36 % on all Kodak).
        let line = summary
            .lines()
            .skip_while(|l| !l.contains("BD-rate on psnr"))
            .find(|l| l.starts_with("| webp |"))
            .unwrap();
        let bd: f64 = line
            .split('|')
            .nth(4)
            .unwrap()
            .trim()
            .trim_end_matches('%')
            .parse()
            .unwrap();
        assert!(bd < -10.0, "webp vs jpeg BD-rate {bd}");
        if registry.by_name("image").is_some() {
            // The direct comparison of lcodec with each peer, e.g. WebP as the anchor.
            let row = summary
                .lines()
                .skip_while(|l| !l.contains("lcodec against each curve on psnr"))
                .find(|l| l.starts_with("| lcodec-image | webp |"))
                .unwrap_or_else(|| panic!("no head-to-head row:\n{summary}"));
            // On Kodak the curves overlap; two generated pictures may not.
            assert!(
                row.trim_end().ends_with("% |") || (kodak.is_none() && row.contains("n/a")),
                "{row}"
            );
        }
    }
}

fn write_lossless_inputs(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let text: String = (0..3000)
        .map(|i| {
            format!(
                "2026-11-23 06:{:02}:{:02} INFO worker {} finished job {}\n",
                i / 60 % 60,
                i % 60,
                i % 7,
                i * 13
            )
        })
        .collect();
    std::fs::write(dir.join("a.log"), text).unwrap();
    let mut s = 7u64;
    let noise: Vec<u8> = (0..20_000)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    std::fs::write(dir.join("sub/b.bin"), noise).unwrap();
    std::fs::write(dir.join("c.empty"), b"").unwrap();
    // Data-set paperwork is left out of folder sweeps.
    std::fs::write(dir.join("README.md"), b"# about these files\n").unwrap();
    std::fs::write(dir.join("LICENSE"), b"CC0\n").unwrap();
}

#[test]
fn raw_sweep_measures_lcodec_raw_and_lossless_peers_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("files");
    write_lossless_inputs(&data);
    let mut cfg = SweepConfig::new(DataKind::Raw, data);
    cfg.qualities = vec![3, 19];
    cfg.peers = vec![
        "gzip".into(),
        "xz".into(),
        "zstd".into(),
        "brotli".into(),
        "bzip2".into(),
    ];
    cfg.threads = 2;
    let res = sweep(&cfg, &lcodec::Registry::with_enabled()).unwrap();
    assert_eq!(res.inputs, vec!["a.log", "c.empty", "sub/b.bin"]);
    assert_eq!(res.codecs[0], "lcodec-raw");
    for r in &res.rows {
        assert!(r.ok(), "{r:?}");
        assert_eq!(
            r.exact,
            Some(true),
            "{} {} must round-trip exactly",
            r.file,
            r.codec
        );
    }
    let raw_log: Vec<_> = res
        .rows
        .iter()
        .filter(|r| r.codec == "lcodec-raw" && r.file == "a.log")
        .collect();
    assert_eq!(raw_log.len(), 2);
    assert!(raw_log.iter().all(|r| r.ratio() > 5.0), "{raw_log:?}");
    assert!(
        raw_log[1].bytes <= raw_log[0].bytes,
        "level 19 is no larger than level 3"
    );
    let out = tmp.path().join("out");
    let files = write_outputs(&res, &out, Some("xz")).unwrap();
    let csv = std::fs::read_to_string(&files.csv).unwrap();
    let rows = csv_rows(&csv);
    for c in [
        "ratio",
        "bits_per_byte",
        "encode_mb_s",
        "decode_mb_s",
        "exact",
    ] {
        column(&rows, c);
    }
    assert_eq!(rows.len(), 1 + res.rows.len());
    let summary = std::fs::read_to_string(&files.summary).unwrap();
    assert!(summary.contains("| lcodec-raw | q19 |"), "{summary}");
    assert!(summary.contains("vs xz") || !installed("xz"));
    assert!(files.plots.iter().any(|p| p.ends_with("ratio_speed.svg")));
}

#[test]
fn log_and_text_sweeps_fall_back_to_raw_when_their_codec_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("files");
    write_lossless_inputs(&data);
    let registry = lcodec::Registry::with_enabled();
    for kind in [DataKind::Log, DataKind::Text] {
        let mut cfg = SweepConfig::new(kind, data.join("a.log"));
        cfg.peers = vec!["xz".into(), "zstd".into()];
        let res = sweep(&cfg, &registry).unwrap();
        assert_eq!(res.inputs, vec!["a.log"]);
        let own = kind
            .lcodec_codecs()
            .iter()
            .find_map(|n| registry.by_name(n));
        match own {
            Some(c) => assert_eq!(res.codecs[0], format!("lcodec-{}", c.info().name)),
            None => {
                assert_eq!(res.codecs[0], "lcodec-raw");
                assert!(
                    res.notes
                        .iter()
                        .any(|n| n.contains("measuring lcodec raw instead"))
                );
            }
        }
        assert!(
            res.rows.iter().all(|r| r.exact == Some(true)),
            "{:?}",
            res.rows
        );
    }
}

#[test]
fn real_logs_round_trip_through_every_codec() {
    let Some(logs) = shared("logs/loghub_2k") else {
        eprintln!("skipped: ../shared/data/logs/loghub_2k not found");
        return;
    };
    let mut cfg = SweepConfig::new(DataKind::Log, logs);
    cfg.limit = Some(2);
    cfg.peers = vec!["xz".into(), "zstd".into()];
    cfg.lcodec = vec!["raw".into()];
    let res = sweep(&cfg, &lcodec::Registry::with_enabled()).unwrap();
    assert_eq!(res.inputs.len(), 2);
    for r in &res.rows {
        assert_eq!(r.exact, Some(true), "{r:?}");
        assert!(r.ratio() > 3.0, "{r:?}");
    }
}

fn wav(rate: u32, samples: &[i16]) -> Vec<u8> {
    let mut b = Vec::new();
    let data_len = (samples.len() * 2) as u32;
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

#[test]
fn audio_sweep_checks_flac_exactly_and_measures_opus_snr() {
    if !installed("flac") && !installed("opus") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audio");
    std::fs::create_dir_all(&dir).unwrap();
    let samples: Vec<i16> = (0..32_000)
        .map(|i| {
            let t = i as f64 / 16_000.0;
            (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                + 3000.0 * (2.0 * std::f64::consts::PI * 1250.0 * t).sin()) as i16
        })
        .collect();
    std::fs::write(dir.join("tone.wav"), wav(16_000, &samples)).unwrap();
    let mut cfg = SweepConfig::new(DataKind::Audio, dir);
    cfg.qualities = vec![4, 8];
    cfg.peers = vec!["flac".into(), "opus".into()];
    let res = sweep(&cfg, &lcodec::Registry::with_enabled()).unwrap();
    for r in &res.rows {
        assert!(r.error.is_none(), "{r:?}");
        if r.codec == "flac" {
            assert_eq!(r.exact, Some(true));
            assert!(r.rate() < 16.0);
        }
        if r.codec == "opus" {
            let snr = r.metrics["snr_db"];
            assert!(snr.is_finite(), "{r:?}");
            assert!(
                r.metrics["kbps"] > 4.0 && r.metrics["kbps"] < 150.0,
                "{r:?}"
            );
        }
    }
    let files = write_outputs(&res, &tmp.path().join("out"), None).unwrap();
    assert!(
        std::fs::read_to_string(files.csv)
            .unwrap()
            .starts_with("file,codec,setting,level,bytes,original_bytes,bits_per_sample")
    );
}

#[test]
fn video_sweep_measures_psnr_yuv_with_x264() {
    if !installed("x264") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (w, h, n) = (64usize, 48usize, 6usize);
    let mut y4m = format!("YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420jpeg\n").into_bytes();
    for f in 0..n {
        y4m.extend_from_slice(b"FRAME\n");
        for y in 0..h {
            for x in 0..w {
                y4m.push(((x * 3 + y * 2 + f * 4) % 256) as u8);
            }
        }
        y4m.extend(std::iter::repeat_n(128u8, 2 * (w / 2) * (h / 2)));
    }
    let path = tmp.path().join("clip.y4m");
    std::fs::write(&path, y4m).unwrap();
    let mut cfg = SweepConfig::new(DataKind::Video, &path);
    cfg.qualities = vec![2, 6];
    cfg.peers = vec!["x264".into()];
    let res = sweep(&cfg, &lcodec::Registry::with_enabled()).unwrap();
    let rows: Vec<_> = res.rows.iter().filter(|r| r.codec == "x264").collect();
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert!(r.error.is_none(), "{r:?}");
        assert!(r.metrics["psnr_yuv"] > 25.0, "{r:?}");
        assert!(
            !r.metrics.contains_key("ms_ssim_y"),
            "64x48 is too small for MS-SSIM"
        );
    }
}

#[test]
fn bad_arguments_and_unreadable_inputs_are_errors_or_notes() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = lcodec::Registry::with_enabled();
    // Missing folder.
    let cfg = SweepConfig::new(DataKind::Raw, tmp.path().join("nope"));
    assert!(sweep(&cfg, &registry).is_err());
    // Unknown peer.
    write_lossless_inputs(tmp.path());
    let mut cfg = SweepConfig::new(DataKind::Raw, tmp.path());
    cfg.peers = vec!["pkzip".into()];
    let err = sweep(&cfg, &registry).unwrap_err().to_string();
    assert!(
        err.contains("unknown peer") && err.contains("zstd"),
        "{err}"
    );
    // A peer of another family is skipped with a note.
    cfg.peers = vec!["jpeg".into()];
    let res = sweep(&cfg, &registry).unwrap();
    assert!(
        res.notes.iter().any(|n| n.contains("does not apply")),
        "{:?}",
        res.notes
    );
    // Unknown kind.
    assert!(DataKind::parse("hologram").is_err());
    // A corrupt image is skipped with a note; with no readable image left the sweep fails.
    let imgs = tmp.path().join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    std::fs::write(imgs.join("bad.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let cfg = SweepConfig::new(DataKind::Image, &imgs);
    assert!(sweep(&cfg, &registry).is_err());
    std::fs::write(
        imgs.join("good.png"),
        media::png_bytes(&picture(40, 30, 3)).unwrap(),
    )
    .unwrap();
    let mut cfg = SweepConfig::new(DataKind::Image, &imgs);
    cfg.peers = vec![];
    let res = sweep(&cfg, &registry).unwrap();
    assert_eq!(res.inputs, vec!["good.png"]);
    assert!(
        res.notes.iter().any(|n| n.contains("bad.png skipped")),
        "{:?}",
        res.notes
    );
}

#[test]
fn lidar_sweep_reports_bits_per_point_and_errors() {
    let registry = lcodec::Registry::with_enabled();
    if registry.by_name("lidar").is_none() {
        eprintln!("skipped: lcodec lidar codec not in this build");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut bin = Vec::new();
    for i in 0..3000 {
        let a = i as f32 * 0.0021;
        for v in [12.0 * a.cos(), 12.0 * a.sin(), -1.7 + 0.001 * i as f32, 0.3] {
            bin.extend_from_slice(&v.to_le_bytes());
        }
    }
    let path = tmp.path().join("sweep.bin");
    std::fs::write(&path, &bin).unwrap();
    let mut cfg = SweepConfig::new(DataKind::Lidar, &path);
    cfg.peers = vec![];
    let res = sweep(&cfg, &registry).unwrap();
    assert_eq!(res.rows.len(), 1);
    let r = &res.rows[0];
    assert!(r.error.is_none(), "{r:?}");
    assert!(
        r.rate() > 0.5 && r.rate() < 128.0,
        "bits per point {}",
        r.rate()
    );
    // Default precision 1 mm: every coordinate within 0.5 mm.
    assert!(r.metrics["max_error"] <= 0.0005 + 1e-6, "{r:?}");
    assert!(r.metrics["mean_error"] <= r.metrics["max_distance"]);
    let files = write_outputs(&res, &tmp.path().join("out"), None).unwrap();
    let csv = std::fs::read_to_string(files.csv).unwrap();
    assert!(csv.starts_with("file,codec,setting,level,bytes,original_bytes,bits_per_point,ratio,max_error,mean_error,max_distance"));
}

#[test]
fn lidar_sweep_measures_laszip_and_draco_at_the_same_precision() {
    let registry = lcodec::Registry::with_enabled();
    let tmp = tempfile::tempdir().unwrap();
    let mut bin = Vec::new();
    for i in 0..4000 {
        let a = i as f32 * 0.0019;
        let r = 8.0 + (i % 64) as f32 * 0.37;
        for v in [
            r * a.cos(),
            r * a.sin(),
            -1.7 + 0.0013 * (i % 97) as f32,
            (i % 100) as f32 / 100.0,
        ] {
            bin.extend_from_slice(&v.to_le_bytes());
        }
    }
    let path = tmp.path().join("frame.bin");
    std::fs::write(&path, &bin).unwrap();
    let mut cfg = SweepConfig::new(DataKind::Lidar, &path);
    cfg.peers = vec!["laszip".into(), "laszip-xyz".into(), "draco".into()];
    let res = sweep(&cfg, &registry).unwrap();
    let row = |name: &str| res.rows.iter().find(|r| r.codec == name);
    let las = row("laszip").unwrap_or_else(|| panic!("no laszip row: {:?}", res.notes));
    assert!(las.error.is_none(), "{las:?}");
    assert!(las.rate() > 0.0 && las.rate() < 160.0, "{}", las.rate());
    // scale = 1 mm: every coordinate within half a millimetre (plus float rounding).
    assert!(las.metrics["max_error"] <= 0.0005 + 1e-9, "{las:?}");
    assert!(las.metrics["mean_error"] <= las.metrics["max_distance"]);
    if installed("draco") {
        let d = row("draco").unwrap_or_else(|| panic!("no draco row: {:?}", res.notes));
        assert!(d.error.is_none(), "{d:?}");
        assert!(d.rate() > 0.0, "{d:?}");
        assert!(d.metrics["max_error"].is_finite(), "{d:?}");
        eprintln!(
            "draco {}: {:.2} bits/point, max error {:.6} m",
            d.setting,
            d.rate(),
            d.metrics["max_error"]
        );
    } else {
        assert!(row("draco").is_none());
    }
    eprintln!(
        "laszip {}: {:.2} bits/point, max error {:.6} m",
        las.setting,
        las.rate(),
        las.metrics["max_error"]
    );
    let xyz = row("laszip-xyz").unwrap();
    assert!(xyz.error.is_none(), "{xyz:?}");
    assert_eq!(xyz.metrics["max_error"], las.metrics["max_error"]);
    assert!(xyz.bytes < las.bytes, "{xyz:?} vs {las:?}");
    // A coarser precision parameter reaches the peers too.
    cfg.params.insert("precision".into(), "0.01".into());
    cfg.peers = vec!["laszip".into()];
    let coarse = sweep(&cfg, &registry).unwrap();
    let c = coarse.rows.iter().find(|r| r.codec == "laszip").unwrap();
    assert!(c.error.is_none(), "{c:?}");
    assert!(
        c.metrics["max_error"] <= 0.005 + 1e-9 && c.rate() < las.rate(),
        "{c:?}"
    );
}
