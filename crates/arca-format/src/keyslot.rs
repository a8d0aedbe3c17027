//! Key slots: `keys/<id>`, each the master key sealed with a key derived from one passphrase.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Argon2id cost parameters, stored so they can be raised later without breaking old slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 32 MiB and 3 passes: about 0.1 s here. The memory is part of every command's peak RSS,
    /// so it is kept at half of the common 64 MiB and paid back with passes.
    fn default() -> Self {
        KdfParams { memory_kib: 32 * 1024, iterations: 3, parallelism: 1 }
    }
}

impl KdfParams {
    /// The most memory a key slot may ask for (2 GiB): a slot planted by the storage or a
    /// hostile key holder must not make every open exhaust the machine.
    pub const MAX_MEMORY_KIB: u32 = 2 * 1024 * 1024;
    /// The most passes, and the most lanes.
    pub const MAX_ITERATIONS: u32 = 64;
    pub const MAX_PARALLELISM: u32 = 64;
    /// The most work (memory × passes, in KiB): 8 GiB-passes, about 20 s here, 250 times the
    /// default.
    pub const MAX_WORK_KIB: u64 = 8 * 1024 * 1024;

    /// Why these parameters are refused, if they are: beyond the caps above, or too small for
    /// Argon2 to accept.
    pub fn refusal(&self) -> Option<String> {
        let work = u64::from(self.memory_kib) * u64::from(self.iterations);
        if self.memory_kib > Self::MAX_MEMORY_KIB
            || self.iterations > Self::MAX_ITERATIONS
            || self.parallelism > Self::MAX_PARALLELISM
            || work > Self::MAX_WORK_KIB
        {
            return Some(format!(
                "asks for Argon2id with {} MiB, {} passes and {} lanes, beyond the limit of {} MiB, {} passes, {} lanes and {} MiB-passes in all",
                self.memory_kib / 1024,
                self.iterations,
                self.parallelism,
                Self::MAX_MEMORY_KIB / 1024,
                Self::MAX_ITERATIONS,
                Self::MAX_PARALLELISM,
                Self::MAX_WORK_KIB / 1024
            ));
        }
        if self.iterations == 0 || self.parallelism == 0 || self.memory_kib < 8 * self.parallelism {
            return Some(format!(
                "asks for Argon2id with {} KiB, {} passes and {} lanes, which Argon2 does not accept",
                self.memory_kib, self.iterations, self.parallelism
            ));
        }
        None
    }
}

/// The role of a full key slot (`KeySlot::role` empty).
pub const ROLE_FULL: &str = "";

/// The role of a backup-only key slot (`key add --backup-only`, format version 2).
pub const ROLE_BACKUP_ONLY: &str = "backup-only";

/// The role of a metadata-only key slot (`key add --metadata-only`): snapshots, names,
/// sizes; no contents.
pub const ROLE_METADATA: &str = "metadata";

/// The role of a summary-only key slot (`key add --summary-only`): hosts, times, sizes; no
/// names.
pub const ROLE_SUMMARY: &str = "summary";

/// What a metadata-only or summary-only key slot seals instead of the master key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderBundle {
    /// 1.
    pub version: u32,
    /// The repository's config (its sealed body is not readable with this key).
    pub config: crate::Config,
    /// The secret of the metadata (metadata-only) or summary (summary-only) recipient key
    /// (32 bytes): it opens the `keyring/` objects sealed to that key.
    pub recipient_secret: ByteBuf,
    /// The repository's X25519 recipient public key (32 bytes) when the key was made: a key
    /// made before `key rotate` names the old one and is refused.
    pub recipient: ByteBuf,
    /// The shared key (32 bytes; metadata-only): the index, to find trees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_key: Option<ByteBuf>,
}

/// The plaintext of a key slot object (its secret part is `sealed_master`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySlot {
    pub version: u32,
    /// Always "argon2id" in version 1.
    pub kdf: String,
    pub params: KdfParams,
    pub salt: ByteBuf,
    /// The master key, XChaCha20-Poly1305 sealed with the derived key.
    pub sealed_master: ByteBuf,
    pub created: String,
    pub hostname: String,
    pub username: String,
    #[serde(default)]
    pub label: String,
    /// [`ROLE_FULL`] (the master key is sealed) or [`ROLE_BACKUP_ONLY`] (a [`BackupBundle`]
    /// is sealed in its place). Omitted for a full key, so older readers see no change.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
}

/// What a backup-only key slot seals instead of the master key: enough to chunk, name and
/// deduplicate blobs, to take part in locking, and to seal new content keys to the
/// repository, but no key that opens anything already stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupBundle {
    /// 1.
    pub version: u32,
    /// The only host name its snapshots may carry (`None`: any).
    pub host: Option<String>,
    /// The repository's config (its sealed body is not readable with this key).
    pub config: crate::Config,
    /// The default class's key with its data key zeroed: MAC key (blob ids) and chunker seed,
    /// 72 bytes as a content key's secret.
    pub template: ByteBuf,
    /// The shared key (32 bytes): index, locks and marks.
    pub shared_key: ByteBuf,
    /// The repository's X25519 recipient public key (32 bytes).
    pub recipient: ByteBuf,
    /// With `host`: the host key (32 bytes) that proves a session key was made by a key
    /// bound to that host (`ContentKeyFile::host_proof`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<ByteBuf>,
    /// The metadata and summary recipient public keys (32 bytes each): with them, the session
    /// keys this key makes split what they seal (`ContentKeyFile::split`) and their reader
    /// keys are stored. Absent in keys made before reader keys existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_recipient: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_recipient: Option<ByteBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn keyslot_round_trips(m: u32, t: u32, p: u32, salt: [u8; 16], sealed in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120), host in ".*", label in ".*") {
            let k = KeySlot { version: 1, kdf: "argon2id".into(), params: KdfParams { memory_kib: m, iterations: t, parallelism: p },
                salt: ByteBuf::from(salt.to_vec()), sealed_master: ByteBuf::from(sealed), created: "c".into(), hostname: host, username: "u".into(), label, role: String::new() };
            let b = crate::encode("key slot", &k).unwrap();
            proptest::prop_assert_eq!(crate::decode::<KeySlot>("key slot", &b).unwrap(), k);
        }
    }

    #[test]
    fn keyslot_round_trip() {
        let k = KeySlot {
            version: 1,
            kdf: "argon2id".into(),
            params: KdfParams::default(),
            salt: ByteBuf::from(vec![9; 16]),
            sealed_master: ByteBuf::from(vec![1; 80]),
            created: "t".into(),
            hostname: "h".into(),
            username: "u".into(),
            label: String::new(),
            role: String::new(),
        };
        let b = crate::encode("key slot", &k).unwrap();
        assert_eq!(crate::decode::<KeySlot>("key slot", &b).unwrap(), k);
        let backup = KeySlot { role: ROLE_BACKUP_ONLY.into(), ..k.clone() };
        let b2 = crate::encode("key slot", &backup).unwrap();
        assert_eq!(crate::decode::<KeySlot>("key slot", &b2).unwrap(), backup);
        assert!(b2.len() > b.len(), "a full slot's encoding has no role field");
    }
}
