//! A repository in a local directory. Objects are written to a temporary name, synced, renamed
//! into place and the directory synced, so a crash or power loss never leaves a torn object
//! under a real name.

use arca_storage::{ObjectKind, ObjectWriter, Storage, StorageError, StorageResult};
use rand::RngCore;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Marks temporary files; listings skip them.
const TMP_MARK: &str = ".tmp-";

/// Buffer of a streamed object's writer: whole buffers go to the disk with O_DIRECT.
const WRITE_BUFFER: usize = 1 << 20;

/// Open files kept for range reads: a restore reads many blobs from each pack, and opening
/// the pack for every blob cost a path lookup each time.
const OPEN_FILES: usize = 64;

/// A repository rooted at a directory.
pub struct LocalStorage {
    root: PathBuf,
    /// Modes of new directories and files: private to the owner (key slots can be attacked
    /// offline by whoever reads them), plus the group bits the repository's root directory
    /// already has (a repository shared by a group on purpose stays shared).
    dir_mode: u32,
    file_mode: u32,
    /// Objects are immutable, so an open handle stays valid until the object is deleted.
    open: Mutex<lru::LruCache<PathBuf, Arc<File>>>,
}

impl LocalStorage {
    /// Storage at `root` (which need not exist yet; `put` creates directories).
    pub fn new(root: impl Into<PathBuf>) -> LocalStorage {
        let cap = std::num::NonZeroUsize::new(OPEN_FILES).unwrap_or(std::num::NonZeroUsize::MIN);
        let root: PathBuf = root.into();
        let group = fs::metadata(&root).map(|m| m.mode() & 0o070).unwrap_or(0);
        LocalStorage {
            root,
            dir_mode: 0o700 | group,
            file_mode: 0o600 | (group & 0o060),
            open: Mutex::new(lru::LruCache::new(cap)),
        }
    }

    /// Create `dir` and its parents with the repository's directory mode.
    fn mkdirs(&self, dir: &Path) -> std::io::Result<()> {
        fs::DirBuilder::new().recursive(true).mode(self.dir_mode).create(dir)
    }

    /// Create a new temporary file with the repository's file mode, and its directory if
    /// missing.
    fn create_tmp(&self, tmp: &Path) -> std::io::Result<File> {
        let open = || fs::OpenOptions::new().write(true).create_new(true).mode(self.file_mode).open(tmp);
        match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.mkdirs(tmp.parent().unwrap_or(&self.root))?;
                open()
            }
            r => r,
        }
    }

    fn handle(&self, p: &Path) -> std::io::Result<Arc<File>> {
        let mut cache = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = cache.get(p) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(p)?);
        cache.put(p.to_path_buf(), f.clone());
        Ok(f)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn full(&self, kind: ObjectKind, name: &str) -> PathBuf {
        self.root.join(kind.path(name))
    }

    fn err(&self, p: &Path, e: std::io::Error) -> StorageError {
        StorageError::from_io(p.display().to_string(), e)
    }

    fn write_new(&self, path: &Path, data: &[u8]) -> StorageResult<()> {
        let dir = path.parent().unwrap_or(&self.root);
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = temp_name(dir, &file_name);
        let result = (|| {
            let mut f = self.create_tmp(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            File::open(dir)?.sync_all()
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(self.err(path, e));
        }
        Ok(())
    }
}

/// Create a repository's root directory (and missing parents) private to this user.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// A temporary name in `dir` for an object to be called `name`; listings skip it.
fn temp_name(dir: &Path, name: &str) -> PathBuf {
    let mut suffix = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut suffix);
    dir.join(format!("{name}{TMP_MARK}{}", hex::encode(suffix)))
}

/// A streamed object: written to a temporary file in the kind's directory (bypassing the page
/// cache where it can), then synced and renamed into place like [`LocalStorage::put`].
struct LocalObjectWriter {
    root: PathBuf,
    kind: ObjectKind,
    tmp: PathBuf,
    out: Option<arca_io::DirectWriter>,
    dir_mode: u32,
}

