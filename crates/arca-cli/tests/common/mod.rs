//! Helpers shared by the integration tests: a repository in a temporary directory and the
//! built `arca` binary (cargo builds it once for all test files).
#![allow(dead_code)]

pub mod cluster;
pub mod dbs;
pub mod loopfs;
pub mod weed;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const PASSWORD: &str = "correct horse battery staple";

/// A scratch directory with a repository path inside.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
}

impl Env {
    /// A new scratch directory (on disk, not tmpfs, so xattrs and sparse files behave).
    pub fn new() -> Env {
        let dir = tempfile::Builder::new().prefix("arca-test-").tempdir_in("/var/tmp").expect("temp dir");
        let repo = dir.path().join("repo");
        Env { dir, repo }
    }

    /// A new scratch directory with an initialised repository.
    pub fn init() -> Env {
        let e = Env::new();
        e.ok(&["init"]);
        e
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `arca` with this repository and password set.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_arca"));
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"))
            .env("ARCA_REPOSITORY", &self.repo)
            .env("ARCA_PASSWORD", PASSWORD)
            .env("ARCA_KDF_MEMORY_KIB", "1024")
            // Run history stays in the scratch directory (root's would be /var/lib/arca).
            .env("ARCA_STATE_DIR", self.dir.path().join("state"))
            .env("TZ", "UTC")
            .stdin(Stdio::null());
        c
    }

    /// Run and return the output, whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run arca")
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "arca {args:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Run with --json and parse the last JSON line of stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.ok(&a);
        last_json(&out)
    }

    /// Back up `paths` and return the new snapshot id.
    pub fn backup(&self, args: &[&str]) -> String {
        let mut a = vec!["backup"];
        a.extend_from_slice(args);
        let v = self.json(&a);
        v["snapshot_id"].as_str().expect("snapshot id").to_string()
    }

    /// Every byte stored in the repository, file by file.
    pub fn repo_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = vec![];
        walk_files(&self.repo, &mut out);
        out.sort();
        out
    }
}

fn walk_files(p: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for e in std::fs::read_dir(p).expect("read_dir").flatten() {
        let path = e.path();
        if path.is_dir() {
            walk_files(&path, out);
        } else {
            out.push((path.clone(), std::fs::read(&path).expect("read")));
        }
    }
}

