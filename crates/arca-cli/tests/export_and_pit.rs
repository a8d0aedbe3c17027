//! Export as tar/zip read back by GNU tar and unzip-free checks, point-in-time restores,
//! restores into non-empty targets.

mod common;
use common::*;

#[test]
fn tar_export_extracts_exactly_with_gnu_tar() {
    let e = Env::init();
    let src = e.path("src");
    build_tree(&src);
    let id = e.backup(&[src.to_str().unwrap()]);
    let spec = format!("{}:{}", &id[..8], src.display());
    // To a file, verified against the snapshot.
    let tarfile = e.path("out.tar");
    let v = e.json(&["export", &spec, "-o", tarfile.to_str().unwrap(), "--verify"]);
    assert_eq!(v["verified"], true);
    let skipped = v["report"]["skipped"].as_array().unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    let dst = e.path("dst");
    std::fs::create_dir_all(&dst).unwrap();
    sh(&format!("tar --xattrs --acls --xattrs-include='*' -xpf '{}' -C '{}'", tarfile.display(), dst.display()));
    assert_eq!(rsync_diff(&src, &dst), "", "GNU tar's extraction differs from the source");
    let used = |p: &std::path::Path| sh(&format!("stat -c %b '{}'", p.display())).trim().parse::<u64>().unwrap() * 512;
    assert!(used(&dst.join("sparse")) <= used(&src.join("sparse")) + (1 << 20), "the sparse file must stay sparse");
    // To a pipe: the same bytes.
    let piped = e.cmd(&["export", &spec, "--format", "pax"]).output().unwrap();
    assert!(piped.status.success());
    assert_eq!(piped.stdout, std::fs::read(&tarfile).unwrap(), "export is deterministic and streams to a pipe");
    // zip: files, directories, symlinks
    let zipfile = e.path("out.zip");
    let v = e.json(&["export", &spec, "--format", "zip", "-o", zipfile.to_str().unwrap(), "--verify"]);
    assert_eq!(v["verified"], true);
    let listing = sh(&format!("python3 -c \"import zipfile,sys; z=zipfile.ZipFile('{}'); print(z.read('b_min').hex()[:20]); print(len(z.namelist()))\"", zipfile.display()));
    let want: String = std::fs::read(src.join("b_min")).unwrap()[..10].iter().map(|b| format!("{b:02x}")).collect();
    assert!(listing.starts_with(&want), "{listing}");
    assert!(!e.run(&["export", &spec, "--format", "zip"]).status.success(), "zip to a pipe is refused with a message");
}

#[test]
fn point_in_time_and_non_empty_targets() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("a"), "version one").unwrap();
    std::fs::write(src.join("etc/conf"), "conf one").unwrap();
    let s = src.to_str().unwrap();
    e.backup(&[s, "--time", "2026-11-01T10:00:00Z"]);
    std::fs::write(src.join("a"), "version two").unwrap();
    std::fs::write(src.join("etc/conf"), "conf two").unwrap();
    e.backup(&[s, "--time", "2026-11-02T10:00:00Z"]);
    let d = e.path("d");
    let ds = d.to_str().unwrap();
    e.ok(&["restore", "--at", "2026-11-01 12:00", &format!(":{s}"), "--target", ds]);
    assert_eq!(std::fs::read_to_string(d.join("a")).unwrap(), "version one");
    // another path from another time into the same target
    e.ok(&["restore", "--at", "2026-11-02 12:00", &format!(":{s}/etc"), "--target", d.join("etc").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(d.join("etc/conf")).unwrap(), "conf two");
    assert_eq!(std::fs::read_to_string(d.join("a")).unwrap(), "version one");
    let o = e.run(&["restore", "--at", "2020-01-01", "--target", ds]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("at or before"));

    // if-changed (default): matching files are kept, changed ones rewritten, extras stay
    let t = e.path("t");
    let ts = t.to_str().unwrap();
    let spec = format!("latest:{s}");
    e.ok(&["restore", &spec, "--target", ts]);
    std::fs::write(t.join("a"), "version TWO").unwrap(); // same size, other bytes
    std::fs::write(t.join("extra"), "not in the snapshot").unwrap();
    let v = e.json(&["restore", &spec, "--target", ts]);
    assert_eq!(std::fs::read_to_string(t.join("a")).unwrap(), "version two");
    assert_eq!(v["report"]["unchanged"], 1, "etc/conf already matched: {v}");
    assert!(t.join("extra").exists());
    // never: nothing existing is touched
    std::fs::write(t.join("a"), "local edit").unwrap();
    let v = e.json(&["restore", &spec, "--target", ts, "--overwrite", "never"]);
    assert_eq!(std::fs::read_to_string(t.join("a")).unwrap(), "local edit");
    assert!(v["report"]["kept"].as_u64().unwrap() >= 2);
    // always + delete: exactly the snapshot
    let v = e.json(&["restore", &spec, "--target", ts, "--overwrite", "always", "--delete"]);
    assert_eq!(std::fs::read_to_string(t.join("a")).unwrap(), "version two");
    assert!(!t.join("extra").exists());
    assert_eq!(v["report"]["deleted"], 1);
    assert_eq!(rsync_diff(&src, &t), "");
}

