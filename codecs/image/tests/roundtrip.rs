//! Round trips through the container with random-initialised weights (the pipeline, not
//! the rate-distortion: trained weights come from `lcodec-train`).
#![allow(clippy::unwrap_used)]
use lcodec_core::container::{ChunkSink, ChunkSource, read_header};
use lcodec_core::{Codec, DecodeOptions, EncodeOptions, Error, Limits};
use lcodec_image::ImageCodec;
use lcodec_models::hyperprior::{HyperpriorConfig, random_weights};

fn codec(seed: u64) -> ImageCodec {
    let cfg = HyperpriorConfig {
        n: 8,
        m: 12,
        lambdas: vec![0.005, 0.02],
    };
    ImageCodec::try_new(&random_weights(&cfg, seed).unwrap(), "test-random").unwrap()
}

fn fixture_png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 3) as u8, ((x + y) % 256) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn encode_file(c: &ImageCodec, input: &[u8], quality: Option<u32>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut sink = ChunkSink::new(&mut out, c.info(), None);
    let opts = EncodeOptions {
        quality,
        ..Default::default()
    };
    c.encode(&mut &input[..], &mut sink, &opts).unwrap();
    sink.finish(input.len() as u64, None).unwrap();
    out
}

fn decode_file(c: &ImageCodec, file: &[u8]) -> lcodec_core::Result<Vec<u8>> {
    let mut r = file;
    let header = read_header(&mut r, &Limits::default())?;
    let mut src = ChunkSource::stream(&mut r, header.len, Limits::default(), true);
    let mut png = Vec::new();
    c.decode(&header, &mut src, &mut png, &DecodeOptions::default())?;
    Ok(png)
}

#[test]
fn png_round_trip_keeps_size_and_is_deterministic() {
    let c = codec(1);
    let input = fixture_png(100, 70);
    let file = encode_file(&c, &input, Some(2));
    let png = decode_file(&c, &file).unwrap();
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!((img.width(), img.height()), (100, 70));
    assert_eq!(
        png,
        decode_file(&c, &file).unwrap(),
        "decoding twice gives the same image"
    );
    // The same input encodes to the same bytes.
    assert_eq!(file, encode_file(&c, &input, Some(2)));
}

#[test]
fn decoding_with_other_weights_is_a_model_mismatch() {
    let file = encode_file(&codec(1), &fixture_png(64, 64), None);
    match decode_file(&codec(2), &file) {
        Err(Error::ModelMismatch { .. }) => {}
        other => panic!("expected ModelMismatch, got {other:?}"),
    }
}

#[test]
fn bad_quality_and_bad_input_are_errors() {
    let c = codec(1);
    let mut out = Vec::new();
    let mut sink = ChunkSink::new(&mut out, c.info(), None);
    let opts = EncodeOptions {
        quality: Some(3),
        ..Default::default()
    };
    assert!(
        c.encode(&mut &fixture_png(64, 64)[..], &mut sink, &opts)
            .is_err()
    );
    let mut sink = ChunkSink::new(&mut out, c.info(), None);
    assert!(
        c.encode(
            &mut &b"not an image"[..],
            &mut sink,
            &EncodeOptions::default()
        )
        .is_err()
    );
}

#[test]
fn damaged_payloads_never_panic() {
    let c = codec(3);
    let rgb: Vec<u8> = (0..64 * 64 * 3).map(|i| (i * 7 % 251) as u8).collect();
    let payload = c.encode_rgb(&rgb, 64, 64, 0).unwrap();
    let good = c.decode_rgb(&payload, 64, 64, 0).unwrap();
    assert_eq!(good.len(), rgb.len());
    for cut in 0..payload.len() {
        let _ = c.decode_rgb(&payload[..cut], 64, 64, 0);
    }
    for i in 0..payload.len() {
        let mut bad = payload.clone();
        bad[i] ^= 0x5a;
        let _ = c.decode_rgb(&bad, 64, 64, 0);
    }
    // Truncated container files are errors.
    let file = encode_file(&c, &fixture_png(64, 64), None);
    for cut in [0, 10, file.len() / 2, file.len() - 1] {
        assert!(decode_file(&c, &file[..cut]).is_err(), "cut {cut}");
    }
}

#[test]
fn kodak_image_round_trips_when_present() {
    let p = std::path::Path::new("/work/shared/data/images/kodak/kodim23.png");
    let Ok(input) = std::fs::read(p) else {
        println!("skipping: {} not present", p.display());
        return;
    };
    let c = codec(4);
    let file = encode_file(&c, &input, Some(1));
    let png = decode_file(&c, &file).unwrap();
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!((img.width(), img.height()), (768, 512));
    println!("kodim23 with random weights: {} bytes", file.len());
}
