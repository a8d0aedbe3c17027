//! ssh:// repositories through a real OpenSSH sshd on 127.0.0.1 with forced commands: one key
//! per mode (full, append, read). The backend conformance suite runs against the local and the
//! ssh backends; a hostile append-only client tries everything it must not be able to do.

mod common;
use arca_backends::{LocalStorage, RemoteStorage};
use arca_storage::{ObjectKind, Storage, StorageError};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A private sshd with one key per mode, all forced to `arca serve` on one repository.
struct Sshd {
    dir: PathBuf,
    port: u16,
    child: Child,
    repo: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Sshd {
    fn start(e: &Env) -> Sshd {
        let dir = e.path("ssh");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let repo = e.path("served");
        let arca = env!("CARGO_BIN_EXE_arca");
        let mut keys = String::new();
        for (key, mode) in [("full", "full"), ("append", "append"), ("read", "read")] {
            sh(&format!("ssh-keygen -q -t ed25519 -N '' -f {}/{key}", dir.display()));
            let pubkey = std::fs::read_to_string(dir.join(format!("{key}.pub"))).unwrap();
            keys.push_str(&format!(
                "command=\"{arca} serve --stdio --repo {} --mode {mode}\",restrict {}",
                repo.display(),
                pubkey
            ));
        }
        // A plain key for sftp:// (the server's internal-sftp subsystem).
        sh(&format!("ssh-keygen -q -t ed25519 -N '' -f {}/sftp", dir.display()));
        keys.push_str(&format!("restrict {}", std::fs::read_to_string(dir.join("sftp.pub")).unwrap()));
        sh(&format!("ssh-keygen -q -t ed25519 -N '' -f {}/hostkey", dir.display()));
        std::fs::write(dir.join("authorized_keys"), keys).unwrap();
        // A port picked free can be taken by another test before sshd binds it: then sshd
        // exits saying so, and a new port is tried. Ready means sshd itself says it listens
        // (a connect alone could reach whoever took the port).
        for _attempt in 0..20 {
            let port = free_port();
            match Sshd::spawn(&dir, port) {
                Some(child) => return Sshd { dir, port, child, repo },
                None => continue,
            }
        }
        panic!("sshd did not start: {}", std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default());
    }

    /// Start sshd on `port`: `None` if the port was taken meanwhile; panics on other failures.
    fn spawn(dir: &Path, port: u16) -> Option<Child> {
        let config = [
            "ListenAddress 127.0.0.1".to_string(),
            format!("HostKey {}/hostkey", dir.display()),
            format!("PidFile {}/sshd.pid", dir.display()),
            format!("AuthorizedKeysFile {}/authorized_keys", dir.display()),
            "StrictModes no".into(),
            "PasswordAuthentication no".into(),
            "KbdInteractiveAuthentication no".into(),
            "PermitRootLogin prohibit-password".into(),
            "UsePAM no".into(),
            "MaxStartups 100".into(),
            "Subsystem sftp internal-sftp".into(),
        ]
        .join("\n");
        std::fs::write(dir.join("sshd_config"), config + "\n").unwrap();
        let hostkey = std::fs::read_to_string(dir.join("hostkey.pub")).unwrap();
        let mut parts = hostkey.split_whitespace();
        std::fs::write(
            dir.join("known_hosts"),
            format!("[127.0.0.1]:{port} {} {}\n", parts.next().unwrap(), parts.next().unwrap()),
        )
        .unwrap();
        let log = dir.join("sshd.log");
        let mut child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .args(["-p", &port.to_string()])
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("sshd must be installed (scripts/test installs openssh-server)");
        let listening = format!("Server listening on 127.0.0.1 port {port}");
        for _ in 0..500 {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(&listening) {
                return Some(child);
            }
            if let Ok(Some(status)) = child.try_wait() {
                if text.contains("Address already in use") {
                    return None;
                }
                panic!("sshd exited ({status}): {text}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("sshd did not start: {}", std::fs::read_to_string(&log).unwrap_or_default());
    }

    /// The ssh command for a key.
    fn ssh(&self, key: &str) -> String {
        format!(
            "ssh -i {d}/{key} -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile={d}/known_hosts",
            d = self.dir.display()
        )
    }

    /// An ssh command for `key` that logs a line per session it opens, and the log.
    fn counting_ssh(&self, e: &Env, key: &str) -> (String, PathBuf) {
        let log = e.path(&format!("sessions-{key}.log"));
        let wrapper = e.path(&format!("counting-ssh-{key}"));
        std::fs::write(&wrapper, format!("#!/bin/sh\necho session >> {}\nexec ssh \"$@\"\n", log.display())).unwrap();
        sh(&format!("chmod +x {}", wrapper.display()));
        (self.ssh(key).replacen("ssh", wrapper.to_str().unwrap(), 1), log)
    }

    /// The repository's URL through a proxy on `port`, whose host key is made known.
    fn url_through(&self, port: u16) -> String {
        let hostkey = std::fs::read_to_string(self.dir.join("hostkey.pub")).unwrap();
        let mut parts = hostkey.split_whitespace();
        let line = format!("[127.0.0.1]:{port} {} {}\n", parts.next().unwrap(), parts.next().unwrap());
        let mut kh = std::fs::read_to_string(self.dir.join("known_hosts")).unwrap();
        kh.push_str(&line);
        std::fs::write(self.dir.join("known_hosts"), kh).unwrap();
        format!("ssh://root@127.0.0.1:{port}{}", self.repo.display())
    }

    fn url(&self) -> String {
        format!("ssh://root@127.0.0.1:{}{}", self.port, self.repo.display())
    }

    /// `arca` against the served repository with `key`.
    fn arca(&self, e: &Env, key: &str, args: &[&str]) -> Command {
        let mut c = e.cmd(args);
        c.env("ARCA_REPOSITORY", self.url()).env("ARCA_SSH_COMMAND", self.ssh(key));
        c
    }

    fn ok(&self, e: &Env, key: &str, args: &[&str]) -> String {
        let o = self.arca(e, key, args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        assert!(o.status.success(), "{key}: arca {args:?} failed\n{}\n{tail:?}", String::from_utf8_lossy(&o.stdout));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A storage client holding `key`, as a hostile program would use it.
    fn storage(&self, key: &str) -> RemoteStorage {
        let mut cmd = shlex_split(&self.ssh(key));
        cmd.extend(["-p".into(), self.port.to_string(), "root@127.0.0.1".into(), "arca serve".into()]);
        RemoteStorage::connect(self.url(), cmd, self.repo.display().to_string(), 1).unwrap()
    }
}

fn shlex_split(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

#[test]
fn conformance_local_and_ssh() {
    if !sshd_here() {
        return;
    }
    let e = Env::new();
    let local = LocalStorage::new(e.path("local"));
    conformance(&local, "local");
    let sshd = Sshd::start(&e);
    let remote = sshd.storage("full");
    assert_eq!(remote.mode(), "full");
    conformance(&remote, "ssh");
    // Permission errors come back as such: a read-only key cannot write.
    let ro = sshd.storage("read");
    let err = ro.put(ObjectKind::Snapshot, &hex_of(b"two"), b"two").unwrap_err();
    assert!(matches!(err, StorageError::Refused(_)) && err.to_string().contains("read-only"), "{err}");
}

#[test]
fn backup_only_and_read_only_keys_over_ssh() {
    if !sshd_here() {
        return;
    }
    let e = Env::new();
    let sshd = Sshd::start(&e);
    sshd.ok(&e, "full", &["init"]);
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..5u64 {
        std::fs::write(src.join(format!("f{i}")), random_bytes(300_000, i)).unwrap();
    }
    let s = src.to_str().unwrap();
    // The deployment docs/SECURITY.md describes: an append-only SSH key (the server refuses
    // deletes and overwrites) holding a backup-only password (it reads nothing back).
    const BACKUP_ONLY: &str = "backup-only password";
    let o =
        sshd.arca(&e, "full", &["key", "add", "--backup-only"]).env("ARCA_NEW_PASSWORD", BACKUP_ONLY).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let append = |args: &[&str]| {
        let o = sshd.arca(&e, "append", args).env("ARCA_PASSWORD", BACKUP_ONLY).output().unwrap();
        assert!(o.status.success(), "append {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // It backs up (its session key and locks go through the append-only server), twice.
    append(&["backup", s]);
    std::fs::write(src.join("f0"), random_bytes(300_000, 99)).unwrap();
    let second = last_json(&append(&["--json", "backup", s]));
    assert_eq!(second["summary"]["files_read"], 1, "the send log spared the unchanged files: {second}");
    let genuine = second["snapshot_id"].as_str().unwrap().to_string();
    let o = sshd.arca(&e, "append", &["snapshots"]).env("ARCA_PASSWORD", BACKUP_ONLY).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("backup-only key"), "{}", String::from_utf8_lossy(&o.stderr));
    let saved = e.path("saved");
    sh(&format!("cp -a {s} {}", saved.display()));
    assert!(std::fs::read_dir(sshd.repo.join("locks")).unwrap().next().is_none(), "no lock left behind");
    // The read-only key lists, restores and checks, but cannot back up.
    let t = e.path("t");
    sshd.ok(&e, "read", &["restore", &format!("latest:{s}"), "--target", t.to_str().unwrap()]);
    assert_eq!(rsync_diff(&saved, &t), "");
    sshd.ok(&e, "read", &["check", "--read-data"]);
    assert_eq!(sshd.ok(&e, "read", &["--json", "snapshots"]).matches("\"id\"").count(), 2);
    let o = sshd.arca(&e, "read", &["backup", s]).output().unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("refused by server (read-only)"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Issue 17 row 19: protect through the append-only key is refused before it writes (it
    // used to leave a protected duplicate when the server refused the delete).
    let listed = sshd.ok(&e, "read", &["--json", "snapshots"]);
    let o = sshd.arca(&e, "append", &["protect", "latest", "--until", "forever"]).output().unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("needs a key that may delete"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(sshd.ok(&e, "read", &["--json", "snapshots"]), listed, "nothing was written");
    // Row 16: copy --from-repo takes an ssh:// source (here through the read-only key).
    let local = e.path("local");
    e.ok(&["-r", local.to_str().unwrap(), "init"]);
    let o = e
        .cmd(&["-r", local.to_str().unwrap(), "copy", "--from-repo", &sshd.url()])
        .env("ARCA_SSH_COMMAND", sshd.ssh("read"))
        .env("ARCA_FROM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(e.ok(&["-r", local.to_str().unwrap(), "--json", "snapshots"]).matches("\"id\"").count(), 2);

    // A hostile client with the append key.
    let h = sshd.storage("append");
    assert_eq!(h.mode(), "append");
    let snaps = h.list(ObjectKind::Snapshot).unwrap();
    let (victim, _) = &snaps[0];
    let refused = |r: Result<(), StorageError>, what: &str| {
        let e = r.expect_err(what).to_string();
        assert!(e.contains("refused by server"), "{what}: {e}");
        e
    };
    let e1 = refused(h.delete(ObjectKind::Snapshot, victim), "delete");
    assert!(e1.contains("(append-only): delete of snapshots/"), "{e1}");
    let packs = h.list(ObjectKind::Pack).unwrap();
    let (pack, size) = &packs[0];
    refused(h.delete(ObjectKind::Pack, pack), "delete a pack");
    refused(h.delete(ObjectKind::Index, &h.list(ObjectKind::Index).unwrap()[0].0), "delete an index");
    refused(h.delete(ObjectKind::Key, &h.list(ObjectKind::Key).unwrap()[0].0), "delete a key");
    refused(h.put(ObjectKind::Snapshot, victim, b"overwritten"), "overwrite a snapshot");
    let original = h.get(ObjectKind::Pack, pack).unwrap();
    refused(h.put(ObjectKind::Pack, pack, &original[..(*size as usize) / 2]), "truncate a pack");
    refused(h.put(ObjectKind::Config, "config", b"evil"), "overwrite config");
    refused(h.put(ObjectKind::Index, &hex_of(b"a"), b"b"), "a name that does not match the contents");
    refused(h.put(ObjectKind::Received, &hex_of(b"a"), b"2000-01-01T00:00:00Z"), "forge a received record");
    refused(h.put(ObjectKind::Mark, &hex_of(b"m"), b"m"), "write a mark");
    refused(h.put(ObjectKind::Pack, "../../../../tmp/evil", b"x"), "a path outside the repository");
    refused(h.get(ObjectKind::Config, "../../etc/passwd").map(|_| ()), "read outside the repository");
    let other_lock = hex_of(b"someone else's lock");
    std::fs::create_dir_all(sshd.repo.join("locks")).unwrap();
    std::fs::write(sshd.repo.join("locks").join(&other_lock), b"lock").unwrap();
    refused(h.delete(ObjectKind::Lock, &other_lock), "delete another session's lock");
    refused(h.put(ObjectKind::Lock, &other_lock, b"mine now"), "overwrite another session's lock");
    std::fs::remove_file(sshd.repo.join("locks").join(&other_lock)).unwrap();
    assert_eq!(h.get(ObjectKind::Pack, pack).unwrap(), original, "nothing changed");
    // Snapshots dated years ahead and behind, through the real client.
    sshd.ok(&e, "append", &["backup", s, "--time", "2036-01-01 00:00:00"]);
    sshd.ok(&e, "append", &["backup", s, "--time", "2009-06-01 00:00:00"]);
    // 10,000 junk snapshots: accepted (the server cannot read them) but harmless.
    for i in 0..10_000u32 {
        let junk = format!("junk {i}").into_bytes();
        h.put(ObjectKind::Snapshot, &hex_of(&junk), &junk).unwrap();
    }
    drop(h);
    // Every earlier snapshot restores exactly.
    let t2 = e.path("t2");
    sshd.ok(&e, "full", &["restore", &format!("{}:{s}", &genuine[..8]), "--target", t2.to_str().unwrap()]);
    assert_eq!(rsync_diff(&saved, &t2), "");
    // The administrator's forget keeps the genuine newest and reports the false-dated ones.
    let out = sshd.ok(&e, "full", &["--json", "forget", "--keep-last", "1"]);
    let v = last_json(&out);
    let decisions = v["decisions"].as_array().unwrap();
    let kept: Vec<&serde_json::Value> =
        decisions.iter().filter(|d| !d["reasons"].as_array().unwrap().is_empty()).collect();
    assert!(kept.iter().any(|d| d["id"] == genuine.as_str() && d["reasons"][0] == "last #1"), "{v}");
    let suspicious = kept.iter().filter(|d| d["reasons"][0].as_str().unwrap().starts_with("suspicious")).count();
    assert_eq!(suspicious, 2, "{v}");
    assert_eq!(v["removed"].as_array().unwrap().len(), 1, "only the older genuine snapshot goes: {v}");
    assert!(out.contains("\"type\":\"warning\""), "suspicious snapshots are reported");
    let t3 = e.path("t3");
    sshd.ok(&e, "full", &["restore", &format!("{}:{s}", &genuine[..8]), "--target", t3.to_str().unwrap()]);
    assert_eq!(rsync_diff(&saved, &t3), "");
}

#[test]
fn a_server_without_a_repository_serves_nothing_and_restrict_to_confines() {
    if !sshd_here() {
        return;
    }
    let e = Env::new();
    let arca = env!("CARGO_BIN_EXE_arca");
    let run = |args: &[&str], repo: &str| {
        let mut child = Command::new(arca)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        arca_format::wire::write_frame(
            &mut input,
            &arca_format::wire::Request::Hello { versions: vec![1], repo: repo.into() },
        )
        .unwrap();
        input.flush().unwrap();
        let mut out = child.stdout.take().unwrap();
        let r: arca_format::wire::Response = arca_format::wire::read_frame(&mut out).unwrap();
        drop(input);
        child.wait().unwrap();
        r
    };
    let base = e.path("srv");
    std::fs::create_dir_all(base.join("a")).unwrap();
    let b = base.to_str().unwrap();
    let r = run(&["serve", "--stdio", "--restrict-to", b], &format!("{b}/a"));
    assert!(matches!(r, arca_format::wire::Response::Hello { .. }), "{r:?}");
    for outside in ["/etc", &format!("{b}/../x"), &format!("{b}/a/../../y")] {
        let r = run(&["serve", "--stdio", "--restrict-to", b], outside);
        assert!(format!("{r:?}").contains("outside") || format!("{r:?}").contains("Refused"), "{outside}: {r:?}");
    }
    let r = run(&["serve", "--stdio"], "/tmp");
    assert!(format!("{r:?}").contains("serves nothing"), "{r:?}");
}

#[test]
fn a_dropped_connection_is_reopened_and_the_backup_completes() {
    if !sshd_here() {
        return;
    }
    let e = Env::new();
    let sshd = Sshd::start(&e);
    sshd.ok(&e, "full", &["init"]);
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..6u64 {
        std::fs::write(src.join(format!("f{i}")), random_bytes(8 << 20, i)).unwrap();
    }
    let s = src.to_str().unwrap().to_string();
    // With the append key: after a reconnection the session must still own its lock.
    let child = sshd.arca(&e, "append", &["backup", &s]).stderr(Stdio::piped()).spawn().unwrap();
    // Cut the connection twice while data flows: kill the server end.
    let pattern = format!("serve --stdio --repo {}", sshd.repo.display());
    let mut cuts = 0;
    for _ in 0..2 {
        std::thread::sleep(std::time::Duration::from_millis(700));
        if Command::new("pkill").args(["-9", "-f", &pattern]).status().unwrap().success() {
            cuts += 1;
        }
    }
    let o = child.wait_with_output().unwrap();
    assert!(cuts >= 1, "the test must actually cut a connection");
    assert!(
        o.status.success(),
        "the backup survives {cuts} dropped connections: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = sshd.ok(&e, "full", &["--json", "check", "--read-data"]);
    assert!(v.contains("\"ok\":true"), "{v}");
    let t = e.path("t");
    sshd.ok(&e, "full", &["restore", &format!("latest:{s}"), "--target", t.to_str().unwrap()]);
    assert_eq!(rsync_diff(&src, &t), "");
    println!("remote: backup completed across {cuts} dropped connections");
}

#[test]
fn a_backup_through_a_faulty_network_completes_or_fails_clearly() {
    if !sshd_here() {
        return;
    }
    let e = Env::new();
    let sshd = Sshd::start(&e);
    sshd.ok(&e, "full", &["init"]);
    // Connection 0: the admin's `snapshots` below passes; 1 is cut mid-upload; 2 stalls; then fine.
    let (port, connections) = fault_proxy(sshd.port, vec![Fault::Pass, Fault::Cut(3 << 20), Fault::Stall(2 << 20)]);
    let url = sshd.url_through(port);
    let ssh = format!("{} -o ServerAliveInterval=1 -o ServerAliveCountMax=2", sshd.ssh("append"));
    let run = |args: &[&str]| {
        let mut c = e.cmd(args);
        c.env("ARCA_REPOSITORY", &url).env("ARCA_SSH_COMMAND", &ssh);
        c.output().unwrap()
    };
    assert!(run(&["snapshots"]).status.success());
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..3u64 {
        std::fs::write(src.join(format!("f{i}")), random_bytes(6 << 20, 40 + i)).unwrap();
    }
    let s = src.to_str().unwrap();
    let start = std::time::Instant::now();
    let o = run(&["backup", s]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let used = connections.load(std::sync::atomic::Ordering::Relaxed);
    assert!(used >= 4, "the cut and the stall each cost a connection: {used}\n{err}");
    if o.status.success() {
        let t = e.path("t");
        sshd.ok(&e, "full", &["restore", &format!("latest:{s}"), "--target", t.to_str().unwrap()]);
        assert_eq!(rsync_diff(&src, &t), "");
    } else {
        assert!(err.contains("connection to ssh://") && err.contains("lost"), "a clear error: {err}");
    }
    // Either way the repository is consistent and holds no lock.
    let v = sshd.ok(&e, "full", &["--json", "check", "--read-data"]);
    assert!(v.contains("\"ok\":true"), "{v}");
    assert!(std::fs::read_dir(sshd.repo.join("locks")).unwrap().next().is_none(), "{err}");
    println!(
        "remote: backup through a cut and a stall: {} in {:?} over {used} connections",
        if o.status.success() { "completed" } else { "failed cleanly" },
        start.elapsed()
    );
    // --limit-upload: 6 MiB at 2 MiB/s (1 s burst) takes at least 2 s.
    std::fs::write(src.join("f0"), random_bytes(6 << 20, 99)).unwrap();
    let start = std::time::Instant::now();
    let o = run(&["backup", s, "--limit-upload", "2048"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(start.elapsed() >= std::time::Duration::from_millis(1800), "{:?}", start.elapsed());
}

/// `--connections N` on ssh://: requests that overlap (a restore's spans, index reads) get up
/// to N ssh sessions, each its own `arca serve`; 1 keeps one session. A wrapper around ssh
/// counts the sessions each command opens.
#[test]
fn ssh_requests_share_a_pool_of_sessions_as_large_as_connections() {
    if !sshd_here() {
        return;
    }
    let e = Env::new();
    let sshd = Sshd::start(&e);
    let (ssh, log) = sshd.counting_ssh(&e, "full");
    let sessions = |connections: &str, args: &[&str]| -> usize {
        let _ = std::fs::remove_file(&log);
        let mut c = e.cmd(&[&["--connections", connections], args].concat());
        c.env("ARCA_REPOSITORY", sshd.url()).env("ARCA_SSH_COMMAND", &ssh);
        let o = c.output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(&log).unwrap_or_default().lines().count()
    };
    assert_eq!(sessions("1", &["init"]), 1);
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..6u64 {
        std::fs::write(src.join(format!("f{i}")), random_bytes(6 << 20, 70 + i)).unwrap();
    }
    let s = src.to_str().unwrap();
    assert_eq!(sessions("1", &["backup", s]), 1, "one connection: one session");
    let t = e.path("t");
    let used = sessions("3", &["restore", &format!("latest:{s}"), "--target", t.to_str().unwrap()]);
    assert!((2..=3).contains(&used), "a restore's overlapping reads open up to 3 sessions: {used}");
    assert_eq!(rsync_diff(&src, &t), "");
    std::fs::write(src.join("f0"), random_bytes(6 << 20, 99)).unwrap();
    assert!(sessions("3", &["backup", s]) <= 3);
    let check = e
        .cmd(&["--connections", "3", "--json", "check", "--read-data"])
        .env("ARCA_REPOSITORY", sshd.url())
        .env("ARCA_SSH_COMMAND", &ssh)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&check.stdout).contains("\"ok\":true"), "{check:?}");
    println!("remote: a restore over ssh:// used {used} sessions with --connections 3");
}

/// ssh:// through a link that loses 1% of its segments both ways, with sessions in parallel:
/// a backup and a restore complete exactly.
#[test]
fn a_backup_and_restore_over_ssh_survive_one_percent_packet_loss() {
    if !sshd_here() {
        return;
    }
    let e = Env::new();
    let sshd = Sshd::start(&e);
    sshd.ok(&e, "full", &["init"]);
    let (port, _) = fault_proxy(sshd.port, vec![Fault::Lossy(10); 64]);
    let url = sshd.url_through(port);
    let run = |args: &[&str]| {
        let o = e.cmd(args).env("ARCA_REPOSITORY", &url).env("ARCA_SSH_COMMAND", sshd.ssh("full")).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..3u64 {
        std::fs::write(src.join(format!("f{i}")), random_bytes(4 << 20, 50 + i)).unwrap();
    }
    let s = src.to_str().unwrap();
    let start = std::time::Instant::now();
    run(&["--connections", "3", "backup", s]);
    let backup = start.elapsed();
    let t = e.path("t");
    let start = std::time::Instant::now();
    run(&["--connections", "3", "restore", &format!("latest:{s}"), "--target", t.to_str().unwrap()]);
    let restore = start.elapsed();
    assert_eq!(rsync_diff(&src, &t), "");
    assert!(run(&["--json", "check", "--read-data"]).contains("\"ok\":true"));
    println!("remote: 12 MiB over ssh with 1% loss: backup {backup:?}, restore {restore:?}");
}

#[test]
fn sftp_conformance_and_a_backup() {
    if !sshd_here() {
        return;
    }
    let e = Env::new();
    let sshd = Sshd::start(&e);
    let root = e.path("sftp-root");
    let mut cmd = shlex_split(&sshd.ssh("sftp"));
    cmd.extend(["-p".into(), sshd.port.to_string(), "-s".into(), "root@127.0.0.1".into(), "sftp".into()]);
    let url = format!("sftp://root@127.0.0.1:{}{}", sshd.port, root.display());
    let s = arca_backends::SftpStorage::connect(url.clone(), cmd, root.display().to_string(), 4).unwrap();
    conformance(&s, "sftp");
    drop(s);
    // The whole tool over sftp://, with the ssh options from ARCA_SSH_COMMAND.
    let repo = e.path("sftp-repo");
    let url = format!("sftp://root@127.0.0.1:{}{}", sshd.port, repo.display());
    let run = |args: &[&str]| {
        let mut c = e.cmd(args);
        c.env("ARCA_REPOSITORY", &url).env("ARCA_SSH_COMMAND", sshd.ssh("sftp"));
        let o = c.output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    run(&["init"]);
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), random_bytes(20 << 20, 1)).unwrap();
    std::fs::write(src.join("b"), b"bee").unwrap();
    let sp = src.to_str().unwrap();
    run(&["backup", sp]);
    std::fs::write(src.join("b"), b"bee two").unwrap();
    run(&["backup", sp]);
    run(&["forget", "--keep-last", "1", "--prune"]);
    assert!(run(&["--json", "check", "--read-data"]).contains("\"ok\":true"));
    let t = e.path("t");
    run(&["restore", &format!("latest:{sp}"), "--target", t.to_str().unwrap()]);
    assert_eq!(rsync_diff(&src, &t), "");
    // The restore's overlapping reads spread over up to --connections sessions.
    let (ssh, log) = sshd.counting_ssh(&e, "sftp");
    let t2 = e.path("t2");
    let o = e
        .cmd(&["--connections", "3", "restore", &format!("latest:{sp}"), "--target", t2.to_str().unwrap()])
        .env("ARCA_REPOSITORY", &url)
        .env("ARCA_SSH_COMMAND", &ssh)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(rsync_diff(&src, &t2), "");
    let sessions = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!((2..=3).contains(&sessions), "sftp sessions: {sessions}");
    assert!(
        !std::fs::read_dir(repo.join("data")).unwrap().flatten().any(|d| std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .any(|f| f.file_name().to_string_lossy().contains(".tmp-"))),
        "no temporary files left"
    );
}

/// sshd, which scripts/test installs (openssh-server).
fn sshd_here() -> bool {
    have("sshd (Debian openssh-server)", Path::new("/usr/sbin/sshd").exists())
}
