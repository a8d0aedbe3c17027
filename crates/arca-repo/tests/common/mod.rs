//! Helpers the engine's integration tests share: cheap repositories and one-file snapshots.
#![allow(dead_code)]

use arca_format::{encode, BlobKind, Id, Node, NodeKind, Snapshot, SnapshotKind, Tree};
use arca_repo::lock::SessionLock;
use arca_repo::writer::WriterOptions;
use arca_repo::{shred, snapshots, BlobWriter, InitOptions, RepoError, Repository};
use arca_storage::{MemoryStorage, ObjectKind, Storage};
use std::sync::Arc;

/// A repository of format `version` with a cheap KDF and small packs (many kill points).
pub fn opts(version: u32) -> InitOptions {
    InitOptions {
        kdf: arca_format::KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 },
        pack_size: 4096,
        version,
        ..Default::default()
    }
}

/// Contents that say which file they are and cannot be mistaken for anything else.
pub fn contents(tag: &str) -> Vec<u8> {
    (0..20_000u32).map(|i| format!("{tag}:{i};")).collect::<String>().into_bytes()
}

/// Back up one file `name` holding `data` into `class` (`None`: the default class; a
/// backup-only session's own key where `repo` was opened with one).
pub fn backup(repo: &Arc<Repository>, class: Option<&str>, name: &str, data: &[u8]) -> Id {
    let lock = SessionLock::acquire(repo, "test", false).unwrap();
    repo.store_session_key().unwrap();
    let key = match class {
        Some(c) => repo.create_class(c).unwrap(),
        None => repo.default_key(),
    };
    let w = BlobWriter::with_key(repo.clone(), key.clone(), &lock, WriterOptions { threads: 1, ..Default::default() });
    let mut n = Node::new(name.as_bytes(), NodeKind::File);
    n.size = data.len() as u64;
    n.content = vec![w.add(BlobKind::Data, data).unwrap().0];
    let (tree, _) = w.add(BlobKind::Tree, &encode("tree", &Tree { nodes: vec![n] }).unwrap()).unwrap();
    w.finish().unwrap();
    shred::confirm_class_alive(repo, &key).unwrap();
    let mut s = Snapshot::new(SnapshotKind::Files, tree, vec!["/".into()], "h", "u", "2026-12-04T00:00:00Z");
    s.class = class.map(String::from);
    snapshots::save(repo, &s).unwrap()
}

/// The file's bytes in snapshot `id`.
pub fn restore(repo: &Repository, id: &Id) -> Result<Vec<u8>, RepoError> {
    let s: Snapshot = repo.load_object(ObjectKind::Snapshot, &id.to_hex())?;
    let t = repo.read_tree(&s.tree)?;
    repo.read_blob(BlobKind::Data, &t.nodes[0].content[0])
}

/// Every object of `s`, the config included.
pub fn all_objects(s: &dyn Storage) -> Vec<(ObjectKind, String, Vec<u8>)> {
    let mut out = vec![];
    for kind in ObjectKind::LISTABLE {
        for (name, _) in s.list(kind).unwrap() {
            out.push((kind, name.clone(), s.get(kind, &name).unwrap()));
        }
    }
    out.push((ObjectKind::Config, "config".into(), s.get(ObjectKind::Config, "config").unwrap()));
    out
}

/// A copy of `from` in memory.
pub fn copy(from: &dyn Storage) -> Arc<dyn Storage> {
    let to: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    for (kind, name, bytes) in all_objects(from) {
        to.put(kind, &name, &bytes).unwrap();
    }
    to
}
