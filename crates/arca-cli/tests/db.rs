//! Database sources against real servers (issue 16): PostgreSQL and MariaDB dumps restore into
//! a fresh server and compare equal, a dump taken while a writer runs is consistent, SQLite's
//! copy under a writer passes its integrity check, and what cannot work is refused by name.

mod common;
use common::dbs::{self, Pg};
use common::*;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// `arca` reaching `pg` through libpq's environment.
fn with_pg(e: &Env, pg: &Pg, args: &[&str]) -> std::process::Output {
    e.cmd(args).envs(pg.env()).output().unwrap()
}

fn ok(o: std::process::Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Keep writing pairs of rows (one in each of two tables, in one transaction) until stopped:
/// a dump that is not one consistent view holds unequal counts.
fn pair_writer(stop: Arc<AtomicBool>, mut write: impl FnMut(u64) + Send + 'static) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            write(n);
            n += 1;
        }
        n
    })
}

#[test]
fn a_postgres_dump_restores_into_a_fresh_server_and_compares_equal() {
    let pg = dbs::pg();
    pg.sql("postgres", "CREATE ROLE reporter LOGIN");
    pg.sql("postgres", "CREATE DATABASE shop");
    pg.sql(
        "shop",
        "CREATE TABLE items(id serial PRIMARY KEY, name text, price numeric, data bytea);
         INSERT INTO items(name, price, data) SELECT 'item ' || i, i * 1.5, decode(md5(i::text), 'hex') FROM generate_series(1, 5000) i;
         CREATE VIEW cheap AS SELECT * FROM items WHERE price < 10;
         CREATE FUNCTION total() RETURNS numeric LANGUAGE sql AS 'SELECT sum(price) FROM items';
         GRANT SELECT ON items TO reporter;",
    );
    pg.sql("postgres", "CREATE DATABASE \"odd name/with slash\"");
    let e = Env::init();
    let v: serde_json::Value = last_json(&ok(with_pg(&e, pg, &["--json", "db", "backup", "postgres"]), "backup"));
    let id = v["snapshot_id"].as_str().unwrap().to_string();
    let listed = last_json(&ok(with_pg(&e, pg, &["--json", "db", "list", &id]), "list"));
    let names: Vec<&str> =
        listed["entries"].as_array().unwrap().iter().map(|x| x["database"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"shop") && names.contains(&"odd name/with slash") && names.contains(&"globals"),
        "{listed}"
    );
    assert_eq!(listed["source"]["engine"], "postgresql", "{listed}");

    // A fresh server: the roles first (the grant needs them), then the database.
    let fresh = dbs::start_pg(&[]);
    ok(with_pg(&e, &fresh, &["db", "restore", &id, "--globals"]), "restore globals");
    ok(with_pg(&e, &fresh, &["db", "restore", &id, "-d", "shop", "--create"]), "restore shop");
    assert_eq!(pg.dump("shop"), fresh.dump("shop"), "pg_dump of both compares equal");
    assert_eq!(fresh.sql("shop", "SELECT total()"), pg.sql("shop", "SELECT total()"));
    // Into another name, and a database whose name is not a file name.
    ok(with_pg(&e, &fresh, &["db", "restore", &id, "-d", "shop", "--into", "shop_copy", "--create"]), "into");
    assert_eq!(fresh.sql("shop_copy", "SELECT count(*) FROM items"), "5000");
    ok(with_pg(&e, &fresh, &["db", "restore", &id, "-d", "odd name/with slash", "--create"]), "odd name");
    assert!(fresh.sql("postgres", "SELECT datname FROM pg_database").contains("odd name/with slash"));

    // A restore drill: each database into a throw-away cluster, checked by pg_amcheck.
    let v = last_json(&ok(e.cmd(&["--json", "db", "verify", &id]).output().unwrap(), "verify"));
    assert_eq!(v["failed"], 0, "{v}");
    let drills = v["drills"].as_array().unwrap();
    assert!(
        drills.iter().any(|d| d["database"] == "shop" && d["detail"].as_str().unwrap().contains("pg_amcheck")),
        "{v}"
    );
    let recorded = std::fs::read_to_string(e.path("state/drills.jsonl")).unwrap();
    assert!(recorded.contains("\"database\":\"shop\"") && recorded.contains("\"ok\":true"), "{recorded}");
    let o = e.cmd(&["db", "verify", &id, "-d", "shop", "--pg-bin", "/nonexistent"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "a drill that cannot run fails: {}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("FAIL"));

    // What cannot work says why, and writes nothing.
    let o = with_pg(&e, &fresh, &["db", "restore", &id, "-d", "shop", "--create"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("already exists"));
    let o = with_pg(&e, &fresh, &["db", "restore", &id, "-d", "nosuch"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no postgres database \"nosuch\"") && err.contains("shop"), "{err}");
    let before = e.repo_files().len();
    let o = with_pg(&e, pg, &["db", "backup", "postgres", "-d", "nosuch"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("no database \"nosuch\""));
    let o = e.cmd(&["db", "backup", "postgres"]).env("PGHOST", "127.0.0.1").env("PGPORT", "1").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("psql failed"), "an unreachable server is named: {err}");
    let after: Vec<_> = e.repo_files().into_iter().filter(|(p, _)| !p.to_string_lossy().contains("/locks/")).collect();
    assert_eq!(after.len(), before, "a failed dump stores no snapshot");
}

#[test]
fn a_postgres_dump_taken_while_a_writer_runs_is_one_consistent_view() {
    let pg = dbs::pg();
    pg.sql("postgres", "CREATE DATABASE busy");
    pg.sql("busy", "CREATE TABLE a(id bigint); CREATE TABLE b(id bigint)");
    let stop = Arc::new(AtomicBool::new(false));
    let env = pg.env();
    let writer = pair_writer(stop.clone(), move |n| {
        let sql = format!("BEGIN; INSERT INTO a VALUES ({n}); INSERT INTO b VALUES ({n}); COMMIT;");
        let _ = Command::new(format!("{}/psql", dbs::PG_BIN))
            .args(["-X", "-q", "-d", "busy", "-c", &sql])
            .envs(env.clone())
            .output();
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let e = Env::init();
    ok(with_pg(&e, pg, &["db", "backup", "postgres", "-d", "busy"]), "backup");
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
    ok(with_pg(&e, pg, &["db", "restore", "latest", "-d", "busy", "--into", "busy_restored", "--create"]), "restore");
    let a = pg.sql("busy_restored", "SELECT count(*) FROM a");
    assert_eq!(a, pg.sql("busy_restored", "SELECT count(*) FROM b"), "both tables as of one moment");
    assert!(a.parse::<u64>().unwrap() > 0);
}

#[test]
fn a_mariadb_dump_under_a_writer_restores_into_a_fresh_server_consistently() {
    let my = dbs::mariadb();
    my.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.a(id bigint) ENGINE=InnoDB; CREATE TABLE shop.b(id bigint) ENGINE=InnoDB;
         CREATE TABLE shop.items(id int PRIMARY KEY AUTO_INCREMENT, name varchar(50), blobby blob);
         INSERT INTO shop.items(name, blobby) VALUES ('a', x'00ff10'), ('b', NULL);
         CREATE PROCEDURE shop.p() SELECT 1; CREATE TRIGGER shop.t BEFORE INSERT ON shop.items FOR EACH ROW SET NEW.name = UPPER(NEW.name);
         CREATE USER 'bob'@'localhost' IDENTIFIED BY 'secret'; GRANT SELECT ON shop.* TO 'bob'@'localhost';",
    );
    let socket = my.socket.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = pair_writer(stop.clone(), move |n| {
        let sql =
            format!("START TRANSACTION; INSERT INTO shop.a VALUES ({n}); INSERT INTO shop.b VALUES ({n}); COMMIT;");
        let _ = Command::new("mariadb").arg(format!("--socket={}", socket.display())).args(["-e", &sql]).output();
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let e = Env::init();
    let sock = format!("--db-socket={}", my.socket.display());
    ok(e.cmd(&["db", "backup", "mariadb", &sock]).output().unwrap(), "backup");
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);

    let fresh = dbs::start_mariadb();
    let fsock = format!("--db-socket={}", fresh.socket.display());
    ok(e.cmd(&["db", "restore", "latest", "-d", "shop", "--create", &fsock]).output().unwrap(), "restore");
    let a = fresh.sql("SELECT count(*) FROM shop.a");
    assert_eq!(a, fresh.sql("SELECT count(*) FROM shop.b"), "both tables as of one moment");
    assert!(a.parse::<u64>().unwrap() > 0);
    let checksum = "CHECKSUM TABLE shop.items";
    assert_eq!(fresh.sql(checksum).replace('\t', " "), my.sql(checksum).replace('\t', " "));
    assert!(fresh.sql("SHOW PROCEDURE STATUS WHERE Db = 'shop'").contains("\tp\t"), "routines come along");
    assert!(fresh.sql("SHOW TRIGGERS FROM shop").contains("items"), "triggers come along");
    let o = e.cmd(&["db", "restore", "latest", "-d", "shop", "--create", &fsock]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("exists"));
    let listed = e.json(&["db", "list"]);
    assert!(listed["entries"].as_array().unwrap().iter().any(|x| x["database"] == "system" && x["global"] == true));
}

#[test]
fn sqlite_is_copied_consistently_while_a_writer_runs_and_restores_checked() {
    let e = Env::init();
    let db = e.path("app.db");
    let d = db.to_str().unwrap().to_string();
    let o = Command::new("sqlite3")
        .arg(&d)
        .arg("PRAGMA journal_mode=WAL; CREATE TABLE a(id); CREATE TABLE b(id); CREATE TABLE big(x); INSERT INTO big SELECT randomblob(1000) FROM generate_series(1, 3000);")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stop = Arc::new(AtomicBool::new(false));
    let path = d.clone();
    let writer = pair_writer(stop.clone(), move |n| {
        let sql = format!("BEGIN; INSERT INTO a VALUES ({n}); INSERT INTO b VALUES ({n}); COMMIT;");
        let _ = Command::new("sqlite3").args(["-cmd", ".timeout 10000", &path, &sql]).output();
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    ok(e.cmd(&["db", "backup", "sqlite", &d]).output().unwrap(), "backup");
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
    let target = e.path("restored.db");
    ok(
        e.cmd(&["db", "restore", "latest", "-d", &d, "--target", target.to_str().unwrap()]).output().unwrap(),
        "restore",
    );
    let count = |t: &str| {
        let o = Command::new("sqlite3").arg(&target).arg(format!("SELECT count(*) FROM {t}")).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(count("a"), count("b"), "both tables as of one moment");
    assert_eq!(count("big"), "3000");
    // Never over an existing file; a file that is not a database is named.
    let o = e.cmd(&["db", "restore", "latest", "-d", &d, "--target", target.to_str().unwrap()]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("exists"));
    let not_db = e.path("notes.txt");
    std::fs::write(&not_db, b"just text, long enough to not be mistaken for an empty database file").unwrap();
    let o = e.cmd(&["db", "backup", "sqlite", not_db.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("sqlite3 failed") && err.contains("not a database"), "{err}");
    // The file snapshot of a database is a plain directory tree too.
    let ls = e.ok(&["ls", "latest"]);
    assert!(ls.contains("/sqlite/") && ls.contains("app.db"), "{ls}");
}

#[test]
fn a_file_backup_of_a_running_database_warns_naming_it_and_the_fix_or_skips_or_fails() {
    let pg = dbs::pg();
    let data = pg.dir.join("data");
    let e = Env::init();
    let d = data.to_str().unwrap();
    let v = last_json(&ok(e.cmd(&["--json", "backup", d]).output().unwrap(), "backup with warn"));
    let warnings = v["warnings"].as_array().unwrap();
    let w = warnings.iter().find(|w| w["kind"] == "live-database").unwrap_or_else(|| panic!("{v}"));
    let msg = w["message"].as_str().unwrap();
    assert_eq!(w["path"], d, "{w}");
    assert!(
        msg.contains("PostgreSQL cluster") && msg.contains("pid") && msg.contains("arca db backup postgres"),
        "{msg}"
    );
    assert_eq!(warnings.iter().filter(|w| w["kind"] == "live-database").count(), 1, "once per database: {v}");
    let snap = v["snapshot_id"].as_str().unwrap();
    let recorded = e.json(&["cat", "snapshot", snap]);
    assert!(recorded["warnings"].as_array().unwrap().iter().any(|w| w["kind"] == "live-database"), "{recorded}");

    // skip: the cluster's files are left out; fail: nothing is stored.
    let v = last_json(&ok(e.cmd(&["--json", "backup", "--live-databases", "skip", d]).output().unwrap(), "skip"));
    let ls = e.ok(&["ls", v["snapshot_id"].as_str().unwrap()]);
    assert!(!ls.contains("PG_VERSION") && !ls.contains("base/"), "{ls}");
    let before = snapshot_ids(&e).len();
    let o = e.cmd(&["backup", "--live-databases", "fail", d]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("PostgreSQL cluster") && err.contains("arca db backup postgres"),
        "{err}"
    );
    assert_eq!(snapshot_ids(&e).len(), before);

    // A stopped cluster's copy (a stale pid file) is no live database.
    let copy = e.path("pgcopy");
    sh(&format!("cp -a {d} {}", copy.display()));
    std::fs::write(copy.join("postmaster.pid"), "999999999\n").unwrap();
    let v = last_json(&ok(e.cmd(&["--json", "backup", copy.to_str().unwrap()]).output().unwrap(), "stale"));
    assert!(v["warnings"].as_array().unwrap().iter().all(|w| w["kind"] != "live-database"), "{v}");
}

#[test]
fn a_job_backs_up_databases_as_sources() {
    let pg = dbs::pg();
    pg.sql("postgres", "CREATE DATABASE jobdb");
    pg.sql("jobdb", "CREATE TABLE t AS SELECT generate_series(1, 100) AS n");
    let e = Env::init();
    let db = e.path("app.db");
    let o = Command::new("sqlite3").arg(&db).arg("CREATE TABLE t(x); INSERT INTO t VALUES (1);").output().unwrap();
    assert!(o.status.success());
    let file = e.path("arca.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[repositories.main]
url = {repo:?}
password_env = "ARCA_TEST_PW"

[jobs.databases]
repository = "main"
keep = {{ last = 2 }}

[[jobs.databases.sources]]
database = "postgres"
databases = ["jobdb"]
db_host = "127.0.0.1"
db_port = {port}
db_user = "postgres"

[[jobs.databases.sources]]
database = "sqlite"
paths = [{db:?}]
"#,
            repo = e.repo,
            port = pg.port,
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let plan = e.ok(&["--config", f, "run", "databases", "--dry-run"]);
    assert!(
        plan.contains(&format!(
            "db backup postgres --database jobdb --db-host 127.0.0.1 --db-user postgres --db-port {}",
            pg.port
        )),
        "{plan}"
    );
    assert!(plan.contains(&format!("db backup sqlite {}", db.display())), "{plan}");
    let o = e.cmd(&["--config", f, "--json", "run", "databases"]).env("ARCA_TEST_PW", PASSWORD).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let snaps = e.json(&["snapshots"]);
    let kinds: Vec<(&str, &str)> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["kind"].as_str().unwrap(), s["paths"][0].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&("database", "/postgres")), "{kinds:?}");
    assert!(kinds.contains(&("database", db.to_str().unwrap())), "{kinds:?}");
    // A bad engine name is refused at its line.
    std::fs::write(&file, format!("[repositories.main]\nurl = {:?}\n\n[jobs.x]\nrepository = \"main\"\n\n[[jobs.x.sources]]\ndatabase = \"oracle\"\n", e.repo)).unwrap();
    let o = e.run(&["--config", f, "config", "check"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("oracle") && err.contains(":8:"), "{err}");
}

/// `arca` run as the postgres user (as PostgreSQL runs archive and restore commands), on the
/// repository in `work`.
fn as_postgres(work: &std::path::Path, args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--", "env"])
        .arg(format!("HOME={}", work.display()))
        .arg(format!("ARCA_STATE_DIR={}", work.join("state").display()))
        .arg("ARCA_KDF_MEMORY_KIB=1024")
        .args(env.iter().map(|(k, v)| format!("{k}={v}")))
        .arg(env!("CARGO_BIN_EXE_arca"))
        .args(["-r", work.join("repo").to_str().unwrap(), "--password-file", work.join("pw").to_str().unwrap()])
        .args(args)
        .current_dir(work)
        .output()
        .unwrap()
}

#[test]
fn point_in_time_recovery_counts_exactly_the_rows_before_the_target() {
    let work = dbs::dir_for("postgres");
    std::fs::write(work.join("pw"), "pitr password\n").unwrap();
    sh(&format!("chown postgres {0}/pw && chmod 600 {0}/pw", work.display()));
    ok(as_postgres(&work, &["init"], &[]), "init");
    let archive = format!(
        "archive_command = 'ARCA_STATE_DIR={w}/state {arca} -r {w}/repo --password-file {w}/pw --no-cache wal-push %p'",
        w = work.display(),
        arca = env!("CARGO_BIN_EXE_arca")
    );
    let pg = dbs::start_pg(&["archive_mode = on", &archive]);
    pg.sql("postgres", "CREATE TABLE t(n int); INSERT INTO t VALUES (1), (2), (3)");
    let v = last_json(&ok(
        as_postgres(&work, &["--json", "db", "backup", "postgres", "--physical"], &pg.env()),
        "base backup",
    ));
    assert!(v["summary"]["files_new"].as_u64().unwrap() > 100, "a whole data directory: {v}");
    pg.sql("postgres", "INSERT INTO t VALUES (4)");
    pg.sql("postgres", "INSERT INTO t VALUES (5)");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let target =
        pg.sql("postgres", "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    pg.sql("postgres", "INSERT INTO t VALUES (6)");
    pg.sql("postgres", "INSERT INTO t VALUES (7)");
    let switched = pg.sql("postgres", "SELECT pg_walfile_name(pg_switch_wal())");
    let start = std::time::Instant::now();
    loop {
        let s =
            pg.sql("postgres", "SELECT coalesce(last_archived_wal, '') || ' ' || failed_count FROM pg_stat_archiver");
        if s.split(' ').next().is_some_and(|w| w >= switched.as_str()) {
            break;
        }
        assert!(start.elapsed().as_secs() < 60, "WAL not archived: {s} (want {switched})");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(pg.sql("postgres", "SELECT failed_count FROM pg_stat_archiver") == "0", "arca wal-push never failed");

    let cov = last_json(&ok(as_postgres(&work, &["--json", "db", "coverage"], &[]), "coverage"));
    assert!(cov[0]["restorable_from"].is_string() && cov[0]["restorable_to"].is_string(), "{cov}");
    assert_eq!(cov[0]["gaps"].as_array().unwrap().len(), 0, "{cov}");

    let restored = work.join("restored");
    ok(as_postgres(&work, &["db", "pitr", "--at", &target, "--target", restored.to_str().unwrap()], &[]), "pitr");
    let r = dbs::start_pg_on(&restored, &work);
    let start = std::time::Instant::now();
    while r.sql("postgres", "SELECT pg_is_in_recovery()") != "f" {
        assert!(start.elapsed().as_secs() < 60, "recovery did not finish");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(r.sql("postgres", "SELECT count(*) || ' ' || max(n) FROM t"), "5 5", "exactly the rows before {target}");

    // A forget by policy leaves the WAL archive alone (db forget decides for it), and `db
    // verify` of the latest database snapshot drills the base backup, not a WAL file.
    let wal_before = cov[0]["segments"].as_u64().unwrap();
    ok(as_postgres(&work, &["forget", "--keep-last", "1", "--group-by", ""], &[]), "forget");
    let cov = last_json(&ok(as_postgres(&work, &["--json", "db", "coverage"], &[]), "coverage"));
    assert_eq!(cov[0]["segments"].as_u64().unwrap(), wal_before, "{cov}");
    let latest = last_json(&ok(as_postgres(&work, &["--json", "db", "verify"], &[]), "verify latest"));
    assert_eq!(latest["drills"][0]["engine"], "postgres-physical", "{latest}");

    // The base backup passes a drill (restored, started, pg_amcheck).
    let v = last_json(&ok(
        as_postgres(&work, &["--json", "db", "verify", v["snapshot_id"].as_str().unwrap()], &[]),
        "verify",
    ));
    assert_eq!(v["failed"], 0, "{v}");
    assert_eq!(v["drills"][0]["engine"], "postgres-physical", "{v}");

    // Pushing a file again: the same contents succeed and store nothing; other contents are refused.
    let seg = work.join("again");
    ok(
        as_postgres(
            &work,
            &[
                "wal-fetch",
                &switched,
                seg.to_str().unwrap(),
                "--system-identifier",
                &r.sql("postgres", "SELECT system_identifier FROM pg_control_system()"),
            ],
            &[],
        ),
        "fetch",
    );
    let snaps_before =
        last_json(&ok(as_postgres(&work, &["--json", "snapshots"], &[]), "snapshots")).as_array().unwrap().len();
    let renamed = work.join(&switched);
    std::fs::rename(&seg, &renamed).unwrap();
    let out = ok(as_postgres(&work, &["wal-push", renamed.to_str().unwrap()], &[]), "push again");
    let _ = out;
    let snaps_after =
        last_json(&ok(as_postgres(&work, &["--json", "snapshots"], &[]), "snapshots")).as_array().unwrap().len();
    assert_eq!(snaps_before, snaps_after, "the same file twice stores nothing");
    let mut bytes = std::fs::read(&renamed).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&renamed, &bytes).unwrap();
    let o = as_postgres(&work, &["wal-push", renamed.to_str().unwrap()], &[]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("other contents"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A name the archive does not have: exit 1, which ends a recovery.
    let o = as_postgres(
        &work,
        &["wal-fetch", "0000000100000000000000FF", work.join("x").to_str().unwrap(), "--system-identifier", "1"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn a_cold_backup_stops_checks_backs_up_and_starts_again_and_refuses_an_unclean_stop() {
    let pg = dbs::start_pg(&[]);
    pg.sql("postgres", "CREATE TABLE cold(n int); INSERT INTO cold SELECT generate_series(1, 1000)");
    let data = pg.dir.join("data");
    let e = Env::init();
    let d = data.to_str().unwrap();
    let v = last_json(&ok(
        e.cmd(&["--json", "db", "backup", "postgres", "--cold", d, "--pg-bin", dbs::PG_BIN]).output().unwrap(),
        "cold backup",
    ));
    assert_eq!(pg.sql("postgres", "SELECT count(*) FROM cold"), "1000", "running again afterwards");
    let snap = v["snapshot_id"].as_str().unwrap().to_string();
    let listed = e.json(&["snapshots"]);
    assert!(listed.as_array().unwrap().iter().any(|s| s["id"] == snap.as_str() && s["tags"][0] == "cold"), "{listed}");
    // The copy starts as a cluster of its own: it had shut down cleanly.
    let copy = dbs::dir_for("postgres");
    let target = copy.join("restored");
    e.ok(&["restore", &format!("{snap}:{d}"), "--target", target.to_str().unwrap()]);
    std::fs::remove_file(target.join("postmaster.opts")).ok();
    let r = dbs::start_pg_on(&target, &copy);
    assert_eq!(r.sql("postgres", "SELECT count(*) FROM cold"), "1000");

    // A "stop" that kills the server: the files are not trusted, nothing is stored, and the
    // cluster is started again (its crash recovery runs).
    let before = snapshot_ids(&e).len();
    let kill = format!("kill -9 $(head -1 {d}/postmaster.pid)");
    let o =
        e.cmd(&["db", "backup", "postgres", "--cold", d, "--pg-bin", dbs::PG_BIN, "--stop", &kill]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("did not shut down cleanly") && err.contains("started again"), "{err}");
    assert_eq!(snapshot_ids(&e).len(), before);
    assert_eq!(pg.sql("postgres", "SELECT count(*) FROM cold"), "1000", "running again after the refused backup");
}

#[test]
fn a_mariadb_physical_backup_restores_into_a_data_directory_a_server_starts_on() {
    let tools = Command::new("sh").args(["-c", "command -v mariadb-backup && command -v mbstream"]).output().unwrap();
    if !have("mariadb-backup (Debian mariadb-backup)", tools.status.success()) {
        return;
    }
    let my = dbs::mariadb();
    my.sql("CREATE DATABASE phys; CREATE TABLE phys.t(id int PRIMARY KEY, v varchar(20)) ENGINE=InnoDB; INSERT INTO phys.t VALUES (1,'one'),(2,'two'),(3,'three');");
    let e = Env::init();
    let sock = format!("--db-socket={}", my.socket.display());
    let v =
        last_json(&ok(e.cmd(&["--json", "db", "backup", "mariadb", "--physical", &sock]).output().unwrap(), "backup"));
    let id = v["snapshot_id"].as_str().unwrap().to_string();
    let listed = e.ok(&["db", "list", &id]);
    assert!(listed.contains("physical backup (mariadb-physical)"), "{listed}");
    let work = dbs::dir_for("mysql");
    let target = work.join("data");
    ok(e.cmd(&["db", "restore", &id, "--target", target.to_str().unwrap()]).output().unwrap(), "restore");
    sh(&format!("chown -R mysql: {}", target.display()));
    let restored = dbs::start_mariadb_on(&target, &work);
    assert_eq!(
        restored.sql("CHECKSUM TABLE phys.t").replace('\t', " "),
        my.sql("CHECKSUM TABLE phys.t").replace('\t', " ")
    );
    let o = e.cmd(&["db", "restore", &id]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--target"));
}
