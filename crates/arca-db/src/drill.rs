//! Restore drills (`arca db verify`): each database of a snapshot is restored into a
//! throw-away instance (a PostgreSQL cluster or MariaDB server in a temporary directory, on a
//! free port or a private socket; a temporary SQLite file), which is started and checked with
//! the engine's own checker (`pg_amcheck`, `mariadb-check`, `PRAGMA integrity_check`). What
//! "the backup restores and the database opens" means, tested rather than assumed.

use crate::layout::{Engine, Entry};
use crate::physical::PGDATA;
use crate::{mariadb, postgres, sqlite, tool};
use crate::{DbError, DbResult};
use arca_repo::Repository;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The result of one drill.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Drill {
    pub engine: String,
    pub database: String,
    pub ok: bool,
    /// What the checker said (or why it failed).
    pub detail: String,
    pub seconds: f64,
}

/// Where PostgreSQL's server programs are: `given`, or the newest of Debian's
/// `/usr/lib/postgresql/*/bin`, or PATH.
pub fn pg_bin(given: Option<&Path>) -> Option<PathBuf> {
    if let Some(g) = given {
        return Some(g.to_path_buf());
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p): &(u32, PathBuf)| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

fn free_port() -> DbResult<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|source| DbError::Io { path: "127.0.0.1:0".into(), source })?;
    Ok(l.local_addr().map_err(|source| DbError::Io { path: "127.0.0.1:0".into(), source })?.port())
}

