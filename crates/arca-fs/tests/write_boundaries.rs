//! Issue 13, "every write boundary, enumerated": each operation runs against a storage that
//! fails every call after its n-th mutating one (`arca_storage::FailAfter`), for every n up to
//! the number of writes the operation makes. After each interruption the untouched storage
//! is reopened: it must check clean (`check --read-data`: no errors) and every snapshot in it
//! must restore exactly; a key-slot change must leave a slot that opens. The SIGKILL tests of
//! the process layer stay in `crates/arca-cli/tests/crash.rs`.

use arca_format::{ChunkerParams, Id, KdfParams, Snapshot, SnapshotKind};
use arca_fs::{BackupOptions, Excludes, Overwrite, RestoreOptions};
use arca_repo::events::Quiet;
use arca_repo::lock::SessionLock;
use arca_repo::treewalk::Found;
use arca_repo::writer::WriterOptions;
use arca_repo::{BlobWriter, InitOptions, Repository};
use arca_storage::{FailAfter, MemoryStorage, ObjectKind, Storage};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const PW: &[u8] = b"boundary password";

fn opts() -> InitOptions {
    InitOptions {
        chunker: ChunkerParams { min_size: 4096, avg_size: 8192, max_size: 32768 },
        pack_size: 48 << 10,
        kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 },
        ..Default::default()
    }
}

/// Deterministic bytes.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Every object of `s`, copied into a new memory storage.
fn copy_of(s: &dyn Storage) -> Arc<MemoryStorage> {
    let out = Arc::new(MemoryStorage::default());
    if let Ok(c) = s.get(ObjectKind::Config, "config") {
        out.put(ObjectKind::Config, "config", &c).unwrap();
    }
    for kind in ObjectKind::LISTABLE {
        for (name, _) in s.list(kind).unwrap() {
            out.put(kind, &name, &s.get(kind, &name).unwrap()).unwrap();
        }
    }
    out
}

/// Relative path → contents of every file below `dir`.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn open(s: Arc<dyn Storage>) -> arca_repo::RepoResult<Arc<Repository>> {
    let r = Arc::new(Repository::open(s, PW)?);
    r.load_index()?;
    Ok(r)
}

/// A backup as `arca backup` makes it: lock, adopt what an interrupted one left, write,
/// confirm, save.
fn backup(storage: Arc<dyn Storage>, src: &Path) -> arca_repo::RepoResult<Id> {
    let repo = Arc::new(Repository::open(storage, PW)?);
    let lock = SessionLock::acquire(&repo, "backup", false)?;
    repo.load_index()?;
    arca_repo::repair::adopt_orphan_packs(&repo, &lock)?;
    let writer = BlobWriter::new(repo.clone(), &lock, WriterOptions { threads: 1, ..Default::default() });
    let o = BackupOptions {
        paths: vec![src.to_path_buf()],
        excludes: Excludes::default(),
        one_file_system: false,
        ignore_ctime: false,
        rehash: false,
        read_threads: 2,
        cancel: Default::default(),
        live_databases: Default::default(),
        redirects: vec![],
    };
    let outcome = arca_fs::backup(&writer, None, &o, &Quiet).map_err(|e| match e {
        arca_fs::FsError::Repo(r) => r,
        other => arca_repo::RepoError::corrupt("the backup", other),
    })?;
    writer.finish()?;
    lock.confirm_commit(&repo, &[outcome.tree])?;
    let mut s = Snapshot::new(
        SnapshotKind::Files,
        outcome.tree,
        vec![src.display().to_string()],
        "h",
        "u",
        &chrono::Utc::now().to_rfc3339(),
    );
    s.summary = outcome.summary;
    s.program_version = "test".into();
    arca_repo::snapshots::save(&repo, &s)
}