impl LocalObjectWriter {
    fn err(&self, e: std::io::Error) -> StorageError {
        StorageError::from_io(self.tmp.display().to_string(), e)
    }
}

impl ObjectWriter for LocalObjectWriter {
    fn write(&mut self, data: &[u8]) -> StorageResult<()> {
        match self.out.as_mut() {
            Some(w) => w.write_all(data).map_err(|e| self.err(e)),
            None => Err(StorageError::Refused("write after a failed write".into())),
        }
    }

    fn finish(mut self: Box<Self>, name: &str) -> StorageResult<()> {
        let out = self.out.take().ok_or_else(|| StorageError::Refused("finish after a failed write".into()))?;
        let path = self.root.join(self.kind.path(name));
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        let result = (|| {
            out.finish()?;
            match fs::rename(&self.tmp, &path) {
                // The temporary file itself is gone: something (a prune's sweep of abandoned
                // uploads, while this writer was suspended) removed it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.tmp.exists() => {
                    // Not NotFound: that would report the object's own name as missing.
                    return Err(std::io::Error::other(format!(
                        "the file being written, {}, was removed before it was complete",
                        self.tmp.display()
                    )));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    fs::DirBuilder::new().recursive(true).mode(self.dir_mode).create(&dir)?;
                    fs::rename(&self.tmp, &path)?
                }
                r => r?,
            }
            File::open(&dir)?.sync_all()
        })();
        result.map_err(|e| StorageError::from_io(path.display().to_string(), e))
    }
}

impl Drop for LocalObjectWriter {
    fn drop(&mut self) {
        // Abandoned (or finished: then the temporary name is gone and this is a no-op).
        let _ = fs::remove_file(&self.tmp);
    }
}

impl Storage for LocalStorage {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> StorageResult<()> {
        self.write_new(&self.full(kind, name), data)
    }

    fn create(&self, kind: ObjectKind) -> StorageResult<Option<Box<dyn ObjectWriter>>> {
        let dir = self.root.join(kind.dir());
        let tmp = temp_name(&dir, "new");
        let file = self.create_tmp(&tmp).map_err(|e| self.err(&tmp, e))?;
        let out = Some(arca_io::DirectWriter::new(file, WRITE_BUFFER));
        Ok(Some(Box::new(LocalObjectWriter { root: self.root.clone(), kind, tmp, out, dir_mode: self.dir_mode })))
    }

    fn get(&self, kind: ObjectKind, name: &str) -> StorageResult<Vec<u8>> {
        let p = self.full(kind, name);
        fs::read(&p).map_err(|e| self.err(&p, e))
    }

