//! The AEADs a repository may use, and its authenticated-only mode, behind one type so callers
//! never branch on the mode.

use crate::CryptoError;
use arca_format::EncryptionMode;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM_SIV};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::XChaCha20Poly1305;
use rand::RngCore;
use std::sync::Arc;

const TAG_LEN: usize = 16;

/// The key-derivation context of the authenticated-only mode's MAC key (from the data key).
const AUTH_ONLY_CONTEXT: &str = "arca 2026-12 authenticated-only objects v1";

/// An AEAD keyed with one data key. Sealed bytes are `nonce || ciphertext || tag`; in the
/// authenticated-only mode, `plaintext || tag`.
#[derive(Clone)]
pub enum Cipher {
    XChaCha(Box<XChaCha20Poly1305>),
    /// AES-256-GCM-SIV (RFC 8452) from aws-lc-rs: its AES-NI and CLMUL assembly seals about
    /// 1.65× as fast as the portable implementation on the same core (docs/BENCHMARKS.md),
    /// byte for byte the same output.
    AesSiv(Arc<LessSafeKey>),
    /// No encryption: `nonce (16) || plaintext || tag`, the tag the first 16 bytes of keyed
    /// BLAKE3 (the key derived from the data key) over the framed AD, the nonce and the
    /// plaintext.
    AuthOnly(Box<[u8; 32]>),
}

/// The authenticated-only tag: keyed BLAKE3 of `len(ad) as u64 LE ‖ ad ‖ nonce ‖ plaintext`,
/// first 16 bytes.
fn auth_tag(key: &[u8; 32], ad: &[u8], body: &[u8]) -> [u8; TAG_LEN] {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(&(ad.len() as u64).to_le_bytes());
    h.update(ad);
    h.update(body);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&h.finalize().as_bytes()[..TAG_LEN]);
    tag
}

