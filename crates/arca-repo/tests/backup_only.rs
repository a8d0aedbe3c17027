//! Backup-only keys (format version 2, docs/SECURITY.md): such a key deduplicates against
//! everything stored, yet no key it holds opens a pack, tree, snapshot or content key in the
//! repository, not even what it wrote itself in an earlier session; the full key reads all
//! of it; a key bound to a host cannot pass snapshots off as another host's; and nothing a
//! backup-only holder stores can push a full key's content key out of the keyring.

use arca_format::{decode, encode, BackupBundle, BlobKind, Id, KeySlot, Node, NodeKind, Snapshot, SnapshotKind, Tree};
use arca_repo::events::Quiet;
use arca_repo::lock::SessionLock;
use arca_repo::writer::WriterOptions;
use arca_repo::{keys, snapshots, BlobWriter, InitOptions, RepoError, Repository};
use arca_storage::{MemoryStorage, ObjectKind, Storage};
use std::sync::Arc;

fn opts() -> InitOptions {
    InitOptions {
        kdf: arca_format::KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 },
        pack_size: 4096,
        ..Default::default()
    }
}

fn open(s: &Arc<dyn Storage>, pw: &[u8]) -> Arc<Repository> {
    let r = Repository::open(s.clone(), pw).unwrap();
    assert!(r.load_index().unwrap().is_empty());
    Arc::new(r)
}

fn contents(tag: &str) -> Vec<u8> {
    (0..20_000u32).map(|i| format!("{tag}:{i};")).collect::<String>().into_bytes()
}

/// Store one file `name` holding `data` as a snapshot of `host`; returns the snapshot id and
/// whether the data blob was new.
fn backup(repo: &Arc<Repository>, host: &str, name: &str, data: &[u8]) -> (Id, bool) {
    let lock = SessionLock::acquire(repo, "backup", false).unwrap();
    repo.store_session_key().unwrap();
    let w = BlobWriter::with_key(
        repo.clone(),
        repo.default_key(),
        &lock,
        WriterOptions { threads: 1, ..Default::default() },
    );
    let mut n = Node::new(name.as_bytes(), NodeKind::File);
    n.size = data.len() as u64;
    let (blob, added) = w.add(BlobKind::Data, data).unwrap();
    n.content = vec![blob];
    let (tree, _) = w.add(BlobKind::Tree, &encode("tree", &Tree { nodes: vec![n] }).unwrap()).unwrap();
    w.finish().unwrap();
    let s = Snapshot::new(SnapshotKind::Files, tree, vec!["/".into()], host, "u", "2026-12-04T00:00:00Z");
    (snapshots::save(repo, &s).unwrap(), added)
}

fn restore(repo: &Repository, id: &Id) -> Result<Vec<u8>, RepoError> {
    let s: Snapshot = repo.load_object(ObjectKind::Snapshot, &id.to_hex())?;
    let t = repo.read_tree(&s.tree)?;
    repo.read_blob(BlobKind::Data, &t.nodes[0].content[0])
}

fn add_backup_only(full: &Repository, host: Option<&str>, pw: &[u8]) -> BackupBundle {
    let bundle = full.backup_bundle(host.map(String::from)).unwrap();
    full.reseal_shared().unwrap();
    keys::store_backup_slot(full.storage(), &bundle, pw, opts().kdf, &keys::Origin::current(), "test").unwrap();
    bundle
}

