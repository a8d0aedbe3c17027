//! Index objects: which blob lives in which pack. Each backup session writes its own, so
//! concurrent writers never touch the same object.

use crate::{pack::PackHeaderEntry, Id};
use serde::{Deserialize, Serialize};

/// One pack and the blobs in it (the same entries as the pack's own header).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    pub id: Id,
    /// The pack's total stored size in bytes.
    #[serde(default)]
    pub size: u64,
    /// The number of the content key that sealed the pack, as its trailer says (format
    /// version 2; absent means 0, the master key).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub key: u32,
    pub blobs: Vec<PackHeaderEntry>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Alias for readability where an entry is read from an index rather than a pack.
pub type IndexEntry = PackHeaderEntry;

/// The contents of `index/<id>`, sealed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    pub packs: Vec<IndexPack>,
    /// Index objects whose contents this one includes, so they can be deleted after it is stored.
    #[serde(default)]
    pub supersedes: Vec<Id>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BlobKind;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn index_round_trip(packs in proptest::collection::vec((any::<[u8; 32]>(), any::<u64>(), proptest::collection::vec((any::<[u8; 32]>(), any::<u64>(), any::<u32>()), 0..5)), 0..5)) {
            let f = IndexFile { supersedes: vec![], packs: packs.into_iter().map(|(id, size, blobs)| IndexPack {
                id: Id(id), size, key: size as u32, blobs: blobs.into_iter().map(|(b, off, len)| PackHeaderEntry { kind: BlobKind::Data, id: Id(b), offset: off, length: len, raw_length: len }).collect() }).collect() };
            let bytes = crate::encode("index", &f).unwrap();
            prop_assert_eq!(crate::decode::<IndexFile>("index", &bytes).unwrap(), f);
        }
    }
}
