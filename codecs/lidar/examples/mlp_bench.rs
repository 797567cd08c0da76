//! Times one evaluation of the shipped range network in thread CPU time (best of 3
//! runs of 5M evaluations).
fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let rest = &s[s.rfind(')').map_or(0, |i| i + 1)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn main() {
    let m = lcodec_lidar::mlp::shipped().expect("net");
    let mut best = f64::MAX;
    let mut acc = 0i64;
    let xs: Vec<[i64; 11]> = (0..4096i64)
        .map(|i| {
            [
                i % 97 - 48,
                (i * 7) % 301 - 150,
                i % 13,
                5,
                -3,
                8,
                1200,
                256,
                256,
                -80,
                (i & 1) * 256,
            ]
        })
        .collect();
    for _ in 0..3 {
        let c0 = cpu();
        let n = 5_000_000i64;
        for i in 0..n {
            let x = &xs[(i & 4095) as usize];
            acc += m.eval(std::hint::black_box(x)).correction;
        }
        best = best.min((cpu() - c0) * 1e9 / n as f64);
    }
    println!("{acc} best {best:.1} ns/eval (thread CPU time)");
}
