//! Key rotation (`key rotate`, format version 2): afterwards the password in use opens the
//! repository with a new master key; every other slot is gone, and one put back (the leaked
//! one) opens nothing; the old master key opens no object written since, nor the config; the
//! data of every class, of version-1 days and of backup-only keys still reads; and a rotation
//! killed at any storage operation leaves a repository that opens, reads and checks, which
//! the next rotation cleans up.

use arca_format::Id;
use arca_repo::check::{check, ReadData};
use arca_repo::events::Quiet;
use arca_repo::keys::{self, Origin, Unlocked};
use arca_repo::lock::SessionLock;
use arca_repo::{rotate, snapshots, RepoError, Repository};
use arca_storage::{FailAfter, MemoryStorage, ObjectKind, Storage};
use std::sync::Arc;

mod common;
use common::*;

fn kdf() -> arca_format::KdfParams {
    opts(2).kdf
}

fn rotate_now(repo: &Arc<Repository>, pw: &[u8]) -> Result<rotate::RotationReport, RepoError> {
    let lock = SessionLock::acquire(repo, "key rotate", true)?;
    rotate::rotate(repo, &lock, pw, kdf(), &Origin::current())
}

fn open(s: &Arc<dyn Storage>, pw: &[u8]) -> Arc<Repository> {
    let r = Repository::open(s.clone(), pw).unwrap();
    let problems = r.load_index().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    Arc::new(r)
}

/// Snapshots and the contents of their one file.
type Stored = Vec<(Id, Vec<u8>)>;

/// A repository made as version 1, upgraded, with data of every kind: version-1 packs, the
/// default class, a class, a backup-only key's; a second password and the backup-only one.
fn populated() -> (Arc<dyn Storage>, Stored) {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let v1 = Arc::new(Repository::init(s.clone(), b"pw", &opts(1)).unwrap());
    let mut data = vec![];
    let d = contents("version 1");
    data.push((backup(&v1, None, "v1", &d), d));
    v1.upgrade().unwrap();
    let repo = open(&s, b"pw");
    for (class, tag) in [(None, "default"), (Some("hr"), "hr")] {
        let d = contents(tag);
        data.push((backup(&repo, class, tag, &d), d));
    }
    keys::store_slot(&*s, repo.key("t").unwrap(), b"second", kdf(), &Origin::current(), "laptop").unwrap();
    let bundle = repo.backup_bundle(Some("h".into())).unwrap();
    repo.reseal_shared().unwrap();
    keys::store_backup_slot(&*s, &bundle, b"backup", kdf(), &Origin::current(), "h").unwrap();
    let d = contents("backup-only");
    data.push((backup(&open(&s, b"backup"), None, "bo", &d), d));
    (s, data)
}

fn reads_everything(repo: &Repository, data: &[(Id, Vec<u8>)], when: &str) {
    for (id, d) in data {
        assert_eq!(&restore(repo, id).unwrap_or_else(|e| panic!("{when}: snapshot {id}: {e}")), d, "{when}");
    }
    let report = check(repo, ReadData::All, &Quiet).unwrap();
    assert!(report.errors.is_empty(), "{when}: {:?}", report.errors);
}