/// Parse the last non-empty line of `s` as JSON (the summary of a long command), or the whole
/// of `s` if it is one document.
pub fn last_json(s: &str) -> serde_json::Value {
    if let Ok(v) = serde_json::from_str(s) {
        return v;
    }
    let line = s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Run a shell script; panic with its output if it fails.
pub fn sh(script: &str) -> String {
    let o = Command::new("bash").arg("-ec").arg(script).output().expect("bash");
    assert!(
        o.status.success(),
        "script failed: {script}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Deterministic pseudo-random bytes (xorshift), so tests do not depend on /dev/urandom speed.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// `rsync -naHAXc` between two trees: empty output means identical (content, metadata, xattrs,
/// ACLs, hard links, ns times).
pub fn rsync_diff(src: &Path, dst: &Path) -> String {
    rsync_itemized(src, dst, &["--modify-window=-1"])
}

/// What `rsync -naHAXc --delete` would change to make `dst` equal to `src` (extra entries in
/// `dst` count too).
pub fn rsync_diff_both_ways(src: &Path, dst: &Path) -> String {
    rsync_itemized(src, dst, &["--delete"])
}

fn rsync_itemized(src: &Path, dst: &Path, extra: &[&str]) -> String {
    let o = Command::new("rsync")
        .args(["-naHAXc", "--numeric-ids", "--itemize-changes"])
        .args(extra)
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", dst.display()))
        .output()
        .expect("rsync must be installed (scripts/test installs it)");
    assert!(o.status.success(), "rsync failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Snapshot ids in the repository.
pub fn snapshot_ids(e: &Env) -> Vec<String> {
    let v = e.json(&["snapshots"]);
    v.as_array().expect("array").iter().map(|s| s["id"].as_str().expect("id").to_string()).collect()
}

/// Build the hostile tree of the core issue under `src`.
pub fn build_tree(src: &std::path::Path) {
    let s = src.display();
    std::fs::create_dir_all(src).unwrap();
    std::fs::write(src.join("random64"), random_bytes(64 << 20, 1)).unwrap();
    let text: Vec<u8> = (0..(64 << 20) / 64)
        .flat_map(|i: u32| format!("line {i:>10} of a very compressible text file....\n").into_bytes())
        .take(64 << 20)
        .collect();
    std::fs::write(src.join("text64"), text).unwrap();
    for (name, len) in [
        ("b_min_minus", 512 * 1024 - 1),
        ("b_min", 512 * 1024),
        ("b_min_plus", 512 * 1024 + 1),
        ("b_max", 8 << 20),
        ("b_max_plus", (8 << 20) + 1),
    ] {
        std::fs::write(src.join(name), random_bytes(len, len as u64)).unwrap();
    }
    sh(&format!(
        r#"
cd '{s}'
: > empty1; mkdir -p emptydir/inner; : > emptydir/empty2
truncate -s 1G sparse; printf 'region one' | dd of=sparse bs=1 seek=4096 conv=notrunc status=none
printf 'region two' | dd of=sparse bs=1 seek=700000000 conv=notrunc status=none
mkdir -p h1 h2/deeper; echo linked > h1/a; ln h1/a h2/b; ln h1/a h2/deeper/c
mkdir sym; ln -s ../h1/a sym/relative; ln -s /etc/hostname sym/absolute; ln -s nowhere/at/all sym/dangling; ln -s ../h1 sym/todir
mkfifo fifo; mknod chardev c 1 3; mknod blockdev b 7 200
printf x > $'bad\xff\xfename'; printf y > $'new\nline'; printf z > 'with spaces  here'
printf w > "$(head -c 255 < /dev/zero | tr '\0' 'L')"
d=deep; for i in $(seq 1 100); do d="$d/l$i"; done; mkdir -p "$d"; echo bottom > "$d/file"
echo xa > xattrs; setfattr -n user.color -v blue xattrs; setfattr -n user.bin -v 0x00ff10 xattrs; setfattr -n security.arca_test -v sec xattrs
echo acl > aclfile; setfacl -m u:1234:rwx,g:4321:r aclfile; mkdir acldir; setfacl -m u:1234:rx acldir; setfacl -d -m g:555:rx acldir
echo su > setuid; chmod 4755 setuid; echo sg > setgid; chmod 2750 setgid; mkdir sticky; chmod 1777 sticky; echo none > mode0; chmod 0000 mode0
echo nobody > orphan; chown 54321:54322 orphan; mkdir orphandir; chown 54323:54324 orphandir
touch -h -d '2020-01-02 03:04:05.123456789' sym/relative random64 h1/a
find . -type d -exec touch -d '2021-05-06 07:08:09.987654321' {{}} +
"#
    ));
}

pub fn hex_of(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

/// The behaviour every backend must have.
/// The storage contract every backend must meet (`arca_storage::conformance`).
pub fn conformance(s: &dyn arca_storage::Storage, label: &str) {
    if let Err(e) = arca_storage::conformance::check(s, label) {
        panic!("{e}");
    }
}

/// How a proxied connection misbehaves.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    Pass,
    /// Close both sides after this many bytes from the client.
    Cut(u64),
    /// Stop forwarding (both ways) after this many bytes from the client, keeping the sockets open.
    Stall(u64),
    /// Lose this many of every 1,000 segments (1,448 bytes) each way, as TCP sees it: nothing
    /// is missing in the end, but the stream waits for the retransmission (20 ms, as fast
    /// retransmit on a 20 ms link; one loss in ten is a tail loss and waits for the 200 ms
    /// retransmission timeout). A user-space stand-in for netem's loss, which this kernel lacks.
    Lossy(u32),
}

/// Forward `from` to `to` in segments, `permille` of which wait as a retransmission would.
fn forward_lossy(mut from: std::net::TcpStream, mut to: std::net::TcpStream, permille: u32, seed: u64) {
    use std::io::{Read, Write};
    let mut x = seed | 1;
    let mut buf = [0u8; 16 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for seg in buf[..n].chunks(1448) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (x % 1000) < permille as u64 {
                let wait = if (x >> 20).is_multiple_of(10) { 200 } else { 20 };
                std::thread::sleep(std::time::Duration::from_millis(wait));
            }
            if to.write_all(seg).is_err() {
                let _ = from.shutdown(std::net::Shutdown::Both);
                return;
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// A TCP proxy to `target` whose n-th connection behaves as `plan[n]` (then `Pass`).
pub fn fault_proxy(target: u16, plan: Vec<Fault>) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for (i, client) in listener.incoming().enumerate() {
            let Ok(client) = client else { continue };
            seen.fetch_add(1, Ordering::Relaxed);
            let fault = plan.get(i).copied().unwrap_or(Fault::Pass);
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
            if let Fault::Lossy(permille) = fault {
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let seed = 0x9e37_79b9_7f4a_7c15 ^ i as u64;
                std::thread::spawn(move || forward_lossy(client, server, permille, seed));
                std::thread::spawn(move || forward_lossy(s2, c2, permille, seed.rotate_left(17)));
                continue;
            }
            let stalled = std::sync::Arc::new(AtomicBool::new(false));
            let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_read, mut c_write) = (server, client);
            let st = stalled.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 << 10];
                let mut total = 0u64;
                loop {
                    let n = match c_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    total += n as u64;
                    match fault {
                        Fault::Cut(after) if total >= after => {
                            let _ = c_read.shutdown(Shutdown::Both);
                            let _ = s_write.shutdown(Shutdown::Both);
                            return;
                        }
                        Fault::Stall(after) if total >= after => {
                            st.store(true, Ordering::Relaxed);
                            // Hold the sockets open, forwarding nothing, until the client leaves.
                            while c_read.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
                            let _ = s_write.shutdown(Shutdown::Both);
                            return;
                        }
                        _ => {}
                    }
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = s_write.shutdown(Shutdown::Both);
            });
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 << 10];
                loop {
                    let n = match s_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if stalled.load(Ordering::Relaxed) {
                        continue;
                    }
                    if c_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c_write.shutdown(Shutdown::Both);
            });
        }
    });
    (port, count)
}

/// Whether a test can use a part of the machine it needs (sshd, SeaweedFS, FUSE, root). Under
/// `scripts/test` (ARCA_REQUIRE_PARTS=1), where the parts are promised, a missing one fails the
/// test loudly. In a plain `cargo test` on a laptop without it, the test says why it did not
/// run and passes over its body (returns false).
pub fn have(part: &str, present: bool) -> bool {
    if present {
        return true;
    }
    if std::env::var_os("ARCA_REQUIRE_PARTS").is_some() {
        panic!("{part} is missing, and scripts/test promises it (it installs and starts what the tests need)");
    }
    eprintln!("NOT RUN: {part} is missing on this machine (scripts/test installs it)");
    false
}

/// True if running as root (device nodes, owners, mounts).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Wait (up to 2 minutes) until process `pid` is stopped: it reached a `…:stop` fail point.
pub fn wait_until_stopped(pid: u32, what: &str) {
    let state = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?.1.trim_start().chars().next()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while state() != Some('T') {
        assert!(std::time::Instant::now() < deadline, "{what} never reached its stop point");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
