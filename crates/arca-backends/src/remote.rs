//! The client side of `ssh://` repositories: runs `arca serve --stdio` on the far side through
//! the system `ssh` (or any command given) and speaks the protocol of docs/PROTOCOL.md over its
//! stdin/stdout. One request at a time per connection, up to `--connections` connections
//! (each its own ssh session and server process), opened as requests overlap; a dropped
//! connection is re-opened and the request retried with backoff and jitter (every operation is
//! idempotent: objects are immutable and named by their contents).

use crate::serve::kind_to_wire;
use crate::ssh_process;
use arca_format::wire::{read_frame, write_frame, ErrorKind, Request, Response, PROTOCOL_VERSION};
use arca_storage::{ObjectKind, Storage, StorageError, StorageResult};
use serde_bytes::ByteBuf;
use std::io::{BufReader, BufWriter};
use std::process::{Child, ChildStdin, ChildStdout};
use std::sync::{Condvar, Mutex};

struct Conn {
    child: Child,
    input: BufWriter<ChildStdin>,
    output: BufReader<ChildStdout>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A repository behind `arca serve --stdio`.
pub struct RemoteStorage {
    /// For messages: `ssh://user@host:port/path` (never a credential).
    location: String,
    command: Vec<String>,
    repo: String,
    pool: Mutex<Pool>,
    /// Signalled when a connection is given back or closed.
    freed: Condvar,
    /// The mode the server said it enforces.
    mode: Mutex<String>,
}

/// The connections: those free for a request, and how many exist (free or busy).
struct Pool {
    idle: Vec<Conn>,
    open: usize,
    /// At most this many; lowered when an extra connection cannot be opened (an ssh that asks
    /// for a password again, a server limit), so the first keeps working alone.
    most: usize,
}

impl RemoteStorage {
    /// Run `command` (program and arguments) and shake hands, asking for `repo`. Up to
    /// `connections` sessions are used when requests overlap (the first is opened now).
    pub fn connect(
        location: String,
        command: Vec<String>,
        repo: String,
        connections: usize,
    ) -> StorageResult<RemoteStorage> {
        let r = RemoteStorage {
            location,
            command,
            repo,
            pool: Mutex::new(Pool { idle: vec![], open: 0, most: connections.max(1) }),
            freed: Condvar::new(),
            mode: Mutex::new(String::new()),
        };
        let c = r.open()?;
        let mut p = r.pool.lock().unwrap_or_else(|p| p.into_inner());
        p.idle.push(c);
        p.open = 1;
        drop(p);
        Ok(r)
    }

