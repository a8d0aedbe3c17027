//! Finding the repository and its password, and opening it.

use crate::cli::Cli;
use crate::output::Output;
use anyhow::{bail, Context, Result};
use arca_format::KdfParams;
use arca_repo::lock::SessionLock;
use arca_repo::{RepoError, Repository};
use arca_storage::Storage;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the repository is and how its password is found.
pub struct Location {
    pub place: arca_backends::Location,
    /// For the default repository: the key file standing in for a password.
    pub default_key: Option<PathBuf>,
    /// Read back every object written (`--verify-after-write`).
    pub verify_after_write: bool,
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(fallback),
    }
}

/// The repository named on the command line, or the default one.
pub fn location(cli: &Cli) -> Result<Location> {
    match cli.repo.as_deref() {
        Some(r) => location_named(cli, r),
        None => Ok(Location {
            place: arca_backends::Location::Local(xdg("XDG_DATA_HOME", ".local/share").join("arca/default")),
            default_key: Some(xdg("XDG_CONFIG_HOME", ".config").join("arca/default.key")),
            verify_after_write: cli.verify_after_write,
        }),
    }
}

/// A repository named by URL or path (`-r`, `copy --from-repo`), reached with the ssh
/// command, endpoint and limits the command line gives.
pub fn location_named(cli: &Cli, repo: &str) -> Result<Location> {
    let reach = arca_backends::Reach {
        ssh_command: cli.ssh_command.clone(),
        s3_endpoint: cli.s3_endpoint.clone(),
        limit_upload: cli.limit_upload.map(|k| k.saturating_mul(1024)),
        limit_download: cli.limit_download.map(|k| k.saturating_mul(1024)),
        connections: usize::from(cli.connections),
        io_timeout: std::time::Duration::from_secs(cli.io_timeout),
    };
    Ok(Location {
        place: arca_backends::Location::parse(repo, &reach)?,
        default_key: None,
        verify_after_write: cli.verify_after_write,
    })
}

/// arca's own files on this machine, which a backup must never take in: the repository (when
/// it is local), the cache of every repository, and the default key file.
pub fn own_paths(cli: &Cli) -> Vec<PathBuf> {
    let mut out = vec![cache_root(cli)];
    if let Ok(loc) = location(cli) {
        out.extend(loc.place.local_path().map(Path::to_path_buf));
        out.extend(loc.default_key);
    }
    out
}

/// Cost of new key slots. ARCA_KDF_MEMORY_KIB lowers it for test suites only.
pub fn kdf_params() -> KdfParams {
    let mut p = KdfParams::default();
    if let Some(m) = std::env::var("ARCA_KDF_MEMORY_KIB").ok().and_then(|v| v.parse().ok()) {
        p.memory_kib = m;
        p.iterations = 1;
    }
    p
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// The password from the environment, a file or a command; `None` if none was given.
fn given_password(cli: &Cli) -> Result<Option<String>> {
    if let Some(p) = env_password("ARCA_PASSWORD")? {
        return Ok(Some(p));
    }
    if let Some(f) = &cli.password_file {
        let s = std::fs::read_to_string(f).with_context(|| format!("cannot read password file {}", f.display()))?;
        return Ok(Some(first_line(&s)));
    }
    if let Some(c) = &cli.password_command {
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(c)
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("cannot run the password command")?;
        if !o.status.success() {
            bail!("the password command failed ({})", o.status);
        }
        return Ok(Some(first_line(&String::from_utf8_lossy(&o.stdout))));
    }
    Ok(None)
}

/// A password from the environment variable `var`: one that is set but not UTF-8 is an error,
/// not silently passed over for a file or a prompt.
pub fn env_password(var: &str) -> Result<Option<String>> {
    match std::env::var(var) {
        Ok(p) => Ok(Some(p)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("{var} is not valid UTF-8; give the password in a file instead")
        }
    }
}

/// The password of the default repository's key file, if that (and no given password) is
/// what opens the repository at `loc`.
pub fn default_key_in_use(cli: &Cli, loc: &Location) -> Result<Option<String>> {
    match &loc.default_key {
        Some(k) if k.exists() && given_password(cli)?.is_none() => {
            let s = std::fs::read_to_string(k).with_context(|| format!("cannot read {}", k.display()))?;
            Ok(Some(first_line(&s)))
        }
        _ => Ok(None),
    }
}

/// Ask on the terminal; `confirm` asks twice. `sources` names the ways to give this password
/// without a terminal, for the error when there is none.
/// Ask a question on the terminal (shown on stderr) and read the answer line.
pub fn prompt_line(question: &str) -> Result<String> {
    use std::io::Write;
    eprint!("{question}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("cannot read the answer")?;
    Ok(line)
}

pub fn prompt(what: &str, confirm: bool, sources: &str) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("no {what} given: set {sources} (stdin is not a terminal, so arca cannot ask)");
    }
    let p = rpassword::prompt_password(format!("{what}: ")).context("cannot read the password")?;
    if confirm {
        let again = rpassword::prompt_password(format!("{what} again: ")).context("cannot read the password")?;
        if again != p {
            bail!("the passwords do not match");
        }
    }
    if p.is_empty() {
        bail!("an empty password is not allowed");
    }
    Ok(p)
}

