//! Key rotation (`arca key rotate`, format version 2): a new master key, so that a key slot
//! that leaked (its password, or a copy of it with the password) stops giving access to
//! anything written from then on, and to the repository itself.
//!
//! First a key slot for the password in use keeps the new master key. It then seals a copy
//! of every content key (the old ones retired: they still open what they sealed, nothing new
//! is sealed with them), a successor for each class's writing key (a fresh data key with the
//! class's MAC key and chunker seed, so deduplication carries on), the old master key as key
//! 0 (version-1 objects), and the keys of backup-only sessions sealed to its own recipient
//! key, with the reader keys of all of them. The index and marks are sealed again with its
//! shared key, then the config is replaced: that is the commit. Afterwards the objects only the old master key opens are deleted,
//! with every other key slot (their passwords open the old master key only; `key add`
//! makes them again). Nothing is re-encrypted: data written before stays sealed with the
//! retired keys, which the old master key's holder could read before, too.
//!
//! A kill before the commit leaves the old repository and objects only the new master key
//! opens; after it, the new repository and objects only the old one opens. Either way the
//! password opens the repository (the slot whose key opens the config wins), and the next
//! rotation or rewrite (`--rewrite-only`) first deletes what the other master key opens,
//! found through the slot the same password opens.

use crate::keyring::{ContentKey, KeyRole};
use crate::keys::{self, Origin, Unlocked};
use crate::lock::{is_stale, now_ns, SessionLock};
use crate::repository::{config_bytes, master_sealed_key_object, session_key_file, session_key_object};
use crate::{RepoError, RepoResult, Repository};
use arca_crypto::MasterKey;
use arca_format::keyring::envelope;
use arca_format::{ContentKeyFile, Id, IndexFile, KdfParams, MarkFile, MASTER_KEY_NUMBER, SHARED_KEY_NUMBER};
use arca_storage::ObjectKind;
use serde::Serialize;
use serde_bytes::ByteBuf;
use std::collections::HashSet;
use std::sync::Arc;

/// What a rotation does (with `--dry-run`: would do).
#[derive(Clone, Debug, Default, Serialize)]
pub struct RotationReport {
    /// The key slot the password opens from now on.
    pub slot: Option<String>,
    /// Every other key slot, removed: `(id, label, role)`.
    pub removed_slots: Vec<(String, String, String)>,
    /// Per class (`""`: default): the old writing key's number and its successor's.
    pub rotated: Vec<(String, String, String)>,
    /// Content keys carried over (retired), backup-only sessions' keys sealed again.
    pub keys_carried: usize,
    /// Index and mark objects sealed again with the new shared key.
    pub resealed: usize,
    /// Objects an interrupted rotation had left, deleted first.
    pub leftovers_removed: usize,
}

/// What would be rotated and removed, writing nothing.
pub fn plan(repo: &Repository) -> RepoResult<RotationReport> {
    repo.require_full("rotate the key")?;
    let mut r = RotationReport::default();
    for k in keys::list(repo.storage(), repo.key_slot())? {
        if !k.current {
            r.removed_slots.push((k.id, k.label, k.role));
        }
    }
    let ring = repo.keyring();
    r.keys_carried = ring.all().iter().filter(|k| k.role != KeyRole::Shared).count();
    for class in std::iter::once(String::new()).chain(ring.classes()) {
        if let Some(w) = ring.writing(&class) {
            r.rotated.push((class, format!("{:08x}", w.number), "(new)".into()));
        }
    }
    Ok(r)
}

