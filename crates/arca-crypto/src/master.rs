//! The master key and the key slots that wrap it.

use crate::{Cipher, CryptoError};
use arca_format::{EncryptionMode, Id, KdfParams};
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of the master key's plaintext encoding: data key, MAC key, chunker seed.
const MASTER_LEN: usize = 72;
const SLOT_AD: &[u8] = b"arca key slot v1";

/// The repository's secrets: the data key seals objects, the MAC key makes blob ids, the
/// chunker seed perturbs the gear table so chunk sizes do not fingerprint contents.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    data_key: [u8; 32],
    mac_key: [u8; 32],
    chunker_seed: u64,
}

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> MasterKey {
        let mut rng = rand::thread_rng();
        let mut k = MasterKey { data_key: [0; 32], mac_key: [0; 32], chunker_seed: 0 };
        rng.fill_bytes(&mut k.data_key);
        rng.fill_bytes(&mut k.mac_key);
        // A zero seed would mean the public default gear table.
        while k.chunker_seed == 0 {
            k.chunker_seed = rng.next_u64();
        }
        k
    }

    /// The cipher that seals this repository's objects.
    pub fn cipher(&self, mode: EncryptionMode) -> Cipher {
        Cipher::new(mode, &self.data_key)
    }

    /// The keyed BLAKE3 id of a blob's plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.mac_key, plaintext).as_bytes())
    }

    /// An incremental hasher giving [`MasterKey::blob_id`] of everything fed to it, for
    /// plaintexts that are never whole in memory.
    pub fn blob_hasher(&self) -> blake3::Hasher {
        blake3::Hasher::new_keyed(&self.mac_key)
    }

    /// The seed of the chunker's gear table.
    pub fn chunker_seed(&self) -> u64 {
        self.chunker_seed
    }

    /// The same MAC key and chunker seed (so blob ids and chunk boundaries, and with them
    /// deduplication, carry on) with a fresh data key: a repository's first content key when
    /// it is upgraded to format version 2.
    pub fn with_fresh_data_key(&self) -> MasterKey {
        let mut k = self.clone();
        rand::thread_rng().fill_bytes(&mut k.data_key);
        k
    }

    /// The repository's shared key (format version 2): seals what every kind of key must
    /// read (the index, locks, marks), so a backup-only key can deduplicate and take part in
    /// locking without reading contents. Derived, so nothing new is stored for it.
    pub fn shared_key(&self, repo_id: &Id) -> zeroize::Zeroizing<[u8; 32]> {
        let mut h = blake3::Hasher::new_derive_key("arca 2026 shared key v2");
        h.update(&self.data_key).update(&repo_id.0);
        zeroize::Zeroizing::new(*h.finalize().as_bytes())
    }

    /// The repository's recipient key: content keys a backup-only key makes are sealed to
    /// its public half, and only a holder of this master key opens them.
    pub fn recipient(&self, repo_id: &Id) -> crate::recipient::RecipientSecret {
        let mut h = blake3::Hasher::new_derive_key("arca 2026 recipient key v2");
        h.update(&self.data_key).update(&repo_id.0);
        crate::recipient::RecipientSecret::from_bytes(*h.finalize().as_bytes())
    }

    /// The recipient key that metadata-only keys hold the secret of: every content key's
    /// metadata key is also stored sealed to its public half (docs/FORMAT.md, "Reader keys").
    pub fn metadata_recipient(&self, repo_id: &Id) -> crate::recipient::RecipientSecret {
        let mut h = blake3::Hasher::new_derive_key("arca 2026 metadata recipient v2");
        h.update(&self.data_key).update(&repo_id.0);
        crate::recipient::RecipientSecret::from_bytes(*h.finalize().as_bytes())
    }

    /// The recipient key that summary-only keys hold the secret of: every content key's
    /// summary key is also stored sealed to its public half.
    pub fn summary_recipient(&self, repo_id: &Id) -> crate::recipient::RecipientSecret {
        let mut h = blake3::Hasher::new_derive_key("arca 2026 summary recipient v2");
        h.update(&self.data_key).update(&repo_id.0);
        crate::recipient::RecipientSecret::from_bytes(*h.finalize().as_bytes())
    }

    /// Of a content key that splits what it seals: the key its trees and snapshot bodies are
    /// sealed with, which a metadata-only key gets without the data key itself.
    pub fn metadata_key(&self) -> zeroize::Zeroizing<[u8; 32]> {
        let mut h = blake3::Hasher::new_derive_key("arca 2026 metadata key v2");
        h.update(&self.data_key);
        zeroize::Zeroizing::new(*h.finalize().as_bytes())
    }

    /// Of a content key that splits what it seals: the key its snapshots' digests (hosts,
    /// times, sizes; no names) are sealed with, which a summary-only key gets.
    pub fn summary_key(&self) -> zeroize::Zeroizing<[u8; 32]> {
        let mut h = blake3::Hasher::new_derive_key("arca 2026 summary key v2");
        h.update(&self.data_key);
        zeroize::Zeroizing::new(*h.finalize().as_bytes())
    }

    /// The key that proves a backup-only session was made by a key bound to `host`: only
    /// the master key and the keys bound to that host have it.
    pub fn host_key(&self, repo_id: &Id, host: &str) -> zeroize::Zeroizing<[u8; 32]> {
        let mut h = blake3::Hasher::new_derive_key("arca 2026 host key v2");
        h.update(&self.data_key).update(&repo_id.0).update(host.as_bytes());
        zeroize::Zeroizing::new(*h.finalize().as_bytes())
    }

    /// The same key with `data_key` in place of its data key.
    pub fn with_data_key(&self, data_key: &[u8; 32]) -> MasterKey {
        let mut k = self.clone();
        k.data_key = *data_key;
        k
    }

    /// The same MAC key and seed with an all-zero data key: what a backup-only key carries of
    /// its class's key (it makes the same blob ids and chunks, and seals nothing with it).
    pub fn without_data_key(&self) -> MasterKey {
        self.with_data_key(&[0; 32])
    }

    /// The 72-byte encoding (data key ‖ MAC key ‖ seed LE), wiped when dropped: how a content
    /// key is stored inside its sealed `keyring/` object.
    pub fn to_secret(&self) -> zeroize::Zeroizing<Vec<u8>> {
        zeroize::Zeroizing::new(self.to_bytes().to_vec())
    }

    /// Decode [`MasterKey::to_secret`]; `None` if the length is wrong or the seed is 0.
    pub fn from_secret(b: &[u8]) -> Option<MasterKey> {
        MasterKey::from_bytes(b).filter(|k| k.chunker_seed != 0)
    }

    fn to_bytes(&self) -> [u8; MASTER_LEN] {
        let mut out = [0u8; MASTER_LEN];
        out[..32].copy_from_slice(&self.data_key);
        out[32..64].copy_from_slice(&self.mac_key);
        out[64..].copy_from_slice(&self.chunker_seed.to_le_bytes());
        out
    }

    fn from_bytes(b: &[u8]) -> Option<MasterKey> {
        if b.len() != MASTER_LEN {
            return None;
        }
        let mut k = MasterKey { data_key: [0; 32], mac_key: [0; 32], chunker_seed: 0 };
        k.data_key.copy_from_slice(&b[..32]);
        k.mac_key.copy_from_slice(&b[32..64]);
        k.chunker_seed = u64::from_le_bytes(b[64..].try_into().ok()?);
        Some(k)
    }
}

