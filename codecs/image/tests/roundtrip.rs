//! Round trips through the container with random-initialised weights (the pipeline, not
//! the rate-distortion: trained weights come from `lcodec-train`).
#![allow(clippy::unwrap_used)]
use lcodec_core::container::{ChunkSink, ChunkSource, read_header};
use lcodec_core::{Codec, DecodeOptions, EncodeOptions, Error, Limits};
use lcodec_image::ImageCodec;
use lcodec_models::hyperprior::{Arch, HyperpriorConfig, random_weights};

fn codec(seed: u64) -> ImageCodec {
    let cfg = HyperpriorConfig {
        n: 8,
        m: 12,
        lambdas: vec![0.005, 0.02],
        arch: Default::default(),
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
    encode_threads(c, input, quality, 0)
}

fn encode_threads(c: &ImageCodec, input: &[u8], quality: Option<u32>, threads: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut sink = ChunkSink::new(&mut out, c.info(), None);
    let opts = EncodeOptions {
        quality,
        threads,
        ..Default::default()
    };
    c.encode(&mut &input[..], &mut sink, &opts).unwrap();
    sink.finish(input.len() as u64, None).unwrap();
    out
}

fn decode_file(c: &ImageCodec, file: &[u8]) -> lcodec_core::Result<Vec<u8>> {
    decode_threads(c, file, 0)
}

fn decode_threads(c: &ImageCodec, file: &[u8], threads: usize) -> lcodec_core::Result<Vec<u8>> {
    let mut r = file;
    let header = read_header(&mut r, &Limits::default())?;
    let mut src = ChunkSource::stream(&mut r, header.len, Limits::default(), true);
    let mut png = Vec::new();
    let opts = DecodeOptions {
        threads,
        ..Default::default()
    };
    c.decode(&header, &mut src, &mut png, &opts)?;
    Ok(png)
}

#[test]
fn thread_count_changes_neither_the_file_nor_the_image() {
    let c = codec(3);
    let input = fixture_png(130, 90);
    let one = encode_threads(&c, &input, Some(1), 1);
    assert_eq!(one, encode_threads(&c, &input, Some(1), 3));
    assert_eq!(one, encode_threads(&c, &input, Some(1), 0));
    let png = decode_threads(&c, &one, 1).unwrap();
    assert_eq!(png, decode_threads(&c, &one, 3).unwrap());
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
    damaged_payloads_never_panic_with(&codec(3));
    for arch in CONTEXT_ARCHS {
        damaged_payloads_never_panic_with(
            &ImageCodec::try_new(&ckbd_weights(23, arch), "t").unwrap(),
        );
    }
}

fn damaged_payloads_never_panic_with(c: &ImageCodec) {
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
    let file = encode_file(c, &fixture_png(64, 64), None);
    for cut in [0, 10, file.len() / 2, file.len() - 1] {
        assert!(decode_file(c, &file[..cut]).is_err(), "cut {cut}");
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

/// The context-model architectures (checkerboard, and over channel groups).
const CONTEXT_ARCHS: [Arch; 2] = [Arch::Checkerboard, Arch::ChannelCheckerboard];

fn ckbd_weights(seed: u64, arch: Arch) -> Vec<u8> {
    let cfg = HyperpriorConfig {
        n: 8,
        m: 12,
        lambdas: vec![0.005, 0.02, 0.05],
        arch,
    };
    random_weights(&cfg, seed).unwrap()
}

fn decode_with(c: &ImageCodec, file: &[u8], format: Option<&str>) -> lcodec_core::Result<Vec<u8>> {
    let mut r = file;
    let header = read_header(&mut r, &Limits::default())?;
    let mut src = ChunkSource::stream(&mut r, header.len, Limits::default(), true);
    let mut out = Vec::new();
    let mut opts = DecodeOptions::default();
    if let Some(f) = format {
        opts.params
            .insert(lcodec_core::FORMAT_PARAM.into(), f.into());
    }
    assert!(c.decodes_transformed(&header, &opts));
    c.decode(&header, &mut src, &mut out, &opts)?;
    Ok(out)
}

fn encode_dynamic(img: &image::DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn checkerboard_model_round_trips_deterministically() {
    for arch in CONTEXT_ARCHS {
        let c = ImageCodec::try_new(&ckbd_weights(21, arch), "ckbd-test").unwrap();
        let input = fixture_png(130, 66);
        for q in 1..=3 {
            let file = encode_file(&c, &input, Some(q));
            assert_eq!(file, encode_file(&c, &input, Some(q)));
            let png = decode_file(&c, &file).unwrap();
            let img = image::load_from_memory(&png).unwrap();
            assert_eq!((img.width(), img.height()), (130, 66));
            assert_eq!(png, decode_file(&c, &file).unwrap());
        }
    }
}

#[test]
fn checkerboard_latents_are_reconstructed_exactly() {
    for arch in CONTEXT_ARCHS {
        checkerboard_latents_round_trip(arch);
    }
}

fn checkerboard_latents_round_trip(arch: Arch) {
    let c = ImageCodec::try_new(&ckbd_weights(22, arch), "t").unwrap();
    let m = c.default_model().unwrap();
    assert_eq!(m.arch(), arch);
    let y = ndarray::Array3::from_shape_fn((12, 4, 8), |(ch, r, q)| {
        ((ch * 7 + r * 3 + q * 5) % 23) as f32 * 1.7 - 19.0
    });
    let z = ndarray::Array3::from_shape_fn((8, 1, 2), |(ch, _, q)| (ch + q) as f32 - 4.3);
    let (payload, y_hat) = m.encode_latents(&y, &z).unwrap();
    let dec = m.decode_latents(&payload, 128, 64).unwrap();
    let bits = |a: &ndarray::Array3<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&y_hat), bits(&dec));
    // ŷ is within half a step of y everywhere.
    assert!(
        y.iter()
            .zip(&y_hat)
            .all(|(a, b)| (a - b).abs() <= 0.5 + 1e-4)
    );
}

#[test]
fn grey_input_decodes_to_grey() {
    let c = codec(5);
    let img = image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(77, 50, |x, y| {
        image::Luma([((x * 3 + y * 2) % 256) as u8])
    }));
    let file = encode_file(&c, &encode_dynamic(&img), Some(2));
    let out = image::load_from_memory(&decode_file(&c, &file).unwrap()).unwrap();
    assert_eq!(out.color(), image::ColorType::L8);
    assert_eq!((out.width(), out.height()), (77, 50));
}

#[test]
fn alpha_is_lossless_and_opaque_alpha_costs_nothing() {
    let c = codec(6);
    let (w, h) = (90u32, 70u32);
    let rgba = image::RgbaImage::from_fn(w, h, |x, y| {
        let a = if (x as i32 - 45).pow(2) + (y as i32 - 35).pow(2) < 900 {
            255
        } else {
            (x * 2) as u8
        };
        image::Rgba([(x * 2) as u8, (y * 3) as u8, 90, a])
    });
    let file = encode_file(
        &c,
        &encode_dynamic(&image::DynamicImage::ImageRgba8(rgba.clone())),
        Some(1),
    );
    let out = image::load_from_memory(&decode_file(&c, &file).unwrap()).unwrap();
    assert_eq!(out.color(), image::ColorType::Rgba8);
    let out = out.to_rgba8();
    assert!(
        out.pixels().zip(rgba.pixels()).all(|(a, b)| a[3] == b[3]),
        "alpha differs"
    );
    // Opaque alpha: no alpha chunk, output still RGBA with alpha 255.
    let opaque = image::RgbaImage::from_fn(w, h, |x, y| {
        image::Rgba([(x * 2) as u8, (y * 3) as u8, 90, 255])
    });
    let f2 = encode_file(
        &c,
        &encode_dynamic(&image::DynamicImage::ImageRgba8(opaque)),
        Some(1),
    );
    let rgb = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 2) as u8, (y * 3) as u8, 90]));
    let f3 = encode_file(
        &c,
        &encode_dynamic(&image::DynamicImage::ImageRgb8(rgb)),
        Some(1),
    );
    assert_eq!(f2.len(), f3.len(), "opaque alpha must not add a chunk");
    let out2 = image::load_from_memory(&decode_file(&c, &f2).unwrap()).unwrap();
    assert_eq!(out2.color(), image::ColorType::Rgba8);
    assert!(out2.to_rgba8().pixels().all(|p| p[3] == 255));
    // Grey + alpha.
    let la = image::GrayAlphaImage::from_fn(w, h, |x, y| {
        image::LumaA([(x + y) as u8, (x * y % 256) as u8])
    });
    let f4 = encode_file(
        &c,
        &encode_dynamic(&image::DynamicImage::ImageLumaA8(la.clone())),
        Some(1),
    );
    let out4 = image::load_from_memory(&decode_file(&c, &f4).unwrap()).unwrap();
    assert_eq!(out4.color(), image::ColorType::La8);
    assert!(
        out4.to_luma_alpha8()
            .pixels()
            .zip(la.pixels())
            .all(|(a, b)| a[1] == b[1])
    );
    // A damaged alpha chunk is an error, never a panic.
    for cut in [f4.len() - 30, f4.len() - 20] {
        assert!(decode_file(&c, &f4[..cut]).is_err());
    }
}

