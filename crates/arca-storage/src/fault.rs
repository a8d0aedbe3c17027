//! Fault injection as a storage decorator: after `n` mutating calls succeed, every call fails,
//! as when a disk dies or a connection drops for good in the middle of an operation. Crash
//! tests loop `n` over every write an operation makes.

use crate::{Capabilities, ObjectKind, ObjectWriter, Storage, StorageError, StorageResult};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A storage that lets `allowed` mutations through, then fails every call.
pub struct FailAfter {
    inner: Arc<dyn Storage>,
    allowed: u64,
    mutations: AtomicU64,
}

impl FailAfter {
    /// Wrap `inner`; `allowed` = `u64::MAX` counts without failing.
    pub fn new(inner: Arc<dyn Storage>, allowed: u64) -> FailAfter {
        FailAfter { inner, allowed, mutations: AtomicU64::new(0) }
    }

    /// Mutating calls made so far (including the refused one).
    pub fn mutations(&self) -> u64 {
        self.mutations.load(Ordering::SeqCst)
    }

    fn dead(&self) -> bool {
        self.mutations.load(Ordering::SeqCst) > self.allowed
    }

    fn injected(what: &str) -> StorageError {
        StorageError::Io { path: what.to_string(), source: std::io::Error::other("injected failure") }
    }

    /// Count a mutation; fails it, and everything after it, past the allowance.
    fn mutate(&self, what: &str) -> StorageResult<()> {
        if self.mutations.fetch_add(1, Ordering::SeqCst) >= self.allowed {
            return Err(Self::injected(what));
        }
        Ok(())
    }

    fn read(&self, what: &str) -> StorageResult<()> {
        if self.dead() {
            return Err(Self::injected(what));
        }
        Ok(())
    }
}

impl Storage for FailAfter {
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
        self.mutate(&kind.path(name))?;
        self.inner.put(kind, name, data)
    }
    fn put_bytes(&self, kind: ObjectKind, name: &str, data: bytes::Bytes) -> StorageResult<()> {
        self.mutate(&kind.path(name))?;
        self.inner.put_bytes(kind, name, data)
    }
    fn resume_uploads(
        &self,
        spool: &std::path::Path,
        accept: &mut dyn FnMut(&str, &[u8]) -> bool,
    ) -> StorageResult<Vec<String>> {
        self.inner.resume_uploads(spool, accept)
    }
    fn get(&self, kind: ObjectKind, name: &str) -> StorageResult<Vec<u8>> {
        self.read(&kind.path(name))?;
        self.inner.get(kind, name)
    }
    fn get_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        self.read(&kind.path(name))?;
        self.inner.get_range(kind, name, offset, length)
    }
    fn list(&self, kind: ObjectKind) -> StorageResult<Vec<(String, u64)>> {
        self.read(kind.dir())?;
        self.inner.list(kind)
    }
    fn delete(&self, kind: ObjectKind, name: &str) -> StorageResult<()> {
        self.mutate(&kind.path(name))?;
        self.inner.delete(kind, name)
    }
    fn put_owned(&self, kind: ObjectKind, name: &str, data: &[u8], proof: &[u8]) -> StorageResult<()> {
        self.mutate(&kind.path(name))?;
        self.inner.put_owned(kind, name, data, proof)
    }
    fn delete_owned(&self, kind: ObjectKind, name: &str, proof: &[u8]) -> StorageResult<()> {
        self.mutate(&kind.path(name))?;
        self.inner.delete_owned(kind, name, proof)
    }
    /// Whole objects only: every write is one counted `put`.
    fn create(&self, _kind: ObjectKind) -> StorageResult<Option<Box<dyn ObjectWriter>>> {
        Ok(None)
    }
    fn remove_abandoned(&self, age: std::time::Duration) -> StorageResult<u64> {
        self.mutate("temporaries")?;
        self.inner.remove_abandoned(age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStorage;

    #[test]
    fn fails_every_call_after_the_allowed_mutations() {
        let inner: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
        let s = FailAfter::new(inner.clone(), 2);
        s.put(ObjectKind::Snapshot, "a", b"1").unwrap();
        s.get(ObjectKind::Snapshot, "a").unwrap();
        s.put(ObjectKind::Snapshot, "b", b"2").unwrap();
        assert!(s.put(ObjectKind::Snapshot, "c", b"3").is_err());
        assert!(s.get(ObjectKind::Snapshot, "a").is_err(), "dead after the failure");
        assert_eq!(inner.list(ObjectKind::Snapshot).unwrap().len(), 2);
        assert_eq!(s.mutations(), 3);
    }
}
