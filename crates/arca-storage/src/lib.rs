//! The Storage trait: the few operations every backend offers on immutable named objects,
//! and the errors a caller can act on. A backend knows nothing of keys or formats.
//!
//! The trait is synchronous: the engine runs CPU stages on threads and a backend that speaks
//! to the network may run its own runtime inside (see docs/ARCHITECTURE.md for why).

pub mod conformance;
pub mod failpoint;
mod fault;
mod memory;
mod retry;
mod trace;
mod verify;

pub use fault::FailAfter;
pub use memory::MemoryStorage;
pub use retry::{Retry, RetryPolicy};
use std::fmt;
pub use trace::Traced;
pub use verify::VerifyAfterWrite;

/// True if `storage` is behind a network (its location is a URL): each request waits a round
/// trip, so callers read ahead and keep several requests in flight.
pub fn is_remote(storage: &dyn Storage) -> bool {
    storage.location().contains("://")
}

/// Requests kept in flight by [`get_many`] on a remote storage.
pub const REMOTE_AT_ONCE: usize = 16;

/// Read whole objects `names` of `kind`, results in the order of `names`: on a remote storage
/// up to [`REMOTE_AT_ONCE`] at a time (a repository's index objects, one per backup, would
/// otherwise cost a round trip each when it is opened), on a local one after each other.
pub fn get_many(storage: &dyn Storage, kind: ObjectKind, names: &[String]) -> Vec<StorageResult<Vec<u8>>> {
    if !is_remote(storage) || names.len() < 2 {
        return names.iter().map(|n| storage.get(kind, n)).collect();
    }
    let mut out = Vec::with_capacity(names.len());
    for window in names.chunks(REMOTE_AT_ONCE) {
        std::thread::scope(|s| {
            let reads: Vec<_> = window.iter().map(|n| (n, s.spawn(move || storage.get(kind, n)))).collect();
            out.extend(reads.into_iter().map(|(n, r)| {
                r.join().unwrap_or_else(|_| {
                    Err(StorageError::Io {
                        path: n.clone(),
                        source: std::io::Error::other("a reading thread panicked"),
                    })
                })
            }));
        });
    }
    out
}

/// The kinds of objects in a repository; each lives under its own prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    /// Sessions in progress (`locks/`).
    Lock,
    /// Packs waiting for a prune's sweep (`marks/`).
    Mark,
    /// Reed-Solomon recovery data of a pack (`parity/<pack id>`).
    Parity,
    /// When an append-only server received a snapshot (`received/<snapshot id>`).
    Received,
    /// Signed statements of added and removed snapshots (`history/<id>`).
    History,
    /// Content keys, one per object (`keyring/<id>`, format version 2).
    Keyring,
}

impl ObjectKind {
    /// The directory (prefix) that holds objects of this kind.
    pub fn dir(self) -> &'static str {
        match self {
            ObjectKind::Config => "",
            ObjectKind::Key => "keys",
            ObjectKind::Pack => "data",
            ObjectKind::Index => "index",
            ObjectKind::Snapshot => "snapshots",
            ObjectKind::Lock => "locks",
            ObjectKind::Mark => "marks",
            ObjectKind::Parity => "parity",
            ObjectKind::Received => "received",
            ObjectKind::History => "history",
            ObjectKind::Keyring => "keyring",
        }
    }

    /// The path of object `name` relative to the repository root.
    pub fn path(self, name: &str) -> String {
        match self {
            ObjectKind::Config => "config".to_string(),
            ObjectKind::Pack => format!("data/{}/{}", name.get(..2).unwrap_or("00"), name),
            _ => format!("{}/{}", self.dir(), name),
        }
    }

    /// All kinds that can be listed.
    pub const LISTABLE: [ObjectKind; 10] = [
        ObjectKind::Key,
        ObjectKind::Pack,
        ObjectKind::Index,
        ObjectKind::Snapshot,
        ObjectKind::Lock,
        ObjectKind::Mark,
        ObjectKind::Parity,
        ObjectKind::Received,
        ObjectKind::History,
        ObjectKind::Keyring,
    ];
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Config => "config",
            ObjectKind::Key => "key",
            ObjectKind::Pack => "pack",
            ObjectKind::Index => "index",
            ObjectKind::Snapshot => "snapshot",
            ObjectKind::Lock => "lock",
            ObjectKind::Mark => "mark",
            ObjectKind::Parity => "parity",
            ObjectKind::Received => "received",
            ObjectKind::History => "history",
            ObjectKind::Keyring => "content key",
        })
    }
}

/// A storage failure, classified so callers know whether to retry.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{path} not found")]
    NotFound { path: String },
    #[error("{path} already exists")]
    AlreadyExists { path: String },
    #[error("no space left on {path}")]
    NoSpace { path: String },
    #[error("permission denied on {path}")]
    PermissionDenied { path: String },
    #[error("refused by storage: {0}")]
    Refused(String),
    /// Worth retrying: timeouts, dropped connections, throttling.
    #[error("temporary failure on {path}: {source}")]
    Transient { path: String, source: std::io::Error },
    #[error("I/O error on {path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// Transient failures that did not pass within the retry policy's attempts; final.
    #[error("{path}: gave up after {attempts} attempts while {doing}: {last}")]
    GaveUp { path: String, doing: String, attempts: u32, last: String },
}