#[test]
fn sixteen_bit_input_is_reduced_to_eight() {
    let c = codec(7);
    let img = image::DynamicImage::ImageRgb16(image::ImageBuffer::from_fn(64, 40, |x, y| {
        image::Rgb([(x * 1000) as u16, (y * 1500) as u16, 30000u16])
    }));
    let file = encode_file(&c, &encode_dynamic(&img), Some(1));
    let mut r = &file[..];
    let header = read_header(&mut r, &Limits::default()).unwrap();
    assert_eq!(header.metadata.bit_depth, 16);
    assert_eq!(header.metadata.channels, 3);
    let out = image::load_from_memory(&decode_file(&c, &file).unwrap()).unwrap();
    assert_eq!(out.color(), image::ColorType::Rgb8);
}

#[test]
fn decode_writes_the_requested_format() {
    let c = codec(8);
    let file = encode_file(&c, &fixture_png(70, 45), Some(1));
    for (fmt, want) in [
        (Some("png"), image::ImageFormat::Png),
        (Some("jpg"), image::ImageFormat::Jpeg),
        (Some("JPEG"), image::ImageFormat::Jpeg),
        (Some("bmp"), image::ImageFormat::Bmp),
        (Some("tiff"), image::ImageFormat::Tiff),
        (Some("webp"), image::ImageFormat::WebP),
        (Some("ppm"), image::ImageFormat::Pnm),
        (Some("xyz"), image::ImageFormat::Png),
        (None, image::ImageFormat::Png),
    ] {
        let out = decode_with(&c, &file, fmt).unwrap();
        assert_eq!(image::guess_format(&out).unwrap(), want, "{fmt:?}");
        let img = image::load_from_memory(&out).unwrap();
        assert_eq!((img.width(), img.height()), (70, 45));
    }
    // Formats without alpha get the colour planes of an RGBA image.
    let rgba = image::RgbaImage::from_fn(40, 30, |x, y| {
        image::Rgba([x as u8, y as u8, 9, (x * 6) as u8])
    });
    let file = encode_file(
        &c,
        &encode_dynamic(&image::DynamicImage::ImageRgba8(rgba)),
        Some(1),
    );
    for (fmt, want) in [
        ("jpg", image::ImageFormat::Jpeg),
        ("ppm", image::ImageFormat::Pnm),
        ("tiff", image::ImageFormat::Tiff),
        ("bmp", image::ImageFormat::Bmp),
        ("webp", image::ImageFormat::WebP),
    ] {
        let out = decode_with(&c, &file, Some(fmt)).unwrap();
        assert_eq!(image::guess_format(&out).unwrap(), want, "{fmt}");
    }
}

