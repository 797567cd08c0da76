//! Measures text-cm against `xz -9` on text files, in the same run.
//!
//! `cargo run --release -p lcodec-text --example measure -- [--no-decode] [--no-xz] [--mem MIB] FILE...`
//! With no files, the issue-7 set under ../shared/data/text is used.
//! Prints per-file bits per byte, the total size ratio text-cm / xz, and the
//! one-thread encode / decode speed of text-cm.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn xz_size(path: &Path) -> Option<u64> {
    let out = Command::new("xz")
        .args(["-9", "-c", "-T1"])
        .arg(path)
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout.len() as u64)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let decode = !args.iter().any(|a| a == "--no-decode");
    let run_xz = !args.iter().any(|a| a == "--no-xz");
    args.retain(|a| a != "--no-decode" && a != "--no-xz");
    let mut mem = lcodec_text::DEFAULT_MEM_MIB;
    if let Some(i) = args.iter().position(|a| a == "--mem") {
        mem = args[i + 1].parse().expect("--mem MIB");
        args.drain(i..i + 2);
    }
    let bits = lcodec_text::table_bits_for_mem(mem).expect("mem");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/text");
    let files: Vec<PathBuf> = if args.is_empty() {
        [
            "enwik8_prefix/enwik8_head4000000",
            "calgary/book1",
            "canterbury/alice29.txt",
            "gutenberg/war_and_peace_pg2600.txt",
        ]
        .iter()
        .map(|f| data.join(f))
        .collect()
    } else {
        args.iter().map(PathBuf::from).collect()
    };
    let (mut tot_raw, mut tot_cm, mut tot_xz) = (0u64, 0u64, 0u64);
    let (mut enc_s, mut dec_s) = (0f64, 0f64);
    println!(
        "{:<36} {:>10} {:>10} {:>10} {:>8} {:>8} {:>9} {:>9}",
        "file", "bytes", "text-cm", "xz -9", "cm bpb", "xz bpb", "enc KB/s", "dec KB/s"
    );
    for f in &files {
        let raw = std::fs::read(f).expect("read input");
        let t = Instant::now();
        let packed = lcodec_text::encode_chunk(&raw, bits);
        let te = t.elapsed().as_secs_f64();
        let mut td = f64::NAN;
        if decode {
            let t = Instant::now();
            let back = lcodec_text::decode_chunk(&packed, raw.len(), bits).expect("decode");
            td = t.elapsed().as_secs_f64();
            assert!(back == raw, "{}: round trip differs", f.display());
            dec_s += td;
        }
        enc_s += te;
        let xz = if run_xz { xz_size(f).unwrap_or(0) } else { 0 };
        let n = raw.len() as f64;
        println!(
            "{:<36} {:>10} {:>10} {:>10} {:>8.3} {:>8.3} {:>9.0} {:>9.0}",
            f.file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            raw.len(),
            packed.len(),
            xz,
            packed.len() as f64 * 8.0 / n,
            xz as f64 * 8.0 / n,
            n / 1024.0 / te,
            n / 1024.0 / td
        );
        tot_raw += raw.len() as u64;
        tot_cm += packed.len() as u64;
        tot_xz += xz;
    }
    println!(
        "total {tot_raw} bytes: text-cm {tot_cm} ({:.3} bpb), xz -9 {tot_xz} ({:.3} bpb), ratio text-cm/xz = {:.4}; one thread: encode {:.0} KB/s, decode {:.0} KB/s",
        tot_cm as f64 * 8.0 / tot_raw as f64,
        tot_xz as f64 * 8.0 / tot_raw as f64,
        tot_cm as f64 / tot_xz.max(1) as f64,
        tot_raw as f64 / 1024.0 / enc_s,
        tot_raw as f64 / 1024.0 / dec_s
    );
}
