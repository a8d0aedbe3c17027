//! Resumable multipart uploads of packs to S3. OpenDAL uploads large objects in parts too,
//! but keeps the upload's id to itself: a process that dies mid-pack loses every part it sent,
//! which on a slow link is minutes of upload for each pack in flight. Here the bytes and upload
//! id of a pack whose upload takes more than a second wait in a spool directory (in the
//! repository's local cache) until the upload completes, so the next session after a crash ([`Multipart::resume`]) asks the store which
//! parts it holds (ListParts) and sends only the others. Within a process each request is
//! retried on its own, so a dropped connection costs one part.
//!
//! Written by hand because no crate does this: OpenDAL has no resume, and the AWS SDK would
//! be a second HTTP stack beside OpenDAL's. The six requests are signed by reqsign, as OpenDAL
//! signs its own, and sent with the same reqwest.
//!
//! The spool holds, per pack, `<name>.pack` (its bytes) and `<name>.upload` (the upload id).
//! The uploading process holds an exclusive lock on `<name>.pack` for as long as it works on
//! it, so a resuming process never takes over a live upload; the lock dies with its process.

use crate::limit::Limit;
use arca_storage::{ObjectKind, StorageError, StorageResult};
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Parts of this size, the last one shorter (S3 wants at least 5 MiB for all but the last).
pub(crate) const PART_SIZE: usize = crate::dal::PART_SIZE;
/// A pack whose upload is still going after this long is spooled so that it can resume after
/// a crash. A quicker one is not worth the disk write: to a fast store every pack would be
/// written twice, for a resumption that would save less than this.
const SPOOL_AFTER: Duration = Duration::from_secs(1);
/// Parts of one pack in flight at once (as OpenDAL sent them).
const PARTS_AT_ONCE: usize = 2;
/// Attempts of one request before its failure is final, and the first wait between them.
const ATTEMPTS: u32 = 5;
const FIRST_WAIT: Duration = Duration::from_millis(200);
/// A throttled part's body goes out in pieces of this size, each paced by the limit.
const PACED_PIECE: usize = 64 << 10;

/// What AWS's SigV4 leaves unescaped in a path segment or query value.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Why a request did not do what was asked.
#[derive(Debug)]
enum Failed {
    /// The upload is gone: completed, aborted, or expired on the store.
    NoSuchUpload,
    /// `If-None-Match: *` refused the completion: the object exists.
    Exists,
    /// Worth another attempt: no connection, a timeout, HTTP 5xx, throttling.
    Transient(String),
    /// Refused for good (denied, malformed), with the store's words.
    Final { status: u16, message: String },
}

/// One part already on the store.
#[derive(Debug, serde::Deserialize)]
struct ListedPart {
    #[serde(rename = "PartNumber")]
    number: u32,
    #[serde(rename = "ETag")]
    etag: String,
    #[serde(rename = "Size")]
    size: u64,
}

#[derive(Debug, Default, serde::Deserialize)]
struct ListPartsResult {
    #[serde(rename = "Part", default)]
    parts: Vec<ListedPart>,
}

#[derive(Debug, serde::Deserialize)]
struct InitiateMultipartUploadResult {
    #[serde(rename = "UploadId")]
    upload_id: String,
}

#[derive(Debug, Default, serde::Deserialize)]
struct S3Error {
    #[serde(rename = "Code", default)]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
}

/// Whether an upload's pack went to the spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spooling {
    /// Not yet: the upload may be over before [`SPOOL_AFTER`].
    Waiting,
    /// Being written (then it is removed once the upload is complete).
    Writing,
    /// The upload is over: too late to spool it.
    Over,
}

/// Where an upload stands when [`Multipart::finish`] takes it on.
enum Begun {
    /// Just started: the store holds no part of it.
    Fresh(String),
    /// Started by an earlier process: the store is asked which parts it holds.
    Earlier(String),
}

