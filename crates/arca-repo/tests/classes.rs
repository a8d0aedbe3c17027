//! Classes and crypto-shredding (format version 2), and `upgrade` from version 1: a class
//! deduplicates only within itself, `destroy_class` leaves none of its bytes readable by any
//! remaining key, the old password or an old config, and an upgrade killed at any storage
//! operation leaves a repository that opens and reads.

use arca_format::{encode, BlobKind, Id, Node, NodeKind, Snapshot, SnapshotKind, Tree};
use arca_repo::check::{check, ReadData};
use arca_repo::events::Quiet;
use arca_repo::keyring::ContentKey;
use arca_repo::lock::SessionLock;
use arca_repo::prune::{prune, PruneOptions};
use arca_repo::writer::WriterOptions;
use arca_repo::{shred, snapshots, BlobWriter, InitOptions, RepoError, Repository};
use arca_storage::{FailAfter, MemoryStorage, ObjectKind, Storage};

mod common;
use common::*;
use std::sync::Arc;

fn open(s: &Arc<dyn Storage>) -> Arc<Repository> {
    let r = Repository::open(s.clone(), b"pw").unwrap();
    assert!(r.load_index().unwrap().is_empty());
    Arc::new(r)
}

#[test]
fn a_class_deduplicates_only_within_itself() {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let repo = Arc::new(Repository::init(s.clone(), b"pw", &opts(2)).unwrap());
    let data = contents("same everywhere");
    let a = backup(&repo, None, "a", &data);
    let packs = s.list(ObjectKind::Pack).unwrap().len();
    let b = backup(&repo, Some("hr"), "b", &data);
    assert!(s.list(ObjectKind::Pack).unwrap().len() > packs + 1, "the class stored its own copy of the data");
    let c = backup(&repo, Some("hr"), "c", &data);
    let packs_after = s.list(ObjectKind::Pack).unwrap().len();
    let d = backup(&repo, Some("hr"), "c", &data);
    assert_eq!(s.list(ObjectKind::Pack).unwrap().len(), packs_after, "within the class it deduplicates");
    let repo = open(&s);
    for id in [a, b, c, d] {
        assert_eq!(restore(&repo, &id).unwrap(), data);
    }
    let hr = repo.writing_key("hr").unwrap();
    assert_ne!(hr.blob_id(&data), repo.default_key().blob_id(&data), "ids are keyed per class");
    assert!(check(&repo, ReadData::All, &Quiet).unwrap().ok());
}

