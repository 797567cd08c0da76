//! Cross-codec robustness: hostile payloads that carry *valid* CRCs.
//!
//! The container catches random damage with its chunk CRCs, so a codec's decoder only
//! sees a malformed payload when a file was crafted (or written by a buggy encoder).
//! For every codec in [`Registry::with_enabled`] this test encodes a small input suited
//! to the codec's [`Kind`], then rebuilds the file with mutated chunk payloads, chunk
//! lengths, chunk order, codec parameters, metadata and trailer index, re-signing
//! everything through [`ChunkSink`]. Every decode (streaming and seekable) must return
//! an error, or output that passes the container's checks (for lossless codecs: the
//! original bytes). A panic, a decode that runs past a timeout, or a decode whose peak
//! memory passes a bound fails the test with a reproducible description of the case.
//!
//! Reproduce one case: `ROBUST_FILTER='log/chunk 1/flip-bits' cargo test -p lcodec --test
//! robustness -- --nocapture` (a substring of the case label printed on failure).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, mpsc};
use std::time::{Duration, Instant};

use lcodec::container::{ChunkSink, ChunkSource, read_header};
use lcodec::{
    Codec, CodecInfo, DecodeOptions, EncodeOptions, Header, Kind, Limits, Registry, Trailer,
};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Wall-clock budget in seconds for the mutations of one codec (the case list is cut to
/// fit, from the measured time of a clean decode, so slow codecs get fewer cases);
/// `ROBUST_BUDGET_S` overrides it.
const CODEC_BUDGET_S: u64 = 4;
/// Fewest cases per codec, however slow it is.
const MIN_CASES: usize = 4;
/// Most mutated files per codec.
const MAX_CASES: usize = 400;
/// A decode running this long is reported as a hang (raised to ten clean decodes for
/// slow codecs, up to [`MAX_TIMEOUT`]).
const MIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound of the hang timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest single allocation decoders may make: decodes run with this `max_alloc`
/// (the container still passes chunks of up to 2 GiB `raw_len` to the codec), so a
/// codec must check what it allocates from values in the file against the limits.
const MAX_ALLOC: u64 = 256 << 20;
/// Growth of resident memory above this during one decode is reported.
const MAX_RSS_GROWTH: u64 = 1 << 30;
/// A codec whose encode of the small input takes longer than this is only
/// mutation-tested with `ROBUST_SLOW=1` (a language model on a busy CPU).
const SLOW_ENCODE: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------
// Inputs

fn mixed_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let words: [&[u8]; 6] = [
        b"block ",
        b"stored ",
        b"INFO ",
        b"2026-11-23 ",
        b"\r\n",
        b"id=0x7f3a ",
    ];
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        if rng.random_bool(0.7) {
            v.extend_from_slice(words[rng.random_range(0..words.len())]);
        } else {
            for _ in 0..rng.random_range(1..40) {
                v.push(rng.random());
            }
        }
    }
    v.truncate(len);
    v
}

fn log_lines(n: usize) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let levels = ["INFO", "WARN", "DEBUG", "ERROR"];
    let msgs = [
        "stored block {} in {} ms",
        "connection from 10.0.{}.{} closed",
        "retrying request id={} after {} attempts",
        "cache hit ratio {}.{}%",
    ];
    let mut s = String::new();
    for i in 0..n {
        let m = msgs[rng.random_range(0..msgs.len())];
        let mut msg = String::new();
        let mut parts = m.split("{}");
        msg.push_str(parts.next().unwrap_or(""));
        for p in parts {
            msg.push_str(&rng.random_range(0..5000u32).to_string());
            msg.push_str(p);
        }
        s.push_str(&format!(
            "2026-11-23 05:{:02}:{:02}.{:03} {} [worker-{}] {}\n",
            (i / 60) % 60,
            i % 60,
            rng.random_range(0..1000u32),
            levels[rng.random_range(0..levels.len())],
            rng.random_range(0..8u32),
            msg
        ));
    }
    s.into_bytes()
}

fn english_text() -> Vec<u8> {
    let para = "It was the best of times, it was the worst of times, it was the age of wisdom, \
it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity, \
it was the season of Light, it was the season of Darkness, it was the spring of hope, it was \
the winter of despair, we had everything before us, we had nothing before us, we were all \
going direct to Heaven, we were all going direct the other way.\n\
There were a king with a large jaw and a queen with a plain face, on the throne of England; \
there were a king with a large jaw and a queen with a fair face, on the throne of France.\n";
    // Short: a language-model codec codes a few hundred bytes per second on a busy CPU.
    para.as_bytes()[..600].to_vec()
}