/// A key derived from a passphrase for one slot.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SlotKey([u8; 32]);

/// Derive a slot key from `passphrase` with Argon2id.
pub fn derive_slot_key(passphrase: &[u8], salt: &[u8], params: &KdfParams) -> Result<SlotKey, CryptoError> {
    if let Some(why) = params.refusal() {
        return Err(CryptoError::Kdf(format!("the key derivation {why}")));
    }
    let p = argon2::Params::new(params.memory_kib, params.iterations, params.parallelism, Some(32))
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = SlotKey([0; 32]);
    a.hash_password_into(passphrase, salt, &mut out.0).map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(out)
}

/// Seal the master key with a slot key.
pub fn seal_slot(master: &MasterKey, slot_key: &SlotKey) -> Vec<u8> {
    let mut plain = master.to_bytes();
    let sealed = Cipher::new(EncryptionMode::XChaCha20Poly1305, &slot_key.0).seal(&plain, SLOT_AD);
    plain.zeroize();
    sealed
}

/// Open a sealed master key; an authentication error means the passphrase was wrong.
pub fn open_slot(sealed: &[u8], slot_key: &SlotKey) -> Result<MasterKey, CryptoError> {
    let mut plain = Cipher::new(EncryptionMode::XChaCha20Poly1305, &slot_key.0).open(sealed, SLOT_AD, "key slot")?;
    let key = MasterKey::from_bytes(&plain);
    plain.zeroize();
    key.ok_or(CryptoError::Truncated { what: "master key", len: sealed.len() })
}

/// Seal any secret with a slot key (a backup-only slot seals its bundle this way).
pub fn seal_slot_secret(plain: &[u8], slot_key: &SlotKey) -> Vec<u8> {
    Cipher::new(EncryptionMode::XChaCha20Poly1305, &slot_key.0).seal(plain, SLOT_AD)
}

/// Open what [`seal_slot_secret`] sealed; an authentication error means a wrong passphrase.
pub fn open_slot_secret(sealed: &[u8], slot_key: &SlotKey) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
    Ok(zeroize::Zeroizing::new(
        Cipher::new(EncryptionMode::XChaCha20Poly1305, &slot_key.0).open(sealed, SLOT_AD, "key slot")?,
    ))
}

/// Random bytes for salts and ids.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> KdfParams {
        KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }
    }

    #[test]
    fn slot_opens_with_right_passphrase_only() {
        let m = MasterKey::generate();
        let k = derive_slot_key(b"pw", b"saltsaltsalt", &cheap()).unwrap();
        let sealed = seal_slot(&m, &k);
        let back = open_slot(&sealed, &k).unwrap();
        assert_eq!(back.blob_id(b"x"), m.blob_id(b"x"));
        assert_eq!(back.chunker_seed(), m.chunker_seed());
        let wrong = derive_slot_key(b"pW", b"saltsaltsalt", &cheap()).unwrap();
        assert!(matches!(open_slot(&sealed, &wrong), Err(CryptoError::Authentication { .. })));
    }

    #[test]
    fn blob_ids_are_keyed() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        assert_ne!(a.blob_id(b"same"), b.blob_id(b"same"));
        assert_eq!(a.blob_id(b"same"), a.blob_id(b"same"));
    }
}