#[test]
fn a_destroyed_class_is_unreadable_with_any_key_the_old_password_or_the_old_config() {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let repo = Arc::new(Repository::init(s.clone(), b"pw", &opts(2)).unwrap());
    let public = contents("public");
    let secret = contents("payroll of 2019");
    let kept = backup(&repo, None, "public", &public);
    let gone = backup(&repo, Some("hr"), "payroll", &secret);
    let other = backup(&repo, Some("ops"), "runbook", &contents("runbook"));
    let before = all_objects(&*s);
    let hr_key: Arc<ContentKey> = repo.writing_key("hr").unwrap();
    let hr_packs: Vec<(Id, u64, u32)> =
        repo.index().packs_with_keys().into_iter().filter(|p| p.2 == hr_key.number).collect();
    assert!(!hr_packs.is_empty());
    drop(hr_key);

    let lock = SessionLock::acquire(&repo, "destroy", true).unwrap();
    let report = shred::destroy_class(&repo, Some(&lock), "hr").unwrap();
    drop(lock);
    assert_eq!(report.snapshots, vec![gone.to_hex()]);
    assert_eq!(report.packs, hr_packs.len());
    assert!(!s.exists(ObjectKind::Snapshot, &gone.to_hex()).unwrap(), "its snapshots are forgotten");

    // The old password, and the old config put back: the class's keys are not in either.
    let old_config = before.iter().find(|o| o.0 == ObjectKind::Config).unwrap().2.clone();
    s.put(ObjectKind::Config, "config", &old_config).unwrap();
    let repo = open(&s);
    assert!(repo.writing_key("hr").is_err());
    assert_eq!(restore(&repo, &kept).unwrap(), public, "other classes restore exactly");
    assert_eq!(restore(&repo, &other).unwrap(), contents("runbook"));
    // Every key this repository still has fails on every blob of the class's packs.
    let ring: Vec<Arc<ContentKey>> = [0u32]
        .into_iter()
        .chain(repo.keyring().classes().iter().flat_map(|c| repo.keyring().of_class(c)).map(|k| k.number))
        .chain([repo.default_key().number])
        .filter_map(|n| repo.keyring().get(n))
        .collect();
    assert!(ring.len() >= 3, "master, default and ops keys");
    for (pack, size, _) in &hr_packs {
        let bytes = s.get(ObjectKind::Pack, &pack.to_hex()).unwrap();
        assert_eq!(bytes.len() as u64, *size);
        let err = arca_repo::pack::header_from_bytes(&repo, pack, &bytes).unwrap_err();
        assert!(matches!(err, RepoError::Shredded { .. }), "{err}");
        for key in &ring {
            // No key opens any 16-byte-aligned window as a sealed blob either.
            for start in (0..bytes.len().saturating_sub(64)).step_by(997) {
                let id = Id([0; 32]);
                let r = arca_repo::blob::decode(
                    Some(key.key()),
                    key.cipher(),
                    BlobKind::Data,
                    &id,
                    &bytes[start..],
                    1 << 20,
                );
                assert!(r.is_err());
            }
        }
    }
    // A second reader with everything that existed before the destroy but the deleted key
    // objects: the plaintext appears nowhere in storage.
    let marker = b"payroll of 2019:1234;";
    for (kind, name, bytes) in all_objects(&*s) {
        assert!(!bytes.windows(marker.len()).any(|w| w == marker), "{kind} {name} holds the class's plaintext");
    }
    // Check says what happened (a note, not damage); prune deletes the packs.
    let report = check(&repo, ReadData::All, &Quiet).unwrap();
    assert!(report.ok(), "{:?}", report.errors);
    assert!(report.notes.iter().any(|n| n.message.contains("no longer has")), "{:?}", report.notes);
    for _ in 0..2 {
        let lock = SessionLock::acquire(&repo, "prune", true).unwrap();
        prune(&repo, Some(&lock), &PruneOptions::default(), &Quiet).unwrap();
    }
    for (pack, ..) in &hr_packs {
        assert!(!s.exists(ObjectKind::Pack, &pack.to_hex()).unwrap(), "prune deleted the shredded pack {pack}");
    }
    let repo = open(&s);
    assert_eq!(restore(&repo, &kept).unwrap(), public);
    assert!(check(&repo, ReadData::All, &Quiet).unwrap().ok());
}

#[test]
fn a_backup_into_a_class_destroyed_meanwhile_commits_nothing_and_the_default_class_cannot_be_destroyed() {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let repo = Arc::new(Repository::init(s.clone(), b"pw", &opts(2)).unwrap());
    let key = repo.create_class("tmp").unwrap();
    let lock = SessionLock::acquire(&repo, "destroy", true).unwrap();
    shred::destroy_class(&repo, Some(&lock), "tmp").unwrap();
    let err = shred::confirm_class_alive(&repo, &key).unwrap_err().to_string();
    assert!(err.contains("destroyed while this backup ran"), "{err}");
    let err = shred::destroy_class(&repo, Some(&lock), "").unwrap_err().to_string();
    assert!(err.contains("default class cannot be destroyed"), "{err}");
    let err = shred::destroy_class(&repo, Some(&lock), "nope").unwrap_err().to_string();
    assert!(err.contains("no such class"), "{err}");
    let shared = SessionLock::acquire(&repo, "backup", false).unwrap();
    repo.create_class("x").unwrap();
    assert!(matches!(shred::destroy_class(&repo, Some(&shared), "x"), Err(RepoError::NeedsExclusive { .. })));
}

#[test]
fn version_1_has_no_classes_and_none_encryption_refuses_them() {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let repo = Repository::init(s.clone(), b"pw", &opts(1)).unwrap();
    let err = repo.create_class("hr").unwrap_err().to_string();
    assert!(err.contains("arca upgrade"), "{err}");
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let o = InitOptions { encryption: arca_format::EncryptionMode::AuthenticatedOnly, ..opts(2) };
    let repo = Repository::init(s, b"pw", &o).unwrap();
    let err = repo.create_class("hr").unwrap_err().to_string();
    assert!(err.contains("--encryption none"), "{err}");
}

/// Copy every object of `from` into a new memory storage.
fn copy(from: &dyn Storage) -> Arc<dyn Storage> {
    let to: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    for (kind, name, bytes) in all_objects(from) {
        to.put(kind, &name, &bytes).unwrap();
    }
    to
}