/// A safetensors file: 8-byte little-endian header length, JSON header, data.
fn safetensors() -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut data = Vec::new();
    let mut entries = Vec::new();
    // (name, dtype, elements, bytes per element)
    for (name, dtype, n, w) in [
        ("w0", "F32", 96usize, 4usize),
        ("w1", "BF16", 256, 2),
        ("w2", "F16", 128, 2),
        ("w3", "I8", 64, 1),
    ] {
        let start = data.len();
        for _ in 0..n {
            let v: f32 = (rng.random::<f32>() - 0.5) * 0.2;
            match dtype {
                "F32" => data.extend_from_slice(&v.to_le_bytes()),
                "BF16" => data.extend_from_slice(&v.to_bits().to_le_bytes()[2..]),
                "F16" => {
                    // Small normal halves: sign, exponent 8..14, random mantissa.
                    let h: u16 =
                        (rng.random::<u16>() & 0x83ff) | ((rng.random_range(8..15u16)) << 10);
                    data.extend_from_slice(&h.to_le_bytes());
                }
                _ => data.push(rng.random()),
            }
        }
        assert_eq!(data.len() - start, n * w);
        entries.push(format!(
            "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{n}],\"data_offsets\":[{start},{}]}}",
            data.len()
        ));
    }
    let mut json = format!("{{{}}}", entries.join(","));
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut file = (json.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(json.as_bytes());
    file.extend_from_slice(&data);
    file
}

/// A KITTI-like scan: float32 x, y, z, reflectance per point.
fn kitti_points(n: usize) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let mut v = Vec::with_capacity(n * 16);
    for i in 0..n {
        let a = i as f32 * 0.01;
        let r = 5.0 + 40.0 * rng.random::<f32>();
        for f in [
            r * a.cos(),
            r * a.sin(),
            -1.7 + rng.random::<f32>() * 2.0,
            rng.random::<f32>(),
        ] {
            v.extend_from_slice(&f.to_le_bytes());
        }
    }
    v
}

fn crc32_ieee(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A small RGB PNG, written with stored (uncompressed) deflate blocks.
fn png(w: u32, h: u32) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0); // filter: none
        for x in 0..w {
            raw.extend_from_slice(&[(x * 7 + y) as u8, (y * 5) as u8, ((x ^ y) * 3) as u8]);
        }
    }
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, b) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        let n = b.len() as u16;
        z.extend_from_slice(&n.to_le_bytes());
        z.extend_from_slice(&(!n).to_le_bytes());
        z.extend_from_slice(b);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + x as u32) % 65_521;
        b = (b + a) % 65_521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |ty: &[u8], body: &[u8]| {
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(ty);
        out.extend_from_slice(body);
        out.extend_from_slice(&crc32_ieee(&[ty, body]).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &z);
    chunk(b"IEND", &[]);
    out
}

