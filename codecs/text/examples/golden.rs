//! Writes the text-cm golden file the way `lcodec::encode` would (container with the
//! original's hash) and prints its MANIFEST.tsv line. Used once per bitstream change:
//!
//! `cargo run --release -p lcodec-text --example golden`

use std::path::Path;

use lcodec_core::container::{ChunkSink, HashingReader};
use lcodec_core::{Codec, EncodeOptions};
use lcodec_text::TextCmCodec;

fn main() {
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    let fixture = "fixtures/text-prose.txt";
    let golden = "text-cm/prose.lc";
    let data = std::fs::read(testdata.join(fixture)).expect("read fixture");
    let opts = EncodeOptions {
        threads: 1,
        chunk_size: Some(2048),
        ..Default::default()
    };
    let codec = TextCmCodec;
    let mut out = Vec::new();
    let mut hr = HashingReader::new(&data[..]);
    let mut sink = ChunkSink::new(&mut out, codec.info(), None);
    codec.encode(&mut hr, &mut sink, &opts).expect("encode");
    sink.finish(hr.count(), Some(hr.digest())).expect("finish");
    let path = testdata.join("golden").join(golden);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, &out).expect("write golden");
    eprintln!(
        "wrote {} ({} bytes from {})",
        path.display(),
        out.len(),
        data.len()
    );
    println!(
        "{golden}\t{fixture}\tcodec=text-cm,chunk=2048\t{:032x}\ttext-cm: context mixing, 2 chunks (English prose + a UTF-8 line)",
        xxhash_rust::xxh3::xxh3_128(&data)
    );
}
