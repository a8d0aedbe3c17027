//! `arca copy`: snapshots move between repositories with different keys, only missing data is
//! sent, a second copy sends nothing, an interrupted copy resumes without sending again what
//! arrived, and `--delete` mirrors the selection.

mod common;
use common::*;
use std::os::unix::process::ExitStatusExt;

const FROM_PASSWORD: &str = "the source password";

/// `arca` against `dst` with the source repository's password in the environment.
fn copy_cmd(dst: &Env, src: &Env, args: &[&str]) -> std::process::Command {
    let mut a = vec!["copy", "--from-repo", src.repo.to_str().unwrap()];
    a.extend_from_slice(args);
    let mut c = dst.cmd(&a);
    c.env("ARCA_FROM_PASSWORD", FROM_PASSWORD);
    c
}

fn copy_json(dst: &Env, src: &Env, args: &[&str]) -> serde_json::Value {
    let mut full = vec!["--json", "copy", "--from-repo", src.repo.to_str().unwrap()];
    full.extend_from_slice(args);
    let o = dst.cmd(&full).env("ARCA_FROM_PASSWORD", FROM_PASSWORD).output().unwrap();
    assert!(
        o.status.success(),
        "copy failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    last_json(&String::from_utf8_lossy(&o.stdout))
}

#[test]
fn copy_moves_only_what_is_missing_and_resumes() {
    let src = Env::new();
    src.cmd(&["init"]).env("ARCA_PASSWORD", FROM_PASSWORD).output().unwrap();
    let with_src_pw = |args: &[&str]| {
        let o = src.cmd(args).env("ARCA_PASSWORD", FROM_PASSWORD).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let data = src.path("data");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..4u64 {
        std::fs::write(data.join(format!("f{i}")), random_bytes(2 << 20, i)).unwrap();
    }
    let d = data.to_str().unwrap();
    with_src_pw(&["backup", d, "--host", "h1"]);
    std::fs::write(data.join("f9"), random_bytes(1 << 20, 9)).unwrap();
    with_src_pw(&["backup", d, "--host", "h1"]);
    with_src_pw(&["backup", d, "--host", "h2"]);

    let dst = Env::new();
    dst.ok(&["init", "--pack-size-mib", "1"]);
    // Dry run: says what would move, moves nothing.
    let v = copy_json(&dst, &src, &["--dry-run"]);
    assert_eq!(v["copied"].as_array().unwrap().len(), 3, "{v}");
    assert!(v["stats"]["bytes_sent"].as_u64().unwrap() >= 9 << 20, "{v}");
    assert!(snapshot_ids(&dst).is_empty());
    // Copy one host, then everything: the second run sends only what the first did not.
    let v = copy_json(&dst, &src, &["--host", "h1"]);
    assert_eq!(v["copied"].as_array().unwrap().len(), 2, "{v}");
    let first_bytes = v["stats"]["bytes_sent"].as_u64().unwrap();
    assert!((9 << 20..10 << 20).contains(&first_bytes), "dedup within the copy: {v}");
    let v = copy_json(&dst, &src, &[]);
    assert_eq!(v["copied"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["snapshots_already_here"], 2);
    assert!(v["stats"]["bytes_sent"].as_u64().unwrap() < 100_000, "the h2 snapshot has the same data: {v}");
    // Again: nothing to do.
    let v = copy_json(&dst, &src, &[]);
    assert_eq!((v["copied"].as_array().unwrap().len(), v["stats"]["blobs_sent"].as_u64()), (0, Some(0)), "{v}");
    // The copies restore exactly and the destination checks clean; its key is its own.
    let t = dst.path("t");
    dst.ok(&["restore", &format!("latest:{d}"), "--target", t.to_str().unwrap(), "--host", "h2"]);
    assert_eq!(rsync_diff(&data, &t), "");
    assert_eq!(dst.json(&["check", "--read-data"])["ok"], true);
    let s = dst.json(&["snapshots"]);
    assert!(s[0]["original"].as_str().is_some(), "a copy names its original: {s}");

    // An interrupted copy resumes without sending again what arrived (up to one checkpoint).
    for i in 0..5u64 {
        std::fs::write(data.join(format!("g{i}")), random_bytes(12 << 20, 100 + i)).unwrap();
    }
    with_src_pw(&["backup", d, "--host", "h1"]);
    // 60 MiB of new chunks (0.5-8 MiB each, with the source's random chunker seed) make 30-60
    // packs of 1 MiB or more: killing at the 20th is always mid-copy (killing at the 34th was
    // sometimes after the last data pack, and the test flaked).
    let o = copy_cmd(&dst, &src, &[]).env("ARCA_FAILPOINT", "writer-after-pack:20").output().unwrap();
    assert_eq!(o.status.signal(), Some(9), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(dst.json(&["check"])["ok"], true, "an interrupted copy leaves a consistent repository");
    let v = copy_json(&dst, &src, &[]);
    assert_eq!(v["copied"].as_array().unwrap().len(), 1, "{v}");
    // The 20 stored packs hold at least 20 chunks of at least 512 KiB: none is sent again.
    let resent = v["stats"]["bytes_sent"].as_u64().unwrap();
    assert!(resent <= 50 << 20, "what arrived before the kill is not sent again: {resent}");
    assert!(v["stats"]["blobs_present"].as_u64().unwrap() >= 20, "{v}");

    // --delete mirrors: a snapshot forgotten at the source goes here too.
    let ids = with_src_pw(&["--json", "snapshots", "--host", "h2"]);
    let h2: serde_json::Value = serde_json::from_str(&ids).unwrap();
    let h2 = h2[0]["id"].as_str().unwrap().to_string();
    with_src_pw(&["forget", &h2]);
    let v = copy_json(&dst, &src, &["--delete", "--dry-run"]);
    assert_eq!(v["deleted"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(snapshot_ids(&dst).len(), 4);
    copy_json(&dst, &src, &["--delete"]);
    assert_eq!(snapshot_ids(&dst).len(), 3);

    // A wrong source password is named as such.
    let o = dst
        .cmd(&["copy", "--from-repo", src.repo.to_str().unwrap()])
        .env("ARCA_FROM_PASSWORD", "nope")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(12));
    assert!(String::from_utf8_lossy(&o.stderr).contains("source repository"), "{}", String::from_utf8_lossy(&o.stderr));
}
