//! Issue 14, item 4: the signed history. The storage deletes, brings back, swaps and rolls
//! back snapshot objects and statements; each is reported naming what is involved, and honest
//! forgets and replacements are not.

use arca_crypto::sign::Identity;
use arca_format::{encode, Id, KdfParams, Snapshot, SnapshotKind, Statement, StatementBody};
use arca_repo::history::{audit, record, Audit, Problem, Signer, Source};
use arca_repo::keys::Origin;
use arca_repo::snapshots::{self, SnapshotEntry};
use arca_repo::{InitOptions, Repository};
use arca_storage::{MemoryStorage, ObjectKind, Storage};
use serde_bytes::ByteBuf;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

fn origin(host: &str) -> Origin {
    Origin { hostname: host.into(), username: "root".into() }
}

fn init() -> Arc<dyn Storage> {
    let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let opts = InitOptions { kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }, ..Default::default() };
    Repository::init(s.clone(), b"pw", &opts).unwrap();
    s
}

/// The repository opened as a host whose identity and memory live in `state`.
fn open_as(s: &Arc<dyn Storage>, state: &Path, host: &str) -> Repository {
    let mut r = Repository::open(s.clone(), b"pw").unwrap();
    r.set_signer(Arc::new(Signer::load_or_create(state, origin(host)).unwrap()));
    r
}

fn snapshot(n: u8) -> Snapshot {
    let time = format!("2026-12-0{}T00:00:00Z", n % 9 + 1);
    Snapshot::new(SnapshotKind::Files, Id([n; 32]), vec!["/srv".into()], "web01", "root", &time)
}

fn present(s: &dyn Storage) -> HashSet<Id> {
    s.list(ObjectKind::Snapshot).unwrap().into_iter().filter_map(|(n, _)| Id::from_hex(&n)).collect()
}

fn audit_of(r: &Repository) -> Audit {
    audit(r, &present(r.storage()), Source::Storage).unwrap()
}

fn statements(s: &dyn Storage) -> Vec<String> {
    s.list(ObjectKind::History).unwrap().into_iter().map(|(n, _)| n).collect()
}

#[test]
fn honest_backups_forgets_and_replacements_leave_a_clean_history() {
    let s = init();
    let state = tempfile::tempdir().unwrap();
    let r = open_as(&s, state.path(), "web01");
    let a = snapshots::save(&r, &snapshot(1)).unwrap();
    let b = snapshots::save(&r, &snapshot(2)).unwrap();
    let c = snapshots::save(&r, &snapshot(3)).unwrap();
    snapshots::delete(&r, &[a]).unwrap();
    let mut tagged = snapshot(2);
    tagged.tags.push("kept".into());
    let b2 = snapshots::replace(&r, &SnapshotEntry { id: b, snapshot: snapshot(2) }, tagged).unwrap();
    // A second host writes into the same repository.
    let other_state = tempfile::tempdir().unwrap();
    let r2 = open_as(&s, other_state.path(), "db01");
    let d = snapshots::save(&r2, &snapshot(4)).unwrap();
    for r in [&r, &r2] {
        let h = audit_of(r);
        assert!(h.problems.is_empty(), "{:?}", h.problems);
        assert_eq!(h.signers, 2);
        assert_eq!(h.statements, 6);
        assert!(h.unsigned.is_empty());
        assert_eq!(h.signed.keys().copied().collect::<HashSet<_>>(), HashSet::from([b2, c, d]));
        assert_eq!(h.signed[&d].hostname, "db01");
        assert_eq!(h.signed[&c].seq, 3);
    }
}

