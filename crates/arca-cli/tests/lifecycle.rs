//! Retention: forget with GFS policies over three years (week, month, year and time-zone
//! boundaries), protection and destruction deadlines.

mod common;
use common::*;
use std::collections::BTreeSet;

/// Back up `src` once per time; returns nothing (ids change when protected, times do not).
fn snapshots_at(e: &Env, src: &std::path::Path, times: &[&str]) {
    for t in times {
        std::fs::write(src.join("f"), t.as_bytes()).unwrap();
        e.backup(&[src.to_str().unwrap(), "--time", t]);
    }
}

/// Times of the snapshots still in the repository.
fn remaining(e: &Env, tz: &str) -> BTreeSet<String> {
    let v = e.cmd(&["--json", "snapshots"]).env("TZ", tz).output().unwrap();
    let v = last_json(&String::from_utf8_lossy(&v.stdout));
    v.as_array().unwrap().iter().map(|s| s["time"].as_str().unwrap().to_string()).collect()
}

const TIMES: [&str; 11] = [
    "2026-03-02T10:00:00Z", // S1  Mon, ISO 2026-W10
    "2026-03-02T08:00:00Z", // S2  same day, week, month
    "2026-03-01T23:00:00Z", // S3  Sun, 2026-W09, March
    "2026-02-28T12:00:00Z", // S4  Sat, 2026-W09, February
    "2026-02-27T12:00:00Z", // S5
    "2026-01-15T12:00:00Z", // S6  2026-W03
    "2025-12-31T12:00:00Z", // S7  Wed: ISO week 2026-W01, year 2025
    "2025-06-01T12:00:00Z", // S8
    "2024-07-01T12:00:00Z", // S9
    "2023-01-01T12:00:00Z", // S10 Sun: ISO week 2022-W52
    "2022-12-31T12:00:00Z", // S11
];

fn t(i: usize) -> String {
    TIMES[i - 1].replace('Z', "+00:00")
}

#[test]
fn gfs_policy_keeps_what_restic_would() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    snapshots_at(&e, &src, &TIMES);
    // Dry run: lists every snapshot with the rule that keeps it, removes nothing.
    let v = e.json(&[
        "forget",
        "--keep-daily",
        "3",
        "--keep-weekly",
        "2",
        "--keep-monthly",
        "2",
        "--keep-yearly",
        "3",
        "--dry-run",
    ]);
    let reasons: Vec<(String, Vec<String>)> = v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["time"].as_str().unwrap().to_string(),
                d["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect(),
            )
        })
        .collect();
    let of = |i: usize| reasons.iter().find(|(time, _)| *time == t(i)).unwrap().1.clone();
    assert_eq!(of(1), vec!["daily #1", "weekly #1", "monthly #1", "yearly #1"]);
    assert_eq!(of(3), vec!["daily #2", "weekly #2"]);
    assert_eq!(of(4), vec!["daily #3", "monthly #2"]);
    assert_eq!(of(7), vec!["yearly #2"]);
    assert_eq!(of(9), vec!["yearly #3"]);
    for removed in [2, 5, 6, 8, 10, 11] {
        assert!(of(removed).is_empty(), "S{removed} should be removed: {:?}", of(removed));
    }
    assert_eq!(remaining(&e, "UTC").len(), 11, "dry run removed something");
    // Weekly across the ISO year boundary: S7 (2025-12-31) is week 2026-W01, not 2025's.
    let v = e.json(&["forget", "--keep-weekly", "5", "--dry-run"]);
    let kept: BTreeSet<String> = v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| !d["reasons"].as_array().unwrap().is_empty())
        .map(|d| d["time"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kept, [1, 3, 6, 7, 8].iter().map(|i| t(*i)).collect());
    // keep-within is measured back from the newest snapshot.
    let v = e.json(&["forget", "--keep-within", "1m", "--dry-run"]);
    let kept =
        v["decisions"].as_array().unwrap().iter().filter(|d| !d["reasons"].as_array().unwrap().is_empty()).count();
    assert_eq!(kept, 5, "S1..S5 are within a month of S1");
    // For real: the policy can be re-applied and changed at any time.
    e.ok(&["forget", "--keep-daily", "3", "--keep-weekly", "2", "--keep-monthly", "2", "--keep-yearly", "3"]);
    assert_eq!(remaining(&e, "UTC"), [1, 3, 4, 7, 9].iter().map(|i| t(*i)).collect());
    e.ok(&["forget", "--keep-last", "2"]);
    assert_eq!(remaining(&e, "UTC"), [1, 3].iter().map(|i| t(*i)).collect());
}

#[test]
fn days_are_local_days() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    // 02:00 UTC on 2 March is 21:00 on 1 March in New York.
    snapshots_at(&e, &src, &["2026-03-02T02:00:00Z", "2026-03-01T12:00:00Z"]);
    let run = |tz: &str| {
        let o = e.cmd(&["--json", "forget", "--keep-daily", "2", "--dry-run"]).env("TZ", tz).output().unwrap();
        let v = last_json(&String::from_utf8_lossy(&o.stdout));
        v["decisions"].as_array().unwrap().iter().filter(|d| !d["reasons"].as_array().unwrap().is_empty()).count()
    };
    assert_eq!(run("UTC"), 2);
    assert_eq!(run("America/New_York"), 1);
}

