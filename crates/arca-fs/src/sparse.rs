//! Sparse files: find the data regions with SEEK_DATA/SEEK_HOLE, read only those, and record
//! the holes so a restore can leave them unallocated.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

/// The (offset, length) data regions of `file` of logical size `size`.
pub fn data_regions(file: &File, size: u64) -> io::Result<Vec<(u64, u64)>> {
    let fd = file.as_raw_fd();
    let mut regions = vec![];
    let mut pos: i64 = 0;
    let size = size as i64;
    while pos < size {
        // SAFETY: lseek on a valid open descriptor has no memory-safety preconditions.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break; // only a hole remains
            }
            if e.raw_os_error() == Some(libc::EINVAL) {
                // Filesystem without SEEK_DATA: treat it all as data.
                return Ok(vec![(0, size as u64)]);
            }
            return Err(e);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(io::Error::last_os_error());
        }
        let end = hole.min(size);
        if end > data {
            regions.push((data as u64, (end - data) as u64));
        }
        pos = hole;
    }
    Ok(regions)
}

/// The holes between `regions` in a file of `size` bytes.
pub fn holes_of(regions: &[(u64, u64)], size: u64) -> Vec<(u64, u64)> {
    let mut holes = vec![];
    let mut pos = 0;
    for &(off, len) in regions {
        if off > pos {
            holes.push((pos, off - pos));
        }
        pos = off + len;
    }
    if size > pos {
        holes.push((pos, size - pos));
    }
    holes
}

/// Reads the data regions of a file back to back.
pub struct RegionReader<'a> {
    file: &'a File,
    regions: Vec<(u64, u64)>,
    current: usize,
    done_in_current: u64,
}

impl<'a> RegionReader<'a> {
    /// A reader over `regions` of `file`.
    pub fn new(file: &'a File, regions: Vec<(u64, u64)>) -> Self {
        RegionReader { file, regions, current: 0, done_in_current: 0 }
    }
}

impl Read for RegionReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(&(off, len)) = self.regions.get(self.current) {
            if self.done_in_current >= len {
                self.current += 1;
                self.done_in_current = 0;
                continue;
            }
            let want = (len - self.done_in_current).min(buf.len() as u64) as usize;
            let n = self.file.read_at(&mut buf[..want], off + self.done_in_current)?;
            if n == 0 {
                // The file shrank while being read; report what we have.
                self.current = self.regions.len();
                return Ok(0);
            }
            self.done_in_current += n as u64;
            return Ok(n);
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn finds_regions_and_reads_them() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        let mut f = File::create(&p).unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(&[7u8; 5000]).unwrap();
        f.set_len(4 << 20).unwrap();
        drop(f);
        let f = File::open(&p).unwrap();
        let regions = data_regions(&f, 4 << 20).unwrap();
        let total: u64 = regions.iter().map(|r| r.1).sum();
        assert!((5000..(1 << 20)).contains(&total), "{regions:?}");
        let mut data = vec![];
        RegionReader::new(&f, regions.clone()).read_to_end(&mut data).unwrap();
        assert_eq!(data.len() as u64, total);
        assert!(data.contains(&7));
        let holes = holes_of(&regions, 4 << 20);
        assert_eq!(holes.iter().map(|h| h.1).sum::<u64>() + total, 4 << 20);
    }
}
