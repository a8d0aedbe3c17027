//! Deduplication, incremental backups, files that change or cannot be read, stdin sources,
//! excludes, dry runs.

mod common;
use common::*;

fn repo_size(e: &Env) -> u64 {
    e.repo_files().iter().map(|(_, b)| b.len() as u64).sum()
}

#[test]
fn identical_files_are_stored_once_and_inserts_cost_little() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let data = random_bytes(64 << 20, 7);
    std::fs::write(src.join("one"), &data).unwrap();
    std::fs::write(src.join("two"), &data).unwrap();
    let before = repo_size(&e);
    let v = e.json(&["backup", src.to_str().unwrap()]);
    let added = repo_size(&e) - before;
    assert!(added < (64 << 20) + (2 << 20), "two identical 64 MiB files added {added} bytes");
    assert!(added >= 64 << 20, "random data cannot shrink: {added}");
    let s = &v["summary"];
    assert_eq!(s["files_new"], 2);
    assert_eq!(s["files_read"], 2);
    assert_eq!(s["bytes_read"], 128u64 << 20);
    assert!(s["bytes_added"].as_u64().unwrap() < (65 << 20));
    assert!(s["bytes_added_stored"].as_u64().unwrap() > 0);

    // 100 bytes inserted at the front: at most 10 MiB new.
    let mut shifted = vec![b'!'; 100];
    shifted.extend_from_slice(&data);
    std::fs::write(src.join("one"), &shifted).unwrap();
    let before = repo_size(&e);
    let v = e.json(&["backup", src.to_str().unwrap(), "--paranoid-dedup"]);
    let added = repo_size(&e) - before;
    assert!(added <= 10 << 20, "a 100-byte insert stored {added} new bytes");
    assert_eq!(v["summary"]["files_changed"], 1);
    assert_eq!(v["summary"]["files_unchanged"], 1);
    // and it restores exactly
    let dst = e.path("dst");
    e.ok(&["restore", &format!("latest:{}", src.display()), "--target", dst.to_str().unwrap()]);
    assert_eq!(std::fs::read(dst.join("one")).unwrap(), shifted);
}

#[test]
fn second_backup_reads_only_changed_files() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    for i in 0..20 {
        std::fs::write(src.join(format!("d/f{i}")), format!("file {i}")).unwrap();
    }
    let s = src.to_str().unwrap();
    let first = e.backup(&[s]);
    let v = e.json(&["backup", s]);
    assert_eq!(v["summary"]["files_read"], 0, "{v}");
    assert_eq!(v["summary"]["files_unchanged"], 20);
    assert_eq!(v["parent"].as_str().unwrap(), first, "JSON ids are full ids");
    // content change
    std::fs::write(src.join("d/f3"), "changed!").unwrap();
    let v = e.json(&["backup", s]);
    assert_eq!(v["summary"]["files_read"], 1);
    assert_eq!(v["summary"]["files_changed"], 1);
    // metadata-only change moves ctime: read again, unless --ignore-ctime
    sh(&format!("chmod 600 '{s}/d/f4'"));
    let v = e.json(&["backup", s]);
    assert_eq!(v["summary"]["files_read"], 1);
    sh(&format!("chmod 640 '{s}/d/f4'"));
    let v = e.json(&["backup", s, "--ignore-ctime"]);
    assert_eq!(v["summary"]["files_read"], 0);
    let v = e.json(&["backup", s, "--rehash"]);
    assert_eq!(v["summary"]["files_read"], 20);
    // a different path set has no parent
    let v = e.json(&["backup", &format!("{s}/d")]);
    assert_eq!(v["summary"]["files_read"], 20);
    // --dry-run stores nothing
    let before = e.repo_files().len();
    std::fs::write(src.join("new"), random_bytes(100_000, 3)).unwrap();
    let v = e.json(&["backup", s, "--dry-run"]);
    assert_eq!(v["dry_run"], true);
    assert!(v["summary"]["bytes_added"].as_u64().unwrap() >= 100_000);
    assert_eq!(e.repo_files().len(), before, "dry run wrote objects");
}

