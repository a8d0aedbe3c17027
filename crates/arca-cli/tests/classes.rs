//! Classes, format version 2 and key rotation through the command line: `backup --class`,
//! `key classes`, `key destroy-class`, `arca upgrade` of the golden version-1 repository
//! killed at 50 random moments (and at the fail point between its two writes), and
//! `key rotate` with and without `--rewrite`.

mod common;
use common::*;
use std::path::PathBuf;
use std::time::Duration;

/// The `keyring/` objects (a killed upload's `.tmp-` leftover is not one: readers skip it).
fn keyring_objects(e: &Env) -> usize {
    std::fs::read_dir(e.repo.join("keyring"))
        .unwrap()
        .flatten()
        .filter(|f| !f.file_name().to_string_lossy().contains(".tmp-"))
        .count()
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-v1")
}

#[test]
fn a_destroyed_class_is_gone_for_good_and_the_rest_restores() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(src.join("hr")).unwrap();
    std::fs::create_dir_all(src.join("web")).unwrap();
    std::fs::write(src.join("hr/payroll.csv"), random_bytes(200_000, 1)).unwrap();
    std::fs::write(src.join("web/index.html"), random_bytes(100_000, 2)).unwrap();
    let hr = e.backup(&["--class", "hr", src.join("hr").to_str().unwrap()]);
    let hr2 = e.backup(&["--class", "hr", src.join("hr").to_str().unwrap()]);
    let web = e.backup(&[src.join("web").to_str().unwrap()]);
    let classes = e.json(&["key", "classes"]);
    let row = classes.as_array().unwrap().iter().find(|r| r["class"] == "hr").expect("class hr listed").clone();
    assert_eq!(row["snapshots"], 2, "{classes}");
    // The second backup of the class found its parent in the class and read no file again.
    // (Its trees may differ: a directory's times can change between two backups, issue 21.)
    let snaps = e.json(&["snapshots"]);
    let second = snaps.as_array().unwrap().iter().find(|s| s["id"] == hr2.as_str()).unwrap().clone();
    assert_eq!(second["parent"], hr.as_str(), "{second}");
    assert_eq!(second["class"], "hr");
    assert_eq!(
        (second["summary"]["files_read"].as_u64(), second["summary"]["files_unchanged"].as_u64()),
        (Some(0), Some(1)),
        "{second}"
    );
    assert!(e.ok(&["snapshots"]).contains("[class hr]"), "the table shows the class");

    // Asking first: without a terminal and without --yes nothing happens.
    let o = e.run(&["key", "destroy-class", "hr"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--yes"));
    let plan = e.json(&["key", "destroy-class", "hr", "--dry-run"]);
    assert_eq!(plan["snapshots"].as_array().unwrap().len(), 2, "{plan}");
    let old_config = std::fs::read(e.repo.join("config")).unwrap();
    e.ok(&["key", "destroy-class", "hr", "--yes"]);
    assert_eq!(e.json(&["snapshots"]).as_array().unwrap().len(), 1, "the class's snapshots are forgotten");
    std::fs::write(e.repo.join("config"), old_config).unwrap();
    let o = e.run(&["restore", &hr, "--target", e.path("back-hr").to_str().unwrap()]);
    assert!(!o.status.success(), "the class's snapshot is gone");
    let out = e.path("back-web");
    e.ok(&["restore", &web, "--target", out.to_str().unwrap()]);
    assert_eq!(rsync_diff(&src.join("web"), &out.join(src.join("web").strip_prefix("/").unwrap())), "");
    e.ok(&["prune"]);
    e.ok(&["prune"]);
    let v = e.json(&["check", "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
    // A later backup into the same name starts a new class with a new key.
    e.backup(&["--class", "hr", src.join("hr").to_str().unwrap()]);
    let o = e.run(&["key", "destroy-class", "web"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no such class"));
}

#[test]
fn version_1_repositories_work_until_upgraded_and_classes_need_the_upgrade() {
    let e = Env::new();
    e.ok(&["init", "--format-version", "1"]);
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), random_bytes(50_000, 3)).unwrap();
    let first = e.backup(&[src.to_str().unwrap()]);
    let o = e.run(&["backup", "--class", "hr", src.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("arca upgrade"), "{}", String::from_utf8_lossy(&o.stderr));
    let v = e.json(&["upgrade", "--dry-run"]);
    assert_eq!((v["from"].as_u64(), v["changed"].as_bool()), (Some(1), Some(true)), "{v}");
    e.ok(&["upgrade"]);
    assert_eq!(e.json(&["upgrade"])["changed"], false, "a second upgrade has nothing to do");
    let second = e.backup(&[src.to_str().unwrap()]);
    e.backup(&["--class", "hr", src.to_str().unwrap()]);
    for id in [first, second] {
        let out = e.path(&format!("out-{id}"));
        e.ok(&["restore", &id, "--target", out.to_str().unwrap(), "--verify"]);
    }
    assert_eq!(e.json(&["check", "--read-data"])["ok"], true);
}

/// 50 upgrades of the golden repository, each killed after a random delay, then one killed at
/// the fail point between its writes: each leaves a repository that checks clean and upgrades.
#[test]
fn an_upgrade_killed_at_50_random_moments_always_leaves_an_openable_repository() {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    // How long an unhindered upgrade takes here, to spread the kills over it.
    let probe = Env::new();
    sh(&format!("cp -a '{}' '{}'", fixture().display(), probe.repo.display()));
    let t = std::time::Instant::now();
    probe.ok(&["upgrade"]);
    let span = t.elapsed().as_micros().max(2_000) as u64;
    let (mut before, mut after) = (0, 0);
    for round in 0..51 {
        let e = Env::new();
        sh(&format!("cp -a '{}' '{}'", fixture().display(), e.repo.display()));
        let mut c = e.cmd(&["upgrade"]);
        if round == 50 {
            c.env("ARCA_FAILPOINT", "upgrade-before-config");
        }
        let mut child = c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        if round < 50 {
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..span * 6 / 5)));
            let _ = child.kill();
        }
        let status = child.wait().unwrap();
        let v = e.json(&["check", "--read-data"]);
        assert_eq!(v["ok"], true, "round {round} ({status}): {v}");
        let version = e.json(&["cat", "config"])["version"].as_u64();
        match version {
            Some(1) => before += 1,
            Some(2) => after += 1,
            other => panic!("round {round}: config version {other:?}"),
        }
        if round == 50 {
            assert_eq!(version, Some(1), "killed between the key and the config: still version 1");
            assert_eq!(keyring_objects(&e), 3, "the default class's key and its two reader keys");
        }
        e.ok(&["upgrade"]);
        assert_eq!(e.json(&["cat", "config"])["version"], 2);
        if round % 10 == 0 || round == 50 {
            assert_eq!(keyring_objects(&e), 3, "a rerun reuses the key (and its reader keys)");
            let out = e.path("out");
            e.ok(&["restore", "latest", "--target", out.to_str().unwrap(), "--verify"]);
        }
    }
    eprintln!("kills left {before} repositories at version 1, {after} at version 2");
    assert!(before > 0, "some kills landed before the config was replaced");
}

#[test]
fn enforce_destroy_shreds_a_class_once_its_last_snapshot_is_due() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("cv.pdf"), random_bytes(80_000, 4)).unwrap();
    let s = src.to_str().unwrap();
    let a = e.backup(&["--class", "applicants-2020", "--time", "2020-01-01T00:00:00+00:00", s]);
    let b = e.backup(&["--class", "applicants-2020", "--time", "2020-02-01T00:00:00+00:00", s]);
    let keep = e.backup(&["--class", "staff", s]);
    e.ok(&["protect", &a[..8], "--destroy-after", "2021-01-01"]);
    // One of the class's snapshots is due, the other not yet: the class stays.
    let v = e.json(&["forget", "--enforce-destroy"]);
    assert_eq!(v["classes_destroyed"].as_array().unwrap().len(), 0, "{v}");
    assert!(e.json(&["key", "classes"]).to_string().contains("applicants-2020"));
    let b_now = e.json(&["snapshots"]).as_array().unwrap().iter().find(|x| x["id"] == b.as_str()).is_some();
    assert!(b_now);
    e.ok(&["protect", &b[..8], "--destroy-after", "2021-01-01"]);
    let v = e.json(&["forget", "--enforce-destroy"]);
    assert_eq!(v["classes_destroyed"], serde_json::json!(["applicants-2020"]), "{v}");
    let classes = e.json(&["key", "classes"]).to_string();
    assert!(!classes.contains("applicants-2020") && classes.contains("staff"), "{classes}");
    let out = e.path("out");
    e.ok(&["restore", &keep, "--target", out.to_str().unwrap(), "--verify"]);
    assert_eq!(e.json(&["check", "--read-data"])["ok"], true);
}