#[test]
fn protection_and_destruction_deadlines() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    snapshots_at(
        &e,
        &src,
        &["2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z", "2022-01-01T00:00:00Z", "2023-01-01T00:00:00Z"],
    );
    let id_at = |time: &str| -> String {
        let v = e.json(&["snapshots"]);
        v.as_array().unwrap().iter().find(|s| s["time"] == time).unwrap()["id"].as_str().unwrap().to_string()
    };
    e.ok(&["protect", &id_at("2020-01-01T00:00:00+00:00")[..8], "--until", "forever"]);
    e.ok(&["protect", &id_at("2021-01-01T00:00:00+00:00")[..8], "--until", "2999-01-01"]);
    e.ok(&["protect", &id_at("2022-01-01T00:00:00+00:00")[..8], "--destroy-after", "2024-06-01"]);
    e.ok(&["protect", &id_at("2023-01-01T00:00:00+00:00")[..8], "--destroy-after", "2999-01-01"]);
    let listing = e.ok(&["snapshots"]);
    assert!(listing.contains("protected until forever") && listing.contains("destroy after 2024-06-01"), "{listing}");
    // Naming a protected snapshot is refused, with the date.
    let o = e.run(&["forget", &id_at("2021-01-01T00:00:00+00:00")[..8]]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("protected until 2999-01-01"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // No policy removes a protected snapshot.
    let v = e.json(&["forget", "--keep-last", "1"]);
    let removed = v["removed"].as_array().unwrap().len();
    assert_eq!(removed, 1, "only the unprotected 2022 snapshot goes: {v}");
    let left = remaining(&e, "UTC");
    assert!(left.contains("2020-01-01T00:00:00+00:00") && left.contains("2021-01-01T00:00:00+00:00"));
    // Deadlines: the due one is destroyed, the future one reported as not yet due.
    e.ok(&["protect", &id_at("2020-01-01T00:00:00+00:00")[..8], "--destroy-after", "2025-01-01"]);
    let v = e.json(&["forget", "--enforce-destroy"]);
    assert_eq!(v["removed"].as_array().unwrap().len(), 0, "a protected snapshot is never destroyed: {v}");
    assert_eq!(v["overdue"].as_array().unwrap().len(), 1, "and it is reported overdue: {v}");
    assert!(remaining(&e, "UTC").contains("2023-01-01T00:00:00+00:00"));
}

#[test]
fn diff_between_snapshots_and_against_disk_and_find() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("a"), "aaaa").unwrap();
    std::fs::write(src.join("b"), "bbbb").unwrap();
    std::fs::write(src.join("d/c"), "cccc").unwrap();
    let s = src.to_str().unwrap();
    let s1 = e.backup(&[s]);
    std::fs::write(src.join("a"), "AAAAA").unwrap();
    sh(&format!("chmod 600 '{s}/b'"));
    std::fs::remove_file(src.join("d/c")).unwrap();
    std::fs::write(src.join("d/new"), "new").unwrap();
    let s2 = e.backup(&[s]);
    let v = e.json(&["diff", &s1[..8], &s2[..8]]);
    let ch: Vec<(String, String, Vec<String>)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["op"].as_str().unwrap().into(),
                c["path"].as_str().unwrap().into(),
                c["what"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_string()).collect(),
            )
        })
        .collect();
    let find = |p: &str| ch.iter().find(|c| c.1 == format!("{s}/{p}")).cloned();
    assert_eq!(find("d/new").unwrap().0, "+");
    assert_eq!(find("d/c").unwrap().0, "-");
    let a = find("a").unwrap();
    assert_eq!(a.0, "M");
    assert!(a.2.contains(&"content".to_string()) && a.2.contains(&"size".to_string()), "{a:?}");
    assert_eq!(find("b").unwrap().2, vec!["mode".to_string()]);
    // Against disk: a replaced file with its size and mtime put back is found only by --content.
    sh(&format!("touch -r '{s}/a' /tmp/arca-ref-$$; printf BBBBB > '{s}/a'; touch -r /tmp/arca-ref-$$ '{s}/a'; rm /tmp/arca-ref-$$"));
    let meta = e.json(&["diff", &s2[..8], s]);
    assert!(meta.as_array().unwrap().iter().all(|c| !c["path"].as_str().unwrap().ends_with("/a")), "{meta}");
    let deep = e.json(&["diff", &s2[..8], s, "--content"]);
    let a = deep
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"].as_str().unwrap().ends_with("/a"))
        .expect("content change found");
    assert_eq!(a["what"][0], "content");
    // find: which snapshots hold a name or a path
    let hits = e.json(&["find", "c"]);
    let snaps: Vec<&str> = hits.as_array().unwrap().iter().map(|h| h["snapshot"].as_str().unwrap()).collect();
    assert_eq!(snaps, vec![s1.as_str()]);
    let hits = e.json(&["find", &format!("{s}/d/*")]);
    assert_eq!(hits.as_array().unwrap().len(), 2, "d/c in the first, d/new in the second: {hits}");
    assert_eq!(e.json(&["find", "new", "--newest", "1"]).as_array().unwrap().len(), 1);
}