/// A small valid input for a codec, its file name and extra encode parameters.
fn input_for(
    info: &CodecInfo,
) -> Option<(Vec<u8>, &'static str, Vec<(&'static str, &'static str)>)> {
    Some(match info.kind {
        Kind::Bytes => (mixed_bytes(9_000, 1), "x.dat", vec![]),
        Kind::Log => (log_lines(120), "x.log", vec![]),
        Kind::Text => (english_text(), "x.txt", vec![]),
        Kind::Tensor => (safetensors(), "x.safetensors", vec![]),
        Kind::PointCloud => (kitti_points(2_500), "x.bin", vec![("points", "1024")]),
        Kind::Image => (png(48, 32), "x.png", vec![]),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// The pieces of a file, and rebuilding one from them

#[derive(Clone)]
struct Parts {
    header: Header,
    trailer: Trailer,
    params: Vec<u8>,
    chunks: Vec<(Vec<u8>, u32)>,
    index: Vec<u8>,
}

fn split(lc: &[u8]) -> Parts {
    let limits = Limits::default();
    let header = read_header(&mut &lc[..], &limits).expect("header");
    let info =
        lcodec::inspect(&Registry::with_enabled(), &mut Cursor::new(lc), &limits).expect("inspect");
    let mut cur = Cursor::new(lc);
    let mut src = ChunkSource::seekable(&mut cur, &header, limits, true).expect("chunk source");
    let chunks = (0..info.trailer.chunks.len() as u64)
        .map(|i| {
            let c = src.read_chunk(i).expect("chunk");
            (c.payload, c.raw_len)
        })
        .collect();
    Parts {
        params: header.params.clone(),
        index: info.trailer.index.clone(),
        header,
        trailer: info.trailer,
        chunks,
    }
}

fn rebuild(info: &'static CodecInfo, p: &Parts) -> Vec<u8> {
    let mut out = Vec::new();
    let mut sink = ChunkSink::new(&mut out, info, None);
    sink.begin(p.header.metadata.clone(), p.header.model.clone(), &p.params)
        .expect("begin");
    for (payload, raw_len) in &p.chunks {
        sink.push(payload, *raw_len).expect("push");
    }
    sink.set_index(p.index.clone());
    let hash = p
        .header
        .has_original_hash
        .then_some(p.trailer.original_hash);
    sink.finish(p.trailer.original_size, hash).expect("finish");
    out
}

// ---------------------------------------------------------------------------------------
// Mutations

/// A change to a byte string (a chunk payload, the codec parameters, the index).
#[derive(Clone, Debug)]
enum ByteMut {
    FlipBits(usize),
    SetByte,
    SetAt(usize, u8),
    Truncate,
    DropLast,
    DropFirst,
    Append(usize),
    Fill(u8),
    FillRange(u8),
    Randomize,
    DeleteRange,
    InsertRandom,
    Double,
    Empty,
}

impl ByteMut {
    fn name(&self) -> String {
        match self {
            ByteMut::FlipBits(n) => format!("flip-bits({n})"),
            ByteMut::SetAt(i, v) => format!("set-byte[{i}]={v:#04x}"),
            ByteMut::Append(n) => format!("append({n})"),
            ByteMut::Fill(v) => format!("fill({v:#04x})"),
            ByteMut::FillRange(v) => format!("fill-range({v:#04x})"),
            other => format!("{other:?}").to_lowercase(),
        }
    }

    /// Applies the mutation; `None` if it does not apply or changes nothing.
    fn apply(&self, b: &[u8], rng: &mut ChaCha8Rng) -> Option<Vec<u8>> {
        let mut v = b.to_vec();
        let n = v.len();
        match *self {
            ByteMut::FlipBits(k) => {
                if n == 0 {
                    return None;
                }
                for _ in 0..k {
                    let bit = rng.random_range(0..n * 8);
                    v[bit / 8] ^= 1 << (bit % 8);
                }
            }
            ByteMut::SetByte => {
                if n == 0 {
                    return None;
                }
                let i = rng.random_range(0..n);
                v[i] = rng.random();
            }
            ByteMut::SetAt(i, x) => *v.get_mut(i)? = x,
            ByteMut::Truncate => {
                if n < 2 {
                    return None;
                }
                v.truncate(rng.random_range(1..n));
            }
            ByteMut::DropLast => {
                v.pop()?;
            }
            ByteMut::DropFirst => {
                if n == 0 {
                    return None;
                }
                v.remove(0);
            }
            ByteMut::Append(k) => (0..k).for_each(|_| v.push(rng.random())),
            ByteMut::Fill(x) => v.iter_mut().for_each(|b| *b = x),
            ByteMut::FillRange(x) => {
                if n == 0 {
                    return None;
                }
                let a = rng.random_range(0..n);
                let e = rng.random_range(a..=n.min(a + 64));
                v[a..e].iter_mut().for_each(|b| *b = x);
            }
            ByteMut::Randomize => rng.fill_bytes(&mut v),
            ByteMut::DeleteRange => {
                if n < 2 {
                    return None;
                }
                let a = rng.random_range(0..n - 1);
                let e = rng.random_range(a + 1..=n.min(a + 32));
                v.drain(a..e);
            }
            ByteMut::InsertRandom => {
                let a = rng.random_range(0..=n);
                let k = rng.random_range(1..16);
                let ins: Vec<u8> = (0..k).map(|_| rng.random()).collect();
                v.splice(a..a, ins);
            }
            ByteMut::Double => v.extend_from_slice(b),
            ByteMut::Empty => v.clear(),
        }
        (v != b).then_some(v)
    }
}

/// The byte mutations tried on each target: fixed ones, and seeded random ones
/// (repeated with different seeds).
fn byte_mutations() -> Vec<ByteMut> {
    let mut m = Vec::new();
    for _ in 0..4 {
        m.push(ByteMut::FlipBits(1));
    }
    m.extend([
        ByteMut::FlipBits(3),
        ByteMut::FlipBits(16),
        ByteMut::SetByte,
        ByteMut::SetByte,
        ByteMut::SetByte,
    ]);
    for i in 0..3 {
        for v in [0u8, 1, 2, 3, 4, 0x7f, 0x80, 0xff] {
            m.push(ByteMut::SetAt(i, v));
        }
    }
    m.extend([
        ByteMut::Truncate,
        ByteMut::Truncate,
        ByteMut::Truncate,
        ByteMut::DropLast,
        ByteMut::DropFirst,
        ByteMut::Append(1),
        ByteMut::Append(100),
        ByteMut::Fill(0),
        ByteMut::Fill(0xff),
        ByteMut::FillRange(0),
        ByteMut::FillRange(0xff),
        ByteMut::Randomize,
        ByteMut::Randomize,
        ByteMut::DeleteRange,
        ByteMut::DeleteRange,
        ByteMut::InsertRandom,
        ByteMut::InsertRandom,
        ByteMut::Double,
        ByteMut::Empty,
    ]);
    m
}

/// One mutated file and how it was made.
struct Case {
    label: String,
    file: Vec<u8>,
    /// Decode options to use (the tensor index cases ask for one tensor).
    params: BTreeMap<String, String>,
}

fn case_seed(label: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(label.as_bytes())
}

fn push_byte_cases(
    out: &mut Vec<Case>,
    codec: &str,
    target: &str,
    bytes: &[u8],
    info: &'static CodecInfo,
    parts: &Parts,
    set: &dyn Fn(&mut Parts, Vec<u8>),
) {
    for (k, m) in byte_mutations().iter().enumerate() {
        let label = format!("{codec}/{target}/{}#{k}", m.name());
        let seed = case_seed(&label);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let Some(v) = m.apply(bytes, &mut rng) else {
            continue;
        };
        let mut p = parts.clone();
        set(&mut p, v);
        out.push(Case {
            label: format!("{label} seed={seed:#x}"),
            file: rebuild(info, &p),
            params: BTreeMap::new(),
        });
    }
}

fn cases_for(codec: &dyn Codec, parts: &Parts, other_params: &[(String, Vec<u8>)]) -> Vec<Case> {
    let info = codec.info();
    let name = info.name;
    let mut out = Vec::new();
    let n = parts.chunks.len();
    // Chunk payloads and lengths: the first three chunks and the last one.
    let targets: Vec<usize> = (0..n).filter(|&i| i < 3 || i + 1 == n).collect();
    for &i in &targets {
        let payload = parts.chunks[i].0.clone();
        push_byte_cases(
            &mut out,
            name,
            &format!("chunk {i}"),
            &payload,
            info,
            parts,
            &move |p, v| p.chunks[i].0 = v,
        );
        let raw = parts.chunks[i].1;
        let mut rng = ChaCha8Rng::seed_from_u64(case_seed(&format!("{name}/raw_len {i}")));
        for new in [
            0,
            1,
            raw.wrapping_sub(1),
            raw + 1,
            raw / 2,
            raw.saturating_mul(2),
            raw + 4096,
            1 << 24,
            1 << 31,
            u32::MAX,
            rng.random(),
        ] {
            if new == raw {
                continue;
            }
            let mut p = parts.clone();
            p.chunks[i].1 = new;
            out.push(Case {
                label: format!("{name}/chunk {i}/raw_len {raw}->{new}"),
                file: rebuild(info, &p),
                params: BTreeMap::new(),
            });
        }
    }
    // Chunk order and count.
    let mut structural: Vec<(String, Parts)> = Vec::new();
    if n >= 2 {
        let mut p = parts.clone();
        p.chunks.swap(0, 1);
        structural.push(("swap chunks 0,1".into(), p));
        let mut p = parts.clone();
        p.chunks.swap(0, n - 1);
        structural.push((format!("swap chunks 0,{}", n - 1), p));
        let mut p = parts.clone();
        p.chunks.remove(0);
        structural.push(("drop chunk 0".into(), p));
        let mut p = parts.clone();
        let (payload, _) = p.chunks[1].clone();
        p.chunks[0].0 = payload;
        structural.push(("payload of chunk 1 in chunk 0 (raw_len kept)".into(), p));
    }
    if n >= 1 {
        let mut p = parts.clone();
        p.chunks.pop();
        structural.push((format!("drop chunk {}", n - 1), p));
        let mut p = parts.clone();
        let c = p.chunks[0].clone();
        p.chunks.insert(0, c);
        structural.push(("duplicate chunk 0".into(), p));
        let mut p = parts.clone();
        let c = p.chunks[n - 1].clone();
        p.chunks.push(c);
        structural.push((format!("duplicate chunk {}", n - 1), p));
    }
    let mut p = parts.clone();
    p.chunks.push((Vec::new(), 0));
    structural.push(("extra empty chunk".into(), p));
    let mut p = parts.clone();
    p.chunks.clear();
    structural.push(("no chunks".into(), p));
    for (what, p) in structural {
        out.push(Case {
            label: format!("{name}/structure/{what}"),
            file: rebuild(info, &p),
            params: BTreeMap::new(),
        });
    }
    // Codec parameters: byte mutations, and the parameters other codecs write.
    push_byte_cases(
        &mut out,
        name,
        "params",
        &parts.params,
        info,
        parts,
        &|p, v| p.params = v,
    );
    for (other, params) in other_params {
        if *params != parts.params {
            let mut p = parts.clone();
            p.params = params.clone();
            out.push(Case {
                label: format!("{name}/params/those of {other}"),
                file: rebuild(info, &p),
                params: BTreeMap::new(),
            });
        }
    }
    // Metadata fields.
    let meta = &parts.header.metadata;
    let mut metas = Vec::new();
    for v in [0u32, 1, 3, 65_535, 1 << 20, u32::MAX] {
        let mut m = meta.clone();
        m.width = v;
        metas.push((format!("width={v}"), m));
        let mut m = meta.clone();
        m.height = v;
        metas.push((format!("height={v}"), m));
        let mut m = meta.clone();
        m.sample_rate = v;
        metas.push((format!("sample_rate={v}"), m));
    }
    for v in [0u16, 1, 2, 5, 255, u16::MAX] {
        let mut m = meta.clone();
        m.channels = v;
        metas.push((format!("channels={v}"), m));
    }
    for v in [0u8, 1, 7, 9, 16, 33, 255] {
        let mut m = meta.clone();
        m.bit_depth = v;
        metas.push((format!("bit_depth={v}"), m));
    }
    for v in [0u64, 1, u32::MAX as u64 + 1, u64::MAX] {
        let mut m = meta.clone();
        m.frames = v;
        metas.push((format!("frames={v}"), m));
    }
    for k in [Kind::Bytes, Kind::Image, Kind::PointCloud, Kind::Tensor] {
        let mut m = meta.clone();
        m.kind = k;
        metas.push((format!("kind={}", k.name()), m));
    }
    for (what, m) in metas {
        if m == *meta {
            continue;
        }
        let mut p = parts.clone();
        p.header.metadata = m;
        out.push(Case {
            label: format!("{name}/metadata/{what}"),
            file: rebuild(info, &p),
            params: BTreeMap::new(),
        });
    }
    // Trailer index (random access); decoded whole and, for tensors, one tensor.
    if !parts.index.is_empty() {
        let before = out.len();
        push_byte_cases(
            &mut out,
            name,
            "index",
            &parts.index,
            info,
            parts,
            &|p, v| p.index = v,
        );
        if info.kind == Kind::Tensor {
            let extra: Vec<Case> = out[before..]
                .iter()
                .map(|c| Case {
                    label: format!("{} (decode tensor=w1)", c.label),
                    file: c.file.clone(),
                    params: [("tensor".to_string(), "w1".to_string())].into(),
                })
                .collect();
            out.extend(extra);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Running a decode under watch

static HOOK: Once = Once::new();
/// Panics seen while a case runs: (case id, message with location).
static PANICS: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
static CURRENT: AtomicU64 = AtomicU64::new(0);
/// Id of the next decode run.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn install_hook() {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let watched = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("robust-"));
            // Workers spawned by codecs have no name: attribute them to the case running.
            let unnamed = std::thread::current().name().is_none();
            if watched || unnamed {
                let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                    (*s).to_string()
                } else if let Some(s) = info.payload().downcast_ref::<String>() {
                    s.clone()
                } else {
                    "<non-string panic>".to_string()
                };
                let loc = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_default();
                if let Ok(mut g) = PANICS.lock() {
                    g.push((CURRENT.load(Ordering::SeqCst), format!("'{msg}' at {loc}")));
                }
            } else {
                default(info);
            }
        }));
    });
}

