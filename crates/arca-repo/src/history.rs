//! The repository's history: every change to `snapshots/` is recorded in a statement signed
//! by the host that made it (`history/<id>`, docs/FORMAT.md "History"). Each signer's
//! statements form a chain, and the signer remembers locally the last one it wrote, so
//! `check` can tell a snapshot the storage deleted, brought back or swapped, a chain with a
//! gap or a fork, and a repository rolled back behind what this host wrote.

use crate::keys::Origin;
use crate::repository::object_ad;
use crate::{RepoError, RepoResult, Repository};
use arca_crypto::sign::{verify, Identity, PublicKey};
use arca_format::history::STATEMENT_DOMAIN;
use arca_format::{decode, encode, Id, SignerCertificate, Statement, StatementBody};
use arca_storage::{ObjectKind, Storage};
use serde_bytes::ByteBuf;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// This host's signing identity, and where it remembers its last statement per repository.
pub struct Signer {
    identity: Identity,
    /// The directory of the identity and of one `<repo id>.last` file per repository.
    memory: PathBuf,
    origin: Origin,
}

/// The public key line of an identity, as `key signer` prints it and `verify-signature
/// --pubkey` reads it: `arca-ed25519 <64 hex digits> <comment>`.
pub fn public_key_line(public: &PublicKey, comment: &str) -> String {
    format!("arca-ed25519 {} {comment}", hex::encode(public))
}

/// Parse a public key line (or bare 64 hex digits).
pub fn parse_public_key(text: &str) -> Option<PublicKey> {
    let mut words = text.split_whitespace();
    let first = words.next()?;
    let hex_part = if first == "arca-ed25519" { words.next()? } else { first };
    let bytes = hex::decode(hex_part).ok()?;
    bytes.try_into().ok()
}

/// A short, stable name of a public key for listings: its first 16 hex digits.
pub fn fingerprint(public: &[u8]) -> String {
    hex::encode(public).chars().take(16).collect()
}

impl Signer {
    /// The identity kept in `dir/identity` (created, mode 0600, on first use), remembering
    /// its statements in `dir`.
    pub fn load_or_create(dir: &Path, origin: Origin) -> std::io::Result<Signer> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("identity");
        let identity = match read_identity(&path) {
            Ok(i) => i,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Written aside, then linked into place: two first runs at once agree on one.
                let tmp = dir.join(format!("identity.{}.tmp", std::process::id()));
                let new = Identity::generate();
                let mut f =
                    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
                f.write_all(format!("{}\n", hex::encode(*new.secret())).as_bytes())?;
                f.sync_all()?;
                let linked = std::fs::hard_link(&tmp, &path);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => new,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_identity(&path)?,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        Ok(Signer { identity, memory: dir.to_path_buf(), origin })
    }

    pub fn public(&self) -> PublicKey {
        self.identity.public()
    }

    fn memory_file(&self, repo: &Repository, ext: &str) -> PathBuf {
        self.memory.join(format!("{}.{ext}", repo.config().repo_id.to_hex()))
    }

    /// The last statement this signer remembers writing to `repo`.
    pub fn remembered(&self, repo: &Repository) -> Option<(u64, Id)> {
        read_memory(&self.memory_file(repo, "last"))
    }
}

/// A memory file: `<seq> <statement id>`.
fn read_memory(path: &Path) -> Option<(u64, Id)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut words = text.split_whitespace();
    let seq = words.next()?.parse().ok()?;
    let id = Id::from_hex(words.next()?)?;
    Some((seq, id))
}

fn read_identity(path: &Path) -> std::io::Result<Identity> {
    let text = std::fs::read_to_string(path)?;
    let bytes: [u8; 32] = hex::decode(text.trim()).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} is not an arca identity", path.display()))
    })?;
    Ok(Identity::from_secret(&bytes))
}

/// An exclusive advisory lock on a file, released on drop: one statement at a time per signer
/// and repository, so two backups of one host never fork its chain.
struct FileLock(std::fs::File);

