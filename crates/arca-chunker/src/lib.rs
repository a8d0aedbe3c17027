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
    gear: Vec<u64>,
    gear_ls: Vec<u64>,
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
        let gear = gear_table(seed);
        // The crate's second table is the first shifted left by one (checked against its
        // built-in tables); keep that relation for the derived one.
        let gear_ls = gear.iter().map(|g| g << 1).collect();
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
            &self.gear,
            &self.gear_ls,
        );
        n.max(1)
    }

    /// Chunk a stream.
    pub fn stream<R: Read>(&self, reader: R) -> ChunkStream<'_, R> {
        self.stream_with_buffer(reader, Vec::new())
    }

    /// Chunk a stream using `buf` as the buffer (get it back with
    /// [`ChunkStream::into_buffer`]), so many small files do not allocate one each.
    pub fn stream_with_buffer<R: Read>(&self, reader: R, mut buf: Vec<u8>) -> ChunkStream<'_, R> {
        // Room for a max-size chunk of lookahead plus a quarter of one to read into each time:
        // a refill moves the unread rest (under one max-size chunk, half of one on average)
        // for every ≥ max/4 bytes read — a memmove that costs far less than the 6 MiB more
        // per stream that two whole chunks of room would keep resident. Plus alignment slack.
        let room = self.max + (self.max / 4).max(READ_ALIGN);
        let window = room.div_ceil(READ_ALIGN) * READ_ALIGN + READ_ALIGN;
        buf.resize(window + READ_ALIGN, 0);
        let base = buf.as_ptr().align_offset(READ_ALIGN).min(READ_ALIGN);
        ChunkStream { chunker: self, reader, buf, base, limit: base + window, start: base, end: base, eof: false }
    }
}

/// Chunks of a stream, borrowed from an internal buffer.
pub struct ChunkStream<'a, R> {
    chunker: &'a Chunker,
    reader: R,
    buf: Vec<u8>,
    /// The aligned start of the usable window `buf[base..limit]`.
    base: usize,
    limit: usize,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> ChunkStream<'_, R> {
    fn fill(&mut self) -> io::Result<()> {
        if self.start > self.base {
            // Move the unread rest to the front so that it *ends* on an aligned boundary:
            // the next read then starts aligned.
            let rest = self.end - self.start;
            let to = self.base + (rest.div_ceil(READ_ALIGN) * READ_ALIGN - rest);
            self.buf.copy_within(self.start..self.end, to);
            self.start = to;
            self.end = to + rest;
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
        if !self.eof && self.end - self.start < self.chunker.max {
            self.fill()?;
        }
        if self.start == self.end {
            return Ok(None);
        }
        let n = self.chunker.cut(&self.buf[self.start..self.end]);
        let chunk = &self.buf[self.start..self.start + n];
        self.start += n;
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
