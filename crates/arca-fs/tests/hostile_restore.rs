//! Restore from crafted repositories: names that climb out of the target, and symlinks in the
//! target that would lead outside, must never write outside the target directory. Issue 14,
//! item 9: what a hostile key holder's crafted objects may make a reader do is capped; each
//! crafted object is refused with a message naming what was refused.

use arca_format::{encode, BlobKind, Id, KdfParams, KeySlot, Node, NodeKind, Tree};
use arca_fs::{restore, Overwrite, RestoreOptions};
use arca_repo::events::Quiet;
use arca_repo::stats::{stats, StatsMode};
use arca_repo::treewalk::Found;
use arca_repo::writer::WriterOptions;
use arca_repo::{BlobWriter, InitOptions, RepoError, Repository};
use arca_storage::{MemoryStorage, ObjectKind, Storage};
use serde_bytes::ByteBuf;
use std::sync::Arc;

const CHEAP: KdfParams = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };

fn repo_on(s: Arc<dyn Storage>) -> Arc<Repository> {
    Arc::new(Repository::init(s, b"pw", &InitOptions { kdf: CHEAP, ..Default::default() }).unwrap())
}

fn repo() -> Arc<Repository> {
    repo_on(Arc::new(MemoryStorage::default()))
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
        reflink_from: None,
        target: target.to_path_buf(),
        includes: None,
        excludes: None,
        verify: false,
        set_owner: false,
        base: vec![],
        threads: 2,
        read_ahead: 1,
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
        map: arca_repo::copy::BlobMap::open(&repo.default_key(), &dst.default_key(), None),
        stats: Default::default(),
        dry_run: false,
    };
    let err = copier.tree(&tid).unwrap_err().to_string();
    assert!(err.contains("newer arca") && err.contains("copy"), "{err}");
}

fn dir(name: &[u8], sub: Id) -> Node {
    let mut d = Node::new(name, NodeKind::Dir);
    d.mode = 0o755;
    d.subtree = Some(sub);
    d
}

/// Store `trees` (each built from the ids of the ones before) and return their ids.
fn store(repo: &Arc<Repository>, build: impl FnOnce(&BlobWriter) -> Id) -> Id {
    let lock = arca_repo::lock::SessionLock::acquire(repo, "test", false).unwrap();
    let w = BlobWriter::new(repo.clone(), &lock, WriterOptions::default());
    let id = build(&w);
    w.finish().unwrap();
    id
}

fn add_tree(w: &BlobWriter, t: &Tree) -> Id {
    w.add(BlobKind::Tree, &encode("tree", t).unwrap()).unwrap().0
}

fn snapshot_entry(tree: Id) -> arca_repo::snapshots::SnapshotEntry {
    let snapshot = arca_format::Snapshot::new(
        arca_format::SnapshotKind::Files,
        tree,
        vec!["/x".into()],
        "h",
        "u",
        "2026-12-03T00:00:00Z",
    );
    arca_repo::snapshots::SnapshotEntry { id: tree, snapshot }
}