#[test]
fn a_snapshot_the_storage_deletes_is_named() {
    let s = init();
    let state = tempfile::tempdir().unwrap();
    let r = open_as(&s, state.path(), "web01");
    let a = snapshots::save(&r, &snapshot(1)).unwrap();
    let b = snapshots::save(&r, &snapshot(2)).unwrap();
    s.delete(ObjectKind::Snapshot, &a.to_hex()).unwrap();
    let h = audit_of(&r);
    assert!(matches!(&h.problems[..], [Problem::Deleted { snapshot, .. }] if *snapshot == a), "{:?}", h.problems);
    assert!(h.problems[0].to_string().contains("deleted outside arca"), "{}", h.problems[0]);
    assert!(h.signed.contains_key(&b));
}

#[test]
fn a_forgotten_snapshot_the_storage_brings_back_is_named() {
    let s = init();
    let state = tempfile::tempdir().unwrap();
    let r = open_as(&s, state.path(), "web01");
    let a = snapshots::save(&r, &snapshot(1)).unwrap();
    let bytes = s.get(ObjectKind::Snapshot, &a.to_hex()).unwrap();
    snapshots::delete(&r, &[a]).unwrap();
    assert!(audit_of(&r).problems.is_empty());
    s.put(ObjectKind::Snapshot, &a.to_hex(), &bytes).unwrap();
    let h = audit_of(&r);
    assert!(matches!(&h.problems[..], [Problem::Resurrected { snapshot, .. }] if *snapshot == a), "{:?}", h.problems);
}

#[test]
fn swapped_snapshot_objects_are_named_by_check() {
    let s = init();
    let state = tempfile::tempdir().unwrap();
    let r = open_as(&s, state.path(), "web01");
    let a = snapshots::save(&r, &snapshot(1)).unwrap();
    let b = snapshots::save(&r, &snapshot(2)).unwrap();
    let (ab, bb) =
        (s.get(ObjectKind::Snapshot, &a.to_hex()).unwrap(), s.get(ObjectKind::Snapshot, &b.to_hex()).unwrap());
    s.put(ObjectKind::Snapshot, &a.to_hex(), &bb).unwrap();
    s.put(ObjectKind::Snapshot, &b.to_hex(), &ab).unwrap();
    let r = open_as(&s, state.path(), "web01");
    let report = arca_repo::check::check(&r, arca_repo::check::ReadData::None, &arca_repo::events::Quiet).unwrap();
    for id in [a, b] {
        assert!(
            report
                .errors
                .iter()
                .any(|e| e.object == format!("snapshot {id}") && e.message.contains("another object's bytes")),
            "{id}: {:?}",
            report.errors
        );
    }
}

#[test]
fn a_deleted_statement_is_a_gap_and_a_rollback_is_seen_by_the_host_that_wrote() {
    let s = init();
    let state = tempfile::tempdir().unwrap();
    let r = open_as(&s, state.path(), "web01");
    let before: HashSet<String> = statements(&*s).into_iter().collect();
    let a = snapshots::save(&r, &snapshot(1)).unwrap();
    let first: Vec<String> = statements(&*s).into_iter().filter(|n| !before.contains(n)).collect();
    snapshots::save(&r, &snapshot(2)).unwrap();
    // The storage deletes the first statement and its snapshot: the second names it.
    s.delete(ObjectKind::History, &first[0]).unwrap();
    s.delete(ObjectKind::Snapshot, &a.to_hex()).unwrap();
    let h = audit_of(&r);
    assert!(
        h.problems
            .iter()
            .any(|p| matches!(p, Problem::Gap { missing, missing_seq: 1, .. } if missing.to_hex() == first[0])),
        "{:?}",
        h.problems
    );
    // Rolled back to before the newest statement: only the writer's memory can tell.
    let s2 = init();
    let state2 = tempfile::tempdir().unwrap();
    let r = open_as(&s2, state2.path(), "web01");
    snapshots::save(&r, &snapshot(1)).unwrap();
    let kept: HashSet<String> = statements(&*s2).into_iter().collect();
    let snaps_kept = present(&*s2);
    let b = snapshots::save(&r, &snapshot(2)).unwrap();
    for n in statements(&*s2).into_iter().filter(|n| !kept.contains(n)) {
        s2.delete(ObjectKind::History, &n).unwrap();
    }
    s2.delete(ObjectKind::Snapshot, &b.to_hex()).unwrap();
    assert_eq!(present(&*s2), snaps_kept);
    let h = audit_of(&r);
    assert!(
        matches!(&h.problems[..], [Problem::Rollback { remembered_seq: 2, newest_seq: 1, .. }]),
        "{:?}",
        h.problems
    );
    assert!(h.problems[0].to_string().contains("rolled back"));
    // Another host, without that memory, sees a consistent (older) repository.
    let other = tempfile::tempdir().unwrap();
    assert!(audit_of(&open_as(&s2, other.path(), "db01")).problems.is_empty());
}

