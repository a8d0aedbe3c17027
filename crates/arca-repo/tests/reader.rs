//! Reader keys (issue 14, item 2): a metadata-only key lists snapshots and reads their file
//! names and sizes but no contents; a summary-only key reads hosts, times and sizes but no
//! file names; neither writes. What was written before reader keys existed stays out of
//! their reach until `key rotate --rewrite`; a rotation locks old reader keys out; a
//! destroyed class's names are gone for them too; `check` catches a digest that lies and a
//! reader key that is missing or wrong.

use arca_format::{BlobKind, Id, Snapshot};
use arca_repo::check::{check, ReadData};
use arca_repo::events::Quiet;
use arca_repo::keys::{self, Origin};
use arca_repo::lock::SessionLock;
use arca_repo::reader::{self, Level};
use arca_repo::{rotate, shred, snapshots, RepoError, Repository};
use arca_storage::{MemoryStorage, ObjectKind, Storage};
use std::sync::Arc;

mod common;
use common::*;

fn kdf() -> arca_format::KdfParams {
    opts(2).kdf
}

fn open(s: &Arc<dyn Storage>, pw: &[u8]) -> Arc<Repository> {
    let r = Repository::open(s.clone(), pw).unwrap();
    let problems = r.load_index().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    Arc::new(r)
}

fn add(repo: &Arc<Repository>, level: Level, pw: &[u8]) -> reader::AddedReader {
    reader::add(repo, level, pw, kdf(), &Origin::current(), "reader").unwrap()
}

/// The refusal a reader key gets for what its role does not allow.
fn is_refusal(e: &RepoError) -> bool {
    matches!(e, RepoError::ReaderKey { .. })
}