#[test]
fn a_backup_only_key_deduplicates_and_reads_nothing_back() {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let full = Arc::new(Repository::init(s.clone(), b"full", &opts()).unwrap());
    let shared_data = contents("on both hosts");
    let (db, _) = backup(&full, "db01", "db", &contents("db01 only"));
    backup(&full, "db01", "shared", &shared_data);
    let bundle = add_backup_only(&full, Some("web01"), b"backup");

    let bo = open(&s, b"backup");
    assert!(bo.is_backup_only());
    assert_eq!(bo.backup_only_host(), Some("web01"));
    let (web1, added) = backup(&bo, "web01", "shared", &shared_data);
    assert!(!added, "a backup-only key deduplicates against what another host stored");
    let own = contents("web01's own");
    let bo2 = open(&s, b"backup");
    let (web2, added) = backup(&bo2, "web01", "own", &own);
    assert!(added);
    assert_ne!(bo.default_key().number, bo2.default_key().number, "each session seals with its own key");

    // A session reads back only what it wrote itself; a later one reads nothing.
    let refused = |r: Result<Snapshot, RepoError>, what: &str| match r {
        Err(RepoError::BackupOnly { .. }) => {}
        other => panic!("{what}: {other:?}"),
    };
    refused(bo.load_object(ObjectKind::Snapshot, &db.to_hex()), "another host's snapshot");
    refused(bo.load_object(ObjectKind::Snapshot, &web2.to_hex()), "a later session's snapshot");
    let later = open(&s, b"backup");
    for id in [&db, &web1, &web2] {
        refused(later.load_object(ObjectKind::Snapshot, &id.to_hex()), "a snapshot of an earlier session");
    }
    let ids: Vec<Id> = later.index().iter().map(|(id, _)| id).collect();
    assert!(ids.len() >= 6, "the index is readable: it is what deduplication needs");
    for id in ids {
        let e = later.read_blob(BlobKind::Data, &id).unwrap_err();
        assert!(matches!(e, RepoError::BackupOnly { .. }), "reading blob {id}: {e}");
        assert!(matches!(later.read_tree(&id), Err(RepoError::BackupOnly { .. })));
    }
    assert!(matches!(snapshots::list_all(&later), Ok((ok, errs)) if ok.is_empty() && errs.len() == 4));
    assert!(matches!(later.key("x"), Err(RepoError::BackupOnly { .. })));
    // Even the session that wrote it cannot open a pack of an earlier session: the keys it
    // holds (shared key, MAC key, recipient public key) open no keyring object.
    let shared = arca_crypto::Cipher::new(
        arca_format::EncryptionMode::XChaCha20Poly1305,
        bundle.shared_key.as_slice().try_into().unwrap(),
    );
    for (name, _) in s.list(ObjectKind::Keyring).unwrap() {
        let b = s.get(ObjectKind::Keyring, &name).unwrap();
        let (_, sealed) = arca_format::keyring::envelope(&b).unwrap();
        for skip in [0, 32] {
            assert!(shared.open(&sealed[skip.min(sealed.len())..], b"", "k").is_err());
        }
    }

    // The full key reads everything, the backup-only key's data included.
    let full = open(&s, b"full");
    assert_eq!(restore(&full, &web1).unwrap(), shared_data);
    assert_eq!(restore(&full, &web2).unwrap(), own);
    assert_eq!(restore(&full, &db).unwrap(), contents("db01 only"));
    let (all, errs) = snapshots::list_all(&full).unwrap();
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(all.len(), 4);
    let report = arca_repo::check::check(&full, arca_repo::check::ReadData::All, &Quiet).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(full.keyring().session_keys(), 2, "one key per backup-only session");
}

#[test]
fn a_key_bound_to_a_host_cannot_pass_for_another() {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let full = Arc::new(Repository::init(s.clone(), b"full", &opts()).unwrap());
    add_backup_only(&full, Some("web01"), b"backup");
    let bo = open(&s, b"backup");
    // A modified client ignores the binding and names another host.
    let (forged, _) = backup(&bo, "db01", "f", &contents("forged"));
    let (honest, _) = backup(&open(&s, b"backup"), "web01", "f", &contents("honest"));
    let full = open(&s, b"full");
    let (ok, errs) = snapshots::list_all(&full).unwrap();
    assert_eq!(ok.iter().map(|e| e.id).collect::<Vec<_>>(), vec![honest]);
    assert_eq!(errs.len(), 1);
    let msg = errs[0].to_string();
    assert!(msg.contains(&forged.to_hex()) && msg.contains("web01") && msg.contains("db01"), "{msg}");
}

#[test]
fn a_backup_only_holder_cannot_push_a_content_key_out() {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let full = Arc::new(Repository::init(s.clone(), b"full", &opts()).unwrap());
    let (id, _) = backup(&full, "h", "f", &contents("kept"));
    let bundle = add_backup_only(&full, None, b"backup");
    // A hostile holder seals a key to the recipient under the default class key's number.
    let number = full.default_key().number;
    let file = arca_format::ContentKeyFile {
        number,
        class: String::new(),
        created: "now".into(),
        secret: serde_bytes::ByteBuf::from(vec![7u8; 72]),
        host: None,
        host_proof: None,
        retired: false,
        split: false,
    };
    let plain = encode("content key", &file).unwrap();
    let repo_id = full.config().repo_id;
    let ad = [&b"arca content key v2"[..], &repo_id.0[..], &u32::MAX.to_le_bytes()[..]].concat();
    let mut bytes = arca_format::keyring::envelope_prefix(u32::MAX).to_vec();
    bytes.extend(arca_crypto::recipient::seal_to(bundle.recipient.as_slice().try_into().unwrap(), &plain, &ad));
    // Named to sort first, so a reader that took keys in listing order would load it first.
    let name = format!("00000000{}", &blake3::hash(&bytes).to_hex()[8..]);
    s.put(ObjectKind::Keyring, &name, &bytes).unwrap();
    let full = open(&s, b"full");
    assert_eq!(restore(&full, &id).unwrap(), contents("kept"));
    assert_eq!(full.keyring_problems().len(), 1, "the planted key is reported");
}

#[test]
fn backup_only_keys_are_refused_where_they_would_protect_nothing() {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let o = InitOptions { encryption: arca_format::EncryptionMode::AuthenticatedOnly, ..opts() };
    let full = Repository::init(s.clone(), b"full", &o).unwrap();
    assert!(matches!(full.backup_bundle(None), Err(RepoError::Unsuitable(_))));
    drop(s);
    let s1: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let v1 = Repository::init(s1, b"full", &InitOptions { version: 1, ..opts() }).unwrap();
    assert!(matches!(v1.backup_bundle(None), Err(RepoError::NeedsUpgrade { .. })));
}