    /// A free connection, opening one while fewer than the most exist, else waiting for one.
    fn take(&self) -> StorageResult<Conn> {
        let mut p = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(c) = p.idle.pop() {
                return Ok(c);
            }
            if p.open < p.most {
                p.open += 1;
                drop(p);
                let opened = self.open();
                let mut p = self.pool.lock().unwrap_or_else(|p| p.into_inner());
                return match opened {
                    Ok(c) => Ok(c),
                    Err(e) => {
                        p.open -= 1;
                        if p.open == 0 {
                            // Nothing works: the failure is the answer (retried by the caller
                            // if transient).
                            self.freed.notify_all();
                            return Err(e);
                        }
                        // An extra session failed while others work: make do with those.
                        p.most = p.open;
                        tracing::debug!(location = %self.location, error = %e, "using {} connection(s)", p.open);
                        drop(p);
                        self.take()
                    }
                };
            }
            p = self.freed.wait(p).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Give a connection back after a request, or `None` after it failed (it is closed).
    fn give(&self, c: Option<Conn>) {
        let mut p = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        match c {
            Some(c) => p.idle.push(c),
            None => p.open -= 1,
        }
        self.freed.notify_one();
    }

    /// The mode the server enforces (`read`, `append`, `full`).
    pub fn mode(&self) -> String {
        self.mode.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn lost(&self, what: &str, e: impl std::fmt::Display) -> StorageError {
        ssh_process::lost(&self.location, what, e)
    }

    fn open(&self) -> StorageResult<Conn> {
        let mut child = ssh_process::command(&self.command)?
            .spawn()
            .map_err(|e| ssh_process::spawn_failed(&self.location, &self.command, e))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(self.lost("at start", "no pipes"));
        };
        let tail = child.stderr.take().map(ssh_process::forward_stderr);
        let mut c = Conn { child, input: BufWriter::new(stdin), output: BufReader::new(stdout) };
        let hello =
            write_frame(&mut c.input, &Request::Hello { versions: vec![PROTOCOL_VERSION], repo: self.repo.clone() })
                .and_then(|()| read_frame::<Response>(&mut c.output));
        let hello = match hello {
            Ok(h) => h,
            Err(e) => {
                // ssh has exited: what it said decides whether another try can help.
                let _ = c.child.wait();
                // Its last lines may still be on their way through the forwarding thread.
                for _ in 0..25 {
                    if tail.as_ref().is_none_or(|t| !t.lock().unwrap_or_else(|p| p.into_inner()).is_empty()) {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                if let Some(lasting) = tail.as_ref().and_then(|t| ssh_process::lasting_failure(&self.location, t)) {
                    return Err(lasting);
                }
                return Err(self.lost("during the handshake", e));
            }
        };
        match hello {
            Response::Hello { mode, .. } => {
                *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
                Ok(c)
            }
            Response::Error { message, .. } => Err(StorageError::Refused(format!("{}: {message}", self.location))),
            other => Err(StorageError::Refused(format!("{}: unexpected handshake answer {other:?}", self.location))),
        }
    }

    /// Send one request and read its answer, reconnecting on a dropped connection.
    fn call(&self, req: &Request, doing: &str) -> StorageResult<Response> {
        ssh_process::RETRY.run(&self.location, doing, |_| {
            // A lasting failure (authentication, host key) is final; a lost one transient.
            let mut c = self.take()?;
            match write_frame(&mut c.input, req).and_then(|_| read_frame::<Response>(&mut c.output)) {
                Ok(r) => {
                    self.give(Some(c));
                    Ok(r)
                }
                Err(e) => {
                    drop(c);
                    self.give(None);
                    Err(ssh_process::dropped(&self.location, e))
                }
            }
        })
    }

    fn error(&self, path: String, kind: ErrorKind, message: String) -> StorageError {
        let io = |k: std::io::ErrorKind| std::io::Error::new(k, message.clone());
        match kind {
            ErrorKind::NotFound => StorageError::NotFound { path },
            ErrorKind::AlreadyExists => StorageError::AlreadyExists { path },
            ErrorKind::NoSpace => StorageError::NoSpace { path },
            ErrorKind::PermissionDenied => StorageError::PermissionDenied { path },
            ErrorKind::Refused | ErrorKind::Protocol => StorageError::Refused(message),
            ErrorKind::Transient => StorageError::Transient { path, source: io(std::io::ErrorKind::Other) },
            ErrorKind::Io => StorageError::Io { path, source: io(std::io::ErrorKind::Other) },
        }
    }

    fn expect_data(&self, kind: ObjectKind, name: &str, r: Response) -> StorageResult<Vec<u8>> {
        match r {
            Response::Data { data } => Ok(data.into_vec()),
            Response::Error { kind: k, message } => Err(self.error(self.path(kind, name), k, message)),
            other => Err(StorageError::Refused(format!("unexpected answer {other:?}"))),
        }
    }

    fn put_with(&self, kind: ObjectKind, name: &str, data: &[u8], proof: Option<&[u8]>) -> StorageResult<()> {
        let req = Request::Put {
            kind: kind_to_wire(kind).into(),
            name: name.into(),
            data: ByteBuf::from(data.to_vec()),
            proof: proof.map(|p| ByteBuf::from(p.to_vec())),
        };
        match self.call(&req, &format!("uploading {}", kind.path(name)))? {
            Response::Done => Ok(()),
            Response::Error { kind: k, message } => Err(self.error(self.path(kind, name), k, message)),
            other => Err(StorageError::Refused(format!("unexpected answer {other:?}"))),
        }
    }

    fn delete_with(&self, kind: ObjectKind, name: &str, proof: Option<&[u8]>) -> StorageResult<()> {
        let req = Request::Delete {
            kind: kind_to_wire(kind).into(),
            name: name.into(),
            proof: proof.map(|p| ByteBuf::from(p.to_vec())),
        };
        match self.call(&req, &format!("deleting {}", kind.path(name)))? {
            Response::Done => Ok(()),
            Response::Error { kind: k, message } => Err(self.error(self.path(kind, name), k, message)),
            other => Err(StorageError::Refused(format!("unexpected answer {other:?}"))),
        }
    }

    fn path(&self, kind: ObjectKind, name: &str) -> String {
        format!("{}/{}", self.location, kind.path(name))
    }
}

impl Storage for RemoteStorage {
    fn capabilities(&self) -> arca_storage::Capabilities {
        let mode = self.mode();
        arca_storage::Capabilities { write: mode != "read", delete: mode == "full", server_enforced: true }
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn transfers(&self) -> usize {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).most
    }

    fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> StorageResult<()> {
        self.put_with(kind, name, data, None)
    }

    fn put_owned(&self, kind: ObjectKind, name: &str, data: &[u8], proof: &[u8]) -> StorageResult<()> {
        self.put_with(kind, name, data, Some(proof))
    }

    fn delete_owned(&self, kind: ObjectKind, name: &str, proof: &[u8]) -> StorageResult<()> {
        self.delete_with(kind, name, Some(proof))
    }

    fn get(&self, kind: ObjectKind, name: &str) -> StorageResult<Vec<u8>> {
        let req = Request::Get { kind: kind_to_wire(kind).into(), name: name.into() };
        let r = self.call(&req, &format!("downloading {}", kind.path(name)))?;
        self.expect_data(kind, name, r)
    }

    fn get_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> StorageResult<Vec<u8>> {
        let req = Request::GetRange { kind: kind_to_wire(kind).into(), name: name.into(), offset, length };
        let r = self.call(&req, &format!("downloading {}", kind.path(name)))?;
        self.expect_data(kind, name, r)
    }

    fn list(&self, kind: ObjectKind) -> StorageResult<Vec<(String, u64)>> {
        let req = Request::List { kind: kind_to_wire(kind).into() };
        match self.call(&req, &format!("listing {}", kind.dir()))? {
            Response::Listing { objects } => Ok(objects),
            Response::Error { kind: k, message } => {
                Err(self.error(format!("{}/{}", self.location, kind.dir()), k, message))
            }
            other => Err(StorageError::Refused(format!("unexpected answer {other:?}"))),
        }
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> StorageResult<()> {
        self.delete_with(kind, name, None)
    }

    fn exists(&self, kind: ObjectKind, name: &str) -> StorageResult<bool> {
        let req = Request::Exists { kind: kind_to_wire(kind).into(), name: name.into() };
        match self.call(&req, &format!("looking up {}", kind.path(name)))? {
            Response::Exists { exists } => Ok(exists),
            Response::Error { kind: k, message } => Err(self.error(self.path(kind, name), k, message)),
            other => Err(StorageError::Refused(format!("unexpected answer {other:?}"))),
        }
    }
}
