//! The in-memory index: where each blob lives. Built from all `index/*` objects at open.

use arca_format::{BlobKind, Id, IndexPack};
use std::collections::HashMap;

/// Where one blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: Id,
    pub kind: BlobKind,
    pub offset: u64,
    pub length: u32,
    pub raw_length: u32,
}

/// Compact entry: the pack is a number into `packs`.
#[derive(Clone, Copy)]
struct Entry {
    pack: u32,
    kind: BlobKind,
    offset: u64,
    length: u32,
    raw_length: u32,
}

/// Blob id → location, plus the known packs and their sizes.
#[derive(Default)]
pub struct Index {
    packs: Vec<(Id, u64)>,
    pack_numbers: HashMap<Id, u32>,
    blobs: HashMap<Id, Entry>,
    /// Index objects this was built from.
    pub files: Vec<Id>,
}

impl Index {
    /// Add every blob of one pack. A blob already indexed keeps its first location.
    pub fn add_pack(&mut self, p: &IndexPack) {
        let n = match self.pack_numbers.get(&p.id) {
            Some(n) => *n,
            None => {
                let n = self.packs.len() as u32;
                self.packs.push((p.id, p.size));
                self.pack_numbers.insert(p.id, n);
                n
            }
        };
        for b in &p.blobs {
            self.blobs.entry(b.id).or_insert(Entry {
                pack: n,
                kind: b.kind,
                offset: b.offset,
                length: b.length,
                raw_length: b.raw_length,
            });
        }
    }

    /// Where blob `id` is, if indexed.
    pub fn get(&self, id: &Id) -> Option<BlobLocation> {
        let e = self.blobs.get(id)?;
        Some(BlobLocation {
            pack: self.packs[e.pack as usize].0,
            kind: e.kind,
            offset: e.offset,
            length: e.length,
            raw_length: e.raw_length,
        })
    }

    /// True if blob `id` is indexed.
    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    /// Number of indexed blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// True if no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Every indexed pack with its size.
    pub fn packs(&self) -> &[(Id, u64)] {
        &self.packs
    }

    /// Every blob id with its location.
    pub fn iter(&self) -> impl Iterator<Item = (Id, BlobLocation)> + '_ {
        self.blobs.iter().map(|(id, e)| {
            (
                *id,
                BlobLocation {
                    pack: self.packs[e.pack as usize].0,
                    kind: e.kind,
                    offset: e.offset,
                    length: e.length,
                    raw_length: e.raw_length,
                },
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_format::PackHeaderEntry;

    #[test]
    fn first_location_wins() {
        let mut ix = Index::default();
        let e = |off| PackHeaderEntry { kind: BlobKind::Data, id: Id([1; 32]), offset: off, length: 5, raw_length: 4 };
        ix.add_pack(&IndexPack { id: Id([9; 32]), size: 100, blobs: vec![e(0)] });
        ix.add_pack(&IndexPack { id: Id([8; 32]), size: 100, blobs: vec![e(7)] });
        let loc = ix.get(&Id([1; 32])).unwrap();
        assert_eq!((loc.pack, loc.offset), (Id([9; 32]), 0));
        assert_eq!(ix.len(), 1);
        assert_eq!(ix.packs().len(), 2);
        assert!(!ix.contains(&Id([2; 32])));
    }
}