#[test]
fn discovery_finds_weights_and_decode_picks_the_model_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = HyperpriorConfig {
        n: 8,
        m: 12,
        lambdas: vec![0.005, 0.02],
        arch: Default::default(),
    };
    std::fs::write(
        dir.path().join("a-mshp.safetensors"),
        random_weights(&cfg, 1).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b-ckbd.safetensors"),
        ckbd_weights(2, Arch::Checkerboard),
    )
    .unwrap();
    std::fs::write(dir.path().join("junk.safetensors"), b"not weights").unwrap();
    // Another codec's weights (e.g. the lidar predictor) are skipped.
    let mut meta = std::collections::HashMap::new();
    meta.insert("lcodec.arch".to_string(), "lidar-range-mlp-v1".to_string());
    let other = lcodec_models::weights::write_safetensors(
        &[(
            "w1".to_string(),
            lcodec_models::weights::OutTensor::I32(vec![2], vec![1, 2]),
        )],
        meta,
    )
    .unwrap();
    std::fs::write(dir.path().join("lidar.safetensors"), other).unwrap();
    let paths: Vec<_> = ["a-mshp", "b-ckbd", "junk", "lidar", "missing"]
        .iter()
        .map(|n| dir.path().join(format!("{n}.safetensors")))
        .collect();
    let c = ImageCodec::from_paths(&paths).unwrap();
    // Checkerboard first (default), junk and missing skipped.
    assert_eq!(
        c.model_ids(),
        vec!["b-ckbd".to_string(), "a-mshp".to_string()]
    );
    let input = fixture_png(64, 64);
    let f_default = encode_file(&c, &input, Some(1));
    let mut out = Vec::new();
    let mut sink = ChunkSink::new(&mut out, c.info(), None);
    let mut opts = EncodeOptions::default();
    opts.params.insert("model".into(), "a-mshp".into());
    c.encode(&mut &input[..], &mut sink, &opts).unwrap();
    sink.finish(input.len() as u64, None).unwrap();
    for f in [&f_default, &out] {
        decode_file(&c, f).unwrap();
    }
    let hb = read_header(&mut &f_default[..], &Limits::default()).unwrap();
    let ha = read_header(&mut &out[..], &Limits::default()).unwrap();
    assert_eq!(
        (hb.model.id.as_str(), ha.model.id.as_str()),
        ("b-ckbd", "a-mshp")
    );
    // A codec holding only the other model refuses with a model mismatch.
    let only_a = ImageCodec::from_paths(&paths[..1]).unwrap();
    assert!(matches!(
        decode_file(&only_a, &f_default),
        Err(Error::ModelMismatch { .. })
    ));
    // Nothing usable: an error, not a panic.
    assert!(ImageCodec::from_paths(&paths[2..]).is_err());
    // LCODEC_MODELS (as passed to model_dirs_with) points discovery at a directory, a
    // file, or nowhere; unset, the executable's and the source tree's models/weights.
    let dirs = lcodec_image::model_dirs_with(Some(dir.path().as_os_str().to_owned()));
    assert_eq!(dirs, vec![dir.path().to_path_buf()]);
    let d = lcodec_image::discover_in(&dirs).unwrap();
    assert_eq!(d.model_ids()[0], "b-ckbd");
    let one = lcodec_image::model_dirs_with(Some(paths[0].clone().into_os_string()));
    assert_eq!(
        lcodec_image::discover_in(&one).unwrap().model_ids(),
        vec!["a-mshp".to_string()]
    );
    let none = lcodec_image::model_dirs_with(Some("/nonexistent/lcodec-models".into()));
    assert!(lcodec_image::discover_in(&none).is_none());
    let default = lcodec_image::model_dirs_with(None);
    assert_eq!(default.len(), 2);
    assert!(default[1].ends_with("models/weights"));
}

