//! `arca db`: database sources (crates/arca-db) on the command line.

use crate::cli::{Cli, DbBackupArgs, DbCommand, DbEngine, DbForgetArgs, DbPitrArgs, DbRestoreArgs, DbServer};
use crate::context;
use crate::output::Output;
use crate::text::size;
use anyhow::{anyhow, bail, Context, Result};
use arca_db::layout::{self, Engine, Entry};
use arca_db::source::Database;
use arca_db::{mariadb, postgres, sqlite};
use arca_db::{pitr as recovery, wal};
use arca_ops::backup::BackupRequest;
use arca_ops::source::Source;
use arca_repo::snapshots::{self as snaps, SnapshotEntry};
use arca_repo::Repository;
use std::path::Path;

pub fn run(cli: &Cli, out: &Output, c: &DbCommand) -> Result<i32> {
    match c {
        DbCommand::Backup(a) => backup(cli, out, a),
        DbCommand::List { snapshot } => {
            let repo = context::open(cli, out)?;
            list(out, &repo, snapshot.as_deref().unwrap_or("latest"))
        }
        DbCommand::Restore(a) => restore(cli, out, a),
        DbCommand::Pitr(a) => pitr(cli, out, a),
        DbCommand::Coverage { system_identifier } => coverage(cli, out, system_identifier.as_deref()),
        DbCommand::Forget(a) => forget(cli, out, a),
        DbCommand::Verify { snapshot, database, pg_bin } => {
            verify(cli, out, snapshot.as_deref().unwrap_or("latest"), database.as_deref(), pg_bin.as_deref())
        }
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
    if let Some(pgdata) = &a.cold {
        return cold(cli, out, a, pgdata);
    }
    if a.physical && a.engine == DbEngine::Sqlite {
        bail!("--physical is PostgreSQL's base backup or MariaDB's mariadb-backup; SQLite's copy is always whole");
    }
    let mut source: Box<dyn Source> = match a.engine {
        DbEngine::Postgres if a.physical => Box::new(Database::new(arca_db::physical::BaseBackup::new(pg(&a.server)))),
        DbEngine::Mariadb if a.physical => Box::new(Database::new(mariadb::PhysicalBackup::new(my(&a.server)))),
        DbEngine::Postgres => Box::new(Database::new(postgres::Dump::new(pg(&a.server), a.databases.clone()))),
        DbEngine::Mariadb => Box::new(Database::new(mariadb::Dump::new(my(&a.server), a.databases.clone()))),
        DbEngine::Sqlite => Box::new(Database::new(sqlite::Copy::new(&a.files, None)?)),
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
        // Archived WAL files are snapshots too, but never what `latest` means here.
        .filter(|s| s.snapshot.source.get("engine").map(String::as_str) != Some("postgresql-wal"))
        .collect();
    if all.is_empty() {
        bail!("the repository holds no database snapshot (`arca db backup` makes them)");
    }
    Ok(snaps::resolve(&all, spec, &Default::default())?)
}

fn list(out: &Output, repo: &Repository, spec: &str) -> Result<i32> {
    let snap = database_snapshot(repo, out, spec)?;
    if let Some(engine) = physical_engine(&snap) {
        let stats = &snap.snapshot.summary;
        if out.json {
            out.json_doc(&serde_json::json!({"snapshot": snap.id.to_hex(), "time": snap.snapshot.time, "source": snap.snapshot.source, "physical": engine, "bytes": stats.total_bytes, "files": stats.files_new}));
        } else {
            out.line(format!(
                "snapshot {} of {} ({}): a physical backup ({engine}), {} in {} files",
                snap.id.short(),
                snap.snapshot.hostname,
                snap.snapshot.time,
                size(stats.total_bytes),
                stats.files_new
            ));
        }
        return Ok(crate::exit::OK);
    }
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

/// The engine a physical backup was made by (`postgresql-physical`, `mariadb-physical`).
fn physical_engine(snap: &SnapshotEntry) -> Option<&str> {
    snap.snapshot.source.get("engine").map(String::as_str).filter(|e| e.ends_with("-physical"))
}

/// Restore a physical backup into `--target`, if `snap` is one.
fn restore_physical(out: &Output, repo: &Repository, snap: &SnapshotEntry, a: &DbRestoreArgs) -> Result<Option<i32>> {
    let Some(engine) = physical_engine(snap) else { return Ok(None) };
    let Some(target) = &a.target else {
        bail!(
            "snapshot {} is a physical backup ({engine}): give --target DIR for the data directory to lay out",
            snap.id.short()
        );
    };
    match engine {
        "mariadb-physical" => {
            let path = format!("/{}/{}", mariadb::PHYSICAL, mariadb::XBSTREAM);
            let Some(arca_repo::treewalk::Found::Node(node)) = arca_repo::treewalk::lookup(repo, &snap.snapshot.tree, path.as_bytes())? else {
                bail!("snapshot {} holds no {path}", snap.id.short());
            };
            mariadb::restore_physical(repo, &node, target)?;
            out.info(format!(
                "prepared a MariaDB data directory in {} from snapshot {}: chown -R mysql: it, then start mariadbd --datadir={0}",
                target.display(),
                snap.id.short()
            ));
        }
        _ => bail!("restore a PostgreSQL base backup with `arca db pitr` (to a moment) or `arca restore {}:/pgdata --target DIR` (as it was)", snap.id.short()),
    }
    if out.json {
        out.json_doc(&serde_json::json!({"result": "restored", "snapshot": snap.id.to_hex(), "engine": engine, "target": target}));
    }
    Ok(Some(crate::exit::OK))
}

fn restore(cli: &Cli, out: &Output, a: &DbRestoreArgs) -> Result<i32> {
    let (repo, _lock) = context::open_session(cli, out, context::Session::Read("db restore"))?;
    if a.list {
        return list(out, &repo, &a.snapshot);
    }
    let snap = database_snapshot(&repo, out, &a.snapshot)?;
    if let Some(done) = restore_physical(out, &repo, &snap, a)? {
        return Ok(done);
    }
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

/// `arca wal-push PATH`: archive one WAL file (idempotent).
pub fn wal_push(cli: &Cli, out: &Output, path: &Path, sysid: Option<&str>) -> Result<i32> {
    let sysid = wal::sysid_for(path, sysid)?;
    let mut segment = Database::new(wal::Segment::new(path, &sysid)?);
    let (repo, lock) = context::open_session(cli, out, context::Session::Write("wal-push"))?;
    let all = super::all_snapshots(&repo, out)?;
    if let Some(existing) = wal::find(&all, &sysid, segment.inner().name()) {
        let stored = wal::node(&repo, &existing.snapshot, segment.inner().name())?;
        let (ids, size) = wal::content_ids(&repo, path)?;
        if stored.content == ids && stored.size == size {
            out.info(format!(
                "{} is archived already, with the same contents (snapshot {})",
                segment.inner().name(),
                existing.id.short()
            ));
            return Ok(crate::exit::OK);
        }
        bail!(
            "{} is archived already with other contents (snapshot {}): not replacing it. Two clusters sharing one archive, or a timeline mix-up? Check the cluster with --system-identifier",
            segment.inner().name(),
            existing.id.short()
        );
    }
    let req = BackupRequest { threads: cli.threads, ..Default::default() };
    super::backup::store_in(cli, out, &repo, lock, &mut segment, &req, false, None)
}

/// `arca wal-fetch NAME TARGET`: write one archived WAL file. Exit 1 only if the archive does
/// not have it (PostgreSQL then ends recovery there, or tries the next timeline); any other
/// failure exits 126, which makes PostgreSQL stop recovering rather than take a wrong turn (a
/// wrong password or an outage must not pass for the end of the archive).
pub fn wal_fetch(cli: &Cli, out: &Output, name: &str, target: &Path, sysid: Option<&str>) -> Result<i32> {
    match fetch(cli, out, name, target, sysid) {
        Ok(code) => Ok(code),
        Err(e) => {
            out.error(&e);
            Ok(crate::exit::ABORT_RECOVERY)
        }
    }
}

fn fetch(cli: &Cli, out: &Output, name: &str, target: &Path, sysid: Option<&str>) -> Result<i32> {
    if !wal::valid_name(name) {
        bail!("{name:?} is not the name of a WAL file");
    }
    let sysid = match sysid {
        Some(s) => s.to_string(),
        None => std::env::current_dir()
            .ok()
            .and_then(|d| wal::sysid_of_cluster(&d))
            .map(|s| s.to_string())
            .ok_or_else(|| anyhow!("the working directory is no data directory (PostgreSQL runs restore_command in one): give --system-identifier"))?,
    };
    let (repo, _lock) = context::open_session(cli, out, context::Session::Read("wal-fetch"))?;
    let all = super::all_snapshots(&repo, out)?;
    let Some(found) = wal::find(&all, &sysid, name) else {
        // The usual end of recovery: PostgreSQL asks for the next file until there is none.
        out.info(format!("{name} is not in the archive of cluster {sysid}"));
        return Ok(crate::exit::ERROR);
    };
    let node = wal::node(&repo, &found.snapshot, name)?;
    let tmp = target.with_file_name(format!(
        ".{}.arca-fetch",
        target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    arca_fs::restore::dump(&repo, &node, &mut f)?;
    f.sync_all().with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, target)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), target.display()))?;
    Ok(crate::exit::OK)
}

/// A single-quoted shell word.
fn shell_word(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The restore_command a recovery runs: this arca, this repository, the password as given.
fn restore_command(cli: &Cli) -> Result<String> {
    let exe = std::env::current_exe().context("cannot tell where this arca is")?;
    let repo = cli
        .repo
        .clone()
        .ok_or_else(|| anyhow!("name the repository with -r: the recovery's restore_command must name it"))?;
    let password = match (&cli.password_file, &cli.password_command) {
        (Some(f), _) => format!("--password-file {}", shell_word(&std::path::absolute(f)?.display().to_string())),
        (None, Some(c)) => format!("--password-command {}", shell_word(c)),
        (None, None) => bail!(
            "the recovery runs `arca wal-fetch` as the database's user, without this shell's ARCA_PASSWORD: give --password-file (readable by that user) or --password-command, or write your own --restore-command"
        ),
    };
    // PostgreSQL replaces %-escapes anywhere in the command: a literal % is written %%.
    let literal = |s: String| s.replace('%', "%%");
    Ok(format!(
        "{} -r {} {} wal-fetch %f %p",
        literal(shell_word(&exe.display().to_string())),
        literal(shell_word(&repo)),
        literal(password)
    ))
}

fn pitr(cli: &Cli, out: &Output, a: &DbPitrArgs) -> Result<i32> {
    let command = match &a.restore_command {
        Some(c) => c.clone(),
        None => restore_command(cli)?,
    };
    if a.target.exists() && std::fs::read_dir(&a.target).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists and is not empty: name a new directory", a.target.display());
    }
    let (target, at) = match (&a.at, &a.lsn) {
        (Some(t), _) => {
            let at = super::backup::parse_time_arg(t)?;
            (recovery::Target::Time(at.format("%Y-%m-%d %H:%M:%S%.6f%:z").to_string()), Some(at))
        }
        (None, Some(l)) => (recovery::Target::Lsn(l.clone()), None),
        (None, None) => bail!("give --at TIME or --lsn LSN"),
    };
    let (repo, _lock) = context::open_session(cli, out, context::Session::Read("db pitr"))?;
    let all = super::all_snapshots(&repo, out)?;
    let base = match &a.base {
        Some(spec) => snaps::resolve(&all, spec, &Default::default())?,
        None => recovery::choose_base(&all, a.system_identifier.as_deref(), at)?.clone(),
    };
    if let Some((after, next)) = recovery::gap(&all, &base) {
        out.warn(format!(
            "the WAL archive has a gap after {after} (next archived: {next}): recovery cannot go past it"
        ));
    }
    let req = arca_ops::restore::RestoreRequest {
        snapshot: Some(base.id.to_hex()),
        path: recovery::pgdata_path(),
        target: a.target.clone(),
        threads: cli.threads,
        ..Default::default()
    };
    let p = crate::progress::Reporter::new(out, "restore");
    let restored = arca_ops::restore::restore(&repo, &req, &p)?;
    p.progress.finish();
    if !restored.report.errors.is_empty() {
        bail!(
            "the base backup did not restore whole ({} errors): no recovery settings were written",
            restored.report.errors.len()
        );
    }
    recovery::configure(&a.target, &command, &target)?;
    let src = &base.snapshot.source;
    if out.json {
        out.json_doc(&serde_json::json!({
            "result": "laid out", "target": a.target, "base": base.id.to_hex(),
            "base_end_time": src.get("end_time"), "restore_command": command,
            "recovery_target": match &target { recovery::Target::Time(t) => t, recovery::Target::Lsn(l) => l },
        }));
    } else {
        out.info(format!(
            "laid out {} from base backup {} (ended {}); it recovers to {} with `{command}`",
            a.target.display(),
            base.id.short(),
            src.get("end_time").map(String::as_str).unwrap_or("?"),
            match &target {
                recovery::Target::Time(t) => t.clone(),
                recovery::Target::Lsn(l) => format!("WAL location {l}"),
            },
        ));
        out.info(format!(
            "start it as the database's user: pg_ctl -D {} start (it replays the WAL, stops there and promotes)",
            a.target.display()
        ));
    }
    Ok(crate::exit::OK)
}

fn coverage(cli: &Cli, out: &Output, sysid: Option<&str>) -> Result<i32> {
    let repo = context::open(cli, out)?;
    let all = super::all_snapshots(&repo, out)?;
    let mut clusters: std::collections::BTreeSet<String> =
        all.iter().filter_map(|s| s.snapshot.source.get("system_identifier").cloned()).collect();
    if let Some(id) = sysid {
        clusters.retain(|c| c == id);
    }
    let reports: Vec<wal::Coverage> = clusters.iter().map(|c| wal::coverage(&all, c)).collect();
    if out.json {
        out.json_doc(&reports);
        return Ok(crate::exit::OK);
    }
    if reports.is_empty() {
        out.line("no PostgreSQL base backup or archived WAL in this repository");
    }
    for c in &reports {
        out.line(format!(
            "cluster {}: {} base backups, {} archived WAL files (timelines {:?})",
            c.system_identifier,
            c.base_backups.len(),
            c.segments,
            c.timelines
        ));
        match (&c.restorable_from, &c.restorable_to) {
            (Some(f), Some(t)) => out.line(format!("  restorable from {f} to {t}")),
            (Some(f), None) => {
                out.line(format!("  restorable to the end of a base backup, from {f} (no WAL archived after it)"))
            }
            _ => out.line("  not restorable: no base backup"),
        }
        for (after, next) in &c.gaps {
            out.line(format!("  gap: after {after}, next archived {next}"));
        }
    }
    Ok(crate::exit::OK)
}

fn forget(cli: &Cli, out: &Output, a: &DbForgetArgs) -> Result<i32> {
    let policy = arca_repo::retention::Policy {
        last: a.keep_last,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        ..Default::default()
    };
    let window = a
        .pitr
        .as_deref()
        .map(|p| p.parse::<arca_repo::units::Interval>().map(|i| i.0))
        .transpose()
        .map_err(|e| anyhow!("--pitr: {e}"))?;
    if window.is_none() && policy.is_empty() {
        bail!("say what to keep: --pitr DURATION and/or --keep-last/--keep-daily/--keep-weekly/--keep-monthly (nothing would be kept)");
    }
    let session = if a.dry_run { context::Session::Metadata } else { context::Session::Write("db forget") };
    let (repo, _lock) = context::open_session(cli, out, session)?;
    let all = super::all_snapshots(&repo, out)?;
    let clusters: std::collections::BTreeSet<String> = all
        .iter()
        .filter_map(|s| s.snapshot.source.get("system_identifier").cloned())
        .filter(|c| a.system_identifier.as_ref().is_none_or(|id| id == c))
        .collect();
    let now = chrono::Local::now().fixed_offset();
    let plans: Vec<arca_db::retention::Plan> =
        clusters.iter().map(|c| arca_db::retention::plan(&all, c, &policy, window, now)).collect();
    let ids: Vec<String> = plans.iter().flat_map(|p| p.forget()).collect();
    let mut removed = vec![];
    if !a.dry_run && !ids.is_empty() {
        let req = arca_ops::forget::ForgetRequest {
            selection: arca_ops::forget::Selection::Snapshots(ids.clone()),
            filter: Default::default(),
            dry_run: false,
        };
        removed = arca_ops::forget::forget(&repo, &req, now, &crate::progress::Reporter::new(out, "forget"))?.removed;
    }
    if out.json {
        out.json_doc(&serde_json::json!({"dry_run": a.dry_run, "plans": plans, "removed": removed}));
        return Ok(crate::exit::OK);
    }
    for p in &plans {
        out.line(format!(
            "cluster {}: keep {} base backups and {} WAL files; {} {} base backups and {} WAL files{}",
            p.system_identifier,
            p.keep_bases.len(),
            p.keep_wal,
            if a.dry_run { "would forget" } else { "forgot" },
            p.forget_bases.len(),
            p.forget_wal.len(),
            p.window_start.as_ref().map(|w| format!(" (recoverable from {w})")).unwrap_or_default()
        ));
    }
    if !a.dry_run && !removed.is_empty() {
        out.info("run `arca prune` to free their space");
    }
    Ok(crate::exit::OK)
}

fn verify(cli: &Cli, out: &Output, spec: &str, database: Option<&str>, pg_bin: Option<&Path>) -> Result<i32> {
    let (repo, _lock) = context::open_session(cli, out, context::Session::Read("db verify"))?;
    let snap = database_snapshot(&repo, out, spec)?;
    let mut entries = layout::entries(&repo, &snap.snapshot)?;
    if let Some(d) = database {
        entries.retain(|e| e.database == d || e.global);
        if entries.iter().all(|e| e.global) {
            bail!("the snapshot has no database {d:?}");
        }
    }
    out.info(format!(
        "drilling snapshot {}: each database restored into a throw-away instance and checked",
        snap.id.short()
    ));
    let drills = arca_db::drill::verify(&repo, &snap.snapshot, &entries, pg_bin)?;
    if drills.is_empty() {
        bail!("snapshot {} holds no database to drill", snap.id.short());
    }
    let state = arca_jobs::history::default_dir();
    if let Err(e) = arca_db::drill::record(&state, &repo.config().repo_id.to_hex(), &snap.id.to_hex(), &drills) {
        out.warn(format!("could not record the drill: {e}"));
    }
    let failed = drills.iter().filter(|d| !d.ok).count();
    if out.json {
        out.json_doc(&serde_json::json!({"snapshot": snap.id.to_hex(), "drills": drills, "failed": failed}));
    } else {
        for d in &drills {
            out.line(format!(
                "{} {:<9} {:<30} {:>6.1}s  {}",
                if d.ok { "ok  " } else { "FAIL" },
                d.engine,
                d.database,
                d.seconds,
                d.detail
            ));
        }
    }
    Ok(if failed > 0 { crate::exit::ERROR } else { crate::exit::OK })
}

/// `db backup postgres --cold PGDATA`: stop, check, back up the files, start.
fn cold(cli: &Cli, out: &Output, a: &DbBackupArgs, pgdata: &Path) -> Result<i32> {
    if a.engine != DbEngine::Postgres {
        bail!("--cold is for PostgreSQL (stopped, checked with pg_controldata, started again)");
    }
    if a.dry_run {
        bail!("--cold stops the database: a dry run of it would too, so there is none (back up a copy of the files with `arca backup --dry-run` instead)");
    }
    let bin = arca_db::drill::pg_bin(a.server.pg_bin.as_deref())
        .ok_or_else(|| anyhow!("PostgreSQL's server programs are not in /usr/lib/postgresql: give --pg-bin"))?;
    let own = context::own_paths(cli);
    let mut source = arca_ops::source::Files::new(&[pgdata.to_path_buf()], Default::default(), &own)?;
    let c = arca_db::cold::Cold {
        pgdata: source.source_paths()[0].clone(),
        stop: a.stop.clone(),
        start: a.start.clone(),
        bin,
    };
    // Open first: a wrong password must not cost the database a restart.
    let session =
        if a.dry_run { context::Session::Read("backup --dry-run") } else { context::Session::Write("backup") };
    let (repo, lock) = context::open_session(cli, out, session)?;
    out.info(format!("stopping PostgreSQL at {} for a cold backup", c.pgdata.display()));
    let restart = c.stop()?;
    let mut tags = a.tags.clone();
    tags.push("cold".into());
    let req = BackupRequest {
        host: a.host.clone(),
        tags,
        threads: cli.threads,
        class: a.class.clone(),
        ..Default::default()
    };
    let stored = super::backup::store_in(cli, out, &repo, lock, &mut source, &req, a.dry_run, None);
    out.info(format!("starting PostgreSQL at {} again", c.pgdata.display()));
    let started = restart.start();
    let code = stored?;
    started.context("the backup is stored, but PostgreSQL did not start again")?;
    Ok(code)
}
