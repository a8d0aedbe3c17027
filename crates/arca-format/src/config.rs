//! The `config` object: a plaintext envelope (magic, version, repository id) around a sealed
//! body that repeats both, so an older arca can refuse a newer repository before asking for a
//! password, and nobody can alter the settings without the key.

use crate::Id;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// First 8 bytes of the `config` object.
pub const CONFIG_MAGIC: &[u8; 8] = b"ARCACFG1";

/// Which AEAD seals objects in this repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncryptionMode {
    XChaCha20Poly1305,
    Aes256GcmSiv,
    /// Authenticated only (`init --encryption none`): objects are stored in the clear with a
    /// keyed BLAKE3 tag, for public data where speed matters more than secrecy. An arca that
    /// does not know it refuses the repository as newer.
    #[serde(rename = "none")]
    AuthenticatedOnly,
}

/// FastCDC sizes in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams { min_size: 512 * 1024, avg_size: 1024 * 1024, max_size: 8 * 1024 * 1024 }
    }
}

/// The sealed body of `config`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    pub repo_id: Id,
    pub chunker: ChunkerParams,
    pub encryption: EncryptionMode,
    /// Default zstd level (0 stores uncompressed).
    pub compression_level: i32,
    /// Target size of a data pack in bytes.
    pub pack_size: u64,
    /// Reed-Solomon parity per pack, in percent of the pack (0: none).
    #[serde(default)]
    pub parity_percent: u32,
}

/// The plaintext envelope of `config`, stored after [`CONFIG_MAGIC`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigFile {
    pub version: u32,
    pub repo_id: Id,
    pub encryption: EncryptionMode,
    /// [`Config`], sealed with the master key.
    pub sealed: ByteBuf,
    /// **(v2)** The recipient public key backup-only keys seal to (32 bytes): one made before
    /// `key rotate` carries the old one and is refused rather than sealing data to a key
    /// nobody holds any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<ByteBuf>,
}

impl ConfigFile {
    /// The stored bytes: magic then MessagePack.
    pub fn to_bytes(&self) -> Result<Vec<u8>, crate::FormatError> {
        let mut out = CONFIG_MAGIC.to_vec();
        out.extend(crate::encode("config", self)?);
        Ok(out)
    }

    /// Parse stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<ConfigFile, crate::FormatError> {
        match bytes.strip_prefix(CONFIG_MAGIC.as_slice()) {
            Some(rest) => crate::decode("config", rest),
            None => {
                Err(crate::FormatError::Invalid { what: "config", reason: "not an arca repository (bad magic)".into() })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn config_round_trip(version: u32, id: [u8; 32], level: i32, pack_size: u64, avg in 256u32..1 << 22, sealed in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100)) {
            let c = Config { version, repo_id: Id(id), chunker: ChunkerParams { min_size: avg / 2, avg_size: avg, max_size: avg * 4 }, parity_percent: 0,
                encryption: EncryptionMode::XChaCha20Poly1305, compression_level: level, pack_size };
            let b = crate::encode("config", &c).unwrap();
            proptest::prop_assert_eq!(crate::decode::<Config>("config", &b).unwrap(), c);
            let f = ConfigFile { version, repo_id: Id(id), encryption: EncryptionMode::Aes256GcmSiv, sealed: ByteBuf::from(sealed), recipient: None };
            proptest::prop_assert_eq!(ConfigFile::from_bytes(&f.to_bytes().unwrap()).unwrap(), f);
        }
    }

    #[test]
    fn config_file_round_trip() {
        let c = ConfigFile {
            version: 1,
            repo_id: Id([3; 32]),
            encryption: EncryptionMode::Aes256GcmSiv,
            sealed: ByteBuf::from(vec![1, 2, 3]),
            recipient: Some(ByteBuf::from(vec![4; 32])),
        };
        assert_eq!(ConfigFile::from_bytes(&c.to_bytes().unwrap()).unwrap(), c);
        assert!(ConfigFile::from_bytes(b"nonsense").is_err());
    }
}
