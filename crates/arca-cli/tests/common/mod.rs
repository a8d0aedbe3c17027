//! Helpers shared by the integration tests: a repository in a temporary directory and the
//! built `arca` binary (cargo builds it once for all test files).
#![allow(dead_code)]

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
    let o = Command::new("rsync")
        .args(["-naHAXc", "--numeric-ids", "--modify-window=-1", "--itemize-changes"])
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
