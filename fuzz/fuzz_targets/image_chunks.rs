//! Fuzzes the image codec's chunk decoders on damaged payloads: the latent stream (with
//! small random-weight checkerboard and channel-group checkerboard models, so each input
//! runs in microseconds), the residual layer, the restoration filter and the alpha plane. Byte 0 picks the
//! decoder, bytes 1-2 the image size (1..=64 each), the rest is the payload. Must return
//! errors, never panic or over-allocate.
#![no_main]

use std::sync::OnceLock;

use lcodec_image::{alpha, filter, residual, ImageModel};
use lcodec_models::hyperprior::{random_weights, Arch, HyperpriorConfig};
use libfuzzer_sys::fuzz_target;
use ndarray::Array3;

fn model(channel_groups: bool) -> &'static ImageModel {
    static M: [OnceLock<ImageModel>; 2] = [OnceLock::new(), OnceLock::new()];
    M[usize::from(channel_groups)].get_or_init(|| {
        let arch = if channel_groups { Arch::ChannelCheckerboard } else { Arch::Checkerboard };
        let cfg = HyperpriorConfig { n: 8, m: 12, lambdas: vec![0.01, 0.05], arch };
        let bytes = random_weights(&cfg, 3).expect("random weights");
        ImageModel::from_bytes(&bytes).expect("random model loads")
    })
}

fuzz_target!(|data: &[u8]| {
    let [which, w, h, payload @ ..] = data else { return };
    let (w, h) = (usize::from(w % 64) + 1, usize::from(h % 64) + 1);
    match which % 7 {
        5 | 6 => {
            let comps = if which % 7 == 5 { 3 } else { 1 };
            let mut planes: Vec<u8> = (0..comps * w * h).map(|i| (i * 37 % 256) as u8).collect();
            let _ = filter::apply(payload, &mut planes, comps, w, h);
        }
        0 | 4 => {
            let _ = model(which % 7 == 4).decode_latents(payload, w as u32, h as u32);
        }
        1 | 2 => {
            let mut recon = Array3::<f32>::from_elem((3, h, w), 0.5);
            let _ = residual::decode_into(payload, &mut recon, w, h, which % 7 == 2);
        }
        _ => {
            let _ = alpha::decode_plane(payload, w, h);
        }
    }
});
