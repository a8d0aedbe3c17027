//! Damage detection and repair, passwords and key slots, the default repository, snapshot
//! selection, stats, cat, exit codes.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;

/// Content blob ids of the file at `path` in snapshot `snap`, found through `arca cat`.
fn content_of(e: &Env, snap: &str, path: &str) -> Vec<String> {
    let mut tree = e.json(&["cat", "snapshot", snap])["tree"].as_str().unwrap().to_string();
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (i, c) in comps.iter().enumerate() {
        let t = e.json(&["cat", "tree", &tree]);
        let node = t["nodes"].as_array().unwrap().iter().find(|n| n["name"] == *c).expect("path in snapshot").clone();
        if i + 1 == comps.len() {
            return node["content"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
        }
        tree = node["subtree"].as_str().unwrap().to_string();
    }
    panic!("empty path")
}

/// (pack id, offset, length) of a blob, from the index objects.
fn locate(e: &Env, blob: &str) -> (String, u64, u64) {
    for f in std::fs::read_dir(e.repo.join("index")).unwrap().flatten() {
        let name = f.file_name().to_string_lossy().into_owned();
        let ix = e.json(&["cat", "index", &name]);
        for p in ix["packs"].as_array().unwrap() {
            for b in p["blobs"].as_array().unwrap() {
                if b["id"] == blob {
                    return (
                        p["id"].as_str().unwrap().into(),
                        b["offset"].as_u64().unwrap(),
                        b["length"].as_u64().unwrap(),
                    );
                }
            }
        }
    }
    panic!("blob {blob} not indexed")
}

fn pack_path(e: &Env, pack: &str) -> std::path::PathBuf {
    e.repo.join("data").join(&pack[..2]).join(pack)
}

#[test]
fn a_flipped_byte_is_found_and_named_and_only_hurts_its_file() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("good.txt"), b"good data").unwrap();
    let s1 = e.backup(&[src.to_str().unwrap()]);
    std::fs::write(src.join("bad.bin"), random_bytes(3 << 20, 77)).unwrap();
    let s2 = e.backup(&[src.to_str().unwrap()]);
    e.ok(&["check", "--read-data"]);

    let bad_path = format!("{}/bad.bin", src.display());
    let blobs = content_of(&e, &s2, &bad_path);
    let (pack, off, len) = locate(&e, &blobs[0]);
    let p = pack_path(&e, &pack);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[(off + len / 2) as usize] ^= 0x01;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&p, &bytes).unwrap();

    let o = e.run(&["check", "--read-data"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&pack), "check must name the pack:\n{err}");
    assert!(err.contains(&s2[..8]), "check must name the snapshot:\n{err}");
    assert!(err.contains(&bad_path), "check must name the path:\n{err}");
    assert!(!err.contains(&format!("snapshot {}", &s1[..8])), "the first snapshot is not affected:\n{err}");
    let v = e.json(&["check"]); // structure only: does not read data, so it passes
    assert_eq!(v["ok"], true);

    let dst = e.path("dst");
    e.ok(&["restore", &format!("{}:{}/good.txt", &s2[..8], src.display()), "--target", dst.to_str().unwrap()]);
    assert_eq!(std::fs::read(dst.join("good.txt")).unwrap(), b"good data");
    let o = e.run(&["restore", &format!("{}:{}", &s2[..8], bad_path), "--target", dst.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.bin") && err.contains("damaged"), "{err}");
    assert!(!dst.join("bad.bin").exists(), "a file with wrong contents must not be left behind");
    // dump of the damaged file fails too, rather than printing wrong bytes
    assert!(!e.run(&["dump", &s2[..8], &bad_path]).status.success());
}

#[test]
fn deleted_index_loses_nothing_and_says_how_to_rebuild() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), random_bytes(2 << 20, 4)).unwrap();
    e.backup(&[src.to_str().unwrap()]);
    for f in std::fs::read_dir(e.repo.join("index")).unwrap().flatten() {
        std::fs::remove_file(f.path()).unwrap();
    }
    let dst = e.path("dst");
    let o = e.run(&["restore", "latest", "--target", dst.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("arca repair index"), "{}", String::from_utf8_lossy(&o.stderr));
    let c = e.run(&["check"]);
    assert!(!c.status.success());
    let v = e.json(&["repair", "index"]);
    assert!(v["report"]["packs_indexed"].as_u64().unwrap() >= 2);
    e.ok(&["check", "--read-data"]);
    e.ok(&["restore", &format!("latest:{}", src.display()), "--target", dst.to_str().unwrap()]);
    assert_eq!(rsync_diff(&src, &dst), "");
}