/// A ladder file spreads `--quality` over two models: each quality encodes with the model
/// and level its rung names (the header says which), decodes, and the default model is
/// the first rung's. Bad ladders are errors naming the line, reported when an encode needs
/// the ladder; `-p model=` still counts that model's own levels.
#[test]
fn a_quality_ladder_spans_two_models() {
    use lcodec_image::{LADDER_FILE, Rung, parse_ladder};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("base.safetensors"),
        ckbd_weights(3, Arch::Checkerboard),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("a-top.safetensors"),
        ckbd_weights(4, Arch::Checkerboard),
    )
    .unwrap();
    std::fs::write(
        dir.path().join(LADDER_FILE),
        "# quality model level\n1 base 1\n2 base 2  # middle\n\n3 a-top 2\n4 a-top 3\n",
    )
    .unwrap();
    let dirs = vec![dir.path().to_path_buf()];
    let c = lcodec_image::discover_in(&dirs).unwrap();
    assert_eq!(c.levels(), 4);
    assert_eq!(
        c.model_ids()[0],
        "base",
        "the first rung's model is the default"
    );
    let want = [("base", 0u8), ("base", 1), ("a-top", 1), ("a-top", 2)];
    assert_eq!(
        c.ladder()
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|r| (r.model, r.level))
            .collect::<Vec<_>>(),
        want.iter()
            .map(|&(m, l)| (m.to_string(), l as usize))
            .collect::<Vec<_>>()
    );
    let input = fixture_png(64, 64);
    for (q, &(model, level)) in want.iter().enumerate() {
        let f = encode_file(&c, &input, Some(q as u32 + 1));
        let h = read_header(&mut &f[..], &Limits::default()).unwrap();
        assert_eq!(
            (h.model.id.as_str(), h.params[1]),
            (model, level),
            "q{}",
            q + 1
        );
        decode_file(&c, &f).unwrap();
    }
    // Default quality: the middle rung.
    let f = encode_file(&c, &input, None);
    assert_eq!(
        read_header(&mut &f[..], &Limits::default())
            .unwrap()
            .model
            .id,
        "base"
    );
    // -p model= counts that model's levels, not the ladder's.
    let mut out = Vec::new();
    let mut sink = ChunkSink::new(&mut out, c.info(), None);
    let mut opts = EncodeOptions {
        quality: Some(1),
        ..Default::default()
    };
    opts.params.insert("model".into(), "a-top".into());
    c.encode(&mut &input[..], &mut sink, &opts).unwrap();
    let h = read_header(&mut &out[..], &Limits::default()).unwrap();
    assert_eq!((h.model.id.as_str(), h.params[1]), ("a-top", 0));
    let err = encode_error(&c, &input, 5);
    assert!(err.contains("expected 1..=4"), "{err}");

    // Parsing: the line and what is wrong.
    assert_eq!(
        parse_ladder("1 m 2\n2 m 2 24.5\n").unwrap(),
        vec![
            Rung {
                model: "m".into(),
                level: 1,
                residual: None,
            },
            Rung {
                model: "m".into(),
                level: 1,
                residual: Some(24.5),
            }
        ]
    );
    for (text, says) in [
        ("1 m 1 0\n", "line 1: residual step `0`"),
        ("1 m 1 x\n", "line 1: residual step `x`"),
        ("1 m 1 9999\n", "line 1: residual step `9999`"),
        ("1 m 1 2 3\n", "line 1: 5 fields"),
        ("2 m 1\n", "line 1: quality `2`, expected 1"),
        ("1 m 1\n1 m 2\n", "line 2: quality `1`, expected 2"),
        ("1 m 0\n", "line 1: level `0`"),
        ("1 m\n", "line 1: 2 fields"),
        ("# nothing\n", "no rungs"),
    ] {
        let e = parse_ladder(text).unwrap_err().to_string();
        assert!(e.contains(says), "{text:?}: {e}");
    }
    // A ladder naming a missing model, or a level the model lacks: encoding says so.
    for (text, says) in [
        ("1 base 1\n2 gone 1\n", "model `gone`, which is not here"),
        ("1 base 1\n2 base 9\n", "level 9 of `base`, which has 3"),
        ("1 base x\n", "line 1: level `x`"),
    ] {
        std::fs::write(dir.path().join(LADDER_FILE), text).unwrap();
        let c = lcodec_image::discover_in(&dirs).unwrap();
        let e = encode_error(&c, &input, 2);
        assert!(e.contains(says) && e.contains(LADDER_FILE), "{text:?}: {e}");
    }
}

