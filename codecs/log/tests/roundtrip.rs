//! Round trips of the log codec through the `.lc` container: committed fixtures,
//! adversarial inputs, real Loghub / Kafka logs when present, corrupt input, and template
//! grouping accuracy against the Loghub ground truth.

use std::path::{Path, PathBuf};

use lcodec_core::container::{ChunkSink, ChunkSource, read_header};
use lcodec_core::{Codec, DecodeOptions, EncodeOptions};
use lcodec_log::LogCodec;
use rand::{Rng, SeedableRng};

fn pack(data: &[u8], opts: &EncodeOptions) -> Vec<u8> {
    let codec = LogCodec;
    let mut out = Vec::new();
    let mut sink = ChunkSink::new(&mut out, codec.info(), None);
    let mut src: &[u8] = data;
    codec.encode(&mut src, &mut sink, opts).expect("encode");
    sink.finish(data.len() as u64, None).expect("finish");
    out
}

fn unpack(file: &[u8]) -> lcodec_core::Result<Vec<u8>> {
    let opts = DecodeOptions::default();
    let mut r: &[u8] = file;
    let header = read_header(&mut r, &opts.limits)?;
    let mut src = ChunkSource::stream(&mut r, header.len, opts.limits, true);
    let mut out = Vec::new();
    LogCodec.decode(&header, &mut src, &mut out, &opts)?;
    Ok(out)
}

fn round_trip_with(data: &[u8], opts: &EncodeOptions) -> usize {
    let packed = pack(data, opts);
    let back = unpack(&packed).expect("decode");
    assert!(
        back == data,
        "round trip differs ({} vs {} bytes)",
        back.len(),
        data.len()
    );
    packed.len()
}

fn round_trip(data: &[u8]) -> usize {
    round_trip_with(data, &EncodeOptions::default())
}

fn testdata(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name),
    )
    .expect("fixture")
}

fn shared_logs() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/logs");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipping: {} not found", p.display());
        None
    }
}

#[test]
fn fixtures_round_trip_and_compress() {
    for name in ["app.log", "proxy_crlf.log"] {
        let data = testdata(name);
        let n = round_trip(&data);
        assert!(n * 3 < data.len(), "{name}: {n} bytes from {}", data.len());
    }
}

#[test]
fn sniff_takes_logs_not_prose_or_binary() {
    let codec = LogCodec;
    assert!(codec.sniff(&testdata("app.log"), None).is_some());
    assert!(codec.sniff(&testdata("proxy_crlf.log"), None).is_some());
    let prose = b"It was the best of times, it was the worst of times, it was the age of wisdom,\n\
it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity,\n\
it was the season of Light, it was the season of Darkness, it was the spring of hope,\n\
it was the winter of despair, we had everything before us, we had nothing before us.\n";
    assert!(codec.sniff(prose, None).is_none());
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(codec.sniff(&junk, None).is_none());
    let conf = codec.sniff(&testdata("app.log"), None).expect("log");
    assert!(conf > lcodec_core::Confidence::FALLBACK && conf < lcodec_core::Confidence::MAGIC);
}

#[test]
fn adversarial_inputs_round_trip() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let random: Vec<u8> = (0..300_000).map(|_| rng.random()).collect();
    round_trip(&random);
    round_trip(b"");
    round_trip(b"\n");
    round_trip(b"x");
    round_trip(b"\r");
    round_trip(b"\r\n\r\n\n\r");
    round_trip(&vec![b'\n'; 100_000]);
    round_trip(&vec![b' '; 50_000]);
    // One 10 MB line (no newline at all), text-like.
    let long: Vec<u8> = (0..10_000_000u32)
        .map(|i| b"abcdefgh 0123"[(i % 13) as usize])
        .collect();
    let n = round_trip(&long);
    assert!(n < 100_000, "{n}");
    // Mixed CRLF / LF, lines with many tokens, invalid UTF-8, NULs, a long line inside.
    let mut mixed = Vec::new();
    for i in 0..3000 {
        mixed.extend_from_slice(
            format!("2020-01-01 00:00:{:02} INFO job {} done", i % 60, i * 7).as_bytes(),
        );
        match i % 5 {
            0 => mixed.extend_from_slice(b"\r\n"),
            1 => mixed.extend_from_slice(b" \xff\xfe\x00 bad\n"),
            2 => mixed.extend_from_slice(&b" a".repeat(400)),
            3 => mixed.extend_from_slice(b"  \t trailing  \n"),
            _ => mixed.push(b'\n'),
        }
        if i == 1500 {
            mixed.extend_from_slice(&vec![b'z'; 70_000]);
            mixed.push(b'\n');
        }
    }
    mixed.extend_from_slice(b"no final newline\r");
    round_trip(&mixed);
    // Random printable lines with random separators: many one-off templates.
    let mut text = Vec::new();
    for _ in 0..20_000 {
        let c: u8 = rng.random_range(0..100);
        text.push(match c {
            0..=9 => b'\n',
            10..=24 => b' ',
            25..=26 => b'\r',
            _ => rng.random_range(b'!'..=b'~'),
        });
    }
    round_trip(&text);
}

