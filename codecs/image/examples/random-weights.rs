//! Writes a randomly initialised weights file (for trying the codec pipeline end to end
//! before trained weights exist; the pictures it makes are noise):
//!
//!     cargo run -p lcodec-image --example random-weights -- OUT.safetensors [ckbd|mshp] [N M LEVELS]
use lcodec_models::hyperprior::{Arch, HyperpriorConfig, random_weights};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = a.first() else {
        eprintln!("usage: random-weights OUT.safetensors [ckbd|mshp] [N M LEVELS]");
        std::process::exit(2);
    };
    let arch = Arch::parse(a.get(1).map_or("ckbd", String::as_str)).expect("arch");
    let num = |i: usize, d: usize| a.get(i).map_or(d, |v| v.parse().expect("number"));
    let (n, m, levels) = (num(2, 16), num(3, 24), num(4, 6));
    let lambdas = (0..levels)
        .map(|i| 0.0018 * 1.9f32.powi(i as i32))
        .collect();
    let cfg = HyperpriorConfig {
        n,
        m,
        lambdas,
        arch,
    };
    let bytes = random_weights(&cfg, 1).expect("config");
    std::fs::write(out, &bytes).expect("write");
    println!("{out}: {} bytes, {}", bytes.len(), arch.id());
}
