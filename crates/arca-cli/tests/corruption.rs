//! Random damage to every kind of object — byte flips, truncations, deletions, history
//! statements and snapshots included — is detected by `check --read-data`, which names the
//! damaged object. ARCA_CORRUPTION_ROUNDS sets the
//! number of rounds (default 60; run 1000 on demand).

mod common;
use common::*;

#[test]
fn random_damage_is_always_detected_and_named() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    for i in 0..6u64 {
        std::fs::write(src.join(format!("d/f{i}")), random_bytes(300_000 + i as usize * 70_000, i)).unwrap();
    }
    e.backup(&[src.to_str().unwrap()]);
    std::fs::write(src.join("extra"), random_bytes(1_500_000, 99)).unwrap();
    e.backup(&[src.to_str().unwrap(), "--tag", "second"]);
    e.ok(&["check", "--read-data"]);
    let originals = e.repo_files();
    let rounds: usize = std::env::var("ARCA_CORRUPTION_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut next = |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let mut detected = 0;
    for round in 0..rounds {
        let (path, bytes) = &originals[next(originals.len())];
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let kind = next(3);
        let what = match kind {
            0 => {
                let mut b = bytes.clone();
                let at = next(b.len());
                b[at] ^= 1 << next(8);
                std::fs::write(path, &b).unwrap();
                format!("flip at {at}")
            }
            1 => {
                let keep = next(bytes.len());
                std::fs::write(path, &bytes[..keep]).unwrap();
                format!("truncate to {keep}")
            }
            _ => {
                // A deleted snapshot, too: the signed history names it (issue 14).
                std::fs::remove_file(path).unwrap();
                "delete".into()
            }
        };
        let o = e.run(&["check", "--read-data"]);
        let err = String::from_utf8_lossy(&o.stderr);
        // A deleted object cannot be named by its contents: deleted index objects show as
        // blobs no index knows, a deleted key slot as an empty keys/, the deleted default
        // class key (format version 2) as a keyring/ without it.
        let parent = path.parent().unwrap();
        let named = err.contains(&name)
            || (what == "delete" && parent.ends_with("index") && err.contains("repair index"))
            || (what == "delete" && parent.ends_with("keys") && err.contains("keys/"))
            || (what == "delete" && parent.ends_with("keyring") && err.contains("keyring/"));
        assert!(!o.status.success(), "round {round}: {what} of {} went unnoticed", path.display());
        assert!(named, "round {round}: {what} of {}: the message does not name it:\n{err}", path.display());
        detected += 1;
        std::fs::write(path, bytes).unwrap();
    }
    e.ok(&["check", "--read-data"]);
    println!("corruption: {detected}/{rounds} detected");
}

#[test]
fn a_fault_in_sealed_output_aborts_the_backup_and_stores_nothing() {
    for point in ["sealed-blob", "sealed-header"] {
        let e = Env::init();
        let src = e.path("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("a"), random_bytes(3 << 20, 1)).unwrap();
        let o = e.cmd(&["backup", src.to_str().unwrap()]).env("ARCA_FAULT", point).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{point}: the backup must fail");
        assert!(err.contains("failed verification right after sealing"), "{point}: {err}");
        let packs = e.repo_files().into_iter().filter(|(p, _)| p.to_string_lossy().contains("/data/")).count();
        assert_eq!(packs, 0, "{point}: no pack was stored");
        assert!(snapshot_ids(&e).is_empty());
        assert_eq!(e.json(&["check"])["ok"], true);
        // Without the fault the same backup works.
        e.backup(&[src.to_str().unwrap()]);
    }
}

#[test]
fn parity_repairs_a_damaged_region_byte_exact() {
    let e = Env::new();
    e.ok(&["init", "--parity", "10"]);
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), random_bytes(6 << 20, 3)).unwrap();
    std::fs::write(src.join("b"), random_bytes(2 << 20, 4)).unwrap();
    e.backup(&[src.to_str().unwrap()]);
    assert_eq!(e.json(&["cat", "config"])["parity_percent"], 10);
    let packs: Vec<_> = e.repo_files().into_iter().filter(|(p, _)| p.to_string_lossy().contains("/data/")).collect();
    let (path, bytes) = packs.iter().max_by_key(|(_, b)| b.len()).unwrap().clone();
    let id = path.file_name().unwrap().to_string_lossy().into_owned();
    let v = e.json(&["check"]);
    assert!(v["report"]["notes"].to_string().contains("of 2 packs have parity (10% configured)"), "{v}");
    // Overwrite 8% of the pack in the middle.
    let mut bad = bytes.clone();
    let (at, n) = (bad.len() / 3, bad.len() * 8 / 100);
    bad[at..at + n].iter_mut().for_each(|b| *b = !*b);
    std::fs::write(&path, &bad).unwrap();
    let o = e.run(&["--json", "check", "--read-data"]);
    assert!(!o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("has parity: `arca repair packs` may restore it"), "{out}");
    let r = e.json(&["repair", "packs"]);
    assert_eq!(r["report"]["repaired"][0], id.as_str(), "{r}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "restored byte-exact");
    assert_eq!(e.json(&["check", "--read-data"])["ok"], true);
    // A cut-off tail within the budget is repaired too; damage beyond it is refused.
    std::fs::write(&path, &bytes[..bytes.len() - bytes.len() / 20]).unwrap();
    e.json(&["repair", "packs"]);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let mut worse = bytes.clone();
    let third = worse.len() / 3;
    worse[..third].iter_mut().for_each(|b| *b = 0);
    std::fs::write(&path, &worse).unwrap();
    let o = e.run(&["repair", "packs"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("parity can restore"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read(&path).unwrap(), worse, "an unrepairable pack is left as it was");
    // Issue 17: a damaged parity object of an intact pack is found by check --read-data (it
    // would fail only when needed), and repair packs writes it anew from the pack.
    std::fs::write(&path, &bytes).unwrap();
    let parity = e.repo.join("parity").join(&id);
    let good = std::fs::read(&parity).unwrap();
    let mut rotten = good.clone();
    let mid = rotten.len() / 2;
    rotten[mid] ^= 0x01;
    std::fs::write(&parity, &rotten).unwrap();
    let o = e.run(&["check", "--read-data"]);
    assert!(!o.status.success());
    let t = String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
    assert!(t.contains(&format!("parity {id}")) && t.contains("repair packs"), "{t}");
    let r = e.json(&["repair", "packs"]);
    assert_eq!(r["report"]["parity_rebuilt"][0], id.as_str(), "{r}");
    assert_eq!(std::fs::read(&parity).unwrap(), good, "the same parity as before");
    std::fs::remove_file(&parity).unwrap();
    assert!(!e.run(&["check", "--read-data"]).status.success(), "a missing parity object is found too");
    e.json(&["repair", "packs"]);
    assert_eq!(e.json(&["check", "--read-data"])["ok"], true);
}