#[test]
fn one_identity_writing_from_two_places_is_a_fork() {
    let s = init();
    let here = tempfile::tempdir().unwrap();
    let r = open_as(&s, here.path(), "web01");
    snapshots::save(&r, &snapshot(1)).unwrap();
    // The identity is copied to a second machine, with the memory of statement 1.
    let there = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(here.path()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), there.path().join(f.file_name())).unwrap();
    }
    snapshots::save(&r, &snapshot(2)).unwrap();
    let r2 = open_as(&s, there.path(), "web01-clone");
    snapshots::save(&r2, &snapshot(3)).unwrap();
    let h = audit_of(&r);
    assert!(
        h.problems.iter().any(|p| matches!(p, Problem::Fork { seq: 2, statements, .. } if statements.len() == 2)),
        "{:?}",
        h.problems
    );
}

#[test]
fn statements_the_storage_makes_up_or_copies_from_another_repository_are_refused() {
    let s = init();
    let state = tempfile::tempdir().unwrap();
    let r = open_as(&s, state.path(), "web01");
    let a = snapshots::save(&r, &snapshot(1)).unwrap();
    // The storage deletes the snapshot and signs, with a key of its own, a statement that
    // removes it, to make the deletion look like a forget. It cannot enrol its key.
    s.delete(ObjectKind::Snapshot, &a.to_hex()).unwrap();
    let forger = Identity::generate();
    let body = StatementBody {
        version: 1,
        repo: r.config().repo_id,
        signer: ByteBuf::from(forger.public().to_vec()),
        seq: 1,
        prev: None,
        time: "2026-12-03T00:00:00Z".into(),
        added: vec![],
        removed: vec![a],
        cert: ByteBuf::from(vec![0; 60]),
    };
    let body = encode("statement", &body).unwrap();
    let sig = forger.sign(arca_format::history::STATEMENT_DOMAIN, &body);
    let st = encode("statement", &Statement { body: ByteBuf::from(body), sig: ByteBuf::from(sig.to_vec()) }).unwrap();
    s.put(ObjectKind::History, &Id::of_bytes(&st).to_hex(), &st).unwrap();
    // And an altered copy of a genuine statement.
    let genuine = statements(&*s).into_iter().find(|n| *n != Id::of_bytes(&st).to_hex()).unwrap();
    let mut bytes = s.get(ObjectKind::History, &genuine).unwrap();
    let at = bytes.len() - 70;
    bytes[at] ^= 1;
    s.put(ObjectKind::History, &Id::of_bytes(&bytes).to_hex(), &bytes).unwrap();
    let h = audit_of(&r);
    let text: Vec<String> = h.problems.iter().map(|p| p.to_string()).collect();
    assert!(text.iter().any(|t| t.contains("not enrolled")), "{text:?}");
    assert!(text.iter().any(|t| t.contains("does not verify") || t.contains("not valid")), "{text:?}");
    assert!(h.problems.iter().any(|p| matches!(p, Problem::Deleted { snapshot, .. } if *snapshot == a)), "{text:?}");
    // A genuine statement of another repository, put here, is refused too.
    let other = init();
    let ro = open_as(&other, state.path(), "web01");
    let id = record(&ro, &[Id([9; 32])], &[]).unwrap().unwrap();
    let foreign = other.get(ObjectKind::History, &id.to_hex()).unwrap();
    s.put(ObjectKind::History, &id.to_hex(), &foreign).unwrap();
    let text: Vec<String> = audit_of(&r).problems.iter().map(|p| p.to_string()).collect();
    assert!(text.iter().any(|t| t.contains("belongs to repository")), "{text:?}");
}

