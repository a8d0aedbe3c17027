//! PostgreSQL, logical: `pg_dumpall --globals-only` and one `pg_dump --format=custom` per
//! database, each streamed straight into the repository; restore through `pg_restore`.
//!
//! Connection settings come from the usual libpq environment (`PGHOST`, `PGPORT`, `PGUSER`,
//! `PGPASSWORD`, `PGSERVICE`, `~/.pgpass`), which arca passes through, or from [`Connection`].

use crate::layout::{self, Builder, Engine, Entry};
use crate::source::Dumper;
use crate::tool;
use crate::{DbError, DbResult};
use arca_repo::{BlobWriter, Cancel, Events, Repository};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

const HINT: &str = "install PostgreSQL's client tools (Debian: postgresql-client), or give --pg-bin";

/// Where and as whom to connect; unset fields leave libpq's environment and defaults alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Connection {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    /// The directory of the PostgreSQL programs (default: PATH).
    pub bin: Option<PathBuf>,
    /// The database to connect to for listing the others (default: `postgres`).
    pub maintenance_db: Option<String>,
}

impl Connection {
    pub(crate) fn command(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.as_ref().map_or_else(|| PathBuf::from(program), |b| b.join(program)));
        if let Some(h) = &self.host {
            c.env("PGHOST", h);
        }
        if let Some(p) = self.port {
            c.env("PGPORT", p.to_string());
        }
        if let Some(u) = &self.user {
            c.env("PGUSER", u);
        }
        // No password prompt: a backup runs unattended (PGPASSWORD or ~/.pgpass give one).
        c.arg("--no-password");
        c
    }

    fn maintenance(&self) -> &str {
        self.maintenance_db.as_deref().unwrap_or("postgres")
    }

    /// Where it connects, for the snapshot's record.
    pub(crate) fn describe(&self) -> String {
        let host = self.host.clone().or_else(|| std::env::var("PGHOST").ok()).unwrap_or_else(|| "local socket".into());
        let port = self.port.map(|p| p.to_string()).or_else(|| std::env::var("PGPORT").ok()).unwrap_or("5432".into());
        format!("{host}:{port}")
    }

    /// Run `sql` with psql in `db` and return its unaligned, tuples-only output.
    pub fn query(&self, db: &str, sql: &str) -> DbResult<String> {
        let mut c = self.command("psql");
        c.args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"]).arg(conninfo(db)).args(["-c", sql]);
        tool::output(c, "psql", HINT)
    }

    /// The databases a dump of "all" takes: every one that accepts connections, templates aside.
    pub fn databases(&self) -> DbResult<Vec<String>> {
        let out = self.query(
            self.maintenance(),
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname",
        )?;
        Ok(out.lines().filter(|l| !l.is_empty()).map(String::from).collect())
    }

    /// The server's version (`server_version`).
    pub fn server_version(&self) -> DbResult<String> {
        Ok(self.query(self.maintenance(), "SHOW server_version")?.trim().to_string())
    }
}

/// A libpq connection string naming database `db` (quoted, so any name is just a name).
fn conninfo(db: &str) -> String {
    format!("dbname='{}'", db.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// An SQL identifier, quoted.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A logical backup of a PostgreSQL server: its globals and each database, as a snapshot of
/// kind `database`.
pub struct Dump {
    conn: Connection,
    /// Databases to dump (empty: all).
    databases: Vec<String>,
}

impl Dump {
    pub fn new(conn: Connection, databases: Vec<String>) -> Dump {
        Dump { conn, databases }
    }
}

impl Dumper for Dump {
    fn paths(&self) -> Vec<String> {
        vec![format!("/{}", Engine::Postgres.dir())]
    }

    fn dump(
        &mut self,
        b: &mut Builder,
        writer: &BlobWriter,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> DbResult<BTreeMap<String, String>> {
        let version = self.conn.server_version()?;
        let all = self.conn.databases()?;
        let chosen = layout::choose(all, &self.databases, &format!("PostgreSQL at {}", self.conn.describe()))?;
        let mut c = self.conn.command("pg_dumpall");
        c.args(["--globals-only", "-l"]).arg(self.conn.maintenance());
        tool::read_output(c, "pg_dumpall", HINT, |out| {
            b.add_stream(writer, Engine::Postgres, &[b"@globals.sql"], out, events, cancel).map(drop)
        })?;
        for db in &chosen {
            let file = layout::file_name(Engine::Postgres, db)?;
            let mut c = self.conn.command("pg_dump");
            // Uncompressed (arca compresses; a compressed dump would not deduplicate).
            c.args(["--format=custom", "--compress=0", "--dbname"]).arg(conninfo(db));
            tool::read_output(c, "pg_dump", HINT, |out| {
                b.add_stream(writer, Engine::Postgres, &[file.as_bytes()], out, events, cancel).map(drop)
            })?;
        }
        Ok(BTreeMap::from([
            ("engine".to_string(), "postgresql".to_string()),
            ("server".to_string(), self.conn.describe()),
            ("server_version".to_string(), version),
            ("databases".to_string(), chosen.join(",")),
            ("format".to_string(), "pg_dump --format=custom".to_string()),
        ]))
    }
}

/// How to restore one database.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// The database to restore into (default: the one it was dumped from).
    pub into: Option<String>,
    /// Create it first (it must not exist); otherwise it must exist.
    pub create: bool,
    /// Drop the objects the dump holds before recreating them (`pg_restore --clean
    /// --if-exists`), for restoring over a database that has them.
    pub clean: bool,
}

/// Restore `entry` (a database of a snapshot) into the server `conn` reaches; returns the
/// database it went into.
pub fn restore(repo: &Repository, entry: &Entry, conn: &Connection, opts: &RestoreOptions) -> DbResult<String> {
    if entry.engine != Engine::Postgres || entry.global {
        return Err(DbError::Invalid(format!("{} is not a PostgreSQL database dump", entry.path)));
    }
    let into = opts.into.clone().unwrap_or_else(|| entry.database.clone());
    if opts.create {
        conn.query(conn.maintenance(), &format!("CREATE DATABASE {}", ident(&into)))?;
    }
    let mut c = conn.command("pg_restore");
    // All or nothing: a failure leaves no half-restored database.
    c.args(["--exit-on-error", "--single-transaction", "--dbname"]).arg(conninfo(&into));
    if opts.clean {
        c.args(["--clean", "--if-exists"]);
    }
    tool::write_input(c, "pg_restore", HINT, |stdin| {
        arca_fs::restore::dump(repo, &entry.node, stdin).map(drop).map_err(DbError::from)
    })?;
    Ok(into)
}

/// Replay the roles and tablespaces of a snapshot (`@globals.sql`) with psql; statements
/// for what exists already fail and are reported, the rest go on.
pub fn restore_globals(repo: &Repository, entry: &Entry, conn: &Connection) -> DbResult<()> {
    let mut c = conn.command("psql");
    c.args(["-X", "-q", "-d"]).arg(conninfo(conn.maintenance())).args(["-f", "-"]);
    tool::write_input(c, "psql", HINT, |stdin| {
        arca_fs::restore::dump(repo, &entry.node, stdin).map(drop).map_err(DbError::from)
    })
}
