//! Crash consistency by time: `arca backup` killed with SIGKILL at random moments. After every
//! kill the repository checks without errors, completed snapshots restore byte-identical, and
//! the same backup run again completes. ARCA_CRASH_ROUNDS sets the number of kills (default 20).

mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn killed_backups_leave_a_consistent_repository() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(src.join("many")).unwrap();
    for i in 0..300u64 {
        std::fs::write(src.join(format!("many/f{i}")), random_bytes(20_000 + (i as usize * 37) % 5000, i)).unwrap();
    }
    let s = src.to_str().unwrap().to_string();
    let base = e.backup(&[&s]);
    let base_restore = e.path("base");
    e.ok(&["restore", &format!("{}:{s}", &base[..8]), "--target", base_restore.to_str().unwrap()]);
    let rounds: u64 = std::env::var("ARCA_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let mut rng = 0x9E3779B97F4A7C15u64;
    let mut killed = 0;
    for round in 0..rounds {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // New data each round so the backup has work to be interrupted in.
        std::fs::write(src.join(format!("big{round}")), random_bytes(6 << 20, 1000 + round)).unwrap();
        let delay = Duration::from_millis(rng % 400);
        let mut child = e
            .cmd(&["backup", &s, "--rehash"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while start.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        let v = e.json(&["check", "--read-data"]);
        assert_eq!(v["ok"], true, "round {round}: check after a kill: {v}");
    }
    // Every snapshot still restores; the first one byte-identical to what it restored before.
    let again = e.path("again");
    e.ok(&["restore", &format!("{}:{s}", &base[..8]), "--target", again.to_str().unwrap()]);
    assert_eq!(rsync_diff(&base_restore, &again), "");
    // And the interrupted backup, run again, completes.
    e.ok(&["backup", &s]);
    let last = e.path("last");
    e.ok(&["restore", &format!("latest:{s}"), "--target", last.to_str().unwrap()]);
    assert_eq!(rsync_diff(&src, &last), "");
    println!("crash: backup {killed}/{rounds} killed, 0 inconsistent");
}
