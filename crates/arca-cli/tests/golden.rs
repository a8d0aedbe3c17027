//! Golden repositories (issue 13): small repositories of today's format, committed under
//! tests/fixtures/, that every later change must still open, check with --read-data and
//! restore exactly — and a damaged copy whose damage must be found and named. The source
//! trees are regenerated here, deterministically, at the path they were backed up from.
//! `ARCA_WRITE_FIXTURES=1` writes the fixtures anew (only when the format changes on purpose).

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// Where the fixtures' sources were (and are regenerated): snapshot paths are absolute.
const SOURCE: &str = "/var/tmp/arca-golden-source";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The source tree of generation `g` (1 or 2).
fn make_source(g: u32) {
    let s = Path::new(SOURCE);
    let _ = std::fs::remove_dir_all(s);
    std::fs::create_dir_all(s.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(s.join("empty")).unwrap();
    std::fs::write(s.join("a.txt"), "hello\n".repeat(if g == 1 { 100 } else { 120 })).unwrap();
    std::fs::write(s.join("big.bin"), random_bytes(300_000, 5)).unwrap();
    std::fs::write(s.join("sub/deeper/c"), b"deep").unwrap();
    if g == 2 {
        std::fs::write(s.join("sub/new.txt"), b"added in generation 2").unwrap();
    }
    sh(&format!(
        r#"
cd '{SOURCE}'
ln -s a.txt link; ln -s nowhere dangling
echo linked > h1; ln h1 sub/h2
truncate -s 2M sparse; printf 'middle' | dd of=sparse bs=1 seek=1048576 conv=notrunc status=none
setfattr -n user.k -v v a.txt
chmod 0751 big.bin; chmod 4755 sub/deeper/c
printf 'x' > $'bad\xffname'
touch -h -d '2020-01-02 03:04:05.123456789' a.txt big.bin link dangling h1 sparse sub/deeper/c $'bad\xffname'
if [ -e sub/new.txt ]; then touch -d '2020-01-03 00:00:00' sub/new.txt; fi
find . -type d -exec touch -d '2021-05-06 07:08:09.987654321' {{}} +
"#
    ));
}

fn write_fixtures() {
    let repo = fixtures().join("golden-v1");
    let _ = std::fs::remove_dir_all(&repo);
    let e = Env::new();
    let run = |args: &[&str]| {
        let o = e.cmd(args).env("ARCA_REPOSITORY", &repo).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    run(&["init", "--pack-size-mib", "1"]);
    make_source(1);
    run(&["backup", SOURCE, "--tag", "g1", "--host", "golden", "--time", "2026-01-01T00:00:00+00:00"]);
    make_source(2);
    run(&["backup", SOURCE, "--tag", "g2", "--host", "golden", "--time", "2026-01-02T00:00:00+00:00"]);
    // The damaged copy: one byte of the largest pack flipped.
    let damaged = fixtures().join("golden-v1-damaged");
    let _ = std::fs::remove_dir_all(&damaged);
    sh(&format!("cp -a '{}' '{}'", repo.display(), damaged.display()));
    let mut packs: Vec<PathBuf> = walk(&damaged.join("data"));
    packs.sort_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0));
    let victim = packs.last().unwrap();
    let mut b = std::fs::read(victim).unwrap();
    let mid = b.len() / 3;
    b[mid] ^= 0x40;
    std::fs::write(victim, b).unwrap();
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(d).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// A copy of fixture `name` to work on (checking writes a cache and locks; the committed
/// files stay untouched).
fn copy(e: &Env, name: &str) {
    sh(&format!("cp -a '{}' '{}'", fixtures().join(name).display(), e.repo.display()));
}

#[test]
fn golden_repositories_open_check_and_restore_exactly() {
    if std::env::var_os("ARCA_WRITE_FIXTURES").is_some() {
        write_fixtures();
    }
    let e = Env::new();
    copy(&e, "golden-v1");
    let v = e.json(&["check", "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
    let snaps = e.json(&["snapshots"]);
    assert_eq!(snaps.as_array().unwrap().len(), 2, "{snaps}");
    for (g, tag) in [(1, "g1"), (2, "g2")] {
        make_source(g);
        let target = e.path(&format!("restored-{g}"));
        e.ok(&["restore", &format!("latest:{SOURCE}"), "--tag", tag, "--target", target.to_str().unwrap(), "--verify"]);
        // `SNAPSHOT:PATH` restores the contents of PATH into the target.
        assert_eq!(rsync_diff(Path::new(SOURCE), &target), "", "generation {g} restores exactly");
    }
    // The damaged copy: check names the pack and what it hurts; the rest restores.
    let d = Env::new();
    copy(&d, "golden-v1-damaged");
    let o = d.run(&["check", "--read-data"]);
    assert!(!o.status.success());
    let report = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(report.contains("pack ") && report.contains("damaged"), "{report}");
    make_source(2);
    let target = d.path("restored");
    let o = d.run(&["restore", &format!("latest:{SOURCE}"), "--target", target.to_str().unwrap()]);
    assert!(!o.status.success(), "a restore with lost data says so");
    assert_eq!(std::fs::read(target.join("sub/deeper/c")).unwrap(), b"deep", "what is intact restores");
    let _ = std::fs::remove_dir_all(SOURCE);
}
