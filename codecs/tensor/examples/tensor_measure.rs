//! Measures the tensor codec on files: size as % of the original, encode and decode MB/s.
//!
//! `cargo run --release -p lcodec-tensor --example tensor_measure -- [-t THREADS] [-p k=v] FILE...`
use std::time::Instant;

use lcodec_core::container::{ChunkSink, ChunkSource, read_header};
use lcodec_core::{Codec, DecodeOptions, EncodeOptions};
use lcodec_tensor::TensorCodec;

fn encode(data: &[u8], opts: &EncodeOptions) -> lcodec_core::Result<Vec<u8>> {
    let mut packed = Vec::new();
    let mut sink = ChunkSink::new(&mut packed, TensorCodec.info(), None);
    TensorCodec.encode(&mut &data[..], &mut sink, opts)?;
    sink.finish(data.len() as u64, None)?;
    Ok(packed)
}

fn decode(packed: &[u8], out: &mut Vec<u8>, opts: &DecodeOptions) -> lcodec_core::Result<()> {
    let mut r = packed;
    let header = read_header(&mut r, &opts.limits)?;
    let mut src = ChunkSource::stream(&mut r, header.len, opts.limits, opts.verify);
    TensorCodec.decode(&header, &mut src, out, opts)?;
    src.finish()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut threads = 0;
    let mut params = Vec::new();
    let mut files = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "-t" => threads = args.next().ok_or("-t needs a value")?.parse()?,
            "-p" => params.push(args.next().ok_or("-p needs a value")?),
            _ => files.push(a),
        }
    }
    println!("file,bytes,lc_bytes,lc_pct,encode_mb_s,decode_mb_s");
    for f in files {
        let data = std::fs::read(&f)?;
        let mut eo = EncodeOptions {
            threads,
            file_name: Some(f.clone()),
            ..Default::default()
        };
        for p in &params {
            let (k, v) = p.split_once('=').ok_or("-p k=v")?;
            eo.params.insert(k.into(), v.into());
        }
        let t = Instant::now();
        let packed = encode(&data, &eo)?;
        let enc = t.elapsed().as_secs_f64();
        let d_opts = DecodeOptions {
            threads,
            ..Default::default()
        };
        let mut best = f64::MAX;
        let mut out = Vec::with_capacity(data.len());
        for _ in 0..5 {
            out.clear();
            let t = Instant::now();
            decode(&packed, &mut out, &d_opts)?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        assert!(out == data, "round trip mismatch on {f}");
        let mb = data.len() as f64 / 1e6;
        println!(
            "{f},{},{},{:.2},{:.1},{:.1}",
            data.len(),
            packed.len(),
            100.0 * packed.len() as f64 / data.len() as f64,
            mb / enc,
            mb / best
        );
    }
    Ok(())
}