    fn get_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        let p = self.full(kind, name);
        let f = self.handle(&p).map_err(|e| self.err(&p, e))?;
        let len = usize::try_from(length)
            .map_err(|_| StorageError::Refused(format!("range of {length} bytes is too large")))?;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset).map_err(|e| self.err(&p, e))?;
        Ok(buf)
    }

    fn remove_abandoned(&self, age: std::time::Duration) -> StorageResult<u64> {
        let mut dirs: Vec<PathBuf> = ObjectKind::LISTABLE.iter().map(|k| self.root.join(k.dir())).collect();
        dirs.push(self.root.clone());
        if let Ok(rd) = fs::read_dir(self.root.join(ObjectKind::Pack.dir())) {
            dirs.extend(rd.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()));
        }
        dirs.sort();
        dirs.dedup();
        let mut n = 0;
        for d in dirs {
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                if !e.file_name().to_string_lossy().contains(TMP_MARK) {
                    continue;
                }
                let old = e.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
                if old.is_some_and(|o| o >= age) {
                    match fs::remove_file(e.path()) {
                        Ok(()) => n += 1,
                        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                        Err(err) => return Err(self.err(&e.path(), err)),
                    }
                }
            }
        }
        Ok(n)
    }

    fn list(&self, kind: ObjectKind) -> StorageResult<Vec<(String, u64)>> {
        let dir = self.root.join(kind.dir());
        let mut dirs = vec![dir.clone()];
        if kind == ObjectKind::Pack {
            dirs.clear();
            match fs::read_dir(&dir) {
                Ok(rd) => {
                    for e in rd {
                        let e = e.map_err(|e| self.err(&dir, e))?;
                        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                            dirs.push(e.path());
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
                Err(e) => return Err(self.err(&dir, e)),
            }
        }
        let mut out = vec![];
        for d in dirs {
            let rd = match fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.err(&d, e)),
            };
            for e in rd {
                let e = e.map_err(|e| self.err(&d, e))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name.contains(TMP_MARK) {
                    continue;
                }
                let md = match e.metadata() {
                    Ok(md) => md,
                    // Deleted between reading the directory and looking at the entry.
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(err) => return Err(self.err(&e.path(), err)),
                };
                if md.is_file() {
                    out.push((name, md.len()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> StorageResult<()> {
        let p = self.full(kind, name);
        self.open.lock().unwrap_or_else(|e| e.into_inner()).pop(&p);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err(&p, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_storage() {
        let d = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(d.path().join("repo"));
        assert!(s.list(ObjectKind::Pack).unwrap().is_empty());
        s.put(ObjectKind::Pack, "abcd", b"0123456789").unwrap();
        s.put(ObjectKind::Snapshot, "ff", b"x").unwrap();
        s.put(ObjectKind::Config, "config", b"c").unwrap();
        assert!(d.path().join("repo/data/ab/abcd").is_file());
        assert_eq!(s.get_range(ObjectKind::Pack, "abcd", 2, 3).unwrap(), b"234");
        assert!(s.get_range(ObjectKind::Pack, "abcd", 8, 3).is_err());
        assert_eq!(s.list(ObjectKind::Pack).unwrap(), vec![("abcd".into(), 10)]);
        assert_eq!(s.get(ObjectKind::Config, "config").unwrap(), b"c");
        // a leftover temporary file is not listed
        fs::write(d.path().join("repo/snapshots/gg.tmp-1"), b"t").unwrap();
        assert_eq!(s.list(ObjectKind::Snapshot).unwrap().len(), 1);
        s.delete(ObjectKind::Pack, "abcd").unwrap();
        s.delete(ObjectKind::Pack, "abcd").unwrap();
        assert!(s.get(ObjectKind::Pack, "abcd").unwrap_err().is_not_found());
    }

    #[test]
    fn streamed_objects_appear_whole_or_not_at_all() {
        let d = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(d.path().join("repo"));
        let data: Vec<u8> = (0..(5 << 20) + 77).map(|i: u32| (i % 253) as u8).collect();
        let mut w = s.create(ObjectKind::Pack).unwrap().expect("local storage streams");
        for piece in data.chunks(300_001) {
            w.write(piece).unwrap();
        }
        assert!(s.list(ObjectKind::Pack).unwrap().is_empty(), "nothing visible before finish");
        w.finish("cdef").unwrap();
        assert_eq!(s.get(ObjectKind::Pack, "cdef").unwrap(), data);
        assert_eq!(s.list(ObjectKind::Pack).unwrap(), vec![("cdef".into(), data.len() as u64)]);
        // abandoned: no object, no temporary file left behind
        let mut w = s.create(ObjectKind::Pack).unwrap().expect("local storage streams");
        w.write(b"half a pack").unwrap();
        drop(w);
        assert_eq!(s.list(ObjectKind::Pack).unwrap().len(), 1);
        let left: Vec<_> = fs::read_dir(d.path().join("repo/data")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("cd")]);
    }

    #[test]
    fn a_streamed_object_whose_file_was_swept_away_says_so() {
        let d = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(d.path().join("repo"));
        let mut w = s.create(ObjectKind::Pack).unwrap().expect("local storage streams");
        w.write(b"a pack being written").unwrap();
        // What a prune's sweep of abandoned uploads does to a suspended writer's file.
        assert_eq!(s.remove_abandoned(std::time::Duration::ZERO).unwrap(), 1);
        let e = w.finish("beef").unwrap_err().to_string();
        assert!(e.contains("was removed before it was complete"), "{e}");
        assert!(s.list(ObjectKind::Pack).unwrap().is_empty());
    }
}
