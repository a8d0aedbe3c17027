//! The config file: `[repositories.NAME]` tables (where, and how the password is found) and
//! `[jobs.NAME]` tables (sources, excludes, tags, the repository, retention, checks, replicas
//! with their own retention, hooks, a schedule, limits). Unknown keys and bad values are
//! errors naming the file, the line and the key; so is a job naming a repository the file
//! does not define.

use arca_repo::blob::Compression;
use arca_repo::check::ReadData;
use arca_repo::retention::Policy;
use arca_repo::units::{ByteSize, Interval};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Why a config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {file}: {source}")]
    Unreadable { file: PathBuf, source: std::io::Error },
    /// A syntax error, an unknown key, or a value of the wrong type or out of range.
    #[error("{}:{line}: {key}: {message}", file.display())]
    Invalid { file: PathBuf, line: usize, key: String, message: String },
}

/// A whole config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub repositories: BTreeMap<String, RepositoryConfig>,
    #[serde(default)]
    pub jobs: BTreeMap<String, Job>,
    #[serde(default)]
    pub monitoring: Monitoring,
}

/// Where job status goes besides `arca status`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Monitoring {
    /// A node-exporter textfile that `arca run` rewrites after every run.
    pub prometheus: Option<PathBuf>,
    /// How long after a scheduled time a job without a new success counts as late (default 1h).
    pub late_after: Option<Interval>,
    pub snmp: Option<Snmp>,
}

/// `arca snmp` (net-snmp `pass_persist`) and traps on failure.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snmp {
    /// The subtree arca answers for (default: the one in docs/ARCA-MIB.txt).
    pub base_oid: Option<String>,
    /// Send a trap (`snmptrap`) here when a job fails: "host[:port]".
    pub trap_host: Option<String>,
    #[serde(default = "public")]
    pub trap_community: String,
}

fn public() -> String {
    "public".into()
}

/// Health-check URLs of a job (healthchecks.io, Uptime Kuma push): `url` alone pings
/// `url/start`, `url` and `url/fail` as healthchecks.io expects; the three explicit ones
/// take its place.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ping {
    pub url: Option<Spanned<String>>,
    pub start: Option<Spanned<String>>,
    pub success: Option<Spanned<String>>,
    pub failure: Option<Spanned<String>>,
    /// Per attempt (default 10s); three attempts at most.
    pub timeout: Option<Interval>,
}

/// A named repository: where it is and how its password is found (at most one of
/// `password_file`, `password_command`, `password_env`; none: the default key file or a prompt).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    /// As `-r` takes it: a path, `ssh://…`, `sftp://…` or `s3://…`.
    pub url: String,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    /// The name of an environment variable holding the password.
    pub password_env: Option<String>,
    pub ssh_command: Option<String>,
    pub s3_endpoint: Option<String>,
    /// Bytes per second ("2M"), for remote repositories.
    pub limit_upload: Option<ByteSize>,
    pub limit_download: Option<ByteSize>,
}

/// A job: one backup and what follows it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// The name of the repository it backs up into.
    pub repository: Spanned<String>,
    /// What to back up (one source; `sources` gives more, each with its own hooks).
    pub paths: Option<Spanned<Vec<PathBuf>>>,
    /// Sources backed up one after the other, each into its own snapshot.
    #[serde(default)]
    pub sources: Vec<Source>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The host name recorded (default: this machine's).
    pub host: Option<String>,
    pub compression: Option<Compression>,
    /// Retention on the job's repository; none: nothing is forgotten.
    pub keep: Option<Policy>,
    /// Free forgotten data after forgetting (default true when `keep` is given).
    pub prune: Option<bool>,
    pub check: Option<CheckPolicy>,
    #[serde(default)]
    pub replicas: Vec<Replica>,
    #[serde(default)]
    pub hooks: Hooks,
    /// When it runs: a systemd `OnCalendar` expression ("daily", "Mon..Fri 02:00").
    pub schedule: Option<Spanned<String>>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub ping: Ping,
    /// What file backups do with a running database's files: "warn" (default), "skip",
    /// "fail" (`backup --live-databases`).
    pub live_databases: Option<Spanned<String>>,
    /// Back up file sources from a filesystem snapshot taken first (`backup --fs-snapshot`):
    /// "auto", "btrfs", "lvm" or "zfs".
    pub fs_snapshot: Option<Spanned<String>>,
}

