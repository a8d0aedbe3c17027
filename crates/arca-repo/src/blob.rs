//! Blob encoding: the (maybe compressed) bytes and a compression tag byte at the end, then AEAD
//! sealing with the blob's kind and id as associated data, so a blob cannot be swapped for
//! another. (The tag goes last so a raw blob's plaintext is its data after a truncate, with no
//! copy.)

use crate::{RepoError, RepoResult};
use arca_crypto::{Cipher, MasterKey};
use arca_format::{BlobKind, Id, COMPRESSION_NONE, COMPRESSION_ZSTD};
use std::cell::RefCell;

/// Compression choice for one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// Never compress.
    Off,
    /// zstd at this level; stored raw where it does not pay.
    Level(i32),
    /// Skipping data a quick probe finds incompressible, at a level that follows the
    /// bottleneck in a write session (`adaptive.rs`), zstd level 3 elsewhere.
    #[default]
    Auto,
    /// What `Auto` is at a moment of a write session: the probe, then this level.
    AutoAt(i32),
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
    /// there), so each thread keeps one per level it uses (the `Auto` probe's and the real
    /// one) and one decompressor of each kind.
    static COMPRESSORS: RefCell<Vec<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(Vec::new()) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    static STREAM_DECOMPRESSOR: RefCell<Option<zstd::stream::raw::Decoder<'static>>> = const { RefCell::new(None) };
}

/// Largest plaintext buffer a thread keeps for reuse (a max-size chunk and then some).
const MAX_KEPT_BUFFER: usize = 9 << 20;