/// Equality whose time does not depend on where the inputs differ.
fn same_tag(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Cipher {
    /// A cipher of `mode` with a 32-byte key.
    pub fn new(mode: EncryptionMode, key: &[u8; 32]) -> Cipher {
        match mode {
            EncryptionMode::XChaCha20Poly1305 => Cipher::XChaCha(Box::new(XChaCha20Poly1305::new(key.into()))),
            EncryptionMode::Aes256GcmSiv => Cipher::AesSiv(Arc::new(LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM_SIV, key).expect("AES-256-GCM-SIV takes a 32-byte key"),
            ))),
            EncryptionMode::AuthenticatedOnly => Cipher::AuthOnly(Box::new(blake3::derive_key(AUTH_ONLY_CONTEXT, key))),
        }
    }

    fn nonce_len(&self) -> usize {
        match self {
            Cipher::XChaCha(_) => 24,
            Cipher::AesSiv(_) => 12,
            // Not for secrecy: so that equal plaintexts give different objects (a snapshot
            // forgotten and copied back is a new object, as with the AEADs).
            Cipher::AuthOnly(_) => 16,
        }
    }

    /// Bytes added by sealing.
    pub fn overhead(&self) -> usize {
        self.nonce_len() + TAG_LEN
    }

    /// Seal `plaintext` with associated data `ad` under a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8], ad: &[u8]) -> Vec<u8> {
        self.seal_with(plaintext.len(), ad, |buf| buf.extend_from_slice(plaintext))
    }

    /// Seal a plaintext that `write` appends to the buffer (about `len` bytes), encrypting it
    /// in place: one allocation and no copy of the plaintext.
    pub fn seal_with(&self, len: usize, ad: &[u8], write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        self.seal_into(Vec::new(), len, ad, write)
    }

    /// [`Cipher::seal_with`] into `out` (cleared first), so a caller can recycle buffers.
    pub fn seal_into(&self, mut out: Vec<u8>, len: usize, ad: &[u8], write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let n = self.nonce_len();
        out.clear();
        out.reserve(n + len + TAG_LEN);
        if let Cipher::AuthOnly(key) = self {
            out.resize(n, 0);
            rand::thread_rng().fill_bytes(&mut out[..n]);
            write(&mut out);
            let tag = auth_tag(key, ad, &out);
            out.extend_from_slice(&tag);
            return out;
        }
        out.resize(n, 0);
        rand::thread_rng().fill_bytes(&mut out[..n]);
        write(&mut out);
        let (nonce, body) = out.split_at_mut(n);
        // Encryption with a valid key and in-memory buffer cannot fail for these ciphers
        // (only over-long messages, > 64 GiB, are refused).
        let tag = match self {
            Cipher::XChaCha(c) => c.encrypt_in_place_detached((&*nonce).into(), ad, body).map(|t| t.to_vec()).ok(),
            Cipher::AesSiv(k) => Nonce::try_assume_unique_for_key(nonce)
                .and_then(|nonce| k.seal_in_place_separate_tag(nonce, Aad::from(ad), body))
                .map(|t| t.as_ref().to_vec())
                .ok(),
            Cipher::AuthOnly(key) => Some(auth_tag(key, ad, body).to_vec()),
        };
        match tag {
            Some(t) => out.extend_from_slice(&t),
            None => unreachable!("AEAD refused a message under 64 GiB"),
        }
        out
    }

    /// Open bytes made by [`Cipher::seal`] with the same associated data.
    pub fn open(&self, sealed: &[u8], ad: &[u8], what: &'static str) -> Result<Vec<u8>, CryptoError> {
        let mut buf = Vec::new();
        self.open_into(sealed, ad, what, &mut buf)?;
        Ok(buf)
    }

    /// [`Cipher::open`] into `buf` (replacing its contents), so a caller that opens many
    /// objects can reuse one allocation. On failure `buf` holds no plaintext.
    pub fn open_into(
        &self,
        sealed: &[u8],
        ad: &[u8],
        what: &'static str,
        buf: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let n = self.nonce_len();
        buf.clear();
        if sealed.len() < n + TAG_LEN {
            return Err(CryptoError::Truncated { what, len: sealed.len() });
        }
        let (nonce, rest) = sealed.split_at(n);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        buf.extend_from_slice(body);
        let ok = match self {
            Cipher::XChaCha(c) => c.decrypt_in_place_detached(nonce.into(), ad, buf, tag.into()).is_ok(),
            Cipher::AesSiv(k) => Nonce::try_assume_unique_for_key(nonce)
                .and_then(|nonce| k.open_in_place_separate_tag(nonce, Aad::from(ad), tag, buf))
                .is_ok(),
            Cipher::AuthOnly(key) => same_tag(&auth_tag(key, ad, &sealed[..sealed.len() - TAG_LEN]), tag),
        };
        if !ok {
            buf.clear();
            return Err(CryptoError::Authentication { what });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn seal_open_round_trip(data in proptest::collection::vec(any::<u8>(), 0..2000), ad in proptest::collection::vec(any::<u8>(), 0..40), siv: bool) {
            let mode = if siv { EncryptionMode::Aes256GcmSiv } else { EncryptionMode::XChaCha20Poly1305 };
            for mode in [mode, EncryptionMode::AuthenticatedOnly] {
                let c = Cipher::new(mode, &[7; 32]);
                let s = c.seal(&data, &ad);
                prop_assert_eq!(s.len(), data.len() + c.overhead());
                prop_assert_eq!(c.open(&s, &ad, "t").unwrap(), data.clone());
            }
        }
    }

    proptest! {
        /// aws-lc-rs's AES-256-GCM-SIV and the portable RustCrypto one make and accept the
        /// same bytes: repositories written before the switch open, and a second reader with
        /// either library agrees.
        #[test]
        fn aes_gcm_siv_is_the_same_as_the_portable_implementation(key: [u8; 32], data in proptest::collection::vec(any::<u8>(), 0..3000), ad in proptest::collection::vec(any::<u8>(), 0..40)) {
            use aes_gcm_siv::aead::Aead;
            let portable = aes_gcm_siv::Aes256GcmSiv::new((&key).into());
            let ours = Cipher::new(EncryptionMode::Aes256GcmSiv, &key);
            let sealed = ours.seal(&data, &ad);
            let (nonce, ct) = sealed.split_at(12);
            let payload = aes_gcm_siv::aead::Payload { msg: ct, aad: &ad };
            prop_assert_eq!(portable.decrypt(nonce.into(), payload).unwrap(), data.clone());
            let mut theirs = nonce.to_vec();
            theirs.extend(portable.encrypt(nonce.into(), aes_gcm_siv::aead::Payload { msg: &data, aad: &ad }).unwrap());
            prop_assert_eq!(&theirs, &sealed, "same nonce, same bytes");
            prop_assert_eq!(ours.open(&theirs, &ad, "t").unwrap(), data);
        }
    }

    #[test]
    fn tampering_and_wrong_ad_are_caught() {
        for mode in [EncryptionMode::Aes256GcmSiv, EncryptionMode::XChaCha20Poly1305, EncryptionMode::AuthenticatedOnly]
        {
            let c = Cipher::new(mode, &[1; 32]);
            let s = c.seal(b"hello world", b"ad");
            for i in 0..s.len() {
                let mut t = s.clone();
                t[i] ^= 0x40;
                assert!(c.open(&t, b"ad", "t").is_err());
            }
            assert!(c.open(&s, b"other", "t").is_err());
            assert!(c.open(&s[..5], b"ad", "t").is_err());
            assert!(Cipher::new(mode, &[2; 32]).open(&s, b"ad", "t").is_err());
        }
    }

    /// Authenticated-only objects hold their plaintext as it is (that is the point), and the
    /// tag is what the docs say: a second reader can compute it.
    #[test]
    fn authenticated_only_stores_the_plaintext_and_a_documented_tag() {
        let key = [3u8; 32];
        let c = Cipher::new(EncryptionMode::AuthenticatedOnly, &key);
        let s = c.seal(b"public data", b"arca index v1");
        assert_eq!(s.len(), 16 + 11 + 16);
        assert_eq!(&s[16..27], b"public data");
        assert_ne!(c.seal(b"public data", b"arca index v1"), s, "equal plaintexts, different objects");
        let mac = blake3::derive_key(AUTH_ONLY_CONTEXT, &key);
        let mut framed = (13u64).to_le_bytes().to_vec();
        framed.extend_from_slice(b"arca index v1");
        framed.extend_from_slice(&s[..27]);
        assert_eq!(&s[27..], &blake3::keyed_hash(&mac, &framed).as_bytes()[..16]);
    }
}