/// A snapshot, the name of its one file, and the file's contents.
type Made = (Id, &'static str, Vec<u8>);

/// A version-2 repository with a default-class backup, a class backup and a backup-only
/// host's backup; a metadata key and a summary key.
fn populated() -> (Arc<dyn Storage>, Vec<Made>) {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let full = Arc::new(Repository::init(s.clone(), b"pw", &opts(2)).unwrap());
    let mut made = vec![];
    for (class, name) in [(None, "payroll-2026.csv"), (Some("hr"), "appraisal-alice.txt")] {
        let d = contents(name);
        made.push((backup(&full, class, name, &d), name, d));
    }
    let bundle = full.backup_bundle(Some("web01".into())).unwrap();
    full.reseal_shared().unwrap();
    keys::store_backup_slot(&*s, &bundle, b"backup", kdf(), &Origin::current(), "web01").unwrap();
    add(&full, Level::Metadata, b"meta");
    add(&full, Level::Summary, b"summary");
    let d = contents("access-log-web01");
    let bo = open(&s, b"backup");
    let id = {
        // A backup-only session names its host.
        let lock = SessionLock::acquire(&bo, "backup", false).unwrap();
        bo.store_session_key().unwrap();
        let w = arca_repo::BlobWriter::with_key(bo.clone(), bo.default_key(), &lock, Default::default());
        let mut n = arca_format::Node::new(b"access-log-web01", arca_format::NodeKind::File);
        n.size = d.len() as u64;
        n.content = vec![w.add(BlobKind::Data, &d).unwrap().0];
        let tree = arca_format::encode("tree", &arca_format::Tree { nodes: vec![n] }).unwrap();
        let (tree, _) = w.add(BlobKind::Tree, &tree).unwrap();
        w.finish().unwrap();
        let snap = Snapshot::new(
            arca_format::SnapshotKind::Files,
            tree,
            vec!["/var/log".into()],
            "web01",
            "u",
            "2026-12-07T00:00:00Z",
        );
        snapshots::save(&bo, &snap).unwrap()
    };
    made.push((id, "access-log-web01", d));
    (s, made)
}

#[test]
fn a_metadata_key_lists_names_and_sizes_and_reads_no_contents() {
    let (s, made) = populated();
    let meta = open(&s, b"meta");
    assert_eq!(meta.reader_level(), Some(Level::Metadata));
    let (snaps, errors) = snapshots::list_all(&meta).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(snaps.len(), made.len());
    for (id, name, data) in &made {
        let snap = &snaps.iter().find(|e| e.id == *id).expect("listed").snapshot;
        assert!(!snap.paths.is_empty());
        let tree = meta.read_tree(&snap.tree).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(tree.nodes[0].name, name.as_bytes(), "the file's name");
        assert_eq!(tree.nodes[0].size, data.len() as u64, "and size");
        let e = meta.read_blob(BlobKind::Data, &tree.nodes[0].content[0]).unwrap_err();
        assert!(is_refusal(&e), "{name}: contents are refused: {e}");
        assert!(e.to_string().contains("metadata-only") && e.to_string().contains("read file contents"), "{e}");
        // Not by a check alone: nothing the key holds opens the sealed blob.
        let loc = meta.index().get(&tree.nodes[0].content[0]).unwrap();
        let sealed = s_get_range(&s, &loc);
        for k in meta.keyring().all() {
            for c in [Some(k.cipher()), k.metadata_cipher(), k.summary_cipher()].into_iter().flatten() {
                assert!(arca_repo::blob::decode(
                    None,
                    c,
                    BlobKind::Data,
                    &tree.nodes[0].content[0],
                    &sealed,
                    loc.raw_length
                )
                .is_err());
            }
        }
    }
    // It writes nothing: no snapshot, no forget, no key.
    let first = &snaps[0];
    let e = meta.save_object(ObjectKind::Snapshot, &first.snapshot).unwrap_err();
    assert!(is_refusal(&e), "{e}");
    assert!(is_refusal(&snapshots::delete(&meta, &[first.id]).unwrap_err()));
    assert!(meta.key("add a key").is_err_and(|e| is_refusal(&e)));
    for access in ["restore", "check", "backup", "copy"] {
        let r = Repository::open(s.clone(), b"meta").unwrap();
        let e =
            arca_repo::session::open(r, arca_repo::session::Access::Read(access), Default::default()).err().unwrap();
        assert!(is_refusal(&e) && e.to_string().contains(access), "{e}");
    }
    // The full key still reads everything, and check finds the reader keys in order.
    let full = open(&s, b"pw");
    for (id, _, data) in &made {
        assert_eq!(&restore(&full, id).unwrap(), data);
    }
    let report = check(&full, ReadData::All, &Quiet).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

fn s_get_range(s: &Arc<dyn Storage>, loc: &arca_repo::index::BlobLocation) -> Vec<u8> {
    s.get_range(ObjectKind::Pack, &loc.pack.to_hex(), loc.offset, loc.length as u64).unwrap()
}

#[test]
fn a_summary_key_reads_hosts_times_and_sizes_and_no_names() {
    let (s, made) = populated();
    let full = open(&s, b"pw");
    let (full_snaps, _) = snapshots::list_all(&full).unwrap();
    let summary = open(&s, b"summary");
    assert_eq!(summary.reader_level(), Some(Level::Summary));
    assert_eq!(summary.index().len(), 0, "it holds no key to the index and does not read it");
    let (snaps, errors) = snapshots::list_all(&summary).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(snaps.len(), made.len());
    for e in &snaps {
        let f = &full_snaps.iter().find(|f| f.id == e.id).unwrap().snapshot;
        let s = &e.snapshot;
        assert_eq!((&s.hostname, &s.time, &s.summary, &s.class), (&f.hostname, &f.time, &f.summary, &f.class));
        assert!(s.paths.is_empty() && s.tree == Id([0; 32]), "no paths, no tree");
        let text = format!("{s:?}");
        for (_, name, _) in &made {
            assert!(!text.contains(name), "no file name: {text}");
        }
        assert!(!text.contains("/var/log"));
        let err = summary.read_tree(&f.tree).unwrap_err();
        assert!(is_refusal(&err) || matches!(err, RepoError::BlobNotIndexed { .. }), "{err}");
    }
    // With the index in hand it still reads no tree.
    let meta = open(&s, b"meta");
    let loc = meta.index().get(&full_snaps[0].snapshot.tree).unwrap();
    let sealed = s_get_range(&s, &loc);
    for k in summary.keyring().all() {
        for c in [Some(k.cipher()), k.metadata_cipher(), k.summary_cipher()].into_iter().flatten() {
            assert!(arca_repo::blob::decode(
                None,
                c,
                BlobKind::Tree,
                &full_snaps[0].snapshot.tree,
                &sealed,
                loc.raw_length
            )
            .is_err());
        }
    }
    let e = summary.save_object(ObjectKind::Snapshot, &full_snaps[0].snapshot).unwrap_err();
    assert!(is_refusal(&e), "{e}");
}

#[test]
fn older_data_needs_a_rewrite_and_a_rotation_locks_old_reader_keys_out() {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let v1 = Arc::new(Repository::init(s.clone(), b"pw", &opts(1)).unwrap());
    let old_data = contents("written-in-version-1");
    let old = backup(&v1, None, "old-file", &old_data);
    v1.upgrade().unwrap();
    let full = open(&s, b"pw");
    let added = add(&full, Level::Metadata, b"meta");
    assert_eq!(added.unreadable_snapshots, 1, "{added:?}");
    let new = backup(&full, None, "new-file", &contents("new"));
    let meta = open(&s, b"meta");
    let (snaps, errors) = snapshots::list_all(&meta).unwrap();
    assert_eq!(snaps.iter().map(|e| e.id).collect::<Vec<_>>(), vec![new], "the new snapshot reads");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].to_string().contains("key rotate --rewrite"), "the message says what helps: {}", errors[0]);
    // A new snapshot of the unchanged file refers to the tree stored before: still out of
    // reach, until a rewrite (no rotation needed) moves the old data to the new keys.
    let again = backup(&full, None, "old-file", &old_data);
    let meta = open(&s, b"meta");
    let s_again: Snapshot = meta.load_object(ObjectKind::Snapshot, &again.to_hex()).unwrap();
    let e = meta.read_tree(&s_again.tree).unwrap_err();
    assert!(is_refusal(&e), "{e}");
    let lock = SessionLock::acquire(&full, "rewrite", true).unwrap();
    let opts = arca_repo::prune::PruneOptions { threads: 1, ..Default::default() };
    let r = rotate::rewrite(&full, &lock, Some(b"pw"), opts, &Quiet).unwrap();
    assert_eq!((r.packs_left, r.snapshots_left), (0, 0), "{r:?}");
    drop(lock);
    let meta = open(&s, b"meta");
    let (snaps, errors) = snapshots::list_all(&meta).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(snaps.len(), 3);
    for e in &snaps {
        let t = meta.read_tree(&e.snapshot.tree).unwrap();
        assert!(t.nodes[0].name == b"old-file" || t.nodes[0].name == b"new-file");
    }

    // Rotate and rewrite with the full key: the old reader slot is locked out, a new one
    // reads everything.
    let full = open(&s, b"pw");
    let before = copy(&*s);
    let lock = SessionLock::acquire(&full, "key rotate", true).unwrap();
    rotate::rotate(&full, &lock, b"pw", kdf(), &Origin::current()).unwrap();
    drop(lock);
    let full = open(&s, b"pw");
    let lock = SessionLock::acquire(&full, "rewrite", true).unwrap();
    let opts = arca_repo::prune::PruneOptions { threads: 1, ..Default::default() };
    let r = rotate::rewrite(&full, &lock, None, opts, &Quiet).unwrap();
    assert_eq!((r.packs_left, r.snapshots_left), (0, 0), "{r:?}");
    drop(lock);
    for (name, _) in before.list(ObjectKind::Key).unwrap() {
        s.put(ObjectKind::Key, &name, &before.get(ObjectKind::Key, &name).unwrap()).unwrap();
    }
    let e = Repository::open(s.clone(), b"meta").err().unwrap();
    assert!(matches!(e, RepoError::RotatedOut { .. }), "{e}");
    let full = open(&s, b"pw");
    add(&full, Level::Metadata, b"meta again");
    let meta = open(&s, b"meta again");
    let (snaps, errors) = snapshots::list_all(&meta).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(snaps.len(), 3);
    for e in &snaps {
        let names: Vec<_> = meta.read_tree(&e.snapshot.tree).unwrap().nodes.iter().map(|n| n.name.clone()).collect();
        assert!(names == [b"old-file".to_vec()] || names == [b"new-file".to_vec()], "{names:?}");
    }
    assert!(snaps.iter().any(|e| e.snapshot.previous_ids.contains(&old)));
    let report = check(&full, ReadData::All, &Quiet).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

#[test]
fn a_destroyed_class_is_gone_for_reader_keys_too() {
    let (s, _) = populated();
    let meta_before = open(&s, b"meta");
    assert!(!meta_before.keyring().of_class("hr").is_empty());
    let full = open(&s, b"pw");
    let lock = SessionLock::acquire(&full, "key destroy-class", true).unwrap();
    shred::destroy_class(&full, Some(&lock), "hr").unwrap();
    drop(lock);
    for pw in [&b"meta"[..], b"summary"] {
        let r = open(&s, pw);
        assert!(r.keyring().of_class("hr").is_empty(), "no key of the class is left for a reader key");
    }
    assert!(check(&open(&s, b"pw"), ReadData::All, &Quiet).unwrap().errors.is_empty());
}

#[test]
fn check_catches_a_lying_digest_and_a_missing_or_wrong_reader_key() {
    let (s, _) = populated();
    let full = open(&s, b"pw");
    // A snapshot whose digest says another host: sealed as a writer could.
    let key = full.default_key();
    let mut snap = Snapshot::new(
        arca_format::SnapshotKind::Files,
        Id([9; 32]),
        vec!["/".into()],
        "real-host",
        "u",
        "2026-12-07T00:00:00Z",
    );
    snap.summary.total_bytes = 5;
    let mut lie = arca_format::SnapshotDigest::of(&snap);
    lie.hostname = "innocent-host".into();
    let mode = full.config().encryption;
    let repo_id = full.config().repo_id;
    let body = arca_crypto::Cipher::new(mode, &key.key().metadata_key()).seal(
        &arca_format::encode("snapshot", &snap).unwrap(),
        &[&b"arca snapshot v2"[..], &repo_id.0, &key.number.to_le_bytes()].concat(),
    );
    let digest_ad =
        [&b"arca snapshot digest v2"[..], &repo_id.0, &key.number.to_le_bytes(), blake3::hash(&body).as_bytes()]
            .concat();
    let digest = arca_crypto::Cipher::new(mode, &key.key().summary_key())
        .seal(&arca_format::encode("d", &lie).unwrap(), &digest_ad);
    let bytes = arca_format::snapshot::split_bytes(key.number, &digest, &body);
    let id = Id::of_bytes(&bytes);
    s.put(ObjectKind::Snapshot, &id.to_hex(), &bytes).unwrap();
    let summary = open(&s, b"summary");
    let (seen, _) = snapshots::list_all(&summary).unwrap();
    assert_eq!(
        seen.iter().find(|e| e.id == id).unwrap().snapshot.hostname,
        "innocent-host",
        "the summary key sees the lie"
    );
    let report = check(&open(&s, b"pw"), ReadData::None, &Quiet).unwrap();
    assert!(
        report.errors.iter().any(|p| p.object == format!("snapshot {id}") && p.message.contains("digest")),
        "{:?}",
        report.errors
    );
    s.delete(ObjectKind::Snapshot, &id.to_hex()).unwrap();

    // A reader key object deleted: named.
    let victim = s
        .list(ObjectKind::Keyring)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .find(|n| {
            let b = s.get(ObjectKind::Keyring, n).unwrap();
            arca_format::keyring::envelope(&b).map(|(e, _)| e) == Some(arca_format::SEALED_TO_METADATA)
                && arca_format::keyring::number_in_name(n) == Some(key.number)
        })
        .unwrap();
    let kept = s.get(ObjectKind::Keyring, &victim).unwrap();
    s.delete(ObjectKind::Keyring, &victim).unwrap();
    let report = check(&open(&s, b"pw"), ReadData::None, &Quiet).unwrap();
    assert!(
        report.errors.iter().any(|p| p.message.contains("gives reader keys its metadata key")),
        "{:?}",
        report.errors
    );
    // One with a wrong key, as a backup-only holder could plant it: named.
    s.put(ObjectKind::Keyring, &victim, &kept).unwrap();
    let bundle = full.backup_bundle(None).unwrap();
    let recipient: [u8; 32] = bundle.metadata_recipient.unwrap().as_slice().try_into().unwrap();
    let file = arca_format::ReaderKeyFile {
        number: key.number,
        class: String::new(),
        key: serde_bytes::ByteBuf::from(vec![7u8; 32]),
        host: None,
        summary_key: None,
        session: false,
    };
    let env = arca_format::SEALED_TO_METADATA;
    let ad = [&b"arca content key v2"[..], &repo_id.0, &env.to_le_bytes()].concat();
    let mut planted = arca_format::keyring::envelope_prefix(env).to_vec();
    planted.extend_from_slice(&arca_crypto::recipient::seal_to(
        &recipient,
        &arca_format::encode("reader key", &file).unwrap(),
        &ad,
    ));
    s.put(ObjectKind::Keyring, &arca_format::keyring::object_name(key.number, &planted), &planted).unwrap();
    // A metadata key uses neither claim (it never takes the planted one for the real one):
    // what that key sealed is refused to it, and the conflict is named.
    let meta = Repository::open(s.clone(), b"meta").unwrap();
    assert!(meta.keyring().get(key.number).is_none());
    assert!(
        meta.keyring_problems().iter().any(|e| e.to_string().contains("different keys")),
        "{:?}",
        meta.keyring_problems()
    );
    let report = check(&open(&s, b"pw"), ReadData::None, &Quiet).unwrap();
    assert!(report.errors.iter().any(|p| p.message.contains("wrong metadata key")), "{:?}", report.errors);
}