/// One source of a job: paths backed up into one snapshot, with hooks around that backup
/// (e.g. a dump written before, removed after).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Files and directories (with `database = "sqlite"`: the database files).
    #[serde(default = "no_paths")]
    pub paths: Spanned<Vec<PathBuf>>,
    /// Added to the job's excludes for this source.
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub hooks: SourceHooks,
    /// A database instead of files (`arca db backup`): "postgres", "mariadb" or "sqlite".
    pub database: Option<Spanned<String>>,
    /// The machine's description instead of files (`arca backup --system`): disks, partition
    /// tables, filesystems, packages; what `arca recovery-script` rebuilds it from.
    #[serde(default)]
    pub system: bool,
    /// The databases to dump (default: all).
    #[serde(default)]
    pub databases: Vec<String>,
    /// Where the database server is (default: its tools' own environment).
    pub db_host: Option<String>,
    pub db_port: Option<u16>,
    pub db_user: Option<String>,
    pub db_socket: Option<PathBuf>,
    pub pg_bin: Option<PathBuf>,
    /// PostgreSQL: a cold backup of this data directory (stopped, checked, backed up, started).
    pub cold: Option<PathBuf>,
    /// With `cold`: the commands that stop and start the cluster.
    pub stop: Option<String>,
    pub start: Option<String>,
}

fn no_paths() -> Spanned<Vec<PathBuf>> {
    Spanned::new(0..0, vec![])
}

/// The database engines a source may name.
pub const DATABASES: &[&str] = &["postgres", "mariadb", "sqlite"];

impl Source {
    /// A source of `paths` alone.
    pub fn files(paths: Spanned<Vec<PathBuf>>) -> Source {
        Source {
            paths,
            exclude: vec![],
            hooks: Default::default(),
            database: None,
            databases: vec![],
            db_host: None,
            db_port: None,
            db_user: None,
            db_socket: None,
            pg_bin: None,
            cold: None,
            stop: None,
            start: None,
            system: false,
        }
    }

    /// The paths its snapshots record: its files, or a server database's `/postgres`,
    /// `/mariadb` (how `arca db backup` names them).
    pub fn snapshot_paths(&self) -> Vec<PathBuf> {
        if let Some(c) = &self.cold {
            return vec![c.clone()];
        }
        if self.system {
            // What `backup --system` records: the machine's root.
            return vec![PathBuf::from("/")];
        }
        match self.database.as_ref().map(|d| d.get_ref().as_str()) {
            Some(engine @ ("postgres" | "mariadb")) => vec![PathBuf::from(format!("/{engine}"))],
            _ => self.paths.get_ref().clone(),
        }
    }
}

/// Commands around one source's backup; a failing before-hook fails the job there.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceHooks {
    #[serde(default)]
    pub before: Vec<String>,
    #[serde(default)]
    pub after: Vec<String>,
}

impl Job {
    /// Every source: `paths` (if given) first, then `sources`.
    pub fn all_sources(&self) -> Vec<Source> {
        let own = self.paths.iter().map(|p| Source::files(p.clone()));
        own.chain(self.sources.iter().cloned()).collect()
    }
}

/// How much a job's check reads, and how often it runs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckPolicy {
    /// "none", "all", "1/5", "10%", "2G".
    #[serde(default = "no_data")]
    pub read_data: ReadData,
    /// At most once per this long ("7d"); none: after every run.
    pub every: Option<Interval>,
}

fn no_data() -> ReadData {
    ReadData::None
}

/// Another repository that holds copies of the job's snapshots, kept by its own policy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replica {
    pub repository: Spanned<String>,
    /// Retention on the replica; none: it keeps everything copied to it.
    pub keep: Option<Policy>,
}

/// Commands run around a job.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    #[serde(default)]
    pub before: Vec<String>,
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default)]
    pub on_failure: Vec<String>,
    #[serde(default)]
    pub finally: Vec<String>,
    /// A hook still running after this long is stopped and counts as failed.
    pub timeout: Option<Interval>,
}

/// How gently a job runs.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// CPU niceness, -20 to 19.
    pub nice: Option<Spanned<i32>>,
    /// I/O scheduling class.
    pub ionice: Option<IoClass>,
    pub limit_upload: Option<ByteSize>,
    pub limit_download: Option<ByteSize>,
}

/// An I/O scheduling class, as `ionice -c` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoClass {
    Realtime,
    BestEffort,
    Idle,
}

/// Where the config file is by default: `$XDG_CONFIG_HOME/arca/arca.toml`
/// (`~/.config/arca/arca.toml`), or `/etc/arca/arca.toml` for root.
pub fn default_path() -> PathBuf {
    if is_root() {
        return PathBuf::from("/etc/arca/arca.toml");
    }
    xdg_dir("XDG_CONFIG_HOME", ".config").join("arca/arca.toml")
}

