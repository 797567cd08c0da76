//! The Rust metrics agree with independent implementations: PSNR and SSIM with
//! scikit-image, MS-SSIM with pytorch_msssim (float64), on Kodak images coded as JPEG.
//!
//! The reference values in `testdata/metrics_reference.csv` were written by
//! `benches/scripts/check_metrics.py` (see its docstring for the command). This test
//! rebuilds the same JPEGs with cjpeg/djpeg and checks the Rust values; it skips (with a
//! printed reason) when Kodak, the tools or the same libjpeg-turbo version are absent,
//! since another version may produce other JPEGs.

#![allow(clippy::unwrap_used)] // a panic in a test is a failure with its message

use std::path::Path;
use std::process::Command;

use lcodec_bench::{media, metrics};

const KODAK: &str = "../../shared/data/images/kodak";

fn kodak_dir() -> Option<std::path::PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join(KODAK);
    d.is_dir().then_some(d)
}

fn libjpeg_version() -> Option<String> {
    let out = Command::new("cjpeg").arg("-version").output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(|l| l.trim().to_string())
}

#[test]
fn metrics_match_scikit_image_and_pytorch_msssim() {
    let csv = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/metrics_reference.csv"),
    )
    .unwrap();
    let Some(kodak) = kodak_dir() else {
        eprintln!("skipped: Kodak images not found at {KODAK}");
        return;
    };
    let Some(version) = libjpeg_version() else {
        eprintln!("skipped: cjpeg not installed (scripts/install-peers.sh)");
        return;
    };
    let made_with = csv.lines().nth(1).unwrap_or("");
    if !made_with.contains(&version) {
        eprintln!(
            "skipped: reference JPEGs were made with another libjpeg ({made_with}); this one is {version}"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for line in csv.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (name, q, size) = (f[0], f[1], f[2].parse::<u64>().unwrap());
        let (psnr, ssim, ms): (f64, f64, f64) = (
            f[3].parse().unwrap(),
            f[4].parse().unwrap(),
            f[5].parse().unwrap(),
        );
        let reference =
            media::decode_rgb8(&std::fs::read(kodak.join(format!("{name}.png"))).unwrap()).unwrap();
        let ppm = tmp.path().join(format!("{name}.ppm"));
        std::fs::write(&ppm, media::ppm_bytes(&reference)).unwrap();
        let jpg = tmp.path().join("t.jpg");
        let dec = tmp.path().join("t.ppm");
        let ok = Command::new("cjpeg")
            .args(["-quality", q, "-sample", "2x2", "-outfile"])
            .arg(&jpg)
            .arg(&ppm)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok);
        assert_eq!(
            std::fs::metadata(&jpg).unwrap().len(),
            size,
            "{name} q{q}: JPEG size differs from the reference run"
        );
        assert!(
            Command::new("djpeg")
                .args(["-pnm", "-outfile"])
                .arg(&dec)
                .arg(&jpg)
                .status()
                .unwrap()
                .success()
        );
        let decoded = media::decode_rgb8(&std::fs::read(&dec).unwrap()).unwrap();
        let p = metrics::psnr(&reference, &decoded).unwrap();
        let s = metrics::ssim(&reference, &decoded).unwrap();
        let m = metrics::ms_ssim(&reference, &decoded).unwrap();
        println!(
            "{name} q{q}: PSNR {p:.6} (ref {psnr:.6}) SSIM {s:.6} (ref {ssim:.6}) MS-SSIM {m:.6} (ref {ms:.6})"
        );
        // Required: 0.01 dB and 0.001; measured differences are ~1e-10 and ~1e-6.
        assert!((p - psnr).abs() < 1e-6, "{name} q{q} PSNR {p} vs {psnr}");
        assert!((s - ssim).abs() < 1e-6, "{name} q{q} SSIM {s} vs {ssim}");
        assert!((m - ms).abs() < 1e-5, "{name} q{q} MS-SSIM {m} vs {ms}");
        checked += 1;
    }
    assert_eq!(checked, 12);
}
