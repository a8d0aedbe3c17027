//! Many hosts into one repository on a multi-node object store (issue 20): a SeaweedFS
//! cluster (master, three volume servers with every volume on two of them, filer with S3),
//! 16 client processes (each its own `--host`) backing up their own changing trees again and
//! again, `forget --prune` running alongside, and one volume server killed and started again
//! mid-run. Every backup that reported success and was not forgotten restores exactly, a
//! failed backup says why and the next one of its host succeeds, and `check --read-data` is
//! clean at the end. Prints throughput and per-client peak memory.
//!
//! ARCA_FLEET_SECS (default 30) and ARCA_FLEET_CLIENTS (default 16) set the size;
//! `scripts/figures` runs the long version.

mod common;
use common::cluster::Cluster;
use common::weed::{weed_here, KEY, SECRET};
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The tree of `host` in round `round`: some files change every round, some never.
fn write_tree(dir: &Path, host: u64, round: u64) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::create_dir_all(dir.join("var")).unwrap();
    for f in 0..6u64 {
        std::fs::write(dir.join(format!("etc/conf{f}")), random_bytes(2_000 + f as usize * 300, host * 1000 + f))
            .unwrap();
    }
    for f in 0..3u64 {
        let seed = host * 1_000_000 + round * 100 + f;
        std::fs::write(dir.join(format!("var/log{f}")), random_bytes(150_000 + f as usize * 40_000, seed)).unwrap();
    }
    std::fs::write(dir.join("round"), format!("{host} {round}\n")).unwrap();
}

