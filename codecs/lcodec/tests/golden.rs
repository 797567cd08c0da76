//! Golden bitstreams: the format is frozen by files in `testdata/golden`.
//!
//! Each line of `testdata/golden/MANIFEST.tsv` is
//! `golden<TAB>fixture<TAB>params<TAB>xxh3-128 of decoded<TAB>comment`.
//! `LCODEC_BLESS=1` rewrites the golden files and the hashes (see testdata/README.md).
//! A golden whose params include `frozen=1` was written by an older encoder: it is only
//! decoded (old files must stay readable), never re-encoded or re-blessed.

use std::path::{Path, PathBuf};

use lcodec::{DecodeOptions, EncodeOptions, Registry};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn xxh3_hex(data: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(data))
}

struct Entry {
    golden: String,
    fixture: String,
    params: String,
    hash: String,
    comment: String,
}

fn manifest() -> Vec<Entry> {
    let text =
        std::fs::read_to_string(testdata().join("golden/MANIFEST.tsv")).expect("read MANIFEST.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "bad manifest line {l:?}");
            Entry {
                golden: f[0].into(),
                fixture: f[1].into(),
                params: f[2].into(),
                hash: f[3].into(),
                comment: f[4].into(),
            }
        })
        .collect()
}

fn options(params: &str) -> EncodeOptions {
    let mut o = EncodeOptions {
        threads: 1,
        ..Default::default()
    };
    for kv in params.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').expect("key=value");
        match k {
            "frozen" => {}
            "quality" => o.quality = Some(v.parse().expect("quality")),
            "chunk" => o.chunk_size = Some(v.parse().expect("chunk")),
            _ => {
                o.params.insert(k.into(), v.into());
            }
        }
    }
    o
}

#[test]
fn goldens_decode_to_their_hash_and_fixtures_encode_to_the_goldens() {
    // `LCODEC_BLESS=1` regenerates every golden; `LCODEC_BLESS=lidar/` only those whose
    // path starts with the given prefix.
    let bless_filter = std::env::var("LCODEC_BLESS").ok();
    let registry = Registry::with_enabled();
    let mut entries = manifest();
    assert!(!entries.is_empty());
    let mut failures = Vec::new();
    for e in &mut entries {
        if registry
            .by_name(
                e.params
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("codec="))
                    .unwrap_or("raw"),
            )
            .is_none()
        {
            eprintln!("skipping {}: codec not in this build", e.golden);
            continue;
        }
        let fixture = std::fs::read(testdata().join(&e.fixture)).expect("read fixture");
        let frozen = e.params.split(',').any(|kv| kv == "frozen=1");
        let mut encoded = Vec::new();
        lcodec::encode(
            &registry,
            &mut &fixture[..],
            &mut encoded,
            &options(&e.params),
        )
        .expect("encode fixture");
        let gpath = testdata().join("golden").join(&e.golden);
        let bless = !frozen
            && bless_filter
                .as_deref()
                .is_some_and(|f| f == "1" || e.golden.starts_with(f));
        let codec_name = e
            .params
            .split(',')
            .find_map(|kv| kv.strip_prefix("codec="))
            .unwrap_or("raw");
        let lossless = registry
            .by_name(codec_name)
            .is_some_and(|c| c.info().lossless);
        if bless {
            std::fs::create_dir_all(gpath.parent().expect("parent")).expect("mkdir");
            std::fs::write(&gpath, &encoded).expect("write golden");
            // Lossless codecs must give the fixture back; lossy ones freeze what they decode.
            let mut decoded = Vec::new();
            lcodec::decode(
                &registry,
                &mut &encoded[..],
                &mut decoded,
                &DecodeOptions::default(),
            )
            .expect("decode new golden");
            assert!(
                !lossless || decoded == fixture,
                "{}: lossless codec does not round-trip",
                e.golden
            );
            e.hash = xxh3_hex(&decoded);
        }
        let golden = std::fs::read(&gpath).expect("read golden");
        let mut decoded = Vec::new();
        lcodec::decode(
            &registry,
            &mut &golden[..],
            &mut decoded,
            &DecodeOptions::default(),
        )
        .expect("decode golden");
        if lossless && xxh3_hex(&fixture) != e.hash {
            failures.push(format!(
                "{}: the fixture hashes to {} but the manifest says {} (lossless codec)",
                e.golden,
                xxh3_hex(&fixture),
                e.hash
            ));
        }
        if xxh3_hex(&decoded) != e.hash {
            failures.push(format!(
                "{}: decodes to {} (manifest says {})",
                e.golden,
                xxh3_hex(&decoded),
                e.hash
            ));
        }
        if !frozen && encoded != golden {
            let out =
                std::env::temp_dir().join(format!("lcodec-golden-{}", e.golden.replace('/', "_")));
            std::fs::write(&out, &encoded).expect("write new output");
            failures.push(format!(
                "{}: encoder output differs from the golden; new output saved at {}",
                e.golden,
                out.display()
            ));
        }
    }
    if bless_filter.is_some() {
        let mut text = String::from("# golden\tfixture\tparams\txxh3-128 of decoded\tcomment\n");
        for e in &entries {
            text.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\n",
                e.golden, e.fixture, e.params, e.hash, e.comment
            ));
        }
        std::fs::write(testdata().join("golden/MANIFEST.tsv"), text).expect("write manifest");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every truncation of every golden file is an error, never a panic.
#[test]
fn truncated_goldens_are_errors() {
    let registry = Registry::with_enabled();
    for e in manifest() {
        let golden = std::fs::read(testdata().join("golden").join(&e.golden)).expect("read golden");
        for n in 0..golden.len() {
            let mut out = Vec::new();
            let r = lcodec::decode(
                &registry,
                &mut &golden[..n],
                &mut out,
                &DecodeOptions::default(),
            );
            assert!(r.is_err(), "{} truncated to {n} bytes decoded", e.golden);
        }
    }
}
