//! `--verify-after-write`: every object stored is read back and compared with what was sent,
//! so a medium or a server that acknowledges bytes it did not keep is caught while the data
//! is still at hand, not at the restore. It costs one read per write. (A local disk answers
//! the read from the page cache: the check there covers the path through the kernel, not
//! the platters.)

use crate::{Capabilities, ObjectKind, ObjectWriter, Storage, StorageError, StorageResult};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Reads back every object written through it.
pub struct VerifyAfterWrite {
    inner: Arc<dyn Storage>,
    verified: Arc<AtomicU64>,
}

impl VerifyAfterWrite {
    pub fn new(inner: Arc<dyn Storage>) -> VerifyAfterWrite {
        VerifyAfterWrite { inner, verified: Arc::default() }
    }

    /// Objects read back and found equal so far.
    pub fn verified(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
    }
}

/// Read `name` back and compare it with what was written (`len` bytes hashing to `sent`).
fn check(
    inner: &dyn Storage,
    verified: &AtomicU64,
    kind: ObjectKind,
    name: &str,
    len: u64,
    sent: blake3::Hash,
) -> StorageResult<()> {
    let back = inner.get(kind, name).map_err(|e| StorageError::Io {
        path: format!("{}/{}", inner.location().trim_end_matches('/'), kind.path(name)),
        source: std::io::Error::other(format!("stored, but reading it back for --verify-after-write failed: {e}")),
    })?;
    if back.len() as u64 == len && blake3::hash(&back) == sent {
        verified.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    Err(StorageError::Io {
        path: format!("{}/{}", inner.location().trim_end_matches('/'), kind.path(name)),
        source: std::io::Error::other(format!(
            "read back after writing, it holds {} bytes that differ from the {len} written (--verify-after-write)",
            back.len()
        )),
    })
}

/// A streaming write whose bytes are hashed on the way, and read back when it is named.
struct VerifiedWriter {
    inner: Box<dyn ObjectWriter>,
    storage: Arc<dyn Storage>,
    verified: Arc<AtomicU64>,
    kind: ObjectKind,
    hasher: blake3::Hasher,
    len: u64,
}

impl ObjectWriter for VerifiedWriter {
    fn write(&mut self, data: &[u8]) -> StorageResult<()> {
        self.hasher.update(data);
        self.len += data.len() as u64;
        self.inner.write(data)
    }
    fn finish(self: Box<Self>, name: &str) -> StorageResult<()> {
        let VerifiedWriter { inner, storage, verified, kind, hasher, len } = *self;
        inner.finish(name)?;
        check(&*storage, &verified, kind, name, len, hasher.finalize())
    }
}

impl Storage for VerifyAfterWrite {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    fn transfers(&self) -> usize {
        self.inner.transfers()
    }
    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> StorageResult<()> {
        self.inner.put(kind, name, data)?;
        check(&*self.inner, &self.verified, kind, name, data.len() as u64, blake3::hash(data))
    }
    fn put_bytes(&self, kind: ObjectKind, name: &str, data: bytes::Bytes) -> StorageResult<()> {
        let (len, hash) = (data.len() as u64, blake3::hash(&data));
        self.inner.put_bytes(kind, name, data)?;
        check(&*self.inner, &self.verified, kind, name, len, hash)
    }
    /// A finished upload is read back like any write, against the bytes `accept` saw.
    fn resume_uploads(
        &self,
        spool: &std::path::Path,
        accept: &mut dyn FnMut(&str, &[u8]) -> bool,
    ) -> StorageResult<Vec<String>> {
        let mut seen = std::collections::HashMap::new();
        let finished = self.inner.resume_uploads(spool, &mut |name, bytes| {
            let ok = accept(name, bytes);
            if ok {
                seen.insert(name.to_string(), (bytes.len() as u64, blake3::hash(bytes)));
            }
            ok
        })?;
        for name in &finished {
            if let Some((len, hash)) = seen.get(name) {
                check(&*self.inner, &self.verified, ObjectKind::Pack, name, *len, *hash)?;
            }
        }
        Ok(finished)
    }
    fn get(&self, kind: ObjectKind, name: &str) -> StorageResult<Vec<u8>> {
        self.inner.get(kind, name)
    }
    fn get_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        self.inner.get_range(kind, name, offset, length)
    }
    fn list(&self, kind: ObjectKind) -> StorageResult<Vec<(String, u64)>> {
        self.inner.list(kind)
    }
    fn delete(&self, kind: ObjectKind, name: &str) -> StorageResult<()> {
        self.inner.delete(kind, name)
    }
    fn put_owned(&self, kind: ObjectKind, name: &str, data: &[u8], proof: &[u8]) -> StorageResult<()> {
        self.inner.put_owned(kind, name, data, proof)?;
        check(&*self.inner, &self.verified, kind, name, data.len() as u64, blake3::hash(data))
    }
    fn delete_owned(&self, kind: ObjectKind, name: &str, proof: &[u8]) -> StorageResult<()> {
        self.inner.delete_owned(kind, name, proof)
    }
    fn create(&self, kind: ObjectKind) -> StorageResult<Option<Box<dyn ObjectWriter>>> {
        let w = self.inner.create(kind)?;
        Ok(w.map(|inner| {
            Box::new(VerifiedWriter {
                inner,
                storage: self.inner.clone(),
                verified: self.verified.clone(),
                kind,
                hasher: blake3::Hasher::new(),
                len: 0,
            }) as Box<dyn ObjectWriter>
        }))
    }
    fn remove_abandoned(&self, age: Duration) -> StorageResult<u64> {
        self.inner.remove_abandoned(age)
    }
    fn exists(&self, kind: ObjectKind, name: &str) -> StorageResult<bool> {
        self.inner.exists(kind, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStorage;

    /// Acknowledges every write but keeps the bytes with one flipped (a lying medium).
    struct Lossy(MemoryStorage);

    impl Storage for Lossy {
        fn location(&self) -> String {
            "lossy".into()
        }
        fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> StorageResult<()> {
            let mut kept = data.to_vec();
            if let Some(b) = kept.last_mut() {
                *b ^= 1;
            }
            self.0.put(kind, name, &kept)
        }
        fn get(&self, kind: ObjectKind, name: &str) -> StorageResult<Vec<u8>> {
            self.0.get(kind, name)
        }
        fn get_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
            self.0.get_range(kind, name, offset, length)
        }
        fn list(&self, kind: ObjectKind) -> StorageResult<Vec<(String, u64)>> {
            self.0.list(kind)
        }
        fn delete(&self, kind: ObjectKind, name: &str) -> StorageResult<()> {
            self.0.delete(kind, name)
        }
    }

    #[test]
    fn a_faithful_storage_passes_and_counts_what_was_read_back() {
        let s = VerifyAfterWrite::new(Arc::new(MemoryStorage::default()));
        crate::conformance::check(&s, "verify-after-write").unwrap();
        assert!(s.verified() >= 40, "{}", s.verified());
    }

    #[test]
    fn bytes_the_storage_did_not_keep_are_an_error_naming_the_object() {
        let s = VerifyAfterWrite::new(Arc::new(Lossy(MemoryStorage::default())));
        let e = s.put(ObjectKind::Index, "ab12", b"the index").unwrap_err().to_string();
        assert!(e.contains("lossy/") && e.contains("ab12") && e.contains("differ from the 9 written"), "{e}");
        assert_eq!(s.verified(), 0);
    }
}
