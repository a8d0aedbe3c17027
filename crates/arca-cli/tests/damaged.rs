//! The collection of deliberately damaged repositories: each case damages a fresh repository
//! one way, then holds `check` to its expected output (which errors or notes, naming which
//! object, which snapshots and paths) and walks the documented way back: `repair index`,
//! `repair snapshots`, `prune`. A repair never loses a blob that was readable before: every
//! file not listed as lost restores byte-identical.

mod common;
use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A repository with two snapshots of a small tree; the second changes `b/` only.
struct Case {
    e: Env,
    src: PathBuf,
    /// The source as the first snapshot saw it.
    src_first: PathBuf,
    first: String,
    second: String,
}

fn case() -> Case {
    let e = Env::init();
    let src = e.path("src");
    for d in ["a", "b", "c"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    for i in 0..3u64 {
        std::fs::write(src.join(format!("a/f{i}")), random_bytes(300_000, i)).unwrap();
        std::fs::write(src.join(format!("c/f{i}")), random_bytes(200_000, 50 + i)).unwrap();
    }
    std::fs::write(src.join("top"), b"top level file\n").unwrap();
    let s = src.to_str().unwrap().to_string();
    let first = e.backup(&[&s]);
    let src_first = e.path("src-first");
    sh(&format!("cp -a {s} {}", src_first.display()));
    for i in 0..2u64 {
        std::fs::write(src.join(format!("b/f{i}")), random_bytes(400_000, 100 + i)).unwrap();
    }
    let second = e.backup(&[&s]);
    Case { e, src, src_first, first, second }
}

/// Every pack with the kinds and ids of its blobs.
fn packs(e: &Env) -> HashMap<String, (String, Vec<String>)> {
    let mut out = HashMap::new();
    for (p, _) in e.repo_files() {
        if !p.to_string_lossy().contains("/data/") {
            continue;
        }
        let id = p.file_name().unwrap().to_string_lossy().into_owned();
        let v: Value = serde_json::from_str(&e.ok(&["cat", "pack", &id])).unwrap();
        let blobs = v["blobs"].as_array().unwrap();
        let kind = blobs[0]["kind"].as_str().unwrap().to_string();
        out.insert(id, (kind, blobs.iter().map(|b| b["id"].as_str().unwrap().to_string()).collect()));
    }
    out
}

/// The node of `file` (relative to the source) in `snap`.
fn node_of(c: &Case, snap: &str, file: &str) -> Value {
    let v = c.e.json(&["cat", "snapshot", snap]);
    let mut tree = v["tree"].as_str().unwrap().to_string();
    let full = format!("{}/{file}", c.src.display());
    let parts: Vec<&str> = full.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        let t = c.e.json(&["cat", "tree", &tree]);
        let node = t["nodes"].as_array().unwrap().iter().find(|n| n["name"] == *part).unwrap().clone();
        if i + 1 == parts.len() {
            return node;
        }
        tree = node["subtree"].as_str().unwrap().to_string();
    }
    unreachable!("empty path")
}

/// The pack holding blob `blob`.
fn pack_holding(e: &Env, blob: &str) -> String {
    packs(e).into_iter().find(|(_, (_, blobs))| blobs.iter().any(|b| b == blob)).expect("blob is in a pack").0
}

/// The pack holding the first data blob of `file` in `snap`.
fn pack_of(c: &Case, snap: &str, file: &str) -> String {
    let n = node_of(c, snap, file);
    pack_holding(&c.e, n["content"][0].as_str().unwrap())
}

fn pack_path(e: &Env, id: &str) -> PathBuf {
    e.repo.join("data").join(&id[..2]).join(id)
}

/// `check` as JSON, whatever its exit code.
fn check(e: &Env, read_data: bool) -> Value {
    let mut args = vec!["--json", "check"];
    if read_data {
        args.push("--read-data");
    }
    let o = e.run(&args);
    let text = String::from_utf8_lossy(&o.stdout);
    let v = text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|v| v["type"] == "summary");
    let v = v.unwrap_or_else(|| panic!("check printed no summary: {text}"));
    assert_eq!(o.status.success(), v["ok"] == true, "exit code follows the verdict: {v}");
    v
}

fn messages(v: &Value, field: &str) -> Vec<String> {
    v["report"][field]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}: {}", p["object"].as_str().unwrap(), p["message"].as_str().unwrap()))
        .collect()
}

fn has(list: &[String], needle: &str) -> bool {
    list.iter().any(|m| m.contains(needle))
}

