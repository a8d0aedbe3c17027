//! Crash consistency by time: `arca backup`, `arca forget --prune`, `arca copy` and
//! `arca repair index` killed with SIGKILL at random moments. After every kill the repository
//! checks without errors, and at the end every snapshot completed before restores
//! byte-identical and the same command run again completes. ARCA_CRASH_ROUNDS sets the number
//! of kills per command (default 50); each test prints a `crash:` line with its counts.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rounds() -> u64 {
    std::env::var("ARCA_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(50)
}

/// A small xorshift generator: deterministic rounds.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Run `cmd` and kill it after `delay` unless it ended first; true if it was killed.
fn kill_after(mut cmd: Command, delay: Duration) -> bool {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while start.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let killed = child.try_wait().unwrap().is_none();
    if killed {
        child.kill().unwrap();
    }
    child.wait().unwrap();
    killed
}

/// How long a full run of `cmd` takes, to spread the kills over it.
fn duration_of(mut cmd: Command) -> Duration {
    let t = Instant::now();
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    t.elapsed().max(Duration::from_millis(20))
}

fn assert_checks(e: &Env, what: &str, round: u64, read_data: bool) {
    let mut args = vec!["check"];
    if read_data {
        args.push("--read-data");
    }
    let v = e.json(&args);
    assert_eq!(v["ok"], true, "{what}, round {round}: check after a kill: {v}");
}

fn restores(e: &Env, snap: &str, src: &Path, expected: &Path, name: &str) {
    let t = e.path(name);
    e.ok(&["restore", &format!("{snap}:{}", src.display()), "--target", t.to_str().unwrap()]);
    assert_eq!(rsync_diff(expected, &t), "", "snapshot {snap} restores byte-identical");
    std::fs::remove_dir_all(&t).unwrap();
}

fn files(src: &Path, n: u64, seed: u64) {
    std::fs::create_dir_all(src).unwrap();
    for i in 0..n {
        std::fs::write(src.join(format!("f{i}")), random_bytes(20_000 + (i as usize * 37) % 5000, seed + i)).unwrap();
    }
}

#[test]
fn killed_backups_leave_a_consistent_repository() {
    let e = Env::init();
    let src = e.path("src");
    files(&src.join("many"), 300, 0);
    let s = src.to_str().unwrap().to_string();
    let base = e.backup(&[&s]);
    let copy = e.path("base-copy");
    sh(&format!("cp -a {s} {}", copy.display()));
    let n = rounds();
    let mut rng = Rng(0x9E3779B97F4A7C15);
    let mut killed = 0;
    // The kills spread over the time a real backup of a round's work takes (new data, every
    // file re-read); the shortest of two such runs, so a cold first run does not stretch the
    // window past the backups it is meant to interrupt.
    let full = (0..2)
        .map(|i| {
            std::fs::write(src.join("big"), random_bytes(6 << 20, 900 + i)).unwrap();
            duration_of(e.cmd(&["backup", &s, "--rehash"]))
        })
        .min()
        .unwrap();
    for round in 0..n {
        // New data each round so the backup has work to be interrupted in.
        std::fs::write(src.join("big"), random_bytes(6 << 20, 1000 + round)).unwrap();
        let delay = Duration::from_nanos(rng.next() % (full.as_nanos() as u64 * 5 / 4));
        killed += kill_after(e.cmd(&["backup", &s, "--rehash"]), delay) as u64;
        assert_checks(&e, "backup", round, round % 10 == 0);
    }
    assert_checks(&e, "backup", n, true);
    let moved = e.path("src-now");
    sh(&format!("cp -a {s} {}", moved.display()));
    restores(&e, &base[..8], &src, &copy, "base");
    // The interrupted backup, run again, completes.
    e.ok(&["backup", &s]);
    restores(&e, "latest", &src, &moved, "last");
    assert!(killed * 2 >= n, "most rounds must actually kill: {killed}/{n}");
    println!("crash: backup {killed} killed in {n} rounds, 0 inconsistent");
}

#[test]
fn killed_prunes_leave_a_consistent_repository() {
    let e = Env::init();
    let src = e.path("src");
    files(&src, 60, 0);
    let s = src.to_str().unwrap().to_string();
    let base = e.backup(&[&s, "--tag", "base"]);
    let copy = e.path("base-copy");
    sh(&format!("cp -a {s} {}", copy.display()));
    let n = rounds();
    let mut rng = Rng(0x2545F4914F6CDD1D);
    let mut killed = 0;
    let prune = |e: &Env| e.cmd(&["forget", "--keep-last", "2", "--keep-tag", "base", "--prune", "--max-unused", "0%"]);
    let full = duration_of(prune(&e));
    for round in 0..n {
        // Each round changes a third of the files, so every prune deletes and repacks.
        for i in 0..20 {
            let f = (rng.next() % 60) as usize;
            std::fs::write(src.join(format!("f{f}")), random_bytes(20_000 + i, 5000 + round * 100 + i as u64)).unwrap();
        }
        e.backup(&[&s]);
        let delay = Duration::from_nanos(rng.next() % (full.as_nanos() as u64 * 3 / 2));
        killed += kill_after(prune(&e), delay) as u64;
        assert_checks(&e, "prune", round, round % 10 == 0);
    }
    // The prune run again completes and leaves nothing waiting.
    let v = e.json(&["forget", "--keep-last", "2", "--keep-tag", "base", "--prune", "--max-unused", "0%"]);
    assert_eq!(v["prune"]["swept"]["marks_waiting"], 0, "{v}");
    assert_checks(&e, "prune", n, true);
    restores(&e, &base[..8], &src, &copy, "base");
    restores(&e, "latest", &src, &src, "last");
    assert!(killed * 2 >= n, "most rounds must actually kill: {killed}/{n}");
    println!("crash: prune {killed} killed in {n} rounds, 0 inconsistent");
}