/// The message of the error an encode at `quality` must fail with.
fn encode_error(c: &ImageCodec, input: &[u8], quality: u32) -> String {
    let opts = EncodeOptions {
        quality: Some(quality),
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut sink = ChunkSink::new(&mut out, c.info(), None);
    c.encode(&mut &input[..], &mut sink, &opts)
        .unwrap_err()
        .to_string()
}

/// A PNG signature, IHDR and an empty IDAT: enough for the sniffer to see the size.
fn png_head(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in bytes {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    // The start of the data (an empty IDAT chunk): the decoder reads up to it.
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(b"IDAT");
    out.extend_from_slice(&crc32(b"IDAT").to_be_bytes());
    out
}

#[test]
fn sniff_claims_readable_images_and_declines_huge_ones() {
    use lcodec_core::Confidence;
    let c = codec(1);
    assert_eq!(c.sniff(&fixture_png(10, 10), None), Some(Confidence::MAGIC));
    assert_eq!(
        c.sniff(&png_head(4000, 3000), None),
        Some(Confidence::MAGIC)
    );
    assert_eq!(c.sniff(&png_head(10_000, 10_000), Some("big.png")), None);
    assert_eq!(c.sniff(b"GIF89a\x01\x00\x01\x00", Some("a.gif")), None);
    assert_eq!(c.sniff(b"hello", Some("a.txt")), None);
    assert_eq!(
        c.sniff(b"hello", Some("a.png")),
        Some(Confidence::EXTENSION)
    );
}

fn icc_of(file: &[u8]) -> Option<Vec<u8>> {
    use image::ImageDecoder;
    image::ImageReader::new(std::io::Cursor::new(file))
        .with_guessed_format()
        .unwrap()
        .into_decoder()
        .unwrap()
        .icc_profile()
        .unwrap()
}

#[test]
fn the_colour_profile_travels_with_the_image() {
    use image::ImageEncoder;
    let c = codec(5);
    // Any bytes do for the test: the codec carries the profile, it does not interpret it.
    let profile: Vec<u8> = (0..700u32).map(|i| (i * 7 % 251) as u8).collect();
    let img = image::RgbImage::from_fn(50, 40, |x, y| image::Rgb([x as u8 * 5, y as u8 * 6, 90]));
    let mut png = Vec::new();
    let mut e = image::codecs::png::PngEncoder::new(&mut png);
    e.set_icc_profile(profile.clone()).unwrap();
    e.write_image(img.as_raw(), 50, 40, image::ExtendedColorType::Rgb8)
        .unwrap();
    assert_eq!(icc_of(&png).as_deref(), Some(&profile[..]));
    let file = encode_file(&c, &png, Some(1));
    assert_eq!(
        icc_of(&decode_with(&c, &file, None).unwrap()).as_deref(),
        Some(&profile[..])
    );
    assert_eq!(
        icc_of(&decode_with(&c, &file, Some("jpg")).unwrap()).as_deref(),
        Some(&profile[..])
    );
    // Formats without profile support still decode.
    assert!(decode_with(&c, &file, Some("bmp")).is_ok());
    // Without a profile there is no profile chunk.
    let plain = fixture_png(50, 40);
    assert!(icc_of(&decode_with(&c, &encode_file(&c, &plain, Some(1)), None).unwrap()).is_none());
    let mut r: &[u8] = &file;
    let header = read_header(&mut r, &Limits::default()).unwrap();
    assert_eq!(header.params[3] & 2, 2, "profile flag set");
}

/// A JPEG whose EXIF says "rotate 90° clockwise to display" (orientation 6).
fn rotated_jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, _| {
        image::Rgb([if x < w / 2 { 20 } else { 230 }; 3])
    });
    let mut jpg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 95)
        .encode_image(&img)
        .unwrap();
    // APP1 "Exif": little-endian TIFF header, one IFD entry: 0x0112 SHORT 1 = 6.
    let mut exif = b"Exif\0\0II*\0\x08\0\0\0\x01\0".to_vec();
    exif.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    app1.extend_from_slice(&exif);
    let mut out = jpg[..2].to_vec();
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpg[2..]);
    out
}