#[test]
fn the_slot_records_its_role() {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let full = Repository::init(s.clone(), b"full", &opts()).unwrap();
    add_backup_only(&full, Some("web01"), b"backup");
    let roles: Vec<String> = s
        .list(ObjectKind::Key)
        .unwrap()
        .iter()
        .map(|(n, _)| decode::<KeySlot>("key slot", &s.get(ObjectKind::Key, n).unwrap()).unwrap().role)
        .collect();
    assert_eq!(roles.iter().filter(|r| r.as_str() == arca_format::ROLE_BACKUP_ONLY).count(), 1);
    let listed = keys::list(&*s, "").unwrap();
    assert!(listed.iter().any(|k| k.role == "backup-only") && listed.iter().any(|k| k.role == "full"));
}

/// Seal `plain` as an object of `label` with the default class's key, as arca did before the
/// shared key (format version 2 as first released).
fn seal_with_default_key(repo: &Repository, label: &[u8], plain: &[u8]) -> Vec<u8> {
    let key = repo.default_key();
    let ad = [label, &repo.config().repo_id.0[..], &key.number.to_le_bytes()[..]].concat();
    let mut out = arca_format::keyring::envelope_prefix(key.number).to_vec();
    out.extend(key.cipher().seal(plain, &ad));
    out
}

#[test]
fn index_and_marks_sealed_before_the_shared_key_are_sealed_again_and_superseded_ones_dropped() {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let full = Arc::new(Repository::init(s.clone(), b"full", &opts()).unwrap());
    let data = contents("old index");
    backup(&full, "db01", "f", &data);
    // Turn every index object into the old form, add one that supersedes nothing new, and one
    // old object that a later one supersedes (a prune's leftover).
    let mut old_names = vec![];
    for (name, _) in s.list(ObjectKind::Index).unwrap() {
        let f: arca_format::IndexFile = full.load_object(ObjectKind::Index, &name).unwrap();
        let bytes = seal_with_default_key(&full, b"arca index v2", &encode("index", &f).unwrap());
        s.delete(ObjectKind::Index, &name).unwrap();
        let new = Id::of_bytes(&bytes);
        s.put(ObjectKind::Index, &new.to_hex(), &bytes).unwrap();
        old_names.push(new);
    }
    let stale = arca_format::IndexFile { packs: vec![], supersedes: vec![] };
    let stale_bytes = seal_with_default_key(&full, b"arca index v2", &encode("index", &stale).unwrap());
    let stale_id = Id::of_bytes(&stale_bytes);
    s.put(ObjectKind::Index, &stale_id.to_hex(), &stale_bytes).unwrap();
    let sup = arca_format::IndexFile { packs: vec![], supersedes: vec![stale_id] };
    let sup_bytes = seal_with_default_key(&full, b"arca index v2", &encode("index", &sup).unwrap());
    s.put(ObjectKind::Index, &Id::of_bytes(&sup_bytes).to_hex(), &sup_bytes).unwrap();
    let mark = arca_format::MarkFile { created: 0, packs: vec![], index_files: vec![], sessions: Some(vec![]) };
    let mark_bytes = seal_with_default_key(&full, b"arca mark v2", &encode("mark", &mark).unwrap());
    s.put(ObjectKind::Mark, &Id::of_bytes(&mark_bytes).to_hex(), &mark_bytes).unwrap();

    // Before: a backup-only key could neither deduplicate nor see the mark, and says so.
    let bundle = full.backup_bundle(None).unwrap();
    keys::store_backup_slot(&*s, &bundle, b"backup", opts().kdf, &keys::Origin::current(), "t").unwrap();
    let early = Repository::open(s.clone(), b"backup").unwrap();
    let e = early.load_index().unwrap_err();
    assert!(e.to_string().contains("key add --backup-only"), "{e}");

    let full = open(&s, b"full");
    let resealed = full.reseal_shared().unwrap();
    assert_eq!(resealed, old_names.len() + 2, "every live index object and the mark; not the superseded one");
    assert!(!s.exists(ObjectKind::Index, &stale_id.to_hex()).unwrap(), "the superseded object is deleted");
    for kind in [ObjectKind::Index, ObjectKind::Mark] {
        for (name, _) in s.list(kind).unwrap() {
            let b = s.get(kind, &name).unwrap();
            assert_eq!(arca_format::keyring::envelope(&b).map(|(k, _)| k), Some(arca_format::SHARED_KEY_NUMBER));
        }
    }
    assert_eq!(full.reseal_shared().unwrap(), 0, "a second run has nothing to do");
    let bo = open(&s, b"backup");
    let (_, added) = backup(&bo, "web01", "f", &data);
    assert!(!added, "deduplicated against the resealed index");
    let full = open(&s, b"full");
    let report = arca_repo::check::check(&full, arca_repo::check::ReadData::All, &Quiet).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}
