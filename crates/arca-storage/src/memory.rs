//! An in-memory store for tests of the engine.

use crate::{ObjectKind, Storage, StorageError, StorageResult};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Objects kept in a map; cheap and exact, for tests.
#[derive(Default)]
pub struct MemoryStorage {
    objects: Mutex<BTreeMap<(ObjectKind, String), Vec<u8>>>,
}

impl MemoryStorage {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(ObjectKind, String), Vec<u8>>> {
        // A panic while holding the lock cannot leave the map half-updated.
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Storage for MemoryStorage {
    fn location(&self) -> String {
        "memory".into()
    }

    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> StorageResult<()> {
        self.lock().insert((kind, name.to_string()), data.to_vec());
        Ok(())
    }

    fn get(&self, kind: ObjectKind, name: &str) -> StorageResult<Vec<u8>> {
        self.lock()
            .get(&(kind, name.to_string()))
            .cloned()
            .ok_or_else(|| StorageError::NotFound { path: kind.path(name) })
    }

    fn get_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        let all = self.get(kind, name)?;
        let end = offset.checked_add(length).filter(|e| *e <= all.len() as u64);
        match end {
            Some(end) => Ok(all[offset as usize..end as usize].to_vec()),
            None => Err(StorageError::Io {
                path: kind.path(name),
                source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "object shorter than the range"),
            }),
        }
    }

    fn list(&self, kind: ObjectKind) -> StorageResult<Vec<(String, u64)>> {
        Ok(self.lock().iter().filter(|((k, _), _)| *k == kind).map(|((_, n), v)| (n.clone(), v.len() as u64)).collect())
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> StorageResult<()> {
        self.lock().remove(&(kind, name.to_string()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_range_list_delete() {
        let s = MemoryStorage::default();
        s.put(ObjectKind::Pack, "aa11", b"hello").unwrap();
        assert_eq!(s.get(ObjectKind::Pack, "aa11").unwrap(), b"hello");
        assert_eq!(s.get_range(ObjectKind::Pack, "aa11", 1, 3).unwrap(), b"ell");
        assert!(s.get_range(ObjectKind::Pack, "aa11", 3, 3).is_err());
        assert_eq!(s.list(ObjectKind::Pack).unwrap(), vec![("aa11".to_string(), 5)]);
        assert!(s.list(ObjectKind::Index).unwrap().is_empty());
        assert!(s.exists(ObjectKind::Pack, "aa11").unwrap());
        s.delete(ObjectKind::Pack, "aa11").unwrap();
        assert!(s.get(ObjectKind::Pack, "aa11").unwrap_err().is_not_found());
    }
}