/// The password for `loc`.
pub fn password(cli: &Cli, loc: &Location, creating: bool) -> Result<String> {
    if let Some(p) = given_password(cli)? {
        return Ok(p);
    }
    if let Some(k) = &loc.default_key {
        if k.exists() {
            let s = std::fs::read_to_string(k)
                .with_context(|| format!("cannot read the default key file {}", k.display()))?;
            return Ok(first_line(&s));
        }
        if !creating && !std::io::stdin().is_terminal() {
            bail!(
                "the default repository {} opens with the key file {}, which is missing: put back your copy of it (docs/RECOVERY.md, \"The default repository\"), or give the repository's password with ARCA_PASSWORD_FILE if it was created with one",
                loc.place,
                k.display()
            );
        }
    }
    prompt(
        if creating { "new repository password" } else { "repository password" },
        creating,
        "ARCA_PASSWORD, ARCA_PASSWORD_FILE (--password-file) or ARCA_PASSWORD_COMMAND (--password-command)",
    )
}

/// The storage at `loc` (for ssh://, connects), traced (`ARCA_LOG=arca::storage=trace`),
/// every write read back with `--verify-after-write`.
pub fn storage(loc: &Location) -> Result<Arc<dyn Storage>> {
    // Traced under the check, so its reads show in the trace too.
    let traced: Arc<dyn Storage> = Arc::new(arca_storage::Traced::new(loc.place.connect()?));
    Ok(if loc.verify_after_write { Arc::new(arca_storage::VerifyAfterWrite::new(traced)) } else { traced })
}

/// The location for messages.
pub fn shown(loc: &Location) -> String {
    loc.place.to_string()
}

/// Which session lock a command takes (see `arca_repo::session`).
pub use arca_repo::session::Access as Session;

/// Open the repository and load its index, warning about damaged index objects.
pub fn open(cli: &Cli, out: &Output) -> Result<Arc<Repository>> {
    Ok(open_session(cli, out, Session::Metadata)?.0)
}

/// Open the repository, take the session's lock, then load the index (in that order: a
/// prune must see the lock of anyone who may have seen the index before its mark).
pub fn open_session(cli: &Cli, out: &Output, session: Session) -> Result<(Arc<Repository>, Option<SessionLock>)> {
    open_session_keeping_password(cli, out, session).map(|(r, l, _)| (r, l))
}

