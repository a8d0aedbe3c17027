//! MariaDB and MySQL, logical: one `mariadb-dump --single-transaction` per database (with its
//! routines, events and triggers) and the users and grants, each streamed straight into the
//! repository; restore through the `mariadb` client.
//!
//! Connection settings are the client's own (`~/.my.cnf`, `MYSQL_PWD`), which arca passes
//! through, or [`Connection`]'s.

use crate::layout::{self, Builder, Engine, Entry};
use crate::source::Dumper;
use crate::tool;
use crate::{DbError, DbResult};
use arca_repo::{BlobWriter, Cancel, Events, Repository};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

const HINT: &str = "install MariaDB's client tools (Debian: mariadb-client)";

/// Schemas of the server itself: never dumped as databases (users and grants are dumped on
/// their own).
const SYSTEM_SCHEMAS: &[&str] = &["information_schema", "performance_schema", "sys", "mysql"];

/// Where and as whom to connect; unset fields leave the client's option files alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Connection {
    pub socket: Option<PathBuf>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
}

impl Connection {
    pub(crate) fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        if let Some(s) = &self.socket {
            c.arg(format!("--socket={}", s.display()));
        }
        if let Some(h) = &self.host {
            c.arg(format!("--host={h}"));
        }
        if let Some(p) = self.port {
            c.arg(format!("--port={p}"));
        }
        if let Some(u) = &self.user {
            c.arg(format!("--user={u}"));
        }
        c
    }

    pub(crate) fn describe(&self) -> String {
        match (&self.socket, &self.host) {
            (Some(s), _) => s.display().to_string(),
            (None, Some(h)) => format!("{h}:{}", self.port.unwrap_or(3306)),
            (None, None) => "the default socket".into(),
        }
    }

    /// Run `sql` and return its tab-separated rows without headers.
    pub fn query(&self, sql: &str) -> DbResult<String> {
        let mut c = self.command("mariadb");
        c.args(["--batch", "--skip-column-names", "-e", sql]);
        tool::output(c, "mariadb", HINT)
    }

    /// Every database but the server's own schemas.
    pub fn databases(&self) -> DbResult<Vec<String>> {
        Ok(self
            .query("SHOW DATABASES")?
            .lines()
            .filter(|l| !l.is_empty() && !SYSTEM_SCHEMAS.contains(l))
            .map(String::from)
            .collect())
    }
}

/// A backtick-quoted identifier.
fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A logical backup of a MariaDB or MySQL server.
pub struct Dump {
    conn: Connection,
    databases: Vec<String>,
}

impl Dump {
    pub fn new(conn: Connection, databases: Vec<String>) -> Dump {
        Dump { conn, databases }
    }
}

impl Dumper for Dump {
    fn paths(&self) -> Vec<String> {
        vec![format!("/{}", Engine::Mariadb.dir())]
    }