/// Pack uploads in parts that survive the process, into one bucket.
pub(crate) struct Multipart {
    /// Shared with OpenDAL: one pool of connections.
    client: reqwest::Client,
    call_limit: Duration,
    /// `{endpoint}/{bucket}`: path-style, as OpenDAL addresses it.
    base: String,
    /// Key prefix of the repository, ending in `/` unless empty.
    prefix: String,
    region: String,
    cred: reqsign::AwsCredential,
    limit: Option<Arc<Limit>>,
    /// For messages: the repository's URL.
    location: String,
    /// Where uploads keep their state; none until a session names it (then packs are spooled).
    spool: OnceLock<PathBuf>,
}

impl Multipart {
    /// The uploader for `o`, or `None` without credentials (anonymous uploads stay OpenDAL's).
    pub(crate) fn new(
        o: &crate::S3Options,
        location: String,
        client: reqwest::Client,
    ) -> StorageResult<Option<Multipart>> {
        let (Some(id), Some(secret)) = (&o.access_key_id, &o.secret_access_key) else { return Ok(None) };
        let endpoint = o.endpoint.clone().unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", o.region));
        let prefix = o.prefix.trim_matches('/');
        Ok(Some(Multipart {
            client,
            // A request must be done within the limit OpenDAL's calls get: a stalled connection
            // then fails (and the request is retried) instead of hanging.
            call_limit: crate::dal::io_call_limit(o.io_timeout, o.connections, o.limit_upload),
            base: format!("{}/{}", endpoint.trim_end_matches('/'), utf8_percent_encode(&o.bucket, UNRESERVED)),
            prefix: if prefix.is_empty() { String::new() } else { format!("{prefix}/") },
            region: o.region.clone(),
            cred: reqsign::AwsCredential {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
                session_token: o.session_token.clone(),
                expires_in: None,
            },
            limit: o.limit_upload.map(|b| Arc::new(Limit::new(b))),
            location,
            spool: OnceLock::new(),
        }))
    }

    /// Keep upload state in `dir` from now on (the first directory named stays).
    pub(crate) fn set_spool(&self, dir: &Path) {
        let _ = self.spool.set(dir.to_path_buf());
    }

    /// True if a pack of `len` bytes goes up here: there is a spool, and it takes two parts.
    pub(crate) fn takes(&self, kind: ObjectKind, len: usize) -> bool {
        kind == ObjectKind::Pack && len > PART_SIZE && self.spool.get().is_some()
    }

    fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, ObjectKind::Pack.path(name))
    }

    /// For messages: where the pack `name` is.
    fn path(&self, name: &str) -> String {
        format!("{}/{}", self.location.trim_end_matches('/'), ObjectKind::Pack.path(name))
    }

    fn error(&self, name: &str, doing: &str, f: Failed) -> StorageError {
        let path = self.path(name);
        match f {
            Failed::Transient(m) => {
                StorageError::Transient { path, source: std::io::Error::other(format!("{doing}: {m}")) }
            }
            Failed::Final { status: 403, .. } => StorageError::PermissionDenied { path },
            Failed::Final { status, message } => {
                StorageError::Io { path, source: std::io::Error::other(format!("{doing}: HTTP {status}: {message}")) }
            }
            Failed::NoSuchUpload => StorageError::Io {
                path,
                source: std::io::Error::other(format!("{doing}: the store no longer has the upload")),
            },
            Failed::Exists => StorageError::AlreadyExists { path },
        }
    }

    /// Upload the pack `name` in parts. One still going after [`SPOOL_AFTER`] is spooled (its
    /// bytes and upload id), and stays spooled if it fails, for the next session to resume.
    pub(crate) async fn put(&self, name: &str, data: Bytes) -> StorageResult<()> {
        let dir = self.spool.get().ok_or(StorageError::Refused("multipart upload without a spool".into()))?;
        let key = self.key(name);
        let id = self.retried(|| self.create(&key)).await.map_err(|f| self.error(name, "starting the upload", f))?;
        let state = Arc::new(Mutex::new(Spooling::Waiting));
        let spooling = {
            let (dir, name, data, id, state) = (dir.clone(), name.to_string(), data.clone(), id.clone(), state.clone());
            tokio::spawn(async move {
                tokio::time::sleep(SPOOL_AFTER).await;
                {
                    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                    if *s == Spooling::Over {
                        return None;
                    }
                    *s = Spooling::Writing;
                }
                let written = tokio::task::spawn_blocking(move || {
                    let held = Spooled::hold(&dir, &name, &data)?;
                    held.keep_upload_id(&id)?;
                    Ok::<_, std::io::Error>(held)
                })
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
                // Without a spool entry (the cache is full or unwritable) the upload still
                // goes; only its resumption after a crash is lost.
                written
                    .inspect_err(|e| tracing::warn!(error = %e, "cannot keep a pack in the upload spool; its upload cannot resume after a crash"))
                    .ok()
            })
        };
        let done = self.finish(name, &data, Some(Begun::Fresh(id.clone())), None).await;
        let was = std::mem::replace(&mut *state.lock().unwrap_or_else(|p| p.into_inner()), Spooling::Over);
        let kept = if was == Spooling::Writing {
            spooling.await.ok().flatten()
        } else {
            spooling.abort();
            None
        };
        match (&done, kept) {
            (Ok(()), Some(held)) => held.remove(),
            // Spooled, and worth trying again: the next session resumes it.
            (Err(e), Some(_)) if is_transient(e) => {}
            // Refused for good, or nothing to resume it from: its parts would only cost storage.
            (Err(_), held) => {
                let _ = self.retried(|| self.abort(&key, &id)).await;
                if let Some(h) = held {
                    h.remove();
                }
            }
            (Ok(()), None) => {}
        }
        done
    }

    /// Bring the upload of `name` to completion from where `begun` says it stands (`None`:
    /// not begun).
    async fn finish(
        &self,
        name: &str,
        data: &Bytes,
        begun: Option<Begun>,
        held: Option<&Spooled>,
    ) -> StorageResult<()> {
        let key = self.key(name);
        let mut begun = begun;
        loop {
            let (id, fresh) = match begun.take() {
                Some(Begun::Earlier(id)) => (id, false),
                Some(Begun::Fresh(id)) => (id, true),
                None => (
                    self.retried(|| self.create(&key)).await.map_err(|f| self.error(name, "starting the upload", f))?,
                    true,
                ),
            };
            if let (true, Some(h)) = (fresh, held) {
                if let Err(e) = h.keep_upload_id(&id) {
                    tracing::warn!(pack = name, error = %e, "cannot record the upload id; its upload cannot resume after a crash");
                }
            }
            let parts = match self.send_parts(&key, &id, data, fresh).await {
                Ok(p) => p,
                Err(Failed::NoSuchUpload) if !fresh => {
                    // Completed by the process that began it (then the pack is there), or
                    // aborted or expired: then it starts over.
                    if self.exists(&key).await.map_err(|f| self.error(name, "looking for the pack", f))? {
                        return Ok(());
                    }
                    continue;
                }
                Err(f) => return Err(self.error(name, "uploading a part", f)),
            };
            return match self.retried(|| self.complete(&key, &id, &parts)).await {
                Ok(()) => Ok(()),
                // Content-named: the object there holds these bytes. The parts go.
                Err(Failed::Exists) => {
                    let _ = self.retried(|| self.abort(&key, &id)).await;
                    Ok(())
                }
                Err(Failed::NoSuchUpload) if self.exists(&key).await.unwrap_or(false) => Ok(()),
                Err(f) => Err(self.error(name, "completing the upload", f)),
            };
        }
    }

    /// Send the parts the store does not hold (all of them for a `fresh` upload), returning
    /// every part's ETag in order.
    async fn send_parts(&self, key: &str, id: &str, data: &Bytes, fresh: bool) -> Result<Vec<String>, Failed> {
        let have: HashMap<u32, ListedPart> = if fresh {
            HashMap::new()
        } else {
            self.retried(|| self.list_parts(key, id)).await?.into_iter().map(|p| (p.number, p)).collect()
        };
        let count = data.len().div_ceil(PART_SIZE).max(1);
        stream::iter(1..=count as u32)
            .map(|n| {
                let start = (n as usize - 1) * PART_SIZE;
                let part = data.slice(start..(start + PART_SIZE).min(data.len()));
                let held = have.get(&n).filter(|p| p.size == part.len() as u64).map(|p| p.etag.clone());
                async move {
                    match held {
                        Some(etag) => {
                            tracing::debug!(target: "arca::storage", key, part = n, "part already stored; not sent again");
                            Ok(etag)
                        }
                        None => {
                            let etag = self.retried(|| self.upload_part(key, id, n, part.clone())).await?;
                            arca_storage::failpoint::hit("multipart-part-sent");
                            Ok(etag)
                        }
                    }
                }
            })
            .buffered(PARTS_AT_ONCE)
            .try_collect()
            .await
    }

    /// Finish the uploads an earlier process left in the spool `dir` whose bytes `accept`
    /// takes (the rest are aborted and dropped); the names of the packs now stored. An upload
    /// that fails again stays for the next session.
    pub(crate) async fn resume(
        &self,
        dir: &Path,
        accept: &mut dyn FnMut(&str, &[u8]) -> bool,
    ) -> StorageResult<Vec<String>> {
        self.set_spool(dir);
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(StorageError::from_io(dir.display().to_string(), e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".pack")).map(String::from))
            .collect();
        names.sort();
        let mut done = vec![];
        for name in names {
            // Taken by a live upload (another process, or this one's own): not ours to finish.
            let Some(held) = Spooled::take(dir, &name) else { continue };
            let Some((id, part_size)) = held.upload_id() else {
                // Killed between spooling the pack and recording its upload: begun afresh.
                held.remove();
                continue;
            };
            let data = match fs::read(&held.pack) {
                Ok(d) => Bytes::from(d),
                Err(e) => {
                    tracing::warn!(pack = name, error = %e, "cannot read the spooled pack; its upload stays for the next session");
                    continue;
                }
            };
            if !accept(&name, &data) {
                tracing::debug!(pack = name, "the spooled pack was refused: its upload is abandoned");
                let key = self.key(&name);
                let _ = self.retried(|| self.abort(&key, &id)).await;
                held.remove();
                continue;
            }
            // Parts of another size (an arca that cut them otherwise) cannot be reused.
            let begun = if part_size == PART_SIZE {
                Some(Begun::Earlier(id.clone()))
            } else {
                let key = self.key(&name);
                let _ = self.retried(|| self.abort(&key, &id)).await;
                None
            };
            match self.finish(&name, &data, begun, Some(&held)).await {
                Ok(()) => {
                    held.remove();
                    done.push(name);
                }
                Err(e) if is_transient(&e) => {
                    tracing::warn!(pack = name, error = %e, "the interrupted upload did not finish; it stays for the next session")
                }
                Err(e) => {
                    tracing::warn!(pack = name, error = %e, "the interrupted upload was refused; it is abandoned");
                    let key = self.key(&name);
                    let _ = self.retried(|| self.abort(&key, &id)).await;
                    held.remove();
                }
            }
        }
        Ok(done)
    }

    /// Run `request` until it succeeds, fails for good, or runs out of attempts; the waits
    /// between attempts grow fourfold.
    async fn retried<T, F, Fut>(&self, request: F) -> Result<T, Failed>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, Failed>>,
    {
        let mut wait = FIRST_WAIT;
        let mut attempt = 1;
        loop {
            match request().await {
                Err(Failed::Transient(m)) if attempt < ATTEMPTS => {
                    tracing::debug!(attempt, error = %m, "S3 request failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 4;
                    attempt += 1;
                }
                Err(Failed::Transient(m)) => return Err(Failed::Transient(format!("{m} (after {ATTEMPTS} attempts)"))),
                other => return other,
            }
        }
    }

    /// Sign and send one request; its body as text, or why it failed.
    async fn send(
        &self,
        method: reqwest::Method,
        url: String,
        body: reqwest::Body,
        if_none_match: bool,
    ) -> Result<(reqwest::header::HeaderMap, String), Failed> {
        let mut req = self.client.request(method, &url).body(body).timeout(self.call_limit);
        if if_none_match {
            req = req.header(reqwest::header::IF_NONE_MATCH, "*");
        }
        let mut req = req.build().map_err(|e| Failed::Final { status: 0, message: e.to_string() })?;
        reqsign::AwsV4Signer::new("s3", &self.region)
            .sign(&mut req, &self.cred)
            .map_err(|e| Failed::Final { status: 0, message: format!("cannot sign the request: {e}") })?;
        let resp = self.client.execute(req).await.map_err(|e| Failed::Transient(e.to_string()))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(|e| Failed::Transient(e.to_string()))?;
        // S3 can answer a completion with 200 and an error in the body.
        let err: Option<S3Error> = (!(200..300).contains(&status) || text.contains("<Error>"))
            .then(|| quick_xml::de::from_str(&text).unwrap_or_default());
        match (status, err) {
            (_, None) => Ok((headers, text)),
            (_, Some(e)) if e.code == "NoSuchUpload" => Err(Failed::NoSuchUpload),
            (412, _) => Err(Failed::Exists),
            (_, Some(e)) if e.code == "PreconditionFailed" => Err(Failed::Exists),
            (429 | 500..=599, Some(e)) => Err(Failed::Transient(format!("HTTP {status} {} {}", e.code, e.message))),
            (_, Some(e)) if matches!(e.code.as_str(), "SlowDown" | "InternalError" | "RequestTimeout") => {
                Err(Failed::Transient(format!("{} {}", e.code, e.message)))
            }
            (_, Some(e)) => Err(Failed::Final {
                status,
                message: if e.code.is_empty() {
                    text.trim().chars().take(300).collect()
                } else {
                    format!("{} {}", e.code, e.message)
                },
            }),
        }
    }

    /// Create the bucket unless it exists (`arca init`): one signed `PUT /bucket`, as OpenDAL
    /// has no bucket API.
    pub(crate) async fn ensure_bucket(&self) -> StorageResult<()> {
        let body = if self.region == "us-east-1" {
            String::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.region
            )
        };
        let path = self.location.clone();
        match self
            .retried(|| self.send(reqwest::Method::PUT, self.base.clone(), reqwest::Body::from(body.clone()), false))
            .await
        {
            Ok(_) => Ok(()),
            Err(Failed::Final { status: 409, message }) if message.starts_with("BucketAlready") => Ok(()),
            Err(Failed::Final { status: 403, .. }) => Err(StorageError::PermissionDenied { path }),
            Err(Failed::Transient(m)) => Err(StorageError::Transient {
                path,
                source: std::io::Error::other(format!("creating the bucket: {m}")),
            }),
            Err(Failed::Final { status, message }) => Err(StorageError::Io {
                path,
                source: std::io::Error::other(format!("creating the bucket failed with HTTP {status}: {message}")),
            }),
            Err(Failed::NoSuchUpload | Failed::Exists) => Ok(()),
        }
    }

    fn url(&self, key: &str) -> String {
        let key: Vec<String> = key.split('/').map(|s| utf8_percent_encode(s, UNRESERVED).to_string()).collect();
        format!("{}/{}", self.base, key.join("/"))
    }

    fn with_upload(&self, key: &str, id: &str) -> String {
        format!("{}?uploadId={}", self.url(key), utf8_percent_encode(id, UNRESERVED))
    }

    async fn create(&self, key: &str) -> Result<String, Failed> {
        let (_, text) = self
            .send(reqwest::Method::POST, format!("{}?uploads=", self.url(key)), reqwest::Body::from(""), false)
            .await?;
        let r: InitiateMultipartUploadResult = quick_xml::de::from_str(&text).map_err(|e| Failed::Final {
            status: 200,
            message: format!("unreadable answer to starting an upload: {e}"),
        })?;
        Ok(r.upload_id)
    }

    async fn list_parts(&self, key: &str, id: &str) -> Result<Vec<ListedPart>, Failed> {
        // Packs have a few parts: one page (up to 1,000) holds them; a part not listed is sent again.
        let (_, text) =
            self.send(reqwest::Method::GET, self.with_upload(key, id), reqwest::Body::from(""), false).await?;
        let r: ListPartsResult = quick_xml::de::from_str(&text)
            .map_err(|e| Failed::Final { status: 200, message: format!("unreadable list of parts: {e}") })?;
        Ok(r.parts)
    }

    async fn upload_part(&self, key: &str, id: &str, n: u32, part: Bytes) -> Result<String, Failed> {
        let url = format!("{}?partNumber={n}&uploadId={}", self.url(key), utf8_percent_encode(id, UNRESERVED));
        let body = match &self.limit {
            None => reqwest::Body::from(part),
            Some(limit) => {
                let limit = limit.clone();
                let pieces: Vec<Bytes> = (0..part.len())
                    .step_by(PACED_PIECE)
                    .map(|o| part.slice(o..(o + PACED_PIECE).min(part.len())))
                    .collect();
                reqwest::Body::wrap_stream(stream::iter(pieces).then(move |p| {
                    let limit = limit.clone();
                    async move {
                        limit.ready(p.len()).await;
                        Ok::<Bytes, std::io::Error>(p)
                    }
                }))
            }
        };
        let (headers, _) = self.send(reqwest::Method::PUT, url, body, false).await?;
        headers
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
            .ok_or(Failed::Final { status: 200, message: format!("no ETag for part {n}") })
    }

    async fn complete(&self, key: &str, id: &str, etags: &[String]) -> Result<(), Failed> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (i, etag) in etags.iter().enumerate() {
            xml.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                quick_xml::escape::escape(etag.as_str())
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        // Created only if absent, as every content-named object.
        self.send(reqwest::Method::POST, self.with_upload(key, id), reqwest::Body::from(xml), true).await.map(|_| ())
    }

    async fn abort(&self, key: &str, id: &str) -> Result<(), Failed> {
        match self.send(reqwest::Method::DELETE, self.with_upload(key, id), reqwest::Body::from(""), false).await {
            Ok(_) | Err(Failed::NoSuchUpload) => Ok(()),
            Err(f) => Err(f),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, Failed> {
        match self.send(reqwest::Method::HEAD, self.url(key), reqwest::Body::from(""), false).await {
            Ok(_) => Ok(true),
            Err(Failed::Final { status: 404, .. }) => Ok(false),
            Err(f) => Err(f),
        }
    }
}

/// One pack's entry in the spool, locked while this process works on it.
struct Spooled {
    /// Open and locked; the lock goes when it is dropped.
    _file: File,
    pack: PathBuf,
    upload: PathBuf,
}

impl Spooled {
    fn paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        (dir.join(format!("{name}.pack")), dir.join(format!("{name}.upload")))
    }

    /// Take `name`'s entry for a new upload of `data`, waiting for a process that works on
    /// it (a resumption) to let go, and write the bytes.
    fn hold(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<Spooled> {
        crate::create_private_dir(dir)?;
        let (pack, upload) = Self::paths(dir, name);
        let file = loop {
            let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&pack)?;
            file.lock()?;
            // A resumption that took the file first may have removed it: lock the one there.
            if still_named(&file, &pack) {
                break file;
            }
        };
        // A resumption may have finished it while this waited: begin afresh either way.
        let _ = fs::remove_file(&upload);
        file.set_len(0)?;
        (&file).write_all(data)?;
        Ok(Spooled { _file: file, pack, upload })
    }

    /// Take `name`'s entry to resume it, unless a live process holds it.
    fn take(dir: &Path, name: &str) -> Option<Spooled> {
        let (pack, upload) = Self::paths(dir, name);
        let file = OpenOptions::new().read(true).open(&pack).ok()?;
        file.try_lock().ok()?;
        // Its owner finished and removed it between the listing and the lock.
        if !still_named(&file, &pack) {
            return None;
        }
        Some(Spooled { _file: file, pack, upload })
    }

    /// The recorded upload id and the size its parts were cut to.
    fn upload_id(&self) -> Option<(String, usize)> {
        let text = fs::read_to_string(&self.upload).ok()?;
        let (id, part_size) = text.trim().split_once('\n')?;
        Some((id.to_string(), part_size.trim().parse().ok()?)).filter(|(id, _)| !id.is_empty())
    }

    /// Record the upload id (and the part size), whole or not at all (a temporary file renamed
    /// into place).
    fn keep_upload_id(&self, id: &str) -> std::io::Result<()> {
        let tmp = self.upload.with_extension("upload-new");
        fs::write(&tmp, format!("{id}\n{PART_SIZE}\n"))?;
        fs::rename(&tmp, &self.upload)
    }

    /// Drop the entry: the upload id first, so a pack file without one is known to be dead.
    fn remove(self) {
        let _ = fs::remove_file(&self.upload);
        let _ = fs::remove_file(&self.pack);
    }
}

