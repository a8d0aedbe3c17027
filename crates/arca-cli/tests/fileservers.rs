//! ftp:// and webdav:// repositories against real servers on 127.0.0.1, each started by its
//! test: vsftpd (a system user logging in through PAM, passive mode) and `rclone serve webdav`
//! (basic authentication). Both pass the storage conformance suite, back up, restore, check
//! every byte, prune, and refuse a wrong password with an error that names the server and
//! never shows the password.

mod common;
use arca_backends::{fileserver, FileServer};
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "ftp-and-dav-secret";

/// A server process, killed when the test ends.
struct Server {
    child: Child,
    /// What it serves, and its configuration.
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Wait until something accepts connections on `port`, or panic with `what`'s log.
fn wait_for(child: &mut Child, port: u16, what: &str, log: &Path) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}): {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A directory other users can reach (the test's own are private), removed at the end.
fn shared_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir_in("/var/tmp").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// vsftpd on a free port, logging in the system user `arcaftp` (made here) with [`PASSWORD`].
fn vsftpd() -> Option<Server> {
    if !have("root (vsftpd logs system users in)", is_root()) || !have("vsftpd", Path::new("/usr/sbin/vsftpd").exists())
    {
        return None;
    }
    sh(&format!(
        "id arcaftp >/dev/null 2>&1 || useradd -M -s /bin/sh arcaftp; home=/var/tmp/arca-ftp-home; mkdir -p $home /var/run/vsftpd/empty; chown arcaftp $home; usermod -d $home arcaftp; echo 'arcaftp:{PASSWORD}' | chpasswd"
    ));
    let dir = shared_dir("arca-ftp-");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    sh(&format!("chown arcaftp '{}'", data.display()));
    let port = free_port();
    let conf = dir.path().join("vsftpd.conf");
    let log = dir.path().join("vsftpd.log");
    std::fs::write(
        &conf,
        format!(
            "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\nbackground=NO\n\
             anonymous_enable=NO\nlocal_enable=YES\nwrite_enable=YES\nlocal_umask=077\n\
             pam_service_name=vsftpd\nseccomp_sandbox=NO\nsecure_chroot_dir=/var/run/vsftpd/empty\n\
             pasv_enable=YES\npasv_address=127.0.0.1\nmax_per_ip=0\nmax_clients=0\n\
             vsftpd_log_file={}\nxferlog_enable=YES\n",
            log.display()
        ),
    )
    .unwrap();
    let mut child = Command::new("/usr/sbin/vsftpd")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    wait_for(&mut child, port, "vsftpd", &dir.path().join("stderr"));
    Some(Server { child, dir, port })
}

/// `rclone serve webdav` on a free port, user `arca` with [`PASSWORD`].
fn rclone_webdav() -> Option<Server> {
    if !have("rclone", !sh("command -v rclone || true").trim().is_empty()) {
        return None;
    }
    let dir = shared_dir("arca-dav-");
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let port = free_port();
    let log = dir.path().join("rclone.log");
    let mut child = Command::new("rclone")
        .args(["serve", "webdav", "--addr", &format!("127.0.0.1:{port}"), "--user", "arca", "--pass", PASSWORD])
        .arg(dir.path().join("data"))
        // Files the test leaves behind the server's back are seen at once.
        .args(["--dir-cache-time", "0s", "--config", "/dev/null", "--log-file"])
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&mut child, port, "rclone serve webdav", &log);
    Some(Server { child, dir, port })
}

/// `arca` with the repository at `url` and the server's password in `variable`.
fn arca(e: &Env, url: &str, variable: &str, args: &[&str]) -> Command {
    let mut c = e.cmd(args);
    c.env("ARCA_REPOSITORY", url).env(variable, PASSWORD);
    c
}

fn ok(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(o.status.success(), "{c:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The storage contract, then what a user does: init, two backups, restore, check every
/// byte, forget and prune, and a wrong password refused.
fn a_repository_on(url_of: impl Fn(&str) -> String, served: &Path, variable: &str, label: &str, refused: &str) {
    let mut server = FileServer::from_url(&url_of("conformance")).unwrap().unwrap();
    server.password = Some(PASSWORD.into());
    conformance(&fileserver::connect(&server).unwrap(), label);

    let e = Env::new();
    let url = url_of("repo");
    ok(&mut arca(&e, &url, variable, &["init"]));
    let src = e.path("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("big"), random_bytes(12 << 20, 1)).unwrap();
    std::fs::write(src.join("d/small"), b"small file\n").unwrap();
    let s = src.to_str().unwrap();
    ok(&mut arca(&e, &url, variable, &["backup", s]));
    std::fs::write(src.join("big"), random_bytes(3 << 20, 2)).unwrap();
    ok(&mut arca(&e, &url, variable, &["backup", s]));
    let t = e.path("t");
    ok(&mut arca(&e, &url, variable, &["restore", &format!("latest:{s}"), "--target", t.to_str().unwrap()]));
    assert_eq!(rsync_diff(&src, &t), "");
    // What a writer killed mid-upload left (OpenDAL's FTP writer: in the root; arca's
    // WebDAV writer: beside the object) is never listed, and prune removes it once it is
    // old; a young one, and files of other shapes beside the repository's, stay.
    let id = "9e3779b97f4a7c150000000000000001fffffffffffffffe0000000000005554";
    let left =
        [served.join(format!("repo/{id}.Ab3dE9xZ")), served.join(format!("repo/snapshots/{id}.tmp-00ff00ff00ff00ff"))];
    let kept = [
        served.join("repo/notes.txt"),
        served.join("repo/snapshots/.hidden.x"),
        served.join(format!("repo/{id}.YOUNG123")),
    ];
    for f in left.iter().chain(&kept) {
        std::fs::write(f, b"half").unwrap();
        if !f.to_string_lossy().contains("YOUNG") {
            sh(&format!("touch -d '2 days ago' '{}'", f.display()));
        }
    }
    let v = last_json(&ok(&mut arca(&e, &url, variable, &["--json", "snapshots"])));
    assert_eq!(v.as_array().map(|a| a.len()), Some(2), "{v}");
    ok(&mut arca(&e, &url, variable, &["forget", "--keep-last", "1", "--prune"]));
    assert!(left.iter().all(|f| !f.exists()), "prune left temporary uploads behind");
    assert!(kept.iter().all(|f| f.exists()), "prune removed what is no old temporary upload");
    let v = last_json(&ok(&mut arca(&e, &url, variable, &["--json", "check", "--read-data"])));
    assert_eq!(v["ok"], true, "{v}");
    let start = Instant::now();
    let o = arca(&e, &url, variable, &["snapshots"]).env(variable, "not-the-password").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a wrong password was accepted");
    assert!(start.elapsed() < Duration::from_secs(30), "a wrong password took {:?} to be said", start.elapsed());
    assert!(err.contains(refused), "the error says why: {err}");
    assert!(err.contains(&url), "the error names the repository: {err}");
    assert!(!err.contains("not-the-password") && !err.contains(PASSWORD), "the password never appears: {err}");
}

#[test]
fn an_ftp_repository_conforms_backs_up_and_restores() {
    let Some(server) = vsftpd() else { return };
    let root = server.dir.path().join("data");
    let port = server.port;
    a_repository_on(
        |name| format!("ftp://arcaftp@127.0.0.1:{port}{}/{name}", root.display()),
        &root,
        "ARCA_FTP_PASSWORD",
        "ftp",
        "refused the login of arcaftp",
    );
}

#[test]
fn a_webdav_repository_conforms_backs_up_and_restores() {
    let Some(server) = rclone_webdav() else { return };
    let port = server.port;
    a_repository_on(
        |name| format!("webdav://arca@127.0.0.1:{port}/{name}"),
        &server.dir.path().join("data"),
        "ARCA_WEBDAV_PASSWORD",
        "webdav",
        "permission denied",
    );
}

#[test]
fn a_backup_to_webdav_through_a_faulty_network_completes_or_fails_clearly() {
    let Some(server) = rclone_webdav() else { return };
    let e = Env::new();
    let direct = format!("webdav://arca@127.0.0.1:{}/faulty", server.port);
    ok(&mut arca(&e, &direct, "ARCA_WEBDAV_PASSWORD", &["init"]));
    // The first connections are cut mid-transfer: OpenDAL's retries must carry the backup,
    // or it fails naming the object; never a broken repository.
    let (proxy, used) = fault_proxy(server.port, vec![Fault::Cut(1 << 20), Fault::Cut(2 << 20), Fault::Cut(1 << 20)]);
    let faulty = format!("webdav://arca@127.0.0.1:{proxy}/faulty");
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), random_bytes(20 << 20, 5)).unwrap();
    let s = src.to_str().unwrap();
    let o = arca(&e, &faulty, "ARCA_WEBDAV_PASSWORD", &["backup", s]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(used.load(std::sync::atomic::Ordering::Relaxed) >= 3, "{err}");
    if o.status.success() {
        let t = e.path("t");
        ok(&mut arca(
            &e,
            &direct,
            "ARCA_WEBDAV_PASSWORD",
            &["restore", &format!("latest:{s}"), "--target", t.to_str().unwrap()],
        ));
        assert_eq!(rsync_diff(&src, &t), "");
    } else {
        assert!(err.contains(&faulty), "a clear error naming the object: {err}");
    }
    let v = last_json(&ok(&mut arca(&e, &direct, "ARCA_WEBDAV_PASSWORD", &["--json", "check", "--read-data"])));
    assert_eq!(v["ok"], true, "consistent either way: {v}");
    println!(
        "webdav: backup through cut connections {}",
        if o.status.success() { "completed" } else { "failed cleanly" }
    );
}
