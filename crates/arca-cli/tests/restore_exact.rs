//! Exact restore of a tree with every kind of entry and metadata (needs root, rsync, setfacl,
//! setfattr: `scripts/test` installs them).

mod common;
use common::*;

/// Build the hostile tree of the core issue under `src`.
fn build_tree(src: &std::path::Path) {
    let s = src.display();
    std::fs::create_dir_all(src).unwrap();
    std::fs::write(src.join("random64"), random_bytes(64 << 20, 1)).unwrap();
    let text: Vec<u8> = (0..(64 << 20) / 64)
        .flat_map(|i: u32| format!("line {i:>10} of a very compressible text file....\n").into_bytes())
        .take(64 << 20)
        .collect();
    std::fs::write(src.join("text64"), text).unwrap();
    for (name, len) in [
        ("b_min_minus", 512 * 1024 - 1),
        ("b_min", 512 * 1024),
        ("b_min_plus", 512 * 1024 + 1),
        ("b_max", 8 << 20),
        ("b_max_plus", (8 << 20) + 1),
    ] {
        std::fs::write(src.join(name), random_bytes(len, len as u64)).unwrap();
    }
    sh(&format!(
        r#"
cd '{s}'
: > empty1; mkdir -p emptydir/inner; : > emptydir/empty2
truncate -s 1G sparse; printf 'region one' | dd of=sparse bs=1 seek=4096 conv=notrunc status=none
printf 'region two' | dd of=sparse bs=1 seek=700000000 conv=notrunc status=none
mkdir -p h1 h2/deeper; echo linked > h1/a; ln h1/a h2/b; ln h1/a h2/deeper/c
mkdir sym; ln -s ../h1/a sym/relative; ln -s /etc/hostname sym/absolute; ln -s nowhere/at/all sym/dangling; ln -s ../h1 sym/todir
mkfifo fifo; mknod chardev c 1 3; mknod blockdev b 7 200
printf x > $'bad\xff\xfename'; printf y > $'new\nline'; printf z > 'with spaces  here'
printf w > "$(head -c 255 < /dev/zero | tr '\0' 'L')"
d=deep; for i in $(seq 1 100); do d="$d/l$i"; done; mkdir -p "$d"; echo bottom > "$d/file"
echo xa > xattrs; setfattr -n user.color -v blue xattrs; setfattr -n user.bin -v 0x00ff10 xattrs; setfattr -n security.arca_test -v sec xattrs
echo acl > aclfile; setfacl -m u:1234:rwx,g:4321:r aclfile; mkdir acldir; setfacl -m u:1234:rx acldir; setfacl -d -m g:555:rx acldir
echo su > setuid; chmod 4755 setuid; echo sg > setgid; chmod 2750 setgid; mkdir sticky; chmod 1777 sticky; echo none > mode0; chmod 0000 mode0
echo nobody > orphan; chown 54321:54322 orphan; mkdir orphandir; chown 54323:54324 orphandir
touch -h -d '2020-01-02 03:04:05.123456789' sym/relative random64 h1/a
find . -type d -exec touch -d '2021-05-06 07:08:09.987654321' {{}} +
"#
    ));
}

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
