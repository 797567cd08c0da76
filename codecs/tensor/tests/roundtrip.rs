//! Round trips, random access and damaged-input behaviour of the tensor codec, on the
//! weight files in ../shared/data/tensors (skipped with a note when absent) and on
//! fixtures built here (BF16 made from F32 weights, GGUF, raw arrays, odd files).

use std::io::Cursor;
use std::path::Path;

use lcodec_core::container::{ChunkSink, ChunkSource, HashingReader, HashingWriter, read_header};
use lcodec_core::{ChecksumLocation, Codec, DecodeOptions, EncodeOptions, Error};
use lcodec_tensor::{TensorCodec, decode_tensor, list_tensors};

/// What the library facade does around a codec, without depending on the facade (so
/// these tests build whatever state the other codecs are in).
mod lcodec {
    pub use lcodec_core::{Error, Limits, Result, container};
    use std::io::{Read, Seek, Write};

    use super::*;

    pub fn encode(src: &mut dyn Read, dst: &mut dyn Write, opts: &EncodeOptions) -> Result<u64> {
        let codec = TensorCodec;
        let mut hr = HashingReader::new(src);
        let mut sink = ChunkSink::new(dst, codec.info(), None);
        codec.encode(&mut hr, &mut sink, opts)?;
        sink.finish(hr.count(), Some(hr.digest()))
    }

    fn run(
        header: lcodec_core::Header,
        src: &mut ChunkSource<'_>,
        dst: &mut dyn Write,
        opts: &DecodeOptions,
    ) -> Result<()> {
        if header.codec_id != TensorCodec.info().id {
            return Err(Error::Unsupported("not a tensor file".into()));
        }
        let mut hw = HashingWriter::new(dst);
        TensorCodec.decode(&header, src, &mut hw, opts)?;
        if let Some(c) = src.next_chunk()? {
            return Err(Error::malformed(c.offset, "chunk not consumed"));
        }
        let t = src
            .trailer()
            .cloned()
            .ok_or_else(|| Error::malformed(0, "missing trailer"))?;
        if !opts.params.contains_key("tensor")
            && (hw.count() != t.original_size || hw.digest() != t.original_hash)
        {
            return Err(Error::Checksum {
                location: ChecksumLocation::Original,
            });
        }
        Ok(())
    }

    pub fn decode(src: &mut dyn Read, dst: &mut dyn Write, opts: &DecodeOptions) -> Result<()> {
        let header = read_header(src, &opts.limits)?;
        let mut s = ChunkSource::stream(src, header.len, opts.limits, opts.verify);
        run(header, &mut s, dst, opts)
    }

    pub fn decode_seekable<R: Read + Seek>(
        src: &mut R,
        dst: &mut dyn Write,
        opts: &DecodeOptions,
    ) -> Result<()> {
        let header = read_header(src, &opts.limits)?;
        let mut s = ChunkSource::seekable(src, &header, opts.limits, opts.verify)?;
        run(header, &mut s, dst, opts)
    }
}

const DATA: &str = "../../../shared/data/tensors";

fn data_dir() -> Option<std::path::PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(DATA);
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: {} not found", p.display());
        None
    }
}

fn enc_opts(chunk: Option<usize>) -> EncodeOptions {
    EncodeOptions {
        chunk_size: chunk,
        threads: 2,
        ..Default::default()
    }
}

fn encode(data: &[u8], opts: &EncodeOptions) -> Vec<u8> {
    let mut packed = Vec::new();
    lcodec::encode(&mut &data[..], &mut packed, opts).expect("encodes");
    packed
}

fn decode(packed: &[u8]) -> lcodec::Result<Vec<u8>> {
    let mut out = Vec::new();
    lcodec::decode(
        &mut &packed[..],
        &mut out,
        &DecodeOptions {
            threads: 2,
            ..Default::default()
        },
    )?;
    Ok(out)
}