/// Rotate the master key of `repo`, opened with `password`, which the new key slot keeps.
/// Needs `lock` exclusive and no other live session. Open the repository again afterwards.
pub fn rotate(
    repo: &Arc<Repository>,
    lock: &SessionLock,
    password: &[u8],
    kdf: KdfParams,
    origin: &Origin,
) -> RepoResult<RotationReport> {
    repo.require_full("rotate the key")?;
    if repo.version() < 2 {
        return Err(RepoError::NeedsUpgrade { feature: "key rotation", version: repo.version() });
    }
    if !lock.is_exclusive() {
        return Err(RepoError::NeedsExclusive { operation: "key rotation" });
    }
    no_other_sessions(repo, lock)?;
    let old = repo.key("rotate the key")?.clone();
    let storage = repo.storage();
    let config = repo.config().clone();
    let mut report = plan(repo)?;
    report.leftovers_removed = remove_leftovers(repo, password, &old)?;

    // What the old master key sealed, listed before anything new is written.
    let old_keyring: Vec<String> = storage.list(ObjectKind::Keyring)?.into_iter().map(|(n, _)| n).collect();
    let old_slots: Vec<String> = storage.list(ObjectKind::Key)?.into_iter().map(|(n, _)| n).collect();

    let new = MasterKey::generate();
    // Its slot first: whatever a kill leaves sealed with the new key, the next rotation or
    // rewrite finds that key through this slot (same password) and deletes it.
    let label = keys::read_slots(storage)?
        .into_iter()
        .find(|(n, _)| n == repo.key_slot())
        .and_then(|(_, s)| s.ok())
        .map(|s| s.label)
        .unwrap_or_default();
    let slot = keys::store_slot(storage, &new, password, kdf, origin, &label)?;
    crate::failpoint::hit("rotate-after-slot");
    let new_cipher = new.cipher(config.encryption);
    let recipient = new.recipient(&config.repo_id).public();
    let ring = repo.keyring().all();
    let mut taken: HashSet<u32> = ring.iter().map(|k| k.number).collect();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let file_of = |k: &ContentKey, number: u32, key: &MasterKey, retired: bool, split: bool| ContentKeyFile {
        number,
        class: k.class.clone(),
        created: now.clone(),
        secret: ByteBuf::from(key.to_secret().to_vec()),
        host: None,
        host_proof: None,
        retired,
        split,
    };
    // Reader keys get the metadata and summary keys of every split key again, sealed to the
    // new master key's recipients (a reader key made before opens none of them).
    let readers = crate::reader::Recipients::of(&new, &config);
    let put_reader_keys = |k: &ContentKey| -> RepoResult<()> {
        if k.split {
            for (name, bytes) in crate::reader::reader_key_objects(&config, k, k.host.as_deref(), readers)? {
                storage.put(ObjectKind::Keyring, &name, &bytes)?;
            }
        }
        Ok(())
    };
    report.keys_carried = 0;
    report.rotated.clear();
    for k in &ring {
        let (name, bytes) = match k.role {
            KeyRole::Shared => continue,
            KeyRole::Session => {
                let host_key = k.host.as_ref().map(|h| new.host_key(&config.repo_id, h));
                let host = k.host.as_deref().zip(host_key.as_deref());
                // Retired: the old master key's holder could open it (`--rewrite` moves its
                // data to the default class's new key).
                let file = ContentKeyFile { retired: true, ..session_key_file(k, host) };
                session_key_object(&config, &recipient, &file)?
            }
            KeyRole::Content => {
                master_sealed_key_object(&config, &new_cipher, &file_of(k, k.number, k.key(), true, k.split))?
            }
        };
        put_reader_keys(k)?;
        storage.put(ObjectKind::Keyring, &name, &bytes)?;
        report.keys_carried += 1;
    }
    for k in &ring {
        let writing = repo.keyring().writing(&k.class).is_some_and(|w| w.number == k.number);
        if k.role != KeyRole::Content || k.number == MASTER_KEY_NUMBER || !writing {
            continue;
        }
        let number = crate::keyring::free_number(|n| taken.contains(&n));
        taken.insert(number);
        let successor = k.key().with_fresh_data_key();
        let (name, bytes) =
            master_sealed_key_object(&config, &new_cipher, &file_of(k, number, &successor, false, true))?;
        let mut made = ContentKey::stored(number, &k.class, successor, config.encryption, &name);
        made.split = true;
        put_reader_keys(&made)?;
        storage.put(ObjectKind::Keyring, &name, &bytes)?;
        report.rotated.push((k.class.clone(), format!("{:08x}", k.number), format!("{number:08x}")));
    }

    // The index and marks, sealed with the new shared key (copies: the old ones stay until
    // the commit, for the old key's readers).
    let shared = ContentKey::shared(&new, &new.shared_key(&config.repo_id), config.encryption);
    let listed: Vec<String> = storage.list(ObjectKind::Index)?.into_iter().map(|(n, _)| n).collect();
    let mut files = vec![];
    let mut superseded = HashSet::new();
    for name in &listed {
        match repo.load_object::<IndexFile>(ObjectKind::Index, name) {
            Ok(f) => {
                superseded.extend(f.supersedes.iter().map(Id::to_hex));
                files.push((name.clone(), f));
            }
            // Damaged: left to `check` and `repair index`, not carried over.
            Err(RepoError::Corrupt { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let mut originals = vec![];
    for (name, f) in files {
        if !superseded.contains(&name) {
            put_sealed(repo, &shared, ObjectKind::Index, &f)?;
            report.resealed += 1;
        }
        originals.push((ObjectKind::Index, name));
    }
    for (name, _) in storage.list(ObjectKind::Mark)? {
        let m: MarkFile = repo.load_object(ObjectKind::Mark, &name)?;
        put_sealed(repo, &shared, ObjectKind::Mark, &m)?;
        report.resealed += 1;
        originals.push((ObjectKind::Mark, name));
    }

    // The commit: a session that began meanwhile would write with the old keys, so then the
    // new objects are left as leftovers (the next rotation deletes them) and nothing changes.
    no_other_sessions(repo, lock)?;
    crate::failpoint::hit("rotate-before-config");
    storage.put(ObjectKind::Config, "config", &config_bytes(&config, &new)?)?;
    crate::failpoint::hit("rotate-after-config");
    // Our own lock, readable with the new key (a lock nobody can read holds off prunes).
    lock.reseal_with(Arc::new(shared))?;

    for (kind, name) in originals {
        storage.delete(kind, &name)?;
    }
    for name in old_keyring {
        storage.delete(ObjectKind::Keyring, &name)?;
    }
    for name in old_slots {
        storage.delete(ObjectKind::Key, &name)?;
    }
    report.slot = Some(slot);
    Ok(report)
}

/// Seal `value` as an object of `kind` with `key` and store it under its hash.
fn put_sealed<T: Serialize>(repo: &Repository, key: &ContentKey, kind: ObjectKind, value: &T) -> RepoResult<()> {
    let bytes = repo.seal_with(key, kind, &arca_format::encode("object", value)?);
    Ok(repo.storage().put(kind, &Id::of_bytes(&bytes).to_hex(), &bytes)?)
}

/// Refuse while another session is live: it would go on writing with the old keys. Stale
/// locks are removed (as prune does): sealed with the old shared key, they would be
/// unreadable, and hold off every later prune's sweep.
fn no_other_sessions(repo: &Repository, lock: &SessionLock) -> RepoResult<()> {
    let (live, _) = crate::lock::list(repo)?;
    let now = now_ns();
    for l in live.iter().filter(|l| l.session != lock.session() && is_stale(l, now)) {
        repo.storage().delete(ObjectKind::Lock, &l.session.to_hex())?;
    }
    if let Some(l) = live.iter().find(|l| l.session != lock.session() && !is_stale(l, now)) {
        return Err(RepoError::Locked {
            holder: format!("`{}` on {} (pid {})", l.command, l.host, l.pid),
            stale_secs: crate::lock::stale_after().as_secs(),
        });
    }
    Ok(())
}

/// Delete what a master key other than `current`, opened by `password` through another key
/// slot, sealed: the leftovers of a rotation killed before or after its commit (docs above).
fn remove_leftovers(repo: &Repository, password: &[u8], current: &MasterKey) -> RepoResult<usize> {
    let storage = repo.storage();
    let config = repo.config();
    let mut removed = 0;
    for (slot, unlocked) in keys::open_all(storage, password)? {
        let Unlocked::Full(other) = unlocked else { continue };
        if *other.to_secret() == *current.to_secret() {
            continue;
        }
        let cipher = other.cipher(config.encryption);
        let recipient = other.recipient(&config.repo_id);
        let key_ad = crate::repository::object_ad_v2(ObjectKind::Keyring, &config.repo_id, MASTER_KEY_NUMBER);
        let wrapped_ad =
            crate::repository::object_ad_v2(ObjectKind::Keyring, &config.repo_id, arca_format::SEALED_TO_RECIPIENT);
        for (name, _) in storage.list(ObjectKind::Keyring)? {
            let bytes = storage.get(ObjectKind::Keyring, &name)?;
            let ad_of = |n| crate::repository::object_ad_v2(ObjectKind::Keyring, &config.repo_id, n);
            let theirs = match envelope(&bytes) {
                Some((MASTER_KEY_NUMBER, sealed)) => cipher.open(sealed, &key_ad, "content key").is_ok(),
                Some((arca_format::SEALED_TO_RECIPIENT, sealed)) => recipient.open(sealed, &wrapped_ad).is_ok(),
                Some((n @ arca_format::SEALED_TO_METADATA, sealed)) => {
                    other.metadata_recipient(&config.repo_id).open(sealed, &ad_of(n)).is_ok()
                }
                Some((n @ arca_format::SEALED_TO_SUMMARY, sealed)) => {
                    other.summary_recipient(&config.repo_id).open(sealed, &ad_of(n)).is_ok()
                }
                _ => false,
            };
            if theirs {
                storage.delete(ObjectKind::Keyring, &name)?;
                removed += 1;
            }
        }
        let shared = ContentKey::shared(&other, &other.shared_key(&config.repo_id), config.encryption);
        // Locks too: a rotation killed after its commit leaves its own sealed with the old key.
        for kind in [ObjectKind::Index, ObjectKind::Mark, ObjectKind::Lock] {
            let ad_kind = kind;
            for (name, _) in storage.list(kind)? {
                let bytes = storage.get(kind, &name)?;
                let Some((SHARED_KEY_NUMBER, sealed)) = envelope(&bytes) else { continue };
                let ad = crate::repository::object_ad_v2(ad_kind, &config.repo_id, SHARED_KEY_NUMBER);
                if shared.cipher().open(sealed, &ad, "object").is_ok() {
                    storage.delete(kind, &name)?;
                    removed += 1;
                }
            }
        }
        storage.delete(ObjectKind::Key, &slot)?;
        removed += 1;
    }
    Ok(removed)
}

/// What `key rotate --rewrite` (and `--rewrite-only`) did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RewriteReport {
    /// The retired keys whose data was looked for.
    pub retired_keys: usize,
    /// Snapshot objects sealed with a retired key, replaced by copies sealed with the new one
    /// (their ids change; the old id stays in `previous_ids` and the history records it).
    pub snapshots_resealed: usize,
    /// The prune that repacked every pack sealed with a retired key.
    pub prune: crate::prune::PruneReport,
    /// Packs still sealed with a retired key afterwards: repacked, but not yet deleted because
    /// a session was running (`arca prune` or `--rewrite-only` deletes them later), or held
    /// back by `max_repack`.
    pub packs_left: u64,
    /// Snapshot objects still sealed with a retired key afterwards (unreadable ones).
    pub snapshots_left: usize,
    /// Objects an interrupted rotation had left, deleted first.
    pub leftovers_removed: usize,
}

/// Re-encrypt what is still sealed with keys a rotation retired: snapshot objects are sealed
/// again with the default class's writing key (replaced as `tag` replaces them), and every
/// pack sealed with a retired key is repacked under its class's writing key by a prune
/// (new packs and index first, the old ones marked, then swept: a kill anywhere leaves a
/// repository that checks clean, and a rerun carries on where it stopped). Needs `lock`
/// exclusive. Statements of the signed history keep their signer certificates sealed with
/// the key of their time (they are signed and cannot change; docs/SECURITY.md).
pub fn rewrite(
    repo: &Arc<Repository>,
    lock: &SessionLock,
    password: Option<&[u8]>,
    mut prune: crate::prune::PruneOptions,
    events: &dyn crate::Events,
) -> RepoResult<RewriteReport> {
    repo.require_full("re-encrypt with the new key")?;
    if !lock.is_exclusive() {
        return Err(RepoError::NeedsExclusive { operation: "re-encrypting with the new key" });
    }
    let mut report = RewriteReport::default();
    // What a rotation killed on either side of its commit left (unreadable index objects,
    // marks, its lock, the other master key's slot) would stop the prune below.
    if let Some(pw) = password {
        no_other_sessions(repo, lock)?;
        let current = repo.key("re-encrypt with the new key")?.clone();
        report.leftovers_removed = remove_leftovers(repo, pw, &current)?;
        if report.leftovers_removed > 0 {
            repo.load_index()?;
        }
    }
    let retired = retired_keys(repo);
    report.retired_keys = retired.len();
    let (snaps, _) = crate::snapshots::list_all(repo)?;
    for (i, entry) in snaps.iter().enumerate() {
        events.phase("sealing snapshots again", i as u64, snaps.len() as u64);
        if !sealed_with(repo, ObjectKind::Snapshot, &entry.id.to_hex(), &retired)? {
            continue;
        }
        let mut new = entry.snapshot.clone();
        new.previous_ids.push(entry.id);
        crate::snapshots::replace(repo, entry, new)?;
        report.snapshots_resealed += 1;
        crate::failpoint::hit("rewrite-snapshot");
    }
    prune.rewrite_keys = retired.clone();
    prune.dry_run = false;
    report.prune = crate::prune::prune(repo, Some(lock), &prune, events)?;
    let index = repo.index();
    report.packs_left = index.packs_with_keys().iter().filter(|(_, _, k)| retired.contains(k)).count() as u64;
    drop(index);
    for (_, m) in crate::prune::load_marks(repo)? {
        report.packs_left += m.packs.iter().filter(|p| retired.contains(&p.key)).count() as u64;
    }
    report.snapshots_left = pending(repo, &retired)?.snapshots;
    Ok(report)
}

/// The numbers of the keys that seal nothing new and whose data a rewrite moves: those a
/// rotation or a first reader key retired, and key 0.
pub fn retired_keys(repo: &Repository) -> std::collections::BTreeSet<u32> {
    let mut keys: std::collections::BTreeSet<u32> =
        repo.keyring().all().iter().filter(|k| k.retired).map(|k| k.number).collect();
    // Key 0 writes nothing in version 2 either (version-1 objects and packs, or the master
    // key of before a rotation): its data moves to the default class's key like the rest.
    if repo.version() >= 2 {
        keys.insert(MASTER_KEY_NUMBER);
    }
    keys
}

/// True if the stored object `name` of `kind` is sealed with one of `keys` (version 1's form
/// counts as key 0). An object deleted meanwhile is not.
fn sealed_with(
    repo: &Repository,
    kind: ObjectKind,
    name: &str,
    keys: &std::collections::BTreeSet<u32>,
) -> RepoResult<bool> {
    match repo.storage().get(kind, name) {
        Ok(bytes) => {
            let number = match arca_format::snapshot::split_parts(&bytes) {
                Some((n, _, _)) => n,
                None => envelope(&bytes).map_or(MASTER_KEY_NUMBER, |(n, _)| n),
            };
            Ok(keys.contains(&number))
        }
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// What is sealed with one of `keys`: packs in the index, their bytes, and snapshot objects
/// (for `--dry-run`, and to say what a rewrite has left).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Pending {
    pub packs: u64,
    pub bytes: u64,
    pub snapshots: usize,
}

/// What a rewrite of `keys` would re-encrypt. Reads every snapshot object's envelope.
pub fn pending(repo: &Repository, keys: &std::collections::BTreeSet<u32>) -> RepoResult<Pending> {
    let mut p = Pending::default();
    for (_, size, key) in repo.index().packs_with_keys() {
        if keys.contains(&key) {
            p.packs += 1;
            p.bytes += size;
        }
    }
    for (name, _) in repo.storage().list(ObjectKind::Snapshot)? {
        if sealed_with(repo, ObjectKind::Snapshot, &name, keys)? {
            p.snapshots += 1;
        }
    }
    Ok(p)
}