impl StorageError {
    /// Classify an I/O error on `path`.
    pub fn from_io(path: impl Into<String>, e: std::io::Error) -> StorageError {
        let path = path.into();
        match e.kind() {
            std::io::ErrorKind::NotFound => StorageError::NotFound { path },
            std::io::ErrorKind::AlreadyExists => StorageError::AlreadyExists { path },
            std::io::ErrorKind::PermissionDenied => StorageError::PermissionDenied { path },
            std::io::ErrorKind::StorageFull => StorageError::NoSpace { path },
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted | std::io::ErrorKind::ConnectionReset => {
                StorageError::Transient { path, source: e }
            }
            _ => StorageError::Io { path, source: e },
        }
    }

    /// True if the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound { .. })
    }
}

/// Result of a storage operation.
pub type StorageResult<T> = Result<T, StorageError>;

/// A new object written piece by piece (a pack as it is built), for backends that can store
/// it without holding it whole in memory. Dropping it without [`ObjectWriter::finish`]
/// abandons it: nothing appears under any name.
pub trait ObjectWriter: Send {
    /// Append bytes.
    fn write(&mut self, data: &[u8]) -> StorageResult<()>;
    /// Store what was written as object `name`, with the same atomicity as [`Storage::put`].
    fn finish(self: Box<Self>, name: &str) -> StorageResult<()>;
}

/// What a storage allows, declared rather than found out by trying (a refused delete half-way
/// through a rewrite would leave a duplicate behind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// New objects can be stored (false behind a read-only key).
    pub write: bool,
    /// Objects can be deleted (false behind an append-only or read-only key).
    pub delete: bool,
    /// A server enforces `write` and `delete`, whatever the client does.
    pub server_enforced: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities { write: true, delete: true, server_enforced: false }
    }
}

/// Immutable named objects: put once, read (whole or a range), list, delete.
pub trait Storage: Send + Sync {
    /// What this storage allows.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    /// Where this storage lives, for messages (never includes credentials).
    fn location(&self) -> String;
    /// How many requests this storage serves well at once (`--connections`): a writer keeps
    /// this many pack uploads in flight. A local directory serves one writer best (its packs
    /// stream to disk as they are built).
    fn transfers(&self) -> usize {
        1
    }
    /// Store a new object. Must be atomic: a reader sees the whole object or nothing.
    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> StorageResult<()>;
    /// [`Storage::put`] of bytes the caller gives up (a pack on its way out): a backend that
    /// hands them to a client library takes them without a copy (a pack in flight then costs
    /// its size once, not twice). Decorators pass them on; the default puts a borrow.
    fn put_bytes(&self, kind: ObjectKind, name: &str, data: bytes::Bytes) -> StorageResult<()> {
        self.put(kind, name, &data)
    }
    /// Keep the state of uploads that can outlive this process in the local directory `spool`
    /// from now on (S3: a large pack's bytes and its multipart upload id, until the upload
    /// completes), and finish the uploads an earlier process left there whose bytes `accept`
    /// takes (given the pack's name and bytes, it checks one against the other); returns the
    /// names of the packs finished now. Storages whose uploads cannot resume keep nothing.
    fn resume_uploads(
        &self,
        spool: &std::path::Path,
        accept: &mut dyn FnMut(&str, &[u8]) -> bool,
    ) -> StorageResult<Vec<String>> {
        let _ = (spool, accept);
        Ok(vec![])
    }
    /// Read a whole object.
    fn get(&self, kind: ObjectKind, name: &str) -> StorageResult<Vec<u8>>;
    /// Read `length` bytes at `offset`; a short object is an error.
    fn get_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>>;
    /// Names and sizes of all objects of `kind`.
    fn list(&self, kind: ObjectKind) -> StorageResult<Vec<(String, u64)>>;
    /// Remove an object; removing a missing object is not an error.
    fn delete(&self, kind: ObjectKind, name: &str) -> StorageResult<()>;
    /// Store an object that only its owner may replace or delete: `name` is the hex BLAKE3
    /// of `proof`, which only the owner knows (session locks). A server that forbids
    /// overwrites (append-only) accepts a replace or delete that shows the proof, so a
    /// session keeps its lock across reconnections. Backends without such rules just put.
    fn put_owned(&self, kind: ObjectKind, name: &str, data: &[u8], proof: &[u8]) -> StorageResult<()> {
        let _ = proof;
        self.put(kind, name, data)
    }
    /// Delete an object stored with [`Storage::put_owned`], showing the proof.
    fn delete_owned(&self, kind: ObjectKind, name: &str, proof: &[u8]) -> StorageResult<()> {
        let _ = proof;
        self.delete(kind, name)
    }
    /// Start a new object of `kind` to be written piece by piece and named when complete, or
    /// `None` if this backend stores only whole objects (then the caller buffers and `put`s).
    fn create(&self, kind: ObjectKind) -> StorageResult<Option<Box<dyn ObjectWriter>>> {
        let _ = kind;
        Ok(None)
    }
    /// Remove what writers killed mid-write left behind (temporary files) if older than
    /// `age`, so no live writer loses its file; returns how many were removed. Backends whose
    /// writes leave nothing behind keep the default.
    fn remove_abandoned(&self, age: std::time::Duration) -> StorageResult<u64> {
        let _ = age;
        Ok(0)
    }
    /// True if an object exists.
    fn exists(&self, kind: ObjectKind, name: &str) -> StorageResult<bool> {
        match self.get_range(kind, name, 0, 0) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_paths_are_fanned_out() {
        assert_eq!(ObjectKind::Pack.path("abcdef"), "data/ab/abcdef");
        assert_eq!(ObjectKind::Snapshot.path("x1"), "snapshots/x1");
        assert_eq!(ObjectKind::Config.path("x"), "config");
    }
}
