//! The in-memory index: where each blob lives. Built from all `index/*` objects at open —
//! either into a hash map, or (with a cache directory) as a memory-mapped sorted file plus a
//! hash map for what was added since, so RAM does not grow with the repository.

use crate::index_cache::SortedIndex;
use arca_format::{BlobKind, Id, IndexPack};
use std::collections::{HashMap, HashSet};

/// Where one blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: Id,
    /// The number of the content key that sealed the pack (0 in format version 1).
    pub key: u32,
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
    /// Packs of the hash-map part: id, size, content key number.
    packs: Vec<(Id, u64, u32)>,
    pack_numbers: HashMap<Id, u32>,
    blobs: HashMap<Id, Entry>,
    /// Pack numbers (of the hash-map part) that a prune has marked: their blobs can be read
    /// but must not be deduplicated against.
    retired: HashSet<u32>,
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

    fn pack_number(&mut self, p: &IndexPack) -> u32 {
        match self.pack_numbers.get(&p.id) {
            Some(n) => *n,
            None => {
                let n = self.packs.len() as u32;
                self.packs.push((p.id, p.size, p.key));
                self.pack_numbers.insert(p.id, n);
                n
            }
        }
    }

    /// Add every blob of one pack. A blob already indexed keeps its first location, unless
    /// that location is in a marked pack.
    pub fn add_pack(&mut self, p: &IndexPack) {
        let n = self.pack_number(p);
        self.retired.remove(&n);
        for b in &p.blobs {
            if self.base.as_ref().is_some_and(|base| base.get(&b.id).is_some()) {
                continue;
            }
            let e = Entry { pack: n, kind: b.kind, offset: b.offset, length: b.length, raw_length: b.raw_length };
            match self.blobs.entry(b.id) {
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    if self.retired.contains(&o.get().pack) {
                        o.insert(e);
                    }
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(e);
                }
            }
        }
    }

    /// Add a pack a prune has marked: its blobs can be read (where no live pack has them) but
    /// [`Index::has_live`] does not see them, so nothing new comes to depend on the pack.
    pub fn add_retired_pack(&mut self, p: &IndexPack) {
        if self.pack_numbers.get(&p.id).is_some_and(|n| !self.retired.contains(n)) {
            return;
        }
        let n = self.pack_number(p);
        self.retired.insert(n);
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

    /// Treat pack `id` as marked from now on (a prune about to repack it).
    pub fn retire(&mut self, id: &Id) {
        if let Some(n) = self.pack_numbers.get(id) {
            self.retired.insert(*n);
        }
    }

    /// True if the pack is one a prune has marked.
    pub fn is_retired(&self, id: &Id) -> bool {
        self.pack_numbers.get(id).is_some_and(|n| self.retired.contains(n))
    }

    /// True if blob `id` is in a pack that new data may depend on (deduplication asks this).
    pub fn has_live(&self, id: &Id) -> bool {
        match self.blobs.get(id) {
            Some(e) => !self.retired.contains(&e.pack),
            None => self.base.as_ref().is_some_and(|b| b.get(id).is_some()),
        }
    }

    fn in_base(&self, id: &Id) -> Option<BlobLocation> {
        let base = self.base.as_ref()?;
        base_location(base, &base.get(id)?)
    }

    /// Where blob `id` is, if indexed.
    pub fn get(&self, id: &Id) -> Option<BlobLocation> {
        match self.blobs.get(id) {
            Some(e) => Some(BlobLocation {
                pack: self.packs[e.pack as usize].0,
                key: self.packs[e.pack as usize].2,
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

    /// The stored size of indexed pack `pack`.
    pub fn pack_size(&self, pack: &Id) -> Option<u64> {
        if let Some(n) = self.pack_numbers.get(pack) {
            return Some(self.packs[*n as usize].1);
        }
        self.base.as_ref()?.packs.iter().find(|p| p.0 == *pack).map(|p| p.1)
    }

    /// Every indexed pack (marked ones included) with its size.
    pub fn packs(&self) -> Vec<(Id, u64)> {
        self.packs_with_keys().into_iter().map(|(id, size, _)| (id, size)).collect()
    }

    /// Every indexed pack with its size and the number of the content key that sealed it.
    pub fn packs_with_keys(&self) -> Vec<(Id, u64, u32)> {
        let mut out: Vec<(Id, u64, u32)> = self.base.as_ref().map(|b| b.packs.clone()).unwrap_or_default();
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
                    key: self.packs[e.pack as usize].2,
                    kind: e.kind,
                    offset: e.offset,
                    length: e.length,
                    raw_length: e.raw_length,
                },
            )
        });
        let from_base =
            self.base.iter().flat_map(|b| b.iter().filter_map(move |r| Some((r.id, base_location(b, &r)?))));
        from_map.chain(from_base)
    }
}

/// The location a record of the cache file gives (`None` if it names a pack the file lacks).
fn base_location(base: &SortedIndex, r: &crate::index_cache::Record) -> Option<BlobLocation> {
    let (pack, _, key) = *base.packs.get(r.pack as usize)?;
    Some(BlobLocation { pack, key, kind: r.kind, offset: r.offset as u64, length: r.length, raw_length: r.raw_length })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_format::PackHeaderEntry;

    #[test]
    fn first_location_wins() {
        let mut ix = Index::default();
        let e = |off| PackHeaderEntry { kind: BlobKind::Data, id: Id([1; 32]), offset: off, length: 5, raw_length: 4 };
        ix.add_pack(&IndexPack { id: Id([9; 32]), size: 100, key: 0, blobs: vec![e(0)] });
        ix.add_pack(&IndexPack { id: Id([8; 32]), size: 100, key: 0, blobs: vec![e(7)] });
        let loc = ix.get(&Id([1; 32])).unwrap();
        assert_eq!((loc.pack, loc.offset), (Id([9; 32]), 0));
        assert_eq!(ix.len(), 1);
        assert_eq!(ix.packs().len(), 2);
        assert!(!ix.contains(&Id([2; 32])));
    }

    #[test]
    fn retired_packs_are_readable_but_not_live() {
        let mut ix = Index::default();
        let e =
            |b, off| PackHeaderEntry { kind: BlobKind::Data, id: Id([b; 32]), offset: off, length: 5, raw_length: 4 };
        ix.add_pack(&IndexPack { id: Id([9; 32]), size: 100, key: 0, blobs: vec![e(1, 0)] });
        ix.add_retired_pack(&IndexPack { id: Id([8; 32]), size: 100, key: 0, blobs: vec![e(1, 7), e(2, 9)] });
        assert!(ix.has_live(&Id([1; 32])), "a blob in a live pack stays live");
        assert!(!ix.has_live(&Id([2; 32])) && ix.contains(&Id([2; 32])));
        assert_eq!(ix.get(&Id([2; 32])).unwrap().pack, Id([8; 32]));
        // A new pack with the same blob takes over.
        ix.add_pack(&IndexPack { id: Id([7; 32]), size: 100, key: 0, blobs: vec![e(2, 3)] });
        assert!(ix.has_live(&Id([2; 32])));
        assert_eq!(ix.get(&Id([2; 32])).unwrap().pack, Id([7; 32]));
        assert!(ix.is_retired(&Id([8; 32])) && !ix.is_retired(&Id([9; 32])));
    }
}
