//! MessagePack with named fields: self-describing, so fields can be added later without a
//! format break (unknown fields are ignored, missing ones take their defaults).

use serde::{de::DeserializeOwned, Serialize};

/// A structure could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("cannot encode {what}: {source}")]
    Encode { what: &'static str, source: rmp_serde::encode::Error },
    #[error("malformed {what}: {source}")]
    Decode { what: &'static str, source: rmp_serde::decode::Error },
    #[error("malformed {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

/// Encode `value` as MessagePack with field names.
pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, FormatError> {
    rmp_serde::to_vec_named(value).map_err(|source| FormatError::Encode { what, source })
}

/// Decode MessagePack produced by [`encode`].
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, FormatError> {
    rmp_serde::from_slice(bytes).map_err(|source| FormatError::Decode { what, source })
}