enum Outcome {
    Ok(Vec<u8>),
    Err(String),
    Panic(String),
    Hang,
}

fn proc_status_bytes(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb << 10)
}

fn vm_hwm() -> Option<u64> {
    proc_status_bytes("VmHWM:")
}

/// Resets the peak-RSS counter; returns the current RSS.
fn reset_hwm() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    proc_status_bytes("VmRSS:")
}

fn run_decode(
    id: u64,
    registry: &Arc<Registry>,
    file: &Arc<Vec<u8>>,
    params: &BTreeMap<String, String>,
    seekable: bool,
    timeout: Duration,
) -> Outcome {
    CURRENT.store(id, Ordering::SeqCst);
    let (tx, rx) = mpsc::channel();
    let (registry, file) = (Arc::clone(registry), Arc::clone(file));
    let limits = Limits {
        max_alloc: MAX_ALLOC,
        ..Limits::default()
    };
    let opts = DecodeOptions {
        threads: 2,
        params: params.clone(),
        limits,
        ..Default::default()
    };
    let spawned = std::thread::Builder::new()
        .name(format!("robust-{id}"))
        .spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(|| {
                let mut out = Vec::new();
                let r = if seekable {
                    lcodec::decode_seekable(&registry, &mut Cursor::new(&file[..]), &mut out, &opts)
                } else {
                    lcodec::decode(&registry, &mut &file[..], &mut out, &opts)
                };
                r.map(|_| out)
            }));
            let _ = tx.send(r);
        });
    if let Err(e) = spawned {
        return Outcome::Err(format!("could not spawn: {e}"));
    }
    match rx.recv_timeout(timeout) {
        Ok(Ok(Ok(out))) => Outcome::Ok(out),
        Ok(Ok(Err(e))) => Outcome::Err(e.to_string()),
        Ok(Err(_)) => {
            let msgs: Vec<String> = PANICS
                .lock()
                .map(|g| {
                    g.iter()
                        .filter(|(c, _)| *c == id)
                        .map(|(_, m)| m.clone())
                        .collect()
                })
                .unwrap_or_default();
            Outcome::Panic(if msgs.is_empty() {
                "panic (no message recorded)".into()
            } else {
                msgs.join("; then ")
            })
        }
        Err(_) => Outcome::Hang,
    }
}

