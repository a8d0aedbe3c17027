//! The chunker on arbitrary data and seeds: chunks are within bounds, deterministic, and
//! reassemble to the input exactly.
#![no_main]
use arca_chunker::Chunker;
use libfuzzer_sys::fuzz_target;

fn chunks(c: &Chunker, body: &[u8]) -> Vec<Vec<u8>> {
    let mut s = c.stream(body);
    let mut out = vec![];
    while let Some(chunk) = s.next_chunk().expect("reading from memory cannot fail") {
        out.push(chunk.to_vec());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let seed = u64::from_le_bytes(data[..8].try_into().unwrap_or([0; 8]));
    let body = &data[8..];
    let Ok(c) = Chunker::new(64, 256, 1024, seed) else { return };
    let first = chunks(&c, body);
    assert!(first.iter().all(|ch| !ch.is_empty() && ch.len() <= 1024));
    assert_eq!(first.concat(), body, "chunks reassemble the input");
    assert_eq!(first, chunks(&c, body), "chunking is deterministic");
});