#[test]
fn copy_carries_a_class_into_the_destinations_class_of_that_name() {
    let src = Env::init();
    let dir = src.path("data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("secret"), random_bytes(60_000, 7)).unwrap();
    let d = dir.to_str().unwrap();
    src.backup(&["--class", "hr", d]);
    src.backup(&[d]);
    let dst = Env::init();
    let copy = |dry: bool| {
        let mut args = vec!["--json", "copy", "--from-repo", src.repo.to_str().unwrap()];
        if dry {
            args.push("--dry-run");
        }
        let o = dst.cmd(&args).env("ARCA_FROM_PASSWORD", PASSWORD).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    copy(true);
    assert!(!dst.json(&["key", "classes"]).to_string().contains("\"hr\""), "a dry run creates no class");
    copy(false);
    let snaps = dst.json(&["snapshots"]);
    let hr =
        snaps.as_array().unwrap().iter().find(|s| s["class"] == "hr").expect("the class's snapshot copied").clone();
    let out = dst.path("out");
    dst.ok(&["restore", hr["id"].as_str().unwrap(), "--target", out.to_str().unwrap(), "--verify"]);
    assert_eq!(rsync_diff(&dir, &out.join(dir.strip_prefix("/").unwrap())), "");
    copy(false); // nothing new the second time
    assert_eq!(dst.json(&["snapshots"]).as_array().unwrap().len(), 2);
    // Destroying the class in the destination reaches the copy; the source keeps its own.
    dst.ok(&["key", "destroy-class", "hr", "--yes"]);
    assert_eq!(dst.json(&["snapshots"]).as_array().unwrap().len(), 1);
    assert_eq!(src.json(&["snapshots"]).as_array().unwrap().len(), 2);
    assert_eq!(dst.json(&["check", "--read-data"])["ok"], true);
}

/// A copy of `e`'s repository as a holder of a leaked slot sees it who also kept the old
/// config, key slots and keyring (`old`): today's packs, snapshots and index with those.
fn with_old_keys(e: &Env, old: &std::path::Path) -> Env {
    let copy = Env::new();
    sh(&format!("cp -a {} {}", e.repo.display(), copy.repo.display()));
    for d in ["keys", "keyring"] {
        sh(&format!("rm -rf {0}/{d} && cp -a {1}/{d} {0}/{d}", copy.repo.display(), old.display()));
    }
    std::fs::copy(old.join("config"), copy.repo.join("config")).unwrap();
    copy
}

/// The snapshots `arca --json snapshots` listed (after any warning lines).
fn listed(o: &std::process::Output) -> Vec<serde_json::Value> {
    let out = String::from_utf8_lossy(&o.stdout);
    let start = out.find("\n[").map_or(0, |i| i + 1);
    serde_json::from_str::<Vec<serde_json::Value>>(&out[start..]).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn key_rotate_locks_out_the_other_slots_and_rewrite_leaves_the_old_keys_nothing() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..20u64 {
        std::fs::write(src.join(format!("sub/f{i}")), random_bytes(50_000, i)).unwrap();
    }
    std::fs::write(src.join("big.bin"), random_bytes(3_000_000, 99)).unwrap();
    let first = e.backup(&[src.to_str().unwrap()]);
    let second_pw = "the laptop's password";
    let o = e.cmd(&["key", "add", "--label", "laptop"]).env("ARCA_NEW_PASSWORD", second_pw).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = e.cmd(&["key", "add", "--backup-only"]).env("ARCA_NEW_PASSWORD", "backup only").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let old = e.path("old-keys");
    sh(&format!("cp -a {} {}", e.repo.display(), old.display()));
    let as_laptop = |env: &Env, args: &[&str]| env.cmd(args).env("ARCA_PASSWORD", second_pw).output().unwrap();

    // Asking first: without a terminal and without --yes nothing changes.
    let files = e.repo_files();
    let o = e.run(&["key", "rotate"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--yes"), "{}", String::from_utf8_lossy(&o.stderr));
    let plan = e.json(&["key", "rotate", "--dry-run", "--rewrite"]);
    assert_eq!(plan["rotation"]["removed_slots"].as_array().unwrap().len(), 2, "{plan}");
    assert_eq!(plan["rewrite"]["snapshots"], 1, "{plan}");
    assert!(plan["rewrite"]["packs"].as_u64().unwrap() > 0, "{plan}");
    assert_eq!(e.repo_files(), files, "asking and --dry-run change nothing");

    let r = e.json(&["key", "rotate", "--yes"]);
    assert_eq!(r["removed_slots"].as_array().unwrap().len(), 2, "{r}");
    let o = as_laptop(&e, &["snapshots"]);
    assert_eq!(o.status.code(), Some(12), "the other password opens nothing: {}", String::from_utf8_lossy(&o.stderr));
    // The laptop's old slot put back is refused by name.
    for f in std::fs::read_dir(old.join("keys")).unwrap().flatten() {
        std::fs::copy(f.path(), e.repo.join("keys").join(f.file_name())).unwrap();
    }
    let o = as_laptop(&e, &["snapshots"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("arca key rotate"), "{}", String::from_utf8_lossy(&o.stderr));
    let out = e.path("back1");
    e.ok(&["restore", &first, "--target", out.to_str().unwrap()]);
    assert_eq!(rsync_diff(&src, &out.join(src.strip_prefix("/").unwrap())), "");
    // Without --rewrite, the old keys still open what was stored before.
    let leaked = with_old_keys(&e, &old);
    let o = as_laptop(&leaked, &["--json", "snapshots"]);
    assert_eq!(listed(&o).len(), 1, "the old keys read the data of before a plain rotation");

    std::fs::write(src.join("after-rotation.txt"), b"written with the new key").unwrap();
    e.backup(&[src.to_str().unwrap()]);
    let w = e.json(&["key", "rotate", "--rewrite-only"]);
    assert_eq!(w["complete"], true, "{w}");
    assert_eq!(w["rewrite"]["snapshots_resealed"], 1, "only the snapshot of before the rotation: {w}");
    assert!(w["rewrite"]["prune"]["plan"]["rewrite_packs"].as_u64().unwrap() > 0, "{w}");
    let v = e.json(&["check", "--read-data"]);
    assert_eq!(v["ok"], true, "the data and the signed history check clean: {v}");
    let ids = snapshot_ids(&e);
    assert_eq!(ids.len(), 2);
    assert!(!ids.contains(&first), "the old snapshot object was sealed again, under a new id");
    let out = e.path("back2");
    e.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(rsync_diff(&src, &out.join(src.strip_prefix("/").unwrap())), "");

    // The old keys, even with their keyring and config kept, open nothing stored today.
    let leaked = with_old_keys(&e, &old);
    let o = as_laptop(&leaked, &["--json", "snapshots"]);
    assert!(o.status.success(), "the old keys open the old config: {}", String::from_utf8_lossy(&o.stderr));
    assert!(listed(&o).is_empty(), "but no snapshot: {}", String::from_utf8_lossy(&o.stdout));
    for id in &ids {
        let o = as_laptop(&leaked, &["restore", id, "--target", leaked.path("t").to_str().unwrap()]);
        assert!(!o.status.success(), "snapshot {id} must not open with the old keys");
    }
    // Nor the index, so not where any blob is (the engine's tests/rotate.rs shows that no
    // pack header opens either): `check --read-data` reads nothing.
    let o = as_laptop(&leaked, &["--json", "check", "--read-data"]);
    assert!(!o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    let summary = out.lines().find(|l| l.contains("\"type\":\"summary\"")).expect("a summary line");
    let report: serde_json::Value = serde_json::from_str(summary).unwrap();
    assert_eq!(
        (report["report"]["packs_read"].as_u64(), report["report"]["snapshots_checked"].as_u64()),
        (Some(0), Some(0)),
        "{report}"
    );
    let errors = report["report"]["errors"].as_array().unwrap();
    assert!(errors.iter().any(|p| p["object"].as_str().unwrap().starts_with("index ")), "{report}");

    // Nothing left: a second --rewrite-only has nothing to do, and a rotation with --rewrite
    // in one go works too.
    let again = e.json(&["key", "rotate", "--rewrite-only"]);
    assert_eq!(again["rewrite"]["snapshots_resealed"], 0, "{again}");
    let both = e.json(&["key", "rotate", "--rewrite", "--yes"]);
    assert_eq!(both["complete"], true, "{both}");
    assert_eq!(e.json(&["check", "--read-data"])["ok"], true);
}
