//! Prune: space comes back, nothing needed goes, a concurrent backup is never broken, and a
//! prune killed at any named step leaves a repository that checks clean and a second prune
//! finishes. ARCA_PRUNE_RACE_SECS sets how long backups and prunes race (default 120).

mod common;
use common::*;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `n` files of about 100 KiB: many blobs share one pack, so forgetting some leaves packs
/// partly used.
fn small_files(dir: &Path, from: u64, n: u64) {
    std::fs::create_dir_all(dir).unwrap();
    for i in from..from + n {
        std::fs::write(dir.join(format!("f{i}")), random_bytes(100_000 + (i as usize % 7) * 1000, i)).unwrap();
    }
}

fn stored_bytes(e: &Env) -> u64 {
    let mut n = 0;
    for (p, b) in e.repo_files() {
        if p.to_string_lossy().contains("/data/") {
            n += b.len() as u64;
        }
    }
    n
}

fn restore_equals(e: &Env, snap: &str, src: &Path, name: &str) {
    let t = e.path(name);
    let s = src.to_str().unwrap();
    e.ok(&["restore", &format!("{snap}:{s}"), "--target", t.to_str().unwrap()]);
    assert_eq!(rsync_diff(src, &t), "", "snapshot {snap} restores exactly");
    std::fs::remove_dir_all(&t).unwrap();
}

#[test]
fn prune_reclaims_space_and_keeps_what_snapshots_need() {
    let e = Env::init();
    let src = e.path("src");
    small_files(&src, 0, 40);
    let s = src.to_str().unwrap();
    e.backup(&[s]);
    for i in 0..20 {
        std::fs::remove_file(src.join(format!("f{i}"))).unwrap();
    }
    small_files(&src, 100, 5);
    let keep = e.backup(&[s]);
    e.ok(&["forget", "--keep-last", "1"]);
    let before = stored_bytes(&e);
    let files_before = e.repo_files();
    // A dry run plans and changes nothing.
    let dry = e.json(&["prune", "--dry-run", "--max-unused", "0%"]);
    let plan = &dry["prune"]["plan"];
    assert!(plan["repack_packs"].as_u64().unwrap() >= 1, "{dry}");
    assert!(plan["repack_frees"].as_u64().unwrap() > 1_500_000, "{dry}");
    assert_eq!(e.repo_files(), files_before, "a dry run writes nothing");
    // With unlimited unused space nothing is repacked.
    let lax = e.json(&["prune", "--max-unused", "unlimited"]);
    assert_eq!(lax["prune"]["plan"]["repack_packs"], 0, "{lax}");
    // --max-repack caps the rewrite.
    let capped = e.json(&["prune", "--dry-run", "--max-unused", "0%", "--max-repack", "1K"]);
    assert_eq!(capped["prune"]["plan"]["repack_packs"], 0, "{capped}");
    let r = e.json(&["prune", "--max-unused", "0%"]);
    let after = stored_bytes(&e);
    assert!(after + 1_500_000 < before, "prune frees the forgotten files: {before} -> {after}\n{r}");
    assert_eq!(r["prune"]["after"]["bytes"].as_u64().unwrap(), after, "{r}");
    assert!(std::fs::read_dir(e.repo.join("marks")).unwrap().next().is_none(), "swept in the same run");
    let c = e.json(&["check", "--read-data"]);
    assert_eq!(c["ok"], true, "{c}");
    restore_equals(&e, &keep, &src, "r1");
    // Nothing left to do.
    let again = e.json(&["prune", "--max-unused", "0%"]);
    let p = &again["prune"];
    assert_eq!((p["plan"]["unused_packs"].as_u64(), p["plan"]["repack_packs"].as_u64()), (Some(0), Some(0)), "{again}");
    // Human output says what happened.
    let text = e.ok(&["prune"]);
    assert!(text.contains("used by snapshots") && text.contains("stored:"), "{text}");
}

