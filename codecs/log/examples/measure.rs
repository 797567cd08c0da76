//! Measures the log codec on files: ratio vs xz -9 and zstd -19 (run as external tools),
//! speed (best of `REPS` runs, default 3) next to in-process zstd -19 speed measured in the
//! same run, and round-trip exactness.
//!
//! `cargo run --release -p lcodec-log --example measure -- FILE...`
//!
//! Environment: `MODE` (columns, max, fast), `THREADS` (default 2), `QUALITY`, `CHUNK`,
//! `REPS`, `NOZSTD` (skip the zstd -19 columns), `NOXZ` (skip xz).
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

/// CPU seconds (user + system) used by this process so far, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the name.
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}

/// Best wall time of `reps` runs of `f`, mean CPU time per run, and the last result.
fn best<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, f64, T) {
    let mut t_best = f64::MAX;
    let mut last = None;
    let c0 = cpu_seconds();
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        let r = f();
        t_best = t_best.min(t0.elapsed().as_secs_f64());
        last = Some(r);
    }
    let cpu = (cpu_seconds() - c0) / reps.max(1) as f64;
    (t_best, cpu, last.expect("one run"))
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut opts = lcodec_core::EncodeOptions {
        threads,
        ..Default::default()
    };
    if let Ok(m) = std::env::var("MODE") {
        opts.params.insert("mode".into(), m);
    }
    opts.quality = std::env::var("QUALITY").ok().and_then(|q| q.parse().ok());
    opts.chunk_size = std::env::var("CHUNK").ok().and_then(|q| q.parse().ok());
    let no_zstd = std::env::var("NOZSTD").is_ok();
    let no_xz = std::env::var("NOXZ").is_ok();
    println!("load average at start: {}", load());
    let mut sum_ratio_vs_xz = 0.0;
    let mut n = 0;
    let (mut tot_raw, mut tot_lc, mut tot_xz, mut tot_enc, mut tot_dec) =
        (0usize, 0usize, 0usize, 0f64, 0f64);
    let (mut tot_zenc, mut tot_zdec) = (0f64, 0f64);
    let (mut tot_cpu_e, mut tot_cpu_d) = (0f64, 0f64);
    println!(
        "{:<24} {:>9} {:>8} {:>8} {:>8} {:>7} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7}",
        "file",
        "bytes",
        "lcodec",
        "xz-9",
        "zstd-19",
        "r_lc",
        "r_xz",
        "xz/lc",
        "encMB/s",
        "decMB/s",
        "z19enc",
        "z19dec"
    );
    for f in std::env::args().skip(1) {
        let data = std::fs::read(&f).expect("read");
        let (te, ce, c) = best(reps, || {
            lcodec_log::compress(&data, &opts).expect("compress")
        });
        let (td, cd, d) = best(reps, || lcodec_log::decompress(&c).expect("decompress"));
        assert!(d == data, "round trip mismatch on {f}");
        let xz = if no_xz {
            0
        } else {
            tool("xz", &["-9", "-c"], &data).unwrap_or(0)
        };
        let (zs, tze, tzd) = if no_zstd {
            (0, 0.0, 0.0)
        } else {
            let (tze, _, z) = best(reps, || zstd::bulk::compress(&data, 19).expect("zstd"));
            let (tzd, _, zd) = best(reps, || {
                zstd::bulk::decompress(&z, data.len()).expect("unzstd")
            });
            assert!(zd == data);
            (z.len(), tze, tzd)
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
        tot_zenc += tze;
        tot_cpu_e += ce;
        tot_cpu_d += cd;
        tot_zdec += tzd;
        let mb = |t: f64| {
            if t > 0.0 {
                data.len() as f64 / t / 1e6
            } else {
                0.0
            }
        };
        println!(
            "{:<24} {:>9} {:>8} {:>8} {:>8} {:>7.2} {:>7.2} {:>6.3} {:>7.2} {:>7.2} {:>7.2} {:>7.1}",
            name,
            data.len(),
            lc,
            xz,
            zs,
            data.len() as f64 / lc as f64,
            data.len() as f64 / xz as f64,
            r,
            mb(te),
            mb(td),
            mb(tze),
            mb(tzd)
        );
    }
    println!(
        "MEAN xz/lcodec over {n} files: {:.3}; total ratio lcodec {:.2} xz {:.2}; enc {:.2} MB/s dec {:.2} MB/s ({threads} threads); zstd -19 in-process (1 thread) enc {:.2} dec {:.1} MB/s",
        sum_ratio_vs_xz / n as f64,
        tot_raw as f64 / tot_lc as f64,
        tot_raw as f64 / tot_xz as f64,
        tot_raw as f64 / tot_enc / 1e6,
        tot_raw as f64 / tot_dec / 1e6,
        tot_raw as f64 / tot_zenc / 1e6,
        tot_raw as f64 / tot_zdec / 1e6
    );
    println!(
        "CPU time (all threads, mean of {reps} runs): enc {:.2} MB/s per core-second, dec {:.2} MB/s per core-second",
        tot_raw as f64 / tot_cpu_e / 1e6,
        tot_raw as f64 / tot_cpu_d / 1e6
    );
    println!("load average at end: {}", load());
}