/// What a lossy round trip must keep: a PNG's width and height (from its IHDR chunk; the
/// pixels and the deflate stream differ), otherwise the byte length (e.g. LiDAR records).
fn lossy_shape(kind: Kind, file: &[u8]) -> (usize, usize) {
    if kind == Kind::Image && file.len() >= 24 && file.starts_with(b"\x89PNG") {
        let be = |o: usize| u32::from_be_bytes([file[o], file[o + 1], file[o + 2], file[o + 3]]);
        return (be(16) as usize, be(20) as usize);
    }
    (file.len(), 0)
}

// ---------------------------------------------------------------------------------------
// The test

/// Records a failure, printing it at once (a slow run may be cut short).
fn report(failures: &mut Vec<String>, f: String) {
    eprintln!("FAILURE {f}");
    failures.push(f);
}

#[test]
fn every_codec_rejects_hostile_payloads_with_valid_crcs() {
    let (tested, failures) = check_all(Arc::new(Registry::with_enabled()));
    assert!(tested > 0, "no codec could encode its test input");
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("{f}");
        }
        panic!(
            "{} robustness failures (first: {})",
            failures.len(),
            failures[0]
        );
    }
}

/// Runs every case on every codec of `registry`; returns how many codecs were tested
/// and the failures.
fn check_all(registry: Arc<Registry>) -> (usize, Vec<String>) {
    // One run at a time: panics are attributed to the running case, memory is per process.
    static SERIAL: Mutex<()> = Mutex::new(());
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    install_hook();
    let filter = std::env::var("ROBUST_FILTER").ok();
    let codec_budget = Duration::from_secs(
        std::env::var("ROBUST_BUDGET_S")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(CODEC_BUDGET_S),
    );
    let memory_watch = reset_hwm().is_some() && vm_hwm().is_some();
    let slow_too = std::env::var_os("ROBUST_SLOW").is_some();
    if !memory_watch {
        eprintln!("note: cannot reset the peak-RSS counter here; memory bound not checked");
    }

    // Encode one file per codec first, so each codec can also be fed the others' params.
    let mut files: Vec<(&dyn Codec, Vec<u8>, Vec<u8>)> = Vec::new();
    for codec in registry.codecs() {
        let info = codec.info();
        let Some((input, file_name, extra)) = input_for(info) else {
            eprintln!(
                "skip {}: no test input for kind {}",
                info.name,
                info.kind.name()
            );
            continue;
        };
        let mut o = EncodeOptions {
            file_name: Some(file_name.into()),
            chunk_size: Some(input.len().div_ceil(3)),
            threads: 2,
            ..Default::default()
        };
        o.params.insert("codec".into(), info.name.into());
        for (k, v) in extra {
            o.params.insert(k.into(), v.into());
        }
        let mut lc = Vec::new();
        let t0 = Instant::now();
        if let Err(e) = lcodec::encode(&registry, &mut &input[..], &mut lc, &o) {
            eprintln!(
                "skip {}: encode of a {}-byte {} input failed: {e}",
                info.name,
                input.len(),
                info.kind.name()
            );
            continue;
        }
        eprintln!(
            "{}: encoded {} -> {} bytes in {:.1?}",
            info.name,
            input.len(),
            lc.len(),
            t0.elapsed()
        );
        if t0.elapsed() > SLOW_ENCODE && !slow_too {
            eprintln!(
                "skip {}: slow (encode took {:.1?}); run with ROBUST_SLOW=1 to test it",
                info.name,
                t0.elapsed()
            );
            continue;
        }
        files.push((codec, input, lc));
    }
    let other_params: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(c, _, lc)| (c.info().name.to_string(), split(lc).params))
        .collect();

    let mut failures: Vec<String> = Vec::new();
    for (codec, input, lc) in &files {
        let info = codec.info();
        let started = Instant::now();
        // Clean round trip, timed.
        let lc_arc = Arc::new(lc.clone());
        let t0 = Instant::now();
        for seekable in [false, true] {
            match run_decode(
                NEXT_ID.fetch_add(1, Ordering::SeqCst),
                &registry,
                &lc_arc,
                &BTreeMap::new(),
                seekable,
                Duration::from_secs(120),
            ) {
                Outcome::Ok(out) => {
                    if info.lossless {
                        assert!(
                            out == *input,
                            "{}: clean round trip differs (seekable={seekable})",
                            info.name
                        );
                    } else {
                        assert_eq!(
                            lossy_shape(info.kind, &out),
                            lossy_shape(info.kind, input),
                            "{}: clean round trip shape",
                            info.name
                        );
                    }
                }
                Outcome::Err(e) => panic!("{}: clean decode failed: {e}", info.name),
                Outcome::Panic(m) => panic!("{}: clean decode panicked: {m}", info.name),
                Outcome::Hang => panic!("{}: clean decode hung", info.name),
            }
        }
        let clean = t0.elapsed() / 2;
        let parts = split(lc);
        assert!(
            rebuild(info, &parts) == *lc,
            "{}: rebuilding the unmodified file changed it",
            info.name
        );

        let mut cases = cases_for(*codec, &parts, &other_params);
        if let Some(f) = &filter {
            cases.retain(|c| c.label.contains(f.as_str()));
        }
        let per_case = (clean * 2).max(Duration::from_micros(200));
        let budget =
            (codec_budget.as_nanos() / per_case.as_nanos()).max(MIN_CASES as u128) as usize;
        let total = cases.len();
        if cases.len() > budget.min(MAX_CASES) {
            // Keep an even spread over all the kinds of mutation.
            let keep = budget.min(MAX_CASES);
            let step = cases.len() as f64 / keep as f64;
            let picked: Vec<usize> = (0..keep).map(|k| (k as f64 * step) as usize).collect();
            let mut all: Vec<Option<Case>> = cases.into_iter().map(Some).collect();
            cases = picked.into_iter().filter_map(|i| all[i].take()).collect();
        }
        let timeout = MIN_TIMEOUT.max(clean * 10).min(MAX_TIMEOUT);
        let (mut errs, mut oks) = (0usize, 0usize);
        let mut codec_failures = 0usize;
        'cases: for case in &cases {
            let file = Arc::new(case.file.clone());
            for seekable in [false, true] {
                let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
                let base = if memory_watch { reset_hwm() } else { None };
                let how = if seekable {
                    "decode_seekable"
                } else {
                    "decode"
                };
                let outcome = run_decode(id, &registry, &file, &case.params, seekable, timeout);
                if let (Some(base), Some(peak)) = (base, vm_hwm()) {
                    if peak > base + MAX_RSS_GROWTH {
                        report(
                            &mut failures,
                            format!(
                                "MEMORY {} [{how}]: peak RSS {} MiB (from {} MiB)",
                                case.label,
                                peak >> 20,
                                base >> 20
                            ),
                        );
                        codec_failures += 1;
                    }
                }
                match outcome {
                    Outcome::Err(_) => errs += 1,
                    Outcome::Ok(out) => {
                        oks += 1;
                        if info.lossless && case.params.is_empty() && out != *input {
                            report(
                                &mut failures,
                                format!(
                                    "WRONG OUTPUT {} [{how}]: Ok with {} bytes differing from the original",
                                    case.label,
                                    out.len()
                                ),
                            );
                            codec_failures += 1;
                        }
                    }
                    Outcome::Panic(m) => {
                        report(&mut failures, format!("PANIC {} [{how}]: {m}", case.label));
                        codec_failures += 1;
                    }
                    Outcome::Hang => {
                        report(
                            &mut failures,
                            format!(
                                "HANG {} [{how}]: no result after {:?}; rest of {} skipped",
                                case.label, timeout, info.name
                            ),
                        );
                        break 'cases;
                    }
                }
            }
        }
        eprintln!(
            "{}: {} chunks, {} of {} cases x 2 decodes in {:.1?} (clean decode {:.1?}): {errs} errors, {oks} ok, {codec_failures} failures",
            info.name,
            parts.chunks.len(),
            cases.len(),
            total,
            started.elapsed(),
            clean,
        );
    }
    (files.len(), failures)
}

