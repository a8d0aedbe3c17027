//! `sftp://[user@]host[:port]/path` repositories: the system `ssh` (with the user's
//! `--ssh-command` options) runs the server's `sftp` subsystem, and `openssh-sftp-client`
//! speaks SFTP over its pipes. Objects are written to a temporary name and renamed, so a
//! reader never sees half an object. A dropped connection is re-opened and the operation
//! retried with backoff and jitter.

use crate::ssh_process;
use arca_storage::{ObjectKind, Storage, StorageError, StorageResult};
use futures_util::{StreamExt, TryStreamExt};
use openssh_sftp_client::error::SftpErrorKind;
use openssh_sftp_client::file::File;
use openssh_sftp_client::fs::Fs;
use openssh_sftp_client::{Error, Sftp, SftpOptions};
use std::future::Future;
use std::io::SeekFrom;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncSeekExt;

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
    sessions: Arc<Mutex<Sessions>>,
}

/// The SFTP sessions, each its own ssh connection. One session multiplexes requests, but ssh
/// lets at most one channel window (2 MiB for OpenSSH) travel per round trip: 50 MiB/s at
/// 40 ms. A request goes to an idle session; when none is idle and fewer than `most` exist,
/// another is opened in the background (an ssh handshake takes several round trips, which the
/// request does not wait for: it shares the least busy session meanwhile).
struct Sessions {
    open: Vec<Arc<Conn>>,
    /// Being opened now (counted against `most`).
    opening: usize,
    /// Lowered when an extra session cannot be opened (an ssh that asks for a password
    /// again, a server limit), so the sessions there keep working.
    most: usize,
}

