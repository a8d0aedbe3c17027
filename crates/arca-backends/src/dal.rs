//! The storage contract over an OpenDAL operator, shared by the services arca reaches through
//! OpenDAL (S3, FTP, WebDAV; their types stay in this file and the service's own). The engine
//! is synchronous, so each storage owns a Tokio runtime and blocks on it per call (see
//! docs/ARCHITECTURE.md). Requests are timed out and retried with exponential backoff and
//! jitter; `--limit-upload`/`--limit-download` throttle each direction on its own operator.

use arca_storage::{ObjectKind, Storage, StorageError, StorageResult};
use opendal::layers::{RetryLayer, ThrottleLayer, TimeoutLayer};
use opendal::options::{ListOptions, ReadOptions, WriteOptions};
use opendal::{blocking, ErrorKind, Operator};
use std::time::Duration;

/// Objects at least this large are uploaded in parts of this size (where the service has
/// multipart uploads).
pub(crate) const PART_SIZE: usize = 8 << 20;

/// How a service makes a write atomic (a reader sees the whole object or nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Writes {
    /// The service publishes an object when its upload completes, and can refuse to replace
    /// one (S3: `If-None-Match: *`, multipart uploads).
    Conditional,
    /// OpenDAL writes under a temporary name and renames (FTP).
    RenamedByService,
    /// A plain PUT may be seen half-written (a WebDAV server writing into its files): arca
    /// writes under a temporary name and moves it into place.
    Renamed,
}

/// Timeouts, retries and an optional throttle around a service's operator.
pub(crate) fn layered<B: opendal::Builder>(
    b: B,
    limit: Option<u32>,
    io_timeout: Duration,
    transfers: usize,
) -> opendal::Result<Operator> {
    // A stalled connection must fail (and be retried), never hang a backup. The timeout layer
    // sits under the retry layer so each attempt is timed; a request without a body gets
    // twice the I/O limit.
    let io_timeout = io_call_limit(io_timeout, transfers, limit);
    let op =
        Operator::new(b)?.layer(TimeoutLayer::new().with_timeout(io_timeout * 2).with_io_timeout(io_timeout)).layer(
            RetryLayer::new()
                .with_jitter()
                .with_max_times(4)
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(10)),
        );
    Ok(match limit {
        // Burst must hold a whole part, or a large write could never pass the limiter.
        Some(bps) => op.layer(ThrottleLayer::new(bps.max(1), (PART_SIZE as u32 * 2).max(bps))).finish(),
        None => op.finish(),
    })
}

