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
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn keyslot_round_trips(m: u32, t: u32, p: u32, salt: [u8; 16], sealed in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120), host in ".*", label in ".*") {
            let k = KeySlot { version: 1, kdf: "argon2id".into(), params: KdfParams { memory_kib: m, iterations: t, parallelism: p },
                salt: ByteBuf::from(salt.to_vec()), sealed_master: ByteBuf::from(sealed), created: "c".into(), hostname: host, username: "u".into(), label };
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
        };
        let b = crate::encode("key slot", &k).unwrap();
        assert_eq!(crate::decode::<KeySlot>("key slot", &b).unwrap(), k);
    }
}
