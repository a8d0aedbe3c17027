//! Packs: sealed blobs back to back, then the sealed header, then a fixed 16-byte trailer.
//!
//! ```text
//! [blob]* [sealed header] [data key: u32 LE] [header length: u32 LE] [PACK_MAGIC: 8 bytes]
//! ```
//! A pack can be re-indexed from itself alone: read the trailer, then the header.

use crate::Id;
use serde::{Deserialize, Serialize};

/// Last 8 bytes of every pack.
pub const PACK_MAGIC: &[u8; 8] = b"ARCAPAK1";
/// Size of the fixed trailer at the end of a pack.
pub const PACK_TRAILER_LEN: usize = 16;
/// Data key number 0 is the repository's master data key; others are reserved for per-session
/// and per-class keys.
pub const MASTER_DATA_KEY: u32 = 0;

/// What a blob holds. Trees go to tree packs, data to data packs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    Data,
    Tree,
}

impl BlobKind {
    /// The byte used in associated data when sealing.
    pub fn tag(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
        }
    }
}

/// One blob's place in a pack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackHeaderEntry {
    pub kind: BlobKind,
    pub id: Id,
    /// Byte offset of the sealed blob from the start of the pack.
    pub offset: u64,
    /// Length of the sealed blob.
    pub length: u32,
    /// Length of the plaintext before compression.
    pub raw_length: u32,
}

/// The header at the end of a pack.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackHeader {
    pub blobs: Vec<PackHeaderEntry>,
}

/// The fixed trailer of a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackTrailer {
    pub data_key: u32,
    pub header_length: u32,
}

impl PackTrailer {
    /// The 16 trailer bytes.
    pub fn to_bytes(self) -> [u8; PACK_TRAILER_LEN] {
        let mut out = [0u8; PACK_TRAILER_LEN];
        out[..4].copy_from_slice(&self.data_key.to_le_bytes());
        out[4..8].copy_from_slice(&self.header_length.to_le_bytes());
        out[8..].copy_from_slice(PACK_MAGIC);
        out
    }

    /// Parse the last 16 bytes of a pack; `None` if the magic is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Option<PackTrailer> {
        if bytes.len() != PACK_TRAILER_LEN || &bytes[8..] != PACK_MAGIC {
            return None;
        }
        let data_key = u32::from_le_bytes(bytes[..4].try_into().ok()?);
        let header_length = u32::from_le_bytes(bytes[4..8].try_into().ok()?);
        Some(PackTrailer { data_key, header_length })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn trailer_round_trip(data_key: u32, header_length: u32) {
            let t = PackTrailer { data_key, header_length };
            prop_assert_eq!(PackTrailer::from_bytes(&t.to_bytes()), Some(t));
        }

        #[test]
        fn header_round_trip(entries in proptest::collection::vec((any::<[u8; 32]>(), any::<u64>(), any::<u32>(), any::<u32>(), any::<bool>()), 0..20)) {
            let h = PackHeader { blobs: entries.into_iter().map(|(id, offset, length, raw_length, tree)| PackHeaderEntry {
                kind: if tree { BlobKind::Tree } else { BlobKind::Data }, id: Id(id), offset, length, raw_length }).collect() };
            let bytes = crate::encode("pack header", &h).unwrap();
            prop_assert_eq!(crate::decode::<PackHeader>("pack header", &bytes).unwrap(), h);
        }
    }

    #[test]
    fn trailer_rejects_bad_magic() {
        let mut b = PackTrailer { data_key: 0, header_length: 5 }.to_bytes();
        b[15] ^= 1;
        assert!(PackTrailer::from_bytes(&b).is_none());
        assert!(PackTrailer::from_bytes(&b[..3]).is_none());
    }
}
