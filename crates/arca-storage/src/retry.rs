//! Retrying transient failures with backoff, as one policy every backend shares and as a
//! decorator over any `Storage`.
//!
//! Only [`StorageError::Transient`] is retried (timeouts, dropped connections, throttling);
//! everything else is final at once. When the attempts run out the error becomes
//! [`StorageError::GaveUp`], which is permanent: a retry layer above does not start again.

use crate::{Capabilities, ObjectKind, ObjectWriter, Storage, StorageError, StorageResult};
use std::sync::Arc;
use std::time::Duration;

/// How often to try, and how long to wait in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (the first one included).
    pub attempts: u32,
    /// The wait before the first retry; each later wait is four times the one before, plus up
    /// to half as much random jitter so many clients do not retry in step.
    pub first_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 tries: waits of 100 ms, 400 ms, 1.6 s (+ jitter).
    fn default() -> Self {
        RetryPolicy { attempts: 4, first_delay: Duration::from_millis(100) }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1, 2, ...), jitter included.
    pub fn delay(&self, retry: u32) -> Duration {
        let base = self.first_delay.saturating_mul(4u32.saturating_pow(retry.saturating_sub(1).min(8)));
        let half = base.as_millis() as u64 / 2;
        base + Duration::from_millis(jitter(half))
    }

    /// Run `op` (given the attempt number, from 0) until it succeeds, fails for good, or the
    /// attempts run out; `doing` and `path` name the operation in the final error.
    pub fn run<T>(&self, path: &str, doing: &str, mut op: impl FnMut(u32) -> StorageResult<T>) -> StorageResult<T> {
        let mut last = String::new();
        for attempt in 0..self.attempts.max(1) {
            if attempt > 0 {
                std::thread::sleep(self.delay(attempt));
            }
            match op(attempt) {
                Err(StorageError::Transient { source, .. }) => last = source.to_string(),
                other => return other,
            }
        }
        Err(StorageError::GaveUp { path: path.to_string(), doing: doing.to_string(), attempts: self.attempts, last })
    }
}

/// Up to `max` (inclusive), from the clock's low bits: enough to spread clients apart, no
/// need for a random number generator here.
fn jitter(max: u64) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos());
    u64::from(nanos.unwrap_or(0)) % (max + 1)
}

/// A storage whose calls are retried by `policy`.
pub struct Retry {
    inner: Arc<dyn Storage>,
    policy: RetryPolicy,
}

impl Retry {
    pub fn new(inner: Arc<dyn Storage>, policy: RetryPolicy) -> Retry {
        Retry { inner, policy }
    }
}

