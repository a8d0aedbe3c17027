//! Session locks: every command that writes to a repository, or reads data a prune could
//! remove, announces itself in `locks/<session>` and refreshes that object while it runs.
//! Locks never make a backup wait. A prune only uses them to decide when marked packs may be
//! swept (see `prune`), and an exclusive session (prune, repair) refuses to start while another
//! exclusive one is alive. A lock not refreshed for the stale limit is dead: its process
//! crashed or lost the repository, and it is ignored and removed by the next prune.

use crate::keyring::ContentKey;
use crate::{RepoError, RepoResult, Repository};
use arca_format::{Id, LockFile};
use arca_storage::ObjectKind;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a lock lives without a refresh. `ARCA_LOCK_STALE_SECS` overrides it (tests).
pub fn stale_after() -> Duration {
    let secs = std::env::var("ARCA_LOCK_STALE_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(30 * 60);
    Duration::from_secs(secs)
}

/// Unix time in nanoseconds.
pub fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// True if a lock's session is over: not refreshed within the stale limit, or taken on this
/// host by a process that no longer exists (so a killed prune does not block the next one for
/// the whole stale limit).
pub fn is_stale(lock: &LockFile, now: i64) -> bool {
    if now.saturating_sub(lock.refreshed) > stale_after().as_nanos() as i64 {
        return true;
    }
    let here = crate::keys::Origin::current().hostname;
    lock.host == here
        && lock.pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{}", lock.pid)).exists()
}

/// Lock objects that could not be read, by name.
pub type Unreadable = Vec<(String, RepoError)>;

/// Every lock object, decoded; unreadable ones are returned by name with the error.
pub fn list(repo: &Repository) -> RepoResult<(Vec<LockFile>, Unreadable)> {
    list_except(repo, None)
}

/// [`list`] without the lock named `own` (a session's own, which it need not read). The locks
/// are read at once on a remote storage (a fleet's sixteen are one round trip, not sixteen).
pub fn list_except(repo: &Repository, own: Option<&str>) -> RepoResult<(Vec<LockFile>, Unreadable)> {
    let (mut ok, mut bad) = (vec![], vec![]);
    let names: Vec<String> = repo
        .storage()
        .list(ObjectKind::Lock)?
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| Some(n.as_str()) != own)
        .collect();
    let read = arca_storage::get_many(repo.storage(), ObjectKind::Lock, &names);
    for (name, bytes) in names.into_iter().zip(read) {
        let opened = bytes
            .map_err(RepoError::from)
            .and_then(|b| repo.open_named_object::<LockFile>(ObjectKind::Lock, &name, &b));
        match opened {
            Ok(l) if l.session.to_hex() == name => ok.push(l),
            Ok(_) => bad.push((name, RepoError::corrupt("lock", "its name does not match its session"))),
            Err(RepoError::Storage(e)) if e.is_not_found() => {} // released meanwhile
            Err(e) => bad.push((name, e)),
        }
    }
    Ok((ok, bad))
}

/// A held lock. Dropping it stops the refresher and removes the lock object.
pub struct SessionLock {
    inner: Arc<Inner>,
    stop: Option<crossbeam_channel::Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

struct Inner {
    repo: Arc<Repository>,
    /// The session's secret: the lock's name is its BLAKE3, so only this session can show
    /// that the lock is its own (an append-only server lets it replace and delete it).
    secret: [u8; 32],
    file: Mutex<LockFile>,
    /// When the lock object was last stored successfully.
    stored: Mutex<Instant>,
    /// The longest time the lock went unrefreshed past the point where a prune may count it
    /// stale. Sticky: a later refresh does not undo what a prune did meanwhile.
    lapsed: Mutex<Option<Duration>>,
    /// The key the lock is sealed with from now on, where it is not the repository's shared
    /// key: `key rotate` sets the new one at its commit, so the lock stays readable (an
    /// unreadable lock holds off every prune).
    key: Mutex<Option<Arc<ContentKey>>>,
}

/// How long without a refresh makes a lock unsafe to rely on: a little before the stale
/// limit, for clock skew between this host and a pruning one.
fn unsafe_after() -> Duration {
    stale_after() - stale_after() / 6
}

impl Inner {
    fn store(&self) -> RepoResult<()> {
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.refreshed = now_ns();
        let at = Instant::now();
        let key = self.key.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match key {
            Some(k) => {
                let plain = arca_format::encode("lock", &*f)?;
                let sealed = self.repo.seal_with(&k, ObjectKind::Lock, &plain);
                let name = blake3::hash(&self.secret).to_hex();
                self.repo.storage().put_owned(ObjectKind::Lock, name.as_str(), &sealed, &self.secret)?;
            }
            None => self.repo.save_owned_object(ObjectKind::Lock, &self.secret, &*f)?,
        }
        let mut stored = self.stored.lock().unwrap_or_else(|p| p.into_inner());
        let gap = at.saturating_duration_since(*stored);
        if gap >= unsafe_after() {
            let mut l = self.lapsed.lock().unwrap_or_else(|p| p.into_inner());
            *l = Some(l.map_or(gap, |g| g.max(gap)));
        }
        *stored = at;
        Ok(())
    }