impl FileLock {
    fn take(path: &Path) -> std::io::Result<FileLock> {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)?;
        // SAFETY: flock on a file descriptor this function owns.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(FileLock(f))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as above; closing the file would release it too.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The AD of a signer certificate: the kind's label and the repository id.
fn cert_ad(repo_id: &Id) -> Vec<u8> {
    [object_ad(ObjectKind::History), &repo_id.0[..]].concat()
}

/// Seal a signer certificate: with the master key, or, by a backup-only key, with its
/// session's key in version 2's envelope (so the full key opens it, and a backup-only key
/// vouches only for itself, docs/SECURITY.md).
fn seal_certificate(repo: &Repository, plain: &[u8]) -> RepoResult<Vec<u8>> {
    // Format version 2: in the envelope of the default class's key (a backup-only session's:
    // its own), so that `key rotate` keeps it readable with the retired key.
    if repo.version() >= 2 {
        return repo.seal_object_bytes(ObjectKind::History, plain);
    }
    Ok(repo.cipher("sign")?.seal(plain, &cert_ad(&repo.config().repo_id)))
}

/// Open a signer certificate sealed by [`seal_certificate`]: version 2's envelope, or
/// sealed with the master key (version 1, and version 2 before certificates had envelopes),
/// which after `key rotate` is key 0 of the keyring.
fn open_certificate(repo: &Repository, sealed: &[u8]) -> RepoResult<Vec<u8>> {
    if repo.version() >= 2 && arca_format::keyring::envelope(sealed).is_some() {
        return repo.open_object_bytes(ObjectKind::History, sealed, || "a signer certificate".into());
    }
    let ad = cert_ad(&repo.config().repo_id);
    let master = repo.cipher("verify the history")?.open(sealed, &ad, "signer certificate");
    master
        .or_else(|e| {
            let key0 = repo.content_key(arca_format::MASTER_KEY_NUMBER, || "a signer certificate".into());
            key0.ok().and_then(|k| k.cipher().open(sealed, &ad, "signer certificate").ok()).ok_or(e)
        })
        .map_err(|e| RepoError::corrupt("signer certificate", e))
}

/// Refuse to remove snapshots unrecorded from a repository that keeps a signed history: every
/// later check would report them as deleted by the storage.
pub fn require_signer(repo: &Repository, action: &'static str) -> RepoResult<()> {
    if repo.signer().is_none() && !repo.storage().list(ObjectKind::History)?.is_empty() {
        return Err(RepoError::Signing(format!(
            "{action} needs this host's signing identity: the repository keeps a signed history, and a removal it does not record would show as tampering in every check (see the warning above about the identity)"
        )));
    }
    Ok(())
}

/// Record that `added` snapshots were stored and `removed` ones are being deleted, signed by
/// the repository's signer; nothing without one. Returns the statement's id.
pub fn record(repo: &Repository, added: &[Id], removed: &[Id]) -> RepoResult<Option<Id>> {
    let Some(signer) = repo.signer() else { return Ok(None) };
    if added.is_empty() && removed.is_empty() {
        return Ok(None);
    }
    let io = |what: &str, e: std::io::Error| RepoError::Signing(format!("{what}: {e}"));
    let lock_path = signer.memory_file(repo, "lock");
    let _lock = FileLock::take(&lock_path).map_err(|e| io(&format!("cannot lock {}", lock_path.display()), e))?;
    let public = signer.public();
    // Continue from what this host remembers; without a memory (a new machine, a lost state
    // directory), from the newest statement of this signer the storage shows.
    let mut last = match signer.remembered(repo) {
        Some(l) => Some(l),
        None => newest_of(repo.storage(), repo.cache_dir(), &repo.config().repo_id, &public)?,
    };
    // A statement uploaded by a run that died (or lost its connection) before it could
    // remember it: if the storage has it, the chain continues from it rather than forking.
    let pending = signer.memory_file(repo, "pending");
    if let Some((seq, id)) = read_memory(&pending) {
        if last.is_none_or(|(l, _)| seq > l) && repo.storage().exists(ObjectKind::History, &id.to_hex())? {
            last = Some((seq, id));
        }
    }
    let cert = SignerCertificate {
        signer: ByteBuf::from(public.to_vec()),
        hostname: signer.origin.hostname.clone(),
        username: signer.origin.username.clone(),
    };
    let body = StatementBody {
        version: 1,
        repo: repo.config().repo_id,
        signer: ByteBuf::from(public.to_vec()),
        seq: last.map_or(1, |(seq, _)| seq + 1),
        prev: last.map(|(_, id)| id),
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        added: added.to_vec(),
        removed: removed.to_vec(),
        cert: ByteBuf::from(seal_certificate(repo, &encode("signer certificate", &cert)?)?),
    };
    let body_bytes = encode("history statement", &body)?;
    let sig = signer.identity.sign(STATEMENT_DOMAIN, &body_bytes);
    let st = Statement { body: ByteBuf::from(body_bytes), sig: ByteBuf::from(sig.to_vec()) };
    let bytes = encode("history statement", &st)?;
    let id = Id::of_bytes(&bytes);
    let remember = |path: &Path| {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{} {}\n", body.seq, id.to_hex()))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| io(&format!("cannot remember the last statement in {}", path.display()), e))
    };
    remember(&pending)?;
    repo.storage().put(ObjectKind::History, &id.to_hex(), &bytes)?;
    remember(&signer.memory_file(repo, "last"))?;
    let _ = std::fs::remove_file(&pending);
    Ok(Some(id))
}

/// The local record of snapshots this host is removing (`<repo id>.removing` beside the
/// signer's memory): written before the removal is recorded, removed once the objects are
/// deleted. A run killed in between leaves it, so `check` on this host can tell its own
/// interrupted forget from a storage bringing snapshots back, and the next write finishes it.
fn removing_file(repo: &Repository) -> Option<PathBuf> {
    repo.signer().map(|s| s.memory_file(repo, "removing"))
}

/// Note that `ids` are about to be removed.
pub(crate) fn begin_removal(repo: &Repository, ids: &[Id]) -> RepoResult<()> {
    let Some(path) = removing_file(repo) else { return Ok(()) };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| RepoError::Signing(format!("cannot write {}: {e}", path.display())))?;
    let text: String = ids.iter().map(|i| format!("{}\n", i.to_hex())).collect();
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| RepoError::Signing(format!("cannot write {}: {e}", path.display())))
}