thread_local! {
    /// Each thread's scratch buffer: a blob's compressed form on its way to sealing, then the
    /// opened form of the sealed blob being verified. One buffer serves both (a worker seals,
    /// then verifies): two would keep up to two max-size chunks resident per worker.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// This thread's scratch buffer, taken out while in use (a nested user gets a new one).
fn take_scratch() -> Vec<u8> {
    SCRATCH.with(|b| std::mem::take(&mut *b.borrow_mut()))
}

/// Give the scratch buffer back unless it grew past what is worth keeping.
fn keep_scratch(buf: Vec<u8>) {
    if buf.capacity() <= MAX_KEPT_BUFFER {
        SCRATCH.with(|b| *b.borrow_mut() = buf);
    }
}

/// Piece size of a streamed decompression.
const STREAM_PIECE: usize = 64 * 1024;

/// Run `f` with this thread's compressor for `level`.
fn with_compressor<T>(
    level: i32,
    f: impl FnOnce(&mut zstd::bulk::Compressor<'static>) -> std::io::Result<T>,
) -> std::io::Result<T> {
    COMPRESSORS.with(|cell| {
        let mut all = cell.borrow_mut();
        let i = match all.iter().position(|(l, _)| *l == level) {
            Some(i) => i,
            None => {
                all.push((level, zstd::bulk::Compressor::new(level)?));
                all.len() - 1
            }
        };
        f(&mut all[i].1)
    })
}

fn compress(data: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    with_compressor(level, |c| c.compress(data))
}

/// Decompress `data` piece by piece into `sink`, never holding more than one piece; the
/// number of bytes produced. Fails past `limit` bytes or on a truncated frame.
fn decompress_into(data: &[u8], limit: u64, mut sink: impl FnMut(&[u8])) -> std::io::Result<u64> {
    use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
    STREAM_DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let d = match &mut *slot {
            Some(d) => d,
            empty => empty.insert(zstd::stream::raw::Decoder::new()?),
        };
        d.reinit()?;
        let mut piece = vec![0u8; STREAM_PIECE];
        let mut input = InBuffer::around(data);
        let mut total = 0u64;
        loop {
            let mut out = OutBuffer::around(&mut piece[..]);
            let hint = d.run(&mut input, &mut out)?;
            let n = out.pos();
            total += n as u64;
            if total > limit {
                return Err(std::io::Error::other("more bytes than the stored length"));
            }
            sink(&piece[..n]);
            if hint == 0 && input.pos() == data.len() {
                return Ok(total);
            }
            if n == 0 && input.pos() == data.len() {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated zstd frame"));
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

/// Compress `data` into `out` (replacing its contents); true if that saves at least
/// `MIN_SAVING`.
fn compressed_into(data: &[u8], level: i32, out: &mut Vec<u8>) -> bool {
    out.clear();
    out.reserve(zstd::zstd_safe::compress_bound(data.len()));
    let done = with_compressor(level, |c| c.compress_to_buffer(data, out));
    done.is_ok() && (out.len() as f64) < data.len() as f64 * (1.0 - MIN_SAVING)
}

/// Compress (as chosen) and seal one blob.
pub fn encode(cipher: &Cipher, kind: BlobKind, id: &Id, data: &[u8], compression: Compression) -> Vec<u8> {
    encode_into(cipher, kind, id, data, compression, Vec::new())
}

/// [`encode`] into `out` (cleared first), so the write pipeline can recycle its buffers; the
/// compressed form passes through a buffer each thread keeps.
pub fn encode_into(
    cipher: &Cipher,
    kind: BlobKind,
    id: &Id,
    data: &[u8],
    compression: Compression,
    out: Vec<u8>,
) -> Vec<u8> {
    let level = match compression {
        Compression::Off => None,
        Compression::Level(l) if l <= 0 => None,
        Compression::Level(l) => Some(l),
        Compression::Auto if worth_compressing(data) => Some(crate::adaptive::START_LEVEL),
        Compression::AutoAt(l) if worth_compressing(data) => Some(l),
        Compression::Auto | Compression::AutoAt(_) => None,
    };
    let mut packed = take_scratch();
    let use_packed = level.is_some_and(|l| compressed_into(data, l, &mut packed));
    let (body, tag) = if use_packed { (packed.as_slice(), COMPRESSION_ZSTD) } else { (data, COMPRESSION_NONE) };
    let sealed = cipher.seal_into(out, body.len() + 1, &ad(kind, id), |buf| {
        buf.extend_from_slice(body);
        buf.push(tag);
    });
    keep_scratch(packed);
    sealed
}

/// Check one sealed blob as a reader would — open, decompress, hash to `id`, compare lengths —
/// without keeping its plaintext: decompression streams through a small buffer into the
/// hasher. For verification after sealing and for `check --read-data`.
pub fn verify(
    key: &MasterKey,
    cipher: &Cipher,
    kind: BlobKind,
    id: &Id,
    sealed: &[u8],
    raw_length: u32,
) -> RepoResult<()> {
    let what = || format!("{kind:?} blob {id}").to_lowercase();
    // Reused: no allocation per blob.
    let mut plain = take_scratch();
    let mut check = || -> Result<(), String> {
        cipher.open_into(sealed, &ad(kind, id), "blob", &mut plain).map_err(|e| e.to_string())?;
        let mut hasher = key.blob_hasher();
        let len = match plain.split_last() {
            Some((&COMPRESSION_NONE, rest)) => {
                hasher.update(rest);
                rest.len() as u64
            }
            Some((&COMPRESSION_ZSTD, rest)) => decompress_into(rest, raw_length as u64, |p| {
                hasher.update(p);
            })
            .map_err(|e| format!("zstd: {e}"))?,
            Some((t, _)) => return Err(format!("unknown compression tag {t}")),
            None => return Err("empty plaintext".into()),
        };
        if len != raw_length as u64 || Id(*hasher.finalize().as_bytes()) != *id {
            return Err("contents do not match the blob id".into());
        }
        Ok(())
    };
    let result = check().map_err(|e| RepoError::corrupt(what(), e));
    keep_scratch(plain);
    result
}

/// Blobs up to this length decompress in one call into a buffer of their stated length (the
/// fast path: every chunk the default chunker cuts); longer ones stream.
const BULK_LIMIT: u32 = 64 << 20;

/// Open, decompress and verify one blob: its keyed hash with `key`'s MAC key must equal `id`
/// (`key: None`, a reader key without the MAC key: the AEAD alone vouches for it).
pub fn decode(
    key: Option<&MasterKey>,
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
        Some((&COMPRESSION_ZSTD, rest)) if raw_length <= BULK_LIMIT => {
            decompress(rest, raw_length as usize).map_err(|e| RepoError::corrupt(what(), format!("zstd: {e}")))?
        }
        // The index, not the blob, states this length: memory grows with what the data really
        // holds, not with what a crafted index claims.
        Some((&COMPRESSION_ZSTD, rest)) => {
            let mut out = Vec::new();
            decompress_into(rest, raw_length as u64, |p| out.extend_from_slice(p))
                .map_err(|e| RepoError::corrupt(what(), format!("zstd: {e}")))?;
            out
        }
        Some((t, _)) => return Err(RepoError::corrupt(what(), format!("unknown compression tag {t}"))),
        None => return Err(RepoError::corrupt(what(), "empty plaintext")),
    };
    if data.len() != raw_length as usize || key.is_some_and(|k| k.blob_id(&data) != *id) {
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
                assert_eq!(decode(Some(&k), &c, BlobKind::Data, &id, &s, data.len() as u32).unwrap(), data);
                assert!(decode(Some(&k), &c, BlobKind::Tree, &id, &s, data.len() as u32).is_err());
                let n = data.len() as u32;
                verify(&k, &c, BlobKind::Data, &id, &s, n).unwrap();
                assert!(verify(&k, &c, BlobKind::Tree, &id, &s, n).is_err(), "wrong kind");
                assert!(verify(&k, &c, BlobKind::Data, &id, &s, n + 1).is_err(), "wrong length");
                assert!(verify(&k, &c, BlobKind::Data, &k.blob_id(b"x"), &s, n).is_err(), "wrong id");
            }
        }
        let id = k.blob_id(&text);
        assert!(encode(&c, BlobKind::Data, &id, &text, Compression::Auto).len() < text.len() / 10);
    }

    /// Issue 14, item 9: the index states a blob's length; a crafted index claiming 4 GiB for
    /// a small blob gets an error, not a 4 GiB allocation.
    #[test]
    fn a_claimed_length_far_beyond_the_data_is_refused_without_allocating_it() {
        let k = MasterKey::generate();
        let c = k.cipher(EncryptionMode::XChaCha20Poly1305);
        let text = b"abcabcabc".repeat(50_000);
        let id = k.blob_id(&text);
        let s = encode(&c, BlobKind::Data, &id, &text, Compression::Auto);
        let err = decode(Some(&k), &c, BlobKind::Data, &id, &s, u32::MAX).unwrap_err().to_string();
        assert!(err.contains("do not match"), "{err}");
        let err = decode(Some(&k), &c, BlobKind::Data, &id, &s, BULK_LIMIT + 1).unwrap_err().to_string();
        assert!(err.contains("do not match"), "{err}");
    }

    #[test]
    fn verify_catches_damaged_compressed_data() {
        let k = MasterKey::generate();
        let c = k.cipher(EncryptionMode::Aes256GcmSiv);
        let text = b"the quick brown fox ".repeat(40_000);
        let id = k.blob_id(&text);
        let n = text.len() as u32;
        // A compressor fault: valid AEAD around a truncated or altered zstd frame.
        let good = compress(&text, 3).unwrap();
        let other = compress(&b"the quick brown fax ".repeat(40_000), 3).unwrap();
        for bad in [good[..good.len() / 2].to_vec(), other, good[..good.len() - 1].to_vec()] {
            let s = c.seal_with(bad.len() + 1, &ad(BlobKind::Data, &id), |buf| {
                buf.extend_from_slice(&bad);
                buf.push(COMPRESSION_ZSTD);
            });
            assert!(verify(&k, &c, BlobKind::Data, &id, &s, n).is_err());
            assert!(decode(Some(&k), &c, BlobKind::Data, &id, &s, n).is_err());
        }
    }
}
