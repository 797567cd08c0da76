//! Round trips of text-cm through the `.lc` container: real text from ../shared/data
//! when present (alice29 and a 200 kB enwik8 slice; the whole-corpus measurement is the
//! `measure` example), adversarial inputs, multi-chunk parallel coding, sniffing, and
//! corrupt or malformed input.

use std::path::{Path, PathBuf};

use lcodec_core::container::{ChunkSink, ChunkSource, read_header};
use lcodec_core::{Codec, Confidence, DecodeOptions, EncodeOptions};
use lcodec_text::{LOGLIKE_CONFIDENCE, TextCmCodec, decode_chunk, encode_chunk};

fn pack(data: &[u8], opts: &EncodeOptions) -> Vec<u8> {
    let codec = TextCmCodec;
    let mut out = Vec::new();
    let mut sink = ChunkSink::new(&mut out, codec.info(), None);
    codec
        .encode(&mut &data[..], &mut sink, opts)
        .expect("encode");
    sink.finish(data.len() as u64, None).expect("finish");
    out
}

fn unpack(file: &[u8], threads: usize) -> lcodec_core::Result<Vec<u8>> {
    let opts = DecodeOptions {
        threads,
        ..Default::default()
    };
    let mut r: &[u8] = file;
    let header = read_header(&mut r, &opts.limits)?;
    let mut src = ChunkSource::stream(&mut r, header.len, opts.limits, true);
    let mut out = Vec::new();
    TextCmCodec.decode(&header, &mut src, &mut out, &opts)?;
    Ok(out)
}

fn round_trip_with(data: &[u8], opts: &EncodeOptions) -> usize {
    let packed = pack(data, opts);
    let back = unpack(&packed, 2).expect("decode");
    assert!(
        back == data,
        "round trip differs ({} vs {} bytes)",
        back.len(),
        data.len()
    );
    packed.len()
}

fn round_trip(data: &[u8]) -> usize {
    round_trip_with(
        data,
        &EncodeOptions {
            threads: 2,
            ..Default::default()
        },
    )
}

fn shared(rel: &str) -> Option<Vec<u8>> {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/text")
        .join(rel);
    match std::fs::read(&p) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("skipping {}: {e}", p.display());
            None
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), no RNG dependency.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

const PROSE: &str = "Alice was beginning to get very tired of sitting by her sister on the bank, and of \
having nothing to do: once or twice she had peeped into the book her sister was reading, but it had no \
pictures or conversations in it, 'and what is the use of a book,' thought Alice 'without pictures or \
conversations?'\n";

#[test]
fn alice29_round_trips_below_2_bits_per_byte() {
    let Some(d) = shared("canterbury/alice29.txt") else {
        return;
    };
    let n = round_trip(&d);
    let bpb = n as f64 * 8.0 / d.len() as f64;
    eprintln!("alice29: {} -> {n} bytes, {bpb:.3} bpb", d.len());
    // xz -9 gets 2.55 bpb, zpaq -m5 1.98.
    assert!(bpb < 2.05, "alice29 at {bpb:.3} bpb");
}

#[test]
fn enwik8_slice_round_trips_in_parallel_chunks() {
    let Some(d) = shared("enwik8_prefix/enwik8_head4000000") else {
        return;
    };
    let d = &d[..200_000];
    let one = round_trip(d);
    let chunked = round_trip_with(
        d,
        &EncodeOptions {
            threads: 2,
            chunk_size: Some(64 << 10),
            ..Default::default()
        },
    );
    let bpb = one as f64 * 8.0 / d.len() as f64;
    eprintln!(
        "enwik8[..200k]: {one} bytes ({bpb:.3} bpb) in one chunk, {chunked} in 64 KiB chunks"
    );
    assert!(bpb < 2.3, "enwik8 slice at {bpb:.3} bpb");
    assert!(chunked > one, "independent chunks cannot beat one model");
}