#[test]
fn an_unchanged_tree_that_was_read_adds_no_tree_blobs() {
    let e = Env::init();
    let src = e.path("src");
    for d in ["a/b/c", "a/d", "e"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
        for i in 0..5 {
            std::fs::write(src.join(d).join(format!("f{i}")), format!("{d} {i}")).unwrap();
        }
    }
    // A second name of a file: the hard-link path keeps the parent's atime too.
    std::fs::hard_link(src.join("a/d/f0"), src.join("e/hard")).unwrap();
    let s = src.to_str().unwrap();
    // Old access times, so that any read moves them (relatime).
    sh(&format!("find '{s}' -type f -exec touch -a -d '3 days ago' {{}} +"));
    e.backup(&[s]);
    // Another program reads every file: only the access times change.
    let before = sh(&format!("stat -c %X '{s}/a/b/c/f0'"));
    sh(&format!("find '{s}' -type f -exec cat {{}} + >/dev/null"));
    assert_ne!(sh(&format!("stat -c %X '{s}/a/b/c/f0'")), before, "reading did not move the access time");
    let size = repo_size(&e);
    let v = e.json(&["backup", s]);
    assert_eq!(v["summary"]["files_unchanged"], 16, "{v}");
    assert_eq!(v["summary"]["blobs_added"], 0, "an unchanged tree stored new trees: {v}");
    let added = repo_size(&e) - size;
    assert!(added <= 10_000, "an unchanged backup added {added} bytes");
}

#[test]
fn verify_after_write_reads_back_every_object_it_stores() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big"), random_bytes(20 << 20, 4)).unwrap();
    std::fs::write(src.join("small"), b"small").unwrap();
    let o = e
        .cmd(&["--verify-after-write", "backup", src.to_str().unwrap()])
        .env("ARCA_LOG", "arca::storage=trace")
        .output()
        .unwrap();
    // Without the terminal colours the log may carry.
    let mut log = String::new();
    let mut escape = false;
    for c in String::from_utf8_lossy(&o.stderr).chars() {
        match (escape, c) {
            (false, '\x1b') => escape = true,
            (true, 'm') => escape = false,
            (false, c) => log.push(c),
            _ => {}
        }
    }
    assert!(o.status.success(), "{log}");
    // Each object written (whole or streamed) is read back whole after it.
    let field = |line: &str, key: &str| {
        let at = line.find(&format!("{key}="))? + key.len() + 1;
        Some(line[at..].split_whitespace().next()?.trim_matches('"').to_string())
    };
    let mut written = vec![];
    let mut read_back = 0;
    for line in log.lines().filter(|l| l.contains("arca::storage")) {
        match (field(line, "op").as_deref(), field(line, "name")) {
            (Some("put" | "stream" | "put_owned"), Some(n)) => written.push(n),
            (Some("get"), Some(n)) if written.contains(&n) => read_back += 1,
            _ => {}
        }
    }
    assert!(written.len() >= 3, "packs, index and snapshot written: {log}");
    assert!(read_back >= written.len(), "{read_back} of {} objects read back:\n{log}", written.len());
    e.ok(&["check", "--read-data"]);
}

#[test]
fn file_changing_while_read_is_reread_then_warned() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let f = src.join("busy");
    std::fs::write(&f, random_bytes(48 << 20, 9)).unwrap();
    std::fs::write(src.join("calm"), b"calm").unwrap();
    let mut writer = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("while true; do echo x >> '{}'; done", f.display()))
        .spawn()
        .unwrap();
    let o = e.run(&["--json", "backup", src.to_str().unwrap()]);
    writer.kill().unwrap();
    writer.wait().unwrap();
    assert_eq!(o.status.code(), Some(0), "a changed file is stored; that is not a failure");
    let v = last_json(&String::from_utf8_lossy(&o.stdout));
    let w = v["warnings"].as_array().unwrap();
    assert!(w.iter().any(|w| w["path"].as_str().unwrap().ends_with("/busy") && w["kind"] == "changed"), "{v}");
    let snap = e.json(&["cat", "snapshot", "latest"]);
    assert_eq!(snap["warnings"].as_array().unwrap().len(), 1, "the warning is in the snapshot");
}

#[test]
fn unreadable_and_vanished_files_give_exit_3_and_a_snapshot() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(src.join("closed")).unwrap();
    std::fs::write(src.join("open"), b"readable").unwrap();
    std::fs::write(src.join("secret"), b"no").unwrap();
    std::fs::write(src.join("closed/inside"), b"no").unwrap();
    sh(&format!(
        "chmod 000 '{0}/secret' '{0}/closed'; chmod -R a+rwX '{1}'; chmod 777 '{0}/..'",
        src.display(),
        e.repo.display()
    ));
    // Run as an unprivileged user, for whom the files really are unreadable.
    let mut c = e.cmd(&["--json", "backup", src.to_str().unwrap()]);
    use std::os::unix::process::CommandExt;
    c.uid(65534).gid(65534);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(3), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    let v = last_json(&String::from_utf8_lossy(&o.stdout));
    let paths: Vec<&str> = v["warnings"].as_array().unwrap().iter().map(|w| w["path"].as_str().unwrap()).collect();
    assert!(paths.iter().any(|p| p.ends_with("/secret")), "{paths:?}");
    assert!(paths.iter().any(|p| p.ends_with("/closed")), "{paths:?}");
    let id = v["snapshot_id"].as_str().expect("the snapshot is still made");
    let ls = e.ok(&["ls", &id[..8]]);
    assert!(ls.contains("/open") && !ls.contains("/secret"));
}