#[test]
fn a_tree_dag_that_expands_to_a_trillion_entries_is_refused_before_anything_is_written() {
    let repo = repo();
    // 40 levels, each naming the level below twice: 40 small trees, 2^41 entries walked.
    let root = store(&repo, |w| {
        let (data, _) = w.add(BlobKind::Data, b"x").unwrap();
        let mut below = add_tree(w, &Tree { nodes: vec![file(b"f", data, 1)] });
        for _ in 0..40 {
            below = add_tree(w, &Tree { nodes: vec![dir(b"a", below), dir(b"b", below)] });
        }
        below
    });
    let parent = tempfile::tempdir().unwrap();
    let target = parent.path().join("t");
    let started = std::time::Instant::now();
    let err = restore(&repo, Found::Root(root), &opts(&target), &Quiet).unwrap_err().to_string();
    assert!(err.contains("entries") && err.contains("refused") && err.contains("crafted"), "{err}");
    assert!(started.elapsed().as_secs() < 30, "the refusal came only after {:?}", started.elapsed());
    assert!(std::fs::read_dir(&target).map(|d| d.count()).unwrap_or(0) == 0, "restore wrote before refusing");
    let err = arca_fs::export::export_tar(&repo, &Found::Root(root), Vec::new()).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("refused"), "{err}");
    let entry = snapshot_entry(root);
    let err = stats(&repo, &[entry], StatsMode::RestoreSize).unwrap_err();
    assert!(matches!(err, RepoError::LimitExceeded { .. }), "{err}");
    // The same shape, shallow enough to be honest sharing, restores.
    let small = store(&repo, |w| {
        let (data, _) = w.add(BlobKind::Data, b"x").unwrap();
        let mut below = add_tree(w, &Tree { nodes: vec![file(b"f", data, 1)] });
        for _ in 0..3 {
            below = add_tree(w, &Tree { nodes: vec![dir(b"a", below), dir(b"b", below)] });
        }
        below
    });
    let report = restore(&repo, Found::Root(small), &opts(&target), &Quiet).unwrap();
    assert_eq!(report.files, 8);
    assert_eq!(std::fs::read(target.join("b/a/b/f")).unwrap(), b"x");
}

#[test]
fn directories_nested_deeper_than_the_limit_are_refused() {
    let repo = repo();
    let depth = arca_repo::limits::MAX_TREE_DEPTH + 10;
    let root = store(&repo, |w| {
        let mut below = add_tree(w, &Tree::default());
        for _ in 0..depth {
            below = add_tree(w, &Tree { nodes: vec![dir(b"d", below)] });
        }
        below
    });
    let parent = tempfile::tempdir().unwrap();
    let err = restore(&repo, Found::Root(root), &opts(&parent.path().join("t")), &Quiet).unwrap_err().to_string();
    assert!(err.contains("levels deep") && err.contains("refused"), "{err}");
    let err =
        arca_repo::treewalk::walk(&repo, &root, &mut |_, _| Ok(arca_repo::treewalk::Visit::Continue), &mut |_, _| {})
            .unwrap_err()
            .to_string();
    assert!(err.contains("levels deep"), "{err}");
}

