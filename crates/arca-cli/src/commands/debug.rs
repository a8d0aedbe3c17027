//! Hidden `arca debug` commands for benchmarks.

use crate::cli::{Cli, DebugCommand};
use crate::output::Output;
use anyhow::Result;
use arca_crypto::MasterKey;
use arca_format::{BlobKind, EncryptionMode, Id, IndexFile, IndexPack, PackHeaderEntry};
use arca_repo::blob::{encode, Compression};
use arca_storage::ObjectKind;
use std::time::Instant;

/// MB/s of `f` over `bytes` bytes, best of three.
fn rate(bytes: usize, mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            f();
            bytes as f64 / 1e6 / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

pub fn run(cli: &Cli, out: &Output, d: &DebugCommand) -> Result<i32> {
    match d {
        DebugCommand::SynthIndex { blobs, per_object, per_pack } => {
            let repo = crate::context::open(cli, out)?;
            let (per_object, per_pack) = ((*per_object).max(1), (*per_pack).max(1));
            let mut made = 0u64;
            let mut rng_state = rand::random::<u64>() | 1;
            let mut next_id = || {
                let mut b = [0u8; 32];
                for c in b.chunks_mut(8) {
                    rng_state ^= rng_state << 13;
                    rng_state ^= rng_state >> 7;
                    rng_state ^= rng_state << 17;
                    c.copy_from_slice(&rng_state.to_le_bytes());
                }
                Id(b)
            };
            while made < *blobs {
                let n = per_object.min(blobs - made);
                let mut file = IndexFile::default();
                let mut left = n;
                while left > 0 {
                    let k = per_pack.min(left);
                    let blobs = (0..k)
                        .map(|i| PackHeaderEntry {
                            kind: BlobKind::Data,
                            id: next_id(),
                            offset: i * 1000,
                            length: 1000,
                            raw_length: 1200,
                        })
                        .collect();
                    file.packs.push(IndexPack { id: next_id(), size: k * 1000 + 100, key: 0, blobs });
                    left -= k;
                }
                repo.save_object(ObjectKind::Index, &file)?;
                made += n;
                out.info(format!("{made} synthetic blobs indexed"));
            }
        }
        DebugCommand::SynthSnapshots { count } => {
            let repo = crate::context::open(cli, out)?;
            let latest = super::find_snapshot(&repo, out, "latest", &Default::default())?;
            let start = chrono::DateTime::parse_from_rfc3339("2000-01-01T00:00:00Z")?;
            for i in 0..*count {
                let mut s = latest.snapshot.clone();
                s.time = (start + chrono::Duration::hours(i as i64)).to_rfc3339();
                arca_repo::snapshots::save(&repo, &s)?;
            }
            out.info(format!("{count} snapshots added"));
        }
        DebugCommand::CpuBench => {
            let key = MasterKey::generate();
            let chunk = 1 << 20;
            let n = 64;
            let text: Vec<u8> =
                (0..chunk / 32).flat_map(|i: usize| format!("{i:>10} lorem ipsum dolor sit\n").into_bytes()).collect();
            let text = &text[..chunk.min(text.len())];
            let mut x = 0x9E37_79B9_7F4A_7C15u64;
            let random: Vec<u8> = (0..chunk)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let id = key.blob_id(&random);
            let mut v = serde_json::Map::new();
            v.insert(
                "blake3-keyed".into(),
                rate(chunk * n, || {
                    (0..n).for_each(|_| {
                        std::hint::black_box(key.blob_id(&random));
                    })
                })
                .into(),
            );
            for (name, mode) in [
                ("aes256-gcm-siv", EncryptionMode::Aes256GcmSiv),
                ("xchacha20-poly1305", EncryptionMode::XChaCha20Poly1305),
                ("none (authenticated only)", EncryptionMode::AuthenticatedOnly),
            ] {
                let c = key.cipher(mode);
                v.insert(name.into(), rate(chunk * n, || (0..n).for_each(|_| drop(c.seal(&random, b"ad")))).into());
            }
            let c = key.cipher(EncryptionMode::Aes256GcmSiv);
            let r = rate(text.len() * n, || {
                (0..n).for_each(|_| drop(encode(&c, BlobKind::Data, &id, text, Compression::Level(3))))
            });
            v.insert("zstd-3+seal (text)".into(), r.into());
            out.json_doc(&v);
        }
    }
    Ok(crate::exit::OK)
}
