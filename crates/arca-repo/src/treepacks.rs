//! Tree packs of a remote repository kept in its local cache directory, as they are uploaded.
//! An unchanged backup reads every tree of its parent, and a restore every tree of its
//! snapshot: over a network each is a round trip (restic keeps its tree packs locally for the
//! same reason). Kept as stored, sealed: a kept blob is opened and verified like a fetched one,
//! so a damaged or altered file is caught, dropped, and the blob fetched again. Packs the index
//! no longer names (pruned) are swept when the index is loaded.
//!
//! Another host's tree packs (a restore on a new machine) are fetched whole the first time one
//! of their trees is read, and kept: one request brings every tree of the pack.

use arca_format::Id;
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

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

/// Tree packs up to this size are fetched whole on a first read (the writer closes tree packs
/// at 1 MiB; one holding a huge directory listing is read by the range instead).
pub const FETCH_WHOLE_MAX: u64 = 4 << 20;

/// Tree packs being fetched whole: the readers of its trees wait for one download, and a
/// pack that could not be fetched or kept (a full or read-only cache) is not tried again this
/// session: its trees are read by the range, as without a cache.
#[derive(Default)]
pub struct Fetches(Mutex<HashMap<Id, Arc<OnceLock<bool>>>>);

impl Fetches {
    /// Run `fetch` for `pack` once in the session; other callers wait for its result.
    pub fn once(&self, pack: &Id, fetch: impl FnOnce() -> bool) -> bool {
        let cell = self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(*pack).or_default().clone();
        let fetched = *cell.get_or_init(fetch);
        if fetched {
            // Later readers find the kept file (and, if it is dropped as damaged, fetch again).
            self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(pack);
        }
        fetched
    }
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
    fn overlapping_fetches_of_one_pack_download_it_once() {
        let fetches = Fetches::default();
        let runs = std::sync::atomic::AtomicU32::new(0);
        let pack = Id([5; 32]);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    assert!(fetches.once(&pack, || {
                        runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(100));
                        true
                    }))
                });
            }
        });
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Once fetched, a pack can be fetched again (its kept copy may be dropped as damaged);
        // one that failed is not tried again.
        assert!(fetches.once(&pack, || true));
        let other = Id([6; 32]);
        assert!(!fetches.once(&other, || false));
        assert!(!fetches.once(&other, || unreachable!("a failed fetch is not repeated")));
    }

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