fn mode_opts(mode: &str) -> EncodeOptions {
    let mut o = EncodeOptions::default();
    o.params.insert("mode".into(), mode.into());
    o
}

fn fast_opts() -> EncodeOptions {
    mode_opts("fast")
}

#[test]
fn modes_parse_and_unknown_modes_are_rejected() {
    use lcodec_log::{Mode, mode_of};
    assert_eq!(mode_of(&EncodeOptions::default()).ok(), Some(Mode::Columns));
    assert_eq!(mode_of(&mode_opts("columns")).ok(), Some(Mode::Columns));
    assert_eq!(mode_of(&mode_opts("max")).ok(), Some(Mode::Max));
    assert_eq!(mode_of(&mode_opts("strong")).ok(), Some(Mode::Max));
    assert_eq!(
        mode_of(&mode_opts("fast")).ok(),
        Some(Mode::Fast(lcodec_log::DEFAULT_FAST_LEVEL))
    );
    assert!(mode_of(&mode_opts("turbo")).is_err());
}

#[test]
fn max_mode_round_trips_fixtures_and_adversarial_inputs() {
    let o = mode_opts("max");
    for name in ["app.log", "proxy_crlf.log"] {
        let data = testdata(name);
        let n = round_trip_with(&data, &o);
        assert!(n * 3 < data.len(), "{name}: {n} bytes from {}", data.len());
    }
    let mut mixed = Vec::new();
    for i in 0..500 {
        mixed.extend_from_slice(format!("t={i} level=INFO msg=\"job {} done\"", i * 3).as_bytes());
        mixed.extend_from_slice(match i % 4 {
            0 => b"\r\n".as_slice(),
            1 => b" \xff\x00\n".as_slice(),
            2 => b"\n\n".as_slice(),
            _ => b"\n".as_slice(),
        });
    }
    for data in [&b""[..], b"\n", b"a", b"\r\r\n", &mixed] {
        round_trip_with(data, &o);
    }
}

#[test]
fn columns_mode_is_much_smaller_than_fast_mode() {
    for name in ["app.log", "proxy_crlf.log"] {
        let data = testdata(name);
        let cols = round_trip(&data);
        let fast = round_trip_with(&data, &fast_opts());
        assert!(cols < fast, "{name}: columns {cols} vs fast {fast}");
    }
}

/// Numbers, hex runs, zero padding, repeated ids and fields equal to earlier fields.
#[test]
fn columns_mode_round_trips_typed_fields() {
    let mut log = Vec::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    let ids: Vec<u64> = (0..40).map(|_| rng.random()).collect();
    for i in 0..6000u64 {
        let id = ids[rng.random_range(0..ids.len())];
        let node = format!("R{:02}-M{}-N{}", i % 64, i % 2, i % 7);
        log.extend_from_slice(
            format!(
                "2024-05-{:02} {:02}:{:02}:{:02}.{:06} {node} pid={} req-{id:016x}-{:04X} {node} size {} 0x{:x} {} 0000{} 99999999999999999999999{}\n",
                1 + i / 3000,
                (i / 3600) % 24,
                (i / 60) % 60,
                i % 60,
                rng.random_range(0..1_000_000u32),
                4000 + i % 3,
                i % 65536,
                rng.random_range(0..u64::MAX),
                u64::MAX - i,
                u64::MAX,
                i,
                i
            )
            .as_bytes(),
        );
    }
    let n = round_trip(&log);
    assert!(n * 4 < log.len(), "{n} from {}", log.len());
    for chunk in [4096usize, 65536] {
        let o = EncodeOptions {
            chunk_size: Some(chunk),
            threads: 2,
            ..Default::default()
        };
        round_trip_with(&log, &o);
    }
}

