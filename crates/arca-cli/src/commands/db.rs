//! `arca db`: database sources (crates/arca-db) on the command line.

use crate::cli::{Cli, DbBackupArgs, DbCommand, DbEngine, DbRestoreArgs, DbServer};
use crate::context;
use crate::output::Output;
use crate::text::size;
use anyhow::{anyhow, bail, Result};
use arca_db::layout::{self, Engine, Entry};
use arca_db::{mariadb, postgres, sqlite};
use arca_ops::backup::BackupRequest;
use arca_ops::source::Source;
use arca_repo::snapshots::{self as snaps, SnapshotEntry};
use arca_repo::Repository;

pub fn run(cli: &Cli, out: &Output, c: &DbCommand) -> Result<i32> {
    match c {
        DbCommand::Backup(a) => backup(cli, out, a),
        DbCommand::List { snapshot } => {
            let repo = context::open(cli, out)?;
            list(out, &repo, snapshot.as_deref().unwrap_or("latest"))
        }
        DbCommand::Restore(a) => restore(cli, out, a),
    }
}

fn engine(e: DbEngine) -> Engine {
    match e {
        DbEngine::Postgres => Engine::Postgres,
        DbEngine::Mariadb => Engine::Mariadb,
        DbEngine::Sqlite => Engine::Sqlite,
    }
}

fn pg(s: &DbServer) -> postgres::Connection {
    postgres::Connection {
        host: s.db_host.clone(),
        port: s.db_port,
        user: s.db_user.clone(),
        bin: s.pg_bin.clone(),
        maintenance_db: None,
    }
}

fn my(s: &DbServer) -> mariadb::Connection {
    mariadb::Connection {
        socket: s.db_socket.clone(),
        host: s.db_host.clone(),
        port: s.db_port,
        user: s.db_user.clone(),
    }
}

fn backup(cli: &Cli, out: &Output, a: &DbBackupArgs) -> Result<i32> {
    if a.engine != DbEngine::Sqlite && !a.files.is_empty() {
        bail!("files are named for sqlite only; {} databases are chosen with --database", engine(a.engine).dir());
    }
    if a.engine == DbEngine::Sqlite && !a.databases.is_empty() {
        bail!("SQLite databases are files: name them (arca db backup sqlite /srv/app/app.db)");
    }
    let mut source: Box<dyn Source> = match a.engine {
        DbEngine::Postgres => Box::new(postgres::Dump::new(pg(&a.server), a.databases.clone())),
        DbEngine::Mariadb => Box::new(mariadb::Dump::new(my(&a.server), a.databases.clone())),
        DbEngine::Sqlite => Box::new(sqlite::Copy::new(&a.files, None)?),
    };
    let req = BackupRequest {
        host: a.host.clone(),
        tags: a.tags.clone(),
        threads: cli.threads,
        class: a.class.clone(),
        ..Default::default()
    };
    super::backup::store(cli, out, source.as_mut(), &req, a.dry_run, &[], None)
}

/// The database snapshot `spec` names (`latest`: the latest database snapshot).
fn database_snapshot(repo: &Repository, out: &Output, spec: &str) -> Result<SnapshotEntry> {
    let all: Vec<SnapshotEntry> = super::all_snapshots(repo, out)?
        .into_iter()
        .filter(|s| s.snapshot.kind == arca_format::SnapshotKind::Database)
        .collect();
    if all.is_empty() {
        bail!("the repository holds no database snapshot (`arca db backup` makes them)");
    }
    Ok(snaps::resolve(&all, spec, &Default::default())?)
}

fn list(out: &Output, repo: &Repository, spec: &str) -> Result<i32> {
    let snap = database_snapshot(repo, out, spec)?;
    let entries = layout::entries(repo, &snap.snapshot)?;
    if out.json {
        out.json_doc(&serde_json::json!({"snapshot": snap.id.to_hex(), "time": snap.snapshot.time, "source": snap.snapshot.source, "entries": entries}));
        return Ok(crate::exit::OK);
    }
    out.line(format!("snapshot {} of {} ({})", snap.id.short(), snap.snapshot.hostname, snap.snapshot.time));
    out.line(format!("{:<9} {:<40} {:>10}", "engine", "database", "size"));
    for e in &entries {
        let name = if e.global { format!("({})", e.database) } else { e.database.clone() };
        out.line(format!("{:<9} {:<40} {:>10}", e.engine.dir(), name, size(e.size)));
    }
    Ok(crate::exit::OK)
}

