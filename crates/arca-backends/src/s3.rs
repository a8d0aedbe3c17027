//! `s3://bucket/prefix` repositories through OpenDAL (its types stay in this file). The engine
//! is synchronous, so this backend owns a Tokio runtime and blocks on it per call (see
//! docs/ARCHITECTURE.md). Credentials come from the usual `AWS_*` variables, the endpoint of an
//! S3-compatible store from `AWS_ENDPOINT_URL` or `--s3-endpoint`; addressing is path-style.
//! Requests are retried with exponential backoff and jitter; large objects go up as multipart
//! uploads; `--limit-upload`/`--limit-download` throttle.

use arca_storage::{ObjectKind, Storage, StorageError, StorageResult};
use opendal::layers::{RetryLayer, ThrottleLayer, TimeoutLayer};
use opendal::options::{ListOptions, ReadOptions, WriteOptions};
use opendal::{blocking, ErrorKind, Operator};
use std::time::Duration;

/// Objects at least this large are uploaded in parts of this size.
const PART_SIZE: usize = 8 << 20;

/// Where and how to reach an S3-compatible store.
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    pub bucket: String,
    pub prefix: String,
    /// e.g. `http://127.0.0.1:8333`; `None`: AWS.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Bytes per second, or `None` for no limit.
    pub limit_upload: Option<u32>,
    pub limit_download: Option<u32>,
}

impl S3Options {
    /// From `s3://bucket/prefix` and the `AWS_*` environment.
    pub fn from_url(url: &str, endpoint: Option<String>) -> Result<S3Options, String> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| format!("{url}: not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{url}: no bucket"));
        }
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Ok(S3Options {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint: endpoint.or_else(|| env("AWS_ENDPOINT_URL_S3")).or_else(|| env("AWS_ENDPOINT_URL")),
            region: env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into()),
            access_key_id: env("AWS_ACCESS_KEY_ID"),
            secret_access_key: env("AWS_SECRET_ACCESS_KEY"),
            session_token: env("AWS_SESSION_TOKEN"),
            limit_upload: None,
            limit_download: None,
        })
    }
}

/// A repository in an S3 bucket.
pub struct S3Storage {
    location: String,
    opts: S3Options,
    rt: tokio::runtime::Runtime,
    op: blocking::Operator,
    /// Separate operators so upload and download limits apply to their own direction.
    upload: blocking::Operator,
    prefix: String,
}

