//! The in-memory index: where each blob lives. Built from all `index/*` objects at open —
//! either into a hash map, or (with a cache directory) as a memory-mapped sorted file plus a
//! hash map for what was added since, so RAM does not grow with the repository.

use crate::index_cache::SortedIndex;
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
    /// Packs of the hash-map part.
    packs: Vec<(Id, u64)>,
    pack_numbers: HashMap<Id, u32>,
    blobs: HashMap<Id, Entry>,
    /// The memory-mapped part, if a cache is in use.
    base: Option<SortedIndex>,
    /// Index objects this was built from.
    pub files: Vec<Id>,
}

impl Index {
    /// An index on top of a cache file.
    pub fn with_base(base: SortedIndex) -> Index {
        Index { files: base.sources.clone(), base: Some(base), ..Default::default() }
    }

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
            if self.base.as_ref().is_some_and(|base| base.get(&b.id).is_some()) {
                continue;
            }
            self.blobs.entry(b.id).or_insert(Entry {
                pack: n,
                kind: b.kind,
                offset: b.offset,
                length: b.length,
                raw_length: b.raw_length,
            });
        }
    }

    fn in_base(&self, id: &Id) -> Option<BlobLocation> {
        let base = self.base.as_ref()?;
        let r = base.get(id)?;
        let (pack, _) = *base.packs.get(r.pack as usize)?;
        Some(BlobLocation { pack, kind: r.kind, offset: r.offset as u64, length: r.length, raw_length: r.raw_length })
    }

    /// Where blob `id` is, if indexed.
    pub fn get(&self, id: &Id) -> Option<BlobLocation> {
        match self.blobs.get(id) {
            Some(e) => Some(BlobLocation {
                pack: self.packs[e.pack as usize].0,
                kind: e.kind,
                offset: e.offset,
                length: e.length,
                raw_length: e.raw_length,
            }),
            None => self.in_base(id),
        }
    }

    /// True if blob `id` is indexed.
    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id) || self.base.as_ref().is_some_and(|b| b.get(id).is_some())
    }

    /// Number of indexed blobs.
    pub fn len(&self) -> usize {
        self.blobs.len() + self.base.as_ref().map_or(0, |b| b.len())
    }

    /// True if no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every indexed pack with its size.
    pub fn packs(&self) -> Vec<(Id, u64)> {
        let mut out: Vec<(Id, u64)> = self.base.as_ref().map(|b| b.packs.clone()).unwrap_or_default();
        out.extend(self.packs.iter().copied());
        out
    }

    /// Every blob id with its location.
    pub fn iter(&self) -> impl Iterator<Item = (Id, BlobLocation)> + '_ {
        let from_map = self.blobs.iter().map(|(id, e)| {
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
        });
        let from_base = self.base.iter().flat_map(|b| {
            b.iter().filter_map(move |r| {
                let (pack, _) = *b.packs.get(r.pack as usize)?;
                Some((
                    r.id,
                    BlobLocation {
                        pack,
                        kind: r.kind,
                        offset: r.offset as u64,
                        length: r.length,
                        raw_length: r.raw_length,
                    },
                ))
            })
        });
        from_map.chain(from_base)
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
