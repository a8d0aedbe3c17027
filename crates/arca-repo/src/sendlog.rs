//! The send log of a backup-only key: the trees of this host's last snapshot, kept locally
//! (as bupstash's send log), so an incremental backup compares against them without reading
//! anything back from the repository, where they are sealed with a key this host has
//! forgotten. One file per repository, host and set of paths, written once the snapshot is
//! stored; losing it costs one backup that reads every file again, nothing else.

use crate::{RepoError, RepoResult};
use arca_format::{decode, encode, Id, Snapshot};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

const SEND_LOG_VERSION: u32 = 1;

/// The file: the snapshot it describes and every tree of it (plaintext, as stored).
#[derive(Serialize, Deserialize)]
struct SendLogFile {
    version: u32,
    repo: Id,
    snapshot: Id,
    record: Snapshot,
    trees: Vec<(Id, ByteBuf)>,
}

/// This host's last snapshot as the send log remembers it.
pub struct Remembered {
    pub id: Id,
    pub snapshot: Snapshot,
}

/// The trees a backup-only session can read: its parent's, loaded from the send log, and the
/// ones it stores itself.
#[derive(Default)]
pub struct SendLog {
    parent: RwLock<HashMap<Id, Vec<u8>>>,
    current: Mutex<HashMap<Id, Vec<u8>>>,
}

/// Where the send log of `host` backing up `paths` into repository `repo` lives under `dir`.
pub fn path(dir: &Path, repo: &Id, host: &str, paths: &[String]) -> PathBuf {
    let mut h = blake3::Hasher::new();
    h.update(host.as_bytes());
    for p in paths {
        h.update(b"\0").update(p.as_bytes());
    }
    dir.join(repo.to_hex()).join(format!("{}.sendlog", &h.finalize().to_hex()[..32]))
}

impl SendLog {
    /// A tree's plaintext, from this session or the parent.
    pub fn get(&self, id: &Id) -> Option<Vec<u8>> {
        if let Some(b) = self.current.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Some(b.clone());
        }
        self.parent.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    /// Note a tree this session stored (or found stored already).
    pub fn record(&self, id: Id, plaintext: &[u8]) {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).entry(id).or_insert_with(|| plaintext.to_vec());
    }

    /// Load the send log at `file` as this session's parent. Trees whose id does not match
    /// their contents under `blob_id` (a damaged file) are left out: their files are read
    /// again. `None` if there is no usable log.
    pub fn load(&self, file: &Path, repo: &Id, blob_id: impl Fn(&[u8]) -> Id) -> Option<Remembered> {
        let bytes = std::fs::read(file).ok()?;
        let plain = zstd::decode_all(&bytes[..]).ok()?;
        let f: SendLogFile = decode("send log", &plain).ok()?;
        if f.version != SEND_LOG_VERSION || f.repo != *repo {
            return None;
        }
        let mut trees = HashMap::with_capacity(f.trees.len());
        for (id, t) in f.trees {
            if blob_id(&t) == id {
                trees.insert(id, t.into_vec());
            } else {
                tracing::warn!(
                    "{}: tree {} does not match its id; its files will be read again",
                    file.display(),
                    id.short()
                );
            }
        }
        *self.parent.write().unwrap_or_else(|p| p.into_inner()) = trees;
        Some(Remembered { id: f.snapshot, snapshot: f.record })
    }

    /// Remember snapshot `id` (`record`) and the trees this session stored as the next
    /// backup's parent: written aside, synced, then renamed over the old log.
    pub fn save(&self, file: &Path, repo: &Id, id: Id, record: &Snapshot) -> RepoResult<()> {
        let io = |e: std::io::Error| RepoError::Signing(format!("cannot write the send log {}: {e}", file.display()));
        let trees: Vec<(Id, ByteBuf)> = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(i, b)| (*i, ByteBuf::from(b.clone())))
            .collect();
        let f = SendLogFile { version: SEND_LOG_VERSION, repo: *repo, snapshot: id, record: record.clone(), trees };
        let plain = encode("send log", &f)?;
        let packed = zstd::encode_all(&plain[..], 3).map_err(io)?;
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        let mut out =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?;
        out.write_all(&packed).and_then(|()| out.sync_all()).map_err(io)?;
        std::fs::rename(&tmp, file).map_err(io)
    }
}