#[test]
fn stdin_and_command_output() {
    let e = Env::init();
    let mut c = e.cmd(&["backup", "--stdin", "--stdin-filename", "db.sql", "--tag", "db"]);
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let data = random_bytes(3 << 20, 5);
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &data).unwrap();
    drop(child.stdin.take());
    assert!(child.wait_with_output().unwrap().status.success());
    let dumped = e.cmd(&["dump", "latest", "/db.sql"]).output().unwrap();
    assert_eq!(dumped.stdout, data);

    e.ok(&["backup", "--stdin-filename", "listing", "--stdin-from-command", "--", "printf", "%s", "from a command"]);
    assert_eq!(e.cmd(&["dump", "latest", "listing"]).output().unwrap().stdout, b"from a command");
    // The snapshot records what made it.
    let s = e.json(&["cat", "snapshot", "latest"]);
    assert_eq!(s["kind"], "command-output", "{s}");
    assert_eq!(s["source"]["command"], "printf '%s' 'from a command'", "{s}");
    assert_eq!(s["source"]["exit"], "0", "{s}");
    let n = snapshot_ids(&e).len();
    let o = e.run(&["backup", "--stdin-from-command", "sh", "-c", "echo partial; exit 4"]);
    assert!(!o.status.success());
    let o = e.run(&["backup", "--stdin-from-command", "--", "sh", "-c", "echo partial; exit 4"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no snapshot was created"));
    assert_eq!(snapshot_ids(&e).len(), n, "a failing command must not create a snapshot");
}

#[test]
fn excludes() {
    let e = Env::init();
    let src = e.path("src");
    for d in ["keep", "cache", "marked", "logs"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
        std::fs::write(src.join(d).join("file.txt"), d).unwrap();
    }
    std::fs::write(src.join("keep/x.tmp"), "tmp").unwrap();
    std::fs::write(src.join("cache/CACHEDIR.TAG"), "Signature: 8a477f597d28d172789f06886806bc55\n").unwrap();
    std::fs::write(src.join("marked/.nobackup"), "").unwrap();
    let ex = e.path("excludes");
    std::fs::write(&ex, format!("# comment\n\n{}/logs\n", src.display())).unwrap();
    e.ok(&[
        "backup",
        src.to_str().unwrap(),
        "--exclude",
        "*.tmp",
        "--exclude-file",
        ex.to_str().unwrap(),
        "--exclude-caches",
        "--exclude-if-present",
        ".nobackup",
    ]);
    let ls = e.ok(&["ls", "latest"]);
    assert!(ls.contains("/keep/file.txt"));
    for gone in ["x.tmp", "/cache/file.txt", "/marked/file.txt", "/logs"] {
        assert!(!ls.contains(gone), "{gone} should be excluded:\n{ls}");
    }
    // Issue 17 row 40: an excluded directory keeps its tag, so a restore shows why it is empty.
    for tag in ["/cache/CACHEDIR.TAG", "/marked/.nobackup"] {
        assert!(ls.contains(tag), "{tag} is kept:\n{ls}");
    }
    // Row 14: a trailing slash and a relative sub-path exclude what they name.
    for pattern in ["keep/".to_string(), "src/keep".to_string(), format!("{}/keep/", src.display())] {
        e.ok(&["backup", src.to_str().unwrap(), "--exclude", &pattern]);
        let ls = e.ok(&["ls", "latest"]);
        assert!(!ls.contains("/keep"), "{pattern} excludes keep/:\n{ls}");
        assert!(ls.contains("/marked/.nobackup"), "{pattern}");
    }
}

#[test]
fn two_backups_at_once_both_restore() {
    let e = Env::init();
    let mk = |name: &str, seed: u64| {
        let d = e.path(name);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..5 {
            std::fs::write(d.join(format!("f{i}")), random_bytes(3 << 20, seed + i)).unwrap();
        }
        std::fs::write(d.join("shared"), random_bytes(5 << 20, 999)).unwrap();
        d
    };
    let (a, b) = (mk("a", 10), mk("b", 20));
    let ca = e.cmd(&["--json", "backup", a.to_str().unwrap()]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let cb = e.cmd(&["--json", "backup", b.to_str().unwrap()]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let (oa, ob) = (ca.wait_with_output().unwrap(), cb.wait_with_output().unwrap());
    assert!(oa.status.success() && ob.status.success());
    for (src, o) in [(&a, oa), (&b, ob)] {
        let id = last_json(&String::from_utf8_lossy(&o.stdout))["snapshot_id"].as_str().unwrap().to_string();
        let dst = e.path(&format!("restore-{}", &id[..8]));
        e.ok(&["restore", &format!("{}:{}", &id[..8], src.display()), "--target", dst.to_str().unwrap()]);
        assert_eq!(rsync_diff(src, &dst), "");
    }
    e.ok(&["check", "--read-data"]);
}

#[test]
fn one_file_system_skips_other_mounts() {
    // /dev/shm is a tmpfs below /dev (devtmpfs): with -x, a file in it is left out.
    let e = Env::init();
    let marker = format!("/dev/shm/arca-xdev-{}", std::process::id());
    std::fs::write(&marker, b"on another filesystem").expect("/dev/shm is needed for this test");
    assert_ne!(sh("stat -c %d /dev"), sh("stat -c %d /dev/shm"), "/dev/shm must be its own filesystem here");
    let with_x = e.json(&["backup", "/dev", "-x", "--exclude", "/dev/pts"]);
    let without = e.json(&["backup", "/dev", "--exclude", "/dev/pts"]);
    let _ = std::fs::remove_file(&marker);
    let ls_x = e.ok(&["ls", &with_x["snapshot_id"].as_str().unwrap()[..8]]);
    let ls_all = e.ok(&["ls", &without["snapshot_id"].as_str().unwrap()[..8]]);
    assert!(ls_x.contains("/dev/null"));
    assert!(!ls_x.contains(&marker), "-x entered another filesystem");
    assert!(ls_all.contains(&marker), "without -x the file is backed up");
}

#[test]
fn files_vanishing_or_becoming_directories_mid_backup_give_warnings_never_a_bad_snapshot() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let s = src.to_str().unwrap().to_string();
    let mut warned = 0;
    for round in 0..5u64 {
        for i in 0..3000u64 {
            let p = src.join(format!("f{i}"));
            if p.is_dir() {
                std::fs::remove_dir_all(&p).unwrap();
            }
            std::fs::write(&p, random_bytes(2000 + (i as usize % 50) * 100, round * 10_000 + i)).unwrap();
        }
        let stop = std::sync::atomic::AtomicBool::new(false);
        let o = std::thread::scope(|scope| {
            scope.spawn(|| {
                // Churn: delete files, and replace others by directories, while the backup walks.
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let p = src.join(format!("f{}", (i * 7919) % 3000));
                    if i.is_multiple_of(2) {
                        let _ = std::fs::remove_file(&p);
                    } else if std::fs::remove_file(&p).is_ok() {
                        let _ = std::fs::create_dir(&p);
                    }
                    i += 1;
                }
            });
            let o = e.run(&["--json", "backup", &s]);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            o
        });
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "round {round}: {err}");
        let code = o.status.code();
        assert!(code == Some(0) || code == Some(3), "round {round}: exit {code:?}: {err}");
        let v = last_json(&String::from_utf8_lossy(&o.stdout));
        assert!(v["snapshot_id"].is_string(), "round {round}: a snapshot is made: {v}");
        warned += v["warnings"].as_array().map_or(0, |w| w.len());
        // What was stored is whole: it checks, and lists.
        assert_eq!(e.json(&["check", "--read-data"])["ok"], true, "round {round}");
        e.ok(&["ls", &v["snapshot_id"].as_str().unwrap()[..8]]);
    }
    assert!(warned > 0, "the churn must have hit the backup at least once");
}

/// A seal worker that panics takes the blobs of its batch with it: the backup must fail and
/// save no snapshot (before, the panic was dropped at `join` and a snapshot naming blobs
/// that were never stored could be saved).
#[test]
fn a_panicking_writer_thread_fails_the_backup_and_saves_no_snapshot() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..8 {
        std::fs::write(src.join(format!("f{i}")), random_bytes(3 << 20, 40 + i)).unwrap();
    }
    for threads in ["1", "2"] {
        let o = e
            .cmd(&["--threads", threads, "backup", src.to_str().unwrap()])
            .env("ARCA_FAILPOINT", "seal-batch:3:panic")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "--threads {threads}: the backup must fail: {stderr}");
        assert!(stderr.contains("nothing was committed") || stderr.contains("writer has stopped"), "{stderr}");
        assert!(snapshot_ids(&e).is_empty(), "--threads {threads}: no snapshot was saved");
    }
    // The next backup stores everything and checks clean.
    e.backup(&[src.to_str().unwrap()]);
    e.ok(&["check", "--read-data"]);
}