/// The removal noted by [`begin_removal`] is complete.
pub(crate) fn end_removal(repo: &Repository) {
    if let Some(path) = removing_file(repo) {
        let _ = std::fs::remove_file(path);
    }
}

/// Snapshots this host was removing when a run of it died.
pub fn interrupted_removals(repo: &Repository) -> HashSet<Id> {
    let Some(text) = removing_file(repo).and_then(|p| std::fs::read_to_string(p).ok()) else {
        return HashSet::new();
    };
    text.lines().filter_map(Id::from_hex).collect()
}

/// Finish the removals a killed run of this host left: delete each snapshot it was removing
/// that a statement of this signer records as removed (one noted but never recorded stays).
pub(crate) fn finish_interrupted_removals(repo: &Repository) -> RepoResult<()> {
    let ids = interrupted_removals(repo);
    let Some(signer) = repo.signer() else { return Ok(()) };
    if ids.is_empty() || !repo.storage().capabilities().delete {
        return Ok(());
    }
    let public = signer.public().to_vec();
    let (statements, _) = read_all(repo.storage(), repo.cache_dir())?;
    let recorded: HashSet<Id> = statements
        .iter()
        .filter(|s| s.body.repo == repo.config().repo_id && s.body.signer.as_slice() == public.as_slice())
        .flat_map(|s| s.body.removed.iter().copied())
        .collect();
    repo.snapshots_changed();
    for id in ids.iter().filter(|i| recorded.contains(i)) {
        match repo.storage().delete(ObjectKind::Snapshot, &id.to_hex()) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    end_removal(repo);
    Ok(())
}

/// A statement whose signature verified.
#[derive(Clone, Debug)]
pub struct Verified {
    pub id: Id,
    pub body: StatementBody,
}

impl Verified {
    pub fn signer(&self) -> &[u8] {
        &self.body.signer
    }
}

/// The largest statement a reader accepts: a forget of 100,000 snapshots is 3.2 MB, and a
/// planted object of gigabytes must not be read into memory.
pub const MAX_STATEMENT_BYTES: u64 = 16 << 20;

/// Why a statement of `size` bytes is refused unread, if it is.
fn too_large(size: u64) -> Option<String> {
    (size > MAX_STATEMENT_BYTES)
        .then(|| format!("{size} bytes, beyond the {} MiB a statement may have", MAX_STATEMENT_BYTES >> 20))
}

/// Verify the stored bytes of statement `name`: its name is the BLAKE3 of its bytes and its
/// signature is its signer's. Needs no key: an auditor does the same.
pub fn verify_statement(name: &str, bytes: &[u8]) -> Result<Verified, String> {
    let id = Id::of_bytes(bytes);
    if id.to_hex() != name {
        return Err("contents do not match the object name".into());
    }
    if let Some(why) = too_large(bytes.len() as u64) {
        return Err(why);
    }
    let st: Statement = decode("history statement", bytes).map_err(|e| e.to_string())?;
    let body: StatementBody = decode("history statement", &st.body).map_err(|e| e.to_string())?;
    let public: PublicKey = body.signer.as_slice().try_into().map_err(|_| "the signer is not a 32-byte key")?;
    if !verify(&public, STATEMENT_DOMAIN, &st.body, &st.sig) {
        return Err(format!("the signature does not verify with its signer {}", fingerprint(&public)));
    }
    Ok(Verified { id, body })
}

/// Statements that do not verify: name, and why.
pub type Unverified = Vec<(String, String)>;

/// Every statement in the storage: the verified ones, and the names of the others with why.
/// Statements are immutable, so with a `cache` directory each is fetched once and then read
/// from `cache/history/` (and verified again: a damaged or altered cached copy is fetched
/// anew, never trusted).
pub fn read_all(storage: &dyn Storage, cache: Option<&Path>) -> RepoResult<(Vec<Verified>, Unverified)> {
    let dir = cache.map(|c| c.join("history"));
    if let Some(d) = &dir {
        let _ = std::fs::create_dir_all(d);
    }
    let mut good = vec![];
    let mut bad = vec![];
    for (name, size) in storage.list(ObjectKind::History)? {
        // The name comes from the storage and becomes a path in the cache: only ids pass.
        if Id::from_hex(&name).is_none() {
            bad.push((name, "the name is not an id".into()));
            continue;
        }
        if let Some(why) = too_large(size) {
            bad.push((name, why));
            continue;
        }
        let cached =
            dir.as_ref().and_then(|d| std::fs::read(d.join(&name)).ok()).and_then(|b| verify_statement(&name, &b).ok());
        if let Some(v) = cached {
            good.push(v);
            continue;
        }
        let bytes = match storage.get(ObjectKind::History, &name) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue, // removed since the listing
            Err(e) => return Err(e.into()),
        };
        match verify_statement(&name, &bytes) {
            Ok(v) => {
                if let Some(d) = &dir {
                    let tmp = d.join(format!("{name}.tmp-{}", std::process::id()));
                    if std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, d.join(&name))).is_err() {
                        let _ = std::fs::remove_file(&tmp);
                    }
                }
                good.push(v);
            }
            Err(e) => bad.push((name, e)),
        }
    }
    Ok((good, bad))
}

