//! Round trips, determinism and corruption handling of the container with the `raw` codec.

use std::io::Cursor;
use std::path::Path;

use lcodec::{DecodeOptions, EncodeOptions, Error, Registry};
use rand::{Rng, SeedableRng};

fn opts(chunk: usize, threads: usize) -> EncodeOptions {
    EncodeOptions {
        chunk_size: Some(chunk),
        threads,
        ..Default::default()
    }
}

fn enc(data: &[u8], o: &EncodeOptions) -> Vec<u8> {
    let mut out = Vec::new();
    lcodec::encode(&Registry::with_enabled(), &mut &data[..], &mut out, o).expect("encode");
    out
}

fn dec_stream(lc: &[u8]) -> lcodec::Result<Vec<u8>> {
    let mut out = Vec::new();
    lcodec::decode(
        &Registry::with_enabled(),
        &mut &lc[..],
        &mut out,
        &DecodeOptions::default(),
    )?;
    Ok(out)
}

fn dec_seek(lc: &[u8]) -> lcodec::Result<Vec<u8>> {
    let mut out = Vec::new();
    lcodec::decode_seekable(
        &Registry::with_enabled(),
        &mut Cursor::new(lc),
        &mut out,
        &DecodeOptions::default(),
    )?;
    Ok(out)
}

