//! The learned range predictor: bit-exact integer inference (golden outputs of the
//! shipped weights), round trips with both predictors, the model reference in the
//! header, and errors for files that name other weights.

use std::path::Path;

use lcodec_core::container::{ChunkSink, ChunkSource, read_header};
use lcodec_core::{Codec, DecodeOptions, EncodeOptions, Error};
use lcodec_lidar::format::{self, Format};
use lcodec_lidar::{LidarCodec, mlp};

fn pack(data: &[u8], predictor: Option<&str>) -> Vec<u8> {
    let mut o = EncodeOptions {
        file_name: Some("scan.bin".to_string()),
        ..EncodeOptions::default()
    };
    if let Some(p) = predictor {
        o.params.insert("predictor".into(), p.into());
    }
    let mut out = Vec::new();
    let mut sink = ChunkSink::new(&mut out, LidarCodec.info(), None);
    LidarCodec
        .encode(&mut &data[..], &mut sink, &o)
        .expect("encode");
    sink.finish(data.len() as u64, None).expect("finish");
    out
}

fn unpack(
    file: &[u8],
    tamper: bool,
) -> lcodec_core::Result<(Vec<u8>, lcodec_core::container::Header)> {
    let o = DecodeOptions::default();
    let mut r: &[u8] = file;
    let mut header = read_header(&mut r, &o.limits)?;
    let orig = header.clone();
    if tamper {
        if let Some(b) = header.model.weights_hash.first_mut() {
            *b ^= 1;
        }
    }
    let mut src = ChunkSource::stream(&mut r, header.len, o.limits, true);
    let mut out = Vec::new();
    LidarCodec.decode(&header, &mut src, &mut out, &o)?;
    Ok((out, orig))
}

fn kitti() -> Option<Vec<u8>> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/lidar/kitti_object_5frames_float32/000004.bin");
    match std::fs::read(&p) {
        Ok(d) => Some(d),
        Err(_) => {
            eprintln!("skipping: {} not found", p.display());
            None
        }
    }
}

#[test]
fn shipped_network_gives_golden_outputs() {
    // Fixed integer outputs: any machine must reproduce them exactly (the decoder
    // depends on it). They change only with the weights file (hash below).
    let m = mlp::shipped().expect("weights");
    let inputs: [[i64; mlp::FEATURES]; 6] = [
        [0; mlp::FEATURES],
        [12, -7, 30, 150, -4, 9, 1200, 256, 256, -60, 0],
        [-400, 380, 2500, -3000, 0, 0, 300, 256, 256, -120, 256],
        [60, 55, 40, 90, 35, -30, 150, 256, 256, -200, 0],
        [-80, -75, -60, -500, -50, 45, 400, 256, 256, -100, 256],
        [200, -150, 0, 0, 0, 0, 900, 256, 0, 20, 0],
    ];
    let got: Vec<(i64, i64)> = inputs
        .iter()
        .map(|x| {
            let p = m.eval(x);
            (p.correction, p.height)
        })
        .collect();
    println!("golden outputs: {got:?}");
    let hash: String = mlp::shipped_hash()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("weights hash: {hash}");
    assert_eq!(got, GOLDEN);
    assert_eq!(
        hash, GOLDEN_HASH,
        "weights changed: update the golden values"
    );
}

const GOLDEN: [(i64, i64); 6] = [
    (-37, 202),
    (22, 230),
    (-43, 208),
    (30, 138),
    (-72, 209),
    (-15, 219),
];
const GOLDEN_HASH: &str = "ce8848f9213acc62ec457a51abd4c20c";

#[test]
fn both_predictors_round_trip_and_the_learned_one_is_smaller() {
    let Some(data) = kitti() else { return };
    let orig = format::parse(&data, Format::Kitti).expect("parse");
    let mut sizes = Vec::new();
    for pred in [Some("classical"), None] {
        let packed = pack(&data, pred);
        let (back, header) = unpack(&packed, false).expect("decode");
        assert_eq!(back.len(), data.len());
        let c = format::parse(&back, Format::Kitti).expect("parse decoded");
        assert_eq!(c.attrs, orig.attrs);
        for (a, b) in c.xyz.iter().zip(&orig.xyz) {
            for k in 0..3 {
                assert!((f64::from(a[k]) - f64::from(b[k])).abs() <= 0.0005);
            }
        }
        if pred.is_none() {
            assert_eq!(header.model.id, mlp::MODEL_ID);
            assert_eq!(header.model.weights_hash, mlp::shipped_hash().to_vec());
            // Files naming other weights are refused, not misdecoded.
            match unpack(&packed, true) {
                Err(Error::Unsupported(m)) => assert!(m.contains("model"), "{m}"),
                other => panic!("expected Unsupported, got {:?}", other.map(|_| ())),
            }
        } else {
            assert!(header.model.id.is_empty() && header.model.weights_hash.is_empty());
        }
        sizes.push(packed.len());
    }
    println!("classical {} bytes, learned {} bytes", sizes[0], sizes[1]);
    assert!(sizes[1] < sizes[0], "learned predictor smaller: {sizes:?}");
}

#[test]
fn unknown_predictor_is_an_error() {
    let mut o = EncodeOptions::default();
    o.params.insert("predictor".into(), "oracle".into());
    let data = [0u8; 64];
    let mut out = Vec::new();
    let mut sink = ChunkSink::new(&mut out, LidarCodec.info(), None);
    assert!(LidarCodec.encode(&mut &data[..], &mut sink, &o).is_err());
}
