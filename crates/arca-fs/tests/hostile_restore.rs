//! Restore from crafted repositories: names that climb out of the target, and symlinks in the
//! target that would lead outside, must never write outside the target directory.

use arca_format::{encode, BlobKind, KdfParams, Node, NodeKind, Tree};
use arca_fs::{restore, Overwrite, RestoreOptions};
use arca_repo::events::Quiet;
use arca_repo::treewalk::Found;
use arca_repo::writer::WriterOptions;
use arca_repo::{BlobWriter, InitOptions, Repository};
use arca_storage::{MemoryStorage, Storage};
use std::sync::Arc;

fn repo() -> Arc<Repository> {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let opts = InitOptions { kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }, ..Default::default() };
    Arc::new(Repository::init(s, b"pw", &opts).unwrap())
}

fn file(name: &[u8], id: arca_format::Id, len: u64) -> Node {
    let mut n = Node::new(name, NodeKind::File);
    n.mode = 0o644;
    n.size = len;
    n.content = vec![id];
    n
}

fn opts(target: &std::path::Path) -> RestoreOptions {
    RestoreOptions {
        dry_run: false,
        target: target.to_path_buf(),
        includes: None,
        excludes: None,
        verify: false,
        set_owner: false,
        base: vec![],
        threads: 2,
        overwrite: Overwrite::IfChanged,
        delete: false,
    }
}

#[test]
fn crafted_names_are_refused() {
    let repo = repo();
    let lock = arca_repo::lock::SessionLock::acquire(&repo, "test", false).unwrap();
    let w = BlobWriter::new(repo.clone(), &lock, WriterOptions::default());
    let (data, _) = w.add(BlobKind::Data, b"evil").unwrap();
    let bad_names = [&b"../escape"[..], b"a/b", b"..", b"x\0y"];
    let trees: Vec<_> = bad_names
        .iter()
        .map(|bad| {
            w.add(BlobKind::Tree, &encode("tree", &Tree { nodes: vec![file(bad, data, 4)] }).unwrap()).unwrap().0
        })
        .collect();
    w.finish().unwrap();
    for (bad, tid) in bad_names.iter().zip(trees) {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        let report = restore(&repo, Found::Root(tid), &opts(&target), &Quiet).unwrap();
        assert_eq!(report.files, 0, "{bad:?}");
        assert!(report.errors.iter().any(|(_, e)| e.contains("unsafe entry name")), "{bad:?}: {:?}", report.errors);
        assert!(!dir.path().join("escape").exists());
    }
}

#[test]
fn symlinks_in_the_target_are_replaced_not_followed() {
    let repo = repo();
    let lock = arca_repo::lock::SessionLock::acquire(&repo, "test", false).unwrap();
    let w = BlobWriter::new(repo.clone(), &lock, WriterOptions::default());
    let (data, _) = w.add(BlobKind::Data, b"inside").unwrap();
    let inner = Tree { nodes: vec![file(b"f", data, 6)] };
    let (inner_id, _) = w.add(BlobKind::Tree, &encode("tree", &inner).unwrap()).unwrap();
    let mut d = Node::new(b"a", NodeKind::Dir);
    d.mode = 0o755;
    d.subtree = Some(inner_id);
    let root = Tree { nodes: vec![d, file(b"g", data, 6)] };
    let (root_id, _) = w.add(BlobKind::Tree, &encode("tree", &root).unwrap()).unwrap();
    w.finish().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let target = dir.path().join("t");
    std::fs::create_dir_all(&target).unwrap();
    // The target already holds symlinks where the snapshot has a directory and a file.
    std::os::unix::fs::symlink(&outside, target.join("a")).unwrap();
    std::os::unix::fs::symlink(outside.join("g"), target.join("g")).unwrap();
    let report = restore(&repo, Found::Root(root_id), &opts(&target), &Quiet).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none(), "something was written outside the target");
    assert!(target.join("a").symlink_metadata().unwrap().is_dir());
    assert_eq!(std::fs::read(target.join("a/f")).unwrap(), b"inside");
    assert!(target.join("g").symlink_metadata().unwrap().is_file());
}

/// Issue 13, forward compatibility: an entry of a type a newer arca wrote (here "hologram")
/// decodes, is refused by restore with a message naming the newer version, and everything
/// else restores; copy refuses the tree rather than rewrite it without its type.
#[test]
fn an_entry_of_an_unknown_type_is_refused_and_the_rest_restores() {
    let repo = repo();
    let lock = arca_repo::lock::SessionLock::acquire(&repo, "test", false).unwrap();
    let w = BlobWriter::new(repo.clone(), &lock, WriterOptions::default());
    let (data, _) = w.add(BlobKind::Data, b"kept").unwrap();
    let mut future = file(b"future", data, 4);
    future.kind = NodeKind::Dir; // placeholder, patched to an unknown type below
    let tree = encode("tree", &Tree { nodes: vec![future, file(b"plain", data, 4)] }).unwrap();
    // MessagePack: the key "kind" (fixstr 4) then the value "dir" (fixstr 3) → "hologram".
    let (from, to) = (b"\xa4kind\xa3dir".to_vec(), b"\xa4kind\xa8hologram".to_vec());
    let at = tree.windows(from.len()).position(|w| w == from.as_slice()).unwrap();
    let patched = [&tree[..at], to.as_slice(), &tree[at + from.len()..]].concat();
    let decoded: Tree = arca_format::decode("tree", &patched).unwrap();
    assert_eq!(decoded.nodes[0].kind, NodeKind::Unknown);
    assert_eq!(decoded.nodes[0].content, vec![data], "its content ids survive (prune keeps them)");
    let (tid, _) = w.add(BlobKind::Tree, &patched).unwrap();
    w.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    let report = restore(&repo, Found::Root(tid), &opts(&target), &Quiet).unwrap();
    assert_eq!(std::fs::read(target.join("plain")).unwrap(), b"kept");
    assert!(!target.join("future").exists());
    assert!(
        report.errors.iter().any(|(p, e)| p.ends_with("future") && e.contains("newer version")),
        "{:?}",
        report.errors
    );
    // Copy refuses rather than writing the entry back without its type.
    let dst = crate::repo();
    let dst_lock = arca_repo::lock::SessionLock::acquire(&dst, "test", false).unwrap();
    let dw = BlobWriter::new(dst.clone(), &dst_lock, WriterOptions::default());
    let mut copier = arca_repo::copy::Copier {
        src: &repo,
        writer: &dw,
        map: arca_repo::copy::BlobMap::open(&repo, &dst, None),
        stats: Default::default(),
        dry_run: false,
    };
    let err = copier.tree(&tid).unwrap_err().to_string();
    assert!(err.contains("newer arca") && err.contains("copy"), "{err}");
}
