//! Blob encoding: the (maybe compressed) bytes and a compression tag byte at the end, then AEAD
//! sealing with the blob's kind and id as associated data, so a blob cannot be swapped for
//! another. (The tag goes last so a raw blob's plaintext is its data after a truncate, with no
//! copy.)

use crate::{RepoError, RepoResult};
use arca_crypto::{Cipher, MasterKey};
use arca_format::{BlobKind, Id, COMPRESSION_NONE, COMPRESSION_ZSTD};
use std::cell::RefCell;

/// Compression choice for one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Never compress.
    Off,
    /// zstd at this level; stored raw where it does not pay.
    Level(i32),
    /// zstd level 3, skipping data a quick probe finds incompressible.
    Auto,
}

/// A blob compressed by less than this fraction is stored raw.
const MIN_SAVING: f64 = 0.02;
/// `Auto` compresses this many evenly spread windows of a large blob first to decide; chunks
/// often mix compressible and random regions, so one sample is not enough.
const PROBE_WINDOWS: usize = 8;
/// Size of one probe window.
const PROBE_LEN: usize = 8 * 1024;

/// True if a quick zstd-1 pass over samples of `data` saves at least 3%.
fn worth_compressing(data: &[u8]) -> bool {
    if data.len() <= 4 * PROBE_WINDOWS * PROBE_LEN {
        return true;
    }
    let step = (data.len() - PROBE_LEN) / (PROBE_WINDOWS - 1);
    let mut sample = Vec::with_capacity(PROBE_WINDOWS * PROBE_LEN);
    for i in 0..PROBE_WINDOWS {
        sample.extend_from_slice(&data[i * step..i * step + PROBE_LEN]);
    }
    match compress(&sample, 1) {
        Ok(c) => (c.len() as f64) < sample.len() as f64 * 0.97,
        Err(_) => true,
    }
}

fn ad(kind: BlobKind, id: &Id) -> [u8; 42] {
    let mut a = [0u8; 42];
    a[..9].copy_from_slice(b"arca blob");
    a[9] = kind.tag();
    a[10..].copy_from_slice(&id.0);
    a
}

thread_local! {
    /// zstd contexts are costly to create (a third of the CPU of a small-file backup went
    /// there), so each thread keeps one of each.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn compress(data: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        match &mut *slot {
            Some((l, c)) if *l == level => c.compress(data),
            _ => {
                let mut c = zstd::bulk::Compressor::new(level)?;
                let out = c.compress(data);
                *slot = Some((level, c));
                out
            }
        }
    })
}

fn decompress(data: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        match &mut *slot {
            Some(d) => d.decompress(data, capacity),
            None => {
                let mut d = zstd::bulk::Decompressor::new()?;
                let out = d.decompress(data, capacity);
                *slot = Some(d);
                out
            }
        }
    })
}

/// zstd output if it saves at least `MIN_SAVING`.
fn compressed(data: &[u8], level: i32) -> Option<Vec<u8>> {
    compress(data, level).ok().filter(|c| (c.len() as f64) < data.len() as f64 * (1.0 - MIN_SAVING))
}

/// Compress (as chosen) and seal one blob.
pub fn encode(cipher: &Cipher, kind: BlobKind, id: &Id, data: &[u8], compression: Compression) -> Vec<u8> {
    let packed = match compression {
        Compression::Off => None,
        Compression::Level(l) if l <= 0 => None,
        Compression::Level(l) => compressed(data, l),
        Compression::Auto if worth_compressing(data) => compressed(data, 3),
        Compression::Auto => None,
    };
    let (body, tag) = match &packed {
        Some(c) => (c.as_slice(), COMPRESSION_ZSTD),
        None => (data, COMPRESSION_NONE),
    };
    cipher.seal_with(body.len() + 1, &ad(kind, id), |buf| {
        buf.extend_from_slice(body);
        buf.push(tag);
    })
}

/// Open, decompress and verify one blob: its keyed hash must equal `id`.
pub fn decode(
    key: &MasterKey,
    cipher: &Cipher,
    kind: BlobKind,
    id: &Id,
    sealed: &[u8],
    raw_length: u32,
) -> RepoResult<Vec<u8>> {
    let what = || format!("{kind:?} blob {id}").to_lowercase();
    let plain = cipher.open(sealed, &ad(kind, id), "blob").map_err(|e| RepoError::corrupt(what(), e))?;
    let mut plain = plain;
    let data = match plain.split_last() {
        Some((&COMPRESSION_NONE, _)) => {
            plain.pop();
            plain
        }
        Some((&COMPRESSION_ZSTD, rest)) => {
            decompress(rest, raw_length as usize).map_err(|e| RepoError::corrupt(what(), format!("zstd: {e}")))?
        }
        Some((t, _)) => return Err(RepoError::corrupt(what(), format!("unknown compression tag {t}"))),
        None => return Err(RepoError::corrupt(what(), "empty plaintext")),
    };
    if data.len() != raw_length as usize || key.blob_id(&data) != *id {
        return Err(RepoError::corrupt(what(), "contents do not match the blob id"));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_format::EncryptionMode;

    #[test]
    fn round_trip_every_compression() {
        let k = MasterKey::generate();
        let c = k.cipher(EncryptionMode::XChaCha20Poly1305);
        let text = b"abcabcabc".repeat(50_000);
        let random: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        for data in [&text[..], &random[..], b""] {
            let id = k.blob_id(data);
            for comp in [Compression::Off, Compression::Auto, Compression::Level(3), Compression::Level(0)] {
                let s = encode(&c, BlobKind::Data, &id, data, comp);
                assert_eq!(decode(&k, &c, BlobKind::Data, &id, &s, data.len() as u32).unwrap(), data);
                assert!(decode(&k, &c, BlobKind::Tree, &id, &s, data.len() as u32).is_err());
            }
        }
        let id = k.blob_id(&text);
        assert!(encode(&c, BlobKind::Data, &id, &text, Compression::Auto).len() < text.len() / 10);
    }
}
