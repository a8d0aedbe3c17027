//! `s3://bucket/prefix` repositories through OpenDAL (see `dal.rs` for what all OpenDAL
//! services share). Credentials come from the usual `AWS_*` variables, the endpoint of an
//! S3-compatible store from `AWS_ENDPOINT_URL` or `--s3-endpoint`; addressing is path-style.
//! Large objects go up as multipart uploads; content-named objects are created only if absent.
//! Once a session names a spool directory, large packs go up through `multipart.rs` instead,
//! whose uploads resume after a crash.

use crate::dal::{layered, DalStorage, Writes};
use arca_storage::{ObjectKind, Storage, StorageError, StorageResult};

/// Where and how to reach an S3-compatible store.
#[derive(Clone, Debug)]
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
    /// Requests in flight at once (`--connections`).
    pub connections: usize,
    /// No byte for this long: the request is stalled (`--io-timeout`).
    pub io_timeout: std::time::Duration,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            bucket: String::new(),
            prefix: String::new(),
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            limit_upload: None,
            limit_download: None,
            connections: crate::DEFAULT_CONNECTIONS,
            io_timeout: crate::DEFAULT_IO_TIMEOUT,
        }
    }
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
            connections: crate::DEFAULT_CONNECTIONS,
            io_timeout: crate::DEFAULT_IO_TIMEOUT,
        })
    }
}

/// A repository in an S3 bucket.
pub struct S3Storage {
    dal: DalStorage,
    /// Resumable pack uploads (`None` without credentials).
    multipart: Option<crate::multipart::Multipart>,
}

fn operator(o: &S3Options, limit: Option<u32>, client: &reqwest::Client) -> opendal::Result<opendal::Operator> {
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
    // One HTTP client (one pool of connections, warm) for OpenDAL and the multipart uploads.
    let http = opendal::raw::HttpClient::with(client.clone());
    Ok(layered(b, limit, o.io_timeout, o.connections)?.layer(opendal::layers::HttpClientLayer::new(http)))
}

impl S3Storage {
    /// Connect (nothing is sent until the first request).
    pub fn new(o: &S3Options) -> StorageResult<S3Storage> {
        let location = format!("s3://{}/{}", o.bucket, o.prefix);
        let limits = (o.limit_upload, o.limit_download);
        // No read timeout here: reqwest's runs from the start of a request until its answer,
        // sending included, so it would cap every upload at `--io-timeout`. OpenDAL's timeout
        // layer and the multipart requests' own limit bound the calls instead.
        let client = reqwest::Client::builder()
            .connect_timeout(o.io_timeout)
            .build()
            .map_err(|e| StorageError::Refused(format!("{location}: {e}")))?;
        let mut dal =
            DalStorage::new(location, &o.prefix, Writes::Conditional, limits, |limit| operator(o, limit, &client))?;
        dal.transfers = o.connections.max(1);
        let multipart = crate::multipart::Multipart::new(o, dal.location(), client)?;
        Ok(S3Storage { dal, multipart })
    }

    /// Create the bucket unless it exists (`arca init`).
    pub fn ensure_bucket(&self) -> StorageResult<()> {
        match &self.multipart {
            Some(m) => self.dal.rt.block_on(m.ensure_bucket()),
            None => Err(StorageError::Refused(format!(
                "{}: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                self.dal.location()
            ))),
        }
    }
}

impl Storage for S3Storage {
    fn location(&self) -> String {
        self.dal.location()
    }
    fn transfers(&self) -> usize {
        self.dal.transfers()
    }
    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> StorageResult<()> {
        self.dal.put(kind, name, data)
    }
    fn put_bytes(&self, kind: ObjectKind, name: &str, data: bytes::Bytes) -> StorageResult<()> {
        match &self.multipart {
            Some(m) if m.takes(kind, data.len()) => self.dal.rt.block_on(m.put(name, data)),
            _ => self.dal.put_bytes(kind, name, data),
        }
    }
    fn resume_uploads(
        &self,
        spool: &std::path::Path,
        accept: &mut dyn FnMut(&str, &[u8]) -> bool,
    ) -> StorageResult<Vec<String>> {
        match &self.multipart {
            Some(m) => self.dal.rt.block_on(m.resume(spool, accept)),
            None => Ok(vec![]),
        }
    }
    fn get(&self, kind: ObjectKind, name: &str) -> StorageResult<Vec<u8>> {
        self.dal.get(kind, name)
    }
    fn get_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        self.dal.get_range(kind, name, offset, length)
    }
    fn list(&self, kind: ObjectKind) -> StorageResult<Vec<(String, u64)>> {
        self.dal.list(kind)
    }
    fn delete(&self, kind: ObjectKind, name: &str) -> StorageResult<()> {
        self.dal.delete(kind, name)
    }
    fn exists(&self, kind: ObjectKind, name: &str) -> StorageResult<bool> {
        self.dal.exists(kind, name)
    }
}