#[test]
fn backups_and_prunes_race_without_losing_a_snapshot() {
    let e = Env::init();
    let src = e.path("src");
    let copies = e.path("copies");
    std::fs::create_dir_all(&copies).unwrap();
    // Files cycle through a few versions, so backups keep deduplicating against blobs that
    // only forgotten snapshots held: exactly what a careless prune would delete under them.
    let version = |dir: &Path, f: u64, v: u64| {
        std::fs::write(dir.join(format!("f{f}")), random_bytes(150_000 + (f as usize) * 1000, f * 10 + v)).unwrap();
    };
    std::fs::create_dir_all(&src).unwrap();
    for f in 0..16 {
        version(&src, f, 0);
    }
    let secs: u64 = std::env::var("ARCA_PRUNE_RACE_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let done = AtomicBool::new(false);
    let deleted = AtomicU64::new(0);
    let restored = AtomicU64::new(0);
    let prunes = AtomicU64::new(0);
    let s = src.to_str().unwrap().to_string();
    /// Stops the pruner however the backup loop ends (a failed assertion must not hang).
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let created: Vec<(String, bool)> = std::thread::scope(|scope| {
        let pruner = scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let v = e.json(&["forget", "--keep-last", "2", "--keep-tag", "keep", "--prune", "--max-unused", "0%"]);
                deleted.fetch_add(v["prune"]["swept"]["packs_deleted"].as_u64().unwrap_or(0), Ordering::Relaxed);
                restored.fetch_add(v["prune"]["swept"]["packs_restored"].as_u64().unwrap_or(0), Ordering::Relaxed);
                prunes.fetch_add(1, Ordering::Relaxed);
            }
        });
        let stop = Stop(&done);
        let mut created = vec![];
        let mut rng = 7u64;
        let mut round = 0u64;
        while Instant::now() < deadline {
            for _ in 0..4 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                version(&src, rng % 16, (rng >> 8) % 3);
            }
            let keep = round.is_multiple_of(20);
            let mut args = vec![s.as_str()];
            if keep {
                args.extend(["--tag", "keep"]);
            }
            let id = e.backup(&args);
            if keep {
                sh(&format!("cp -a {s} {}/{id}", copies.display()));
            }
            created.push((id, keep));
            round += 1;
        }
        drop(stop);
        pruner.join().unwrap();
        created
    });
    let (d, p) = (deleted.load(Ordering::Relaxed), prunes.load(Ordering::Relaxed));
    println!(
        "race: {} backups, {p} prunes, {d} packs deleted, {} packs kept back",
        created.len(),
        restored.load(Ordering::Relaxed)
    );
    assert!(p >= 3 && d > 0, "the race must actually prune: {p} prunes, {d} packs deleted");
    let c = e.json(&["check", "--read-data"]);
    assert_eq!(c["ok"], true, "{c}");
    let present = snapshot_ids(&e);
    for (id, keep) in &created {
        if *keep {
            assert!(present.contains(id), "tagged snapshot {id} is kept");
            let t = e.path("restored");
            e.ok(&["restore", &format!("{}:{s}", &id[..8]), "--target", t.to_str().unwrap()]);
            assert_eq!(rsync_diff(&copies.join(id), &t), "", "snapshot {id} restores exactly");
            std::fs::remove_dir_all(&t).unwrap();
        }
    }
    // The newest one too (kept by --keep-last).
    let (last, _) = created.last().unwrap();
    assert!(present.contains(last));
    restore_equals(&e, &last[..8], &src, "last");
}