/// The entry `a` asks for among `entries`.
fn chosen<'a>(entries: &'a [Entry], a: &DbRestoreArgs) -> Result<&'a Entry> {
    let engines: std::collections::BTreeSet<Engine> = entries.iter().map(|e| e.engine).collect();
    let eng = match (a.engine, engines.len()) {
        (Some(e), _) => engine(e),
        (None, 1) => *engines.iter().next().ok_or_else(|| anyhow!("the snapshot holds no database"))?,
        (None, 0) => bail!("the snapshot holds no database"),
        (None, _) => bail!(
            "the snapshot holds databases of {}: choose one with --engine",
            engines.iter().map(|e| e.dir()).collect::<Vec<_>>().join(" and ")
        ),
    };
    if a.globals {
        if eng != Engine::Postgres {
            bail!("--globals restores PostgreSQL's roles and tablespaces");
        }
        return entries
            .iter()
            .find(|e| e.engine == eng && e.global)
            .ok_or_else(|| anyhow!("the snapshot holds no PostgreSQL globals"));
    }
    let Some(db) = &a.database else {
        let names: Vec<&str> =
            entries.iter().filter(|e| e.engine == eng && !e.global).map(|e| e.database.as_str()).collect();
        bail!("name the database to restore with --database (the snapshot has: {})", names.join(", "));
    };
    Ok(layout::find(entries, eng, db)?)
}

fn restore(cli: &Cli, out: &Output, a: &DbRestoreArgs) -> Result<i32> {
    let (repo, _lock) = context::open_session(cli, out, context::Session::Read("db restore"))?;
    if a.list {
        return list(out, &repo, &a.snapshot);
    }
    let snap = database_snapshot(&repo, out, &a.snapshot)?;
    let entries = layout::entries(&repo, &snap.snapshot)?;
    let e = chosen(&entries, a)?;
    if e.engine != Engine::Postgres && a.clean {
        bail!("--clean is for PostgreSQL (a MariaDB dump drops and recreates each table itself)");
    }
    if e.engine != Engine::Sqlite && a.target.is_some() {
        bail!("--target is for SQLite; a server database goes into --into NAME");
    }
    let what = match e.engine {
        Engine::Postgres if e.global => {
            postgres::restore_globals(&repo, e, &pg(&a.server))?;
            "PostgreSQL roles and tablespaces".to_string()
        }
        Engine::Postgres => {
            let opts = postgres::RestoreOptions { into: a.into.clone(), create: a.create, clean: a.clean };
            let into = postgres::restore(&repo, e, &pg(&a.server), &opts)?;
            format!("PostgreSQL database {into:?}")
        }
        Engine::Mariadb => {
            let into = mariadb::restore(&repo, e, &my(&a.server), a.into.as_deref(), a.create)?;
            format!("MariaDB database {into:?}")
        }
        Engine::Sqlite => {
            if a.into.is_some() || a.create {
                bail!("an SQLite database is restored to a file: give --target FILE");
            }
            let target = a.target.clone().unwrap_or_else(|| std::path::PathBuf::from(&e.database));
            sqlite::restore(&repo, e, &target)?;
            format!("SQLite database {} (integrity check ok)", target.display())
        }
    };
    if out.json {
        out.json_doc(&serde_json::json!({"result": "restored", "snapshot": snap.id.to_hex(), "engine": e.engine, "database": e.database, "size": e.size, "into": what}));
    } else {
        out.info(format!("restored {} ({}) from snapshot {} into {what}", e.path, size(e.size), snap.id.short()));
    }
    Ok(crate::exit::OK)
}
