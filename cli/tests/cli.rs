//! End-to-end tests of the `lcodec` binary: exit codes, messages, atomic outputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rand::{RngCore, SeedableRng};

fn lcodec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lcodec"))
        .args(args)
        .output()
        .expect("run lcodec")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Names in `dir`, so tests can assert that no output or temporary file was left behind.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn round_trip(dir: &Path, input: &Path) {
    let lc = dir.join("x.lc");
    let back = dir.join("x.out");
    let o = lcodec(&["encode", s(input), "-o", s(&lc), "-f"]);
    assert!(
        o.status.success(),
        "encode {}: {}",
        input.display(),
        stderr(&o)
    );
    let o = lcodec(&["decode", s(&lc), "-o", s(&back), "-f"]);
    assert!(
        o.status.success(),
        "decode {}: {}",
        input.display(),
        stderr(&o)
    );
    let a = std::fs::read(input).expect("read input");
    let b = std::fs::read(&back).expect("read output");
    assert!(a == b, "{} did not round-trip", input.display());
}

#[test]
fn random_50mb_round_trips() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("random.bin");
    let mut data = vec![0u8; 50 << 20];
    rand_chacha::ChaCha8Rng::seed_from_u64(50).fill_bytes(&mut data);
    std::fs::write(&input, &data).expect("write");
    round_trip(dir.path(), &input);
}

#[test]
fn shared_text_corpora_round_trip() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/text");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut n = 0;
    for sub in ["canterbury", "calgary"] {
        let Ok(rd) = std::fs::read_dir(root.join(sub)) else {
            eprintln!("skipping: {} not found", root.join(sub).display());
            return;
        };
        for e in rd.flatten() {
            if e.path().is_file() {
                round_trip(dir.path(), &e.path());
                n += 1;
            }
        }
    }
    assert!(n >= 10, "only {n} files");
}

