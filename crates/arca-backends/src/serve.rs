//! The server side of `arca serve --stdio`: answers storage requests on a byte stream (the
//! stdin/stdout of an SSH forced command) and enforces a mode whatever the client asks.
//!
//! - `read`: get, list, exists.
//! - `append`: also put new objects — content-addressed ones only under the name that is
//!   their BLAKE3 — and create, refresh and delete its own lock files. Never delete or
//!   overwrite anything else. Every snapshot received is recorded in `received/<id>` with the
//!   server's clock, so a later `forget` can spot snapshots with false times.
//! - `full`: anything.

use arca_format::wire::{read_frame, write_frame, ErrorKind, Request, Response, WireError, PROTOCOL_VERSION};
use arca_storage::{ObjectKind, Storage, StorageError};
use serde_bytes::ByteBuf;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::Arc;

/// What a server lets its client do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Read,
    Append,
    Full,
}

impl Mode {
    /// The mode's name on the command line and in the handshake.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Read => "read",
            Mode::Append => "append",
            Mode::Full => "full",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Mode::Read => "read-only",
            Mode::Append => "append-only",
            Mode::Full => "full",
        }
    }
}

/// The object kind named by a directory name on the wire.
pub fn kind_from_wire(s: &str) -> Option<ObjectKind> {
    Some(match s {
        "config" => ObjectKind::Config,
        "keys" => ObjectKind::Key,
        "data" => ObjectKind::Pack,
        "index" => ObjectKind::Index,
        "snapshots" => ObjectKind::Snapshot,
        "locks" => ObjectKind::Lock,
        "marks" => ObjectKind::Mark,
        "parity" => ObjectKind::Parity,
        "received" => ObjectKind::Received,
        "history" => ObjectKind::History,
        "keyring" => ObjectKind::Keyring,
        _ => return None,
    })
}

/// The wire name of an object kind.
pub fn kind_to_wire(k: ObjectKind) -> &'static str {
    match k {
        ObjectKind::Config => "config",
        k => k.dir(),
    }
}

/// True if `name` is a valid name for `kind`: `config`, or 64 lower-case hex digits. Nothing
/// else can name a path outside the repository.
pub fn valid_name(kind: ObjectKind, name: &str) -> bool {
    match kind {
        ObjectKind::Config => name == "config",
        _ => name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
    }
}

/// One client connection.
pub struct Server {
    storage: Arc<dyn Storage>,
    mode: Mode,
    /// Lock objects this client created: the only ones an append client may touch again.
    own_locks: HashSet<String>,
}

fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
    Response::Error { kind, message: message.into() }
}

/// An error for the client, naming objects relative to the repository: a client (a
/// forced-command key) must not learn where the repository lives on the server.
fn from_storage_at(root: &str, e: StorageError) -> Response {
    let kind = match &e {
        StorageError::NotFound { .. } => ErrorKind::NotFound,
        StorageError::AlreadyExists { .. } => ErrorKind::AlreadyExists,
        StorageError::NoSpace { .. } => ErrorKind::NoSpace,
        StorageError::PermissionDenied { .. } => ErrorKind::PermissionDenied,
        StorageError::Refused(_) => ErrorKind::Refused,
        StorageError::Transient { .. } => ErrorKind::Transient,
        StorageError::Io { .. } | StorageError::GaveUp { .. } => ErrorKind::Io,
    };
    let mut msg = e.to_string();
    if !root.is_empty() {
        msg = msg.replace(&format!("{}/", root.trim_end_matches('/')), "").replace(root, "the repository");
    }
    error(kind, msg)
}

impl Server {
    pub fn new(storage: Arc<dyn Storage>, mode: Mode) -> Server {
        Server { storage, mode, own_locks: HashSet::new() }
    }

    fn refuse(&self, what: &str, path: &str) -> Response {
        error(ErrorKind::Refused, format!("refused by server ({}): {what} of {path}", self.mode.label()))
    }