/// OpenDAL's I/O timeout bounds each read or write call as a whole, not a silence: a pack
/// upload shares the link with the other `transfers`. `io_timeout` (`--io-timeout`, 60 s) is
/// scaled by them, so the slowest link that carried one upload at a time in time still does,
/// and, with a rate limit, raised to twice what `transfers` packs take at that rate.
pub(crate) fn io_call_limit(io_timeout: Duration, transfers: usize, limit: Option<u32>) -> Duration {
    let transfers = transfers.max(1) as u32;
    let shared = io_timeout.max(Duration::from_secs(1)) * transfers;
    match limit {
        Some(bps) => shared
            .max(Duration::from_secs_f64(2.0 * (2 * PART_SIZE) as f64 * f64::from(transfers) / f64::from(bps.max(1)))),
        None => shared,
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn the_call_limit_grows_with_the_uploads_sharing_the_link_and_a_rate_limit() {
        let minute = Duration::from_secs(60);
        assert_eq!(io_call_limit(minute, 1, None), minute);
        assert_eq!(io_call_limit(minute, 4, None), minute * 4);
        // 4 packs of 16 MiB at 64 KiB/s take 1,024 s; twice that.
        assert_eq!(io_call_limit(minute, 4, Some(64 << 10)), Duration::from_secs(2048));
        assert_eq!(io_call_limit(Duration::ZERO, 0, None), Duration::from_secs(1));
    }
}

/// A repository under `prefix` of an OpenDAL service.
pub struct DalStorage {
    /// For messages: the repository's URL without credentials.
    location: String,
    pub(crate) rt: tokio::runtime::Runtime,
    op: blocking::Operator,
    /// A separate operator so upload and download limits apply to their own direction.
    upload: blocking::Operator,
    prefix: String,
    writes: Writes,
    /// Requests a writer keeps in flight (`--connections`); OpenDAL's HTTP client pools them.
    pub(crate) transfers: usize,
}

impl DalStorage {
    /// Build the operators with `make(limit)` (nothing is sent until the first request).
    pub(crate) fn new(
        location: String,
        prefix: &str,
        writes: Writes,
        limits: (Option<u32>, Option<u32>),
        make: impl Fn(Option<u32>) -> opendal::Result<Operator>,
    ) -> StorageResult<DalStorage> {
        let conf = |e: opendal::Error| StorageError::Refused(format!("{location}: {e}"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| StorageError::Io { path: location.clone(), source: e })?;
        let _guard = rt.enter();
        let upload = blocking::Operator::new(make(limits.0).map_err(conf)?).map_err(conf)?;
        let op = blocking::Operator::new(make(limits.1).map_err(conf)?).map_err(conf)?;
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        Ok(DalStorage { location, rt, op, upload, prefix, writes, transfers: 1 })
    }

    fn key(&self, kind: ObjectKind, name: &str) -> String {
        format!("{}{}", self.prefix, kind.path(name))
    }

    fn err(&self, key: &str, e: opendal::Error) -> StorageError {
        // OpenDAL's messages carry the request context but never the credentials.
        let path = format!("{}/{}", self.location.trim_end_matches('/'), key.strip_prefix(&self.prefix).unwrap_or(key));
        match e.kind() {
            ErrorKind::NotFound => StorageError::NotFound { path },
            ErrorKind::AlreadyExists | ErrorKind::ConditionNotMatch => StorageError::AlreadyExists { path },
            ErrorKind::PermissionDenied => StorageError::PermissionDenied { path },
            // WebDAV: OpenDAL leaves HTTP 401 (wrong user or password) unclassified.
            ErrorKind::Unexpected if e.to_string().contains("status: 401") => StorageError::PermissionDenied { path },
            _ if e.is_temporary() => StorageError::Transient { path, source: std::io::Error::other(e.to_string()) },
            _ => StorageError::Io { path, source: std::io::Error::other(e.to_string()) },
        }
    }

    /// A temporary name beside `key`: listings skip it (no repository name holds a dot), and
    /// [`Storage::remove_abandoned`] removes it if a writer died before moving it into place.
    fn temporary_name(key: &str) -> String {
        format!("{key}.tmp-{:016x}", rand::random::<u64>())
    }

    /// Temporary uploads: in the repository's root (where OpenDAL's FTP writer puts them)
    /// and in the directories of the object kinds, and only names of the two shapes
    /// temporaries have, so a repository placed in a directory with other files never
    /// touches them.
    fn temporaries(&self) -> StorageResult<Vec<opendal::Entry>> {
        let _guard = self.rt.enter();
        let root = if self.prefix.is_empty() { "/".to_string() } else { self.prefix.clone() };
        let mut dirs = vec![(root, false)];
        for kind in ObjectKind::LISTABLE {
            let d = format!("{}{}/", self.prefix, kind.dir());
            if !kind.dir().is_empty() && !dirs.iter().any(|(x, _)| *x == d) {
                dirs.push((d, true));
            }
        }
        let mut out = vec![];
        for (dir, recursive) in dirs {
            let opts = ListOptions { recursive, ..Default::default() };
            match self.op.list_options(&dir, opts) {
                Ok(entries) => {
                    out.extend(entries.into_iter().filter(|e| !e.metadata().is_dir() && temporary(e.name())))
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(self.err(&dir, e)),
            }
        }
        Ok(out)
    }
}

/// A temporary upload's name: an object's name (hex) and `.tmp-` with 16 hex digits (arca's)
/// or `.` with 8 letters and digits (OpenDAL's FTP writer's).
fn temporary(name: &str) -> bool {
    let Some((object, suffix)) = name.split_once('.') else { return false };
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    object.len() >= 16
        && hex(object)
        && match suffix.strip_prefix("tmp-") {
            Some(r) => r.len() == 16 && hex(r),
            None => suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_alphanumeric()),
        }
}

impl Storage for DalStorage {
    fn location(&self) -> String {
        self.location.clone()
    }
    fn transfers(&self) -> usize {
        self.transfers
    }

    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> StorageResult<()> {
        self.put_bytes(kind, name, bytes::Bytes::copy_from_slice(data))
    }

    /// OpenDAL takes the bytes as they are (a `Bytes` becomes its buffer without a copy).
    fn put_bytes(&self, kind: ObjectKind, name: &str, data: bytes::Bytes) -> StorageResult<()> {
        let key = self.key(kind, name);
        let _guard = self.rt.enter();
        // Objects named by their contents are created only if absent: an existing one already
        // holds these bytes, and nothing may replace it with others.
        let content_named =
            matches!(kind, ObjectKind::Pack | ObjectKind::Index | ObjectKind::Snapshot | ObjectKind::Key);
        let exists_already =
            |e: &opendal::Error| matches!(e.kind(), ErrorKind::ConditionNotMatch | ErrorKind::AlreadyExists);
        match self.writes {
            Writes::Conditional => {
                let opts = WriteOptions {
                    chunk: (data.len() > PART_SIZE).then_some(PART_SIZE),
                    concurrent: 2,
                    if_not_exists: content_named,
                    ..Default::default()
                };
                match self.upload.write_options(&key, data, opts) {
                    Ok(_) => Ok(()),
                    Err(e) if content_named && exists_already(&e) => Ok(()),
                    Err(e) => Err(self.err(&key, e)),
                }
            }
            Writes::RenamedByService | Writes::Renamed => {
                if content_named && self.exists(kind, name)? {
                    return Ok(());
                }
                if data.is_empty() && self.writes == Writes::RenamedByService {
                    // OpenDAL's FTP writer sends nothing for no bytes, so no file would appear.
                    return Err(StorageError::Refused(format!(
                        "{}/{}: an empty object cannot be stored over FTP",
                        self.location.trim_end_matches('/'),
                        kind.path(name)
                    )));
                }
                if self.writes == Writes::RenamedByService {
                    return self.upload.write(&key, data).map(|_| ()).map_err(|e| self.err(&key, e));
                }
                let tmp = Self::temporary_name(&key);
                self.upload.write(&tmp, data).map_err(|e| self.err(&tmp, e))?;
                self.upload.rename(&tmp, &key).map_err(|e| {
                    let _ = self.upload.delete(&tmp);
                    self.err(&key, e)
                })
            }
        }
    }

    fn get(&self, kind: ObjectKind, name: &str) -> StorageResult<Vec<u8>> {
        let key = self.key(kind, name);
        let _guard = self.rt.enter();
        self.op.read(&key).map(|b| b.to_vec()).map_err(|e| self.err(&key, e))
    }

    fn get_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        let key = self.key(kind, name);
        let _guard = self.rt.enter();
        if length == 0 {
            return self.op.stat(&key).map(|_| vec![]).map_err(|e| self.err(&key, e));
        }
        let opts = ReadOptions { range: (offset..offset + length).into(), ..Default::default() };
        let data = self.op.read_options(&key, opts).map(|b| b.to_vec()).map_err(|e| self.err(&key, e))?;
        if data.len() as u64 != length {
            return Err(StorageError::Io {
                path: format!("{}/{}", self.location.trim_end_matches('/'), kind.path(name)),
                source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "object is shorter than the range"),
            });
        }
        Ok(data)
    }

    fn list(&self, kind: ObjectKind) -> StorageResult<Vec<(String, u64)>> {
        let dir = format!("{}{}/", self.prefix, kind.dir());
        let _guard = self.rt.enter();
        let opts = ListOptions { recursive: true, ..Default::default() };
        let entries = match self.op.list_options(&dir, opts) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(self.err(&dir, e)),
        };
        let mut out = vec![];
        for e in entries {
            if e.metadata().is_dir() {
                continue;
            }
            let name = e.name().to_string();
            // Temporary uploads (ours `.tmp-`, OpenDAL's `name.<random>`) and anything else
            // that is no repository object's name (none holds a dot).
            if name.contains('.') || name.is_empty() {
                continue;
            }
            out.push((name, e.metadata().content_length()));
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> StorageResult<()> {
        let key = self.key(kind, name);
        let _guard = self.rt.enter();
        match self.op.delete(&key) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err(&key, e)),
        }
    }

    fn remove_abandoned(&self, age: Duration) -> StorageResult<u64> {
        if self.writes == Writes::Conditional {
            // Incomplete uploads never become objects there.
            return Ok(0);
        }
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        for e in self.temporaries()? {
            let _guard = self.rt.enter();
            let modified = match e.metadata().last_modified() {
                Some(t) => Some(t),
                None => self.op.stat(e.path()).ok().and_then(|m| m.last_modified()),
            };
            // Only what is known to be old: a live writer's file is never taken away.
            let old = modified.and_then(|t| now.duration_since(t.into()).ok()).is_some_and(|d| d >= age);
            if old {
                self.op.delete(e.path()).map_err(|x| self.err(e.path(), x))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn exists(&self, kind: ObjectKind, name: &str) -> StorageResult<bool> {
        let key = self.key(kind, name);
        let _guard = self.rt.enter();
        match self.op.stat(&key) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.err(&key, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_shapes_of_temporary_uploads_are_temporaries() {
        let id = "9e3779b97f4a7c150000000000000001fffffffffffffffe0000000000005554";
        assert!(super::temporary(&format!("{id}.tmp-00ff00ff00ff00ff")));
        assert!(super::temporary(&format!("{id}.Ab3dE9xZ")));
        for other in
            [".profile", "photo.jpg", "report.final.pdf", "config", id, &format!("{id}.tmp-xyz"), "abc.Ab3dE9xZ"]
        {
            assert!(!super::temporary(other), "{other}");
        }
    }
}