/// Every file below `dir` with its bytes (the trees are written anew for comparison, so
/// times differ; contents and names must not).
fn contents(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                out.insert(e.path().strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

struct Done {
    host: u64,
    round: u64,
    snapshot: String,
}

#[test]
fn sixteen_hosts_back_up_into_one_repository_while_prune_runs_and_a_node_dies() {
    if !weed_here() {
        return;
    }
    let secs = env_num("ARCA_FLEET_SECS", 30);
    let clients = env_num("ARCA_FLEET_CLIENTS", 16);
    let mut cluster = Cluster::start();
    let e = Env::new();
    let url = "s3://fleet/repo";
    let endpoint = cluster.endpoint.clone();
    let arca = |args: &[&str]| -> Command {
        let mut c = e.cmd(args);
        c.env("ARCA_REPOSITORY", url)
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_ENDPOINT_URL", &endpoint);
        c
    };
    let o = arca(&["init"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stop = AtomicBool::new(false);
    let done: Mutex<Vec<Done>> = Mutex::new(vec![]);
    let failures: Mutex<Vec<(u64, u64, String)>> = Mutex::new(vec![]);
    let peaks: Mutex<Vec<u64>> = Mutex::new(vec![]);
    let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let prunes = Mutex::new((0u32, vec![]));
    let start = Instant::now();
    std::thread::scope(|s| {
        for host in 0..clients {
            let (arca, stop, done, failures, peaks, bytes, e) = (&arca, &stop, &done, &failures, &peaks, &bytes, &e);
            s.spawn(move || {
                let dir = e.path(&format!("host{host}"));
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    write_tree(&dir, host, round);
                    let time_out = e.path(&format!("time{host}"));
                    let mut c = arca(&["--json", "--retry-lock", "2m", "backup", "--host", &format!("host{host}")]);
                    c.arg(&dir);
                    // Under GNU time for the client's peak RSS.
                    let mut timed = Command::new("/usr/bin/time");
                    timed.args(["-f", "%M", "-o"]).arg(&time_out).arg(c.get_program()).args(c.get_args());
                    timed.env_clear().envs(c.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
                    let o = timed.output().unwrap();
                    if let Some(kb) = std::fs::read_to_string(&time_out)
                        .ok()
                        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse::<u64>().ok()))
                    {
                        peaks.lock().unwrap().push(kb);
                    }
                    if o.status.success() {
                        let v = last_json(&String::from_utf8_lossy(&o.stdout));
                        let id = v["snapshot_id"].as_str().unwrap_or_default().to_string();
                        assert!(!id.is_empty(), "a successful backup names its snapshot: {v}");
                        bytes.fetch_add(v["summary"]["bytes_read"].as_u64().unwrap_or(0), Ordering::Relaxed);
                        done.lock().unwrap().push(Done { host, round, snapshot: id });
                    } else {
                        let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
                        assert!(!err.is_empty(), "host{host} round {round}: a failed backup says why");
                        failures.lock().unwrap().push((host, round, err));
                    }
                    round += 1;
                }
            });
        }
        // Prune alongside, every few seconds.
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs(4));
                let o = arca(&["--retry-lock", "2m", "forget", "--keep-last", "2", "--prune"]).output().unwrap();
                let mut p = prunes.lock().unwrap();
                if o.status.success() {
                    p.0 += 1;
                } else {
                    p.1.push(String::from_utf8_lossy(&o.stderr).trim().to_string());
                }
            }
        });
        // A node dies a third of the way in and comes back at two thirds.
        std::thread::sleep(Duration::from_secs(secs / 3));
        cluster.kill_volume(1);
        std::thread::sleep(Duration::from_secs(secs / 3));
        cluster.start_volume(1);
        std::thread::sleep(Duration::from_secs(secs - 2 * (secs / 3)));
        stop.store(true, Ordering::Relaxed);
    });
    let took = start.elapsed();
    let done = done.into_inner().unwrap();
    let failures = failures.into_inner().unwrap();
    let (prunes_ok, prune_errors) = prunes.into_inner().unwrap();
    // Every host completed backups, and each failure was followed by a success of its host.
    for h in 0..clients {
        assert!(done.iter().any(|d| d.host == h), "host{h} never completed a backup: {failures:?}");
    }
    for (h, r, err) in &failures {
        assert!(
            done.iter().any(|d| d.host == *h && d.round > *r),
            "host{h} failed in round {r} and never succeeded after: {err}"
        );
    }
    // Every snapshot that still exists restores exactly the tree of its round.
    let listed = last_json(&String::from_utf8_lossy(&arca(&["--json", "snapshots"]).output().unwrap().stdout));
    let present: Vec<String> = match listed.as_array() {
        Some(a) => a.iter().filter_map(|s| s["id"].as_str().map(String::from)).collect(),
        None => vec![],
    };
    let mut restored = 0;
    for d in done.iter().filter(|d| present.contains(&d.snapshot)) {
        let expected = e.path(&format!("expected-{}-{}", d.host, d.round));
        write_tree(&expected, d.host, d.round);
        let t = e.path(&format!("restore-{}", &d.snapshot[..8]));
        let src = e.path(&format!("host{}", d.host));
        let o = arca(&["restore", &format!("{}:{}", &d.snapshot[..8], src.display()), "--target", t.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "restore of {}: {}", d.snapshot, String::from_utf8_lossy(&o.stderr));
        assert!(contents(&expected) == contents(&t), "host{} round {} restores exactly", d.host, d.round);
        restored += 1;
        let _ = std::fs::remove_dir_all(&t);
        let _ = std::fs::remove_dir_all(&expected);
    }
    let o = arca(&["--json", "check", "--read-data"]).output().unwrap();
    let v = last_json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(v["ok"], true, "check --read-data after the run: {v}\n{}", String::from_utf8_lossy(&o.stderr));
    let peaks = peaks.into_inner().unwrap();
    let max_peak = peaks.iter().max().copied().unwrap_or(0) / 1024;
    let mean_peak = peaks.iter().sum::<u64>() / peaks.len().max(1) as u64 / 1024;
    println!(
        "fleet: {clients} hosts, {:.0} s, {} backups ({} failed, {} prunes, {} prune errors), {} snapshots restored \
         exactly, {:.1} MB/s read by all, client peak RSS mean {mean_peak} MiB, max {max_peak} MiB",
        took.as_secs_f64(),
        done.len(),
        failures.len(),
        prunes_ok,
        prune_errors.len(),
        restored,
        bytes.load(Ordering::Relaxed) as f64 / 1e6 / took.as_secs_f64()
    );
    for (h, r, err) in failures.iter().take(5) {
        println!("  host{h} round {r} failed: {}", err.lines().last().unwrap_or_default());
    }
    for err in prune_errors.iter().take(3) {
        println!("  prune failed: {}", err.lines().last().unwrap_or_default());
    }
    assert!(restored >= clients, "at least each host's last snapshots restored ({restored})");
}