#[test]
fn a_prune_killed_at_any_step_leaves_a_consistent_repository() {
    let points = [
        "prune-after-repack",
        "prune-after-mark",
        "prune-compact",
        "prune-after-complete",
        "prune-sweep-start",
        "prune-sweep-delete",
        "prune-sweep-mark",
    ];
    for point in points {
        let e = Env::init();
        let src = e.path("src");
        small_files(&src, 0, 30);
        let s = src.to_str().unwrap();
        e.backup(&[s]);
        for i in 0..15 {
            std::fs::remove_file(src.join(format!("f{i}"))).unwrap();
        }
        small_files(&src, 100, 3);
        let keep = e.backup(&[s]);
        let before = stored_bytes(&e);
        let o = e
            .cmd(&["forget", "--keep-last", "1", "--prune", "--max-unused", "0%"])
            .env("ARCA_FAILPOINT", point)
            .output()
            .unwrap();
        assert_eq!(
            o.status.signal(),
            Some(9),
            "{point}: the prune reaches the fail point: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let c = e.json(&["check", "--read-data"]);
        assert_eq!(c["ok"], true, "{point}: check after the kill: {c}");
        restore_equals(&e, &keep[..8], &src, "after-kill");
        let r = e.json(&["prune", "--max-unused", "0%"]);
        assert_eq!(r["prune"]["swept"]["marks_waiting"], 0, "{point}: the second prune finishes: {r}");
        let c = e.json(&["check", "--read-data"]);
        assert_eq!(c["ok"], true, "{point}: check after the second prune: {c}");
        assert!(c["report"]["notes"].as_array().unwrap().is_empty(), "{point}: nothing left over: {c}");
        assert!(stored_bytes(&e) + 1_000_000 < before, "{point}: space is reclaimed");
        restore_equals(&e, &keep[..8], &src, "after-second");
    }
    println!("crash: prune killed at {n}/{n} named fail points, 0 inconsistent", n = points.len());
}

/// Issue 13's confirmed data loss: a backup stopped past the lock's stale time (a suspended
/// laptop) while a prune deletes what it deduplicated against must not then save a snapshot
/// with exit code 0 that `check` finds broken. It either refuses to commit, with an error
/// that says why, or commits a snapshot whose every blob is still stored.
#[test]
fn a_backup_suspended_past_its_lock_while_a_prune_runs_never_saves_a_broken_snapshot() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), random_bytes(30 << 20, 77)).unwrap();
    let a = e.backup(&[src.to_str().unwrap()]);
    for i in 0..6 {
        std::fs::write(src.join(format!("new{i}")), random_bytes(16 << 20, 100 + i)).unwrap();
    }
    // Stops itself (SIGSTOP) after its second pack is stored, as a suspended machine would.
    let child = e
        .cmd(&["--json", "backup", src.to_str().unwrap()])
        .env("ARCA_LOCK_STALE_SECS", "3")
        .env("ARCA_FAILPOINT", "writer-after-pack:2:stop")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_until_stopped(pid, "the backup");
    // Past the stale time, the stopped backup's lock no longer holds prune back.
    std::thread::sleep(Duration::from_secs(4));
    let stale = |args: &[&str]| {
        let o = e.cmd(args).env("ARCA_LOCK_STALE_SECS", "3").output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        last_json(&String::from_utf8_lossy(&o.stdout))
    };
    stale(&["--json", "forget", &a]);
    let first = stale(&["--json", "prune"]);
    std::thread::sleep(Duration::from_secs(5));
    let second = stale(&["--json", "prune"]);
    let deleted = first["prune"]["swept"]["packs_deleted"].as_u64().unwrap_or(0)
        + second["prune"]["swept"]["packs_deleted"].as_u64().unwrap_or(0);
    assert!(deleted > 0, "the prunes deleted packs the stopped backup relied on: {first} {second}");
    sh(&format!("kill -CONT {pid}"));
    let o = child.wait_with_output().unwrap();
    let stderr = format!("{}{} ({})", String::from_utf8_lossy(&o.stderr), String::from_utf8_lossy(&o.stdout), o.status);
    let check = e.run(&["check"]);
    if o.status.success() {
        assert!(
            check.status.success(),
            "the resumed backup exited 0 but check fails:\n{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    } else {
        assert!(stderr.contains("lock") && stderr.contains("nothing was committed"), "a clear error: {stderr}");
        assert!(
            check.status.success(),
            "check after the refused commit: {}{}\n{stderr}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }
    // The next backup succeeds and restores exactly; the repository reads clean.
    let b = e.backup(&[src.to_str().unwrap()]);
    e.ok(&["check", "--read-data"]);
    restore_equals(&e, &b, &src, "restored");
}