    /// The longest lapse so far, counting the time since the last refresh.
    fn lapse(&self) -> Option<Duration> {
        let since = self.stored.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
        let recorded = *self.lapsed.lock().unwrap_or_else(|p| p.into_inner());
        let now = (since >= unsafe_after()).then_some(since);
        recorded.max(now)
    }
}

impl SessionLock {
    /// Announce a session. An exclusive session fails if another live exclusive one exists.
    pub fn acquire(repo: &Arc<Repository>, command: &str, exclusive: bool) -> RepoResult<SessionLock> {
        let now = now_ns();
        let secret: [u8; 32] = arca_crypto::random_bytes();
        let file = LockFile {
            session: Id(*blake3::hash(&secret).as_bytes()),
            host: crate::keys::Origin::current().hostname,
            pid: std::process::id(),
            command: command.to_string(),
            exclusive,
            started: now,
            refreshed: now,
        };
        let inner = Arc::new(Inner {
            repo: repo.clone(),
            secret,
            file: Mutex::new(file.clone()),
            stored: Mutex::new(Instant::now()),
            lapsed: Mutex::new(None),
            key: Mutex::new(None),
        });
        inner.store()?;
        let mut lock = SessionLock { inner: inner.clone(), stop: None, refresher: None };
        if exclusive {
            let (live, _) = list(repo)?;
            let now = now_ns();
            // Of two exclusive sessions that see each other, the younger one gives way.
            let rival = live.iter().find(|l| {
                l.exclusive
                    && l.session != file.session
                    && !is_stale(l, now)
                    && (l.started, l.session.0) < (file.started, file.session.0)
            });
            if let Some(r) = rival {
                let holder = format!(
                    "`{}` on {} (pid {}) since {}",
                    r.command,
                    r.host,
                    r.pid,
                    chrono::DateTime::from_timestamp_nanos(r.started).format("%Y-%m-%d %H:%M:%S UTC"),
                );
                // `lock` drops here and removes itself.
                return Err(RepoError::Locked { holder, stale_secs: stale_after().as_secs() });
            }
        }
        let (tx, rx) = crossbeam_channel::bounded::<()>(0);
        let every = (stale_after() / 6).max(Duration::from_millis(200));
        lock.refresher = Some(std::thread::spawn(move || {
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                if let Err(e) = inner.store() {
                    tracing::warn!("could not refresh the repository lock: {e}");
                }
            }
        }));
        lock.stop = Some(tx);
        Ok(lock)
    }

    /// Seal the lock with `key` from now on, storing it again at once (`key rotate`, whose
    /// commit replaces the shared key the repository it was opened with seals locks with).
    pub fn reseal_with(&self, key: Arc<ContentKey>) -> RepoResult<()> {
        *self.inner.key.lock().unwrap_or_else(|p| p.into_inner()) = Some(key);
        self.inner.store()
    }

    /// True for an exclusive session (prune, repair index).
    pub fn is_exclusive(&self) -> bool {
        self.inner.file.lock().unwrap_or_else(|p| p.into_inner()).exclusive
    }

    /// This session's id.
    pub fn session(&self) -> Id {
        self.inner.file.lock().unwrap_or_else(|p| p.into_inner()).session
    }

    /// Fails if the lock has gone unrefreshed long enough that a prune may have treated this
    /// session as dead (the machine slept, the storage was unreachable) and it is still so:
    /// for a check right before a commit that [`SessionLock::confirm_commit`] already passed.
    pub fn check_alive(&self) -> RepoResult<()> {
        let age = self.inner.stored.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
        if age >= unsafe_after() {
            return Err(RepoError::LockLate { secs: age.as_secs() });
        }
        Ok(())
    }

    /// Whether this session's lock ever went unrefreshed long enough for a prune to count it
    /// stale, and for how long at most.
    pub fn lapsed(&self) -> Option<Duration> {
        self.inner.lapse()
    }

    /// A handle for the writer's threads: they confirm, before an index object names their
    /// packs, that a lapse did not let a prune delete them.
    pub fn guard(&self) -> LockGuard {
        LockGuard { inner: self.inner.clone() }
    }

