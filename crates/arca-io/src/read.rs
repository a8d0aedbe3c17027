//! Sequential whole-file reading with `O_DIRECT` where possible.

use crate::{is_aligned, refused_direct, set_direct};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

/// Reads a file from offset 0 to its end. Each request whose buffer, length and offset are
/// aligned goes straight from the disk into the caller's buffer; the first request that is
/// not (or that the filesystem refuses) turns `O_DIRECT` off for the rest of the file.
/// A caller that wants the direct path passes aligned buffers of aligned length (see
/// `arca_chunker::ChunkStream`, which keeps its reads aligned). The file keeps `O_DIRECT`
/// afterwards (clearing it would cost two more system calls per file): use it on a handle of
/// your own.
pub struct DirectReader<'a> {
    file: &'a File,
    offset: u64,
    direct: bool,
}

impl<'a> DirectReader<'a> {
    /// A reader of `file` from its start; tries to turn `O_DIRECT` on (see [`crate::enabled`]).
    pub fn new(file: &'a File) -> DirectReader<'a> {
        let direct = crate::enabled() && set_direct(file, true).is_ok();
        DirectReader { file, offset: 0, direct }
    }

    /// Read from the start until `buf` is full or the file ends; the bytes read. A direct
    /// read that comes back short has met the end of the file, so a small file costs one
    /// request.
    pub fn read_whole(mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let was_direct = self.direct;
            let n = self.read(&mut buf[filled..])?;
            filled += n;
            if n == 0 || (was_direct && self.direct && n % crate::ALIGN != 0) {
                break;
            }
        }
        Ok(filled)
    }

    /// True while reads bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    fn stop_direct(&mut self) {
        // If even this fails the next read reports the error; nothing is lost.
        let _ = set_direct(self.file, false);
        self.direct = false;
    }
}

impl Read for DirectReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.direct && !is_aligned(buf.as_ptr(), buf.len(), self.offset) {
            self.stop_direct();
        }
        let n = match self.file.read_at(buf, self.offset) {
            Err(e) if self.direct && refused_direct(&e) => {
                self.stop_direct();
                self.file.read_at(buf, self.offset)?
            }
            r => r?,
        };
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AlignedBuf;
    use std::io::Write;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4096) as u8).collect()
    }

    #[test]
    fn reads_whole_files_aligned_or_not() {
        let d = tempfile::tempdir().unwrap();
        for len in [0, 1, 4095, 4096, 3 * 4096 + 17, (1 << 20) + 5] {
            let p = d.path().join(format!("f{len}"));
            File::create(&p).unwrap().write_all(&sample(len)).unwrap();
            // aligned requests (direct where the filesystem allows it)
            let f = File::open(&p).unwrap();
            let mut r = DirectReader::new(&f);
            let started_direct = r.is_direct();
            let mut buf = AlignedBuf::new(64 * 1024);
            let mut got = vec![];
            loop {
                let n = r.read(buf.as_mut_slice()).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf.as_slice()[..n]);
            }
            assert_eq!(got, sample(len), "aligned reads of {len} bytes");
            if len % 4096 == 0 {
                assert_eq!(r.is_direct(), started_direct, "aligned reads keep the direct path");
            }
            // odd-sized requests fall back and still read everything
            let f = File::open(&p).unwrap();
            let mut got = vec![];
            let mut r = DirectReader::new(&f);
            r.read_to_end(&mut got).unwrap();
            assert!(len == 0 || !r.is_direct(), "an unaligned request leaves the direct path");
            // whole-file reads into a big enough buffer, and into one too small
            let f = File::open(&p).unwrap();
            let mut big = AlignedBuf::new(len + 8192);
            let n = DirectReader::new(&f).read_whole(big.as_mut_slice()).unwrap();
            assert_eq!(&big.as_slice()[..n], &sample(len)[..]);
            let f = File::open(&p).unwrap();
            let mut small = AlignedBuf::new(4096);
            let n = DirectReader::new(&f).read_whole(small.as_mut_slice()).unwrap();
            assert_eq!(&small.as_slice()[..n], &sample(len)[..n.min(len)]);
            assert_eq!(n, len.min(4096));
            assert_eq!(got, sample(len), "unaligned reads of {len} bytes");
        }
    }
}
