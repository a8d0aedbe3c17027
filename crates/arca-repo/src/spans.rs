//! Blobs read by the span. A backup writes a file's chunks, and the files of a directory, one
//! after the other into a pack; reading them back one request per blob costs a round trip
//! each on a network (a restore of 0.3 GB made 1,185 requests) and a system call and seek
//! each on a disk. Neighbouring blobs of one pack are fetched with one request instead, and
//! each is then verified and opened on its own, as [`Repository::read_blob`] would.

use crate::index::BlobLocation;
use crate::{RepoResult, Repository};
use arca_format::{BlobKind, Id};
use std::ops::Range;

/// Neighbours at most this far apart in a pack are fetched together: the gap's bytes are read
/// and dropped, which is cheaper than another round trip (or, on a disk, another seek).
pub const GAP: u64 = 256 * 1024;

/// [`GAP`] where the repository is remote: a round trip costs more than reading a megabyte.
pub const GAP_REMOTE: u64 = 1024 * 1024;

/// A span's most bytes: what one request brings into memory at once.
pub const MAX_SPAN: u64 = 4 * 1024 * 1024;

/// A blob to read, and where it is stored.
#[derive(Clone, Copy, Debug)]
pub struct Wanted {
    pub id: Id,
    pub loc: BlobLocation,
}

/// Split `blobs`, in the order given, into spans: runs of blobs of one pack that lie within
/// `gap` ([`GAP`], [`GAP_REMOTE`]) of what the run covers so far, [`MAX_SPAN`] bytes at most (a blob larger than that
/// is a span of its own). A blob repeated (a file of zeros names one blob many times) joins
/// its run without adding bytes. Returns ranges of indices into `blobs`.
pub fn spans(blobs: &[Wanted], gap: u64) -> Vec<Range<usize>> {
    let mut out = vec![];
    let mut first = 0;
    let (mut start, mut end) = (0u64, 0u64);
    for (i, w) in blobs.iter().enumerate() {
        let off = w.loc.offset;
        // An end past u64 (a damaged index) is a span of its own: its read fails, alone.
        let Some(blob_end) = off.checked_add(w.loc.length as u64) else {
            if i > first {
                out.push(first..i);
            }
            out.push(i..i + 1);
            (first, start, end) = (i + 1, 0, 0);
            continue;
        };
        let joins = i > first
            && w.loc.pack == blobs[first].loc.pack
            && off >= start
            && off <= end.saturating_add(gap)
            && blob_end.max(end) - start <= MAX_SPAN;
        if joins {
            end = end.max(blob_end);
            continue;
        }
        if i > first {
            out.push(first..i);
        }
        (first, start, end) = (i, off, blob_end);
    }
    if first < blobs.len() {
        out.push(first..blobs.len());
    }
    out
}

/// The stored bytes of one span, fetched with one request.
pub struct Span {
    pack: Id,
    start: u64,
    /// `None`: the span's request failed, and each blob is read on its own (so a blob the
    /// failure did not touch, before the cut of a truncated pack say, still reads).
    bytes: Option<Vec<u8>>,
}

impl Span {
    /// Fetch what `span` (one of [`spans`]' runs) covers. A span of several blobs whose
    /// request fails reads its blobs one by one when they are opened.
    pub fn fetch(repo: &Repository, span: &[Wanted]) -> RepoResult<Span> {
        let Some(first) = span.first() else {
            return Err(crate::RepoError::Internal("an empty span fetched"));
        };
        let start = span.iter().map(|w| w.loc.offset).min().unwrap_or(first.loc.offset);
        let end = span.iter().map(|w| w.loc.offset.saturating_add(w.loc.length as u64)).max().unwrap_or(start);
        match repo.read_pack_range(&first.loc.pack, start, end - start) {
            Ok(bytes) => Ok(Span { pack: first.loc.pack, start, bytes: Some(bytes) }),
            Err(_) if span.len() > 1 => Ok(Span { pack: first.loc.pack, start, bytes: None }),
            Err(e) => Err(e),
        }
    }

    /// Verify and open blob `w` (one of the span's) into its contents.
    pub fn open(&self, repo: &Repository, kind: BlobKind, w: &Wanted) -> RepoResult<Vec<u8>> {
        let Some(bytes) = &self.bytes else {
            let sealed = repo.read_pack_range(&w.loc.pack, w.loc.offset, w.loc.length as u64)?;
            return repo.open_blob(kind, &w.id, &w.loc, &sealed);
        };
        let at = w.loc.offset.checked_sub(self.start).and_then(|a| usize::try_from(a).ok());
        let sealed =
            at.and_then(|a| bytes.get(a..a.checked_add(w.loc.length as usize)?)).filter(|_| w.loc.pack == self.pack);
        let Some(sealed) = sealed else {
            return Err(crate::RepoError::Internal("a blob read from a span that does not hold it"));
        };
        repo.open_blob(kind, &w.id, &w.loc, sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(pack: u8, offset: u64, length: u32) -> Wanted {
        let loc =
            BlobLocation { pack: Id([pack; 32]), key: 0, kind: BlobKind::Data, offset, length, raw_length: length };
        Wanted { id: Id([offset as u8; 32]), loc }
    }

    #[test]
    fn neighbours_in_one_pack_are_one_span() {
        let blobs = [at(1, 0, 100), at(1, 100, 100), at(1, 300, 50), at(2, 350, 10), at(2, 360, 10)];
        assert_eq!(spans(&blobs, GAP), vec![0..3, 3..5]);
    }

    #[test]
    fn far_apart_backwards_and_too_long_runs_are_split() {
        let big = MAX_SPAN as u32 / 2 + 1;
        let blobs = [
            at(1, 0, 10),
            at(1, 10 + GAP + 1, 10),     // too far
            at(1, 0, 10),                // backwards, before the run's start
            at(1, 10, big),              // fits
            at(1, 10 + big as u64, big), // would pass MAX_SPAN
        ];
        assert_eq!(spans(&blobs, GAP), vec![0..1, 1..2, 2..4, 4..5]);
    }

    #[test]
    fn an_end_past_u64_is_a_span_of_its_own() {
        let blobs = [at(1, 0, 10), at(1, u64::MAX - 3, 10), at(1, 10, 10)];
        assert_eq!(spans(&blobs, GAP), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn a_repeated_blob_stays_in_its_span() {
        let blobs = [at(1, 0, 10), at(1, 0, 10), at(1, 0, 10), at(1, 10, 10), at(1, 0, 10)];
        assert_eq!(spans(&blobs, GAP), vec![0..5]);
        assert_eq!(spans(&[], GAP), Vec::<Range<usize>>::new());
    }
}