/// Round trip plus random access of every tensor; returns the packed size.
fn check_file(data: &[u8], opts: &EncodeOptions) -> usize {
    let packed = encode(data, opts);
    assert_eq!(decode(&packed).expect("decodes"), data);
    let dopts = DecodeOptions::default();
    let tensors = list_tensors(&mut Cursor::new(&packed), &dopts).expect("lists");
    for t in &tensors {
        let got = decode_tensor(&mut Cursor::new(&packed), &t.name, &dopts).expect("random access");
        assert_eq!(
            got,
            &data[t.start as usize..(t.start + t.len) as usize],
            "tensor {}",
            t.name
        );
    }
    packed.len()
}

fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 11
}

/// Builds a safetensors file from (name, dtype, shape, bytes).
fn safetensors(tensors: &[(&str, &str, Vec<u64>, Vec<u8>)]) -> Vec<u8> {
    let mut json = String::from("{\"__metadata__\":{\"format\":\"pt\"}");
    let mut off = 0;
    for (name, dtype, shape, bytes) in tensors {
        let shape: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        json += &format!(
            ",\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{off},{}]}}",
            shape.join(","),
            off + bytes.len()
        );
        off += bytes.len();
    }
    json.push('}');
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut f = (json.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(json.as_bytes());
    for t in tensors {
        f.extend_from_slice(&t.3);
    }
    f
}

/// Gaussian-ish f32 weights (sum of uniforms) scaled by `scale`.
fn fake_f32(n: usize, scale: f32, seed: &mut u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let s: f32 = (0..4)
                .map(|_| (lcg(seed) % 10_000) as f32 / 10_000.0 - 0.5)
                .sum();
            s * scale
        })
        .collect()
}

/// Rewrites every F32 tensor of a safetensors file as BF16 (truncation).
fn to_bf16(f32_file: &[u8]) -> Vec<u8> {
    let n = u64::from_le_bytes(f32_file[..8].try_into().expect("8 bytes")) as usize;
    let hdr: serde_json::Value = serde_json::from_slice(&f32_file[8..8 + n]).expect("json");
    let body = &f32_file[8 + n..];
    let mut items: Vec<(String, serde_json::Value)> = hdr
        .as_object()
        .expect("object")
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    items.sort_by_key(|(_, v)| v["data_offsets"][0].as_u64());
    let mut owned = Vec::new();
    for (name, v) in &items {
        let (a, b) = (
            v["data_offsets"][0].as_u64().expect("a") as usize,
            v["data_offsets"][1].as_u64().expect("b") as usize,
        );
        let shape: Vec<u64> = v["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dim"))
            .collect();
        let dtype = v["dtype"].as_str().expect("dtype");
        if dtype == "F32" {
            let bytes: Vec<u8> = body[a..b]
                .chunks_exact(4)
                .flat_map(|c| [c[2], c[3]])
                .collect();
            owned.push((name.clone(), "BF16".to_string(), shape, bytes));
        } else {
            owned.push((name.clone(), dtype.to_string(), shape, body[a..b].to_vec()));
        }
    }
    let refs: Vec<(&str, &str, Vec<u64>, Vec<u8>)> = owned
        .iter()
        .map(|(n, d, s, b)| (n.as_str(), d.as_str(), s.clone(), b.clone()))
        .collect();
    safetensors(&refs)
}

#[test]
fn real_weight_files_round_trip_smaller_than_the_original() {
    let Some(dir) = data_dir() else { return };
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("reads dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
            continue;
        }
        let data = std::fs::read(&path).expect("reads");
        // Detection: magic bytes, the strongest claim a codec can make.
        let conf = TensorCodec.sniff(&data[..data.len().min(65536)], path.to_str());
        assert_eq!(conf, Some(lcodec_core::Confidence::MAGIC));
        let packed = check_file(&data, &enc_opts(Some(256 << 10)));
        let pct = 100.0 * packed as f64 / data.len() as f64;
        eprintln!("{}: {:.2}%", path.display(), pct);
        assert!(pct < 91.0, "{}: {pct:.2}%", path.display());
        seen += 1;
    }
    assert!(seen > 0, "no .safetensors files in {}", dir.display());
}

