//! Exact restore of a tree with every kind of entry and metadata (needs root, rsync, setfacl,
//! setfattr: `scripts/test` installs them).

mod common;
use common::*;

#[test]
fn backup_and_restore_are_exact() {
    let e = Env::init();
    let src = e.path("src");
    build_tree(&src);
    let id = e.backup(&[src.to_str().unwrap()]);
    let dst = e.path("dst");
    let spec = format!("{}:{}", &id[..8], src.display());
    let out = e.json(&["restore", &spec, "--target", dst.to_str().unwrap(), "--verify"]);
    assert!(out["report"]["errors"].as_array().unwrap().is_empty(), "{out}");
    let diff = rsync_diff(&src, &dst);
    assert_eq!(diff, "", "restored tree differs from the source");
    // The sparse file stays sparse: at most 1 MiB more disk than the source.
    let used = |p: &std::path::Path| sh(&format!("stat -c %b '{}'", p.display())).trim().parse::<u64>().unwrap() * 512;
    let (a, b) = (used(&src.join("sparse")), used(&dst.join("sparse")));
    assert!(b <= a + (1 << 20), "sparse file uses {b} bytes restored, {a} in the source");
    // The whole snapshot (from the root) restores too, under the full path.
    let all = e.path("all");
    e.ok(&["restore", &id[..8], "--target", all.to_str().unwrap(), "--include", "*/h2/*"]);
    assert!(all.join(src.strip_prefix("/").unwrap()).join("h2/b").is_file());
    assert!(
        !all.join(src.strip_prefix("/").unwrap()).join("random64").exists(),
        "--include restores only what matches"
    );
    // dump gives the same bytes as the source, holes as zeros.
    let dumped = e.cmd(&["dump", "latest", &format!("{}/b_max_plus", src.display())]).output().unwrap();
    assert_eq!(dumped.stdout, std::fs::read(src.join("b_max_plus")).unwrap());
}

#[test]
fn encrypted_everywhere() {
    let e = Env::new();
    let marker = format!("MARKER{:016x}", rand_u64());
    e.ok(&["init"]);
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("contents"), format!("the {marker} is inside, and again {marker}").repeat(100)).unwrap();
    std::fs::write(src.join(format!("name-{marker}")), b"x").unwrap();
    sh(&format!("setfattr -n user.secret -v '{marker}' '{}/contents'", src.display()));
    std::os::unix::fs::symlink(format!("/target/{marker}"), src.join("link")).unwrap();
    e.backup(&[src.to_str().unwrap(), "--tag", &marker, "--host", &marker]);
    e.backup(&["--stdin", "--stdin-filename", &marker, "--tag", "x"]);
    let needle = marker.as_bytes();
    for (path, bytes) in e.repo_files() {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle), "marker found in {}", path.display());
    }
    // and the data is really there
    assert!(e.ok(&["ls", "latest", "--host", &marker]).contains(&marker));
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b)).unwrap();
    u64::from_le_bytes(b)
}