/// Affected paths per snapshot id prefix.
fn affected(v: &Value) -> HashMap<String, Vec<String>> {
    v["report"]["affected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let paths = a["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
            (a["snapshot"].as_str().unwrap()[..8].to_string(), paths)
        })
        .collect()
}

/// Restore `snap` and require every file to equal the source, unless the snapshot's
/// warnings list it as lost. Returns the lost paths.
fn restores_except_lost(c: &Case, snap: &str, src: &Path) -> Vec<String> {
    let v = c.e.json(&["cat", "snapshot", snap]);
    let lost: Vec<String> =
        v["warnings"].as_array().unwrap().iter().map(|w| w["path"].as_str().unwrap().to_string()).collect();
    let t = c.e.path(&format!("restore-{snap}"));
    let s = c.src.to_str().unwrap();
    c.e.ok(&["restore", &format!("{snap}:{s}"), "--target", t.to_str().unwrap()]);
    for entry in walk(src) {
        let rel = entry.strip_prefix(src).unwrap().to_string_lossy().into_owned();
        let listed = lost.iter().any(|l| l.contains(&format!("/{rel} ")) || l.ends_with(&format!("/{rel}")));
        let same = std::fs::read(t.join(&rel)).ok() == std::fs::read(&entry).ok();
        assert!(same || listed, "{rel}: differs but is not listed as lost ({lost:?})");
    }
    std::fs::remove_dir_all(&t).unwrap();
    lost
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(p).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn missing_data_pack() {
    let c = case();
    let e = &c.e;
    let pack = pack_of(&c, &c.second, "b/f0");
    std::fs::remove_file(pack_path(e, &pack)).unwrap();
    let v = check(e, false);
    assert_eq!(v["ok"], false);
    assert!(has(&messages(&v, "errors"), &format!("pack {pack}: missing from storage")), "{v}");
    let hit = affected(&v);
    assert!(hit[&c.second[..8]].iter().any(|p| p.ends_with("/b/f0")), "{v}");
    assert!(!hit.contains_key(&c.first[..8]), "the first snapshot has no b/: {v}");
    // Repair: the snapshot is rewritten with the lost ranges as zeros, then the index.
    let r = e.json(&["repair", "snapshots", "--forget"]);
    let repaired = r["report"]["repaired"].as_array().unwrap();
    assert_eq!(repaired.len(), 1, "{r}");
    let new = repaired[0]["repaired"].as_str().unwrap().to_string();
    e.ok(&["repair", "index"]);
    let v = check(e, true);
    assert_eq!(v["ok"], true, "after repair: {v}");
    let lost = restores_except_lost(&c, &new[..8], &c.src);
    assert!(lost.iter().any(|l| l.ends_with("/b/f0 (lost ranges are zeros)") || l.contains("/b/f0 ")), "{lost:?}");
    assert!(!lost.iter().any(|l| l.contains("/a/") || l.contains("/c/")), "only b/ was in that pack: {lost:?}");
    restores_except_lost(&c, &c.first[..8], &c.src_first);
}

#[test]
fn truncated_pack() {
    let c = case();
    let e = &c.e;
    let pack = pack_of(&c, &c.first, "a/f1");
    let p = pack_path(e, &pack);
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(len / 2).unwrap();
    let v = check(e, false);
    assert!(
        has(
            &messages(&v, "errors"),
            &format!("pack {pack}: size is {} bytes, the index says {len} (truncated or overwritten)", len / 2)
        ),
        "{v}"
    );
    let hit = affected(&v);
    assert!(hit.contains_key(&c.first[..8]) && hit.contains_key(&c.second[..8]), "both snapshots hold a/: {v}");
    // repair index keeps the blobs before the cut; repair snapshots cuts what is gone.
    let ri = e.json(&["repair", "index"]);
    assert!(ri["report"]["unreadable_packs"][0].as_str().unwrap().contains("kept"), "{ri}");
    let r = e.json(&["repair", "snapshots", "--forget"]);
    assert_eq!(r["report"]["repaired"].as_array().unwrap().len(), 2, "{r}");
    let v = check(e, false);
    assert_eq!(v["ok"], true, "the structure is whole again: {v}");
    for rep in r["report"]["repaired"].as_array().unwrap() {
        let expected = if rep["original"] == c.first.as_str() { &c.src_first } else { &c.src };
        let lost = restores_except_lost(&c, &rep["repaired"].as_str().unwrap()[..8], expected);
        // The first half of the pack (a/ and c/ of the first backup) still restores.
        assert!(!lost.is_empty() && lost.len() < 6, "{lost:?}");
    }
}

#[test]
fn deleted_index() {
    let c = case();
    let e = &c.e;
    std::fs::remove_dir_all(e.repo.join("index")).unwrap();
    std::fs::remove_dir_all(e.path("home/.cache")).ok();
    let v = check(e, false);
    assert_eq!(v["ok"], false);
    assert!(has(&messages(&v, "errors"), "not in the index"), "{v}");
    assert!(has(&messages(&v, "notes"), "not in any index"), "{v}");
    // The error says what to do, in fields a script or a web UI can act on.
    let top = c.src.join("top");
    let o = e.run(&["--json", "dump", &c.second[..8], top.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = last_json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(err["type"], "error", "{err}");
    assert_eq!(err["kind"], "damaged", "{err}");
    assert_eq!(err["remedy"], "repair-index", "{err}");
    assert_eq!(err["remedy_command"], "arca repair index", "{err}");
    e.ok(&["repair", "index"]);
    let v = check(e, true);
    assert_eq!(v["ok"], true, "{v}");
    assert!(restores_except_lost(&c, &c.second[..8], &c.src).is_empty());
}

#[test]
fn duplicate_blobs() {
    let c = case();
    let e = &c.e;
    // A backup that cannot see the index stores everything again.
    let hidden = e.path("index-hidden");
    std::fs::rename(e.repo.join("index"), &hidden).unwrap();
    e.ok(&["--no-cache", "backup", c.src.to_str().unwrap()]);
    for f in std::fs::read_dir(&hidden).unwrap().flatten() {
        std::fs::rename(f.path(), e.repo.join("index").join(f.file_name())).unwrap();
    }
    let v = check(e, true);
    assert_eq!(v["ok"], true, "duplicates are not damage: {v}");
    let before: u64 = e
        .repo_files()
        .iter()
        .filter(|(p, _)| p.to_string_lossy().contains("/data/"))
        .map(|(_, b)| b.len() as u64)
        .sum();
    let r = e.json(&["prune", "--max-unused", "0%"]);
    let after = r["prune"]["after"]["bytes"].as_u64().unwrap();
    assert!(after * 10 < before * 6, "prune drops the duplicate copies: {before} -> {after}");
    assert_eq!(check(e, true)["ok"], true);
    assert!(restores_except_lost(&c, &c.first[..8], &c.src_first).is_empty());
}

#[test]
fn dangling_tree_reference() {
    let c = case();
    let e = &c.e;
    // The second snapshot's root tree lives in a tree pack of its own (the first one's trees
    // for a/ and c/ are shared): delete it.
    let root = c.e.json(&["cat", "snapshot", &c.second])["tree"].as_str().unwrap().to_string();
    let pack = pack_holding(e, &root);
    std::fs::remove_file(pack_path(e, &pack)).unwrap();
    let v = check(e, false);
    assert!(has(&messages(&v, "errors"), &format!("pack {pack}: missing from storage")), "{v}");
    let hit = affected(&v);
    assert!(hit[&c.second[..8]].contains(&"/".to_string()), "{v}");
    assert!(!hit.contains_key(&c.first[..8]), "{v}");
    let r = e.json(&["repair", "snapshots"]);
    let rep = &r["report"]["repaired"][0];
    assert_eq!(rep["original"].as_str().unwrap(), c.second, "{r}");
    assert!(rep["lost"][0].as_str().unwrap().contains("directory listing is lost"), "{r}");
    assert_eq!(r["report"]["originals_forgotten"].as_array().unwrap().len(), 0, "originals stay without --forget");
    assert!(snapshot_ids(e).contains(&c.second));
}

#[test]
fn orphan_packs_and_a_stale_lock() {
    let c = case();
    let e = &c.e;
    std::fs::write(c.src.join("new"), random_bytes(3 << 20, 999)).unwrap();
    // Killed after a pack is stored, before any index names it: an orphan and a lock remain.
    let o = e.cmd(&["backup", c.src.to_str().unwrap()]).env("ARCA_FAILPOINT", "writer-after-pack").output().unwrap();
    assert!(!o.status.success());
    let v = check(e, false);
    assert_eq!(v["ok"], true, "leftovers are not errors: {v}");
    let notes = messages(&v, "notes");
    assert!(has(&notes, "not in any index"), "{v}");
    assert!(has(&notes, "stale (its process is gone"), "{v}");
    let r = e.json(&["prune"]);
    assert_eq!(r["prune"]["stale_locks_removed"], 1, "{r}");
    assert!(r["prune"]["plan"]["orphan_packs"].as_u64().unwrap() >= 1, "{r}");
    let v = check(e, true);
    assert_eq!(v["ok"], true);
    assert!(messages(&v, "notes").is_empty(), "prune cleared the leftovers: {v}");
}

#[test]
fn unknown_format_version_and_wrong_key() {
    let c = case();
    let e = &c.e;
    let o = e.cmd(&["check"]).env("ARCA_PASSWORD", "not the password").output().unwrap();
    assert_eq!(o.status.code(), Some(12));
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrong password"));
    let cfg = e.repo.join("config");
    let mut f = arca_format::ConfigFile::from_bytes(&std::fs::read(&cfg).unwrap()).unwrap();
    f.version = 7;
    std::fs::write(&cfg, f.to_bytes().unwrap()).unwrap();
    let o = e.run(&["check"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("format version 7 is newer than this arca supports (2)"), "{err}");
}

/// Issue 14, items 3 and 4: snapshots are signed into a history; `check` names a snapshot the
/// storage deleted, one it brought back after a forget, and two it swapped; an auditor with
/// only the public key verifies a snapshot, and an altered one fails.
#[test]
fn signed_history_names_deleted_resurrected_and_swapped_snapshots() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut ids = vec![];
    for i in 0..4u64 {
        std::fs::write(src.join("f"), random_bytes(1000, i)).unwrap();
        ids.push(e.backup(&[src.to_str().unwrap()]));
    }
    let listed = e.json(&["snapshots", "--signers"]);
    let signer = e.json(&["key", "signer"]);
    for s in listed.as_array().unwrap() {
        assert_eq!(s["signed_by"]["signer"], signer["public_key"], "{s}");
    }
    let table = e.ok(&["snapshots", "--signers"]);
    assert!(table.contains("Signed by") && table.contains(signer["fingerprint"].as_str().unwrap()), "{table}");
    // An auditor: the public key file and the repository, no password.
    let pubkey = e.path("web01.pub");
    e.ok(&["key", "signer", "-o", pubkey.to_str().unwrap()]);
    let audit = |id: &str| {
        e.cmd(&["verify-signature", id, "--pubkey", pubkey.to_str().unwrap()])
            .env_remove("ARCA_PASSWORD")
            .output()
            .unwrap()
    };
    let o = audit(&ids[1][..10]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("chain is intact") && text.contains("stored bytes are the ones signed"), "{text}");
    // Another key does not verify it.
    let other = e.path("other.pub");
    std::fs::write(&other, format!("arca-ed25519 {}\n", "ab".repeat(32))).unwrap();
    let o = e
        .cmd(&["verify-signature", &ids[1], "--pubkey", other.to_str().unwrap()])
        .env_remove("ARCA_PASSWORD")
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not signed by key"));

    let snap = |id: &str| e.repo.join("snapshots").join(id);
    let kept = std::fs::read(snap(&ids[0])).unwrap();
    e.ok(&["forget", &ids[0]]);
    assert!(e.run(&["check"]).status.success());
    // The storage brings back the forgotten one, deletes another, swaps two.
    std::fs::write(snap(&ids[0]), &kept).unwrap();
    std::fs::remove_file(snap(&ids[1])).unwrap();
    let (b2, b3) = (std::fs::read(snap(&ids[2])).unwrap(), std::fs::read(snap(&ids[3])).unwrap());
    std::fs::write(snap(&ids[2]), &b3).unwrap();
    std::fs::write(snap(&ids[3]), &b2).unwrap();
    let o = e.run(&["check"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let line = |id: &str, what: &str| err.lines().any(|l| l.contains(&format!("snapshot {id}")) && l.contains(what));
    assert!(line(&ids[0], "removed by") && line(&ids[0], "present"), "resurrected: {err}");
    assert!(line(&ids[1], "deleted outside arca"), "deleted: {err}");
    assert!(line(&ids[2], "another object's bytes") && line(&ids[3], "another object's bytes"), "swapped: {err}");
    // The auditor sees the swap, the deletion and the removal too.
    let o = audit(&ids[0]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stdout).contains("removed it"), "{o:?}");
    for id in [&ids[1], &ids[2]] {
        let o = audit(id);
        assert!(!o.status.success(), "{id}");
    }
    assert!(String::from_utf8_lossy(&audit(&ids[2]).stdout).contains("NOT the ones signed"));
    assert!(String::from_utf8_lossy(&audit(&ids[1]).stdout).contains("no longer stored"));
}

/// Small files are restored in batches read by the span (several files' blobs with one
/// read): a damaged blob fails only the file that holds it, never its neighbours, and a file
/// named twice (deduplicated) and a file of one repeated blob come back whole.
#[test]
fn a_damaged_blob_fails_only_its_own_file_in_a_batch() {
    let e = Env::init();
    let src = e.path("small");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..40u64 {
        std::fs::write(src.join(format!("f{i:02}")), random_bytes(3_000 + i as usize * 500, 900 + i)).unwrap();
    }
    std::fs::write(src.join("copy-of-f05"), std::fs::read(src.join("f05")).unwrap()).unwrap();
    std::fs::write(src.join("zeros"), vec![0u8; 6 << 20]).unwrap();
    let s = src.to_str().unwrap();
    let snap = e.backup(&[s]);
    let t = e.path("whole");
    e.ok(&["restore", &format!("{}:{s}", &snap[..8]), "--target", t.to_str().unwrap()]);
    for f in walk(&src) {
        let rel = f.strip_prefix(&src).unwrap();
        assert_eq!(std::fs::read(t.join(rel)).unwrap(), std::fs::read(&f).unwrap(), "{}", rel.display());
    }
    // Flip a byte inside f17's blob.
    let c = Case { e, src: src.clone(), src_first: src.clone(), first: snap.clone(), second: snap.clone() };
    let blob = node_of(&c, &snap, "f17")["content"][0].as_str().unwrap().to_string();
    let pack = pack_holding(&c.e, &blob);
    let v: Value = serde_json::from_str(&c.e.ok(&["cat", "pack", &pack])).unwrap();
    let at =
        v["blobs"].as_array().unwrap().iter().find(|b| b["id"] == blob.as_str()).unwrap()["offset"].as_u64().unwrap();
    let path = pack_path(&c.e, &pack);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[at as usize + 40] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let e = &c.e;
    let t = e.path("damaged");
    let o = e.run(&["--json", "restore", &format!("{}:{s}", &snap[..8]), "--target", t.to_str().unwrap()]);
    assert!(!o.status.success(), "a file could not be restored: the exit code says so");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("f17") && out.contains("cannot read its data"), "{out}");
    assert!(!t.join("f17").exists(), "no file with wrong contents is left behind");
    for f in walk(&src) {
        let rel = f.strip_prefix(&src).unwrap();
        if rel == Path::new("f17") {
            continue;
        }
        assert_eq!(std::fs::read(t.join(rel)).unwrap(), std::fs::read(&f).unwrap(), "{}", rel.display());
    }
    // The pack cut short at that blob (an upload that stopped half way): a batch's request
    // for a span past the cut fails, and its blobs are then read one by one, so every file
    // whose blobs lie before the cut still restores.
    bytes[at as usize + 40] ^= 0x20;
    std::fs::write(&path, &bytes[..at as usize]).unwrap();
    let ends: HashMap<String, u64> = v["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["id"].as_str().unwrap().to_string(), b["offset"].as_u64().unwrap() + b["length"].as_u64().unwrap()))
        .collect();
    let t = e.path("truncated");
    let o = e.run(&["restore", &format!("{}:{s}", &snap[..8]), "--target", t.to_str().unwrap()]);
    assert!(!o.status.success());
    let dir = node_of(&c, &snap, "");
    let listing = e.json(&["cat", "tree", dir["subtree"].as_str().unwrap()]);
    let mut kept = 0;
    for f in walk(&src) {
        let rel = f.strip_prefix(&src).unwrap().to_str().unwrap().to_string();
        let node = listing["nodes"].as_array().unwrap().iter().find(|n| n["name"] == rel.as_str()).unwrap();
        let blobs = node["content"].as_array().unwrap().clone();
        let whole = blobs.iter().all(|b| ends.get(b.as_str().unwrap()).is_none_or(|end| *end <= at));
        if whole {
            assert_eq!(std::fs::read(t.join(&rel)).ok(), std::fs::read(&f).ok(), "{rel} lies before the cut");
            kept += 1;
        } else {
            assert!(!t.join(&rel).exists(), "{rel} lies past the cut: not restored");
        }
    }
    assert!(kept > 0, "some files lie before the cut");
}