#[test]
fn empty_input_round_trips() {
    assert_eq!(
        unpack(&pack(b"", &EncodeOptions::default()), 1).expect("decode"),
        b""
    );
    // One byte and a few bytes: tiny tables, still exact.
    round_trip(b"x");
    round_trip(b"ab\n");
}

#[test]
fn binary_and_invalid_utf8_round_trip_without_expansion() {
    let bin = noise(100_000, 7);
    let n = round_trip(&bin);
    // Incompressible chunks are stored: one mode byte plus container overhead.
    assert!(n < bin.len() + 200, "binary expanded to {n}");
    let mut bad = PROSE.repeat(50).into_bytes();
    for i in (0..bad.len()).step_by(97) {
        bad[i] = 0xC0 | (i as u8 & 0x3F); // lone lead bytes, truncated sequences
    }
    bad.extend_from_slice(&[0xFF, 0xFE, 0x80, 0x00, 0xED, 0xA0, 0x80]);
    let m = round_trip(&bad);
    assert!(
        m < bad.len() / 3,
        "invalid UTF-8 prose: {m} of {}",
        bad.len()
    );
}

#[test]
fn one_huge_line_round_trips() {
    // 1 MB without a newline: words drawn from the prose by a fixed sequence.
    let words: Vec<&str> = PROSE.split_whitespace().collect();
    let mut line = String::new();
    let mut s = 12345u32;
    while line.len() < 1_000_000 {
        s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
        line.push_str(words[(s >> 16) as usize % words.len()]);
        line.push(' ');
    }
    let n = round_trip(line.as_bytes());
    assert!(n < line.len() / 4, "huge line: {n}");
}

#[test]
fn every_byte_value_and_long_repeats_round_trip() {
    let mut d: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    d.extend(std::iter::repeat_n(b'a', 100_000));
    d.extend(noise(1000, 3));
    d.extend(PROSE.repeat(30).bytes());
    let n = round_trip(&d);
    assert!(n < 8_000, "structured input: {n}");
}

#[test]
fn mem_parameter_is_stored_and_validated() {
    let text = PROSE.repeat(20);
    let mut o = EncodeOptions::default();
    o.params.insert("mem".into(), "8".into());
    let small = round_trip_with(text.as_bytes(), &o);
    assert!(small < text.len() / 4);
    o.params.insert("mem".into(), "0".into());
    let codec = TextCmCodec;
    let mut out = Vec::new();
    let mut sink = ChunkSink::new(&mut out, codec.info(), None);
    assert!(codec.encode(&mut text.as_bytes(), &mut sink, &o).is_err());
    o.params.insert("mem".into(), "lots".into());
    let mut sink = ChunkSink::new(&mut out, codec.info(), None);
    assert!(codec.encode(&mut text.as_bytes(), &mut sink, &o).is_err());
}

#[test]
fn corrupt_payloads_are_errors_or_wrong_bytes_never_panics() {
    let text = PROSE.repeat(10).into_bytes();
    let payload = encode_chunk(&text, 12);
    assert_eq!(payload[0], 1, "prose is coded, not stored");
    assert_eq!(
        decode_chunk(&payload, text.len(), 12).expect("decode"),
        text
    );
    // Truncated far enough, the decoder notices; never panics at any length.
    for n in 0..payload.len() {
        if let Ok(d) = decode_chunk(&payload[..n], text.len(), 12) {
            assert_eq!(d.len(), text.len());
        }
    }
    assert!(decode_chunk(&payload[..payload.len() / 2], text.len(), 12).is_err());
    assert!(decode_chunk(&[], 5, 12).is_err());
    assert!(decode_chunk(&[9, 1, 2], 5, 12).is_err());
    assert!(
        decode_chunk(&[0, 1, 2], 5, 12).is_err(),
        "stored chunk of the wrong length"
    );
    // Flipped bits decode to something else (the container's hash catches it).
    // (The last bytes are the coder's flush, where a flip may not matter.)
    for i in [1, 2, payload.len() / 3, payload.len() / 2] {
        let mut bad = payload.clone();
        bad[i] ^= 0x10;
        if let Ok(d) = decode_chunk(&bad, text.len(), 12) {
            assert!(d != text, "flip at {i} went unnoticed");
        }
    }
}