#[test]
fn wrong_password_exits_12_and_changes_nothing() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    e.backup(&[src.to_str().unwrap()]);
    let before = e.repo_files();
    for args in [vec!["snapshots"], vec!["backup", src.to_str().unwrap()], vec!["key", "add"], vec!["check"]] {
        let o = e.cmd(&args).env("ARCA_PASSWORD", "wrong").output().unwrap();
        assert_eq!(o.status.code(), Some(12), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stderr).contains("wrong password"));
    }
    assert!(e.repo_files() == before, "a wrong password changed the repository");
    // no repository: exit 10
    let o = e.cmd(&["snapshots"]).env("ARCA_REPOSITORY", e.path("nothing-here")).output().unwrap();
    assert_eq!(o.status.code(), Some(10));
    let o = e.cmd(&["backup", src.to_str().unwrap()]).env("ARCA_REPOSITORY", e.path("nothing-here")).output().unwrap();
    assert_eq!(o.status.code(), Some(10), "an explicit repository must be created with init");
    assert!(!e.path("nothing-here").exists());
    // init twice is refused
    assert!(!e.run(&["init"]).status.success());
    // --help documents the exit codes
    let help = e.ok(&["--help"]);
    assert!(help.contains("12") && help.contains("wrong password") && help.contains("10"));
}

#[test]
fn default_repository_needs_no_setup() {
    let e = Env::new();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"zero config").unwrap();
    let run = |args: &[&str]| e.cmd(args).env_remove("ARCA_REPOSITORY").env_remove("ARCA_PASSWORD").output().unwrap();
    let o = run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(10), "no default repository yet");
    let o = run(&["backup", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let home = e.path("home");
    let key = home.join(".config/arca/default.key");
    let msg = String::from_utf8_lossy(&o.stderr);
    assert!(msg.contains(key.to_str().unwrap()) && msg.contains("safe"), "{msg}");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(home.join(".local/share/arca/default/config").is_file());
    let o = run(&["backup", src.to_str().unwrap()]);
    assert!(o.status.success());
    let o = run(&["--json", "snapshots"]);
    assert_eq!(last_json(&String::from_utf8_lossy(&o.stdout)).as_array().unwrap().len(), 2);
    let o = run(&["dump", "latest", &format!("{}/f", src.display())]);
    assert_eq!(o.stdout, b"zero config");
}

#[test]
fn key_slots() {
    let e = Env::init();
    let add =
        e.cmd(&["--json", "key", "add", "--label", "laptop"]).env("ARCA_NEW_PASSWORD", "second").output().unwrap();
    assert!(add.status.success());
    let added = last_json(&String::from_utf8_lossy(&add.stdout))["id"].as_str().unwrap().to_string();
    let list = e.json(&["key", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list.as_array().unwrap().iter().filter(|k| k["current"] == true).count(), 1);
    // both passwords open it
    assert!(e.cmd(&["snapshots"]).env("ARCA_PASSWORD", "second").output().unwrap().status.success());
    // the slot in use cannot be removed; another can
    let current =
        list.as_array().unwrap().iter().find(|k| k["current"] == true).unwrap()["id"].as_str().unwrap().to_string();
    assert!(!e.run(&["key", "remove", &current[..8]]).status.success());
    e.ok(&["key", "remove", &added[..8]]);
    assert_eq!(e.cmd(&["snapshots"]).env("ARCA_PASSWORD", "second").output().unwrap().status.code(), Some(12));
    // passwd replaces the password
    let o = e.cmd(&["key", "passwd"]).env("ARCA_NEW_PASSWORD", "third").output().unwrap();
    assert!(o.status.success());
    assert_eq!(e.run(&["snapshots"]).status.code(), Some(12), "old password must stop working");
    assert!(e.cmd(&["snapshots"]).env("ARCA_PASSWORD", "third").output().unwrap().status.success());
    // a password file works too
    let pf = e.path("pw");
    std::fs::write(&pf, "third\n").unwrap();
    assert!(e
        .cmd(&["snapshots"])
        .env_remove("ARCA_PASSWORD")
        .env("ARCA_PASSWORD_FILE", &pf)
        .output()
        .unwrap()
        .status
        .success());
    let o =
        e.cmd(&["snapshots"]).env_remove("ARCA_PASSWORD").env("ARCA_PASSWORD_COMMAND", "echo third").output().unwrap();
    assert!(o.status.success());
    // no password and no terminal: a clear error, not a hang
    let o = e.cmd(&["snapshots"]).env_remove("ARCA_PASSWORD").output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("ARCA_PASSWORD"));
}

#[test]
fn a_reader_that_goes_away_ends_a_listing_quietly() {
    // `arca ls latest | head -1`: the reader closes the pipe after one line. arca must stop
    // like a SIGPIPE-killed tool (141), not panic (println! does on a broken pipe).
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..3000 {
        std::fs::write(src.join(format!("file-with-a-long-name-{i:05}")), [i as u8]).unwrap();
    }
    e.backup(&[src.to_str().unwrap()]);
    for args in [&["ls", "latest"][..], &["--json", "ls", "latest"], &["--json", "cat", "snapshot", "latest"]] {
        let (read, write) = std::io::pipe().unwrap();
        drop(read);
        let o = e.cmd(args).stdout(write).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!stderr.contains("panicked"), "arca {args:?} panicked:\n{stderr}");
        assert_eq!(o.status.code(), Some(141), "arca {args:?}: {}\n{stderr}", o.status);
        assert!(stderr.is_empty(), "arca {args:?} complained about a reader that left:\n{stderr}");
    }
}