/// True if `path` still names the open `file` (not removed, nor replaced, since it was opened).
fn still_named(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// True if `e` may pass on another attempt (then a spooled upload waits for the next session).
fn is_transient(e: &StorageError) -> bool {
    matches!(e, StorageError::Transient { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live upload's entry is not taken by a resumption; once let go, it is, with its upload
    /// id and part size; a removed entry is gone.
    #[test]
    fn a_spool_entry_is_taken_only_when_its_uploader_let_go() {
        let d = tempfile::tempdir().unwrap();
        let held = Spooled::hold(d.path(), "ab", b"pack bytes").unwrap();
        held.keep_upload_id("upload-1").unwrap();
        assert!(Spooled::take(d.path(), "ab").is_none(), "a live upload is not taken over");
        drop(held);
        let taken = Spooled::take(d.path(), "ab").expect("let go: taken");
        assert_eq!(taken.upload_id(), Some(("upload-1".to_string(), PART_SIZE)));
        assert_eq!(fs::read(&taken.pack).unwrap(), b"pack bytes");
        // A new upload of the same pack waits for the resumption, then begins afresh.
        let again = std::thread::scope(|s| {
            let waiting = s.spawn(|| Spooled::hold(d.path(), "ab", b"pack bytes").unwrap());
            std::thread::sleep(Duration::from_millis(100));
            assert!(!waiting.is_finished(), "it waits while the entry is taken");
            taken.remove();
            waiting.join().unwrap()
        });
        assert_eq!(again.upload_id(), None, "begun afresh: no upload id yet");
        again.remove();
        assert!(Spooled::take(d.path(), "ab").is_none());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0, "nothing left in the spool");
    }

    #[test]
    fn an_upload_id_without_a_part_size_is_not_resumed_from() {
        let d = tempfile::tempdir().unwrap();
        let held = Spooled::hold(d.path(), "cd", b"x").unwrap();
        fs::write(&held.upload, "old-format-id").unwrap();
        assert_eq!(held.upload_id(), None);
        held.remove();
    }
}
