//! `sftp://[user@]host[:port]/path` repositories: the system `ssh` (with the user's
//! `--ssh-command` options) runs the server's `sftp` subsystem, and `openssh-sftp-client`
//! speaks SFTP over its pipes. Objects are written to a temporary name and renamed, so a
//! reader never sees half an object. A dropped connection is re-opened and the operation
//! retried with backoff and jitter.

use crate::ssh_process;
use arca_storage::{ObjectKind, Storage, StorageError, StorageResult};
use openssh_sftp_client::error::SftpErrorKind;
use openssh_sftp_client::fs::Fs;
use openssh_sftp_client::{Error, Sftp, SftpOptions};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

struct Conn {
    sftp: Sftp,
    child: tokio::process::Child,
}

/// A repository on an SFTP server.
pub struct SftpStorage {
    location: String,
    command: Vec<String>,
    root: String,
    rt: tokio::runtime::Runtime,
    conn: Mutex<Option<Arc<Conn>>>,
    /// Requests a writer keeps in flight; SFTP multiplexes them on one session.
    transfers: usize,
}

type Op<T> = Box<dyn Fn(Arc<Conn>) -> Pin<Box<dyn Future<Output = Result<T, Error>> + Send>> + Send + Sync>;

enum Failure {
    /// The server answered: final.
    Server(SftpErrorKind, String),
    /// The connection failed: worth reconnecting.
    Connection(String),
}

fn classify(e: Error) -> Failure {
    match e {
        Error::SftpError(kind, msg) => Failure::Server(kind, format!("{msg}")),
        other => Failure::Connection(other.to_string()),
    }
}

impl SftpStorage {
    /// Run `command` (ssh … host -s sftp) and open the SFTP session; objects live under `root`.
    /// Up to `transfers` requests go in flight at once on it.
    pub fn connect(
        location: String,
        command: Vec<String>,
        root: String,
        transfers: usize,
    ) -> StorageResult<SftpStorage> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| StorageError::Io { path: location.clone(), source: e })?;
        let root = root.trim_end_matches('/').to_string();
        let s = SftpStorage { location, command, root, rt, conn: Mutex::new(None), transfers: transfers.max(1) };
        s.conn()?;
        Ok(s)
    }

    fn lost(&self, doing: &str, e: impl std::fmt::Display) -> StorageError {
        ssh_process::lost(&self.location, &format!("while {doing}"), e)
    }

    fn open(&self) -> StorageResult<Conn> {
        let _guard = self.rt.enter();
        let mut child = tokio::process::Command::from(ssh_process::command(&self.command)?)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ssh_process::spawn_failed(&self.location, &self.command, e))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(self.lost("starting", "no pipes"));
        };
        if let Some(err) = child.stderr.take().and_then(|e| e.into_owned_fd().ok()) {
            let _ = ssh_process::forward_stderr(std::fs::File::from(err));
        }
        let sftp = self
            .rt
            .block_on(Sftp::new(stdin, stdout, SftpOptions::default()))
            .map_err(|e| self.lost("starting the SFTP session", e))?;
        Ok(Conn { sftp, child })
    }

    fn conn(&self) -> StorageResult<Arc<Conn>> {
        let mut g = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = g.as_ref() {
            return Ok(c.clone());
        }
        let c = Arc::new(self.open()?);
        *g = Some(c.clone());
        Ok(c)
    }

    fn drop_conn(&self) {
        if let Some(c) = self.conn.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if let Ok(mut c) = Arc::try_unwrap(c) {
                let _ = c.child.start_kill();
            }
        }
    }

    /// Run `op` on a session, reconnecting and retrying when the connection fails.
    fn run<T>(&self, path: &str, doing: &str, op: Op<T>) -> StorageResult<T> {
        ssh_process::RETRY.run(&self.location, doing, |_| {
            let conn = self.conn()?;
            self.rt.block_on(op(conn)).map_err(|e| match classify(e) {
                Failure::Server(SftpErrorKind::NoSuchFile, _) => StorageError::NotFound { path: path.to_string() },
                Failure::Server(SftpErrorKind::PermDenied, _) => {
                    StorageError::PermissionDenied { path: path.to_string() }
                }
                Failure::Server(kind, msg) => StorageError::Io {
                    path: path.to_string(),
                    source: std::io::Error::other(format!("SFTP server: {kind:?} {msg}")),
                },
                Failure::Connection(m) => {
                    self.drop_conn();
                    ssh_process::dropped(&self.location, m)
                }
            })
        })
    }

    fn full(&self, kind: ObjectKind, name: &str) -> String {
        format!("{}/{}", self.root, kind.path(name))
    }

    fn shown(&self, kind: ObjectKind, name: &str) -> String {
        format!("{}/{}", self.location, kind.path(name))
    }
}

