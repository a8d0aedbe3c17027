//! The use cases driven the way a job runner or a server drives them: no CLI, requests read
//! from JSON text, an in-memory repository.

use arca_format::{ChunkerParams, KdfParams};
use arca_ops::backup::{backup, BackupRequest};
use arca_ops::copy::{copy, CopyRequest};
use arca_ops::forget::{forget, ForgetRequest};
use arca_ops::restore::{restore, RestoreRequest};
use arca_ops::source::Stream;
use arca_ops::{OpsError, Target};
use arca_repo::events::Quiet;
use arca_repo::session::{self, Access};
use arca_repo::{Cancel, InitOptions, RepoError, Repository};
use arca_storage::{MemoryStorage, Storage};
use std::sync::Arc;
use std::time::Duration;

const PW: &[u8] = b"api password";

fn new_repo() -> Arc<dyn Storage> {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let opts = InitOptions {
        chunker: ChunkerParams { min_size: 4096, avg_size: 8192, max_size: 32768 },
        kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 },
        ..Default::default()
    };
    Repository::init(storage.clone(), PW, &opts).unwrap();
    storage
}

fn session(storage: &Arc<dyn Storage>, access: Access) -> session::Session {
    session::open(Repository::open(storage.clone(), PW).unwrap(), access, Duration::ZERO).unwrap()
}

fn data(seed: u8) -> Vec<u8> {
    (0..200_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 ^ seed).collect()
}

/// Back up `bytes` as `/db.sql` with the request in `json`; returns the snapshot id.
fn back_up(storage: &Arc<dyn Storage>, bytes: &[u8], json: &str) -> String {
    let s = session(storage, Access::Write("test"));
    let req: BackupRequest = serde_json::from_str(json).unwrap();
    let lock = s.lock.as_ref().unwrap();
    let mut source = Stream::new("db.sql", bytes);
    let r = backup(&s.repo, Target::Locked(lock), &mut source, &req, &Quiet, &Cancel::new()).unwrap();
    r.snapshot_id.unwrap()
}

