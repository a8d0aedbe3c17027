//! A storage decorator that records every call (operation, object, bytes, time taken,
//! outcome) as a `tracing` event with target `arca::storage` at trace level, so a slow or
//! failing backend can be watched without touching it: `ARCA_LOG=arca::storage=trace`.
//! When that level is off, a call costs one level check.

use crate::{Capabilities, ObjectKind, ObjectWriter, Storage, StorageResult};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Traces every call on the storage it wraps.
pub struct Traced {
    inner: Arc<dyn Storage>,
}

impl Traced {
    pub fn new(inner: Arc<dyn Storage>) -> Traced {
        EPOCH.get_or_init(Instant::now);
        Traced { inner }
    }
}

/// When the first traced storage was made: each call says when it started (`at`, ms since
/// then), so a trace shows which calls overlapped and where a run waited.
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn since_epoch(start: Instant) -> f64 {
    EPOCH.get().map_or(0.0, |e| start.saturating_duration_since(*e).as_secs_f64() * 1000.0)
}

fn on() -> bool {
    tracing::enabled!(target: "arca::storage", tracing::Level::TRACE)
}

fn record<T>(op: &str, kind: ObjectKind, name: &str, bytes: impl Fn(&T) -> u64, r: &StorageResult<T>, start: Instant) {
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let at = since_epoch(start);
    match r {
        Ok(v) => tracing::trace!(target: "arca::storage", op, %kind, name, bytes = bytes(v), at, ms, "ok"),
        Err(e) => tracing::trace!(target: "arca::storage", op, %kind, name, at, ms, error = %e, "failed"),
    }
}

fn timed<T>(
    op: &str,
    kind: ObjectKind,
    name: &str,
    bytes: impl Fn(&T) -> u64,
    f: impl FnOnce() -> StorageResult<T>,
) -> StorageResult<T> {
    if !on() {
        return f();
    }
    let start = Instant::now();
    let r = f();
    record(op, kind, name, bytes, &r, start);
    r
}

/// A streaming write, traced when it finishes.
struct TracedWriter {
    inner: Box<dyn ObjectWriter>,
    kind: ObjectKind,
    written: u64,
    start: Instant,
}

impl ObjectWriter for TracedWriter {
    fn write(&mut self, data: &[u8]) -> StorageResult<()> {
        self.written += data.len() as u64;
        self.inner.write(data)
    }
    fn finish(self: Box<Self>, name: &str) -> StorageResult<()> {
        let (kind, written, start) = (self.kind, self.written, self.start);
        let r = self.inner.finish(name);
        if on() {
            record("stream", kind, name, |_| written, &r, start);
        }
        r
    }
}

impl Storage for Traced {
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
        timed("put", kind, name, |_| data.len() as u64, || self.inner.put(kind, name, data))
    }
    fn put_bytes(&self, kind: ObjectKind, name: &str, data: bytes::Bytes) -> StorageResult<()> {
        let len = data.len() as u64;
        timed("put", kind, name, |_| len, || self.inner.put_bytes(kind, name, data))
    }
    fn resume_uploads(
        &self,
        spool: &std::path::Path,
        accept: &mut dyn FnMut(&str, &[u8]) -> bool,
    ) -> StorageResult<Vec<String>> {
        timed(
            "resume",
            ObjectKind::Pack,
            "",
            |v: &Vec<String>| v.len() as u64,
            || self.inner.resume_uploads(spool, accept),
        )
    }
    fn get(&self, kind: ObjectKind, name: &str) -> StorageResult<Vec<u8>> {
        timed("get", kind, name, |v: &Vec<u8>| v.len() as u64, || self.inner.get(kind, name))
    }
    fn get_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        timed(
            "get_range",
            kind,
            name,
            |v: &Vec<u8>| v.len() as u64,
            || self.inner.get_range(kind, name, offset, length),
        )
    }
    fn list(&self, kind: ObjectKind) -> StorageResult<Vec<(String, u64)>> {
        timed("list", kind, "", |v: &Vec<(String, u64)>| v.len() as u64, || self.inner.list(kind))
    }
    fn delete(&self, kind: ObjectKind, name: &str) -> StorageResult<()> {
        timed("delete", kind, name, |_| 0, || self.inner.delete(kind, name))
    }
    fn put_owned(&self, kind: ObjectKind, name: &str, data: &[u8], proof: &[u8]) -> StorageResult<()> {
        timed("put_owned", kind, name, |_| data.len() as u64, || self.inner.put_owned(kind, name, data, proof))
    }
    fn delete_owned(&self, kind: ObjectKind, name: &str, proof: &[u8]) -> StorageResult<()> {
        timed("delete_owned", kind, name, |_| 0, || self.inner.delete_owned(kind, name, proof))
    }
    fn create(&self, kind: ObjectKind) -> StorageResult<Option<Box<dyn ObjectWriter>>> {
        let w = self.inner.create(kind)?;
        Ok(w.map(|inner| {
            Box::new(TracedWriter { inner, kind, written: 0, start: Instant::now() }) as Box<dyn ObjectWriter>
        }))
    }
    fn remove_abandoned(&self, age: Duration) -> StorageResult<u64> {
        self.inner.remove_abandoned(age)
    }
    fn exists(&self, kind: ObjectKind, name: &str) -> StorageResult<bool> {
        timed("exists", kind, name, |_| 0, || self.inner.exists(kind, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStorage;
    use std::sync::Mutex;

    /// Collects formatted trace output.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_call_is_recorded_and_the_storage_still_conforms() {
        let buf = Buffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let s: Arc<dyn Storage> = Arc::new(Traced::new(Arc::new(MemoryStorage::default())));
        tracing::subscriber::with_default(subscriber, || {
            crate::conformance::check(&*s, "traced").unwrap();
            let s = Traced::new(Arc::new(MemoryStorage::default()));
            s.put(ObjectKind::Snapshot, "aa", b"hello").unwrap();
            assert!(s.get(ObjectKind::Snapshot, "missing").is_err());
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("op=\"put\"") && text.contains("name=\"aa\"") && text.contains("bytes=5"), "{text}");
        assert!(text.contains("op=\"get\"") && text.contains("name=\"missing\"") && text.contains("failed"), "{text}");
    }
}
