//! `StreamEncoder`: push-style encoding for pipelines that append data over time.

use std::io::Write;
use std::path::Path;

use lcodec::{DecodeOptions, EncodeOptions, Registry, StreamEncoder};

fn log_opts() -> EncodeOptions {
    let mut o = EncodeOptions {
        threads: 2,
        chunk_size: Some(64 << 10),
        ..Default::default()
    };
    o.params.insert("codec".into(), "log".into());
    o
}

fn decode(lc: &[u8]) -> lcodec::Result<Vec<u8>> {
    let mut out = Vec::new();
    lcodec::decode(
        &Registry::with_enabled(),
        &mut &lc[..],
        &mut out,
        &DecodeOptions::default(),
    )?;
    Ok(out)
}

/// A real log appended line by line (several chunks) decodes byte-exactly, and matches
/// the one-shot encode of the same bytes.
#[test]
fn appended_lines_round_trip_and_match_one_shot_encode() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/logs/loghub_2k/HDFS_2k.log");
    let Ok(log) = std::fs::read(&path) else {
        eprintln!("skipping: {} not found", path.display());
        return;
    };
    let mut enc =
        StreamEncoder::new(Registry::with_enabled(), Vec::new(), log_opts()).expect("start");
    for line in log.split_inclusive(|&b| b == b'\n') {
        enc.write_all(line).expect("append");
    }
    let (lc, report) = enc.finish().expect("finish");
    assert_eq!(report.codec, "log");
    assert_eq!(report.original_size, log.len() as u64);
    assert_eq!(report.compressed_size, lc.len() as u64);
    assert!(lc.len() * 5 < log.len(), "{} -> {}", log.len(), lc.len());
    assert_eq!(decode(&lc).expect("decode"), log);

    let mut one_shot = Vec::new();
    lcodec::encode(
        &Registry::with_enabled(),
        &mut &log[..],
        &mut one_shot,
        &log_opts(),
    )
    .expect("encode");
    assert_eq!(lc, one_shot, "streamed and one-shot encodes differ");
}

/// Detection works on the streamed prefix, large writes are split, empty input works.
#[test]
fn detection_large_writes_and_empty_input() {
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut enc = StreamEncoder::new(
        Registry::with_enabled(),
        Vec::new(),
        EncodeOptions::default(),
    )
    .expect("start");
    enc.write_all(&data).expect("write");
    enc.flush().expect("flush");
    let (lc, report) = enc.finish().expect("finish");
    assert_eq!(report.codec, "raw");
    assert_eq!(decode(&lc).expect("decode"), data);

    let enc = StreamEncoder::new(Registry::with_enabled(), Vec::new(), log_opts()).expect("start");
    let (lc, report) = enc.finish().expect("finish");
    assert_eq!(report.original_size, 0);
    assert_eq!(decode(&lc).expect("decode"), b"");
}

/// Dropping the encoder without `finish` leaves no valid file behind.
#[test]
fn drop_without_finish_leaves_an_incomplete_file() {
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = Shared::default();
    let mut enc =
        StreamEncoder::new(Registry::with_enabled(), out.clone(), log_opts()).expect("start");
    for i in 0..20_000 {
        writeln!(enc, "2026-11-23 10:{:02}:00 INFO job {i} finished", i % 60).expect("write");
    }
    drop(enc);
    let written = out.0.lock().expect("lock").clone();
    let err = decode(&written).expect_err("an aborted stream must not decode");
    assert!(
        matches!(
            err,
            lcodec::Error::Truncated { .. } | lcodec::Error::Malformed { .. }
        ),
        "{err}"
    );
}

/// An unknown codec is refused at once; a codec error surfaces from write or finish.
#[test]
fn errors_are_reported() {
    let mut o = EncodeOptions::default();
    o.params.insert("codec".into(), "nope".into());
    let err = StreamEncoder::new(Registry::with_enabled(), Vec::new(), o).expect_err("unknown");
    assert!(err.to_string().contains("nope"), "{err}");

    let mut o = log_opts();
    o.params.insert("mode".into(), "bogus".into());
    let mut enc = StreamEncoder::new(Registry::with_enabled(), Vec::new(), o).expect("start");
    let wrote = (0..10).try_for_each(|_| enc.write_all(&[b'x'; 1 << 20]));
    let finished = enc.finish();
    assert!(wrote.is_err() || finished.is_err(), "a bad mode must fail");
}