    /// Answer one request (after the handshake).
    pub fn handle(&mut self, req: Request) -> Response {
        let (kind_s, name) = match &req {
            Request::Hello { .. } => return error(ErrorKind::Protocol, "hello sent twice"),
            Request::List { kind } => (kind, None),
            Request::Put { kind, name, .. }
            | Request::Get { kind, name }
            | Request::GetRange { kind, name, .. }
            | Request::Delete { kind, name, .. }
            | Request::Exists { kind, name } => (kind, Some(name)),
        };
        let Some(kind) = kind_from_wire(kind_s) else {
            return error(ErrorKind::Protocol, format!("unknown object kind {kind_s:?}"));
        };
        if let Some(n) = name {
            if !valid_name(kind, n) {
                return error(
                    ErrorKind::Refused,
                    format!("refused by server: {n:?} is not a valid {kind} name (paths outside the repository are never served)"),
                );
            }
        }
        let s = &*self.storage;
        let root = s.location();
        match req {
            Request::Hello { .. } => error(ErrorKind::Protocol, "hello sent twice"),
            Request::Get { name, .. } => s
                .get(kind, &name)
                .map_or_else(|e| from_storage_at(&root, e), |d| Response::Data { data: ByteBuf::from(d) }),
            Request::GetRange { name, offset, length, .. } => s
                .get_range(kind, &name, offset, length)
                .map_or_else(|e| from_storage_at(&root, e), |d| Response::Data { data: ByteBuf::from(d) }),
            Request::List { .. } => {
                s.list(kind).map_or_else(|e| from_storage_at(&root, e), |objects| Response::Listing { objects })
            }
            Request::Exists { name, .. } => {
                s.exists(kind, &name).map_or_else(|e| from_storage_at(&root, e), |exists| Response::Exists { exists })
            }
            Request::Delete { name, proof, .. } => {
                self.claim(kind, &name, proof.as_ref().map(|p| &p[..]));
                self.delete(kind, &name)
            }
            Request::Put { name, data, proof, .. } => {
                self.claim(kind, &name, proof.as_ref().map(|p| &p[..]));
                self.put(kind, &name, &data)
            }
        }
    }

    /// A lock whose name is the BLAKE3 of the proof shown belongs to this client (the same
    /// session, reconnected).
    fn claim(&mut self, kind: ObjectKind, name: &str, proof: Option<&[u8]>) {
        if kind == ObjectKind::Lock && proof.is_some_and(|p| blake3::hash(p).to_hex().as_str() == name) {
            self.own_locks.insert(name.to_string());
        }
    }

    fn delete(&mut self, kind: ObjectKind, name: &str) -> Response {
        let path = kind.path(name);
        let allowed = match self.mode {
            Mode::Full => true,
            Mode::Append => kind == ObjectKind::Lock && self.own_locks.contains(name),
            Mode::Read => false,
        };
        if !allowed {
            return self.refuse("delete", &path);
        }
        match self.storage.delete(kind, name) {
            Ok(()) => {
                self.own_locks.remove(name);
                Response::Done
            }
            Err(e) => from_storage_at(&self.storage.location(), e),
        }
    }

