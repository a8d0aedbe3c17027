//! Session locks: every command that writes to a repository, or reads data a prune could
//! remove, announces itself in `locks/<session>` and refreshes that object while it runs.
//! Locks never make a backup wait. A prune only uses them to decide when marked packs may be
//! swept (see `prune`), and an exclusive session (prune, repair) refuses to start while another
//! exclusive one is alive. A lock not refreshed for the stale limit is dead: its process
//! crashed or lost the repository, and it is ignored and removed by the next prune.

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
    let (mut ok, mut bad) = (vec![], vec![]);
    for (name, _) in repo.storage().list(ObjectKind::Lock)? {
        match repo.load_named_object::<LockFile>(ObjectKind::Lock, &name) {
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
}

impl Inner {
    fn store(&self) -> RepoResult<()> {
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.refreshed = now_ns();
        let at = Instant::now();
        self.repo.save_owned_object(ObjectKind::Lock, &self.secret, &*f)?;
        *self.stored.lock().unwrap_or_else(|p| p.into_inner()) = at;
        Ok(())
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
                let msg = format!(
                    "another exclusive session is running: `{}` on {} (pid {}) since {}; it must end first (or its lock goes stale after {} s without a refresh)",
                    r.command,
                    r.host,
                    r.pid,
                    chrono::DateTime::from_timestamp_nanos(r.started).format("%Y-%m-%d %H:%M:%S UTC"),
                    stale_after().as_secs()
                );
                return Err(RepoError::Refused(msg)); // `lock` drops here and removes itself
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

    /// This session's id.
    pub fn session(&self) -> Id {
        self.inner.file.lock().unwrap_or_else(|p| p.into_inner()).session
    }

    /// Fails if the lock has gone unrefreshed long enough that a prune may have treated this
    /// session as dead (the machine slept, the storage was unreachable): what it deduplicated
    /// against may be gone, so it must not commit a snapshot.
    pub fn check_alive(&self) -> RepoResult<()> {
        let age = self.inner.stored.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
        if age + stale_after() / 6 >= stale_after() {
            return Err(RepoError::Refused(format!(
                "this session's lock was not refreshed for {} s (suspended, or the repository was unreachable); a prune may have removed data it relied on, so nothing was committed; run the command again",
                age.as_secs()
            )));
        }
        Ok(())
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
