//! Measures the log codec on files: ratio vs xz -9 and zstd -19 (run as external tools),
//! speed, and round-trip exactness.
//!
//! `cargo run --release -p lcodec-log --example measure -- FILE...`
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

fn tool(cmd: &str, args: &[&str], data: &[u8]) -> Option<usize> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let d = data.to_vec();
    let t = std::thread::spawn(move || stdin.write_all(&d));
    let out = child.wait_with_output().ok()?;
    let _ = t.join();
    Some(out.stdout.len())
}

fn main() {
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let mut opts = lcodec_core::EncodeOptions {
        threads,
        ..Default::default()
    };
    if let Ok(m) = std::env::var("MODE") {
        opts.params.insert("mode".into(), m);
    }
    opts.quality = std::env::var("QUALITY").ok().and_then(|q| q.parse().ok());
    opts.chunk_size = std::env::var("CHUNK").ok().and_then(|q| q.parse().ok());
    let mut sum_ratio_vs_xz = 0.0;
    let mut n = 0;
    let (mut tot_raw, mut tot_lc, mut tot_xz, mut tot_enc, mut tot_dec) =
        (0usize, 0usize, 0usize, 0f64, 0f64);
    println!(
        "{:<28} {:>9} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6} {:>6} {:>6}",
        "file", "bytes", "lcodec", "xz-9", "zstd-19", "r_lc", "r_xz", "xz/lc", "encMB/s", "decMB/s"
    );
    for f in std::env::args().skip(1) {
        let data = std::fs::read(&f).expect("read");
        let t0 = Instant::now();
        let c = lcodec_log::compress(&data, &opts).expect("compress");
        let te = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let d = lcodec_log::decompress(&c).expect("decompress");
        let td = t0.elapsed().as_secs_f64();
        assert!(d == data, "round trip mismatch on {f}");
        let xz = tool("xz", &["-9", "-c"], &data).unwrap_or(0);
        let zs = if std::env::var("NOZSTD").is_ok() {
            0
        } else {
            tool("zstd", &["-19", "-c", "-q"], &data).unwrap_or(0)
        };
        let lc = c.len();
        let name = std::path::Path::new(&f)
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .to_string();
        let r = xz as f64 / lc as f64;
        sum_ratio_vs_xz += r;
        n += 1;
        tot_raw += data.len();
        tot_lc += lc;
        tot_xz += xz;
        tot_enc += te;
        tot_dec += td;
        println!(
            "{:<28} {:>9} {:>8} {:>8} {:>8} {:>7.2} {:>7.2} {:>6.3} {:>6.2} {:>6.2}",
            name,
            data.len(),
            lc,
            xz,
            zs,
            data.len() as f64 / lc as f64,
            data.len() as f64 / xz as f64,
            r,
            data.len() as f64 / te / 1e6,
            data.len() as f64 / td / 1e6
        );
    }
    println!(
        "MEAN xz/lcodec over {n} files: {:.3}; total ratio lcodec {:.2} xz {:.2}; enc {:.2} MB/s dec {:.2} MB/s",
        sum_ratio_vs_xz / n as f64,
        tot_raw as f64 / tot_lc as f64,
        tot_raw as f64 / tot_xz as f64,
        tot_raw as f64 / tot_enc / 1e6,
        tot_raw as f64 / tot_dec / 1e6
    );
}
