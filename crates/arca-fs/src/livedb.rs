//! Live databases in a file backup: a running database's files copied while it writes them
//! are usually not a usable backup, and nothing but a "file changed" note says so elsewhere.
//! While walking, each directory is checked for
//!
//! - a PostgreSQL cluster: `PG_VERSION` and a `postmaster.pid` whose process runs;
//! - a MariaDB/MySQL data directory: the working directory of a running `mariadbd`/`mysqld`
//!   (which runs in its data directory);
//! - an SQLite database with a live write-ahead log or journal: `NAME-wal` (not empty) or
//!   `NAME-journal` beside a file that starts with SQLite's header.
//!
//! Each is reported once, named, with the process and the source that backs it up properly;
//! the policy decides whether it is warned about, left out, or fails the backup.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What to do with a live database found in a file backup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LiveDbPolicy {
    /// Back it up as it is and record a warning naming it.
    #[default]
    Warn,
    /// Leave it out (recorded as a warning).
    Skip,
    /// Fail the backup: nothing is committed.
    Fail,
}

impl std::str::FromStr for LiveDbPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "warn" => Ok(LiveDbPolicy::Warn),
            "skip" => Ok(LiveDbPolicy::Skip),
            "fail" => Ok(LiveDbPolicy::Fail),
            _ => Err(format!("{s:?} is not one of warn, skip, fail")),
        }
    }
}

/// A live database found while walking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveDatabase {
    /// "PostgreSQL cluster", "MariaDB data directory", "SQLite database".
    pub kind: &'static str,
    /// The data directory, or the SQLite file.
    pub path: PathBuf,
    /// The process that has it open, where known ("postgres, pid 1234").
    pub process: Option<String>,
    /// The names in the directory that belong to it: all of them for a data directory, the
    /// file and its `-wal`, `-shm`, `-journal` for SQLite.
    pub names: Vec<OsString>,
    whole_dir: bool,
    engine: &'static str,
}

impl LiveDatabase {
    /// True if the whole directory is the database (a data directory).
    pub fn whole_dir(&self) -> bool {
        self.whole_dir
    }

    /// The message for the snapshot's warnings and the error.
    pub fn message(&self) -> String {
        let by = self.process.as_ref().map(|p| format!(" ({p})")).unwrap_or_default();
        let how = match self.engine {
            "sqlite" => format!("`arca db backup sqlite {}`", self.path.display()),
            e => format!("`arca db backup {e}` (in a job: `source = \"{e}\"`)"),
        };
        format!(
            "{} {} is in use{by}: a copy of its files taken while it runs is not a usable backup; back it up with {how}, or stop it first (`--live-databases skip` leaves it out, `fail` stops the backup)",
            self.kind,
            self.path.display()
        )
    }
}

/// Finds live databases; what running processes hold is looked up once per backup.
#[derive(Default)]
pub struct Detector {
    /// Data directories of running MariaDB/MySQL servers, with their process.
    mysql_dirs: Vec<(PathBuf, String)>,
}