/// Mixed data: text-like runs and random bytes, so chunks both compress and get stored.
fn sample(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
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
        if rng.random_bool(0.8) {
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

#[test]
fn round_trips_edge_sizes_with_many_chunks() {
    for &len in &[0usize, 1, 2, 999, 1000, 1001, 4096, 25_000] {
        let data = sample(len, len as u64);
        for method in ["zstd", "deflate", "store"] {
            let mut o = opts(1000, 2);
            o.params.insert("method".into(), method.into());
            let lc = enc(&data, &o);
            assert_eq!(
                dec_stream(&lc).expect("stream decode"),
                data,
                "len {len} {method}"
            );
            assert_eq!(
                dec_seek(&lc).expect("seek decode"),
                data,
                "len {len} {method}"
            );
        }
    }
}

#[test]
fn output_is_independent_of_thread_count() {
    let data = sample(200_000, 7);
    let one = enc(&data, &opts(16_384, 1));
    for t in [2, 3, 8] {
        assert_eq!(enc(&data, &opts(16_384, t)), one, "{t} threads");
    }
}

#[test]
fn incompressible_chunks_expand_by_little() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let data: Vec<u8> = (0..300_000).map(|_| rng.random()).collect();
    let lc = enc(&data, &opts(65_536, 2));
    // Header, one byte + 13 bytes per chunk, trailer: well under 1% overhead.
    assert!(
        lc.len() < data.len() + 400,
        "{} vs {}",
        lc.len(),
        data.len()
    );
    assert_eq!(dec_seek(&lc).expect("decode"), data);
}

#[test]
fn every_truncation_is_an_error() {
    let data = sample(5_000, 3);
    let lc = enc(&data, &opts(1_500, 2));
    for n in 0..lc.len() {
        let cut = &lc[..n];
        assert!(
            dec_stream(cut).is_err(),
            "stream decode of {n}/{} bytes succeeded",
            lc.len()
        );
        assert!(
            dec_seek(cut).is_err(),
            "seek decode of {n}/{} bytes succeeded",
            lc.len()
        );
    }
}

#[test]
fn every_bit_flip_is_detected() {
    let data = sample(3_000, 4);
    let lc = enc(&data, &opts(1_000, 1));
    for byte in 0..lc.len() {
        for bit in 0..8 {
            let mut bad = lc.clone();
            bad[byte] ^= 1 << bit;
            assert!(
                dec_stream(&bad).is_err(),
                "stream: flip of bit {bit} in byte {byte} undetected"
            );
            assert!(
                dec_seek(&bad).is_err(),
                "seek: flip of bit {bit} in byte {byte} undetected"
            );
        }
    }
}

#[test]
fn damaged_chunk_is_named() {
    let data = sample(10_000, 5);
    let lc = enc(&data, &opts(2_000, 1));
    let info = lcodec::inspect(
        &Registry::with_enabled(),
        &mut Cursor::new(&lc),
        &Default::default(),
    )
    .expect("inspect");
    assert_eq!(info.trailer.chunks.len(), 5);
    let c3 = info.trailer.chunks[3];
    let mut bad = lc.clone();
    bad[(c3.offset + 20) as usize] ^= 0x10;
    let err = dec_seek(&bad).expect_err("damaged chunk decoded");
    assert_eq!(
        err.to_string(),
        format!("chunk 3 (offset {}): checksum mismatch", c3.offset)
    );
}

#[test]
fn appended_garbage_is_an_error() {
    let lc = enc(b"hello", &opts(1000, 1));
    let mut bad = lc.clone();
    bad.push(0);
    assert!(dec_stream(&bad).is_err());
    assert!(dec_seek(&bad).is_err());
}

#[test]
fn not_an_lc_file() {
    let err = dec_stream(b"PK\x03\x04 this is a zip file").expect_err("decoded garbage");
    assert!(err.to_string().contains("not an .lc file"), "{err}");
    assert!(matches!(dec_stream(b""), Err(Error::Truncated { .. })));
}

#[test]
fn hash_of_original_is_checked() {
    // Re-sign a chunk after tampering with its payload: the chunk CRC passes but the
    // hash of the original does not.
    let data = b"abcdefghij".repeat(100);
    let mut o = opts(10_000, 1);
    o.params.insert("method".into(), "store".into());
    let lc = enc(&data, &o);
    let info = lcodec::inspect(
        &Registry::with_enabled(),
        &mut Cursor::new(&lc),
        &Default::default(),
    )
    .expect("inspect");
    let c = info.trailer.chunks[0];
    let mut bad = lc.clone();
    let p = (c.offset + 13 + 1) as usize; // after record header and method byte
    bad[p] = b'X';
    let mut lens = Vec::new();
    lens.extend_from_slice(&c.comp_len.to_le_bytes());
    lens.extend_from_slice(&c.raw_len.to_le_bytes());
    let crc = crc32c_of(
        &lens,
        &bad[(c.offset + 13) as usize..(c.offset + 13 + c.comp_len as u64) as usize],
    );
    bad[(c.offset + 9) as usize..(c.offset + 13) as usize].copy_from_slice(&crc.to_le_bytes());
    // The chunk table in the trailer still has the old CRC: stream decoding notices the
    // mismatch between record and table; with the table patched too, the hash catches it.
    assert!(dec_stream(&bad).is_err());
    let err = patch_table_crc_and_decode(&bad, crc);
    assert!(matches!(err, Err(Error::Checksum { .. })), "{err:?}");
}

fn crc32c_of(a: &[u8], b: &[u8]) -> u32 {
    // Bitwise CRC32C (Castagnoli), independent of the crc32c crate used by the library.
    let mut crc = !0u32;
    for &byte in a.iter().chain(b) {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn patch_table_crc_and_decode(lc: &[u8], crc: u32) -> lcodec::Result<Vec<u8>> {
    let n = lc.len();
    let toff = u64::from_le_bytes(lc[n - 16..n - 8].try_into().expect("8 bytes")) as usize;
    let mut bad = lc.to_vec();
    // trailer: tag, count, size, hash[16], index_len=0, entry{offset, comp, raw, crc}, crc
    let entry_crc = toff + 1 + 8 + 8 + 16 + 4 + 16;
    bad[entry_crc..entry_crc + 4].copy_from_slice(&crc.to_le_bytes());
    let body_end = n - 16 - 4;
    let tcrc = crc32c_of(&bad[toff..body_end], &[]);
    bad[body_end..body_end + 4].copy_from_slice(&tcrc.to_le_bytes());
    dec_stream(&bad)
}

#[test]
fn hostile_lengths_hit_limits_not_the_allocator() {
    // A valid header followed by a chunk record that claims a 4 GiB payload.
    let lc = enc(b"x", &opts(1000, 1));
    let info = lcodec::inspect(
        &Registry::with_enabled(),
        &mut Cursor::new(&lc),
        &Default::default(),
    )
    .expect("inspect");
    let off = info.trailer.chunks[0].offset as usize;
    let mut bad = lc[..off].to_vec();
    bad.push(b'C');
    bad.extend_from_slice(&u32::MAX.to_le_bytes());
    bad.extend_from_slice(&u32::MAX.to_le_bytes());
    bad.extend_from_slice(&0u32.to_le_bytes());
    let err = dec_stream(&bad).expect_err("accepted a 4 GiB chunk");
    assert!(matches!(err, Error::Limit(_)), "{err}");
}

#[test]
fn stored_file_name_and_info() {
    let o = EncodeOptions {
        file_name: Some("/some/dir/photo.bin".into()),
        store_name: true,
        ..Default::default()
    };
    let lc = enc(&sample(1000, 9), &o);
    let info = lcodec::inspect(
        &Registry::with_enabled(),
        &mut Cursor::new(&lc),
        &Default::default(),
    )
    .expect("inspect");
    assert_eq!(info.header.metadata.file_name.as_deref(), Some("photo.bin"));
    assert_eq!(info.codec_name, Some("raw"));
    assert_eq!(info.trailer.original_size, 1000);
    assert_eq!(info.file_len, lc.len() as u64);
}

fn shared_text_files() -> Option<Vec<std::path::PathBuf>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/text");
    let mut files = Vec::new();
    for sub in ["canterbury", "calgary"] {
        let dir = root.join(sub);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            eprintln!("skipping: {} not found", dir.display());
            return None;
        };
        for e in rd.flatten() {
            if e.path().is_file() {
                files.push(e.path());
            }
        }
    }
    files.sort();
    Some(files)
}

#[test]
fn text_corpora_round_trip() {
    let Some(files) = shared_text_files() else {
        return;
    };
    assert!(files.len() >= 10);
    for f in files {
        let data = std::fs::read(&f).expect("read");
        // The container and `raw` are under test here (the CLI tests cover detection).
        let mut o = EncodeOptions::default();
        o.quality = Some(9);
        o.params.insert("codec".into(), "raw".into());
        let lc = enc(&data, &o);
        assert_eq!(dec_seek(&lc).expect("decode"), data, "{}", f.display());
    }
}
