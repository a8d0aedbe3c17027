//! A repository on a full filesystem: the backup fails with a clear message, leaves no
//! temporary files, the repository still checks, and the next backup succeeds once there is
//! room again.

mod common;
use common::*;

struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_fails_cleanly_and_recovers() {
    let mut e = Env::new();
    let small = e.path("small");
    std::fs::create_dir_all(&small).unwrap();
    sh(&format!("mount -t tmpfs -o size=24m tmpfs '{}'", small.display()));
    let _guard = Tmpfs(small.clone());
    e.repo = small.join("repo");
    e.ok(&["init"]);
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("keep"), random_bytes(2 << 20, 1)).unwrap();
    let first = e.backup(&[src.to_str().unwrap()]);
    for pass in 0..10u64 {
        std::fs::write(src.join("huge"), random_bytes(40 << 20, 100 + pass)).unwrap();
        let o = e.run(&["backup", src.to_str().unwrap()]);
        assert!(!o.status.success(), "pass {pass}: the backup cannot fit");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("no space left on"), "pass {pass}: {err}");
        let leftovers: Vec<_> =
            e.repo_files().into_iter().filter(|(p, _)| p.to_string_lossy().contains(".tmp-")).map(|(p, _)| p).collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        e.ok(&["check"]);
        std::fs::remove_file(src.join("huge")).unwrap();
        std::fs::write(src.join(format!("small{pass}")), random_bytes(100_000, pass)).unwrap();
        e.backup(&[src.to_str().unwrap()]);
        // The failed backup's packs (no index names them) take room: prune reclaims it.
        let r = e.json(&["prune"]);
        assert_eq!(r["prune"]["swept"]["marks_waiting"], 0, "pass {pass}: {r}");
        let v = e.json(&["check"]);
        assert!(!v["report"]["notes"].to_string().contains("not in any index"), "pass {pass}: {v}");
    }
    e.ok(&["check", "--read-data"]);
    let dst = e.path("dst");
    e.ok(&[
        "restore",
        &format!("{}:{}", &first[..8], src.display()),
        "--target",
        dst.to_str().unwrap(),
        "--include",
        "*/keep",
    ]);
    assert_eq!(std::fs::read(dst.join("keep")).unwrap(), random_bytes(2 << 20, 1));
}