#[test]
fn exif_orientation_is_applied_so_the_output_is_upright() {
    let c = codec(6);
    let jpg = rotated_jpeg(64, 32);
    let file = encode_file(&c, &jpg, Some(2));
    let out = image::load_from_memory(&decode_with(&c, &file, None).unwrap()).unwrap();
    assert_eq!((out.width(), out.height()), (32, 64), "rotated to upright");
}

/// PSNR in dB of a decoded PNG against the RGB of the original (both 8-bit RGB).
fn psnr_rgb(original: &[u8], decoded_png: &[u8]) -> f64 {
    let a = image::load_from_memory(original).unwrap().to_rgb8();
    let b = image::load_from_memory(decoded_png).unwrap().to_rgb8();
    assert_eq!(a.dimensions(), b.dimensions());
    let se: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    10.0 * (255.0f64 * 255.0 * a.as_raw().len() as f64 / se.max(1e-9)).log10()
}

const SHIPPED: &str = "image-ckbd-cc-v6";

/// The shipped image models (`models/weights/`, the set `image-ckbd-cc-v6`: the weights files
/// and the quality ladder `image-ladder.txt`): their model card names every file's weights
/// hash, every quality level is a real rate-distortion step (more bytes and a higher PSNR
/// than the level below), and on kodim23 each level gives the size and PSNR that the
/// card's `| kodim23 |` rows state (within 1 % and 0.05 dB: the analysis transform is not
/// bit-exact across CPUs, the decoder is).
#[test]
fn shipped_model_matches_its_card() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/weights");
    let card = std::fs::read_to_string(dir.join(format!("{SHIPPED}.md"))).expect("model card");
    let c = lcodec_image::discover_in(std::slice::from_ref(&dir))
        .expect("the shipped image models are part of the checkout");
    let ladder = c
        .ladder()
        .unwrap()
        .expect("the shipped set has a quality ladder");
    for id in c.model_ids() {
        let weights = std::fs::read(dir.join(format!("{id}.safetensors"))).unwrap();
        let hash: String = lcodec_models::weights::weights_hash(&weights)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            card.contains(&hash),
            "the card does not name {id}'s weights {hash}"
        );
        assert!(
            ladder.iter().any(|r| r.model == id),
            "{id} is shipped but no quality uses it"
        );
    }
    assert!(c.levels() >= 6, "{} quality levels", c.levels());
    let rows: Vec<(u32, usize, f64)> = card
        .lines()
        .filter_map(|l| l.strip_prefix("| kodim23 |"))
        .map(|r| {
            let f: Vec<&str> = r.split('|').map(str::trim).collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows.len(),
        c.levels(),
        "one kodim23 row per level in the card"
    );

    let synth = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/fixtures/image-synth.png"),
    )
    .unwrap();
    let kodak = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/images/kodak/kodim23.png");
    let kodak = std::fs::read(&kodak).ok();
    if kodak.is_none() {
        println!("kodim23 not present: checking level order on the fixture only");
    }
    for (name, input) in [("fixture", Some(&synth)), ("kodim23", kodak.as_ref())] {
        let Some(input) = input else { continue };
        let mut last = (0usize, 0.0f64);
        for q in 1..=c.levels() as u32 {
            let file = encode_file(&c, input, Some(q));
            let psnr = psnr_rgb(input, &decode_file(&c, &file).unwrap());
            println!("{name} q{q}: {} bytes, {psnr:.3} dB", file.len());
            assert!(
                file.len() > last.0 && psnr > last.1,
                "{name} q{q}: {} bytes / {psnr:.3} dB after {} / {:.3}",
                file.len(),
                last.0,
                last.1
            );
            last = (file.len(), psnr);
            if name == "kodim23" {
                let (_, bytes, want) = rows[q as usize - 1];
                assert!(
                    (file.len() as f64 / bytes as f64 - 1.0).abs() < 0.01
                        && (psnr - want).abs() < 0.05,
                    "kodim23 q{q}: {} bytes / {psnr:.3} dB, the card says {bytes} / {want}",
                    file.len()
                );
            }
        }
    }
}