#[test]
fn fast_mode_round_trips_fixtures_and_adversarial_inputs() {
    let o = fast_opts();
    for name in ["app.log", "proxy_crlf.log"] {
        let data = testdata(name);
        let n = round_trip_with(&data, &o);
        assert!(n * 2 < data.len(), "{name}: {n} bytes from {}", data.len());
    }
    let mut mixed = Vec::new();
    for i in 0..2000 {
        mixed.extend_from_slice(format!("t={i} level=INFO msg=\"job {} done\"", i * 3).as_bytes());
        mixed.extend_from_slice(match i % 4 {
            0 => b"\r\n".as_slice(),
            1 => b" \xff\x00\n".as_slice(),
            2 => b"\n\n".as_slice(),
            _ => b"\n".as_slice(),
        });
        if i == 700 {
            mixed.extend_from_slice(&vec![b'q'; 40_000]);
        }
    }
    for data in [&b""[..], b"\n", b"a", b"\r\r\n", &mixed] {
        round_trip_with(data, &o);
    }
    let mut o2 = fast_opts();
    o2.quality = Some(40);
    let mut src: &[u8] = b"x\n";
    let mut out = Vec::new();
    let mut sink = ChunkSink::new(&mut out, LogCodec.info(), None);
    assert!(
        LogCodec.encode(&mut src, &mut sink, &o2).is_err(),
        "quality 40 must be rejected"
    );
}

#[test]
fn small_chunks_cut_at_line_ends_round_trip() {
    let data = testdata("app.log");
    for chunk in [1usize, 7, 100, 1000] {
        let opts = EncodeOptions {
            chunk_size: Some(chunk),
            threads: 2,
            ..Default::default()
        };
        round_trip_with(&data, &opts);
        let mut fast = fast_opts();
        fast.chunk_size = Some(chunk);
        round_trip_with(&data, &fast);
    }
}

#[test]
fn corrupt_and_truncated_input_is_an_error_not_a_panic() {
    let data = testdata("app.log");
    let packed = pack(&data, &EncodeOptions::default());
    for cut in [0, 10, packed.len() / 2, packed.len() - 1] {
        assert!(unpack(&packed[..cut]).is_err(), "cut at {cut}");
    }
    // Flip bytes inside the payload; checksums catch it, and with checks off the codec
    // itself must still fail cleanly or produce output of the declared size.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    for _ in 0..50 {
        let mut bad = packed.clone();
        let i = rng.random_range(40..bad.len());
        bad[i] ^= 1 << rng.random_range(0..8);
        let _ = unpack(&bad);
    }
    // Direct chunk decoding of garbage payloads.
    for k in 0..400 {
        let len = rng.random_range(0..64);
        let mut p: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if !p.is_empty() {
            p[0] = 2 + (k % 3) as u8;
        }
        let _ = lcodec_log::decode_chunk(&p, rng.random_range(0..5000));
    }
    // Valid chunks of every mode, damaged, decoded without the container's checksums.
    for o in [EncodeOptions::default(), fast_opts(), mode_opts("max")] {
        let mode = lcodec_log::mode_of(&o).expect("mode");
        let chunk = lcodec_log::encode_chunk(&data, mode).expect("encode");
        for _ in 0..100 {
            let mut bad = chunk.clone();
            let i = rng.random_range(1..bad.len());
            bad[i] = rng.random();
            if let Ok(out) = lcodec_log::decode_chunk(&bad, data.len()) {
                assert!(out.len() <= data.len());
            }
        }
    }
}

#[test]
fn loghub_samples_round_trip_and_beat_xz_class_ratios() {
    let Some(dir) = shared_logs() else { return };
    let dir = dir.join("loghub_2k");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    names.retain(|p| p.extension().is_some_and(|e| e == "log"));
    names.sort();
    assert_eq!(names.len(), 16);
    let results = lcodec_core::parallel::map_parallel(&names, 2, &|p: &PathBuf| {
        let data = std::fs::read(p)?;
        let n = round_trip(&data);
        Ok((
            p.file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            data.len(),
            n,
        ))
    })
    .expect("round trips");
    for (name, raw, packed) in results {
        let ratio = raw as f64 / packed as f64;
        eprintln!("{name}: {raw} -> {packed} ({ratio:.2}x)");
        // xz -9 gets 6.7x..33x on these; lcodec must do clearly better than 8x everywhere.
        assert!(ratio > 8.0, "{name}: ratio {ratio:.2}");
    }
}

