//! Tree packs of a remote repository kept in its local cache directory, as they are uploaded.
//! An unchanged backup reads every tree of its parent, and a restore every tree of its
//! snapshot: over a network each is a round trip (restic keeps its tree packs locally for the
//! same reason). Kept as stored, sealed: a kept blob is opened and verified like a fetched one,
//! so a damaged or altered file is caught, dropped, and the blob fetched again. Packs the index
//! no longer names (pruned) are swept when the index is loaded.

use arca_format::Id;
use std::collections::HashSet;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The directory of kept tree packs under a repository's cache directory.
fn dir(cache: &Path) -> PathBuf {
    cache.join("treepacks")
}

fn path(cache: &Path, pack: &Id) -> PathBuf {
    dir(cache).join(pack.to_hex())
}

/// Keep `bytes`, the whole of tree pack `pack` (written under a temporary name and renamed, so
/// a reader never sees part of it).
pub fn keep(cache: &Path, pack: &Id, bytes: &[u8]) -> io::Result<()> {
    crate::cachedir::create(&dir(cache))?;
    let final_path = path(cache, pack);
    let tmp = final_path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &final_path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Bytes `offset..offset + length` of kept pack `pack`, if it is kept and that long.
pub fn read(cache: &Path, pack: &Id, offset: u64, length: u32) -> Option<Vec<u8>> {
    let f = std::fs::File::open(path(cache, pack)).ok()?;
    let mut buf = vec![0u8; length as usize];
    f.read_exact_at(&mut buf, offset).ok()?;
    Some(buf)
}

/// Drop kept pack `pack` (found damaged).
pub fn forget(cache: &Path, pack: &Id) {
    let _ = std::fs::remove_file(path(cache, pack));
}

/// Drop every kept pack that `live` does not name, and temporaries left by a crash.
pub fn sweep(cache: &Path, live: &HashSet<Id>) {
    let Ok(entries) = std::fs::read_dir(dir(cache)) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let keep = name.to_str().and_then(Id::from_hex).is_some_and(|id| live.contains(&id));
        if !keep && name != "CACHEDIR.TAG" {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// True if any pack is kept (the sweep is skipped otherwise).
pub fn any(cache: &Path) -> bool {
    std::fs::read_dir(dir(cache)).is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name() != "CACHEDIR.TAG")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_read_by_range_and_swept_when_no_longer_live() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (Id([1; 32]), Id([2; 32]));
        keep(d.path(), &a, b"0123456789").unwrap();
        keep(d.path(), &b, b"abcdef").unwrap();
        assert_eq!(read(d.path(), &a, 2, 3).unwrap(), b"234");
        assert!(read(d.path(), &a, 8, 3).is_none(), "past the end");
        assert!(read(d.path(), &Id([3; 32]), 0, 1).is_none());
        std::fs::write(dir(d.path()).join("x.tmp-1"), b"left by a crash").unwrap();
        sweep(d.path(), &HashSet::from([b]));
        assert!(read(d.path(), &a, 0, 1).is_none(), "pruned pack swept");
        assert_eq!(read(d.path(), &b, 0, 6).unwrap(), b"abcdef");
        assert_eq!(std::fs::read_dir(dir(d.path())).unwrap().count(), 2, "pack b and the tag");
        forget(d.path(), &b);
        assert!(!any(d.path()));
    }
}