/// [`open_session`], also returning the password that opened it (`key rotate` gives the new
/// key slot the same one).
pub fn open_session_keeping_password(
    cli: &Cli,
    out: &Output,
    session: Session,
) -> Result<(Arc<Repository>, Option<SessionLock>, String)> {
    let loc = location(cli)?;
    // The config, key slots and keyring are read at once, before the password is asked for.
    let mut opening = arca_repo::repository::Opening::start(storage(&loc)?);
    if opening.is_empty()? {
        let err = anyhow::Error::new(RepoError::NoRepository { location: shown(&loc) });
        if loc.default_key.is_some() {
            return Err(err.context(
                "the default repository has not been created yet (`arca backup PATH` creates it; -r or ARCA_REPOSITORY names another)",
            ));
        }
        return Err(err);
    }
    let given = given_password(cli)?;
    let overrides_key = given.is_some() && loc.default_key.as_ref().is_some_and(|k| k.exists());
    let pw = match given {
        Some(p) => p,
        None => password(cli, &loc, false)?,
    };
    let opened = open_opening(cli, out, opening, &pw, session).map_err(|e| {
        let wrong = matches!(e.downcast_ref::<RepoError>(), Some(RepoError::WrongPassword { .. }));
        match (&loc.default_key, wrong && overrides_key) {
            (Some(k), true) => e.context(format!(
                "the default repository opens with its key file {}, but a password was given (ARCA_PASSWORD, --password-file or --password-command) and took its place: unset it for the default repository",
                k.display()
            )),
            _ => e,
        }
    })?;
    Ok((opened.0, opened.1, pw))
}

/// Open the repository in `storage` with `pw`, lock, and load the index.
pub fn open_with(
    cli: &Cli,
    out: &Output,
    storage: Arc<dyn Storage>,
    pw: &str,
    session: Session,
) -> Result<(Arc<Repository>, Option<SessionLock>)> {
    open_opening(cli, out, arca_repo::repository::Opening::start(storage), pw, session)
}

/// [`open_with`] from reads already begun.
fn open_opening(
    cli: &Cli,
    out: &Output,
    opening: arca_repo::repository::Opening,
    pw: &str,
    session: Session,
) -> Result<(Arc<Repository>, Option<SessionLock>)> {
    let mut repo = opening.unlock(pw.as_bytes())?;
    if !cli.no_cache {
        let dir = cache_dir(cli, &repo);
        // Its time says when it was last used, for `arca cache --cleanup`.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.set_modified(std::time::SystemTime::now());
        }
        repo.set_cache_dir(dir);
    }
    repo.set_send_log_dir(arca_jobs::history::default_dir().join("sendlog"));
    match signer() {
        Ok(s) => repo.set_signer(s),
        Err(e) => out.warn(format!(
            "this host's signing identity is unavailable ({e}): snapshots this command adds go unrecorded in the signed history, and it cannot remove snapshots from a repository that has one"
        )),
    }
    let retry = match &cli.retry_lock {
        Some(s) => crate::text::parse_duration(s).map_err(|e| anyhow::anyhow!("--retry-lock: {e}"))?,
        None => std::time::Duration::ZERO,
    };
    let s = arca_repo::session::open(repo, session, retry)?;
    if let (Some(e), Session::Read(cmd)) = (&s.lock_warning, session) {
        out.warn(format!("could not take a shared lock ({e}); a prune running now could remove data this {cmd} reads"));
    }
    for problem in &s.index_problems {
        out.warn(format!("{problem} (the blobs it listed are unreachable until `arca repair index` runs)"));
    }
    let (repo, lock) = (s.repo, s.lock);
    Ok((repo, lock))
}

/// Where this host's signing identity and its memory of each repository's history live:
/// `signing/` in the state directory (`$ARCA_STATE_DIR`, `/var/lib/arca` for root, else
/// `~/.local/state/arca`).
pub fn signing_dir() -> PathBuf {
    arca_jobs::history::default_dir().join("signing")
}

/// This host's signer (its identity is created on first use).
pub fn signer() -> std::io::Result<Arc<arca_repo::history::Signer>> {
    let dir = signing_dir();
    arca_repo::history::Signer::load_or_create(&dir, arca_repo::keys::Origin::current())
        .map(Arc::new)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))
}

/// Where the caches of all repositories live: --cache-dir, ARCA_CACHE_DIR, or
/// $XDG_CACHE_HOME/arca.
pub fn cache_root(cli: &Cli) -> PathBuf {
    cli.cache_dir.clone().unwrap_or_else(|| xdg("XDG_CACHE_HOME", ".cache").join("arca"))
}