#[test]
#[ignore = "slow: 8.5 MB through the context-mixing coder; run with --ignored"]
fn proxifier_full_and_kafka_round_trip_max_mode() {
    proxifier_and_kafka(&mode_opts("max"));
}

#[test]
fn proxifier_full_and_kafka_round_trip() {
    proxifier_and_kafka(&EncodeOptions::default());
}

fn proxifier_and_kafka(opts: &EncodeOptions) {
    let Some(dir) = shared_logs() else { return };
    let prox =
        std::fs::read(dir.join("loghub_proxifier_full/Proxifier.log")).expect("Proxifier.log");
    let n = round_trip_with(&prox, opts);
    let ratio = prox.len() as f64 / n as f64;
    eprintln!("Proxifier full: {} -> {n} ({ratio:.2}x)", prox.len());
    assert!(ratio >= 27.3, "ratio {ratio:.2}");
    let mut kafka = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    for b in ["kafka0", "kafka1"] {
        let d = dir.join("elastic_kafka_broker_logs").join(b).join("logs");
        if let Ok(rd) = std::fs::read_dir(&d) {
            files.extend(rd.flatten().map(|e| e.path()));
        }
    }
    files.sort();
    for f in &files {
        let data = std::fs::read(f).expect("kafka log");
        round_trip_with(&data, opts);
        kafka.extend_from_slice(&data);
    }
    let n = round_trip_with(&kafka, opts);
    eprintln!(
        "Kafka concatenated: {} -> {n} ({:.2}x)",
        kafka.len(),
        kafka.len() as f64 / n as f64
    );
}

fn parse_csv_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[test]
fn template_grouping_accuracy_against_loghub_ground_truth() {
    let Some(dir) = shared_logs() else { return };
    let dir = dir.join("loghub_2k");
    let mut total = 0.0;
    let mut n = 0;
    for sys in [
        "Android",
        "Apache",
        "BGL",
        "HDFS",
        "HPC",
        "Hadoop",
        "HealthApp",
        "Linux",
        "Mac",
        "OpenSSH",
        "OpenStack",
        "Proxifier",
        "Spark",
        "Thunderbird",
        "Windows",
        "Zookeeper",
    ] {
        let log = std::fs::read(dir.join(format!("{sys}_2k.log"))).expect("log");
        let csv =
            std::fs::read_to_string(dir.join(format!("ground_truth/{sys}_2k.log_structured.csv")))
                .expect("csv");
        let mut lines = csv.lines();
        let head = parse_csv_line(lines.next().expect("header"));
        let col = head
            .iter()
            .position(|h| h == "EventId")
            .expect("EventId column");
        let truth: Vec<String> = lines
            .map(|l| parse_csv_line(l).get(col).cloned().unwrap_or_default())
            .collect();
        let pred = lcodec_log::template::cluster_lines(&log);
        assert_eq!(pred.len(), truth.len(), "{sys}");
        let ga = lcodec_log::template::grouping_accuracy(&pred, &truth);
        eprintln!("grouping accuracy {sys}: {ga:.3}");
        total += ga;
        n += 1;
    }
    let mean = total / n as f64;
    eprintln!("mean grouping accuracy: {mean:.3}");
    assert!(mean > 0.5, "mean grouping accuracy {mean:.3}");
}

/// Damaged column-mode chunks of a real log: errors or bounded output, never a panic.
#[test]
fn damaged_column_chunks_of_a_real_log_fail_cleanly() {
    let Some(dir) = shared_logs() else { return };
    let data = std::fs::read(dir.join("loghub_2k/Proxifier_2k.log")).expect("log");
    let data = &data[..60_000];
    let chunk = lcodec_log::encode_chunk(data, lcodec_log::Mode::Columns).expect("encode");
    assert_eq!(
        lcodec_log::decode_chunk(&chunk, data.len()).expect("decode"),
        data
    );
    let iters: usize = std::env::var("LOG_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(23);
    for _ in 0..iters {
        let mut bad = chunk.clone();
        match rng.random_range(0..3) {
            0 => {
                let i = rng.random_range(1..bad.len());
                bad[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let i = rng.random_range(1..bad.len());
                bad.truncate(i);
            }
            _ => {
                for _ in 0..4 {
                    let i = rng.random_range(1..bad.len());
                    bad[i] = rng.random();
                }
            }
        }
        if let Ok(out) = lcodec_log::decode_chunk(&bad, data.len()) {
            assert!(out.len() <= data.len());
        }
    }
}
