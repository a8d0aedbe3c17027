//! Crypto-shredding: `key destroy-class` deletes every content key of a class. The class's
//! packs are then ciphertext nobody can open, in this repository and in every backup of its
//! storage taken afterwards, without a byte of them rewritten; prune later deletes them.

use crate::lock::SessionLock;
use crate::{snapshots, RepoError, RepoResult, Repository};
use arca_format::Id;
use arca_storage::ObjectKind;

/// What destroying a class did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DestroyReport {
    pub class: String,
    /// The `keyring/` objects deleted.
    pub keys: Vec<String>,
    /// The class's snapshots, forgotten first (their trees could no longer be read).
    pub snapshots: Vec<String>,
    /// Packs sealed with the class's keys: unreadable now, deleted by the next prune.
    pub packs: usize,
    pub bytes: u64,
}

/// Destroy `class`: forget its snapshots (recorded in the signed history like any forget),
/// then delete its keys. Needs an exclusive session, so no backup into the class is running
/// (one that starts later creates the class afresh, with a new key). A kill between the two
/// steps leaves the keys, and running it again finishes the job.
/// `lock: None` is a dry run: it reports what would go.
pub fn destroy_class(repo: &Repository, lock: Option<&SessionLock>, class: &str) -> RepoResult<DestroyReport> {
    if class.is_empty() {
        return Err(RepoError::Class(
            class.into(),
            "the default class cannot be destroyed (forget its snapshots instead)",
        ));
    }
    if lock.is_some_and(|l| !l.is_exclusive()) {
        return Err(RepoError::NeedsExclusive { operation: "key destroy-class" });
    }
    let keys = repo.keyring().of_class(class);
    if keys.is_empty() {
        return Err(RepoError::Class(
            class.into(),
            "no such class in this repository (list them with `arca key classes`)",
        ));
    }
    let numbers: std::collections::HashSet<u32> = keys.iter().map(|k| k.number).collect();
    let mut report = DestroyReport { class: class.into(), ..Default::default() };
    for (_, size, key) in repo.index().packs_with_keys() {
        if numbers.contains(&key) {
            report.packs += 1;
            report.bytes += size;
        }
    }
    let (all, errors) = snapshots::list_all(repo)?;
    if let Some(e) = errors.into_iter().next() {
        // An unreadable snapshot might be one of the class's: it would be left naming
        // shredded trees. Refuse until it is dealt with.
        return Err(RepoError::UnreadableSnapshot {
            detail: e.to_string(),
            consequence: "it may belong to the class; forget or repair it first",
        });
    }
    let doomed: Vec<Id> = all.iter().filter(|s| s.snapshot.class.as_deref() == Some(class)).map(|s| s.id).collect();
    report.snapshots = doomed.iter().map(|i| i.to_hex()).collect();
    let own: Vec<String> = keys.iter().filter_map(|k| k.object.clone()).collect();
    // The reader keys' copies of the class keys' metadata and summary keys go too, and first:
    // they open the class's trees and snapshot digests, and a kill after the keys themselves
    // are gone would leave them behind with no class to destroy again.
    for (name, _) in repo.storage().list(ObjectKind::Keyring)? {
        let ours = arca_format::keyring::number_in_name(&name).is_some_and(|n| numbers.contains(&n));
        if ours && !own.contains(&name) {
            report.keys.push(name);
        }
    }
    report.keys.extend(own);
    let Some(lock) = lock else { return Ok(report) };
    lock.check_alive()?;
    if !doomed.is_empty() {
        snapshots::delete(repo, &doomed)?;
    }
    crate::failpoint::hit("destroy-class-before-keys");
    for name in &report.keys {
        match repo.storage().delete(ObjectKind::Keyring, name) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    repo.forget_class(class);
    // A backup into the class that committed between the listing above and the deletion (it
    // checked that the keys still existed just before) left a snapshot nobody can read now:
    // forget it too.
    let (all, _) = snapshots::list_all(repo)?;
    let late: Vec<Id> = all.iter().filter(|s| s.snapshot.class.as_deref() == Some(class)).map(|s| s.id).collect();
    if !late.is_empty() {
        snapshots::delete(repo, &late)?;
        report.snapshots.extend(late.iter().map(|i| i.to_hex()));
    }
    Ok(report)
}

/// Fail if `class`'s key `number` has been destroyed since this session read it: a backup
/// into the class checks this before it writes its snapshot, so it does not leave a snapshot
/// whose data nobody can read.
pub fn confirm_class_alive(repo: &Repository, key: &crate::keyring::ContentKey) -> RepoResult<()> {
    let Some(object) = &key.object else { return Ok(()) };
    if key.class.is_empty() || repo.storage().exists(ObjectKind::Keyring, object)? {
        return Ok(());
    }
    Err(RepoError::Class(key.class.clone(), "was destroyed while this backup ran; nothing was committed"))
}