#[test]
fn metadata_the_target_cannot_hold_is_warned_once_per_kind() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for f in ["one", "two", "three"] {
        std::fs::write(src.join(f), f).unwrap();
        sh(&format!("setfattr -n security.arca_test -v x '{}/{f}'", src.display()));
    }
    e.backup(&[src.to_str().unwrap()]);
    // An unprivileged user cannot set security.* xattrs.
    sh(&format!(
        "chmod -R a+rwX '{}' '{}'; chmod a+rwx '{}'",
        e.repo.display(),
        e.dir.path().display(),
        e.dir.path().display()
    ));
    std::fs::create_dir_all(e.path("home")).unwrap();
    sh(&format!("chmod -R a+rwX '{}'", e.path("home").display()));
    let target = e.path("as-nobody");
    let run = |extra: &[&str]| {
        let mut args = vec!["restore", "latest", "--target", target.to_str().unwrap()];
        args.extend_from_slice(extra);
        let mut c = e.cmd(&args);
        use std::os::unix::process::CommandExt;
        c.uid(65534).gid(65534);
        c.output().unwrap()
    };
    let o = run(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("could not restore extended attributes").count(), 1, "{err}");
    let nested = target.join(src.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read_to_string(nested.join("two")).unwrap(), "two", "the data is restored");
    let o = run(&["--no-warn-metadata", "--overwrite", "always"]);
    assert!(o.status.success());
    assert!(!String::from_utf8_lossy(&o.stderr).contains("could not restore"));
}

#[test]
fn a_tape_restores_with_its_own_dd_and_tar_commands() {
    let e = Env::init();
    let src = e.path("src");
    build_tree(&src);
    let id = e.backup(&[src.to_str().unwrap()]);
    let tape = e.path("tape");
    let v = e.json(&["export", &format!("{id}:{}", src.display()), "--tape", "-o", tape.to_str().unwrap(), "--verify"]);
    assert_eq!(v["verified"], true);
    let bytes = std::fs::read(&tape).unwrap();
    assert_eq!(bytes.len() % 65536, 0, "whole records only");
    // The header record is plain text that names the snapshot and says how to restore.
    let header = String::from_utf8(bytes[..65536].to_vec()).expect("a text header");
    assert!(header.starts_with("ARCA TAPE 1\n") && header.contains(&id), "{header}");
    let restore = header.lines().find(|l| l.trim_start().starts_with("dd if=")).expect("a dd command").trim();
    // Run exactly that, from the file instead of the drive, in an empty directory.
    let dst = e.path("dst");
    std::fs::create_dir_all(&dst).unwrap();
    let cmd = restore.replace("/dev/nst0", tape.to_str().unwrap());
    sh(&format!("cd '{}' && {cmd}", dst.display()));
    assert_eq!(rsync_diff(&src, &dst), "", "dd and tar did not restore the snapshot exactly");
    // A tape of another shape is refused.
    let o = e.run(&["export", &id, "--tape", "--format", "zip", "-o", e.path("z").to_str().unwrap()]);
    assert!(!o.status.success());
}
