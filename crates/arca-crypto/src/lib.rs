//! Key derivation, AEAD sealing and keyed blob ids. Key bytes never leave this crate except
//! inside sealed objects; they are zeroised on drop.

mod aead;
mod master;
pub mod recipient;
pub mod sign;

pub use aead::Cipher;
pub use master::{
    derive_slot_key, open_slot, open_slot_secret, random_bytes, seal_slot, seal_slot_secret, MasterKey, SlotKey,
};

/// Why a cryptographic operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Authentication failed: wrong key, or the bytes were altered.
    #[error("authentication failed ({what}): wrong key or damaged data")]
    Authentication { what: &'static str },
    /// The sealed bytes are too short to hold a nonce and a tag.
    #[error("{what} is truncated ({len} bytes)")]
    Truncated { what: &'static str, len: usize },
    /// Key-derivation parameters are out of range.
    #[error("invalid key derivation parameters: {0}")]
    Kdf(String),
}
