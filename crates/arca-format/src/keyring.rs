//! Content keys (`keyring/<id>`, format version 2): the keys that seal packs and objects, each
//! numbered, each belonging to one class. Deleting a class's keys shreds its data.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The class of everything written without `--class`.
pub const DEFAULT_CLASS: &str = "";

/// The key number of the master key itself: objects and packs written by format version 1
/// (and, in version 2, the keyring objects and the config body).
pub const MASTER_KEY_NUMBER: u32 = 0;

/// Leads every object sealed in version 2's envelope, before the key number (u32 LE).
pub const ENVELOPE_MAGIC: &[u8; 8] = b"ARCAOBJ2";

/// Magic + key number.
pub const ENVELOPE_PREFIX_LEN: usize = 12;

/// The plaintext of `keyring/<id>`: one content key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentKeyFile {
    /// The number packs' trailers and index entries carry; random, never 0.
    pub number: u32,
    /// The class (`""`: the default class).
    pub class: String,
    /// RFC 3339.
    pub created: String,
    /// Data key (32) ‖ MAC key (32) ‖ chunker seed (u64 LE), as the master key's encoding.
    pub secret: ByteBuf,
}

/// Split a version-2 envelope into its key number and the sealed bytes after it; `None` for
/// a version-1 object (no magic).
pub fn envelope(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let rest = bytes.strip_prefix(&ENVELOPE_MAGIC[..])?;
    let number = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
    Some((number, &rest[4..]))
}

/// The prefix of an object sealed with key `number`.
pub fn envelope_prefix(number: u32) -> [u8; ENVELOPE_PREFIX_LEN] {
    let mut p = [0u8; ENVELOPE_PREFIX_LEN];
    p[..8].copy_from_slice(ENVELOPE_MAGIC);
    p[8..].copy_from_slice(&number.to_le_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip_and_version_1_objects() {
        let mut b = envelope_prefix(0xdead_beef).to_vec();
        b.extend_from_slice(b"sealed");
        assert_eq!(envelope(&b), Some((0xdead_beef, &b"sealed"[..])));
        assert_eq!(envelope(b"random nonce bytes of a v1 object"), None);
        assert_eq!(envelope(b"ARCAOBJ2\x01"), None, "a truncated key number is not an envelope");
    }
}