/// Create `dir` and its parents (ignoring those that exist).
async fn mkdirs(fs: &mut Fs, dir: &str) -> Result<(), Error> {
    let mut at = String::new();
    for part in dir.split('/').filter(|p| !p.is_empty()) {
        at.push('/');
        at.push_str(part);
        if fs.metadata(&at).await.is_err() {
            if let Err(e) = fs.create_dir(&at).await {
                // Raced with another writer: fine if it exists now.
                if fs.metadata(&at).await.is_err() {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

impl Storage for SftpStorage {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn transfers(&self) -> usize {
        self.transfers
    }

    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> StorageResult<()> {
        let path = self.full(kind, name);
        let tmp = format!("{path}.tmp-{:016x}", rand::random::<u64>());
        let dir = path.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
        let data = Arc::new(data.to_vec());
        let replace = !matches!(kind, ObjectKind::Pack | ObjectKind::Index | ObjectKind::Snapshot | ObjectKind::Key);
        self.run(
            &self.shown(kind, name),
            &format!("uploading {}", kind.path(name)),
            Box::new(move |conn: Arc<Conn>| {
                let (path, tmp, dir, data) = (path.clone(), tmp.clone(), dir.clone(), data.clone());
                Box::pin(async move {
                    let mut fs = conn.sftp.fs();
                    if fs.write(&tmp, &data[..]).await.is_err() {
                        mkdirs(&mut fs, &dir).await?;
                        fs.write(&tmp, &data[..]).await?;
                    }
                    if let Err(e) = fs.rename(&tmp, &path).await {
                        // SFTP v3 rename refuses an existing target. A content-addressed object
                        // that exists already holds these bytes; others are replaced.
                        let exists = fs.metadata(&path).await.is_ok();
                        if !exists {
                            let _ = fs.remove_file(&tmp).await;
                            return Err(e);
                        }
                        if replace {
                            fs.remove_file(&path).await?;
                            fs.rename(&tmp, &path).await?;
                        } else {
                            fs.remove_file(&tmp).await?;
                        }
                    }
                    Ok(())
                })
            }),
        )
    }

    fn get(&self, kind: ObjectKind, name: &str) -> StorageResult<Vec<u8>> {
        let path = self.full(kind, name);
        let data = self.run(
            &self.shown(kind, name),
            &format!("downloading {}", kind.path(name)),
            Box::new(move |conn: Arc<Conn>| {
                let path = path.clone();
                Box::pin(async move { conn.sftp.fs().read(&path).await.map(|b| b.to_vec()) })
            }),
        )?;
        Ok(data)
    }

    fn get_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        let path = self.full(kind, name);
        let shown = self.shown(kind, name);
        let data = self.run(
            &shown,
            &format!("downloading {}", kind.path(name)),
            Box::new(move |conn: Arc<Conn>| {
                let path = path.clone();
                Box::pin(async move {
                    use tokio::io::AsyncSeekExt;
                    let mut f = conn.sftp.options().read(true).open(&path).await?;
                    f.seek(std::io::SeekFrom::Start(offset)).await.map_err(Error::from)?;
                    let mut out = Vec::with_capacity(length.min(64 << 20) as usize);
                    while (out.len() as u64) < length {
                        let want = (length - out.len() as u64).min(256 << 10) as u32;
                        match f.read(want, bytes::BytesMut::with_capacity(want as usize)).await? {
                            Some(b) if !b.is_empty() => out.extend_from_slice(&b),
                            _ => break,
                        }
                    }
                    Ok(out)
                })
            }),
        )?;
        if data.len() as u64 != length {
            return Err(StorageError::Io {
                path: shown,
                source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "object is shorter than the range"),
            });
        }
        Ok(data)
    }

    fn list(&self, kind: ObjectKind) -> StorageResult<Vec<(String, u64)>> {
        let dir = format!("{}/{}", self.root, kind.dir());
        let fan_out = kind == ObjectKind::Pack;
        let shown = format!("{}/{}", self.location, kind.dir());
        let r = self.run(
            &shown,
            &format!("listing {}", kind.dir()),
            Box::new(move |conn: Arc<Conn>| {
                let dir = dir.clone();
                Box::pin(async move {
                    let mut fs = conn.sftp.fs();
                    let mut out = vec![];
                    let mut dirs = vec![dir];
                    let mut depth = 0;
                    while !dirs.is_empty() {
                        let mut next = vec![];
                        for d in dirs {
                            for e in collect(&mut fs, &d).await? {
                                let name = e.0;
                                if name == "." || name == ".." || name.contains(".tmp-") {
                                    continue;
                                }
                                if e.2 {
                                    if fan_out && depth == 0 {
                                        next.push(format!("{d}/{name}"));
                                    }
                                } else {
                                    out.push((name, e.1));
                                }
                            }
                        }
                        dirs = next;
                        depth += 1;
                    }
                    Ok(out)
                })
            }),
        );
        match r {
            Ok(mut v) => {
                v.sort();
                Ok(v)
            }
            Err(StorageError::NotFound { .. }) => Ok(vec![]),
            Err(e) => Err(e),
        }
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> StorageResult<()> {
        let path = self.full(kind, name);
        match self.run(
            &self.shown(kind, name),
            &format!("deleting {}", kind.path(name)),
            Box::new(move |conn: Arc<Conn>| {
                let path = path.clone();
                Box::pin(async move { conn.sftp.fs().remove_file(&path).await })
            }),
        ) {
            Err(StorageError::NotFound { .. }) => Ok(()),
            r => r,
        }
    }

    fn exists(&self, kind: ObjectKind, name: &str) -> StorageResult<bool> {
        let path = self.full(kind, name);
        match self.run(
            &self.shown(kind, name),
            &format!("looking up {}", kind.path(name)),
            Box::new(move |conn: Arc<Conn>| {
                let path = path.clone();
                Box::pin(async move { conn.sftp.fs().metadata(&path).await.map(|_| ()) })
            }),
        ) {
            Ok(()) => Ok(true),
            Err(StorageError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// (name, size, is directory) of every entry of `dir`.
async fn collect(fs: &mut Fs, dir: &str) -> Result<Vec<(String, u64, bool)>, Error> {
    use futures_core::Stream;
    let handle = fs.open_dir(dir).await?;
    let mut stream = std::pin::pin!(handle.read_dir());
    let mut out = vec![];
    while let Some(entry) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        let e = entry?;
        let md = e.metadata();
        out.push((
            e.filename().to_string_lossy().into_owned(),
            md.len().unwrap_or(0),
            md.file_type().is_some_and(|t| t.is_dir()),
        ));
    }
    Ok(out)
}

impl Drop for SftpStorage {
    fn drop(&mut self) {
        self.drop_conn();
    }
}
