//! Direct I/O for the bulk paths — reading large source files in a backup and writing pack
//! files — so the bytes move between the disk and a few reused buffers of ours without
//! passing through the page cache.
//!
//! Why: a backup reads each source byte once and writes each pack once and syncs it; caching
//! them only evicts what the machine's own programs had cached (borg drops them with
//! `posix_fadvise` for the same reason). On the benchmark machine, filling fresh page-cache
//! pages was also the largest single CPU cost of a first backup (docs/BENCHMARKS.md).
//!
//! Everything falls back to ordinary buffered I/O where the filesystem refuses `O_DIRECT`
//! (tmpfs, many FUSE filesystems) or a request is not aligned, so callers never need to care.
//! Set `ARCA_DIRECT_IO=0` to turn it off (for comparison, or a filesystem that misbehaves).

mod buf;
mod read;
mod write;

pub use buf::AlignedBuf;
pub use read::DirectReader;
pub use write::DirectWriter;

use std::fs::File;
use std::os::unix::io::AsRawFd;

/// Alignment of memory, file offsets and lengths for `O_DIRECT` (the largest logical block
/// size in common use; 512-byte devices accept it too).
pub const ALIGN: usize = 4096;

/// True unless `ARCA_DIRECT_IO=0`.
pub fn enabled() -> bool {
    std::env::var_os("ARCA_DIRECT_IO").is_none_or(|v| v != "0")
}

/// True if a transfer of `len` bytes at `ptr` and file offset `offset` meets `O_DIRECT`'s
/// alignment rules.
pub fn is_aligned(ptr: *const u8, len: usize, offset: u64) -> bool {
    (ptr as usize).is_multiple_of(ALIGN) && len.is_multiple_of(ALIGN) && offset.is_multiple_of(ALIGN as u64)
}

/// Turn `O_DIRECT` on or off for an open file. Fails where the filesystem does not support it.
pub fn set_direct(file: &File, on: bool) -> std::io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl with F_GETFL/F_SETFL on a valid open descriptor has no memory-safety
    // preconditions.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let new = if on { flags | libc::O_DIRECT } else { flags & !libc::O_DIRECT };
    // SAFETY: as above.
    if new != flags && unsafe { libc::fcntl(fd, libc::F_SETFL, new) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// True for the error a filesystem or device gives for a direct transfer it cannot do.
fn refused_direct(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}