// ---------------------------------------------------------------------------------------
// The harness itself: a codec that panics on one payload must be caught and named.

static FRAGILE: CodecInfo = CodecInfo {
    id: lcodec::CodecId(900),
    name: "fragile",
    version: 1,
    lossless: true,
    kind: Kind::Bytes,
    description: "test codec that stores chunks and panics on a payload starting with 0xff",
};

/// Stores its input as one chunk per 3 KB; decoding panics on a payload whose first byte
/// is 0xff (which the harness's `set-byte[0]=0xff` and `fill(0xff)` mutations produce).
struct Fragile;

impl Codec for Fragile {
    fn info(&self) -> &'static CodecInfo {
        &FRAGILE
    }
    fn sniff(&self, _: &[u8], _: Option<&str>) -> Option<lcodec::Confidence> {
        None
    }
    fn encode(
        &self,
        src: &mut dyn std::io::Read,
        sink: &mut ChunkSink<'_>,
        _: &EncodeOptions,
    ) -> lcodec::Result<()> {
        let mut all = Vec::new();
        src.read_to_end(&mut all)?;
        sink.begin(lcodec::Metadata::new(Kind::Bytes), Default::default(), &[1])?;
        for c in all.chunks(3000) {
            sink.push(c, c.len() as u32)?;
        }
        Ok(())
    }
    fn decode(
        &self,
        _: &Header,
        src: &mut ChunkSource<'_>,
        dst: &mut dyn std::io::Write,
        _: &DecodeOptions,
    ) -> lcodec::Result<()> {
        while let Some(c) = src.next_chunk()? {
            assert!(
                c.payload.first() != Some(&0xff),
                "fragile codec: payload starts with 0xff"
            );
            if c.payload.len() != c.raw_len as usize {
                return Err(c.malformed("length"));
            }
            dst.write_all(&c.payload)?;
        }
        Ok(())
    }
}

#[test]
fn harness_catches_and_names_a_panicking_codec() {
    let mut r = Registry::empty();
    r.register(Box::new(Fragile));
    let (tested, failures) = check_all(Arc::new(r));
    assert_eq!(tested, 1);
    // Which mutations run depends on the time budget (a loaded machine runs fewer), so
    // look for any case that made a payload start with 0xff.
    let hit = failures
        .iter()
        .find(|f| f.starts_with("PANIC fragile/chunk ") && f.contains("0xff"));
    let hit = hit.unwrap_or_else(|| panic!("panic not reported: {failures:?}"));
    assert!(
        hit.contains("payload starts with 0xff") && hit.contains("robustness.rs:"),
        "{hit}"
    );
    assert!(
        failures.iter().all(|f| f.starts_with("PANIC fragile/")),
        "{failures:?}"
    );
}
