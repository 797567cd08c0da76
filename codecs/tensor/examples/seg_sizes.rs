//! Prints the coded size of each element kind's bytes in a safetensors file.
use lcodec_tensor::layout::parse_safetensors;
use lcodec_tensor::segment::{Settings, encode_segment};

fn main() {
    for f in std::env::args().skip(1) {
        let data = std::fs::read(&f).expect("reads");
        let l = parse_safetensors(&data).expect("safetensors");
        let mut kinds: Vec<(lcodec_tensor::ElemKind, Vec<u8>)> = Vec::new();
        for r in &l.regions {
            let piece = &data[r.start as usize..(r.start + r.len) as usize];
            match kinds.iter_mut().find(|(k, _)| *k == r.kind) {
                Some((_, v)) => v.extend_from_slice(piece),
                None => kinds.push((r.kind, piece.to_vec())),
            }
        }
        for (k, v) in kinds {
            let mut out = Vec::new();
            encode_segment(k, &v, &Settings::default(), &mut out).expect("enc");
            println!(
                "{f} {k:?}: {} -> {} ({:.2}%) method {}",
                v.len(),
                out.len(),
                100.0 * out.len() as f64 / v.len() as f64,
                out[3]
            );
        }
    }
}