#[test]
fn snapshot_selection_stats_and_cat() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), random_bytes(1000, 1)).unwrap();
    let s = src.to_str().unwrap();
    let old = e.backup(&[s, "--host", "alpha", "--tag", "daily", "--time", "2025-01-02T03:04:05Z"]);
    std::fs::write(src.join("b"), random_bytes(500, 2)).unwrap();
    let new = e.backup(&[s, "--host", "beta", "--tag", "weekly,extra", "--time", "2025-06-01 12:00:00"]);
    let snaps = e.json(&["snapshots"]);
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    assert_eq!(snaps[0]["time"].as_str().unwrap(), "2025-01-02T03:04:05Z".replace('Z', "+00:00").as_str());
    let only = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["snapshots"];
        a.extend_from_slice(args);
        e.json(&a).as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(only(&["--host", "alpha"]), vec![old.clone()]);
    assert_eq!(only(&["--tag", "extra"]), vec![new.clone()]);
    assert_eq!(only(&["--path", s]).len(), 2);
    assert_eq!(only(&["--latest", "1"]).len(), 2, "one per host");
    assert!(only(&["--tag", "nope"]).is_empty());
    // latest respects filters
    let ls = e.ok(&["ls", "latest", "--host", "alpha"]);
    assert!(!ls.contains(&format!("{s}/b")));
    let ls = e.ok(&["ls", "latest", s, "-l"]);
    assert!(ls.contains(&format!("{s}/b")) && ls.contains("-rw"));
    // explicit parent
    let v = e.json(&["backup", s, "--parent", &old[..8]]);
    assert_eq!(v["parent"], old.as_str(), "JSON ids are full ids");
    assert_eq!(v["summary"]["files_unchanged"], 1);
    // unknown and ambiguous snapshots
    assert!(String::from_utf8_lossy(&e.run(&["ls", "ffffffffff"]).stderr).contains("no snapshot matches"));
    // stats
    let st = e.json(&["stats", &new[..8]]);
    assert_eq!(st["total_size"], 1500);
    assert_eq!(st["files"], 2);
    let raw = e.json(&["stats", "--mode", "raw-data"]);
    assert!(raw["raw_bytes"].as_u64().unwrap() >= 1500);
    // cat
    let cfg = e.json(&["cat", "config"]);
    assert_eq!(cfg["version"], 2, "init creates format version 2");
    assert_eq!(cfg["chunker"]["avg_size"], 1 << 20);
    let snap = e.json(&["cat", "snapshot", &new[..8]]);
    assert_eq!(snap["hostname"], "beta");
    let tree = e.json(&["cat", "tree", snap["tree"].as_str().unwrap()]);
    assert!(tree["nodes"].is_array());
    let pack = std::fs::read_dir(e.repo.join("data")).unwrap().flatten().next().unwrap().path();
    let pack_id = std::fs::read_dir(pack).unwrap().flatten().next().unwrap().file_name().to_string_lossy().into_owned();
    assert!(!e.json(&["cat", "pack", &pack_id])["blobs"].as_array().unwrap().is_empty());
    // check with subsets reads every pack across the groups
    let total: u64 = ["1/2", "2/2"]
        .iter()
        .map(|g| e.json(&["check", "--read-data-subset", g])["report"]["packs_read"].as_u64().unwrap())
        .sum();
    let all = e.json(&["check", "--read-data"])["report"]["packs_read"].as_u64().unwrap();
    assert_eq!(total, all);
    assert!(e.json(&["check", "--read-data-subset", "100%"])["report"]["packs_read"].as_u64().unwrap() == all);
    assert!(!e.run(&["check", "--read-data-subset", "3/2"]).status.success());
}