struct Fixture {
    dir: tempfile::TempDir,
    input: PathBuf,
    lc: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.txt");
    let text: String = (0..20_000)
        .map(|i| format!("line {i} value {}\n", i * 7919 % 1000))
        .collect();
    std::fs::write(&input, text).expect("write");
    let lc = dir.path().join("in.lc");
    let o = lcodec(&[
        "encode",
        s(&input),
        "-o",
        s(&lc),
        "--chunk-size",
        "65536",
        "--codec",
        "raw",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    Fixture { dir, input, lc }
}

#[test]
fn truncated_file_fails_cleanly() {
    let f = fixture();
    let full = std::fs::read(&f.lc).expect("read");
    let cut = f.dir.path().join("cut.lc");
    for n in [0, 7, 20, full.len() / 2, full.len() - 1] {
        std::fs::write(&cut, &full[..n]).expect("write");
        let before = listing(f.dir.path());
        let out = f.dir.path().join("cut.out");
        let o = lcodec(&["decode", s(&cut), "-o", s(&out)]);
        assert_eq!(o.status.code(), Some(1), "truncated to {n}");
        let msg = stderr(&o);
        assert!(
            msg.starts_with("lcodec: ") && msg.contains("cut.lc: "),
            "{msg}"
        );
        assert_eq!(msg.trim_end().lines().count(), 1, "{msg}");
        assert_eq!(
            listing(f.dir.path()),
            before,
            "output or temp file left behind"
        );
    }
}

#[test]
fn bit_flipped_file_fails_cleanly_naming_the_chunk() {
    let f = fixture();
    let mut data = std::fs::read(&f.lc).expect("read");
    let mid = data.len() / 2;
    data[mid] ^= 0x20;
    let bad = f.dir.path().join("bad.lc");
    std::fs::write(&bad, &data).expect("write");
    let before = listing(f.dir.path());
    let o = lcodec(&["decode", s(&bad), "-o", s(&f.dir.path().join("bad.out"))]);
    assert_eq!(o.status.code(), Some(1));
    let msg = stderr(&o);
    assert!(
        msg.contains("bad.lc: chunk ") && msg.contains("checksum mismatch"),
        "{msg}"
    );
    assert_eq!(listing(f.dir.path()), before);
    // The input is never modified.
    assert_eq!(std::fs::read(&bad).expect("read"), data);
}

#[test]
fn existing_output_needs_force() {
    let f = fixture();
    let before = std::fs::read(&f.lc).expect("read");
    let o = lcodec(&["encode", s(&f.input), "-o", s(&f.lc), "-q", "3"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("exists"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(&f.lc).expect("read"),
        before,
        "output was modified"
    );
    let o = lcodec(&["encode", s(&f.input), "-o", s(&f.lc), "-q", "3", "-f"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(std::fs::read(&f.lc).expect("read"), before);
    // Writing over the input itself is refused even with -f.
    let o = lcodec(&["decode", s(&f.lc), "-o", s(&f.lc), "-f"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn info_shows_codec_sizes_and_chunks() {
    let f = fixture();
    let o = lcodec(&["info", s(&f.lc)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let size = std::fs::metadata(&f.input).expect("meta").len();
    assert!(text.contains("codec:           raw (id 1"), "{text}");
    assert!(
        text.contains(&format!("original size:   {size} bytes")),
        "{text}"
    );
    assert!(text.contains("chunks:          "), "{text}");
    assert!(text.contains("ratio:"), "{text}");
}

#[test]
fn stdin_to_stdout_round_trips() {
    let f = fixture();
    let data = std::fs::read(&f.input).expect("read");
    let enc = pipe(&["encode", "-", "-o", "-"], &data);
    assert!(enc.status.success());
    let dec = pipe(&["decode", "-", "-o", "-"], &enc.stdout);
    assert!(dec.status.success(), "{}", stderr(&dec));
    assert_eq!(dec.stdout, data);
}

fn pipe(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_lcodec"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let t = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("wait");
    t.join().expect("join").expect("write stdin");
    out
}

#[test]
fn usage_errors_exit_2_and_missing_files_exit_1() {
    assert_eq!(lcodec(&["encode"]).status.code(), Some(2));
    assert_eq!(lcodec(&["frobnicate"]).status.code(), Some(2));
    let o = lcodec(&["encode", "/nonexistent/file", "-o", "/tmp/never.lc"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("lcodec: /nonexistent/file: "),
        "{}",
        stderr(&o)
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let o = lcodec(&["encode", s(dir.path()), "-o", s(&dir.path().join("x.lc"))]);
    assert_eq!(o.status.code(), Some(1));
    let f = fixture();
    let o = lcodec(&[
        "encode",
        s(&f.input),
        "-o",
        s(&f.dir.path().join("y.lc")),
        "--codec",
        "nope",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown codec"), "{}", stderr(&o));
}

/// `raw` at zstd level 19 is within 2% of the `zstd -19` command on the shared text
/// corpora (the peer is measured in the same run; skipped if `zstd` is not installed).
#[test]
fn raw_zstd19_matches_zstd_cli_size() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/text");
    if !root.exists() {
        eprintln!("skipping: {} not found", root.display());
        return;
    }
    if Command::new("zstd").arg("--version").output().is_err() {
        eprintln!("skipping: the zstd command is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    collect(&root, &mut files);
    let (mut ours, mut theirs, mut orig) = (0u64, 0u64, 0u64);
    for f in &files {
        let lc = dir.path().join("t.lc");
        let o = lcodec(&["encode", s(f), "-o", s(&lc), "-f", "-q", "19"]);
        assert!(o.status.success(), "{}", stderr(&o));
        ours += std::fs::metadata(&lc).expect("meta").len();
        let z = Command::new("zstd")
            .args(["-19", "-q", "-c", s(f)])
            .output()
            .expect("zstd");
        assert!(z.status.success());
        theirs += z.stdout.len() as u64;
        orig += std::fs::metadata(f).expect("meta").len();
    }
    let r = ours as f64 / theirs as f64;
    eprintln!(
        "{} files, {orig} bytes: lcodec raw -q 19 {ours} bytes, zstd -19 {theirs} bytes, ratio {r:.4}",
        files.len()
    );
    assert!(
        r <= 1.02,
        "raw is {:.2}% larger than zstd -19",
        (r - 1.0) * 100.0
    );
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out);
        } else if !p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("README"))
        {
            out.push(p);
        }
    }
}

/// `--precision` reaches the LiDAR codec: a coarser grid gives a smaller file whose
/// coordinates stay within half the step.
#[test]
fn precision_flag_sets_the_lidar_grid() {
    let frame = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/lidar/kitti_raw_5consecutive_float32/0000000000.bin");
    if !frame.exists() {
        eprintln!("skipping: {} not found", frame.display());
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sizes = Vec::new();
    for p in ["0.001", "0.01"] {
        let lc = dir.path().join(format!("f{p}.lc"));
        let back = dir.path().join(format!("f{p}.bin"));
        let o = lcodec(&["encode", s(&frame), "-o", s(&lc), "--precision", p]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = lcodec(&["decode", s(&lc), "-o", s(&back)]);
        assert!(o.status.success(), "{}", stderr(&o));
        let a = std::fs::read(&frame).expect("read");
        let b = std::fs::read(&back).expect("read");
        assert_eq!(a.len(), b.len());
        let step: f32 = p.parse().expect("float");
        let mut max_err = 0f32;
        for (pa, pb) in a.chunks_exact(16).zip(b.chunks_exact(16)) {
            for k in 0..3 {
                let va = f32::from_le_bytes(pa[4 * k..4 * k + 4].try_into().expect("4 bytes"));
                let vb = f32::from_le_bytes(pb[4 * k..4 * k + 4].try_into().expect("4 bytes"));
                max_err = max_err.max((va - vb).abs());
            }
            assert_eq!(pa[12..16], pb[12..16], "reflectance must be exact");
        }
        assert!(max_err <= step / 2.0, "precision {p}: max error {max_err}");
        sizes.push(std::fs::metadata(&lc).expect("meta").len());
    }
    assert!(sizes[1] < sizes[0], "{sizes:?}");
}

/// A photo goes to the shipped learned image codec on its own, and the CLI says that the
/// result is lossy and how to keep the file exact; `--codec raw` is bit-exact and silent.
/// `lcodec info` tells the level and whether the residual layer is there.
#[test]
fn a_photo_is_coded_lossily_with_a_note_and_raw_stays_exact() {
    let png = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/fixtures/image-synth.png");
    let dir = tempfile::tempdir().expect("tempdir");
    let (lc, back) = (dir.path().join("p.lc"), dir.path().join("p.png"));
    let o = lcodec(&["encode", s(&png), "-o", s(&lc), "-q", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info = String::from_utf8_lossy(&lcodec(&["info", s(&lc)]).stdout).to_string();
    let coding = |info: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix("coding:          "))
            .unwrap_or("")
            .to_string()
    };
    let c = coding(&info);
    assert!(
        c.starts_with("level 2 of ") && c.ends_with(", channel-group checkerboard context"),
        "{info}"
    );
    let o = lcodec(&["encode", s(&png), "-o", s(&lc), "-f"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("lossy `image` codec") && stderr(&o).contains("--codec raw"),
        "{}",
        stderr(&o)
    );
    let info = String::from_utf8_lossy(&lcodec(&["info", s(&lc)]).stdout).to_string();
    let c = coding(&info);
    assert!(
        c.starts_with("level 5 of ")
            && c.ends_with(", channel-group checkerboard context, + residual layer"),
        "the default quality 5 is level 5 plus the residual layer: {info}"
    );
    let o = lcodec(&["decode", s(&lc), "-o", s(&back)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = std::fs::read(&back).expect("read");
    assert!(out.starts_with(b"\x89PNG"));
    // IHDR width and height: 96 x 64.
    assert_eq!(&out[16..24], &[0, 0, 0, 96, 0, 0, 0, 64]);
    let o = lcodec(&["encode", s(&png), "-o", s(&lc), "-f", "--codec", "raw"]);
    assert!(
        o.status.success() && stderr(&o).is_empty(),
        "{}",
        stderr(&o)
    );
    let o = lcodec(&["decode", s(&lc), "-o", s(&back), "-f"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(&back).expect("read"),
        std::fs::read(&png).expect("read")
    );
}