#[test]
fn after_a_rotation_the_old_key_and_every_other_slot_open_nothing_and_all_data_reads() {
    let (s, mut data) = populated();
    let before = copy(&*s);
    let repo = open(&s, b"pw");
    let old_master = repo.key("t").unwrap().clone();
    let old_writer = repo.default_key().number;
    let plan = rotate::plan(&repo).unwrap();
    assert_eq!(plan.removed_slots.len(), 2, "{plan:?}");
    let report = rotate_now(&repo, b"pw").unwrap();
    assert_eq!(report.removed_slots.len(), 2);
    assert_eq!(report.rotated.len(), 2, "the default class and hr get new writing keys: {report:?}");
    drop(repo);

    let repo = open(&s, b"pw");
    reads_everything(&repo, &data, "after the rotation");
    assert_ne!(repo.default_key().number, old_writer, "new data gets a new key");
    assert_eq!(
        repo.default_key().key().blob_id(b"x"),
        old_master.with_fresh_data_key().blob_id(b"x"),
        "the same MAC key: deduplication carries on"
    );
    let d = contents("after");
    data.push((backup(&repo, None, "after", &d), d));
    reads_everything(&open(&s, b"pw"), &data, "with data written since");
    assert_eq!(s.list(ObjectKind::Key).unwrap().len(), 1, "one slot left");
    for pw in [&b"second"[..], b"backup"] {
        assert!(matches!(Repository::open(s.clone(), pw), Err(RepoError::WrongPassword { .. })));
    }
    // The leaked slots put back open their slot, but nothing else.
    for (name, _) in before.list(ObjectKind::Key).unwrap() {
        s.put(ObjectKind::Key, &name, &before.get(ObjectKind::Key, &name).unwrap()).unwrap();
    }
    for pw in [&b"second"[..], b"backup"] {
        let e = Repository::open(s.clone(), pw).err().expect("refused");
        assert!(matches!(e, RepoError::RotatedOut { .. }), "{e}");
    }
    // The old master key (what a leaked slot gives) opens no keyring object, no index object
    // and no snapshot written since; not the config either.
    let cipher = old_master.cipher(repo.config().encryption);
    let shared = old_master.shared_key(&repo.config().repo_id);
    let shared = arca_crypto::Cipher::new(repo.config().encryption, &shared);
    // Objects of `store` the old master key or its shared key opens, with the associated data
    // version 2 gives each kind.
    let repo_id = repo.config().repo_id;
    let old_opens = |store: &dyn Storage| -> usize {
        let mut n = 0;
        for (kind, label) in [
            (ObjectKind::Keyring, &b"arca content key v2"[..]),
            (ObjectKind::Index, b"arca index v2"),
            (ObjectKind::Mark, b"arca mark v2"),
            (ObjectKind::Snapshot, b"arca snapshot v2"),
        ] {
            for (name, _) in store.list(kind).unwrap() {
                let b = store.get(kind, &name).unwrap();
                let Some((number, sealed)) = arca_format::keyring::envelope(&b) else { continue };
                let ad = [label, &repo_id.0[..], &number.to_le_bytes()[..]].concat();
                n += [&cipher, &shared].iter().filter(|c| c.open(sealed, &ad, "x").is_ok()).count();
            }
        }
        n
    };
    assert!(old_opens(&*before) >= 2, "before, the old key opens the keyring and the index");
    assert_eq!(old_opens(&*s), 0, "after, nothing");
    let recipient = old_master.recipient(&repo.config().repo_id);
    for (name, _) in s.list(ObjectKind::Keyring).unwrap() {
        let b = s.get(ObjectKind::Keyring, &name).unwrap();
        let (_, sealed) = arca_format::keyring::envelope(&b).unwrap();
        let ad = [&b"arca content key v2"[..], &repo.config().repo_id.0[..], &u32::MAX.to_le_bytes()[..]].concat();
        assert!(recipient.open(sealed, &ad).is_err(), "a backup-only session's key, sealed to the new recipient");
    }
    let file = arca_format::ConfigFile::from_bytes(&s.get(ObjectKind::Config, "config").unwrap()).unwrap();
    let ad = [&b"arca config v2"[..], &file.repo_id.0[..], &0u32.to_le_bytes()[..]].concat();
    assert!(cipher.open(&file.sealed, &ad, "config").is_err());
    // A backup-only key made now works; one of before (put back above) was refused.
    let bundle = repo.backup_bundle(None).unwrap();
    repo.reseal_shared().unwrap();
    keys::store_backup_slot(&*s, &bundle, b"backup again", kdf(), &Origin::current(), "").unwrap();
    let d = contents("backup-only again");
    data.push((backup(&open(&s, b"backup again"), None, "bo2", &d), d));
    reads_everything(&open(&s, b"pw"), &data, "with a new backup-only key's data");
    // A second rotation carries the retired keys again.
    let repo = open(&s, b"pw");
    rotate_now(&repo, b"pw").unwrap();
    reads_everything(&open(&s, b"pw"), &data, "after a second rotation");
}