/// The repository in `s` checks clean and each snapshot restores to what `expected` says its
/// tree held.
fn verify(s: Arc<dyn Storage>, expected: &BTreeMap<Id, BTreeMap<PathBuf, Vec<u8>>>, src: &Path, what: &str) {
    let repo = open(s).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
    let r = arca_repo::check::check(&repo, arca_repo::check::ReadData::All, &arca_repo::events::Quiet).unwrap();
    assert!(r.errors.is_empty(), "{what}: check found {:?}", r.errors);
    let (snaps, errors) = arca_repo::snapshots::list_all(&repo).unwrap();
    assert!(errors.is_empty(), "{what}: {errors:?}");
    for e in snaps {
        let want = expected.get(&e.snapshot.tree).unwrap_or_else(|| panic!("{what}: an unexpected snapshot {}", e.id));
        let dir = tempfile::tempdir().unwrap();
        let ro = RestoreOptions {
            target: dir.path().to_path_buf(),
            includes: None,
            excludes: None,
            verify: false,
            set_owner: false,
            base: vec![],
            threads: 1,
            read_ahead: 1,
            overwrite: Overwrite::Always,
            delete: false,
            dry_run: false,
            reflink_from: None,
        };
        let rep = arca_fs::restore(&repo, Found::Root(e.snapshot.tree), &ro, &Quiet).unwrap();
        assert!(rep.errors.is_empty(), "{what}: restore of {}: {:?}", e.id, rep.errors);
        let got = contents(&dir.path().join(src.strip_prefix("/").unwrap()));
        assert_eq!(&got, want, "{what}: snapshot {} restores exactly", e.id);
    }
}

/// Run `op` against a fresh copy of `base` failing after every n-th mutation in turn; verify
/// each result. Returns how many write boundaries there were.
fn enumerate(
    name: &str,
    base: &dyn Storage,
    op: &dyn Fn(Arc<dyn Storage>) -> Result<(), String>,
    check: &dyn Fn(Arc<dyn Storage>, &str),
) -> u64 {
    let counting = Arc::new(FailAfter::new(copy_of(base), u64::MAX));
    op(counting.clone()).unwrap_or_else(|e| panic!("{name} without faults: {e}"));
    let total = counting.mutations();
    assert!(total > 0, "{name} writes something");
    for n in 0..total {
        let inner = copy_of(base);
        let faulty = Arc::new(FailAfter::new(inner.clone(), n));
        let _ = op(faulty);
        check(inner, &format!("{name}, failing after write {n} of {total}"));
    }
    println!("{name}: {total} write boundaries, each left a consistent repository");
    total
}

