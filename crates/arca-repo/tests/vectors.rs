//! The test vectors of docs/vectors/, which docs/FORMAT.md points a second implementation to:
//! chunk cut points for given seeds and sizes, and a pack with its parity object and shards
//! to erase. This test holds arca to them; `ARCA_WRITE_VECTORS=1` writes them anew (only
//! for a deliberate format change: a changed vector means old repositories read differently).

use arca_chunker::Chunker;
use serde_json::{json, Value};
use std::path::PathBuf;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors")
}

/// The vectors' input bytes: the BLAKE3 XOF of `derive_key("arca test vectors v1", name)`,
/// so the files need not carry the input.
fn input(name: &str, len: usize) -> Vec<u8> {
    let mut h = blake3::Hasher::new_derive_key("arca test vectors v1");
    h.update(name.as_bytes());
    let mut out = vec![0u8; len];
    h.finalize_xof().fill(&mut out);
    out
}

fn check_or_write(file: &str, computed: Value) {
    let path = vectors_dir().join(file);
    if std::env::var_os("ARCA_WRITE_VECTORS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&computed).unwrap() + "\n").unwrap();
        return;
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(stored, computed, "{file} no longer matches what arca computes");
}

#[test]
fn chunker_cut_points() {
    let cases = [
        ("small", 0u64, 8192usize, 16384usize, 65536usize, 1usize << 20),
        ("small-seeded", 0x0123_4567_89ab_cdef, 8192, 16384, 65536, 1 << 20),
        ("default", 0x0123_4567_89ab_cdef, 512 << 10, 1 << 20, 8 << 20, 12 << 20),
    ];
    let mut out = vec![];
    for (name, seed, min, avg, max, len) in cases {
        let data = input(name, len);
        let c = Chunker::new(min, avg, max, seed).unwrap();
        // Both ways arca cuts: the one-shot search and the streaming reader.
        let mut cuts = vec![];
        let mut at = 0;
        while at < data.len() {
            at += c.cut(&data[at..]);
            cuts.push(at);
        }
        let mut streamed = vec![];
        let mut s = c.stream(&data[..]);
        let mut end = 0;
        while let Some(chunk) = s.next_chunk().unwrap() {
            end += chunk.len();
            streamed.push(end);
        }
        assert_eq!(cuts, streamed, "{name}: stream and one-shot cut alike");
        let gear: Vec<String> = arca_chunker::gear_table(seed)[..4].iter().map(|g| format!("{g:#018x}")).collect();
        out.push(json!({
            "name": name, "seed": format!("{seed:#018x}"), "min_size": min, "avg_size": avg,
            "max_size": max, "input_length": len, "gear_first_4": gear, "cut_offsets": cuts,
        }));
    }
    check_or_write(
        "chunker.json",
        json!({
            "input": "BLAKE3 XOF of derive_key(\"arca test vectors v1\", name), input_length bytes",
            "cases": out,
        }),
    );
}

#[test]
fn parity_encode_and_recover() {
    let mut out = vec![];
    for (name, len, percent, erase) in
        [("parity-small", 5000usize, 10u32, vec![0usize, 7, 39]), ("parity-one-shard", 100, 50, vec![0])]
    {
        let pack = input(name, len);
        let id = arca_format::Id(*blake3::hash(&pack).as_bytes());
        let parity = arca_repo::parity::encode(&pack, percent).unwrap();
        let bytes = parity.to_bytes();
        assert!(erase.len() as u32 <= parity.recovery_count);
        let mut damaged = pack.clone();
        for s in &erase {
            let from = s * parity.shard_bytes as usize;
            let to = (from + parity.shard_bytes as usize).min(damaged.len());
            damaged[from..to].iter_mut().for_each(|b| *b ^= 0xff);
        }
        let recovered = arca_repo::parity::recover(&id, &damaged, &parity).unwrap();
        assert_eq!(recovered, pack, "{name}: recovered exactly");
        out.push(json!({
            "name": name, "pack_length": len, "parity_percent": percent,
            "pack_blake3": hex::encode(id.0), "parity_object_hex": hex::encode(&bytes),
            "erase_original_shards": erase,
        }));
    }
    check_or_write(
        "parity.json",
        json!({
            "input": "the pack is the BLAKE3 XOF of derive_key(\"arca test vectors v1\", name), pack_length bytes; to test recovery, invert every byte of the listed original shards and recover",
            "cases": out,
        }),
    );
}