#[test]
fn snapshots_written_without_a_signer_are_unsigned_not_errors() {
    let s = init();
    let r = Repository::open(s.clone(), b"pw").unwrap();
    let a = snapshots::save(&r, &snapshot(1)).unwrap();
    let state = tempfile::tempdir().unwrap();
    let h = audit_of(&open_as(&s, state.path(), "web01"));
    assert!(h.problems.is_empty(), "{:?}", h.problems);
    assert_eq!(h.unsigned, vec![a]);
}

#[test]
fn a_planted_giant_statement_is_refused_unread() {
    let s = init();
    let state = tempfile::tempdir().unwrap();
    let r = open_as(&s, state.path(), "web01");
    snapshots::save(&r, &snapshot(1)).unwrap();
    let giant = vec![0u8; (arca_repo::history::MAX_STATEMENT_BYTES + 1) as usize];
    let name = Id::of_bytes(&giant).to_hex();
    s.put(ObjectKind::History, &name, &giant).unwrap();
    let h = audit_of(&r);
    assert!(
        matches!(&h.problems[..], [Problem::BadStatement { statement, detail }] if *statement == name && detail.contains("beyond")),
        "{:?}",
        h.problems
    );
}

/// Listings read statements through the local cache; what the storage lists still decides
/// which exist, and a cached copy that was altered is fetched again, never trusted.
#[test]
fn cached_statements_neither_hide_a_deletion_nor_trust_an_altered_copy() {
    let s = init();
    let state = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut r = open_as(&s, state.path(), "web01");
    r.set_cache_dir(cache.path().to_path_buf());
    snapshots::save(&r, &snapshot(1)).unwrap();
    let b = snapshots::save(&r, &snapshot(2)).unwrap();
    let cached = |r: &Repository| audit(r, &present(r.storage()), Source::Cached).unwrap();
    assert!(cached(&r).problems.is_empty());
    let names = statements(&*s);
    assert_eq!(std::fs::read_dir(cache.path().join("history")).unwrap().count(), names.len());
    for n in &names {
        let f = cache.path().join("history").join(n);
        let mut bytes = std::fs::read(&f).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&f, bytes).unwrap();
    }
    let h = cached(&r);
    assert!(h.problems.is_empty() && h.signed.len() == 2, "{:?}", h.problems);
    // The storage deletes the newest statement and its snapshot: the cached copy does not
    // stand in for it.
    let newest = names.iter().find(|n| {
        let v = arca_repo::history::verify_statement(n, &s.get(ObjectKind::History, n).unwrap()).unwrap();
        v.body.added == vec![b]
    });
    s.delete(ObjectKind::History, newest.unwrap()).unwrap();
    s.delete(ObjectKind::Snapshot, &b.to_hex()).unwrap();
    assert!(matches!(&cached(&r).problems[..], [Problem::Rollback { .. }]), "{:?}", cached(&r).problems);
}

/// A run that uploaded its statement but died before remembering it leaves a pending note;
/// the next run continues the chain from that statement instead of forking it.
#[test]
fn a_statement_uploaded_by_a_run_that_died_is_continued_not_forked() {
    let s = init();
    let state = tempfile::tempdir().unwrap();
    let r = open_as(&s, state.path(), "web01");
    snapshots::save(&r, &snapshot(1)).unwrap();
    let last = state.path().join(format!("{}.last", r.config().repo_id.to_hex()));
    let before = std::fs::read(&last).unwrap();
    snapshots::save(&r, &snapshot(2)).unwrap();
    // The state a kill between the upload and the memory leaves behind.
    let after = std::fs::read(&last).unwrap();
    std::fs::write(&last, before).unwrap();
    std::fs::write(state.path().join(format!("{}.pending", r.config().repo_id.to_hex())), after).unwrap();
    snapshots::save(&r, &snapshot(3)).unwrap();
    let h = audit_of(&r);
    assert!(h.problems.is_empty(), "{:?}", h.problems);
    assert_eq!(h.signed.values().map(|b| b.seq).max(), Some(3));
}