/// As root, the servers run as their own user (they refuse root).
fn as_user(user: &str, program: &Path) -> Command {
    if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", user, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A temporary directory the server's user owns.
fn scratch_dir(prefix: &str, user: &str) -> DbResult<tempfile::TempDir> {
    let d = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/var/tmp")
        .map_err(|source| DbError::Io { path: "/var/tmp".into(), source })?;
    if nix::unistd::geteuid().is_root() {
        let u = nix::unistd::User::from_name(user)
            .ok()
            .flatten()
            .ok_or_else(|| DbError::Invalid(format!("no user {user} to run the throw-away server as")))?;
        nix::unistd::chown(d.path(), Some(u.uid), Some(u.gid))
            .map_err(|e| DbError::Io { path: d.path().to_path_buf(), source: e.into() })?;
    }
    Ok(d)
}

/// A throw-away PostgreSQL cluster, stopped and removed when dropped.
struct ScratchPg {
    dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
}

impl ScratchPg {
    /// A new cluster (`data: None`: made by initdb) or one restored into `data`, started.
    fn start(bin: &Path, dir: tempfile::TempDir, data: Option<PathBuf>) -> DbResult<ScratchPg> {
        let data = match data {
            Some(d) => d,
            None => {
                let d = dir.path().join("data");
                let mut c = as_user("postgres", &bin.join("initdb"));
                c.arg("-D").arg(&d).args(["-A", "trust", "-U", "postgres", "--no-sync"]);
                tool::output(c, "initdb", "install PostgreSQL's server (Debian: postgresql)")?;
                d
            }
        };
        let port = free_port()?;
        // A socket in its private directory only (trust authentication must not reach anyone
        // else), and no archiving: a restored cluster comes up as a primary on the original's
        // timeline, and its WAL must never reach the original's archive.
        let opts = format!(
            "-p {port} -k {} -c listen_addresses='' -c fsync=off -c archive_mode=off -c archive_command=''",
            dir.path().display()
        );
        let mut c = as_user("postgres", &bin.join("pg_ctl"));
        c.arg("-D").arg(&data).args(["-w", "-t", "120", "-l"]).arg(dir.path().join("log")).args(["-o", &opts, "start"]);
        let pg = ScratchPg { dir, data, bin: bin.to_path_buf(), port };
        if let Err(e) = tool::output(c, "pg_ctl", "install PostgreSQL's server (Debian: postgresql)") {
            let log = std::fs::read_to_string(pg.dir.path().join("log")).unwrap_or_default();
            return Err(DbError::Tool(arca_ops::tool::ToolError::Failed {
                program: "pg_ctl start".into(),
                status: e.to_string(),
                stderr: log,
            }));
        }
        Ok(pg)
    }

    fn conn(&self) -> postgres::Connection {
        postgres::Connection {
            host: Some(self.dir.path().display().to_string()),
            port: Some(self.port),
            user: Some("postgres".into()),
            bin: Some(self.bin.clone()),
            maintenance_db: None,
        }
    }

    /// `pg_amcheck` of every database (heap and B-tree indexes), installing amcheck first.
    fn amcheck(&self) -> DbResult<String> {
        let mut c = Command::new(self.bin.join("pg_amcheck"));
        c.arg("-h").arg(self.dir.path());
        c.args([
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "--no-password",
            "--all",
            "--install-missing",
            "--heapallindexed",
        ]);
        let said = tool::output(c, "pg_amcheck", "install PostgreSQL's client tools")?;
        Ok(if said.trim().is_empty() {
            "pg_amcheck --all: no corruption found".into()
        } else {
            said.trim().to_string()
        })
    }
}

impl Drop for ScratchPg {
    fn drop(&mut self) {
        let mut c = as_user("postgres", &self.bin.join("pg_ctl"));
        c.arg("-D").arg(&self.data).args(["-m", "immediate", "-w", "stop"]);
        let _ = c.output();
    }
}

/// A throw-away MariaDB server on a private socket, stopped when dropped.
struct ScratchMy {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    child: std::process::Child,
}

impl ScratchMy {
    fn start() -> DbResult<ScratchMy> {
        let dir = scratch_dir("arca-drill-my-", "mysql")?;
        let data = dir.path().join("data");
        let mut c = Command::new("mariadb-install-db");
        c.args(["--no-defaults", "--user=mysql", "--auth-root-authentication-method=socket", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()));
        tool::output(c, "mariadb-install-db", "install MariaDB's server (Debian: mariadb-server)")?;
        let socket = dir.path().join("s.sock");
        let child = Command::new("mariadbd")
            .args(["--no-defaults", "--skip-networking", "--user=mysql"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!("--log-error={}", dir.path().join("err").display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|source| DbError::Tool(arca_ops::tool::ToolError::Start { program: "mariadbd".into(), source }))?;
        let my = ScratchMy { _dir: dir, socket, child };
        let conn = my.conn();
        let start = Instant::now();
        while conn.query("SELECT 1").is_err() {
            if start.elapsed() > Duration::from_secs(120) {
                return Err(DbError::Tool(arca_ops::tool::ToolError::Failed {
                    program: "mariadbd".into(),
                    status: "not ready after 120 s".into(),
                    stderr: String::new(),
                }));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(my)
    }

    fn conn(&self) -> mariadb::Connection {
        mariadb::Connection { socket: Some(self.socket.clone()), ..Default::default() }
    }
}

impl Drop for ScratchMy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Drill `entries` (those of one snapshot; `physical`: whether it holds `/pgdata`), each in
/// its own throw-away instance; a failure is a result, not an error.
pub fn verify(
    repo: &Repository,
    snapshot: &arca_format::Snapshot,
    entries: &[Entry],
    pg: Option<&Path>,
) -> DbResult<Vec<Drill>> {
    let mut out = vec![];
    let physical = snapshot.source.get("engine").map(String::as_str) == Some("postgresql-physical");
    if physical {
        out.push(timed("postgres-physical", "cluster", || verify_physical(repo, snapshot, pg)));
    }
    let pg_globals = entries.iter().find(|e| e.engine == Engine::Postgres && e.global);
    for e in entries.iter().filter(|e| !e.global) {
        let drill = match e.engine {
            Engine::Postgres => timed("postgres", &e.database, || verify_pg_dump(repo, e, pg_globals, pg)),
            Engine::Mariadb => timed("mariadb", &e.database, || verify_mariadb(repo, e)),
            Engine::Sqlite => timed("sqlite", &e.database, || {
                let d = tempfile::tempdir().map_err(|source| DbError::Io { path: std::env::temp_dir(), source })?;
                sqlite::restore(repo, e, &d.path().join("drill.db"))?;
                Ok("PRAGMA integrity_check: ok".into())
            }),
        };
        out.push(drill);
    }
    Ok(out)
}

fn timed(engine: &str, database: &str, f: impl FnOnce() -> DbResult<String>) -> Drill {
    let started = Instant::now();
    let (ok, detail) = match f() {
        Ok(d) => (true, d),
        Err(e) => (false, e.to_string()),
    };
    Drill { engine: engine.into(), database: database.into(), ok, detail, seconds: started.elapsed().as_secs_f64() }
}

fn need_pg(pg: Option<&Path>) -> DbResult<PathBuf> {
    pg_bin(pg).ok_or_else(|| {
        DbError::Tool(arca_ops::tool::ToolError::Missing {
            program: "initdb".into(),
            hint: "a drill needs PostgreSQL's server (Debian: postgresql), or --pg-bin",
        })
    })
}

fn verify_pg_dump(repo: &Repository, e: &Entry, globals: Option<&Entry>, pg: Option<&Path>) -> DbResult<String> {
    let bin = need_pg(pg)?;
    let server = ScratchPg::start(&bin, scratch_dir("arca-drill-pg-", "postgres")?, None)?;
    let conn = server.conn();
    if let Some(g) = globals {
        // Roles first, so ownership and grants restore; a role that exists (postgres) is fine.
        let _ = postgres::restore_globals(repo, g, &conn);
    }
    let opts = postgres::RestoreOptions { into: Some("drill".into()), create: true, clean: false };
    postgres::restore(repo, e, &conn, &opts)?;
    let tables = conn.query("drill", "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname IN ('pg_catalog', 'information_schema'))")?;
    Ok(format!("restored ({} tables); {}", tables.trim(), server.amcheck()?))
}

fn verify_physical(repo: &Repository, snapshot: &arca_format::Snapshot, pg: Option<&Path>) -> DbResult<String> {
    let bin = need_pg(pg)?;
    let dir = scratch_dir("arca-drill-pg-", "postgres")?;
    let data = dir.path().join("data");
    let found = arca_repo::treewalk::lookup(repo, &snapshot.tree, PGDATA.as_bytes())?
        .ok_or_else(|| DbError::NotInSnapshot(format!("the snapshot holds no /{PGDATA}")))?;
    let opts = arca_fs::RestoreOptions {
        target: data.clone(),
        includes: None,
        excludes: None,
        verify: false,
        set_owner: nix::unistd::geteuid().is_root(),
        overwrite: Default::default(),
        delete: false,
        dry_run: false,
        reflink_from: None,
        threads: 2,
        read_ahead: 1,
        base: format!("/{PGDATA}").into_bytes(),
    };
    let report = arca_fs::restore(repo, found, &opts, &arca_repo::events::Quiet)?;
    if !report.errors.is_empty() {
        return Err(DbError::Invalid(format!(
            "the data directory did not restore whole ({} errors)",
            report.errors.len()
        )));
    }
    // The base backup's own WAL makes it consistent: no archive needed to start it.
    let server = ScratchPg::start(&bin, dir, Some(data))?;
    let dbs = server.conn().databases()?;
    Ok(format!("started ({} databases); {}", dbs.len(), server.amcheck()?))
}

fn verify_mariadb(repo: &Repository, e: &Entry) -> DbResult<String> {
    let server = ScratchMy::start()?;
    let conn = server.conn();
    mariadb::restore(repo, e, &conn, Some("drill"), true)?;
    let mut c = Command::new("mariadb-check");
    c.arg(format!("--socket={}", server.socket.display())).args(["--check", "--databases", "drill"]);
    let said = tool::output(c, "mariadb-check", "install MariaDB's client tools")?;
    let bad: Vec<&str> = said.lines().filter(|l| !l.trim_end().ends_with("OK") && !l.trim().is_empty()).collect();
    if !bad.is_empty() {
        return Err(DbError::Tool(arca_ops::tool::ToolError::Failed {
            program: "mariadb-check".into(),
            status: "tables not OK".into(),
            stderr: bad.join("; "),
        }));
    }
    Ok(format!("restored; mariadb-check: {} tables OK", said.lines().filter(|l| l.trim_end().ends_with("OK")).count()))
}

/// One drill as recorded in the state directory (`drills.jsonl`, a JSON object per line).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// RFC 3339 UTC.
    pub time: String,
    pub repository: String,
    pub snapshot: String,
    #[serde(flatten)]
    pub drill: Drill,
}

/// Append `drills` of `snapshot` in repository `repo_id` to `dir`'s record.
pub fn record(dir: &Path, repo_id: &str, snapshot: &str, drills: &[Drill]) -> DbResult<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir).map_err(|source| DbError::Io { path: dir.to_path_buf(), source })?;
    let file = dir.join("drills.jsonl");
    let io = |source| DbError::Io { path: file.clone(), source };
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&file).map_err(io)?;
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for d in drills {
        let r = Record { time: time.clone(), repository: repo_id.into(), snapshot: snapshot.into(), drill: d.clone() };
        let line = serde_json::to_string(&r).map_err(|e| DbError::Invalid(e.to_string()))?;
        writeln!(f, "{line}").map_err(io)?;
    }
    f.sync_all().map_err(io)
}

/// The last drill of each database (repository, engine, database) recorded in `dir`.
pub fn last(dir: &Path) -> Vec<Record> {
    let text = std::fs::read_to_string(dir.join("drills.jsonl")).unwrap_or_default();
    let mut by: std::collections::BTreeMap<(String, String, String), Record> = Default::default();
    for r in text.lines().filter_map(|l| serde_json::from_str::<Record>(l).ok()) {
        by.insert((r.repository.clone(), r.drill.engine.clone(), r.drill.database.clone()), r);
    }
    by.into_values().collect()
}
