//! The FUSE view: layout, exact attributes and xattrs, chroot into a snapshot, an overlay on
//! top, clean unmounts (needs FUSE, busybox-static and fuse3: `scripts/test` installs them).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A running `arca mount`.
struct Mounted {
    child: Child,
    at: PathBuf,
}

fn mount(e: &Env, at: &Path, extra: &[&str]) -> Mounted {
    std::fs::create_dir_all(at).unwrap();
    let mut args = vec!["mount", at.to_str().unwrap()];
    args.extend_from_slice(extra);
    let child = e.cmd(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while !is_mounted(at) {
        assert!(start.elapsed() < Duration::from_secs(20), "the mount did not appear");
        std::thread::sleep(Duration::from_millis(50));
    }
    Mounted { child, at: at.to_path_buf() }
}

fn is_mounted(at: &Path) -> bool {
    std::process::Command::new("mountpoint").arg("-q").arg(at).status().map(|s| s.success()).unwrap_or(false)
}

impl Mounted {
    /// Wait for the arca process to end by itself (after an unmount or a signal).
    fn wait(mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "arca mount did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if is_mounted(&self.at) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.at).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn build_rootfs(root: &Path) {
    sh(&format!(
        r#"
set -e
R='{r}'
mkdir -p "$R/bin" "$R/etc" "$R/dev" "$R/data"
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"; done
echo snapshot-host > "$R/etc/hostname"
echo 'root:x:0:0:root:/root:/bin/sh' > "$R/etc/passwd"
mknod "$R/dev/null" c 1 3; chmod 666 "$R/dev/null"
head -c 20000000 /dev/urandom > "$R/data/big"
echo linked > "$R/data/h1"; ln "$R/data/h1" "$R/data/h2"; mkdir "$R/data/sub"; ln "$R/data/h1" "$R/data/sub/h3"
setfattr -n user.note -v hello "$R/data/h1"
setfacl -m u:1234:rwx "$R/etc/passwd"
chmod 4755 "$R/bin/busybox"
"#,
        r = root.display()
    ));
}

#[test]
fn mounted_snapshots_are_exact_chrootable_and_unmount_cleanly() {
    if !fuse_here() {
        return;
    }
    let e = Env::init();
    let root = e.path("rootfs");
    build_rootfs(&root);
    let id = e.backup(&[root.to_str().unwrap(), "--tag", "base", "--host", "web01"]);
    let mnt = e.path("mnt");
    let m = mount(&e, &mnt, &[]);
    let snap = mnt.join("snapshots/latest").join(root.strip_prefix("/").unwrap());
    // Layout
    for p in ["snapshots", "hosts/web01/latest", "tags/base/latest"] {
        assert!(mnt.join(p).exists(), "{p} missing");
    }
    let listed: Vec<String> = std::fs::read_dir(mnt.join("snapshots"))
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(listed.iter().any(|n| n.ends_with(&id[..8])), "{listed:?}");
    // Attributes, contents, links, devices, xattrs and ACLs as stored
    let st = |p: &Path| sh(&format!("stat -c '%f %u %g %s %Y.%y %h %t:%T' '{}'", p.display()));
    for rel in ["bin/busybox", "etc/passwd", "data/big", "data/h1", "dev/null", "bin/sh"] {
        let (a, b) = (st(&root.join(rel)), st(&snap.join(rel)));
        assert_eq!(a, b, "stat of {rel}");
    }
    assert_eq!(std::fs::read(snap.join("data/big")).unwrap(), std::fs::read(root.join("data/big")).unwrap());
    assert_eq!(std::fs::read_link(snap.join("bin/ls")).unwrap(), Path::new("busybox"));
    let xa = sh(&format!("getfattr -n user.note --only-values '{}'", snap.join("data/h1").display()));
    assert_eq!(xa, "hello");
    assert_eq!(
        sh(&format!("getfacl -cn '{}'", snap.join("etc/passwd").display())),
        sh(&format!("getfacl -cn '{}'", root.join("etc/passwd").display()))
    );
    // Issue 17: every name of a hard-link group shows one inode and the link count, so
    // `rsync -H` from the mount keeps the files linked instead of duplicating them.
    let ino = |p: &str| sh(&format!("stat -c '%i %h' '{}'", snap.join(p).display()));
    assert_eq!(ino("data/h1"), ino("data/h2"));
    assert_eq!(ino("data/h1"), ino("data/sub/h3"));
    assert!(ino("data/h1").trim().ends_with(" 3"), "{}", ino("data/h1"));
    assert_ne!(ino("data/h1"), ino("data/big"));
    let copied = e.path("rsynced");
    sh(&format!("rsync -aH '{}/' '{}/'", snap.join("data").display(), copied.display()));
    assert_eq!(sh(&format!("stat -c %h '{}'", copied.join("h2").display())).trim(), "3", "rsync -H kept the links");
    // Read-only
    assert!(std::fs::write(snap.join("etc/new"), b"x").is_err());
    // chroot into the snapshot and run its busybox
    let out = sh(&format!(
        "chroot '{}' /bin/busybox sh -c 'cat /etc/hostname; ls /bin | wc -l; echo ok > /dev/null && echo null-works'",
        snap.display()
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "snapshot-host");
    assert!(lines[1].trim().parse::<u32>().unwrap() > 100, "applet links are there: {out}");
    assert_eq!(lines[2], "null-works");
    // A copy-on-write overlay on top of the read-only snapshot
    let (upper, work, merged) = (e.path("upper"), e.path("work"), e.path("merged"));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d).unwrap();
    }
    sh(&format!(
        "mount -t overlay overlay -o lowerdir='{}',upperdir='{}',workdir='{}' '{}'",
        snap.display(),
        upper.display(),
        work.display(),
        merged.display()
    ));
    let changed = std::fs::write(merged.join("etc/hostname"), b"changed-in-overlay\n");
    let read_back = std::fs::read_to_string(merged.join("etc/hostname"));
    let big_same = std::fs::read(merged.join("data/big")).ok() == std::fs::read(root.join("data/big")).ok();
    sh(&format!("umount '{}'", merged.display()));
    changed.unwrap();
    assert_eq!(read_back.unwrap(), "changed-in-overlay\n");
    assert!(big_same);
    assert_eq!(std::fs::read_to_string(upper.join("etc/hostname")).unwrap(), "changed-in-overlay\n");
    assert_eq!(
        std::fs::read_to_string(snap.join("etc/hostname")).unwrap(),
        "snapshot-host\n",
        "the snapshot is untouched"
    );
    // Unmount from outside: arca exits cleanly
    sh(&format!("fusermount3 -u '{}'", mnt.display()));
    assert!(m.wait().success());
    assert!(!is_mounted(&mnt));
    // A second mount works, and Ctrl-C (SIGINT) unmounts it
    let m2 = mount(&e, &mnt, &["--host", "web01"]);
    assert!(mnt.join("snapshots/latest").exists());
    nix_kill(m2.child.id(), 2);
    assert!(m2.wait().success());
    assert!(!is_mounted(&mnt));
}

fn nix_kill(pid: u32, sig: i32) {
    sh(&format!("kill -{sig} {pid}"));
}

/// FUSE and root (mount, chroot, overlayfs).
fn fuse_here() -> bool {
    have("FUSE (/dev/fuse, fuse3) and root", Path::new("/dev/fuse").exists() && is_root())
}