impl Detector {
    /// Look at the running processes once.
    pub fn new() -> Detector {
        let mut mysql_dirs = vec![];
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for p in procs.flatten() {
                let pid = p.file_name();
                if !pid.as_bytes().iter().all(u8::is_ascii_digit) {
                    continue;
                }
                let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
                let comm = comm.trim();
                if comm == "mariadbd" || comm == "mysqld" {
                    if let Ok(cwd) = std::fs::read_link(p.path().join("cwd")) {
                        mysql_dirs.push((cwd, format!("{comm}, pid {}", pid.to_string_lossy())));
                    }
                }
            }
        }
        Detector { mysql_dirs }
    }

    /// The live databases in directory `dir`, whose entries are `names`.
    pub fn in_dir(&self, dir: &Path, names: &[OsString]) -> Vec<LiveDatabase> {
        let has = |n: &str| names.iter().any(|x| x.as_bytes() == n.as_bytes());
        let mut out = vec![];
        if has("PG_VERSION") && has("postmaster.pid") {
            if let Some(process) = running_postmaster(&dir.join("postmaster.pid")) {
                out.push(LiveDatabase {
                    kind: "PostgreSQL cluster",
                    path: dir.to_path_buf(),
                    process: Some(process),
                    names: names.to_vec(),
                    whole_dir: true,
                    engine: "postgres",
                });
            }
        }
        // (Resolved only when a server runs: most backups walk many directories and none.)
        let canonical = || std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let server = if self.mysql_dirs.is_empty() { None } else { Some(canonical()) };
        if let Some((_, process)) = server.and_then(|c| self.mysql_dirs.iter().find(|(d, _)| *d == c)) {
            out.push(LiveDatabase {
                kind: "MariaDB data directory",
                path: dir.to_path_buf(),
                process: Some(process.clone()),
                names: names.to_vec(),
                whole_dir: true,
                engine: "mariadb",
            });
        }
        for n in names {
            let b = n.as_bytes();
            let Some(base) = b.strip_suffix(b"-wal").or_else(|| b.strip_suffix(b"-journal")) else { continue };
            if base.is_empty() || !names.iter().any(|x| x.as_bytes() == base) {
                continue;
            }
            let side = dir.join(n);
            let live_log = b.ends_with(b"-journal") || std::fs::metadata(&side).is_ok_and(|m| m.len() > 0);
            let db = dir.join(std::ffi::OsStr::from_bytes(base));
            if !live_log || !is_sqlite(&db) {
                continue;
            }
            let related: Vec<OsString> = ["", "-wal", "-shm", "-journal"]
                .iter()
                .map(|s| OsString::from(std::ffi::OsStr::from_bytes(&[base, s.as_bytes()].concat())))
                .filter(|x| names.contains(x))
                .collect();
            if out.iter().any(|l: &LiveDatabase| l.path == db) {
                continue;
            }
            out.push(LiveDatabase {
                kind: "SQLite database",
                path: db,
                process: None,
                names: related,
                whole_dir: false,
                engine: "sqlite",
            });
        }
        out
    }
}

/// "postgres, pid N" if the pid file names a running process.
fn running_postmaster(pid_file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    let pid: u32 = text.lines().next()?.trim().parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(format!("{}, pid {pid}", comm.trim()))
}

/// True if `path` starts with SQLite's file header.
fn is_sqlite(path: &Path) -> bool {
    let mut head = [0u8; 16];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && &head == b"SQLite format 3\0"
}

/// The names of live databases' files `live` says to leave out of `names`.
pub fn left_out(live: &[LiveDatabase]) -> HashSet<OsString> {
    live.iter().flat_map(|l| l.names.iter().cloned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sqlite_file_with_a_live_wal_is_found_and_a_stale_pid_file_is_not_a_cluster() {
        let d = tempfile::tempdir().unwrap();
        let mut head = b"SQLite format 3\0".to_vec();
        head.resize(4096, 0);
        std::fs::write(d.path().join("app.db"), &head).unwrap();
        std::fs::write(d.path().join("app.db-wal"), b"frames").unwrap();
        std::fs::write(d.path().join("app.db-shm"), b"index").unwrap();
        std::fs::write(d.path().join("other.db"), &head).unwrap();
        std::fs::write(d.path().join("other.db-wal"), b"").unwrap();
        std::fs::write(d.path().join("PG_VERSION"), b"15\n").unwrap();
        std::fs::write(d.path().join("postmaster.pid"), b"999999999\n").unwrap();
        let names: Vec<OsString> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        let found = Detector::default().in_dir(d.path(), &names);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, d.path().join("app.db"));
        assert_eq!(left_out(&found).len(), 3, "the file, its -wal and its -shm");
        assert!(found[0].message().contains("arca db backup sqlite"));
    }
}