#[test]
fn paranoid_dedup_refuses_to_trust_a_damaged_stored_blob() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), random_bytes(2 << 20, 42)).unwrap();
    let s1 = e.backup(&[src.to_str().unwrap()]);
    let blobs = content_of(&e, &s1, &format!("{}/f", src.display()));
    let (pack, off, len) = locate(&e, &blobs[0]);
    let p = pack_path(&e, &pack);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[(off + len / 3) as usize] ^= 0x80;
    std::fs::write(&p, &bytes).unwrap();
    // A copy of the same data elsewhere: plain dedup trusts the id, paranoid dedup reads the
    // stored blob and refuses to reference it.
    std::fs::write(src.join("g"), random_bytes(2 << 20, 42)).unwrap();
    let o = e.run(&["backup", src.to_str().unwrap(), "--paranoid-dedup"]);
    assert!(!o.status.success(), "paranoid dedup must not reference a damaged blob");
    assert!(String::from_utf8_lossy(&o.stderr).contains("damaged"), "{}", String::from_utf8_lossy(&o.stderr));
    e.ok(&["backup", src.to_str().unwrap()]);
}

fn cache_files(e: &Env) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    let root = e.path("home/.cache/arca");
    for repo in std::fs::read_dir(root).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(repo.path()).unwrap().flatten() {
            if f.file_name().to_string_lossy().starts_with("index-") {
                out.push(f.path());
            }
        }
    }
    out
}

#[test]
fn index_cache_is_built_kept_current_and_survives_damage() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..30 {
        std::fs::write(src.join(format!("f{i}")), random_bytes(50_000, i)).unwrap();
    }
    e.backup(&[src.to_str().unwrap()]);
    e.ok(&["snapshots"]);
    let files = cache_files(&e);
    assert_eq!(files.len(), 1, "one cache file per repository: {files:?}");
    // A damaged cache file is not trusted: commands still work and it is rebuilt.
    std::fs::write(&files[0], b"ARCAIXC1 this is not an index cache").unwrap();
    std::fs::write(src.join("new"), random_bytes(70_000, 99)).unwrap();
    let v = e.json(&["backup", src.to_str().unwrap()]);
    assert_eq!(v["summary"]["files_read"], 1, "unchanged files are still found through the index");
    e.ok(&["check", "--read-data"]);
    let dst = e.path("dst");
    e.ok(&["restore", &format!("latest:{}", src.display()), "--target", dst.to_str().unwrap()]);
    assert_eq!(rsync_diff(&src, &dst), "");
    // --no-cache gives the same answers
    let with = e.json(&["stats", "--mode", "raw-data"]);
    let without = e.json(&["--no-cache", "stats", "--mode", "raw-data"]);
    assert_eq!(with, without);
}

/// Issue 14, item 5: `init --encryption none` stores data in the clear, authenticated: the
/// file's bytes are visible in its pack, a flipped byte there is still caught and named, and
/// backup and restore work as with encryption.
#[test]
fn an_authenticated_only_repository_stores_plaintext_and_still_catches_a_flipped_byte() {
    let e = Env::new();
    let o = e.run(&["init", "--encryption", "none"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not encrypted"));
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let data = random_bytes(1 << 20, 5); // incompressible: stored as it is
    std::fs::write(src.join("public.bin"), &data).unwrap();
    let snap = e.backup(&[src.to_str().unwrap()]);
    e.ok(&["check", "--read-data"]);
    let blobs = content_of(&e, &snap, &format!("{}/public.bin", src.display()));
    let (pack, off, len) = locate(&e, &blobs[0]);
    let p = pack_path(&e, &pack);
    let mut bytes = std::fs::read(&p).unwrap();
    let window = &data[4096..4096 + 64];
    assert!(bytes.windows(64).any(|w| w == window), "the pack holds the plaintext");
    let dst = e.path("dst");
    e.ok(&["restore", &snap, "--target", dst.to_str().unwrap()]);
    assert_eq!(std::fs::read(dst.join(src.strip_prefix("/").unwrap()).join("public.bin")).unwrap(), data);
    bytes[(off + len / 2) as usize] ^= 0x01;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&p, &bytes).unwrap();
    let o = e.run(&["check", "--read-data"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(&pack), "{}", String::from_utf8_lossy(&o.stderr));
}
