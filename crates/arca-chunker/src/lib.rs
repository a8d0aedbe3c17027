//! Content-defined chunking: FastCDC 2020 (the `fastcdc` crate's cut routine) with a gear
//! table derived from the repository's secret seed, and a streaming reader that keeps one
//! buffer per stream and moves at most `max_size` bytes per refill (the crate's own `StreamCDC`
//! shifts its whole buffer after every chunk, which costs several copies per byte).
//!
//! The table is 256 values from BLAKE3 in key-derivation mode over the seed, not the crate's
//! public table XORed with the seed: with a keyed table, chunk boundaries (and so chunk sizes,
//! which a storage provider sees) reveal nothing about contents to someone without the key.

use fastcdc::v2020::{cut_gear, select_masks, Normalization};
use std::io::{self, Read};

/// Reads into a stream's buffer start at an address and ask for a length that are multiples
/// of this, so the reader may move the bytes with `O_DIRECT` (`arca_io::DirectReader`).
pub const READ_ALIGN: usize = 4096;

/// Chunk sizes outside what FastCDC 2020 supports.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidParams(pub String);

impl std::fmt::Display for InvalidParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid chunker parameters: {}", self.0)
    }
}
impl std::error::Error for InvalidParams {}

/// 256 gear values derived from the seed: BLAKE3 `derive_key("arca chunker gear v1", seed)`
/// extended to 2048 bytes, read as little-endian u64s.
pub fn gear_table(seed: u64) -> Vec<u64> {
    let mut h = blake3::Hasher::new_derive_key("arca chunker gear v1");
    h.update(&seed.to_le_bytes());
    let mut bytes = [0u8; 256 * 8];
    h.finalize_xof().fill(&mut bytes);
    bytes.chunks_exact(8).map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect()
}

/// A configured chunker. Cheap to share across threads by reference.
pub struct Chunker {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
}

/// Where a cut search over a growing chunk stopped: the next pair of bytes to test and the
/// rolling hash so far (which depends only on the last 64 bytes, so it can be carried over).
#[derive(Clone, Copy, Default)]
struct Scan {
    pair: usize,
    hash: u64,
}