#[test]
fn an_upgrade_killed_at_any_storage_operation_leaves_a_repository_that_opens_and_reads() {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let repo = Arc::new(Repository::init(s.clone(), b"pw", &opts(1)).unwrap());
    let data = contents("old data");
    let old = backup(&repo, None, "old", &data);
    let mut kills = 0;
    for allowed in 0.. {
        let base = copy(&*s);
        let faulty = Arc::new(FailAfter::new(base.clone(), allowed));
        let done = Repository::open(faulty.clone(), b"pw").and_then(|r| r.upgrade());
        // Whatever happened, the repository opens (as version 1 or 2) and reads.
        let repo = open(&base);
        assert_eq!(restore(&repo, &old).unwrap(), data, "after {allowed} operations");
        assert!(check(&repo, ReadData::All, &Quiet).unwrap().ok(), "after {allowed} operations");
        match done {
            Ok(true) => {
                assert_eq!(repo.version(), 2);
                break;
            }
            Ok(false) => panic!("a version-1 repository reported as upgraded already"),
            Err(_) => {
                kills += 1;
                // Running it again (unhindered) finishes the job and the data stays.
                repo.upgrade().unwrap();
                let repo = open(&base);
                assert_eq!(repo.version(), 2);
                assert_eq!(restore(&repo, &old).unwrap(), data);
                assert_eq!(
                    base.list(ObjectKind::Keyring).unwrap().len(),
                    3,
                    "a rerun takes up the key a killed run stored (and stores its reader keys)"
                );
            }
        }
    }
    assert!(kills >= 2, "the upgrade makes at least two writes, each one a kill point");
    // After the upgrade: new data is sealed with the new key, old and new dedupe, and a
    // class can be made; `prune` moves old packs to the new key.
    let repo = open(&copy(&*s));
    repo.upgrade().unwrap();
    let s2 = copy(repo.storage());
    let repo = open(&s2);
    let packs = s2.list(ObjectKind::Pack).unwrap().len();
    let again = backup(&repo, None, "old", &data);
    assert_eq!(restore(&repo, &again).unwrap(), data);
    assert_eq!(s2.list(ObjectKind::Pack).unwrap().len(), packs, "data from before the upgrade still deduplicates");
    let fresh = backup(&repo, None, "fresh", &contents("new data"));
    assert_eq!(restore(&repo, &fresh).unwrap(), contents("new data"));
    backup(&repo, Some("hr"), "new", &contents("class data"));
    let keys: std::collections::HashSet<u32> = repo.index().packs_with_keys().into_iter().map(|p| p.2).collect();
    assert!(keys.contains(&0) && keys.len() == 3, "old packs (key 0), new default-class packs, class packs: {keys:?}");
    assert!(check(&repo, ReadData::All, &Quiet).unwrap().ok());
}

#[test]
fn prune_after_an_upgrade_repacks_old_blobs_under_the_default_class_key() {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let repo = Arc::new(Repository::init(s.clone(), b"pw", &opts(1)).unwrap());
    // Version 1: one pack holding a used and an unused blob.
    let lock = SessionLock::acquire(&repo, "test", false).unwrap();
    let w = BlobWriter::new(repo.clone(), &lock, WriterOptions { threads: 1, ..Default::default() });
    let used = b"used by the snapshot".repeat(50);
    let (used_id, _) = w.add(BlobKind::Data, &used).unwrap();
    w.add(BlobKind::Data, &b"referenced by nothing".repeat(50)).unwrap();
    let mut n = Node::new(b"f", NodeKind::File);
    n.size = used.len() as u64;
    n.content = vec![used_id];
    let (tree, _) = w.add(BlobKind::Tree, &encode("tree", &Tree { nodes: vec![n] }).unwrap()).unwrap();
    w.finish().unwrap();
    drop(lock);
    let snap = snapshots::save(
        &repo,
        &Snapshot::new(SnapshotKind::Files, tree, vec!["/".into()], "h", "u", "2026-12-04T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(repo.index().get(&used_id).unwrap().key, 0);
    repo.upgrade().unwrap();
    let repo = open(&s);
    let opts = PruneOptions { max_unused: arca_repo::prune::MaxUnused::Percent(0.0), ..Default::default() };
    for _ in 0..2 {
        let lock = SessionLock::acquire(&repo, "prune", true).unwrap();
        prune(&repo, Some(&lock), &opts, &Quiet).unwrap();
    }
    let repo = open(&s);
    let loc = repo.index().get(&used_id).unwrap();
    assert_eq!(loc.key, repo.default_key().number, "the repacked blob is sealed with the default class's key");
    assert_eq!(restore(&repo, &snap).unwrap(), used);
    assert!(check(&repo, ReadData::All, &Quiet).unwrap().ok());
}