/// One operation, run again on a new session after a dropped connection; it may borrow the
/// caller's data (a pack is not copied to be sent).
type Op<'a, T> =
    Box<dyn Fn(Arc<Conn>) -> Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>> + Send + Sync + 'a>;

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
        let s = SftpStorage {
            location,
            command,
            root,
            rt,
            sessions: Arc::new(Mutex::new(Sessions { open: vec![], opening: 0, most: transfers.max(1) })),
        };
        s.conn()?;
        Ok(s)
    }

    /// A new session (an ssh process and its SFTP handshake).
    fn open(rt: &tokio::runtime::Handle, location: &str, command: &[String]) -> StorageResult<Conn> {
        let lost = |doing: &str, e: &dyn std::fmt::Display| ssh_process::lost(location, &format!("while {doing}"), e);
        let _guard = rt.enter();
        let mut child = tokio::process::Command::from(ssh_process::command(command)?)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ssh_process::spawn_failed(location, command, e))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(lost("starting", &"no pipes"));
        };
        if let Some(err) = child.stderr.take().and_then(|e| e.into_owned_fd().ok()) {
            let _ = ssh_process::forward_stderr(std::fs::File::from(err));
        }
        let sftp = rt
            .block_on(Sftp::new(stdin, stdout, SftpOptions::default()))
            .map_err(|e| lost("starting the SFTP session", &e))?;
        Ok(Conn { sftp, child })
    }

    /// Open another session on a thread of its own; it joins the pool when ready. If it
    /// cannot be opened, the pool stays as large as it is.
    fn open_in_background(&self) {
        let (rt, location, command) = (self.rt.handle().clone(), self.location.clone(), self.command.clone());
        let sessions = self.sessions.clone();
        std::thread::spawn(move || {
            let opened = SftpStorage::open(&rt, &location, &command);
            let mut g = sessions.lock().unwrap_or_else(|p| p.into_inner());
            g.opening -= 1;
            match opened {
                Ok(c) => g.open.push(Arc::new(c)),
                Err(e) => {
                    g.most = g.open.len().max(1);
                    tracing::debug!(location = %location, error = %e, "using {} SFTP session(s)", g.most);
                }
            }
        });
    }

    /// A session for one request: an idle one, else a new one while there is room, else the
    /// least busy. (A request holds a clone of its session's `Arc` while it runs.)
    fn conn(&self) -> StorageResult<Arc<Conn>> {
        let mut g = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let best = g.open.iter().min_by_key(|c| Arc::strong_count(c)).cloned();
        if let Some(c) = best {
            // Two references, the pool's and `best`'s: nobody else uses it.
            if Arc::strong_count(&c) > 2 && g.open.len() + g.opening < g.most {
                g.opening += 1;
                self.open_in_background();
            }
            return Ok(c);
        }
        // No session at all (the first, or all dropped): this request waits for one.
        drop(g);
        let c = Arc::new(SftpStorage::open(self.rt.handle(), &self.location, &self.command)?);
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).open.push(c.clone());
        Ok(c)
    }

    /// Close a session whose connection failed (each request holding it fails too).
    fn drop_conn(&self, failed: &Arc<Conn>) {
        let mut g = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = g.open.iter().position(|c| Arc::ptr_eq(c, failed)) {
            if let Ok(mut c) = Arc::try_unwrap(g.open.swap_remove(i)) {
                let _ = c.child.start_kill();
            }
        }
    }

    /// Run `op` on a session, reconnecting and retrying when the connection fails.
    fn run<T>(&self, path: &str, doing: &str, op: Op<'_, T>) -> StorageResult<T> {
        ssh_process::RETRY.run(&self.location, doing, |_| {
            let conn = self.conn()?;
            let held = conn.clone();
            let result = self.rt.block_on(op(conn));
            result.map_err(|e| match classify(e) {
                Failure::Server(SftpErrorKind::NoSuchFile, _) => StorageError::NotFound { path: path.to_string() },
                Failure::Server(SftpErrorKind::PermDenied, _) => {
                    StorageError::PermissionDenied { path: path.to_string() }
                }
                Failure::Server(kind, msg) => StorageError::Io {
                    path: path.to_string(),
                    source: std::io::Error::other(format!("SFTP server: {kind:?} {msg}")),
                },
                Failure::Connection(m) => {
                    self.drop_conn(&held);
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

/// SFTP answers each read or write of a handle before arca would send the next, so one piece
/// at a time costs a round trip per piece (a 16 MiB pack at 20 ms: 64 round trips). Pieces of
/// this size go out on clones of the handle, each at its own offset, [`PIPELINE`] at once
/// (OpenSSH's own client keeps 64 requests of 32 KiB in flight). A server that takes less per
/// request splits a piece into several, still pipelined across pieces.
const PIECE: usize = 255 << 10;
const PIPELINE: usize = 16;

/// Write `data` into a new file at `path` (replacing one there), pipelined.
async fn write_file(sftp: &Sftp, path: &str, data: &[u8]) -> Result<(), Error> {
    let file = sftp.create(path).await?;
    // By offset, not by `chunks()`: a closure over borrowed pieces would not be `Send` for
    // every lifetime, as the session's future must be.
    futures_util::stream::iter((0..data.len()).step_by(PIECE))
        .map(|at| {
            let (mut f, piece) = (file.clone(), &data[at..(at + PIECE).min(data.len())]);
            async move {
                f.seek(SeekFrom::Start(at as u64)).await.map_err(Error::from)?;
                f.write_all(piece).await
            }
        })
        .buffer_unordered(PIPELINE)
        .try_for_each(|()| async { Ok(()) })
        .await?;
    file.close().await
}

/// `want` bytes at `at` (fewer at the end of the file) and `want`.
async fn read_piece(mut f: File, at: u64, want: u64) -> Result<(Vec<u8>, u64), Error> {
    let mut piece = Vec::with_capacity(want as usize);
    while (piece.len() as u64) < want {
        // A read moves the handle's offset by what it asked for, not by what came back: a
        // server that answers short before the end must be asked again from the right place.
        f.seek(SeekFrom::Start(at + piece.len() as u64)).await.map_err(Error::from)?;
        let ask = (want - piece.len() as u64) as u32;
        match f.read(ask, bytes::BytesMut::with_capacity(ask as usize)).await? {
            Some(b) if !b.is_empty() => piece.extend_from_slice(&b),
            _ => break,
        }
    }
    Ok((piece, want))
}

/// One read of up to `want` bytes at `at` (fewer if the server answers short; none at the end).
async fn read_once(mut f: File, at: u64, want: u64) -> Result<Vec<u8>, Error> {
    f.seek(SeekFrom::Start(at)).await.map_err(Error::from)?;
    Ok(f.read(want as u32, bytes::BytesMut::with_capacity(want as usize))
        .await?
        .map(|b| b.to_vec())
        .unwrap_or_default())
}

/// Read `length` bytes at `offset` of an open file (`None`: to its end), pipelined; shorter
/// if the file ends first. A whole object is read without a round trip for its size: its
/// first piece and its size are asked for at once (a short answer alone would not say the
/// file ended, and asking again would cost a round trip), so a small object, most of them,
/// takes one round trip after the open; the rest of a larger one is read in pieces in flight.
/// The handle is closed without waiting for the answer (dropping it sends the close).
async fn read_file(file: File, offset: u64, length: Option<u64>) -> Result<Vec<u8>, Error> {
    let piece = PIECE as u64;
    let mut out = Vec::with_capacity(length.unwrap_or(piece).min(64 << 20) as usize);
    let mut next = 0;
    let mut end = length.unwrap_or(u64::MAX);
    if length.is_none() {
        let mut stat = file.clone();
        let (size, first) = futures_util::future::join(stat.metadata(), read_once(file.clone(), offset, piece)).await;
        out.extend_from_slice(&first?);
        next = out.len() as u64;
        // Without a size (a server that gives none) the pieces go on until one comes back short.
        // A size below what came back (some virtual files report 0) says nothing either.
        if let Some(size) = size.ok().and_then(|m| m.len()).map(|s| s.saturating_sub(offset)).filter(|s| *s >= next) {
            end = size;
        }
        if next >= end {
            return Ok(out);
        }
    }
    let mut pieces = futures_util::stream::iter((next..end).step_by(PIECE))
        .map(|at| read_piece(file.clone(), offset.saturating_add(at), (end - at).min(piece)))
        .buffered(PIPELINE);
    while let Some(r) = pieces.next().await {
        let (bytes, want) = r?;
        out.extend_from_slice(&bytes);
        if (bytes.len() as u64) < want {
            break; // the file ended: the caller sees the short result
        }
    }
    Ok(out)
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
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).most
    }

    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> StorageResult<()> {
        let path = self.full(kind, name);
        let tmp = format!("{path}.tmp-{:016x}", rand::random::<u64>());
        let dir = path.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or_default();
        let replace = !matches!(kind, ObjectKind::Pack | ObjectKind::Index | ObjectKind::Snapshot | ObjectKind::Key);
        self.run(
            &self.shown(kind, name),
            &format!("uploading {}", kind.path(name)),
            Box::new(move |conn: Arc<Conn>| {
                let (path, tmp, dir) = (path.clone(), tmp.clone(), dir.clone());
                Box::pin(async move {
                    let mut fs = conn.sftp.fs();
                    if write_file(&conn.sftp, &tmp, data).await.is_err() {
                        mkdirs(&mut fs, &dir).await?;
                        write_file(&conn.sftp, &tmp, data).await?;
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
                Box::pin(async move { read_file(conn.sftp.open(&path).await?, 0, None).await })
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
                Box::pin(async move { read_file(conn.sftp.open(&path).await?, offset, Some(length)).await })
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
        // Each ssh is killed when its session is dropped (`kill_on_drop`).
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).open.clear();
    }
}