/// The newest statement of `signer` in repository `repo_id`, as the storage shows it.
fn newest_of(
    storage: &dyn Storage,
    cache: Option<&Path>,
    repo_id: &Id,
    signer: &PublicKey,
) -> RepoResult<Option<(u64, Id)>> {
    let (all, _) = read_all(storage, cache)?;
    Ok(all
        .into_iter()
        .filter(|v| v.body.repo == *repo_id && v.signer() == signer.as_slice())
        .map(|v| (v.body.seq, v.id))
        .max())
}

/// Who signed the statement that added a snapshot.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SignedBy {
    /// The signer's public key, hex, and its short form.
    pub signer: String,
    pub fingerprint: String,
    pub hostname: String,
    pub username: String,
    pub statement: String,
    pub seq: u64,
    pub time: String,
}

/// Something `check` found wrong with the history, naming what is involved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A statement that does not verify (damaged, forged, or of another repository).
    BadStatement { statement: String, detail: String },
    /// A snapshot a chain says exists, missing from the storage. (The messages of this and the
    /// next leave the snapshot to the caller, which names it.)
    Deleted { snapshot: Id, by: String, statement: Id, time: String },
    /// A snapshot a chain says was removed, present again.
    Resurrected { snapshot: Id, by: String, statement: Id, time: String },
    /// A statement a later one names as its predecessor is missing.
    Gap { signer: String, missing_seq: u64, missing: Id, named_by: Id },
    /// Two statements of one signer claim the same place in its chain.
    Fork { signer: String, seq: u64, statements: Vec<Id> },
    /// The storage shows less of this host's chain than this host wrote.
    Rollback { signer: String, remembered_seq: u64, remembered: Id, newest_seq: u64 },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::BadStatement { statement, detail } => {
                write!(f, "history statement {statement} is not valid: {detail}")
            }
            Problem::Deleted { by, statement, time, .. } => write!(
                f,
                "missing, but {by} recorded it at {time} (statement {}) and no statement removes it: it was deleted outside arca",
                statement.short()
            ),
            Problem::Resurrected { snapshot, by, statement, time } => write!(
                f,
                "removed by {by} at {time} (statement {}) but present: the storage brought it back, or that forget was interrupted (`arca forget {}` finishes it)",
                statement.short(),
                snapshot.short()
            ),
            Problem::Gap { signer, missing_seq, missing, named_by } => write!(
                f,
                "the history of {signer} has a gap: statement {missing} (number {missing_seq}), which statement {} names as its predecessor, is missing; the snapshots it recorded cannot be accounted for",
                named_by.short()
            ),
            Problem::Fork { signer, seq, statements } => write!(
                f,
                "the history of {signer} forks: statements {} all claim number {seq} (one identity wrote from two places, or the storage replayed an old state)",
                statements.iter().map(|s| s.short()).collect::<Vec<_>>().join(", ")
            ),
            Problem::Rollback { signer, remembered_seq, remembered, newest_seq } => write!(
                f,
                "the repository was rolled back: this host ({signer}) last wrote statement {remembered} (number {remembered_seq}), but the storage does not show it, and the newest of its statements there is number {newest_seq}"
            ),
        }
    }
}

