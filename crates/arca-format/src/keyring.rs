//! Content keys (`keyring/<id>`, format version 2): the keys that seal packs and objects, each
//! numbered, each belonging to one class. Deleting a class's keys shreds its data.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The class of everything written without `--class`.
pub const DEFAULT_CLASS: &str = "";

/// The key number of the master key itself: objects and packs written by format version 1
/// (and, in version 2, the keyring objects and the config body).
pub const MASTER_KEY_NUMBER: u32 = 0;

/// The key number of the shared key (format version 2): index, lock and mark objects are
/// sealed with it, a key derived from the master key that backup-only keys carry too.
pub const SHARED_KEY_NUMBER: u32 = 1;

/// The envelope number of a `keyring/` object sealed to the repository's recipient key (by a
/// backup-only key) rather than with the master key.
pub const SEALED_TO_RECIPIENT: u32 = u32::MAX;

/// The envelope number of a `keyring/` object holding a content key's metadata key, sealed
/// to the repository's metadata recipient key (for metadata-only keys).
pub const SEALED_TO_METADATA: u32 = u32::MAX - 1;

/// The envelope number of a `keyring/` object holding a content key's summary key, sealed to
/// the repository's summary recipient key (for summary-only keys).
pub const SEALED_TO_SUMMARY: u32 = u32::MAX - 2;

/// True if `number` can name a content key: 0, 1 and the three highest are reserved.
pub fn is_content_key_number(number: u32) -> bool {
    !matches!(
        number,
        MASTER_KEY_NUMBER | SHARED_KEY_NUMBER | SEALED_TO_RECIPIENT | SEALED_TO_METADATA | SEALED_TO_SUMMARY
    )
}

/// The name of a `keyring/` object: the key number as 8 hex digits, then the last 56 hex
/// digits of the BLAKE3 of its bytes. A writer that cannot open the keyring (a backup-only
/// key) still sees which numbers are taken; a server still checks the name against the
/// contents. Objects from before this naming carry the whole hash and stay valid.
pub fn object_name(number: u32, bytes: &[u8]) -> String {
    let hash = blake3::hash(bytes).to_hex();
    format!("{number:08x}{}", &hash.as_str()[8..])
}

/// True if `name` is a valid name of a `keyring/` object with these bytes (either form).
pub fn name_matches(name: &str, bytes: &[u8]) -> bool {
    let hash = blake3::hash(bytes).to_hex();
    name.len() == 64 && (name == hash.as_str() || name[8..] == hash.as_str()[8..])
}

/// The key number a `keyring/` object's name claims (the first 8 hex digits; meaningless for
/// objects named by the whole hash, which only ever rules numbers out needlessly).
pub fn number_in_name(name: &str) -> Option<u32> {
    u32::from_str_radix(name.get(..8)?, 16).ok()
}

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
    /// A backup-only session's key bound to a host: that host's name, and `host_proof`, the
    /// keyed BLAKE3 (with the host key only a key bound to that host holds) of the number
    /// (u32 LE) and the name. A full key checks both, and refuses snapshots sealed with this
    /// key that name another host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_proof: Option<ByteBuf>,
    /// Replaced by `key rotate`: it still opens what it sealed, and nothing new is sealed with
    /// it. Number 0 with `retired` is the master key of before the first rotation (key 0 of
    /// version-1 objects and packs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
    /// It seals trees and snapshot bodies with its metadata key and snapshot digests with its
    /// summary key (both derived from its data key), and those keys are also stored for reader
    /// keys ([`ReaderKeyFile`]). Keys made before reader keys existed do not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub split: bool,
}

/// The plaintext of a `keyring/` object sealed to the metadata or the summary recipient key:
/// one content key's metadata key or summary key, for reader keys, which never see the
/// content key itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderKeyFile {
    /// The content key's number.
    pub number: u32,
    pub class: String,
    /// The metadata key or the summary key (32 bytes).
    pub key: ByteBuf,
    /// As the content key's (a backup-only session's key bound to a host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// With a metadata key: the summary key too (32 bytes), so a metadata-only key reads
    /// everything a summary-only key does (signer certificates are sealed with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_key: Option<ByteBuf>,
    /// A backup-only session's key (counted against the limit of session keys).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub session: bool,
}

/// The message a host proof authenticates.
pub fn host_proof_message(number: u32, host: &str) -> Vec<u8> {
    [&number.to_le_bytes()[..], host.as_bytes()].concat()
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

    #[test]
    fn object_names_carry_the_number_and_match_the_contents() {
        let name = object_name(0x0012_abcd, b"sealed key");
        assert_eq!(number_in_name(&name), Some(0x0012_abcd));
        assert!(name_matches(&name, b"sealed key"));
        assert!(!name_matches(&name, b"other bytes"));
        assert!(name_matches(blake3::hash(b"old").to_hex().as_str(), b"old"), "whole-hash names of older objects");
        assert!(!is_content_key_number(0) && !is_content_key_number(1) && !is_content_key_number(u32::MAX));
        assert!(!is_content_key_number(SEALED_TO_METADATA) && !is_content_key_number(SEALED_TO_SUMMARY));
        assert!(is_content_key_number(2));
    }
}