#[test]
fn every_write_of_backup_prune_copy_repair_and_passwd_leaves_a_consistent_repository() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a"), bytes(90_000, 1)).unwrap();
    std::fs::write(src.join("sub/b"), bytes(50_000, 2)).unwrap();
    std::fs::write(src.join("small"), b"small").unwrap();
    let base: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    Repository::init(base.clone(), PW, &opts()).unwrap();
    let mut expected = BTreeMap::new();
    let mut generations = vec![];
    for g in 0..3u64 {
        std::fs::write(src.join("a"), bytes(90_000, 10 + g)).unwrap();
        std::fs::write(src.join(format!("new{g}")), bytes(30_000, 20 + g)).unwrap();
        let id = backup(base.clone(), &src).unwrap();
        let repo = open(base.clone()).unwrap();
        let tree = repo.load_object::<Snapshot>(ObjectKind::Snapshot, &id.to_hex()).unwrap().tree;
        expected.insert(tree, contents(&src));
        generations.push(id);
    }
    let mut boundaries = 0;

    // Backup of a changed tree.
    std::fs::write(src.join("sub/b"), bytes(60_000, 3)).unwrap();
    let now = contents(&src);
    let src2 = src.clone();
    let backup_check = |s: Arc<dyn Storage>, what: &str| {
        let repo = open(s.clone()).unwrap();
        let mut exp = expected.clone();
        for e in arca_repo::snapshots::list_all(&repo).unwrap().0 {
            exp.entry(e.snapshot.tree).or_insert_with(|| now.clone());
        }
        verify(s, &exp, &src2, what);
    };
    boundaries += enumerate("backup", &*base, &|s| backup(s, &src).map(drop).map_err(|e| e.to_string()), &backup_check);

    // Forget the oldest snapshot, then prune.
    let first = generations[0];
    let forget_prune = |s: Arc<dyn Storage>| -> Result<(), String> {
        let repo = Arc::new(Repository::open(s, PW).map_err(|e| e.to_string())?);
        let lock = SessionLock::acquire(&repo, "prune", true).map_err(|e| e.to_string())?;
        repo.load_index().map_err(|e| e.to_string())?;
        repo.storage().delete(ObjectKind::Snapshot, &first.to_hex()).map_err(|e| e.to_string())?;
        let po = arca_repo::prune::PruneOptions {
            max_unused: arca_repo::prune::MaxUnused::Percent(0.0),
            ..Default::default()
        };
        arca_repo::prune::prune(&repo, Some(&lock), &po, &arca_repo::events::Quiet).map(drop).map_err(|e| e.to_string())
    };
    boundaries += enumerate("forget + prune", &*base, &forget_prune, &|s, what| verify(s, &expected, &src, what));

    // Repair index: rebuild every index object from the packs.
    let repair = |s: Arc<dyn Storage>| -> Result<(), String> {
        let repo = Arc::new(Repository::open(s, PW).map_err(|e| e.to_string())?);
        let lock = SessionLock::acquire(&repo, "repair index", true).map_err(|e| e.to_string())?;
        repo.load_index().map_err(|e| e.to_string())?;
        arca_repo::repair::repair_index(&repo, &lock, &arca_repo::events::Quiet).map(drop).map_err(|e| e.to_string())
    };
    boundaries += enumerate("repair index", &*base, &repair, &|s, what| verify(s, &expected, &src, what));

    // Key passwd: the new slot first, then the old one goes; one of the two always opens.
    let passwd = |s: Arc<dyn Storage>| -> Result<(), String> {
        let repo = Repository::open(s.clone(), PW).map_err(|e| e.to_string())?;
        let kdf = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
        arca_repo::keys::store_slot(
            &*s,
            repo.key("test").unwrap(),
            b"new password",
            kdf,
            &arca_repo::keys::Origin::current(),
            "",
        )
        .map_err(|e| e.to_string())?;
        s.delete(ObjectKind::Key, repo.key_slot()).map_err(|e| e.to_string())
    };
    boundaries += enumerate("key passwd", &*base, &passwd, &|s, what| {
        let old = Repository::open(s.clone(), PW).is_ok();
        let new = Repository::open(s.clone(), b"new password").is_ok();
        assert!(old || new, "{what}: neither password opens");
    });

    // Copy every snapshot into another repository (the destination fails).
    let dst_base: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    Repository::init(dst_base.clone(), PW, &opts()).unwrap();
    let src_repo = open(base.clone()).unwrap();
    let copy = |s: Arc<dyn Storage>| -> Result<(), String> {
        let dst = Arc::new(Repository::open(s, PW).map_err(|e| e.to_string())?);
        let lock = SessionLock::acquire(&dst, "copy", false).map_err(|e| e.to_string())?;
        dst.load_index().map_err(|e| e.to_string())?;
        let writer = BlobWriter::new(dst.clone(), &lock, WriterOptions { threads: 1, ..Default::default() });
        let mut copier = arca_repo::copy::Copier {
            src: &src_repo,
            writer: &writer,
            map: arca_repo::copy::BlobMap::open(&src_repo.default_key(), &dst.default_key(), None),
            stats: Default::default(),
            dry_run: false,
        };
        let mut copies = vec![];
        for e in arca_repo::snapshots::list_all(&src_repo).map_err(|e| e.to_string())?.0 {
            let tree = copier.tree(&e.snapshot.tree).map_err(|e| e.to_string())?;
            copies.push((e, tree));
        }
        drop(copier);
        writer.finish().map_err(|e| e.to_string())?;
        for (e, tree) in copies {
            let mut snap = e.snapshot.clone();
            snap.tree = tree;
            snap.original = Some(e.id);
            arca_repo::snapshots::save(&dst, &snap).map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    let copy_check = |s: Arc<dyn Storage>, what: &str| {
        // The destination's trees have other ids: map them through the source snapshots.
        let dst = open(s.clone()).unwrap();
        let mut exp = BTreeMap::new();
        for e in arca_repo::snapshots::list_all(&dst).unwrap().0 {
            let orig = e.snapshot.original.expect("copied snapshots name their original");
            let src_tree = src_repo.load_object::<Snapshot>(ObjectKind::Snapshot, &orig.to_hex()).unwrap().tree;
            exp.insert(e.snapshot.tree, expected[&src_tree].clone());
        }
        verify(s, &exp, &src, what);
    };
    boundaries += enumerate("copy", &*dst_base, &copy, &copy_check);
    println!("write boundaries enumerated: {boundaries}, inconsistent repositories: 0");
}