/// An XDG base directory: `$VAR` if set and not empty, else `$HOME/FALLBACK`.
pub fn xdg_dir(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(fallback),
    }
}

/// Whether this process runs as root (its files then live under /etc and /var/lib).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

/// Job and repository names become file and unit names (`arca-NAME.service`, `NAME.jsonl`).
fn plain_name(n: &str) -> bool {
    !n.is_empty() && !n.starts_with('.') && n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl Config {
    /// Read and check the config file at `file`.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file)
            .map_err(|source| ConfigError::Unreadable { file: file.to_path_buf(), source })?;
        Config::parse(&text, file)
    }

    /// Parse and check `text`, read from `file` (named in errors).
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let invalid = |span: Option<Range<usize>>, message: String| {
            let (line, key) = locate(text, span);
            ConfigError::Invalid { file: file.to_path_buf(), line, key, message }
        };
        let config: Config = toml::from_str(text).map_err(|e| invalid(e.span(), e.message().to_string()))?;
        for (kind, name) in
            config.jobs.keys().map(|n| ("jobs", n)).chain(config.repositories.keys().map(|n| ("repositories", n)))
        {
            if !plain_name(name) {
                // Its table header, where it has one; else its first mention.
                let header = format!("[{kind}.{name}");
                let at = text
                    .find(&header)
                    .map(|i| i + kind.len() + 2)
                    .or_else(|| text.find(name.as_str()))
                    .map(|i| i..i + name.len());
                return Err(invalid(
                    at,
                    format!("{kind} name {name:?}: use letters, digits, '-', '_' and '.' (it names files and units)"),
                ));
            }
        }
        for (name, job) in &config.jobs {
            let names = std::iter::once(&job.repository).chain(job.replicas.iter().map(|r| &r.repository));
            for r in names {
                if !config.repositories.contains_key(r.get_ref()) {
                    let known: Vec<&str> = config.repositories.keys().map(String::as_str).collect();
                    let known = if known.is_empty() { "none is defined".to_string() } else { known.join(", ") };
                    return Err(invalid(
                        Some(r.span()),
                        format!(
                            "job {name:?} names repository {:?}, which is not defined (defined: {known})",
                            r.get_ref()
                        ),
                    ));
                }
            }
            if job.replicas.iter().any(|r| r.repository.get_ref() == job.repository.get_ref()) {
                return Err(invalid(
                    Some(job.repository.span()),
                    format!("job {name:?} replicates into its own repository"),
                ));
            }
            let sources = job.all_sources();
            if sources.is_empty() {
                let header = format!("[jobs.{name}]");
                let at = text.find(&header).map(|i| i..i + header.len());
                return Err(invalid(at, format!("job {name:?} has no paths to back up (give paths or sources)")));
            }
            for s in &sources {
                match &s.database {
                    Some(d) if !DATABASES.contains(&d.get_ref().as_str()) => {
                        return Err(invalid(
                            Some(d.span()),
                            format!("database {:?} is not one of {}", d.get_ref(), DATABASES.join(", ")),
                        ));
                    }
                    Some(d) if d.get_ref() == "sqlite" && s.paths.get_ref().is_empty() => {
                        return Err(invalid(
                            Some(d.span()),
                            "an sqlite source names its database files in paths".into(),
                        ));
                    }
                    Some(d) if d.get_ref() != "sqlite" && !s.paths.get_ref().is_empty() => {
                        return Err(invalid(
                            Some(s.paths.span()),
                            format!("a {} source names databases (databases = [...]), not paths", d.get_ref()),
                        ));
                    }
                    Some(d) if s.cold.is_some() && d.get_ref() != "postgres" => {
                        return Err(invalid(Some(d.span()), "cold backups are for database = \"postgres\"".into()));
                    }
                    Some(d) if s.system => {
                        return Err(invalid(
                            Some(d.span()),
                            "a source is a database or a system description, not both".into(),
                        ));
                    }
                    Some(_) => {}
                    None if s.system && !s.paths.get_ref().is_empty() => {
                        return Err(invalid(
                            Some(s.paths.span()),
                            "a system source describes the whole machine: it takes no paths".into(),
                        ));
                    }
                    None if s.system => {}
                    None if s.paths.get_ref().is_empty() => {
                        return Err(invalid(Some(s.paths.span()), format!("job {name:?} has no paths to back up")));
                    }
                    None if !s.databases.is_empty()
                        || s.db_host.is_some()
                        || s.db_socket.is_some()
                        || s.cold.is_some() =>
                    {
                        return Err(invalid(
                            Some(s.paths.span()),
                            "databases and db_* settings need database = \"postgres\", \"mariadb\" or \"sqlite\""
                                .into(),
                        ));
                    }
                    None => {}
                }
            }
            if let Some(l) = &job.live_databases {
                if !["warn", "skip", "fail"].contains(&l.get_ref().as_str()) {
                    return Err(invalid(
                        Some(l.span()),
                        format!("live_databases {:?} is not one of warn, skip, fail", l.get_ref()),
                    ));
                }
            }
            if let Some(f) = &job.fs_snapshot {
                if !["auto", "btrfs", "lvm", "zfs"].contains(&f.get_ref().as_str()) {
                    return Err(invalid(
                        Some(f.span()),
                        format!("fs_snapshot {:?} is not one of auto, btrfs, lvm, zfs", f.get_ref()),
                    ));
                }
            }
            if let Some(s) = &job.schedule {
                if let Err(e) = crate::calendar::Calendar::parse(s.get_ref()) {
                    return Err(invalid(Some(s.span()), e.to_string()));
                }
            }
            for u in [&job.ping.url, &job.ping.start, &job.ping.success, &job.ping.failure].into_iter().flatten() {
                let v = u.get_ref();
                if !(v.starts_with("http://") || v.starts_with("https://")) || v.contains(char::is_whitespace) {
                    return Err(invalid(Some(u.span()), format!("{v:?} is not an http:// or https:// URL")));
                }
            }
            if let Some(n) = &job.limits.nice {
                if !(-20..=19).contains(n.get_ref()) {
                    return Err(invalid(Some(n.span()), "give a niceness from -20 to 19".into()));
                }
            }
        }
        for (name, r) in &config.repositories {
            // The name goes into shell lines as `"${NAME}"` (plan.rs): only a plain name.
            let plain = |v: &str| {
                v.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            };
            if let Some(v) = r.password_env.as_deref().filter(|v| !plain(v)) {
                let at = text.find(&format!("{v:?}")).map(|i| i..i + v.len() + 2);
                return Err(invalid(at, format!("{v:?} is not an environment variable name (letters, digits, _)")));
            }
            let given = [r.password_file.is_some(), r.password_command.is_some(), r.password_env.is_some()];
            if given.iter().filter(|g| **g).count() > 1 {
                let header = format!("[repositories.{name}]");
                let at = text.find(&header).map(|i| i..i + header.len());
                return Err(invalid(
                    at,
                    format!("repository {name:?}: give one of password_file, password_command, password_env"),
                ));
            }
        }
        Ok(config)
    }
}

