//! Sequential writing of a new file with `O_DIRECT` where possible.

use crate::{refused_direct, set_direct, AlignedBuf};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Writes a new file front to back through one aligned buffer: full buffers go to the disk
/// directly, the unaligned tail goes through the page cache at [`DirectWriter::finish`],
/// which also syncs the file. Where the filesystem refuses `O_DIRECT` it writes normally.
pub struct DirectWriter {
    file: File,
    buf: AlignedBuf,
    fill: usize,
    offset: u64,
    direct: bool,
}

impl DirectWriter {
    /// A writer to the start of `file` (freshly created, opened for writing) with a buffer of
    /// `buf_len` bytes.
    pub fn new(file: File, buf_len: usize) -> DirectWriter {
        DirectWriter::with_buffer(file, AlignedBuf::new(buf_len))
    }

    /// A writer using `buf` (get it back from [`DirectWriter::finish_unsynced`]), so writing
    /// many files does not allocate a buffer each.
    pub fn with_buffer(file: File, buf: AlignedBuf) -> DirectWriter {
        let direct = crate::enabled() && set_direct(&file, true).is_ok();
        DirectWriter { file, buf, fill: 0, offset: 0, direct }
    }

    /// Bytes accepted so far.
    pub fn len(&self) -> u64 {
        self.offset + self.fill as u64
    }

    /// True if nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append `data`.
    pub fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let room = self.buf.len() - self.fill;
            let n = room.min(data.len());
            self.buf.as_mut_slice()[self.fill..self.fill + n].copy_from_slice(&data[..n]);
            self.fill += n;
            data = &data[n..];
            if self.fill == self.buf.len() {
                self.flush_buffer()?;
            }
        }
        Ok(())
    }

    fn flush_buffer(&mut self) -> io::Result<()> {
        let r = self.file.write_all_at(&self.buf.as_slice()[..self.fill], self.offset);
        match r {
            Err(e) if self.direct && refused_direct(&e) => {
                set_direct(&self.file, false)?;
                self.direct = false;
                self.file.write_all_at(&self.buf.as_slice()[..self.fill], self.offset)?;
            }
            r => r?,
        }
        self.offset += self.fill as u64;
        self.fill = 0;
        Ok(())
    }

    /// Write what is buffered, sync the file to stable storage, and hand it back.
    pub fn finish(self) -> io::Result<File> {
        let (file, _) = self.finish_unsynced()?;
        file.sync_all()?;
        Ok(file)
    }

    /// Write what is buffered (the whole blocks of it directly, the last partial block
    /// through the page cache) without syncing; the file (with `O_DIRECT` off again) and the
    /// buffer for reuse.
    pub fn finish_unsynced(mut self) -> io::Result<(File, AlignedBuf)> {
        let whole = self.fill / crate::ALIGN * crate::ALIGN;
        if self.direct && whole > 0 && whole < self.fill {
            let tail = self.fill - whole;
            let fill = self.fill;
            self.fill = whole;
            self.flush_buffer()?;
            self.buf.as_mut_slice().copy_within(whole..fill, 0);
            self.fill = tail;
        }
        if self.direct {
            // What is left is not a whole number of blocks: write it through the page cache.
            set_direct(&self.file, false)?;
            self.direct = false;
        }
        if self.fill > 0 {
            self.flush_buffer()?;
        }
        Ok((self.file, self.buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_exact_bytes_in_any_pieces() {
        let d = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(3 << 20) + 123).map(|i: usize| (i % 251) as u8).collect();
        for piece in [1usize, 999, 4096, 1 << 20, 5 << 20] {
            // unsynced, with a reused buffer
            let p = d.path().join(format!("u{piece}"));
            let mut w = DirectWriter::with_buffer(File::create(&p).unwrap(), AlignedBuf::new(64 * 1024));
            for c in data[..data.len() - piece.min(1000)].chunks(piece) {
                w.write_all(c).unwrap();
            }
            let (_, buf) = w.finish_unsynced().unwrap();
            assert_eq!(
                std::fs::read(&p).unwrap(),
                &data[..data.len() - piece.min(1000)],
                "unsynced, pieces of {piece}"
            );
            assert_eq!(buf.len(), 64 * 1024);
            let p = d.path().join(format!("w{piece}"));
            let mut w = DirectWriter::new(File::create(&p).unwrap(), 64 * 1024);
            for c in data.chunks(piece) {
                w.write_all(c).unwrap();
            }
            assert_eq!(w.len(), data.len() as u64);
            w.finish().unwrap();
            assert_eq!(std::fs::read(&p).unwrap(), data, "pieces of {piece}");
        }
    }
}