/// A check whose snapshot listing was taken before a concurrent forget or backup finished
/// reports neither as tampering.
#[test]
fn a_forget_or_backup_running_during_a_check_is_not_tampering() {
    let s = init();
    let state = tempfile::tempdir().unwrap();
    let r = open_as(&s, state.path(), "web01");
    let a = snapshots::save(&r, &snapshot(1)).unwrap();
    let listed = present(&*s);
    snapshots::delete(&r, &[a]).unwrap();
    let b = snapshots::save(&r, &snapshot(2)).unwrap();
    let h = audit(&r, &listed, Source::Storage).unwrap();
    assert!(h.problems.is_empty(), "{:?}", h.problems);
    assert!(!listed.contains(&b));
}

#[test]
fn a_session_without_a_signer_may_not_remove_snapshots_from_a_signed_history() {
    let s = init();
    let state = tempfile::tempdir().unwrap();
    let a = snapshots::save(&open_as(&s, state.path(), "web01"), &snapshot(1)).unwrap();
    let unsigned = Repository::open(s.clone(), b"pw").unwrap();
    let err = snapshots::delete(&unsigned, &[a]).unwrap_err().to_string();
    assert!(err.contains("signing identity"), "{err}");
    assert!(present(&*s).contains(&a));
}

/// A forget killed after recording its statement but before deleting: `check` on the host
/// that was removing them (its local record says so) notes it instead of calling it
/// tampering, another host's check still reports it, and the host's next write finishes it.
#[test]
fn an_interrupted_removal_is_a_note_on_its_host_and_its_next_write_finishes_it() {
    let s = init();
    let state = tempfile::tempdir().unwrap();
    let r = open_as(&s, state.path(), "web01");
    let a = snapshots::save(&r, &snapshot(1)).unwrap();
    snapshots::save(&r, &snapshot(2)).unwrap();
    // What the killed run left: its local record of the removal, and the statement.
    let repo_id = r.config().repo_id.to_hex();
    std::fs::write(state.path().join(format!("{repo_id}.removing")), format!("{}\n", a.to_hex())).unwrap();
    record(&r, &[], &[a]).unwrap();
    // (These test snapshots name made-up trees: only what check says of snapshots counts.)
    let about_snapshots =
        |r: &arca_repo::check::CheckReport| r.errors.iter().filter(|e| e.object.starts_with("snapshot")).count();
    let report = arca_repo::check::check(&r, arca_repo::check::ReadData::None, &arca_repo::events::Quiet).unwrap();
    assert_eq!(about_snapshots(&report), 0, "{:?}", report.errors);
    assert!(report.notes.iter().any(|n| n.message.contains("interrupted")), "{:?}", report.notes);
    let other_state = tempfile::tempdir().unwrap();
    let other = open_as(&s, other_state.path(), "db01");
    let report = arca_repo::check::check(&other, arca_repo::check::ReadData::None, &arca_repo::events::Quiet).unwrap();
    assert_eq!(about_snapshots(&report), 1, "another host cannot tell it from a storage bringing it back");
    // The next write of web01 finishes the deletion.
    snapshots::save(&r, &snapshot(3)).unwrap();
    assert!(!present(&*s).contains(&a));
    assert!(!state.path().join(format!("{repo_id}.removing")).exists());
    assert!(audit_of(&other).problems.is_empty(), "{:?}", audit_of(&other).problems);
}