impl Storage for Retry {
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
        self.policy.run(&kind.path(name), "storing", |_| self.inner.put(kind, name, data))
    }
    fn put_bytes(&self, kind: ObjectKind, name: &str, data: bytes::Bytes) -> StorageResult<()> {
        // A clone of `Bytes` shares the buffer: each attempt sends the same bytes, uncopied.
        self.policy.run(&kind.path(name), "storing", |_| self.inner.put_bytes(kind, name, data.clone()))
    }
    fn resume_uploads(
        &self,
        spool: &std::path::Path,
        accept: &mut dyn FnMut(&str, &[u8]) -> bool,
    ) -> StorageResult<Vec<String>> {
        self.inner.resume_uploads(spool, accept)
    }
    fn get(&self, kind: ObjectKind, name: &str) -> StorageResult<Vec<u8>> {
        self.policy.run(&kind.path(name), "reading", |_| self.inner.get(kind, name))
    }
    fn get_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        self.policy.run(&kind.path(name), "reading", |_| self.inner.get_range(kind, name, offset, length))
    }
    fn list(&self, kind: ObjectKind) -> StorageResult<Vec<(String, u64)>> {
        self.policy.run(kind.dir(), "listing", |_| self.inner.list(kind))
    }
    fn delete(&self, kind: ObjectKind, name: &str) -> StorageResult<()> {
        self.policy.run(&kind.path(name), "deleting", |_| self.inner.delete(kind, name))
    }
    fn put_owned(&self, kind: ObjectKind, name: &str, data: &[u8], proof: &[u8]) -> StorageResult<()> {
        self.policy.run(&kind.path(name), "storing", |_| self.inner.put_owned(kind, name, data, proof))
    }
    fn delete_owned(&self, kind: ObjectKind, name: &str, proof: &[u8]) -> StorageResult<()> {
        self.policy.run(&kind.path(name), "deleting", |_| self.inner.delete_owned(kind, name, proof))
    }
    /// A streamed object cannot be sent again from its start, so objects go whole through
    /// `put`, which can.
    fn create(&self, _kind: ObjectKind) -> StorageResult<Option<Box<dyn ObjectWriter>>> {
        Ok(None)
    }
    fn remove_abandoned(&self, age: Duration) -> StorageResult<u64> {
        self.policy.run("temporaries", "removing", |_| self.inner.remove_abandoned(age))
    }
    fn exists(&self, kind: ObjectKind, name: &str) -> StorageResult<bool> {
        self.policy.run(&kind.path(name), "looking up", |_| self.inner.exists(kind, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStorage;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Fails the first `failures` calls with `error`, then passes them on.
    struct Flaky {
        inner: MemoryStorage,
        failures: AtomicU32,
        transient: bool,
    }

    impl Flaky {
        fn fail(&self) -> StorageResult<()> {
            if self.failures.load(Ordering::SeqCst) == 0 {
                return Ok(());
            }
            self.failures.fetch_sub(1, Ordering::SeqCst);
            Err(if self.transient {
                StorageError::Transient { path: "x".into(), source: std::io::Error::other("connection reset") }
            } else {
                StorageError::PermissionDenied { path: "x".into() }
            })
        }
    }

    impl Storage for Flaky {
        fn location(&self) -> String {
            "flaky".into()
        }
        fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> StorageResult<()> {
            self.fail()?;
            self.inner.put(kind, name, data)
        }
        fn get(&self, kind: ObjectKind, name: &str) -> StorageResult<Vec<u8>> {
            self.fail()?;
            self.inner.get(kind, name)
        }
        fn get_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
            self.fail()?;
            self.inner.get_range(kind, name, offset, length)
        }
        fn list(&self, kind: ObjectKind) -> StorageResult<Vec<(String, u64)>> {
            self.fail()?;
            self.inner.list(kind)
        }
        fn delete(&self, kind: ObjectKind, name: &str) -> StorageResult<()> {
            self.fail()?;
            self.inner.delete(kind, name)
        }
    }

    fn flaky(failures: u32, transient: bool) -> Arc<Flaky> {
        Arc::new(Flaky { inner: MemoryStorage::default(), failures: AtomicU32::new(failures), transient })
    }

    const FAST: RetryPolicy = RetryPolicy { attempts: 4, first_delay: Duration::from_millis(1) };

    #[test]
    fn transient_failures_are_retried_until_they_pass() {
        let inner = flaky(3, true);
        let s = Retry::new(inner.clone(), FAST);
        s.put(ObjectKind::Snapshot, "a", b"1").unwrap();
        assert_eq!(inner.inner.get(ObjectKind::Snapshot, "a").unwrap(), b"1");
    }

    #[test]
    fn running_out_of_attempts_is_a_permanent_error() {
        let s = Retry::new(flaky(4, true), FAST);
        match s.get(ObjectKind::Snapshot, "a") {
            Err(e @ StorageError::GaveUp { attempts: 4, .. }) => {
                assert!(e.to_string().contains("gave up after 4 attempts"), "{e}");
                assert!(e.to_string().contains("connection reset"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // A second layer does not start again: GaveUp is not transient.
        let inner = flaky(100, true);
        let twice = Retry::new(Arc::new(Retry::new(inner.clone(), FAST)), FAST);
        assert!(matches!(twice.list(ObjectKind::Snapshot), Err(StorageError::GaveUp { .. })));
        assert_eq!(inner.failures.load(Ordering::SeqCst), 96, "4 attempts, not 16");
    }

    #[test]
    fn other_errors_are_final_at_once() {
        let inner = flaky(1, false);
        let s = Retry::new(inner.clone(), FAST);
        assert!(matches!(s.put(ObjectKind::Snapshot, "a", b"1"), Err(StorageError::PermissionDenied { .. })));
        assert_eq!(inner.failures.load(Ordering::SeqCst), 0);
        assert!(inner.inner.list(ObjectKind::Snapshot).unwrap().is_empty());
    }

    #[test]
    fn waits_grow_fourfold() {
        let p = RetryPolicy::default();
        let d1 = p.delay(1);
        let d3 = p.delay(3);
        assert!(d1 >= Duration::from_millis(100) && d1 <= Duration::from_millis(150), "{d1:?}");
        assert!(d3 >= Duration::from_millis(1600) && d3 <= Duration::from_millis(2400), "{d3:?}");
    }

    #[test]
    fn a_retried_storage_conforms() {
        let s = Retry::new(flaky(0, true), FAST);
        crate::conformance::check(&s, "retry").unwrap();
    }
}
