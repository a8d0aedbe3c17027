//! Parity objects (`parity/<pack id>`): Reed-Solomon recovery shards for one pack, so bit rot
//! or a lost region inside a pack is repaired, not just found. Stored in the clear: parity of
//! ciphertext reveals nothing the ciphertext does not, and the object checks itself.
//!
//! ```text
//! "ARCAPAR1" | version u32 | shard_bytes u32 | original_count u32 | recovery_count u32 | pack_length u64
//! original_count × 32 bytes: BLAKE3 of each original shard (the last one zero-padded)
//! recovery_count × shard_bytes: recovery shards
//! 32 bytes: BLAKE3 of everything before
//! ```
//! Original shard `i` is the pack's bytes `[i × shard_bytes, (i+1) × shard_bytes)`, zero-padded
//! past the pack's end. All integers little-endian.

use crate::FormatError;

/// Magic at the start of a parity object.
pub const PARITY_MAGIC: &[u8; 8] = b"ARCAPAR1";
const VERSION: u32 = 1;
const HEAD: usize = 8 + 4 * 4 + 8;

/// A decoded parity object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParityFile {
    pub shard_bytes: u32,
    pub original_count: u32,
    pub recovery_count: u32,
    pub pack_length: u64,
    pub shard_hashes: Vec<[u8; 32]>,
    pub recovery: Vec<Vec<u8>>,
}

impl ParityFile {
    /// The stored bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(
            HEAD + self.shard_hashes.len() * 32 + self.recovery.iter().map(Vec::len).sum::<usize>() + 32,
        );
        b.extend_from_slice(PARITY_MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&self.shard_bytes.to_le_bytes());
        b.extend_from_slice(&self.original_count.to_le_bytes());
        b.extend_from_slice(&self.recovery_count.to_le_bytes());
        b.extend_from_slice(&self.pack_length.to_le_bytes());
        for h in &self.shard_hashes {
            b.extend_from_slice(h);
        }
        for r in &self.recovery {
            b.extend_from_slice(r);
        }
        let sum = blake3::hash(&b);
        b.extend_from_slice(sum.as_bytes());
        b
    }

    /// Parse and verify stored bytes.
    pub fn from_bytes(b: &[u8]) -> Result<ParityFile, FormatError> {
        let bad = |m: &str| FormatError::Invalid { what: "parity object", reason: m.to_string() };
        if b.len() < HEAD + 32 || &b[..8] != PARITY_MAGIC {
            return Err(bad("bad magic or too short"));
        }
        let (body, sum) = b.split_at(b.len() - 32);
        if blake3::hash(body).as_bytes() != sum {
            return Err(bad("checksum mismatch (damaged)"));
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if u32_at(8) != VERSION {
            return Err(bad("unknown version"));
        }
        let (shard_bytes, original_count, recovery_count) = (u32_at(12), u32_at(16), u32_at(20));
        let pack_length = u64::from_le_bytes(b[24..32].try_into().map_err(|_| bad("short header"))?);
        let want = (original_count as u64)
            .checked_mul(32)
            .and_then(|h| (recovery_count as u64).checked_mul(shard_bytes as u64).and_then(|r| r.checked_add(h)))
            .and_then(|n| n.checked_add(HEAD as u64));
        if want != Some(body.len() as u64) {
            return Err(bad("sizes do not match the header"));
        }
        let mut at = HEAD;
        let mut shard_hashes = Vec::with_capacity(original_count as usize);
        for _ in 0..original_count {
            let mut h = [0u8; 32];
            h.copy_from_slice(&body[at..at + 32]);
            shard_hashes.push(h);
            at += 32;
        }
        let recovery = body[at..].chunks(shard_bytes.max(1) as usize).map(<[u8]>::to_vec).collect();
        Ok(ParityFile { shard_bytes, original_count, recovery_count, pack_length, shard_hashes, recovery })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let p = ParityFile {
            shard_bytes: 4,
            original_count: 2,
            recovery_count: 2,
            pack_length: 7,
            shard_hashes: vec![[1; 32], [2; 32]],
            recovery: vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]],
        };
        let mut b = p.to_bytes();
        assert_eq!(ParityFile::from_bytes(&b).unwrap(), p);
        b[30] ^= 1;
        assert!(ParityFile::from_bytes(&b).is_err());
        assert!(ParityFile::from_bytes(&b[..10]).is_err());
    }
}
