//! Fuzzes the container parser alone: header, chunk records, trailer, footer, both the
//! sequential and the seekable reader. Must return errors, never panic or over-allocate.
#![no_main]

use std::io::Cursor;

use lcodec::container::{read_header, read_trailer_seek, ChunkSource};
use lcodec::Limits;
use libfuzzer_sys::fuzz_target;

fn limits() -> Limits {
    Limits { max_chunk_bytes: 1 << 20, max_chunk_raw_bytes: 1 << 20, max_chunks: 1 << 12, max_header_bytes: 1 << 16, max_alloc: 1 << 22 }
}

fuzz_target!(|data: &[u8]| {
    let mut r = data;
    if let Ok(h) = read_header(&mut r, &limits()) {
        let mut src = ChunkSource::stream(&mut r, h.len, limits(), true);
        while let Ok(Some(_)) = src.next_chunk() {}
        let _ = src.trailer();
    }
    let mut c = Cursor::new(data);
    if let Ok(h) = read_header(&mut c, &limits()) {
        let _ = read_trailer_seek(&mut c, &h, &limits());
        if let Ok(mut src) = ChunkSource::seekable(&mut c, &h, limits(), true) {
            let n = src.chunk_count().unwrap_or(0).min(64);
            for i in 0..n {
                let _ = src.read_chunk(i);
            }
            while let Ok(Some(_)) = src.next_chunk() {}
        }
    }
});