    fn dump(
        &mut self,
        b: &mut Builder,
        writer: &BlobWriter,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> DbResult<BTreeMap<String, String>> {
        let version = self.conn.query("SELECT VERSION()")?.trim().to_string();
        let all = self.conn.databases()?;
        let chosen = layout::choose(all, &self.databases, &format!("MariaDB at {}", self.conn.describe()))?;
        let mut c = self.conn.command("mariadb-dump");
        c.args(["--system=users", "--insert-ignore"]);
        tool::read_output(c, "mariadb-dump", HINT, |out| {
            b.add_stream(writer, Engine::Mariadb, &[b"@system.sql"], out, events, cancel).map(drop)
        })?;
        for db in &chosen {
            let file = layout::file_name(Engine::Mariadb, db)?;
            let mut c = self.conn.command("mariadb-dump");
            // One transaction: a consistent view of InnoDB tables while writers go on. No
            // CREATE DATABASE or USE in the dump, so it restores into any name.
            c.args(["--single-transaction", "--routines", "--events", "--triggers", "--hex-blob", "--"]).arg(db);
            tool::read_output(c, "mariadb-dump", HINT, |out| {
                b.add_stream(writer, Engine::Mariadb, &[file.as_bytes()], out, events, cancel).map(drop)
            })?;
        }
        Ok(BTreeMap::from([
            ("engine".to_string(), "mariadb".to_string()),
            ("server".to_string(), self.conn.describe()),
            ("server_version".to_string(), version),
            ("databases".to_string(), chosen.join(",")),
            ("format".to_string(), "mariadb-dump --single-transaction".to_string()),
        ]))
    }
}

/// Restore `entry` into the server `conn` reaches, into `into` (default: its own name),
/// creating that database first if `create`; returns the database it went into.
pub fn restore(
    repo: &Repository,
    entry: &Entry,
    conn: &Connection,
    into: Option<&str>,
    create: bool,
) -> DbResult<String> {
    if entry.engine != Engine::Mariadb || entry.global {
        return Err(DbError::Invalid(format!("{} is not a MariaDB database dump", entry.path)));
    }
    let into = into.unwrap_or(&entry.database).to_string();
    if create {
        conn.query(&format!("CREATE DATABASE {}", ident(&into)))?;
    }
    let mut c = conn.command("mariadb");
    c.args(["--batch", "--database"]).arg(&into);
    tool::write_input(c, "mariadb", HINT, |stdin| {
        arca_fs::restore::dump(repo, &entry.node, stdin).map(drop).map_err(DbError::from)
    })?;
    Ok(into)
}

/// The top-level directory of a MariaDB physical backup in a snapshot.
pub const PHYSICAL: &str = "mariadb-physical";

/// Its one file: mariadb-backup's xbstream.
pub const XBSTREAM: &str = "backup.xbstream";

const BACKUP_HINT: &str = "install mariadb-backup (Debian: mariadb-backup)";

/// A physical backup of a running MariaDB server: `mariadb-backup --backup --stream=xbstream`
/// streamed into the snapshot's `/mariadb-physical/backup.xbstream` (consistent for InnoDB
/// without stopping writers; `db restore --target DIR` unpacks and prepares it).
pub struct PhysicalBackup {
    conn: Connection,
}

impl PhysicalBackup {
    pub fn new(conn: Connection) -> PhysicalBackup {
        PhysicalBackup { conn }
    }
}

impl Dumper for PhysicalBackup {
    fn paths(&self) -> Vec<String> {
        vec![format!("/{PHYSICAL}")]
    }

    fn dump(
        &mut self,
        b: &mut Builder,
        writer: &BlobWriter,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> DbResult<BTreeMap<String, String>> {
        let version = self.conn.query("SELECT VERSION()")?.trim().to_string();
        // mariadb-backup wants a directory for its own files even when it streams.
        let scratch = tempfile::Builder::new()
            .prefix("arca-mariabackup-")
            .tempdir()
            .map_err(|source| DbError::Io { path: std::env::temp_dir(), source })?;
        let mut c = self.conn.command("mariadb-backup");
        c.args(["--backup", "--stream=xbstream"]).arg(format!("--target-dir={}", scratch.path().display()));
        tool::read_output(c, "mariadb-backup", BACKUP_HINT, |out| {
            let node = arca_fs::backup::stream_node(XBSTREAM.as_bytes(), vec![], 0);
            b.add_file(writer, PHYSICAL, &[XBSTREAM.as_bytes()], node, out, events, cancel).map(drop)
        })?;
        Ok(BTreeMap::from([
            ("engine".to_string(), "mariadb-physical".to_string()),
            ("server".to_string(), self.conn.describe()),
            ("server_version".to_string(), version),
            ("format".to_string(), "mariadb-backup --stream=xbstream".to_string()),
        ]))
    }
}

/// Unpack a physical backup's stream into `target` (which must not exist, or be empty) and
/// prepare it (`mariadb-backup --prepare`): a data directory a server can start on.
pub fn restore_physical(repo: &Repository, node: &arca_format::Node, target: &std::path::Path) -> DbResult<()> {
    std::fs::create_dir_all(target).map_err(|source| DbError::Io { path: target.to_path_buf(), source })?;
    if std::fs::read_dir(target).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(DbError::Invalid(format!("{} is not empty: name a new directory", target.display())));
    }
    let mut c = Command::new("mbstream");
    c.arg("-x").arg("-C").arg(target);
    tool::write_input(c, "mbstream", BACKUP_HINT, |stdin| {
        arca_fs::restore::dump(repo, node, stdin).map(drop).map_err(DbError::from)
    })?;
    let mut c = Command::new("mariadb-backup");
    c.arg("--prepare").arg(format!("--target-dir={}", target.display()));
    tool::output(c, "mariadb-backup --prepare", BACKUP_HINT).map(drop)
}
