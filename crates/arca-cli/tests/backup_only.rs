//! Restricted keys through the command line (docs/SECURITY.md): `key add --backup-only`,
//! incremental backups from the send log, every read refused with a message that says why,
//! and the full key restoring exactly what the backup-only key stored; `key add
//! --metadata-only` and `--summary-only`, which list what they may and refuse the rest.

mod common;
use common::*;

const BACKUP_PW: &str = "only adds backups";

/// `arca` with the backup-only key's password.
fn bo(e: &Env, args: &[&str]) -> std::process::Output {
    e.cmd(args).env("ARCA_PASSWORD", BACKUP_PW).output().unwrap()
}

fn bo_json(e: &Env, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let o = bo(e, &a);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    last_json(&String::from_utf8_lossy(&o.stdout))
}

#[test]
fn a_backup_only_key_backs_up_incrementally_reads_nothing_and_the_full_key_restores_it() {
    let e = Env::init();
    let other = e.path("db-data");
    std::fs::create_dir_all(&other).unwrap();
    let shared = random_bytes(700_000, 5);
    std::fs::write(other.join("common.bin"), &shared).unwrap();
    std::fs::write(other.join("secret.db"), random_bytes(300_000, 6)).unwrap();
    e.backup(&["--host", "db01", other.to_str().unwrap()]);

    let added = e
        .cmd(&["--json", "key", "add", "--backup-only", "--host", "web01", "--label", "web01"])
        .env("ARCA_NEW_PASSWORD", BACKUP_PW)
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let added = last_json(&String::from_utf8_lossy(&added.stdout));
    assert_eq!((added["role"].as_str(), added["host"].as_str()), (Some("backup-only"), Some("web01")), "{added}");
    assert_eq!(added["resealed"], 0, "this arca seals the index with the shared key already: {added}");
    let keys = e.json(&["key", "list"]);
    assert!(keys.as_array().unwrap().iter().any(|k| k["role"] == "backup-only" && k["label"] == "web01"), "{keys}");

    let src = e.path("web");
    build_tree(&src);
    std::fs::write(src.join("common.bin"), &shared).unwrap();
    let s = src.to_str().unwrap();
    let first = bo_json(&e, &["backup", s]);
    assert!(first["parent"].is_null());
    let files = first["summary"]["files_new"].as_u64().unwrap();
    // The 700 kB file another host stored is not stored again.
    let (read, added) =
        (first["summary"]["bytes_read"].as_u64().unwrap(), first["summary"]["bytes_added"].as_u64().unwrap());
    assert!(added + 600_000 < read, "{first}");

    // The second backup takes its parent from the send log and reads only what changed.
    std::fs::write(src.join("changed.txt"), b"a new file").unwrap();
    let second = bo_json(&e, &["backup", s]);
    assert_eq!(second["parent"], first["snapshot_id"], "{second}");
    assert_eq!(second["summary"]["files_unchanged"].as_u64(), Some(files), "{second}");
    assert_eq!(second["summary"]["files_read"].as_u64(), Some(1), "{second}");

    // Every read is refused, before anything is written, naming the key and what it cannot do.
    let before = e.repo_files().len();
    let latest = second["snapshot_id"].as_str().unwrap();
    let target = e.path("t");
    let t = target.to_str().unwrap();
    for args in [
        vec!["snapshots"],
        vec!["ls", latest],
        vec!["restore", latest, "--target", t],
        vec!["dump", latest, "common.bin"],
        vec!["check"],
        vec!["check", "--read-data"],
        vec!["diff", "latest~1", "latest"],
        vec!["stats"],
        vec!["find", "secret.db"],
        vec!["forget", "--keep-last", "1"],
        vec!["prune"],
        vec!["key", "list"],
        vec!["key", "export"],
        vec!["key", "add", "--backup-only"],
        vec!["export", latest],
        vec!["rewrite", latest, "--exclude", "x"],
        vec!["backup", "--host", "db01", s],
        vec!["backup", "--parent", "latest", s],
        vec!["backup", "--class", "hr", s],
    ] {
        let o = bo(&e, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded with the backup-only key");
        assert!(err.contains("backup-only key") && err.contains("use a full key"), "{args:?}: {err}");
        assert!(!target.exists());
    }
    assert!(
        String::from_utf8_lossy(&bo(&e, &["backup", "--host", "db01", s]).stderr).contains("bound to host \"web01\"")
    );
    // A refused backup leaves no keyring object, pack or snapshot (locks come and go).
    assert_eq!(e.repo_files().len(), before, "refused commands wrote nothing");

    // The full key sees both hosts and restores the backup-only key's snapshot exactly.
    let snaps = e.json(&["snapshots", "--host", "web01"]);
    assert_eq!(snaps.as_array().unwrap().len(), 2, "the bound host is the default: {snaps}");
    e.ok(&["restore", latest, "--target", t]);
    assert_eq!(rsync_diff(&src, &target.join(src.strip_prefix("/").unwrap())), "");
    let check = e.ok(&["check", "--read-data"]);
    assert!(check.contains("no errors found"), "{check}");
    // A dry run with the backup-only key stores nothing at all.
    let before = e.repo_files();
    std::fs::write(src.join("another.txt"), b"not stored").unwrap();
    assert!(bo(&e, &["backup", "--dry-run", s]).status.success());
    assert_eq!(
        e.repo_files().iter().map(|(p, _)| p).collect::<Vec<_>>(),
        before.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
}

#[test]
fn backup_only_keys_are_refused_where_they_cannot_protect() {
    let e = Env::new();
    e.ok(&["init", "--encryption", "none"]);
    let o = e.cmd(&["key", "add", "--backup-only"]).env("ARCA_NEW_PASSWORD", BACKUP_PW).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--encryption none"), "{}", String::from_utf8_lossy(&o.stderr));
    let v1 = Env::new();
    v1.ok(&["init", "--format-version", "1"]);
    let o = v1.cmd(&["key", "add", "--backup-only"]).env("ARCA_NEW_PASSWORD", BACKUP_PW).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("arca upgrade"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = e.run(&["key", "add", "--host", "x"]);
    assert_eq!(o.status.code(), Some(2), "--host needs --backup-only");
}

#[test]
fn reader_keys_list_what_their_role_allows_and_refuse_the_rest() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(src.join("payroll-secret")).unwrap();
    std::fs::write(src.join("payroll-secret/salaries.csv"), random_bytes(100_000, 3)).unwrap();
    e.backup(&[src.to_str().unwrap()]);
    for (flag, pw) in [("--metadata-only", "meta pw"), ("--summary-only", "summary pw")] {
        let o = e
            .cmd(&["--json", "key", "add", flag, "--label", &flag[2..]])
            .env("ARCA_NEW_PASSWORD", pw)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v = last_json(&String::from_utf8_lossy(&o.stdout));
        assert_eq!(v["unreadable_snapshots"], 0, "a fresh repository's keys split already: {v}");
    }
    let roles: Vec<String> =
        e.json(&["key", "list"]).as_array().unwrap().iter().map(|k| k["role"].as_str().unwrap().to_string()).collect();
    assert!(roles.contains(&"metadata".into()) && roles.contains(&"summary".into()), "{roles:?}");
    std::fs::write(src.join("payroll-secret/bonus.csv"), b"more").unwrap();
    e.backup(&[src.to_str().unwrap()]);
    let with = |pw: &str, args: &[&str]| e.cmd(args).env("ARCA_PASSWORD", pw).output().unwrap();
    let text = |o: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };

    // Metadata: snapshots, ls, find, stats and who signed; no contents.
    let o = with("meta pw", &["ls", "latest"]);
    assert!(o.status.success() && text(&o).contains("payroll-secret/salaries.csv"), "{}", text(&o));
    let o = with("meta pw", &["find", "bonus*"]);
    assert!(o.status.success() && text(&o).contains("1 match"), "{}", text(&o));
    let o = with("meta pw", &["snapshots", "--signers"]);
    assert!(o.status.success() && !text(&o).contains("unsigned") && !text(&o).contains("warning"), "{}", text(&o));
    let target = e.path("t");
    let full_slot = e.json(&["key", "list"]).as_array().unwrap().iter().find(|k| k["role"] == "full").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for args in [
        vec!["restore", "latest", "--target", target.to_str().unwrap()],
        vec!["dump", "latest", "payroll-secret/salaries.csv"],
        vec!["check"],
        vec!["forget", "latest"],
        vec!["forget", "--keep-last", "1", "--dry-run"],
        vec!["tag", "latest", "--add", "x"],
        vec!["protect", "latest", "--until", "forever"],
        vec!["prune"],
        vec!["key", "add", "--label", "y"],
        vec!["key", "remove", &full_slot[..8]],
        vec!["key", "rotate", "--yes"],
        vec!["key", "destroy-class", "x", "--yes"],
        vec!["key", "export"],
        vec!["backup", src.to_str().unwrap()],
    ] {
        let o = with("meta pw", &args);
        assert!(!o.status.success(), "{args:?} succeeded with a metadata-only key");
        assert!(
            text(&o).contains("metadata-only key") && text(&o).contains("use a full key"),
            "{args:?}: {}",
            text(&o)
        );
    }
    assert!(!target.exists());

    // Summary: hosts, times, sizes, signers; not one name.
    let o = with("summary pw", &["--json", "snapshots", "--signers"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("payroll") && !out.contains("salaries") && !out.contains(src.to_str().unwrap()), "{out}");
    assert!(out.contains("total_bytes") && out.contains("hostname"), "{out}");
    for args in [vec!["ls", "latest"], vec!["find", "bonus*"], vec!["stats"], vec!["diff", "latest~1", "latest"]] {
        let o = with("summary pw", &args);
        assert!(!o.status.success(), "{args:?} succeeded with a summary-only key: {}", text(&o));
        assert!(text(&o).contains("summary-only key"), "{args:?}: {}", text(&o));
        assert!(!text(&o).contains("payroll"), "{args:?}: {}", text(&o));
    }
    assert_eq!(e.json(&["key", "list"]).as_array().unwrap().len(), 3, "no slot was removed");
    let v = e.json(&["check", "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");

    // A backup-only host's backup: the metadata key reads its names too.
    let o = e.cmd(&["key", "add", "--backup-only"]).env("ARCA_NEW_PASSWORD", BACKUP_PW).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let web = e.path("web");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(web.join("index.html"), b"<html>").unwrap();
    assert!(bo(&e, &["backup", "--host", "web01", web.to_str().unwrap()]).status.success());
    let o = with("meta pw", &["ls", "latest", "--host", "web01"]);
    assert!(o.status.success() && text(&o).contains("index.html"), "{}", text(&o));
}

#[test]
fn a_repository_from_before_reader_keys_needs_a_rewrite_for_them_to_see_everything() {
    let e = Env::new();
    e.ok(&["init", "--format-version", "1"]);
    let src = e.path("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    std::fs::write(src.join("dir/old.txt"), b"from version 1").unwrap();
    e.backup(&[src.to_str().unwrap()]);
    e.ok(&["upgrade"]);
    let o = e.cmd(&["--json", "key", "add", "--metadata-only"]).env("ARCA_NEW_PASSWORD", "meta pw").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let added = last_json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(added["unreadable_snapshots"], 1, "{added}");
    assert!(added["packs_to_rewrite"].as_u64().unwrap() > 0, "{added}");
    // The unchanged directory's tree is the old one: the new snapshot is not whole to it.
    e.backup(&[src.to_str().unwrap()]);
    let ls = |pw: &str| e.cmd(&["ls", "latest"]).env("ARCA_PASSWORD", pw).output().unwrap();
    let o = ls("meta pw");
    assert!(!o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("key rotate --rewrite"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let w = e.json(&["key", "rotate", "--rewrite-only"]);
    assert_eq!(w["complete"], true, "{w}");
    let o = ls("meta pw");
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("dir/old.txt"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = e.cmd(&["--json", "snapshots"]).env("ARCA_PASSWORD", "meta pw").output().unwrap();
    assert!(
        o.status.success() && !String::from_utf8_lossy(&o.stderr).contains("warning"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(e.json(&["check", "--read-data"])["ok"], true);
}
