//! Sealing to a public key: what a backup-only key does with the content keys it makes, so
//! that only the holder of the repository's full key can open them again.
//!
//! An ephemeral X25519 key agrees a secret with the repository's recipient key; BLAKE3 in
//! key-derivation mode turns the agreed secret and both public keys into a one-time sealing
//! key for the repository's AEAD. This is the ECIES pattern (as in age and HPKE's base mode);
//! written here in a few lines because the AEAD, its associated data and the framing have to
//! be the repository's own, which the crates implementing those standards fix differently.

use crate::{Cipher, CryptoError};
use arca_format::EncryptionMode;
use x25519_dalek::{EphemeralSecret, PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Length of the ephemeral public key that leads a sealed message.
pub const EPHEMERAL_LEN: usize = 32;

const WRAP_CONTEXT: &str = "arca 2026 sealed to a recipient key v2";

/// Always XChaCha20-Poly1305 (as key slots): a key must be hidden even in a repository whose
/// own objects are authenticated only.
const WRAP_AEAD: EncryptionMode = EncryptionMode::XChaCha20Poly1305;

/// The secret half of a repository's recipient key (derived from the master key).
pub struct RecipientSecret(StaticSecret);

impl RecipientSecret {
    /// The secret from its 32 bytes (as a reader key's slot carries it).
    pub fn from_bytes(bytes: [u8; 32]) -> RecipientSecret {
        RecipientSecret(StaticSecret::from(bytes))
    }

    /// The secret's 32 bytes, wiped when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public half, which backup-only keys carry.
    pub fn public(&self) -> [u8; 32] {
        PublicKey::from(&self.0).to_bytes()
    }

    /// Open what [`seal_to`] sealed to this key with associated data `ad`.
    pub fn open(&self, sealed: &[u8], ad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (eph, rest) = sealed
            .split_at_checked(EPHEMERAL_LEN)
            .ok_or(CryptoError::Truncated { what: "sealed content key", len: sealed.len() })?;
        let eph: [u8; 32] =
            eph.try_into().map_err(|_| CryptoError::Truncated { what: "sealed content key", len: 0 })?;
        let eph = PublicKey::from(eph);
        let shared = self.0.diffie_hellman(&eph);
        let key = wrap_key(shared.as_bytes(), eph.as_bytes(), &self.public());
        Ok(Zeroizing::new(Cipher::new(WRAP_AEAD, &key).open(rest, ad, "sealed content key")?))
    }
}

/// Seal `plain` so that only the holder of `recipient`'s secret opens it: an ephemeral public
/// key (32 bytes) followed by the AEAD's output.
pub fn seal_to(recipient: &[u8; 32], plain: &[u8], ad: &[u8]) -> Vec<u8> {
    let eph = EphemeralSecret::random_from_rng(rand::rngs::OsRng);
    let eph_public = PublicKey::from(&eph);
    let shared = eph.diffie_hellman(&PublicKey::from(*recipient));
    let key = wrap_key(shared.as_bytes(), eph_public.as_bytes(), recipient);
    let mut out = eph_public.to_bytes().to_vec();
    out.extend_from_slice(&Cipher::new(WRAP_AEAD, &key).seal(plain, ad));
    out
}

fn wrap_key(shared: &[u8; 32], eph: &[u8; 32], recipient: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut h = blake3::Hasher::new_derive_key(WRAP_CONTEXT);
    h.update(shared).update(eph).update(recipient);
    Zeroizing::new(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_recipient_opens() {
        let r = RecipientSecret::from_bytes([7; 32]);
        let other = RecipientSecret::from_bytes([8; 32]);
        let sealed = seal_to(&r.public(), b"content key", b"ad");
        assert!(!sealed.windows(11).any(|w| w == b"content key"), "sealed, not in the clear");
        assert_eq!(&**r.open(&sealed, b"ad").unwrap(), b"content key");
        assert!(r.open(&sealed, b"other ad").is_err());
        assert!(other.open(&sealed, b"ad").is_err());
        let mut bad = sealed.clone();
        bad[3] ^= 1;
        assert!(r.open(&bad, b"ad").is_err(), "the ephemeral key is bound");
        assert!(r.open(&sealed[..20], b"ad").is_err());
    }
}