#[test]
fn a_hardlink_group_joining_a_file_with_a_symlink_is_refused() {
    let repo = repo();
    let root = store(&repo, |w| {
        let (data, _) = w.add(BlobKind::Data, b"secret").unwrap();
        let mut link = Node::new(b"a-link", NodeKind::Symlink);
        link.target = Some(ByteBuf::from(b"/etc/passwd".to_vec()));
        let mut f = file(b"b-file", data, 6);
        for n in [&mut link, &mut f] {
            (n.inode, n.device, n.links) = (7, 1, 2);
        }
        // A group of two files whose members differ (a file written to while it was backed
        // up) is linked to the first, not refused.
        let mut g1 = file(b"c-first", data, 6);
        let mut g2 = file(b"d-second", data, 6);
        g2.size = 3;
        for n in [&mut g1, &mut g2] {
            (n.inode, n.device, n.links) = (8, 1, 2);
        }
        add_tree(w, &Tree { nodes: vec![link, f, g1, g2] })
    });
    let parent = tempfile::tempdir().unwrap();
    let target = parent.path().join("t");
    let report = restore(&repo, Found::Root(root), &opts(&target), &Quiet).unwrap();
    assert!(target.join("a-link").symlink_metadata().unwrap().file_type().is_symlink());
    assert!(!target.join("b-file").exists(), "a file was linked to a symlink");
    let errors: Vec<_> = report.errors.iter().map(|(p, e)| format!("{p}: {e}")).collect();
    assert!(
        errors.iter().any(|e| e.contains("b-file") && e.contains("joins a symlink with a regular file")),
        "{errors:?}"
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (target.join("c-first").metadata().unwrap(), target.join("d-second").metadata().unwrap());
    assert_eq!(a.ino(), b.ino(), "the differing member is linked to the first");
    assert_eq!(std::fs::read(target.join("d-second")).unwrap(), b"secret");
    let (report, tar) = arca_fs::export::export_tar(&repo, &Found::Root(root), Vec::new()).unwrap();
    assert!(report.skipped.iter().any(|s| s.contains("b-file") && s.contains("joins")), "{:?}", report.skipped);
    assert_eq!(tar.windows(6).filter(|w| *w == b"secret").count(), 1, "the data once, and no link to the symlink");
}

#[test]
fn absurd_sizes_and_sparse_maps_are_refused_with_the_entry_named() {
    let repo = repo();
    type Patch = Box<dyn Fn(&mut Node)>;
    let cases: Vec<(&str, Patch)> = vec![
        ("beyond the limit", Box::new(|n| n.size = 1 << 60)),
        ("overflows", Box::new(|n| n.holes = vec![(1, u64::MAX)])),
        (
            "not ascending",
            Box::new(|n| {
                n.size = 100;
                n.holes = vec![(50, 10), (10, 10)];
            }),
        ),
        ("starts outside", Box::new(|n| n.holes = vec![(9, 100)])),
    ];
    for (want, patch) in cases {
        let root = store(&repo, |w| {
            let (data, _) = w.add(BlobKind::Data, b"abcd").unwrap();
            let mut n = file(b"crafted", data, 4);
            patch(&mut n);
            add_tree(w, &Tree { nodes: vec![n] })
        });
        let err = repo.read_tree(&root).unwrap_err().to_string();
        assert!(err.contains("crafted") && err.contains(want), "{want}: {err}");
        let parent = tempfile::tempdir().unwrap();
        let report = restore(&repo, Found::Root(root), &opts(&parent.path().join("t")), &Quiet).unwrap();
        assert_eq!(report.files, 0);
        assert!(report.errors.iter().any(|(_, e)| e.contains(want)), "{want}: {:?}", report.errors);
    }
}

#[test]
fn a_key_slot_asking_for_absurd_kdf_work_is_skipped_and_named() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    repo_on(storage.clone());
    for params in [
        KdfParams { memory_kib: u32::MAX, iterations: 1, parallelism: 1 },
        KdfParams { memory_kib: 1024, iterations: u32::MAX, parallelism: 1 },
        KdfParams { memory_kib: 1024 * 1024, iterations: 60, parallelism: 1 },
        KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 << 20 },
    ] {
        let slot = KeySlot {
            version: 1,
            kdf: "argon2id".into(),
            params,
            salt: ByteBuf::from(vec![0; 16]),
            sealed_master: ByteBuf::from(vec![0; 120]),
            created: "now".into(),
            hostname: "planted".into(),
            username: "x".into(),
            label: String::new(),
            role: String::new(),
        };
        let bytes = encode("key slot", &slot).unwrap();
        storage.put(ObjectKind::Key, &Id::of_bytes(&bytes).to_hex(), &bytes).unwrap();
        assert!(params.refusal().is_some(), "{params:?}");
    }
    let started = std::time::Instant::now();
    // The right password still opens (the planted slots are skipped, not derived).
    Repository::open(storage.clone(), b"pw").unwrap();
    let err = Repository::open(storage.clone(), b"wrong").map(|_| ()).unwrap_err();
    assert!(started.elapsed().as_secs() < 10, "a planted slot's KDF ran: {:?}", started.elapsed());
    let msg = err.to_string();
    assert!(matches!(err, RepoError::LimitExceeded { .. }), "{msg}");
    assert!(msg.contains("beyond the limit") && msg.contains("planted"), "{msg}");
    // arca itself refuses to write such a slot.
    let repo = Repository::open(storage, b"pw").unwrap();
    let heavy = KdfParams { memory_kib: 4 * 1024 * 1024, iterations: 3, parallelism: 1 };
    let err = arca_repo::keys::store_slot(
        repo.storage(),
        repo.key("test").unwrap(),
        b"x",
        heavy,
        &arca_repo::keys::Origin::current(),
        "",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("beyond the limit"), "{err}");
}