#[test]
fn a_rotation_killed_at_any_storage_operation_leaves_a_repository_that_opens_reads_and_checks() {
    let (s, data) = populated();
    let mut kills = 0;
    for allowed in 0.. {
        let base = copy(&*s);
        let faulty: Arc<dyn Storage> = Arc::new(FailAfter::new(base.clone(), allowed));
        let done = Repository::open(faulty.clone(), b"pw").and_then(|r| {
            let r = Arc::new(r);
            r.load_index()?;
            rotate_now(&r, b"pw")
        });
        // Whatever happened, the password opens the repository and every snapshot reads
        // (leftovers show as unreadable index or keyring objects, not as missing data).
        let repo = Repository::open(base.clone(), b"pw").unwrap_or_else(|e| panic!("after {allowed}: {e}"));
        let repo = Arc::new(repo);
        repo.load_index().unwrap();
        for (id, d) in &data {
            assert_eq!(&restore(&repo, id).unwrap_or_else(|e| panic!("after {allowed}: {e}")), d);
        }
        match done {
            Ok(_) => {
                reads_everything(&open(&base, b"pw"), &data, "finished");
                break;
            }
            Err(_) => {
                kills += 1;
                // The killed run's lock, if this key reads it: a dead process's, which a real
                // rerun sees as stale (one sealed with the other master key stays: the
                // rewrite below must clear it).
                for (name, _) in base.list(ObjectKind::Lock).unwrap() {
                    if repo.load_named_object::<arca_format::LockFile>(ObjectKind::Lock, &name).is_ok() {
                        base.delete(ObjectKind::Lock, &name).unwrap();
                    }
                }
                assert!(keys::open_all(&*base, b"pw").unwrap().iter().all(|(_, u)| matches!(u, Unlocked::Full(_))));
                // `key rotate --rewrite-only` clears what the killed run left, after which
                // prune runs (an unreadable lock or index object would stop it).
                {
                    let lock = SessionLock::acquire(&repo, "key rotate --rewrite-only", true).unwrap();
                    let opts = arca_repo::prune::PruneOptions { threads: 1, ..Default::default() };
                    rotate::rewrite(&repo, &lock, Some(b"pw"), opts.clone(), &Quiet)
                        .unwrap_or_else(|e| panic!("rewrite after {allowed}: {e}"));
                    arca_repo::prune::prune(&repo, Some(&lock), &opts, &Quiet)
                        .unwrap_or_else(|e| panic!("prune after {allowed}: {e}"));
                }
                let repo = open(&base, b"pw");
                let c = check(&repo, ReadData::None, &Quiet).unwrap();
                assert!(c.errors.is_empty(), "after {allowed}: {:?}", c.errors);
                // The rewrite sealed the snapshots again: they go by new ids naming the old.
                let data = current(&repo, &data);
                // A second rotation, unhindered, cleans up and leaves one slot, no leftovers.
                rotate_now(&repo, b"pw").unwrap_or_else(|e| panic!("rerun after {allowed}: {e}"));
                let again = open(&base, b"pw");
                assert!(again.keyring_problems().is_empty(), "after {allowed}: {:?}", again.keyring_problems());
                reads_everything(&again, &data, &format!("rerun after {allowed}"));
                assert_eq!(base.list(ObjectKind::Key).unwrap().len(), 1);
            }
        }
    }
    assert!(kills >= 10, "every write of the rotation is a kill point ({kills})");
}

/// `data` under the ids its snapshots have now (a rewrite seals them again; the new object
/// names the old id).
fn current(repo: &Repository, data: &Stored) -> Stored {
    let (snaps, _) = snapshots::list_all(repo).unwrap();
    data.iter()
        .map(|(old, d)| {
            let e = snaps.iter().find(|e| e.id == *old || e.snapshot.previous_ids.contains(old)).expect("present");
            (e.id, d.clone())
        })
        .collect()
}

/// Today's storage as a holder of a leaked slot sees it who also kept the old config, key
/// slots and keyring: every object now in `s`, with those put back.
fn with_old_keys(s: &dyn Storage, before: &dyn Storage) -> Arc<dyn Storage> {
    let hybrid = copy(s);
    for kind in [ObjectKind::Keyring, ObjectKind::Key] {
        for (name, _) in hybrid.list(kind).unwrap() {
            hybrid.delete(kind, &name).unwrap();
        }
        for (name, _) in before.list(kind).unwrap() {
            hybrid.put(kind, &name, &before.get(kind, &name).unwrap()).unwrap();
        }
    }
    hybrid.put(ObjectKind::Config, "config", &before.get(ObjectKind::Config, "config").unwrap()).unwrap();
    hybrid
}

/// How many snapshots and packs of `s` the old keys (from `before`) open.
fn readable_with_old_keys(s: &dyn Storage, before: &dyn Storage) -> (usize, usize) {
    let old = Arc::new(Repository::open(with_old_keys(s, before), b"second").unwrap());
    let _ = old.load_index();
    let (snaps, _) = snapshots::list_all(&old).unwrap();
    let packs = old
        .storage()
        .list(ObjectKind::Pack)
        .unwrap()
        .into_iter()
        .filter(|(name, size)| arca_repo::pack::read_header(&old, &Id::from_hex(name).unwrap(), *size).is_ok())
        .count();
    (snaps.len(), packs)
}

fn rewrite_now(repo: &Arc<Repository>) -> Result<rotate::RewriteReport, RepoError> {
    let lock = SessionLock::acquire(repo, "key rotate --rewrite", true)?;
    let opts = arca_repo::prune::PruneOptions {
        max_unused: arca_repo::prune::MaxUnused::Percent(100.0),
        threads: 1,
        ..Default::default()
    };
    rotate::rewrite(repo, &lock, None, opts, &Quiet)
}