#[test]
fn killed_copies_and_index_repairs_leave_a_consistent_repository() {
    let src_env = Env::init();
    let src = src_env.path("src");
    files(&src, 40, 0);
    let s = src.to_str().unwrap().to_string();
    let dst = Env::init();
    let copy = |round: u64| {
        let mut c = dst.cmd(&["copy", "--from-repo", src_env.repo.to_str().unwrap()]);
        c.env("ARCA_FROM_PASSWORD", PASSWORD);
        let _ = round;
        c
    };
    let n = rounds();
    let mut rng = Rng(0x5DEECE66D);
    let (mut killed_copy, mut killed_repair) = (0, 0);
    src_env.backup(&[&s]);
    let full_copy = duration_of(copy(0));
    let full_repair = duration_of(dst.cmd(&["repair", "index"]));
    for round in 0..n {
        std::fs::write(src.join(format!("new{round}")), random_bytes(3 << 20, 9000 + round)).unwrap();
        src_env.backup(&[&s]);
        // A point within the first copy's time: a round copies less than the first (one new
        // snapshot), so up to twice that time killed too few rounds on a busy machine.
        let delay = Duration::from_nanos(rng.next() % (full_copy.as_nanos() as u64).max(1));
        killed_copy += kill_after(copy(round), delay) as u64;
        assert_checks(&dst, "copy", round, round % 10 == 0);
        // repair index is quick: try again with a shorter delay until one run is killed.
        for attempt in 1..=5u64 {
            let delay = Duration::from_nanos(rng.next() % (full_repair.as_nanos() as u64 / attempt));
            if kill_after(dst.cmd(&["repair", "index"]), delay) {
                killed_repair += 1;
                break;
            }
        }
        assert_checks(&dst, "repair index", round, false);
    }
    // Both run again complete; every source snapshot is in the destination and restores.
    let o = copy(n).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    dst.ok(&["repair", "index"]);
    assert_checks(&dst, "copy", n, true);
    assert_eq!(snapshot_ids(&dst).len(), snapshot_ids(&src_env).len());
    restores(&dst, "latest", &src, &src, "last");
    assert!(
        killed_copy * 2 >= n && killed_repair * 2 >= n,
        "rounds must actually kill: copy {killed_copy}, repair {killed_repair} of {n}"
    );
    println!("crash: copy {killed_copy} killed in {n} rounds, repair index {killed_repair} killed in {n} rounds, 0 inconsistent");
}

#[test]
fn commands_killed_at_named_fail_points_leave_a_consistent_repository() {
    let src_env = Env::init();
    let src = src_env.path("src");
    files(&src, 40, 0);
    let s = src.to_str().unwrap().to_string();
    let base = src_env.backup(&[&s]);
    let copy = src_env.path("base-copy");
    sh(&format!("cp -a {s} {}", copy.display()));
    let dst = Env::init();
    let mut killed = 0;
    // (which repository, command, fail point)
    let cases: &[(&str, &[&str], &str)] = &[
        ("src", &["backup", "--rehash"], "writer-after-pack:1"),
        ("src", &["backup", "--rehash"], "writer-after-pack:3"),
        ("src", &["backup", "--rehash"], "backup-before-snapshot"),
        ("dst", &["copy"], "writer-after-pack:1"),
        ("dst", &["copy"], "writer-after-pack:2"),
        ("src", &["repair", "index"], "repair-index-written"),
        ("src", &["repair", "index"], "repair-index-deleted"),
    ];
    for (round, (which, args, point)) in cases.iter().enumerate() {
        std::fs::write(src.join("big"), random_bytes(24 << 20, 700 + round as u64)).unwrap();
        let mut a: Vec<&str> = args.to_vec();
        if *which == "src" && args[0] == "backup" {
            a.push(&s);
        }
        let from = src_env.repo.to_str().unwrap().to_string();
        if args[0] == "copy" {
            src_env.backup(&[&s]);
            a.extend(["--from-repo", &from]);
        }
        let e = if *which == "src" { &src_env } else { &dst };
        let o = e.cmd(&a).env("ARCA_FAILPOINT", point).env("ARCA_FROM_PASSWORD", PASSWORD).output().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(o.status.signal(), Some(9), "{args:?} reaches {point}: {}", String::from_utf8_lossy(&o.stderr));
        killed += 1;
        assert_checks(e, point, round as u64, true);
        // The same command run again completes; a backup re-uploads only what had not arrived.
        let mut again = vec!["--json"];
        again.extend(&a);
        let o = e.cmd(&again).env("ARCA_FROM_PASSWORD", PASSWORD).output().unwrap();
        assert!(o.status.success(), "{args:?} after a kill at {point}: {}", String::from_utf8_lossy(&o.stderr));
        if args[0] == "backup" && point.starts_with("writer-after-pack") {
            let v = last_json(&String::from_utf8_lossy(&o.stdout));
            let stored = v["summary"]["bytes_added_stored"].as_u64().unwrap();
            assert!(stored < 12 << 20, "{point}: packs that arrived are reused, not sent again ({stored} bytes)");
        }
        assert_checks(e, point, round as u64, false);
    }
    restores(&src_env, &base[..8], &src, &copy, "base");
    src_env.backup(&[&s]);
    restores(&src_env, "latest", &src, &src, "last");
    assert_eq!(snapshot_ids(&dst).len() + 1, snapshot_ids(&src_env).len(), "every copied snapshot arrived once");
    println!("crash: backup, copy and repair index killed at {killed} named fail points, 0 inconsistent");
}