#[test]
fn bf16_made_from_f32_weights_compresses_below_70_percent() {
    let f32_file = match data_dir() {
        Some(d) => std::fs::read(d.join("pocketnet-v3_fold0.f32.safetensors")).expect("reads"),
        None => {
            let mut seed = 9;
            let w: Vec<u8> = fake_f32(300_000, 0.05, &mut seed)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            safetensors(&[("w", "F32", vec![600, 500], w)])
        }
    };
    let bf16 = to_bf16(&f32_file);
    let packed = check_file(&bf16, &enc_opts(Some(512 << 10)));
    let pct = 100.0 * packed as f64 / bf16.len() as f64;
    eprintln!("bf16 from f32: {pct:.2}%");
    assert!(pct < 70.0, "{pct:.2}%");
}

#[test]
fn synthetic_mixed_dtypes_round_trip_with_tiny_chunks() {
    let mut seed = 1;
    let f: Vec<f32> = fake_f32(5000, 0.1, &mut seed);
    let f32b: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
    let bf16b: Vec<u8> = f
        .iter()
        .flat_map(|v| [v.to_le_bytes()[2], v.to_le_bytes()[3]])
        .collect();
    let f16b: Vec<u8> = (0..3001u32)
        .flat_map(|i| ((i * 37 % 65536) as u16).to_le_bytes())
        .collect();
    let i8b: Vec<u8> = (0..777).map(|_| (lcg(&mut seed) % 7) as u8).collect();
    let i64b: Vec<u8> = (0..100u64).flat_map(|i| (i * i).to_le_bytes()).collect();
    let file = safetensors(&[
        ("a.f32", "F32", vec![50, 100], f32b),
        ("b.bf16", "BF16", vec![5000], bf16b),
        ("c.empty", "BF16", vec![0], Vec::new()),
        ("d.f16", "F16", vec![3001], f16b),
        ("e.i8", "I8", vec![777], i8b),
        ("f.i64", "I64", vec![100], i64b),
        ("g.bool", "BOOL", vec![3], vec![1, 0, 1]),
        ("h.odd", "F8_E4M3", vec![5], vec![1, 2, 3, 4, 5]),
    ]);
    for chunk in [Some(64), Some(1000), None] {
        check_file(&file, &enc_opts(chunk));
    }
    let packed = encode(&file, &enc_opts(Some(1000)));
    let names: Vec<String> = list_tensors(&mut Cursor::new(&packed), &DecodeOptions::default())
        .expect("lists")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names.len(), 8);
    assert!(
        decode_tensor(
            &mut Cursor::new(&packed),
            "c.empty",
            &DecodeOptions::default()
        )
        .expect("empty")
        .is_empty()
    );
}

#[test]
fn odd_inputs_round_trip() {
    // Empty input, header only, garbage with and without a safetensors-like prefix.
    let header_only = safetensors(&[]);
    let mut lying = safetensors(&[("w", "F32", vec![1000], vec![7u8; 4000])]);
    lying.truncate(lying.len() - 1001); // tensor runs past the end of the file
    let mut bad_json = 20u64.to_le_bytes().to_vec();
    bad_json.extend_from_slice(b"{\"w\": not json at all  ");
    let garbage: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut gguf_cut = b"GGUF\x03\0\0\0".to_vec();
    gguf_cut.extend_from_slice(&[1, 0, 0]);
    for data in [
        Vec::new(),
        header_only,
        lying,
        bad_json,
        garbage,
        gguf_cut,
        b"{\"a\":1}".to_vec(),
    ] {
        for chunk in [Some(64), None] {
            check_file(&data, &enc_opts(chunk));
        }
    }
}

