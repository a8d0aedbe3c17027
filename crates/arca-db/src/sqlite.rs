//! SQLite: a consistent copy of each database while writers go on (`VACUUM INTO`, one read
//! transaction, so neither a torn copy nor a copy that restarts under steady writes), never a
//! raw copy of a file with a live `-wal`. SQLite writes the copy to a file: it is made in a
//! private temporary directory, stored, and removed.

use crate::layout::{Builder, Engine, Entry};
use crate::source::Dumper;
use crate::tool;
use crate::{DbError, DbResult};
use arca_repo::{BlobWriter, Cancel, Events, Repository};
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const HINT: &str = "install the sqlite3 command-line tool (Debian: sqlite3)";

/// An SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Consistent copies of SQLite databases, as a snapshot of kind `database`.
pub struct Copy {
    paths: Vec<PathBuf>,
    /// Where the temporary copies go (default: the system's temporary directory).
    temp_dir: Option<PathBuf>,
}

impl Copy {
    /// `paths` are database files (made absolute here).
    pub fn new(paths: &[PathBuf], temp_dir: Option<PathBuf>) -> DbResult<Copy> {
        let mut abs = vec![];
        for p in paths {
            let a = std::fs::canonicalize(p).map_err(|source| DbError::Io { path: p.clone(), source })?;
            abs.push(a);
        }
        if abs.is_empty() {
            return Err(DbError::Invalid("name the SQLite database files to back up".into()));
        }
        Ok(Copy { paths: abs, temp_dir })
    }
}

impl Copy {
    /// What the snapshot records.
    fn recorded(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("engine".to_string(), "sqlite".to_string()),
            ("format".to_string(), "VACUUM INTO".to_string()),
        ])
    }
}

impl Dumper for Copy {
    fn paths(&self) -> Vec<String> {
        self.paths.iter().map(|p| p.display().to_string()).collect()
    }

    fn dump(
        &mut self,
        b: &mut Builder,
        writer: &BlobWriter,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> DbResult<BTreeMap<String, String>> {
        for db in &self.paths {
            let mut t = tempfile::Builder::new();
            t.prefix("arca-sqlite-").permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
            let tmp = match &self.temp_dir {
                Some(d) => t.tempdir_in(d),
                None => t.tempdir(),
            }
            .map_err(|source| DbError::Io { path: self.temp_dir.clone().unwrap_or_else(std::env::temp_dir), source })?;
            let copy = tmp.path().join("copy.db");
            let mut c = Command::new("sqlite3");
            // Wait for a writer's lock rather than fail at once; read only.
            c.args(["-bail", "-readonly", "-cmd", ".timeout 30000"])
                .arg(db)
                .arg(format!("VACUUM INTO {}", literal(&copy.to_string_lossy())));
            tool::output(c, "sqlite3", HINT)?;
            let f = std::fs::File::open(&copy).map_err(|source| DbError::Io { path: copy.clone(), source })?;
            let comps: Vec<&[u8]> = db
                .components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(n) => Some(n.as_bytes()),
                    _ => None,
                })
                .collect();
            b.add_stream(writer, Engine::Sqlite, &comps, f, events, cancel)?;
        }
        Ok(self.recorded())
    }
}

/// Write the database `entry` holds to `target` (which must not exist), then have SQLite
/// check it (`PRAGMA integrity_check`).
pub fn restore(repo: &Repository, entry: &Entry, target: &Path) -> DbResult<()> {
    if entry.engine != Engine::Sqlite {
        return Err(DbError::Invalid(format!("{} is not an SQLite database", entry.path)));
    }
    let io = |source| DbError::Io { path: target.to_path_buf(), source };
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(target).map_err(io)?;
    arca_fs::restore::dump(repo, &entry.node, &mut f)?;
    f.sync_all().map_err(io)?;
    let mut c = Command::new("sqlite3");
    c.args(["-bail", "-readonly"]).arg(target).arg("PRAGMA integrity_check");
    let said = tool::output(c, "sqlite3", HINT)?;
    if said.trim() != "ok" {
        return Err(DbError::Tool(arca_ops::tool::ToolError::Failed {
            program: "sqlite3".into(),
            status: "integrity check".into(),
            stderr: said.trim().to_string(),
        }));
    }
    Ok(())
}