/// The local cache directory of a repository.
pub fn cache_dir(cli: &Cli, repo: &Repository) -> PathBuf {
    cache_root(cli).join(repo.config().repo_id.to_hex())
}

/// The password of a source repository (`copy --from-repo`): `--from-password-file`,
/// ARCA_FROM_PASSWORD, ARCA_FROM_PASSWORD_FILE, or a prompt.
pub fn from_password(file: Option<&Path>) -> Result<String> {
    if let Some(f) = file {
        let s = std::fs::read_to_string(f).with_context(|| format!("cannot read password file {}", f.display()))?;
        return Ok(first_line(&s));
    }
    if let Some(p) = env_password("ARCA_FROM_PASSWORD")? {
        return Ok(p);
    }
    if let Some(f) = std::env::var_os("ARCA_FROM_PASSWORD_FILE") {
        let s = std::fs::read_to_string(&f)
            .with_context(|| format!("cannot read password file {}", Path::new(&f).display()))?;
        return Ok(first_line(&s));
    }
    prompt("source repository password", false, "ARCA_FROM_PASSWORD, ARCA_FROM_PASSWORD_FILE or --from-password-file")
}

/// Open the default repository, creating it (with a random key file) on first use.
pub fn open_or_create_default(
    cli: &Cli,
    out: &Output,
    session: Session,
    sources: &[PathBuf],
) -> Result<(Arc<Repository>, Option<SessionLock>)> {
    let opts = arca_repo::InitOptions { kdf: kdf_params(), ..Default::default() };
    create_default(cli, out, sources, &opts)?;
    open_session(cli, out, session)
}

/// Create the default repository (with a random key file, or the password given) if it does
/// not exist yet; true if it was created. A no-op for any other repository.
pub fn create_default(cli: &Cli, out: &Output, sources: &[PathBuf], opts: &arca_repo::InitOptions) -> Result<bool> {
    let loc = location(cli)?;
    if let (Some(key), Some(path)) = (&loc.default_key, loc.place.local_path()) {
        let storage = storage(&loc)?;
        if !storage.exists(arca_storage::ObjectKind::Config, "config")?
            && storage.list(arca_storage::ObjectKind::Key)?.is_empty()
        {
            let same_disk = same_device(path, sources);
            let given = given_password(cli)?;
            let from_password = given.is_some();
            let password = match given {
                Some(p) => p,
                None => create_key_file(key)?,
            };
            arca_backends::create_private_dir(path).with_context(|| format!("cannot create {}", path.display()))?;
            Repository::init(storage, password.as_bytes(), opts)?;
            if from_password {
                out.warn(format!(
                    "created the default repository at {}; it opens with the password you gave (no key file was written): keep that password, without it these backups cannot be read",
                    path.display()
                ));
            } else {
                out.warn(format!(
                    "created the default repository at {}; its key is in {} (mode 0600). Keep a copy of that key somewhere safe (`arca key export`): without it these backups cannot be read",
                    path.display(),
                    key.display()
                ));
            }
            out.warn(format!(
                "the default repository is on this machine{}: a failure of that disk loses the backups with the data; for a real backup, name a repository on another disk or host with -r (ssh://, sftp://, s3://)",
                if same_disk { ", on the same disk as the data" } else { "" }
            ));
            return Ok(true);
        }
    }
    Ok(false)
}

/// True if `repo` (or its nearest existing ancestor) is on the same device as any of `sources`.
fn same_device(repo: &Path, sources: &[PathBuf]) -> bool {
    use std::os::unix::fs::MetadataExt;
    let dev = repo.ancestors().find_map(|a| std::fs::metadata(a).ok()).map(|m| m.dev());
    dev.is_some_and(|d| sources.iter().any(|s| std::fs::metadata(s).is_ok_and(|m| m.dev() == d)))
}

fn create_key_file(path: &Path) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let key = hex::encode(rand::random::<[u8; 32]>());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the key file {}", path.display()))?;
    writeln!(f, "{key}")?;
    f.sync_all()?;
    Ok(key)
}