fn operator(o: &S3Options, limit: Option<u32>) -> opendal::Result<Operator> {
    let mut b = opendal::services::S3::default()
        .bucket(&o.bucket)
        .root("/")
        .region(&o.region)
        .disable_config_load()
        .disable_ec2_metadata();
    if let Some(e) = &o.endpoint {
        b = b.endpoint(e);
    }
    if let Some(k) = &o.access_key_id {
        b = b.access_key_id(k);
    }
    if let Some(s) = &o.secret_access_key {
        b = b.secret_access_key(s);
    }
    if let Some(t) = &o.session_token {
        b = b.session_token(t);
    }
    // A stalled connection must fail (and be retried), never hang a backup: no byte for 60 s
    // is a timeout. The timeout layer sits under the retry layer so each attempt is timed.
    let op = Operator::new(b)?
        .layer(TimeoutLayer::new().with_timeout(Duration::from_secs(120)).with_io_timeout(Duration::from_secs(60)))
        .layer(
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

impl S3Storage {
    /// Connect (nothing is sent until the first request).
    pub fn new(o: &S3Options) -> StorageResult<S3Storage> {
        let location = format!("s3://{}/{}", o.bucket, o.prefix);
        let conf = |e: opendal::Error| StorageError::Refused(format!("{location}: {e}"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| StorageError::Io { path: location.clone(), source: e })?;
        let _guard = rt.enter();
        let op = blocking::Operator::new(operator(o, o.limit_download).map_err(conf)?).map_err(conf)?;
        let upload = blocking::Operator::new(operator(o, o.limit_upload).map_err(conf)?).map_err(conf)?;
        let prefix = if o.prefix.is_empty() { String::new() } else { format!("{}/", o.prefix) };
        Ok(S3Storage { location, opts: o.clone(), rt, op, upload, prefix })
    }

    /// Create the bucket unless it exists (`arca init`). OpenDAL does not manage buckets, so
    /// this is one signed `PUT /bucket` (path-style), signed by reqsign as OpenDAL signs.
    pub fn ensure_bucket(&self) -> StorageResult<()> {
        let o = &self.opts;
        let (Some(id), Some(secret)) = (&o.access_key_id, &o.secret_access_key) else {
            return Err(StorageError::Refused(format!(
                "{}: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                self.location
            )));
        };
        let endpoint = o.endpoint.clone().unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", o.region));
        let url = format!("{}/{}", endpoint.trim_end_matches('/'), o.bucket);
        let body = if o.region == "us-east-1" {
            String::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                o.region
            )
        };
        let cred = reqsign::AwsCredential {
            access_key_id: id.clone(),
            secret_access_key: secret.clone(),
            session_token: o.session_token.clone(),
            expires_in: None,
        };
        let path = self.location.clone();
        let io = |e: String| StorageError::Io { path: path.clone(), source: std::io::Error::other(e) };
        let client = reqwest::Client::new();
        let mut req = client.put(&url).body(body).build().map_err(|e| io(e.to_string()))?;
        reqsign::AwsV4Signer::new("s3", &o.region).sign(&mut req, &cred).map_err(|e| io(e.to_string()))?;
        let resp = self.rt.block_on(client.execute(req)).map_err(|e| StorageError::Transient {
            path: path.clone(),
            source: std::io::Error::other(format!("cannot reach {endpoint}: {e}")),
        })?;
        let status = resp.status().as_u16();
        let text = self.rt.block_on(resp.text()).unwrap_or_default();
        match status {
            200..=299 => Ok(()),
            409 if text.contains("BucketAlreadyOwnedByYou") || text.contains("BucketAlreadyExists") => Ok(()),
            403 => Err(StorageError::PermissionDenied { path }),
            _ => Err(io(format!("creating bucket {} failed with HTTP {status}: {}", o.bucket, text.trim()))),
        }
    }

    fn key(&self, kind: ObjectKind, name: &str) -> String {
        format!("{}{}", self.prefix, kind.path(name))
    }

    fn err(&self, key: &str, e: opendal::Error) -> StorageError {
        // OpenDAL's messages carry the request context but never the credentials.
        let path = format!("s3://{}/{}", self.opts.bucket, key);
        match e.kind() {
            ErrorKind::NotFound => StorageError::NotFound { path },
            ErrorKind::AlreadyExists | ErrorKind::ConditionNotMatch => StorageError::AlreadyExists { path },
            ErrorKind::PermissionDenied => StorageError::PermissionDenied { path },
            _ if e.is_temporary() => StorageError::Transient { path, source: std::io::Error::other(e.to_string()) },
            _ => StorageError::Io { path, source: std::io::Error::other(e.to_string()) },
        }
    }
}

impl Storage for S3Storage {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> StorageResult<()> {
        let key = self.key(kind, name);
        let _guard = self.rt.enter();
        // Objects named by their contents are created only if absent (If-None-Match: *): an
        // existing one already holds these bytes, and nothing can replace it with others.
        let content_named =
            matches!(kind, ObjectKind::Pack | ObjectKind::Index | ObjectKind::Snapshot | ObjectKind::Key);
        let opts = WriteOptions {
            chunk: (data.len() > PART_SIZE).then_some(PART_SIZE),
            concurrent: 2,
            if_not_exists: content_named,
            ..Default::default()
        };
        match self.upload.write_options(&key, data.to_vec(), opts) {
            Ok(_) => Ok(()),
            Err(e) if content_named && matches!(e.kind(), ErrorKind::ConditionNotMatch | ErrorKind::AlreadyExists) => {
                Ok(())
            }
            Err(e) => Err(self.err(&key, e)),
        }
    }

    fn get(&self, kind: ObjectKind, name: &str) -> StorageResult<Vec<u8>> {
        let key = self.key(kind, name);
        let _guard = self.rt.enter();
        self.op.read(&key).map(|b| b.to_vec()).map_err(|e| self.err(&key, e))
    }

    fn get_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        let key = self.key(kind, name);
        if length == 0 {
            return self.op.stat(&key).map(|_| vec![]).map_err(|e| self.err(&key, e));
        }
        let _guard = self.rt.enter();
        let opts = ReadOptions { range: (offset..offset + length).into(), ..Default::default() };
        let data = self.op.read_options(&key, opts).map(|b| b.to_vec()).map_err(|e| self.err(&key, e))?;
        if data.len() as u64 != length {
            return Err(StorageError::Io {
                path: format!("s3://{}/{key}", self.opts.bucket),
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
            if name.contains(".tmp-") || name.is_empty() {
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
        self.op.delete(&key).map_err(|e| self.err(&key, e))
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
