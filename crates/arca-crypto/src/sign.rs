//! Signing identities: an Ed25519 key pair per host and user, which signs the statements of
//! the repository's history (docs/FORMAT.md, "History"). Its public half is what an auditor
//! verifies with, without any password.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

/// A public signing key.
pub type PublicKey = [u8; 32];

/// A secret signing key (zeroised on drop by ed25519-dalek).
pub struct Identity(SigningKey);

impl Identity {
    /// A new random identity.
    pub fn generate() -> Identity {
        Identity(SigningKey::from_bytes(&crate::random_bytes::<32>()))
    }

    /// The identity whose secret seed is `secret`.
    pub fn from_secret(secret: &[u8; 32]) -> Identity {
        Identity(SigningKey::from_bytes(secret))
    }

    /// The secret seed, to store (keep it private).
    pub fn secret(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    pub fn public(&self) -> PublicKey {
        self.0.verifying_key().to_bytes()
    }

    /// Sign `message` under `domain` (the domain keeps a signature for one purpose from being
    /// replayed as another).
    pub fn sign(&self, domain: &[u8], message: &[u8]) -> [u8; 64] {
        self.0.sign(&framed(domain, message)).to_bytes()
    }
}

/// Whether `signature` is `public`'s signature of `message` under `domain`. Strict
/// verification: no malleable or small-order encodings pass.
pub fn verify(public: &PublicKey, domain: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public) else { return false };
    let Ok(sig) = Signature::from_slice(signature) else { return false };
    key.verify_strict(&framed(domain, message), &sig).is_ok()
}

fn framed(domain: &[u8], message: &[u8]) -> Vec<u8> {
    [&(domain.len() as u64).to_le_bytes()[..], domain, message].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_key_domain_and_message() {
        let a = Identity::generate();
        let b = Identity::generate();
        let sig = a.sign(b"d", b"hello");
        assert!(verify(&a.public(), b"d", b"hello", &sig));
        assert!(!verify(&b.public(), b"d", b"hello", &sig));
        assert!(!verify(&a.public(), b"e", b"hello", &sig));
        assert!(!verify(&a.public(), b"d", b"hellp", &sig));
        assert!(!verify(&a.public(), b"d", b"hello", &sig[..63]));
        let again = Identity::from_secret(&a.secret());
        assert_eq!(again.public(), a.public());
    }
}