/// The keys of the inline tables open at the end of `before` (`keep = { daily = 7, ` gives
/// `keep`), and the text after the last separator. Braces inside strings are not told apart;
/// at worst the key path in a message is less precise.
fn inline_keys(before: &str) -> (Vec<String>, &str) {
    let (mut open, mut from) = (Vec::new(), 0);
    for (i, c) in before.char_indices() {
        match c {
            '{' => {
                let seg = &before[from..i];
                open.push(seg.rfind('=').map_or("", |eq| seg[..eq].trim()).trim_matches('"').to_string());
                from = i + 1;
            }
            '}' => {
                open.pop();
                from = i + 1;
            }
            ',' => from = i + 1,
            _ => {}
        }
    }
    (open, &before[from..])
}

/// The line (1-based) of `span` in `text`, and the dotted key it belongs to: the table
/// header above it and the key on its line. toml reports a byte span only; the key path is
/// what a user looks for, so it is recovered here from the text.
fn locate(text: &str, span: Option<Range<usize>>) -> (usize, String) {
    let Some(span) = span else { return (1, "(file)".into()) };
    let start = span.start.min(text.len());
    let line = text[..start].matches('\n').count() + 1;
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let (mut path, tail) = inline_keys(&text[line_start..start]);
    let key = match tail.rfind('=') {
        // The span is a value: its key is the word before the `=`.
        Some(eq) => tail[..eq].trim().to_string(),
        // The span is a key (or a table header).
        None => {
            let end = span.end.min(text.len()).max(start);
            text[start..end].trim().trim_matches(|c| c == '[' || c == ']').trim().to_string()
        }
    };
    path.insert(0, table.unwrap_or_default());
    path.push(key.trim_matches('"').to_string());
    path.retain(|k| !k.is_empty());
    path.dedup();
    let path = if path.is_empty() { "(file)".to_string() } else { path.join(".") };
    (line, path)
}