    fn put(&mut self, kind: ObjectKind, name: &str, data: &[u8]) -> Response {
        let path = kind.path(name);
        match self.mode {
            Mode::Read => return self.refuse("upload", &path),
            Mode::Full => {
                return match self.storage.put(kind, name, data) {
                    Ok(()) => Response::Done,
                    Err(e) => from_storage_at(&self.storage.location(), e),
                }
            }
            Mode::Append => {}
        }
        match kind {
            ObjectKind::Received => return self.refuse("upload", &path),
            ObjectKind::Mark => {
                return self.refuse("upload (marks are written by prune, which needs full access)", &path)
            }
            ObjectKind::Keyring => {
                // Named by key number and hash (docs/FORMAT.md, "Keyring").
                if !arca_format::keyring::name_matches(name, data) {
                    return error(
                        ErrorKind::Refused,
                        format!("refused by server: the contents of {path} do not match its name"),
                    );
                }
            }
            ObjectKind::Pack | ObjectKind::Index | ObjectKind::Snapshot | ObjectKind::Key | ObjectKind::History => {
                if blake3::hash(data).to_hex().as_str() != name {
                    return error(
                        ErrorKind::Refused,
                        format!("refused by server: the contents of {path} do not match its name"),
                    );
                }
            }
            ObjectKind::Lock | ObjectKind::Config | ObjectKind::Parity => {}
        }
        let exists = match self.storage.exists(kind, name) {
            Ok(e) => e,
            Err(e) => return from_storage_at(&self.storage.location(), e),
        };
        if exists {
            let own_lock = kind == ObjectKind::Lock && self.own_locks.contains(name);
            let same_content = matches!(
                kind,
                ObjectKind::Pack | ObjectKind::Index | ObjectKind::Snapshot | ObjectKind::Key | ObjectKind::Keyring
            );
            if same_content {
                // Named by their hash: the stored object is these bytes. A retried upload.
                return Response::Done;
            }
            if !own_lock {
                return self.refuse("overwrite", &path);
            }
        }
        if let Err(e) = self.storage.put(kind, name, data) {
            return from_storage_at(&self.storage.location(), e);
        }
        if kind == ObjectKind::Lock {
            self.own_locks.insert(name.to_string());
        }
        if kind == ObjectKind::Snapshot {
            // When it arrived, by this server's clock: `forget` compares it with the snapshot's
            // claimed time.
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            if let Err(e) = self.storage.put(ObjectKind::Received, name, now.as_bytes()) {
                return from_storage_at(&self.storage.location(), e);
            }
        }
        Response::Done
    }
}

/// Serve one connection: the handshake, then requests until the client hangs up. `open`
/// turns the repository the client asked for into storage, or says why not.
pub fn serve(
    input: &mut impl Read,
    output: &mut impl Write,
    mode: Mode,
    open: impl FnOnce(&str) -> Result<(Arc<dyn Storage>, String), String>,
) -> Result<(), WireError> {
    let (versions, repo) = match read_frame::<Request>(input)? {
        Request::Hello { versions, repo } => (versions, repo),
        _ => {
            write_frame(output, &error(ErrorKind::Protocol, "expected hello"))?;
            return Ok(());
        }
    };
    if !versions.contains(&PROTOCOL_VERSION) {
        let msg = format!("no common protocol version: the client speaks {versions:?}, this server {PROTOCOL_VERSION}");
        write_frame(output, &error(ErrorKind::Protocol, msg))?;
        return Ok(());
    }
    let (storage, shown) = match open(&repo) {
        Ok(s) => s,
        Err(msg) => {
            write_frame(output, &error(ErrorKind::Refused, msg))?;
            return Ok(());
        }
    };
    write_frame(output, &Response::Hello { version: PROTOCOL_VERSION, mode: mode.name().into(), repo: shown })?;
    let mut server = Server::new(storage, mode);
    loop {
        let req = match read_frame::<Request>(input) {
            Ok(r) => r,
            Err(WireError::Closed) => return Ok(()),
            Err(WireError::Malformed(m)) => {
                write_frame(output, &error(ErrorKind::Protocol, format!("malformed request: {m}")))?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        write_frame(output, &server.handle(req))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 17: a "not found" from the server named the repository's absolute path, which a
    /// forced-command client should not learn.
    #[test]
    fn errors_name_objects_relative_to_the_repository() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("secret-place/repo");
        std::fs::create_dir_all(&root).unwrap();
        let mut server = Server::new(Arc::new(crate::LocalStorage::new(&root)), Mode::Full);
        let name = "ab".repeat(32);
        let r = server.handle(Request::Get { kind: "snapshots".into(), name: name.clone() });
        let Response::Error { kind, message } = r else { panic!("expected an error") };
        assert_eq!(kind, ErrorKind::NotFound);
        assert!(!message.contains("secret-place"), "{message}");
        assert!(message.contains(&format!("snapshots/{name}")), "{message}");
    }
}