impl Chunker {
    /// A chunker with sizes in bytes and the repository's seed.
    pub fn new(min: usize, avg: usize, max: usize, seed: u64) -> Result<Chunker, InvalidParams> {
        use fastcdc::v2020::{AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN};
        let valid = (MINIMUM_MIN..=MINIMUM_MAX).contains(&min)
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&avg)
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&max)
            && min <= avg
            && avg <= max;
        if !valid {
            return Err(InvalidParams(format!("min {min}, avg {avg}, max {max}")));
        }
        let (mask_s, mask_l) = select_masks(avg, Normalization::Level1);
        let mut gear = Box::new([0u64; 256]);
        gear.copy_from_slice(&gear_table(seed));
        // The crate's second table is the first shifted left by one (checked against its
        // built-in tables); keep that relation for the derived one.
        let gear_ls = Box::new(gear.map(|g| g << 1));
        Ok(Chunker { min, avg, max, mask_s, mask_l, gear, gear_ls })
    }

    /// Largest chunk this chunker produces.
    pub fn max_size(&self) -> usize {
        self.max
    }

    /// Length of the next chunk at the start of `data`, assuming `data` is either at least
    /// `max_size` long or the end of the stream.
    pub fn cut(&self, data: &[u8]) -> usize {
        if data.len() <= self.min {
            return data.len();
        }
        let (_, n) = cut_gear(
            data,
            self.min,
            self.avg,
            self.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear[..],
            &self.gear_ls[..],
        );
        n.max(1)
    }

    /// [`Chunker::cut`] for a chunk whose bytes arrive in pieces: `data` is the chunk so far,
    /// `scan` where the search over a shorter `data` stopped. Returns the cut, or `None` if
    /// there is none in `data` yet (and `data` is shorter than a max-size chunk): call again
    /// with more. The same arithmetic as the crate's `cut_gear` (a test holds them equal),
    /// written out because that routine cannot resume: restarting it from the chunk's start
    /// after every read cost a large-file backup a third more chunking CPU.
    fn cut_resume(&self, data: &[u8], scan: &mut Scan) -> Option<usize> {
        let remaining = data.len().min(self.max);
        if remaining <= self.min {
            return (data.len() >= self.max).then_some(remaining.max(1));
        }
        if scan.pair < self.min / 2 {
            *scan = Scan { pair: self.min / 2, hash: 0 };
        }
        let src = &data[..remaining];
        let (gear, gear_ls) = (&*self.gear, &*self.gear_ls);
        let (mut i, mut hash) = (scan.pair, scan.hash);
        let found = 'search: {
            for (limit, mask, mask_ls) in [
                (self.avg.min(remaining) / 2, self.mask_s, self.mask_s << 1),
                (remaining / 2, self.mask_l, self.mask_l << 1),
            ] {
                while i < limit {
                    let a = i * 2;
                    hash = (hash << 2).wrapping_add(gear_ls[src[a] as usize]);
                    if hash & mask_ls == 0 {
                        break 'search Some(a);
                    }
                    hash = hash.wrapping_add(gear[src[a + 1] as usize]);
                    if hash & mask == 0 {
                        break 'search Some(a + 1);
                    }
                    i += 1;
                }
            }
            None
        };
        *scan = Scan { pair: i, hash };
        match found {
            Some(n) => Some(n.max(1)),
            None if data.len() >= self.max => Some(remaining),
            None => None,
        }
    }

    /// Chunk a stream.
    pub fn stream<R: Read>(&self, reader: R) -> ChunkStream<'_, R> {
        self.stream_with_buffer(reader, Vec::new())
    }

    /// Chunk a stream using `buf` as the buffer (get it back with
    /// [`ChunkStream::into_buffer`]), so many small files do not allocate one each.
    pub fn stream_with_buffer<R: Read>(&self, reader: R, mut buf: Vec<u8>) -> ChunkStream<'_, R> {
        let aligned = |n: usize| n.div_ceil(READ_ALIGN) * READ_ALIGN;
        // At most a max-size chunk plus a quarter of one to read into, plus alignment slack.
        let full = aligned(self.max + (self.max / 4).max(READ_ALIGN)) + READ_ALIGN;
        if buf.len() < full + READ_ALIGN {
            // Zeroed by the allocator from fresh pages: only the pages reads reach become
            // resident, so a stream whose chunks stay short never pays for the full window.
            buf = vec![0u8; full + READ_ALIGN];
        }
        let base = buf.as_ptr().align_offset(READ_ALIGN).min(READ_ALIGN);
        let window = aligned(4 * self.avg).max(2 * READ_ALIGN).min(full);
        ChunkStream {
            chunker: self,
            reader,
            buf,
            base,
            limit: base + window,
            full_limit: base + full,
            start: base,
            end: base,
            eof: false,
            scan: Scan::default(),
        }
    }
}

/// Chunks of a stream, borrowed from an internal buffer.
///
/// The buffer is read as far as its window allows and cut as long as a cut falls inside the
/// bytes read; only when it does not is the unread tail (less than one chunk) moved to the
/// front to make room, and the search goes on where it stopped. Moving a max-size chunk of
/// lookahead before every refill instead cost 7% of a large-file backup's CPU in memmove. The
/// window starts at four average chunks and grows (up to a max-size chunk and a quarter) only
/// when one chunk does not fit.
pub struct ChunkStream<'a, R> {
    chunker: &'a Chunker,
    reader: R,
    buf: Vec<u8>,
    /// The aligned start of the usable window `buf[base..limit]`.
    base: usize,
    limit: usize,
    /// How far `limit` may grow.
    full_limit: usize,
    start: usize,
    end: usize,
    eof: bool,
    /// How far the search for the current chunk's end has got.
    scan: Scan,
}

