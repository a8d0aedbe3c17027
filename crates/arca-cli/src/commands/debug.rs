//! Hidden `arca debug` commands for benchmarks.

use crate::cli::{Cli, DebugCommand};
use crate::output::Output;
use anyhow::Result;
use arca_crypto::MasterKey;
use arca_format::{BlobKind, EncryptionMode};
use arca_repo::blob::{encode, Compression};
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

pub fn run(_cli: &Cli, out: &Output, d: &DebugCommand) -> Result<i32> {
    match d {
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