#[test]
fn raw_arrays_with_a_dtype_parameter() {
    let mut seed = 4;
    let f: Vec<f32> = fake_f32(20_001, 0.02, &mut seed);
    let mut bf16: Vec<u8> = f
        .iter()
        .flat_map(|v| [v.to_le_bytes()[2], v.to_le_bytes()[3]])
        .collect();
    bf16.push(0x55); // a ragged tail byte
    let mut opts = enc_opts(Some(4096));
    opts.params.insert("dtype".into(), "bf16".into());
    let n = check_file(&bf16, &opts);
    assert!(
        (n as f64) < 0.75 * bf16.len() as f64,
        "{n} of {}",
        bf16.len()
    );
    let f32b: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
    opts.params.insert("dtype".into(), "f32".into());
    check_file(&f32b, &opts);
    opts.params.insert("coder".into(), "huffman".into());
    opts.params.insert("mantissa".into(), "huffman".into());
    check_file(&f32b, &opts);
    opts.params.insert("dtype".into(), "complex128".into());
    let e = lcodec::encode(&mut &f32b[..], &mut Vec::new(), &opts).expect_err("bad dtype");
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
}

fn gguf_string(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u64).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

#[test]
fn gguf_files_round_trip_with_random_access() {
    let mut seed = 2;
    let f: Vec<f32> = fake_f32(4096, 0.05, &mut seed);
    let f32b: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
    // 256 Q8_0 blocks: an F16 scale near 0.01, then 32 small int8 quants.
    let q8: Vec<u8> = (0..256)
        .flat_map(|_| {
            let mut b = vec![lcg(&mut seed) as u8, 0x20 | (lcg(&mut seed) % 4) as u8];
            b.extend((0..32).map(|_| ((lcg(&mut seed) % 9) as i8 - 4) as u8));
            b
        })
        .collect();
    let mut g = b"GGUF".to_vec();
    g.extend_from_slice(&3u32.to_le_bytes());
    g.extend_from_slice(&2u64.to_le_bytes()); // tensors
    g.extend_from_slice(&3u64.to_le_bytes()); // kv pairs
    gguf_string(&mut g, "general.name");
    g.extend_from_slice(&8u32.to_le_bytes());
    gguf_string(&mut g, "tiny");
    gguf_string(&mut g, "general.alignment");
    g.extend_from_slice(&4u32.to_le_bytes());
    g.extend_from_slice(&64u32.to_le_bytes());
    gguf_string(&mut g, "tokenizer.tokens");
    g.extend_from_slice(&9u32.to_le_bytes());
    g.extend_from_slice(&8u32.to_le_bytes());
    g.extend_from_slice(&3u64.to_le_bytes());
    for t in ["a", "bb", "ccc"] {
        gguf_string(&mut g, t);
    }
    gguf_string(&mut g, "w.f32");
    g.extend_from_slice(&2u32.to_le_bytes());
    g.extend_from_slice(&64u64.to_le_bytes());
    g.extend_from_slice(&64u64.to_le_bytes());
    g.extend_from_slice(&0u32.to_le_bytes());
    g.extend_from_slice(&0u64.to_le_bytes());
    gguf_string(&mut g, "w.q8");
    g.extend_from_slice(&1u32.to_le_bytes());
    g.extend_from_slice(&8192u64.to_le_bytes());
    g.extend_from_slice(&8u32.to_le_bytes());
    g.extend_from_slice(&(f32b.len() as u64).to_le_bytes());
    while g.len() % 64 != 0 {
        g.push(0);
    }
    let data_start = g.len();
    g.extend_from_slice(&f32b);
    g.extend_from_slice(&q8);
    assert_eq!(
        TensorCodec.sniff(&g, Some("m.gguf")),
        Some(lcodec_core::Confidence::MAGIC)
    );
    check_file(&g, &enc_opts(Some(4096)));
    let packed = encode(&g, &enc_opts(Some(4096)));
    let t = list_tensors(&mut Cursor::new(&packed), &DecodeOptions::default()).expect("lists");
    assert_eq!(t.len(), 2);
    assert_eq!(
        (t[0].name.as_str(), t[0].dtype.as_str(), t[0].start),
        ("w.f32", "F32", data_start as u64)
    );
    assert_eq!(
        (t[1].name.as_str(), t[1].dtype.as_str(), t[1].len),
        ("w.q8", "Q8_0", q8.len() as u64)
    );
    assert_eq!(
        decode_tensor(&mut Cursor::new(&packed), "w.q8", &DecodeOptions::default()).expect("q8"),
        q8
    );
    // Scales and quants modelled apart: 32 quants of 9 levels ≈ 3.2 bits each.
    assert!(
        packed.len() < g.len() - q8.len() / 2,
        "{} of {} bytes",
        packed.len(),
        g.len()
    );
}