impl<R: Read> ChunkStream<'_, R> {
    /// Make room at the end of the window (move the unread tail to the front, or grow the
    /// window when the tail fills it) and read until the window is full or the stream ends.
    fn fill(&mut self) -> io::Result<()> {
        if self.end == self.limit && self.start > self.base {
            // Move the unread rest to the front so that it *ends* on an aligned boundary:
            // the next read then starts aligned.
            let rest = self.end - self.start;
            let to = self.base + (rest.div_ceil(READ_ALIGN) * READ_ALIGN - rest);
            self.buf.copy_within(self.start..self.end, to);
            self.start = to;
            self.end = to + rest;
        }
        if self.end == self.limit {
            if self.limit == self.full_limit {
                return Err(io::Error::other("chunker window full without a cut (internal error)"));
            }
            self.limit = (self.base + 2 * (self.limit - self.base)).min(self.full_limit);
        }
        while !self.eof && self.end < self.limit {
            match self.reader.read(&mut self.buf[self.end..self.limit]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next chunk, or `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        let n = loop {
            let avail = self.end - self.start;
            if avail == 0 && self.eof {
                return Ok(None);
            }
            if avail > 0 {
                // A cut found in the bytes read is where a cut over the whole stream falls;
                // at the stream's end the rest is the last chunk.
                match self.chunker.cut_resume(&self.buf[self.start..self.end], &mut self.scan) {
                    Some(n) => break n,
                    None if self.eof => break avail,
                    None => {}
                }
            }
            self.fill()?;
        };
        let chunk = &self.buf[self.start..self.start + n];
        self.start += n;
        self.scan = Scan::default();
        Ok(Some(chunk))
    }

    /// The buffer, for the next stream.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn chunks(c: &Chunker, data: &[u8]) -> Vec<Vec<u8>> {
        let mut s = c.stream(data);
        let mut out = vec![];
        while let Some(ch) = s.next_chunk().unwrap() {
            out.push(ch.to_vec());
        }
        out
    }

    proptest! {
        #[test]
        fn reassembles_and_is_deterministic(len in 0usize..200_000, seed: u64, dseed: u64) {
            let c = Chunker::new(1024, 4096, 16384, seed).unwrap();
            let data = pseudo_random(len, dseed);
            let a = chunks(&c, &data);
            prop_assert_eq!(a.concat(), data.clone());
            for ch in &a[..a.len().saturating_sub(1)] {
                prop_assert!(ch.len() >= 1024 && ch.len() <= 16384);
            }
            prop_assert_eq!(chunks(&c, &data), a);
        }
    }

    /// Chunk lengths of `data` cut in one piece, the way a small file is stored.
    fn whole_cuts(c: &Chunker, data: &[u8]) -> Vec<usize> {
        let mut rest = data;
        let mut out = vec![];
        while !rest.is_empty() {
            let n = c.cut(rest);
            out.push(n);
            rest = &rest[n..];
        }
        out
    }

    /// A reader that hands out at most `step` bytes per call, like a pipe.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.data.len()).min(self.step);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    proptest! {
        /// Streaming must cut exactly where cutting the whole data at once does — for short
        /// reads, and for runs without a cut point (max-size chunks, which grow the window):
        /// otherwise a file stored whole and the same bytes streamed would not deduplicate.
        #[test]
        fn streaming_cuts_where_whole_data_cuts(
            parts in proptest::collection::vec((0u8..3, 1usize..40_000), 1..12),
            step in 1usize..70_000,
            seed: u64,
        ) {
            let c = Chunker::new(1024, 4096, 32768, seed).unwrap();
            let mut data = vec![];
            for (i, (kind, len)) in parts.iter().enumerate() {
                match kind {
                    0 => data.extend(pseudo_random(*len, i as u64 + 1)),
                    1 => data.extend(std::iter::repeat_n(0u8, *len * 2)),
                    _ => data.extend(b"periodic text ".iter().cycle().take(*len)),
                }
            }
            let mut s = c.stream(Trickle { data: &data, step });
            let mut lens = vec![];
            while let Some(ch) = s.next_chunk().unwrap() {
                lens.push(ch.len());
            }
            prop_assert_eq!(lens, whole_cuts(&c, &data));
        }
    }

    #[test]
    fn a_search_resumed_after_a_refill_cuts_where_one_pass_does() {
        // A 16 KiB window over 4 MiB: each of ~256 refills per seed interrupts a search,
        // which must go on with the hash it had (a fresh hash cuts elsewhere now and then).
        for seed in 0..8 {
            let c = Chunker::new(1024, 4096, 256 * 1024, seed).unwrap();
            let data = pseudo_random(4 << 20, seed + 100);
            let mut s = c.stream(&data[..]);
            let mut lens = vec![];
            while let Some(ch) = s.next_chunk().unwrap() {
                lens.push(ch.len());
            }
            assert_eq!(lens, whole_cuts(&c, &data), "seed {seed}");
        }
    }

    #[test]
    fn a_stream_of_short_chunks_touches_only_its_initial_window() {
        let c = Chunker::new(1024, 4096, 1 << 20, 8).unwrap();
        let data = pseudo_random(1 << 20, 3);
        let mut s = c.stream(&data[..]);
        while s.next_chunk().unwrap().is_some() {}
        // Chunks average 4 KiB here: the window (16 KiB at first) may double for a rare long
        // one but stays far from the 1.25 MiB a max-size chunk would need.
        assert!(s.limit - s.base <= 64 * 1024, "window grew to {}", s.limit - s.base);
        let zeros = vec![0u8; 3 << 20];
        let mut s = c.stream(&zeros[..]);
        let mut lens = vec![];
        while let Some(ch) = s.next_chunk().unwrap() {
            lens.push(ch.len());
        }
        assert_eq!(lens, vec![1 << 20; 3], "no cut point in zeros: max-size chunks");
    }

    #[test]
    fn boundaries_resynchronise_after_an_insert() {
        let c = Chunker::new(2048, 8192, 65536, 42).unwrap();
        let data = pseudo_random(1 << 20, 7);
        let mut shifted = vec![1u8; 100];
        shifted.extend_from_slice(&data);
        let a: std::collections::HashSet<_> = chunks(&c, &data).into_iter().collect();
        let b = chunks(&c, &shifted);
        let new: usize = b.iter().filter(|ch| !a.contains(*ch)).map(|ch| ch.len()).sum();
        assert!(new < 3 * 65536, "{new} new bytes after a 100-byte insert");
    }

    /// A reader that records whether every request was aligned for O_DIRECT.
    struct AlignChecker<'a> {
        data: &'a [u8],
        unaligned: usize,
    }

    impl Read for AlignChecker<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !(buf.as_ptr() as usize).is_multiple_of(READ_ALIGN) || !buf.len().is_multiple_of(READ_ALIGN) {
                self.unaligned += 1;
            }
            let n = buf.len().min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn reads_stay_aligned_for_direct_io() {
        for (min, avg, max) in [(2048, 8192, 65536), (1024, 4096, 10_000)] {
            let c = Chunker::new(min, avg, max, 3).unwrap();
            let data = pseudo_random(3 << 20, 5);
            let mut r = AlignChecker { data: &data, unaligned: 0 };
            let mut s = c.stream_with_buffer(&mut r, vec![0u8; 17]);
            let mut out = vec![];
            while let Some(ch) = s.next_chunk().unwrap() {
                out.extend_from_slice(ch);
            }
            drop(s);
            assert_eq!(out, data);
            assert_eq!(r.unaligned, 0, "every read aligned (max {max})");
        }
    }

    #[test]
    fn seed_changes_boundaries() {
        let data = pseudo_random(1 << 20, 9);
        let a = chunks(&Chunker::new(2048, 8192, 65536, 1).unwrap(), &data);
        let b = chunks(&Chunker::new(2048, 8192, 65536, 2).unwrap(), &data);
        assert_ne!(a.iter().map(Vec::len).collect::<Vec<_>>(), b.iter().map(Vec::len).collect::<Vec<_>>());
    }

    #[test]
    fn gear_tables_are_keyed() {
        let (a, b) = (gear_table(1), gear_table(2));
        assert_eq!(a.len(), 256);
        assert_eq!(a, gear_table(1));
        assert_ne!(a, b);
        assert!(a.iter().zip(&b).all(|(x, y)| x != y), "tables share no structure");
    }

    #[test]
    fn rejects_bad_params() {
        assert!(Chunker::new(10, 4096, 16384, 0).is_err());
        assert!(Chunker::new(8192, 4096, 16384, 0).is_err());
        assert!(Chunker::new(1024, 4096, 1 << 30, 0).is_err());
    }
}