#[test]
fn container_damage_is_an_error() {
    let text = PROSE.repeat(10).into_bytes();
    let packed = pack(&text, &EncodeOptions::default());
    for n in (0..packed.len()).step_by(7) {
        assert!(unpack(&packed[..n], 1).is_err(), "truncated to {n} decoded");
    }
    let mut bad = packed.clone();
    let mid = packed.len() / 2;
    bad[mid] ^= 1;
    assert!(unpack(&bad, 1).is_err(), "bit flip at {mid} decoded");
}

#[test]
fn sniff_picks_prose_and_leaves_binary_and_logs() {
    let c = TextCmCodec;
    assert_eq!(c.sniff(PROSE.as_bytes(), None), Some(Confidence::CONTENT));
    assert_eq!(
        c.sniff(
            "Война и мир. Лев Николаевич Толстой, роман в четырёх томах.\n"
                .repeat(3)
                .as_bytes(),
            None
        ),
        Some(Confidence::CONTENT)
    );
    assert_eq!(c.sniff(&noise(4096, 1), None), None);
    assert_eq!(c.sniff(b"", None), None);
    let mut zeros = PROSE.as_bytes().to_vec();
    zeros.extend_from_slice(&[0u8; 64]);
    assert_eq!(c.sniff(&zeros, None), None);
    let log = "2026-11-23 05:58:32 INFO dfs.DataNode: Receiving block blk_123 src: /10.0.0.1\n"
        .repeat(20);
    assert_eq!(c.sniff(log.as_bytes(), None), Some(LOGLIKE_CONFIDENCE));
    if let Some(d) = shared("canterbury/alice29.txt") {
        assert_eq!(c.sniff(&d[..65536], None), Some(Confidence::CONTENT));
    }
    if let Some(d) = shared("enwik8_prefix/enwik8_head4000000") {
        assert_eq!(c.sniff(&d[..65536], None), Some(Confidence::CONTENT));
    }
}

#[test]
fn malformed_codec_parameters_are_errors() {
    let text = PROSE.as_bytes();
    let packed = pack(text, &EncodeOptions::default());
    let mut r: &[u8] = &packed;
    let mut header = read_header(&mut r, &Default::default()).expect("header");
    for params in [
        vec![],
        vec![1],
        vec![2, 18],
        vec![1, 40],
        vec![1, 3],
        vec![1, 18, 0],
    ] {
        header.params = params.clone();
        let mut r2: &[u8] = r;
        let opts = DecodeOptions::default();
        let mut src = ChunkSource::stream(&mut r2, header.len, opts.limits, true);
        let mut out = Vec::new();
        assert!(
            TextCmCodec
                .decode(&header, &mut src, &mut out, &opts)
                .is_err(),
            "params {params:?} accepted"
        );
    }
}

/// The committed golden (testdata/golden/text-cm/prose.lc, listed in MANIFEST.tsv and
/// checked by the facade's golden test too) decodes to its fixture, and the fixture
/// encodes to it byte for byte: the model and coder are frozen.
#[test]
fn golden_bitstream_decodes_and_reencodes_identically() {
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    let fixture = std::fs::read(testdata.join("fixtures/text-prose.txt")).expect("fixture");
    let golden = std::fs::read(testdata.join("golden/text-cm/prose.lc")).expect("golden");
    assert_eq!(unpack(&golden, 1).expect("decode golden"), fixture);
    let opts = EncodeOptions {
        threads: 1,
        chunk_size: Some(2048),
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut hr = lcodec_core::container::HashingReader::new(&fixture[..]);
    let mut sink = ChunkSink::new(&mut out, TextCmCodec.info(), None);
    TextCmCodec
        .encode(&mut hr, &mut sink, &opts)
        .expect("encode");
    sink.finish(hr.count(), Some(hr.digest())).expect("finish");
    assert!(
        out == golden,
        "encoder output differs from the golden (regenerate with the `golden` example and note it)"
    );
}
