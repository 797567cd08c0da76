//! Property tests: any header and chunk sequence written by `ChunkSink` reads back equal,
//! sequentially and by index.

use std::io::Cursor;

use lcodec_core::container::{ChunkSink, ChunkSource, read_header};
use lcodec_core::{CodecId, CodecInfo, Kind, Limits, Metadata, ModelRef};
use proptest::prelude::*;

static INFO: CodecInfo = CodecInfo {
    id: CodecId(4242),
    name: "test",
    version: 3,
    lossless: true,
    kind: Kind::Image,
    description: "test codec",
};

fn kind(k: u8) -> Kind {
    Kind::from_u8(k % 8).expect("kind")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn header_and_chunks_round_trip(
        k in 0u8..8, width in any::<u32>(), height in any::<u32>(), channels in any::<u16>(),
        bit_depth in any::<u8>(), sample_rate in any::<u32>(), frames in any::<u64>(),
        name in proptest::option::of("[a-zA-Z0-9._ -]{1,40}"),
        model_id in "[a-z0-9-]{0,30}", weights_hash in proptest::collection::vec(any::<u8>(), 0..40),
        params in proptest::collection::vec(any::<u8>(), 0..100),
        chunks in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..300), 0u32..(256 << 20)), 0..8),
        index in proptest::collection::vec(any::<u8>(), 0..50),
        original_size in any::<u64>(), hash in any::<[u8; 16]>(),
    ) {
        let meta = Metadata { kind: kind(k), width, height, channels, bit_depth, sample_rate, frames, file_name: name.clone() };
        let model = ModelRef { id: model_id.clone(), weights_hash: weights_hash.clone() };
        let mut file = Vec::new();
        let mut sink = ChunkSink::new(&mut file, &INFO, None);
        sink.begin(meta.clone(), model.clone(), &params).expect("begin");
        for (p, raw) in &chunks {
            sink.push(p, *raw).expect("push");
        }
        sink.set_index(index.clone());
        let len = sink.finish(original_size, Some(hash)).expect("finish");
        prop_assert_eq!(len, file.len() as u64);

        let mut r = &file[..];
        let h = read_header(&mut r, &Limits::default()).expect("header");
        prop_assert_eq!(h.codec_id, INFO.id);
        prop_assert_eq!(h.codec_version, 3);
        prop_assert!(h.has_original_hash);
        prop_assert_eq!(&h.metadata, &meta);
        prop_assert_eq!(&h.model, &model);
        prop_assert_eq!(&h.params, &params);
        let mut src = ChunkSource::stream(&mut r, h.len, Limits::default(), true);
        for (i, (p, raw)) in chunks.iter().enumerate() {
            let c = src.next_chunk().expect("chunk").expect("some chunk");
            prop_assert_eq!(c.index, i as u64);
            prop_assert_eq!(&c.payload, p);
            prop_assert_eq!(c.raw_len, *raw);
        }
        prop_assert!(src.next_chunk().expect("end").is_none());
        let t = src.trailer().expect("trailer").clone();
        prop_assert_eq!(t.original_size, original_size);
        prop_assert_eq!(t.original_hash, hash);
        prop_assert_eq!(&t.index, &index);

        let mut cur = Cursor::new(&file[..]);
        let h2 = read_header(&mut cur, &Limits::default()).expect("header");
        let mut src = ChunkSource::seekable(&mut cur, &h2, Limits::default(), true).expect("seekable");
        for i in (0..chunks.len()).rev() {
            let c = src.read_chunk(i as u64).expect("read_chunk");
            prop_assert_eq!(&c.payload, &chunks[i].0);
        }
        for (p, _) in &chunks {
            let c = src.next_chunk().expect("chunk").expect("some chunk");
            prop_assert_eq!(&c.payload, p);
        }
        prop_assert!(src.next_chunk().expect("end").is_none());
    }
}

#[test]
fn newer_format_version_is_refused_before_parsing() {
    let mut file = Vec::new();
    let sink = ChunkSink::new(&mut file, &INFO, None);
    sink.finish(0, None).expect("finish");
    file[8] = 2;
    let err = read_header(&mut &file[..], &Limits::default()).expect_err("accepted version 2");
    assert!(
        err.to_string().contains("container format version 2"),
        "{err}"
    );
}

#[test]
fn header_over_the_limit_is_refused() {
    let mut file = Vec::new();
    let mut sink = ChunkSink::new(&mut file, &INFO, None);
    sink.begin(
        Metadata::new(Kind::Bytes),
        ModelRef::default(),
        &vec![0u8; 5000],
    )
    .expect("begin");
    sink.finish(0, None).expect("finish");
    let limits = Limits {
        max_header_bytes: 1000,
        ..Limits::default()
    };
    let err = read_header(&mut &file[..], &limits).expect_err("accepted");
    assert!(matches!(err, lcodec_core::Error::Limit(_)), "{err}");
}

/// `skip_rest` after a partial read: a seekable source jumps to the trailer without reading
/// the remaining records (a damaged later payload goes unnoticed, as random access wants);
/// a stream reads and checks them (the damage is reported).
#[test]
fn skip_rest_seekable_jumps_stream_checks() {
    let mut file = Vec::new();
    let mut sink = ChunkSink::new(&mut file, &INFO, None);
    sink.begin(Metadata::new(Kind::Tensor), ModelRef::default(), &[])
        .expect("begin");
    let payloads: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 100]).collect();
    for p in &payloads {
        sink.push(p, 100).expect("push");
    }
    sink.finish(400, Some([7; 16])).expect("finish");
    // Damage the payload of the last chunk (its CRC no longer matches).
    let mut damaged = file.clone();
    let last = damaged
        .windows(100)
        .rposition(|w| w == payloads[3].as_slice())
        .expect("last payload");
    damaged[last + 50] ^= 0x10;

    for bytes in [&file, &damaged] {
        let mut cur = Cursor::new(&bytes[..]);
        let h = read_header(&mut cur, &Limits::default()).expect("header");
        let mut src =
            ChunkSource::seekable(&mut cur, &h, Limits::default(), true).expect("seekable");
        assert_eq!(src.read_chunk(1).expect("chunk 1").payload, payloads[1]);
        src.skip_rest().expect("skip");
        assert!(src.next_chunk().expect("end").is_none());
        assert_eq!(src.finish().expect("trailer").original_size, 400);
    }

    let mut r = &file[..];
    let h = read_header(&mut r, &Limits::default()).expect("header");
    let mut src = ChunkSource::stream(&mut r, h.len, Limits::default(), true);
    src.next_chunk().expect("chunk 0");
    src.skip_rest().expect("skip");
    assert_eq!(src.finish().expect("trailer").original_size, 400);

    let mut r = &damaged[..];
    let h = read_header(&mut r, &Limits::default()).expect("header");
    let mut src = ChunkSource::stream(&mut r, h.len, Limits::default(), true);
    src.next_chunk().expect("chunk 0");
    let err = src.skip_rest().expect_err("stream sees the damaged chunk");
    assert!(err.to_string().contains("chunk 3"), "{err}");
}