#[test]
fn backup_forget_copy_restore_through_the_api() {
    let storage = new_repo();
    let first = back_up(&storage, &data(1), r#"{"tags": ["db"], "time": "2026-11-01T10:00:00Z", "compression": "7"}"#);
    let second = back_up(&storage, &data(2), r#"{"tags": ["db"], "time": "2026-11-02T10:00:00Z"}"#);

    // A dry run computes and stores nothing.
    let s = session(&storage, Access::Read("test"));
    let mut source = Stream::new("db.sql", std::io::Cursor::new(data(3)));
    let dry = backup(&s.repo, Target::DryRun, &mut source, &BackupRequest::default(), &Quiet, &Cancel::new()).unwrap();
    assert!(dry.snapshot_id.is_none() && dry.summary.bytes_read == 200_000);
    assert_eq!(arca_repo::snapshots::list_all(&s.repo).unwrap().0.len(), 2);

    // Forget by a policy written as a job file would write it.
    let req: ForgetRequest =
        serde_json::from_str(r#"{"selection": {"policy": {"policy": {"last": 1}, "max_clock_skew": "1d"}}}"#).unwrap();
    let r = forget(&s.repo, &req, chrono::Utc::now().fixed_offset(), &Quiet).unwrap();
    assert_eq!(r.removed, vec![first.clone()]);

    // Copy what is left into a second repository, then restore it from there.
    let other = new_repo();
    let dst = session(&other, Access::Write("test"));
    let src = session(&storage, Access::Read("test"));
    let c = copy(&src.repo, &dst.repo, Target::Locked(dst.lock.as_ref().unwrap()), &CopyRequest::default(), &Quiet)
        .unwrap();
    assert_eq!(c.copied.len(), 1);
    assert_eq!(c.copied[0].from, second);
    let again = copy(&src.repo, &dst.repo, Target::Locked(dst.lock.as_ref().unwrap()), &CopyRequest::default(), &Quiet)
        .unwrap();
    assert_eq!((again.copied.len(), again.snapshots_already_here), (0, 1), "copying again sends nothing");

    let target = tempfile::tempdir().unwrap();
    let req: RestoreRequest = serde_json::from_value(serde_json::json!({
        "snapshot": "latest", "target": target.path(), "verify": true, "overwrite": "always",
    }))
    .unwrap();
    let r = restore(&dst.repo, &req, &Quiet).unwrap();
    assert_eq!(r.report.files, 1);
    assert_eq!(std::fs::read(target.path().join("db.sql")).unwrap(), data(2));
}

#[test]
fn requests_reject_bad_values_as_the_command_line_does() {
    let bad = serde_json::from_str::<BackupRequest>(r#"{"compression": "23"}"#).unwrap_err().to_string();
    assert!(bad.contains("a level from 1 to 22"), "{bad}");
    let bad = serde_json::from_str::<ForgetRequest>(r#"{"selection": {"policy": {"policy": {"within": "0d"}}}}"#)
        .unwrap_err()
        .to_string();
    assert!(bad.contains("longer than zero"), "{bad}");
    // A typo in a job file is an error, not a silently dropped rule.
    let typo = r#"{"selection": {"policy": {"policy": {"daily": 7, "keep_weekly": 4}}}}"#;
    let bad = serde_json::from_str::<ForgetRequest>(typo).unwrap_err().to_string();
    assert!(bad.contains("keep_weekly"), "{bad}");
    assert!(serde_json::from_str::<ForgetRequest>(r#"{"selection": "due_for_destruction", "dry-run": true}"#).is_err());
    // A restore without a target never falls back to the current directory.
    let storage = new_repo();
    let s = session(&storage, Access::Read("test"));
    let req: RestoreRequest = serde_json::from_str(r#"{"snapshot": "latest"}"#).unwrap();
    assert!(matches!(restore(&s.repo, &req, &Quiet), Err(OpsError::BadOption { .. })));
}

/// A backup with the default request under the session's lock.
fn default_backup(
    s: &session::Session,
    source: &mut dyn arca_ops::Source,
    cancel: &Cancel,
) -> Result<arca_ops::backup::BackupReport, OpsError> {
    let lock = s.lock.as_ref().unwrap();
    backup(&s.repo, Target::Locked(lock), source, &BackupRequest::default(), &Quiet, cancel)
}

#[test]
fn a_cancelled_backup_saves_nothing_and_says_so() {
    let storage = new_repo();
    let s = session(&storage, Access::Write("test"));
    let cancel = Cancel::new();
    cancel.cancel();
    let mut source = Stream::new("db.sql", std::io::Cursor::new(data(1)));
    let r = default_backup(&s, &mut source, &cancel);
    match r {
        Err(e) => assert!(matches!(e.repo_error(), Some(RepoError::Cancelled)), "{e}"),
        Ok(_) => panic!("a cancelled backup saved a snapshot"),
    }
    assert!(arca_repo::snapshots::list_all(&s.repo).unwrap().0.is_empty());
}

#[test]
fn a_failing_command_saves_nothing() {
    let storage = new_repo();
    let s = session(&storage, Access::Write("test"));
    let argv: Vec<String> = ["sh", "-c", "echo partial; exit 3"].iter().map(|a| a.to_string()).collect();
    let mut source = arca_ops::source::Command::new("dump.sql", &argv).unwrap();
    let r = default_backup(&s, &mut source, &Cancel::new());
    assert!(matches!(r, Err(OpsError::CommandFailed { .. })), "{r:?}");
    assert!(arca_repo::snapshots::list_all(&s.repo).unwrap().0.is_empty());
}

#[test]
fn prune_check_repair_and_export_through_the_api() {
    use arca_ops::check::{check, CheckRequest};
    use arca_ops::export::{export, Destination, ExportRequest};
    use arca_ops::prune::{prune, PruneRequest};
    use arca_ops::repair::{repair, RepairReport, RepairRequest};

    let storage = new_repo();
    let first = back_up(&storage, &data(1), r#"{"time": "2026-11-01T10:00:00Z"}"#);
    back_up(&storage, &data(2), r#"{"time": "2026-11-02T10:00:00Z"}"#);
    let s = session(&storage, Access::Metadata);
    let req: ForgetRequest = serde_json::from_value(serde_json::json!({"selection": {"snapshots": [first]}})).unwrap();
    forget(&s.repo, &req, chrono::Utc::now().fixed_offset(), &Quiet).unwrap();

    // A dry run plans and deletes nothing; the real prune frees the forgotten data.
    let req: PruneRequest = serde_json::from_str(r#"{"max_unused": "0%", "grace": "0"}"#).unwrap();
    let packs_before = storage.list(arca_storage::ObjectKind::Pack).unwrap().len();
    let dry = prune(&s.repo, Target::DryRun, &req, &Quiet).unwrap();
    assert!(dry.dry_run && dry.plan.unused_bytes + dry.plan.repack_frees > 0, "{dry:?}");
    assert_eq!(storage.list(arca_storage::ObjectKind::Pack).unwrap().len(), packs_before);
    let x = session(&storage, arca_ops::prune::access(false));
    let done = prune(&x.repo, Target::Locked(x.lock.as_ref().unwrap()), &req, &Quiet).unwrap();
    assert!(done.after.bytes < done.before.bytes, "{done:?}");
    drop(x);

    // Check reads every byte; its own lock is not reported as a leftover.
    let r = session(&storage, Access::Read("check"));
    let req: CheckRequest = serde_json::from_str(r#"{"read_data": "all"}"#).unwrap();
    let report = check(&r.repo, r.lock.as_ref(), &req, &Quiet).unwrap();
    // (This session has no signer, so its snapshot is noted as unsigned: nothing else.)
    assert!(report.ok() && report.packs_read > 0, "{report:?}");
    assert!(report.notes.iter().all(|n| n.object == "history"), "{report:?}");

    // Export with read-back verification; a zip cannot go to a stream.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.tar");
    let req: ExportRequest = serde_json::from_str(r#"{"snapshot": "latest", "verify": true}"#).unwrap();
    let done = export(&r.repo, &req, Destination::File(&file), &Quiet).unwrap();
    assert_eq!((done.verified, done.report.entries > 0), (Some(true), true));
    let mut archive = tar::Archive::new(std::fs::File::open(&file).unwrap());
    let mut names = vec![];
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        if name.ends_with("db.sql") {
            let mut got = vec![];
            std::io::Read::read_to_end(&mut e, &mut got).unwrap();
            assert_eq!(got, data(2));
        }
        names.push(name);
    }
    assert!(names.iter().any(|n| n.ends_with("db.sql")), "{names:?}");
    let zip: ExportRequest = serde_json::from_str(r#"{"snapshot": "latest", "format": "zip"}"#).unwrap();
    let mut sink = std::io::sink();
    assert!(matches!(export(&r.repo, &zip, Destination::Stream(&mut sink), &Quiet), Err(OpsError::BadOption { .. })));
    drop(r);

    // Repair index rebuilds from the packs under the exclusive lock its request names.
    let req: RepairRequest = serde_json::from_str(r#"{"repair": "index"}"#).unwrap();
    let x = session(&storage, req.access());
    match repair(&x.repo, x.lock.as_ref().unwrap(), &req, &Quiet).unwrap() {
        RepairReport::Index(r) => assert!(r.blobs_indexed > 0, "{r:?}"),
        other => panic!("unexpected report {other:?}"),
    }
    let bad = serde_json::from_str::<RepairRequest>(r#"{"repair": "packs", "packs": ["zz"], "force": true}"#);
    assert!(bad.is_err(), "unknown fields are refused");
    let req: RepairRequest = serde_json::from_str(r#"{"repair": "packs", "packs": ["zz"]}"#).unwrap();
    assert!(matches!(repair(&x.repo, x.lock.as_ref().unwrap(), &req, &Quiet), Err(OpsError::BadOption { .. })));
}