/// What the history says about the snapshots present.
#[derive(Debug, Default)]
pub struct Audit {
    pub statements: usize,
    pub signers: usize,
    /// Present snapshots and who recorded them.
    pub signed: HashMap<Id, SignedBy>,
    /// Present snapshots no statement records (written before signing existed, or by an arca
    /// without it).
    pub unsigned: Vec<Id>,
    pub problems: Vec<Problem>,
}

/// Where [`audit`] reads statements from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The storage, every statement (what `check` must verify).
    Storage,
    /// Copies kept in the local cache where there are (a listing's view; the storage still
    /// says which statements exist).
    Cached,
}

/// Compare the history with the snapshots `present` in the storage.
pub fn audit(repo: &Repository, present: &HashSet<Id>, source: Source) -> RepoResult<Audit> {
    let repo_id = repo.config().repo_id;
    let cache = if source == Source::Cached { repo.cache_dir() } else { None };
    // Read before the statements are listed: a backup of this host running meanwhile then
    // adds a statement the listing may show, never one this memory names but it does not.
    let remembered = repo.signer().and_then(|s| s.remembered(repo).map(|r| (s.public().to_vec(), r)));
    let (all, bad) = read_all(repo.storage(), cache)?;
    let mut out = Audit::default();
    for (statement, detail) in bad {
        out.problems.push(Problem::BadStatement { statement, detail });
    }
    // Only statements of this repository, enrolled by a key holder, count.
    let mut who: HashMap<Vec<u8>, String> = HashMap::new();
    let mut valid = vec![];
    for v in all {
        if v.body.repo != repo_id {
            out.problems.push(Problem::BadStatement {
                statement: v.id.to_hex(),
                detail: format!("it belongs to repository {} (copied in by the storage?)", v.body.repo.short()),
            });
            continue;
        }
        let cert = open_certificate(repo, &v.body.cert)
            .ok()
            .and_then(|p| decode::<SignerCertificate>("signer certificate", &p).ok())
            .filter(|c| c.signer == v.body.signer);
        let Some(cert) = cert else {
            out.problems.push(Problem::BadStatement {
                statement: v.id.to_hex(),
                detail: format!(
                    "its signer {} was not enrolled with this repository's key (a statement the storage made up?)",
                    fingerprint(v.signer())
                ),
            });
            continue;
        };
        who.entry(v.body.signer.to_vec())
            .or_insert_with(|| format!("{}@{} ({})", cert.username, cert.hostname, fingerprint(v.signer())));
        valid.push((v, cert));
    }
    out.statements = valid.len();
    out.signers = who.len();
    let name = |signer: &[u8]| who.get(signer).cloned().unwrap_or_else(|| fingerprint(signer));
    // Chains: per signer, by number.
    let mut chains: HashMap<Vec<u8>, BTreeMap<u64, Vec<&Verified>>> = HashMap::new();
    for (v, _) in &valid {
        chains.entry(v.body.signer.to_vec()).or_default().entry(v.body.seq).or_default().push(v);
    }
    for (signer, chain) in &chains {
        for (seq, at) in chain {
            if at.len() > 1 {
                out.problems.push(Problem::Fork {
                    signer: name(signer),
                    seq: *seq,
                    statements: at.iter().map(|v| v.id).collect(),
                });
            }
            for v in at {
                if v.body.prev.is_none() && *seq > 1 {
                    out.problems.push(Problem::BadStatement {
                        statement: v.id.to_hex(),
                        detail: format!("it is number {seq} of its chain but names no predecessor"),
                    });
                }
                if let (Some(prev), true) = (v.body.prev, *seq > 1) {
                    let found = chain.get(&(seq - 1)).is_some_and(|p| p.iter().any(|p| p.id == prev));
                    if !found {
                        out.problems.push(Problem::Gap {
                            signer: name(signer),
                            missing_seq: seq - 1,
                            missing: prev,
                            named_by: v.id,
                        });
                    }
                }
            }
        }
    }
    if let Some((me, (remembered_seq, remembered))) = remembered {
        {
            let newest_seq = chains.get(&me).and_then(|c| c.keys().next_back().copied()).unwrap_or(0);
            let there = chains
                .get(&me)
                .and_then(|c| c.get(&remembered_seq))
                .is_some_and(|a| a.iter().any(|v| v.id == remembered));
            if newest_seq < remembered_seq || !there {
                out.problems.push(Problem::Rollback { signer: name(&me), remembered_seq, remembered, newest_seq });
            }
        }
    }
    // Snapshots: added minus removed, against what is present.
    let mut added: HashMap<Id, &Verified> = HashMap::new();
    let mut removed: HashMap<Id, &Verified> = HashMap::new();
    for (v, _) in &valid {
        for s in &v.body.added {
            added.insert(*s, v);
        }
        for s in &v.body.removed {
            removed.insert(*s, v);
        }
    }
    let certs: HashMap<Id, &SignerCertificate> = valid.iter().map(|(v, c)| (v.id, c)).collect();
    // The snapshot listing was made before the statements were read: a forget running
    // meanwhile may have deleted what its statement removes, a backup added what its
    // statement records. What still exists now decides.
    let still = |s: &Id| repo.storage().exists(ObjectKind::Snapshot, &s.to_hex());
    for s in present {
        match (added.get(s), removed.get(s)) {
            (_, Some(_)) if !still(s)? => {}
            (_, Some(r)) => out.problems.push(Problem::Resurrected {
                snapshot: *s,
                by: name(r.signer()),
                statement: r.id,
                time: r.body.time.clone(),
            }),
            (Some(a), None) => {
                let cert = certs.get(&a.id);
                out.signed.insert(
                    *s,
                    SignedBy {
                        signer: hex::encode(a.signer()),
                        fingerprint: fingerprint(a.signer()),
                        hostname: cert.map(|c| c.hostname.clone()).unwrap_or_default(),
                        username: cert.map(|c| c.username.clone()).unwrap_or_default(),
                        statement: a.id.to_hex(),
                        seq: a.body.seq,
                        time: a.body.time.clone(),
                    },
                );
            }
            (None, None) => out.unsigned.push(*s),
        }
    }
    let mut gone: Vec<_> = added.iter().filter(|(s, _)| !present.contains(s) && !removed.contains_key(s)).collect();
    gone.sort_by_key(|(s, _)| **s);
    for (s, a) in gone {
        if still(s)? {
            continue;
        }
        out.problems.push(Problem::Deleted {
            snapshot: *s,
            by: name(a.signer()),
            statement: a.id,
            time: a.body.time.clone(),
        });
    }
    out.unsigned.sort();
    Ok(out)
}