/// Encodes `input` at `quality` with the codec parameters `params`.
fn encode_with(
    c: &ImageCodec,
    input: &[u8],
    quality: u32,
    params: &[(&str, &str)],
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut sink = ChunkSink::new(&mut out, c.info(), None);
    let mut opts = EncodeOptions {
        quality: Some(quality),
        ..Default::default()
    };
    for (k, v) in params {
        opts.params.insert((*k).into(), (*v).into());
    }
    c.encode(&mut &input[..], &mut sink, &opts)?;
    sink.finish(input.len() as u64, None)?;
    Ok(out)
}

/// Encodes `input` at `quality` with `-p residual=STEP`.
fn encode_residual(
    c: &ImageCodec,
    input: &[u8],
    quality: u32,
    step: &str,
) -> Result<Vec<u8>, Error> {
    encode_with(c, input, quality, &[("residual", step)])
}

/// The restoration filter (codec flag 8) on a photo with the shipped model: at a learned
/// level and at a residual rung the encoder sends it, it costs under 3 % of the file and
/// gains at least 0.08 dB; `-p filter=0` leaves it out; a cut filter chunk is an error;
/// `-p filter=2` is refused.
#[test]
fn the_restoration_filter_pays_on_a_photo() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/weights");
    let c = lcodec_image::discover_in(std::slice::from_ref(&dir)).expect("shipped models");
    let kodak = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/images/kodak/kodim23.png");
    let Ok(input) = std::fs::read(&kodak) else {
        println!("kodim23 not present: skipped");
        return;
    };
    let flags = |f: &[u8]| read_header(&mut &f[..], &Limits::default()).unwrap().params[3];
    for q in [2, 7] {
        let off = encode_with(&c, &input, q, &[("filter", "0")]).unwrap();
        let on = encode_with(&c, &input, q, &[]).unwrap();
        assert_eq!(flags(&off) & 8, 0, "q{q}: -p filter=0");
        assert_eq!(flags(&on) & 8, 8, "q{q}: the filter pays on kodim23");
        let p_off = psnr_rgb(&input, &decode_file(&c, &off).unwrap());
        let p_on = psnr_rgb(&input, &decode_file(&c, &on).unwrap());
        println!(
            "kodim23 q{q}: {} bytes / {p_off:.3} dB without the filter, {} / {p_on:.3} with",
            off.len(),
            on.len()
        );
        assert!(p_on > p_off + 0.08, "q{q}: {p_off:.3} -> {p_on:.3} dB");
        assert!(
            on.len() > off.len() && (on.len() as f64) < 1.03 * off.len() as f64,
            "q{q}: {} -> {} bytes",
            off.len(),
            on.len()
        );
        assert!(decode_file(&c, &on[..on.len() - 4]).is_err());
    }
    let e = encode_with(&c, &input, 2, &[("filter", "2")]).unwrap_err();
    assert!(e.to_string().contains("-p filter=2"), "{e}");
}