    /// Make sure a commit that references the trees `roots` is safe. If the lock never lapsed,
    /// every prune since the session started has waited for it, and nothing it relies on can
    /// have gone. If it lapsed, a prune may have marked or deleted packs this session
    /// deduplicated against or uploaded: the lock is refreshed first (from then on, new marks
    /// wait for this session), then every pack that a blob below `roots` lives in must still
    /// be stored and in no mark that does not wait for this session. Otherwise the commit is
    /// refused with [`RepoError::SessionLapsed`] and nothing is saved.
    pub fn confirm_commit(&self, repo: &Repository, roots: &[Id]) -> RepoResult<()> {
        let Some(gap) = self.inner.lapse() else { return Ok(()) };
        let safe = self.inner.revalidate(repo, gap)?;
        let mut missing = std::collections::HashSet::new();
        let mut unreadable = 0usize;
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<Id> = roots.to_vec();
        let check = |id: &Id, missing: &mut std::collections::HashSet<Id>| match repo.index().get(id) {
            Some(loc) if safe.holds(&loc.pack) => {}
            Some(loc) => {
                missing.insert(loc.pack);
            }
            None => {
                missing.insert(*id);
            }
        };
        while let Some(tree) = stack.pop() {
            if !seen.insert(tree) {
                continue;
            }
            check(&tree, &mut missing);
            let t = match repo.read_tree(&tree) {
                Ok(t) => t,
                Err(_) => {
                    unreadable += 1;
                    continue;
                }
            };
            for n in &t.nodes {
                for c in &n.content {
                    if seen.insert(*c) {
                        check(c, &mut missing);
                    }
                }
                if let Some(sub) = n.subtree {
                    stack.push(sub);
                }
            }
        }
        if missing.is_empty() && unreadable == 0 {
            tracing::info!("everything the session references is still stored");
            return Ok(());
        }
        Err(RepoError::SessionLapsed { secs: gap.as_secs(), missing: missing.len().max(unreadable) })
    }
}

/// What a prune may have taken while a session's lock was lapsed.
struct SafePacks {
    stored: std::collections::HashSet<Id>,
    /// Packs in marks that do not wait for this session: a sweep may delete them any time.
    doomed: std::collections::HashSet<Id>,
}

impl SafePacks {
    fn holds(&self, pack: &Id) -> bool {
        self.stored.contains(pack) && !self.doomed.contains(pack)
    }
}

impl Inner {
    /// After a lapse: refresh the lock, so every mark written from now on waits for this
    /// session, then list what is stored and what earlier marks doom. (In that order: a mark
    /// is written before its prune lists the live locks, so one this listing misses will
    /// count this session.)
    fn revalidate(&self, repo: &Repository, gap: Duration) -> RepoResult<SafePacks> {
        self.store()?;
        let ours = self.file.lock().unwrap_or_else(|p| p.into_inner()).session;
        tracing::info!("the session's lock lapsed for {} s; checking what it references", gap.as_secs());
        let stored = repo.storage().list(ObjectKind::Pack)?.into_iter().filter_map(|(n, _)| Id::from_hex(&n)).collect();
        let mut doomed = std::collections::HashSet::new();
        for (_, m) in crate::prune::load_marks(repo)? {
            if !m.sessions.as_ref().is_some_and(|s| s.contains(&ours)) {
                doomed.extend(m.packs.iter().map(|p| p.id));
            }
        }
        Ok(SafePacks { stored, doomed })
    }
}

impl SessionLock {
    /// The name of this session's lock object.
    pub fn name(&self) -> String {
        blake3::hash(&self.inner.secret).to_hex().to_string()
    }
}

/// A clonable handle on a held lock, for the threads of a session (see [`SessionLock::guard`]).
#[derive(Clone)]
pub struct LockGuard {
    inner: Arc<Inner>,
}

impl LockGuard {
    /// Before an index object names `packs`: fails with [`RepoError::SessionLapsed`] if the
    /// lock lapsed and a prune has since deleted or doomed any of them.
    pub fn confirm_packs(&self, repo: &Repository, packs: &[Id]) -> RepoResult<()> {
        let Some(gap) = self.inner.lapse() else { return Ok(()) };
        let safe = self.inner.revalidate(repo, gap)?;
        let missing = packs.iter().filter(|p| !safe.holds(p)).count();
        if missing == 0 {
            return Ok(());
        }
        Err(RepoError::SessionLapsed { secs: gap.as_secs(), missing })
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        let name = self.session().to_hex();
        if let Err(e) = self.inner.repo.storage().delete_owned(ObjectKind::Lock, &name, &self.inner.secret) {
            tracing::warn!("could not remove the repository lock {name}: {e}");
        }
    }
}