#[test]
fn after_a_rewrite_the_old_keys_open_nothing_in_the_storage_and_everything_reads() {
    let (s, data) = populated();
    let before = copy(&*s);
    let packs = s.list(ObjectKind::Pack).unwrap().len();
    assert_eq!(readable_with_old_keys(&*s, &*before), (data.len(), packs), "the old keys read it all before");
    rotate_now(&open(&s, b"pw"), b"pw").unwrap();
    let (snaps, old_packs) = readable_with_old_keys(&*s, &*before);
    assert_eq!((snaps, old_packs), (data.len(), packs), "a rotation alone re-encrypts nothing");

    let repo = open(&s, b"pw");
    let retired = rotate::retired_keys(&repo);
    assert!(retired.contains(&0) && retired.len() >= 4, "key 0, the default class's, hr's, the session's: {retired:?}");
    let pending = rotate::pending(&repo, &retired).unwrap();
    assert_eq!(pending.snapshots, data.len());
    assert!(pending.packs as usize >= packs / 2, "{pending:?}");
    let report = rewrite_now(&repo).unwrap();
    assert_eq!((report.packs_left, report.snapshots_left), (0, 0), "{report:?}");
    assert_eq!(report.snapshots_resealed, data.len());
    assert_eq!(report.prune.plan.rewrite_packs, pending.packs, "{report:?}");
    drop(repo);

    assert_eq!(readable_with_old_keys(&*s, &*before), (0, 0), "the old keys open no snapshot and no pack");
    let repo = open(&s, b"pw");
    let (snaps, _) = snapshots::list_all(&repo).unwrap();
    assert_eq!(snaps.len(), data.len());
    // Snapshot ids changed (sealed anew); each names the one it replaces.
    let now: Vec<(Id, Vec<u8>)> = data
        .iter()
        .map(|(old, d)| {
            let e = snaps.iter().find(|e| e.snapshot.previous_ids.contains(old)).expect("replaced");
            (e.id, d.clone())
        })
        .collect();
    reads_everything(&repo, &now, "after the rewrite");
    assert_eq!(rotate::pending(&repo, &retired).unwrap().packs, 0);
    // Nothing left to do: a second run changes nothing.
    let again = rewrite_now(&repo).unwrap();
    assert_eq!((again.snapshots_resealed, again.prune.plan.rewrite_packs), (0, 0), "{again:?}");
}

#[test]
fn a_rewrite_killed_at_any_storage_operation_leaves_a_readable_repository_and_a_rerun_finishes() {
    let (s, data) = populated();
    rotate_now(&open(&s, b"pw"), b"pw").unwrap();
    let mut kills = 0;
    for allowed in 0.. {
        let base = copy(&*s);
        let faulty: Arc<dyn Storage> = Arc::new(FailAfter::new(base.clone(), allowed));
        let done = Repository::open(faulty, b"pw").and_then(|r| {
            let r = Arc::new(r);
            r.load_index()?;
            rewrite_now(&r)
        });
        for (name, _) in base.list(ObjectKind::Lock).unwrap() {
            base.delete(ObjectKind::Lock, &name).unwrap();
        }
        // Every snapshot reads, under its old id or a new one naming it.
        let repo = open(&base, b"pw");
        let (snaps, errors) = snapshots::list_all(&repo).unwrap();
        assert!(errors.is_empty(), "after {allowed}: {errors:?}");
        for (old, d) in &data {
            let e = snaps
                .iter()
                .find(|e| e.id == *old || e.snapshot.previous_ids.contains(old))
                .unwrap_or_else(|| panic!("after {allowed}: snapshot {old} is gone"));
            assert_eq!(&restore(&repo, &e.id).unwrap_or_else(|e| panic!("after {allowed}: {e}")), d);
        }
        let report = check(&repo, ReadData::All, &Quiet).unwrap();
        assert!(report.errors.is_empty(), "after {allowed}: {:?}", report.errors);
        if done.is_ok() {
            break;
        }
        kills += 1;
        let rerun = rewrite_now(&repo).unwrap_or_else(|e| panic!("rerun after {allowed}: {e}"));
        assert_eq!((rerun.packs_left, rerun.snapshots_left), (0, 0), "rerun after {allowed}: {rerun:?}");
        let retired = rotate::retired_keys(&repo);
        assert_eq!(rotate::pending(&open(&base, b"pw"), &retired).unwrap().packs, 0);
    }
    assert!(kills >= 30, "every write of the rewrite is a kill point ({kills})");
}
