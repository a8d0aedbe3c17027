//! Bandwidth limits: a GCRA rate limiter from `governor`, waited on in blocking code, and
//! [`Throttle`], a decorator that holds any storage's uploads and downloads to it (`ssh://`,
//! `sftp://`; `s3://` uses OpenDAL's throttle layer, which also paces retried parts).

use arca_storage::{Capabilities, ObjectKind, ObjectWriter, Storage, StorageResult};
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;

/// Bytes per second in 1 KiB cells.
pub struct Limit {
    limiter: RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, DefaultClock>,
    burst: u32,
}

const CELL: usize = 1024;

impl Limit {
    /// A limit of `bytes_per_second` (at least 1 KiB/s), with a one-second burst.
    pub fn new(bytes_per_second: u32) -> Limit {
        let kib = NonZeroU32::new((bytes_per_second as usize / CELL).max(1) as u32).unwrap_or(NonZeroU32::MIN);
        Limit { limiter: RateLimiter::direct(Quota::per_second(kib).allow_burst(kib)), burst: kib.get() }
    }

    /// Wait until `bytes` may pass.
    pub fn wait(&self, bytes: usize) {
        let clock = DefaultClock::default();
        let mut cells = bytes.div_ceil(CELL) as u64;
        while cells > 0 {
            let n = cells.min(self.burst as u64) as u32;
            let Some(nz) = NonZeroU32::new(n) else { return };
            loop {
                match self.limiter.check_n(nz) {
                    Ok(Ok(())) => break,
                    Ok(Err(not_until)) => std::thread::sleep(not_until.wait_time_from(clock.now())),
                    Err(_) => break, // cannot happen: n is at most the burst
                }
            }
            cells -= n as u64;
        }
    }
}

impl Limit {
    /// [`Limit::wait`] in async code (an S3 part's body, paced as it streams out).
    pub async fn ready(&self, bytes: usize) {
        let mut cells = bytes.div_ceil(CELL) as u64;
        while cells > 0 {
            let n = cells.min(self.burst as u64) as u32;
            let Some(nz) = NonZeroU32::new(n) else { return };
            // Cannot fail: n is at most the burst.
            let _ = self.limiter.until_n_ready(nz).await;
            cells -= n as u64;
        }
    }
}

/// A storage whose uploads and downloads are held to byte rates.
pub struct Throttle {
    inner: Arc<dyn Storage>,
    upload: Option<Arc<Limit>>,
    download: Option<Limit>,
}

impl Throttle {
    /// Limit `inner` to these many bytes per second each way (`None`: no limit).
    pub fn new(inner: Arc<dyn Storage>, upload: Option<u32>, download: Option<u32>) -> Throttle {
        Throttle { inner, upload: upload.map(|b| Arc::new(Limit::new(b))), download: download.map(Limit::new) }
    }

    fn sent(&self, n: usize) {
        if let Some(l) = &self.upload {
            l.wait(n);
        }
    }

    fn received(&self, n: usize) {
        if let Some(l) = &self.download {
            l.wait(n);
        }
    }
}

/// A streamed object, paced as it is written.
struct ThrottledWriter {
    inner: Box<dyn ObjectWriter>,
    limit: Arc<Limit>,
}

impl ObjectWriter for ThrottledWriter {
    fn write(&mut self, data: &[u8]) -> StorageResult<()> {
        self.limit.wait(data.len());
        self.inner.write(data)
    }
    fn finish(self: Box<Self>, name: &str) -> StorageResult<()> {
        self.inner.finish(name)
    }
}

impl Storage for Throttle {
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
        self.sent(data.len());
        self.inner.put(kind, name, data)
    }
    fn put_bytes(&self, kind: ObjectKind, name: &str, data: bytes::Bytes) -> StorageResult<()> {
        self.sent(data.len());
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
        let data = self.inner.get(kind, name)?;
        self.received(data.len());
        Ok(data)
    }
    fn get_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        let data = self.inner.get_range(kind, name, offset, length)?;
        self.received(data.len());
        Ok(data)
    }
    fn list(&self, kind: ObjectKind) -> StorageResult<Vec<(String, u64)>> {
        self.inner.list(kind)
    }
    fn delete(&self, kind: ObjectKind, name: &str) -> StorageResult<()> {
        self.inner.delete(kind, name)
    }
    fn put_owned(&self, kind: ObjectKind, name: &str, data: &[u8], proof: &[u8]) -> StorageResult<()> {
        self.sent(data.len());
        self.inner.put_owned(kind, name, data, proof)
    }
    fn delete_owned(&self, kind: ObjectKind, name: &str, proof: &[u8]) -> StorageResult<()> {
        self.inner.delete_owned(kind, name, proof)
    }
    fn create(&self, kind: ObjectKind) -> StorageResult<Option<Box<dyn ObjectWriter>>> {
        Ok(match (self.inner.create(kind)?, &self.upload) {
            (Some(w), Some(limit)) => Some(Box::new(ThrottledWriter { inner: w, limit: limit.clone() })),
            (w, _) => w,
        })
    }
    fn remove_abandoned(&self, age: std::time::Duration) -> StorageResult<u64> {
        self.inner.remove_abandoned(age)
    }
    fn exists(&self, kind: ObjectKind, name: &str) -> StorageResult<bool> {
        self.inner.exists(kind, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_storage::MemoryStorage;
    use std::time::{Duration, Instant};

    #[test]
    fn uploads_past_the_burst_wait_and_the_storage_still_conforms() {
        let s = Throttle::new(Arc::new(MemoryStorage::default()), Some(1 << 20), None);
        s.put(ObjectKind::Pack, "a", &vec![0; 1 << 20]).unwrap(); // the one-second burst
        let start = Instant::now();
        s.put(ObjectKind::Pack, "b", &vec![0; 1 << 19]).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(400), "{:?}", start.elapsed());
        let fast = Throttle::new(Arc::new(MemoryStorage::default()), Some(1 << 30), Some(1 << 30));
        arca_storage::conformance::check(&fast, "throttle").unwrap();
    }
}