#[test]
fn facade_decode_with_a_tensor_parameter_writes_only_that_tensor() {
    let mut seed = 3;
    let a: Vec<u8> = fake_f32(10_000, 0.1, &mut seed)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let b: Vec<u8> = fake_f32(10_000, 0.1, &mut seed)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let file = safetensors(&[
        ("a", "F32", vec![10_000], a),
        ("b", "F32", vec![10_000], b.clone()),
    ]);
    let packed = encode(&file, &enc_opts(Some(8192)));
    let mut opts = DecodeOptions::default();
    opts.params.insert("tensor".into(), "b".into());
    let mut out = Vec::new();
    lcodec::decode_seekable(&mut Cursor::new(&packed), &mut out, &opts)
        .expect("decodes one tensor");
    assert_eq!(out, b);
    // A stream cannot seek: clear error.
    let e = lcodec::decode(&mut &packed[..], &mut Vec::new(), &opts).expect_err("needs seek");
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    opts.params.insert("tensor".into(), "zz".into());
    let e = lcodec::decode_seekable(&mut Cursor::new(&packed), &mut Vec::new(), &opts)
        .expect_err("unknown name");
    assert!(e.to_string().contains("zz"), "{e}");
}

#[test]
fn damaged_or_truncated_files_are_errors() {
    let mut seed = 5;
    let w: Vec<u8> = fake_f32(20_000, 0.1, &mut seed)
        .iter()
        .flat_map(|v| [v.to_le_bytes()[2], v.to_le_bytes()[3]])
        .collect();
    let file = safetensors(&[("w", "BF16", vec![20_000], w)]);
    let packed = encode(&file, &enc_opts(Some(8192)));
    for cut in [
        0,
        10,
        60,
        packed.len() / 2,
        packed.len() - 17,
        packed.len() - 1,
    ] {
        assert!(decode(&packed[..cut]).is_err(), "truncated at {cut}");
    }
    for i in (100..packed.len() - 40).step_by(97) {
        let mut bad = packed.clone();
        bad[i] ^= 0x20;
        assert!(decode(&bad).is_err(), "flipped byte {i}");
        let _ = decode_tensor(&mut Cursor::new(&bad), "w", &DecodeOptions::default());
    }
}

#[test]
fn malformed_chunk_payloads_never_panic() {
    let mut seed = 6;
    let limits = lcodec::Limits::default();
    let w: Vec<u8> = fake_f32(3000, 0.1, &mut seed)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let file = safetensors(&[("w", "F32", vec![3000], w)]);
    let packed = encode(&file, &enc_opts(None));
    let mut cur = Cursor::new(&packed);
    let header = read_header(&mut cur, &limits).expect("header");
    let trailer =
        lcodec_core::container::read_trailer_seek(&mut cur, &header, &limits).expect("trailer");
    let c = trailer.chunks[0];
    let start = (c.offset + lcodec::container::CHUNK_RECORD_OVERHEAD) as usize;
    let payload = &packed[start..start + c.comp_len as usize];
    assert_eq!(
        lcodec_tensor::decode_chunk(payload, c.raw_len, &limits).expect("good chunk"),
        file
    );
    for i in 0..payload.len().min(400) {
        for bit in [1u8, 0x40, 0x80] {
            let mut bad = payload.to_vec();
            bad[i] ^= bit;
            let _ = lcodec_tensor::decode_chunk(&bad, c.raw_len, &limits);
        }
        assert!(lcodec_tensor::decode_chunk(&payload[..i], c.raw_len, &limits).is_err());
    }
    for _ in 0..3000 {
        let len = (lcg(&mut seed) % 48) as usize;
        let g: Vec<u8> = (0..len).map(|_| (lcg(&mut seed) % 8) as u8).collect();
        let _ = lcodec_tensor::decode_chunk(&g, (lcg(&mut seed) % 300) as u32, &limits);
    }
}