/// The residual layer (`-p residual=STEP`, or a ladder rung's step) codes what the learned
/// reconstruction misses: finer steps cost more bytes and give a closer image, on RGB,
/// grey and RGBA inputs whose sides are not multiples of 8; the file says so in its flags
/// and is the same on any thread count; a cut residual chunk is an error; bad steps are
/// refused.
#[test]
fn the_residual_layer_refines_the_learned_reconstruction() {
    let c = codec(7);
    let input = fixture_png(83, 45);
    let flags = |f: &[u8]| read_header(&mut &f[..], &Limits::default()).unwrap().params[3];
    let base = encode_residual(&c, &input, 1, "0").unwrap();
    assert_eq!(flags(&base) & 4, 0, "step 0 means no residual layer");
    assert_eq!(base, encode_file(&c, &input, Some(1)));
    let mut last = (
        base.len(),
        psnr_rgb(&input, &decode_file(&c, &base).unwrap()),
    );
    println!("no residual: {} bytes, {:.2} dB", last.0, last.1);
    for step in ["40", "12", "3", "0.5"] {
        let f = encode_residual(&c, &input, 1, step).unwrap();
        assert_eq!(flags(&f) & 4, 4, "step {step}: residual flag");
        let psnr = psnr_rgb(&input, &decode_file(&c, &f).unwrap());
        println!("step {step}: {} bytes, {psnr:.2} dB", f.len());
        assert!(
            f.len() > last.0 && psnr > last.1 + 1.0,
            "step {step}: {} bytes / {psnr:.2} dB after {} / {:.2}",
            f.len(),
            last.0,
            last.1
        );
        last = (f.len(), psnr);
    }
    assert!(last.1 > 45.0, "step 0.5 is near-lossless: {:.2} dB", last.1);
    // Deterministic, whatever the thread count.
    let one = {
        let mut out = Vec::new();
        let mut sink = ChunkSink::new(&mut out, c.info(), None);
        let mut opts = EncodeOptions {
            quality: Some(1),
            threads: 1,
            ..Default::default()
        };
        opts.params.insert("residual".into(), "12".into());
        c.encode(&mut &input[..], &mut sink, &opts).unwrap();
        sink.finish(input.len() as u64, None).unwrap();
        out
    };
    let f12 = encode_residual(&c, &input, 1, "12").unwrap();
    assert_eq!(one, f12, "1 thread vs all");
    assert_eq!(
        decode_threads(&c, &f12, 1).unwrap(),
        decode_threads(&c, &f12, 3).unwrap()
    );
    // Cut inside the residual chunk: an error, never a panic or a partial image.
    for cut in [base.len() + 8, f12.len() - 4] {
        assert!(decode_file(&c, &f12[..cut]).is_err(), "cut at {cut}");
    }
    // Grey stays grey and gets closer; alpha stays lossless.
    let grey = image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(45, 83, |x, y| {
        image::Luma([((x * 5 + y * y) % 256) as u8])
    }));
    let gin = encode_dynamic(&grey);
    let g0 = decode_file(&c, &encode_residual(&c, &gin, 1, "0").unwrap()).unwrap();
    let g1 = decode_file(&c, &encode_residual(&c, &gin, 1, "2").unwrap()).unwrap();
    let grey_err = |png: &[u8]| {
        let out = image::load_from_memory(png).unwrap();
        assert_eq!(out.color(), image::ColorType::L8);
        out.to_luma8()
            .pixels()
            .zip(grey.to_luma8().pixels())
            .map(|(a, b)| (f64::from(a[0]) - f64::from(b[0])).powi(2))
            .sum::<f64>()
    };
    assert!(grey_err(&g1) * 10.0 < grey_err(&g0));
    let rgba = image::RgbaImage::from_fn(50, 30, |x, y| {
        image::Rgba([(x * 4) as u8, (y * 7) as u8, 90, (x * y % 256) as u8])
    });
    let f = encode_residual(
        &c,
        &encode_dynamic(&image::DynamicImage::ImageRgba8(rgba.clone())),
        1,
        "6",
    )
    .unwrap();
    let out = image::load_from_memory(&decode_file(&c, &f).unwrap())
        .unwrap()
        .to_rgba8();
    assert!(out.pixels().zip(rgba.pixels()).all(|(a, b)| a[3] == b[3]));
    // Bad steps.
    for bad in ["x", "-1", "5000", "0.01"] {
        let e = encode_residual(&c, &input, 1, bad).unwrap_err().to_string();
        assert!(e.contains(&format!("-p residual={bad}")), "{bad}: {e}");
    }
}
