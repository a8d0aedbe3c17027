//! Real database servers for the database tests: PostgreSQL 15 (initdb into a temporary
//! directory, its own port on 127.0.0.1) and MariaDB (a socket in a temporary directory),
//! each started on first use, once per test binary, and stopped by a watchdog when the test
//! process ends (statics are never dropped). scripts/test installs them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where Debian puts PostgreSQL 15's server programs.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A directory under /var/tmp owned by `user` (the servers refuse to run as root).
fn owned_dir(prefix: &str, user: &str) -> PathBuf {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir_in("/var/tmp").unwrap().keep();
    let ok = Command::new("chown").arg(format!("{user}:")).arg(&dir).status().unwrap().success();
    assert!(ok, "cannot chown {} to {user}", dir.display());
    dir
}

/// Run `script` in the background until this test process ends, then `cleanup` (a shell
/// command), so no server outlives the tests. (Never waited for: it outlives this process.)
#[allow(clippy::zombie_processes)]
pub fn watchdog(cleanup: &str) {
    let script = format!("while [ -d /proc/{} ]; do sleep 0.5; done; {cleanup}", std::process::id());
    Command::new("setsid").args(["sh", "-c", &script]).spawn().unwrap();
}

/// A PostgreSQL cluster.
pub struct Pg {
    pub port: u16,
    pub dir: PathBuf,
}

impl Pg {
    /// The libpq environment that reaches it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![("PGHOST", "127.0.0.1".into()), ("PGPORT", self.port.to_string()), ("PGUSER", "postgres".into())]
    }

    /// psql's unaligned, tuples-only output of `sql` in `db` (panics on failure).
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let o = Command::new(format!("{PG_BIN}/psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql])
            .envs(self.env())
            .output()
            .unwrap();
        assert!(o.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// A plain-text pg_dump of `db`, without the random `\restrict` lines pg_dump 15.18 adds.
    pub fn dump(&self, db: &str) -> String {
        let o = Command::new(format!("{PG_BIN}/pg_dump")).args(["-d", db]).envs(self.env()).output().unwrap();
        assert!(o.status.success(), "pg_dump {db}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Start a new PostgreSQL cluster (`conf`: lines for its postgresql.conf); it is stopped when
/// the test process ends.
pub fn start_pg(conf: &[&str]) -> Pg {
    assert!(
        super::have("PostgreSQL 15 server (Debian postgresql-15)", Path::new(PG_BIN).join("postgres").exists()),
        "PostgreSQL is not installed"
    );
    let dir = owned_dir("arca-pg-", "postgres");
    let data = dir.join("data");
    let run = |args: &[&str]| {
        let o = Command::new("runuser").args(["-u", "postgres", "--"]).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&[&format!("{PG_BIN}/initdb"), "-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync"]);
    let port = free_port();
    let opts = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", dir.display());
    if !conf.is_empty() {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).unwrap();
        writeln!(f, "{}", conf.join("\n")).unwrap();
    }
    run(&[
        &format!("{PG_BIN}/pg_ctl"),
        "-D",
        data.to_str().unwrap(),
        "-l",
        dir.join("log").to_str().unwrap(),
        "-w",
        "-o",
        &opts,
        "start",
    ]);
    watchdog(&format!(
        "runuser -u postgres -- {PG_BIN}/pg_ctl -D '{}' -m immediate -w stop >/dev/null 2>&1; rm -rf '{}'",
        data.display(),
        dir.display()
    ));
    Pg { port, dir }
}

/// Start PostgreSQL on a data directory laid out by a test (a recovery), as its owner, on a
/// new port; stopped when the test process ends.
pub fn start_pg_on(data: &Path, socket_dir: &Path) -> Pg {
    let port = free_port();
    let opts = format!("-p {port} -k {} -c listen_addresses=127.0.0.1", socket_dir.display());
    let o = Command::new("runuser")
        .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl"), "-D", data.to_str().unwrap(), "-w", "-t", "60"])
        .args(["-l", socket_dir.join("recovery.log").to_str().unwrap(), "-o", &opts, "start"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pg_ctl start: {}{}",
        String::from_utf8_lossy(&o.stdout),
        std::fs::read_to_string(socket_dir.join("recovery.log")).unwrap_or_default()
    );
    watchdog(&format!(
        "runuser -u postgres -- {PG_BIN}/pg_ctl -D '{}' -m immediate -w stop >/dev/null 2>&1",
        data.display()
    ));
    Pg { port, dir: socket_dir.to_path_buf() }
}

/// A directory under /var/tmp that the database servers' users may write (a test's
/// repository, when PostgreSQL archives into it).
pub fn dir_for(user: &str) -> PathBuf {
    let dir = owned_dir("arca-dbrepo-", user);
    // After the servers using it have stopped.
    watchdog(&format!("sleep 3; rm -rf '{}'", dir.display()));
    dir
}

/// The shared cluster of this test binary.
pub fn pg() -> &'static Pg {
    static P: OnceLock<Pg> = OnceLock::new();
    P.get_or_init(|| start_pg(&[]))
}

/// A MariaDB server on a socket.
pub struct My {
    pub socket: PathBuf,
}

impl My {
    /// Run SQL with the `mariadb` client (panics on failure); its tab-separated output.
    pub fn sql(&self, sql: &str) -> String {
        let o = Command::new("mariadb")
            .arg(format!("--socket={}", self.socket.display()))
            .args(["--batch", "--skip-column-names", "-e", sql])
            .output()
            .unwrap();
        assert!(o.status.success(), "mariadb {sql}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

/// Start a new MariaDB server; it is stopped when the test process ends.
pub fn start_mariadb() -> My {
    let have = Command::new("sh").args(["-c", "command -v mariadbd && command -v mariadb-dump"]).output().unwrap();
    assert!(super::have("MariaDB server (Debian mariadb-server)", have.status.success()), "MariaDB is not installed");
    let dir = owned_dir("arca-my-", "mysql");
    let data = dir.join("data");
    let o = Command::new("mariadb-install-db")
        .args(["--no-defaults", "--user=mysql", "--auth-root-authentication-method=socket", "--skip-test-db"])
        .arg(format!("--datadir={}", data.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&o.stderr));
    start_mariadb_on(&data, &dir)
}

/// Start MariaDB on the data directory `data`, its socket and files in `dir`; stopped (and
/// `dir` removed) when the test process ends. (The server is never waited for: the watchdog
/// stops it.)
#[allow(clippy::zombie_processes)]
pub fn start_mariadb_on(data: &Path, dir: &Path) -> My {
    let socket = dir.join("s.sock");
    let pid = dir.join("pid");
    Command::new("setsid")
        .arg("mariadbd")
        .args(["--no-defaults", "--skip-networking", "--user=mysql"])
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--pid-file={}", pid.display()))
        .arg(format!("--log-error={}", dir.join("err").display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    watchdog(&format!(
        "kill -9 $(cat '{}' 2>/dev/null) 2>/dev/null; sleep 0.5; rm -rf '{}'",
        pid.display(),
        dir.display()
    ));
    let start = Instant::now();
    loop {
        let ok = Command::new("mariadb-admin")
            .arg(format!("--socket={}", socket.display()))
            .arg("ping")
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return My { socket };
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "MariaDB did not start: {}",
            std::fs::read_to_string(dir.join("err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The shared MariaDB server of this test binary.
pub fn mariadb() -> &'static My {
    static M: OnceLock<My> = OnceLock::new();
    M.get_or_init(start_mariadb)
}
