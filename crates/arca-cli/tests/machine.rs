//! Whole-machine audits against a real package's files: coreutils as dpkg installed it here,
//! copied into a system root with a merged /usr, one binary tampered with, one dropped in.

mod common;

use common::{sh, Env};
use std::path::Path;

/// A system root holding coreutils' files, dpkg records and a merged /usr (`bin` -> usr/bin).
fn coreutils_root(root: &Path) {
    sh(&format!(
        "set -e; r='{r}'; mkdir -p \"$r/var/lib/dpkg/info\" \"$r/usr\"; ln -s usr/bin \"$r/bin\"
         cp -a /var/lib/dpkg/info/coreutils.md5sums /var/lib/dpkg/info/coreutils.list \"$r/var/lib/dpkg/info/\"
         cut -c35- /var/lib/dpkg/info/coreutils.md5sums | while read -r p; do
           real=$(readlink -f \"/$p\"); dest=\"$r/usr/${{real#/usr/}}\"
           mkdir -p \"$(dirname \"$dest\")\"; cp -a \"$real\" \"$dest\"
         done",
        r = root.display()
    ));
}

/// A repository and a coreutils system root beside it, if this machine has coreutils' records.
fn coreutils_machine() -> Option<(Env, std::path::PathBuf)> {
    if !common::have("coreutils' dpkg records", Path::new("/var/lib/dpkg/info/coreutils.md5sums").exists()) {
        return None;
    }
    let e = Env::init();
    let root = e.path("machine");
    coreutils_root(&root);
    Some((e, root))
}

#[test]
fn a_tampered_binary_is_found_live_and_in_a_snapshot_and_against_one() {
    let Some((e, root)) = coreutils_machine() else { return };
    let r = root.to_str().unwrap();
    // Clean as installed.
    let v = e.json(&["audit", "packages", "--live", "--root", r]);
    assert_eq!(v["report"]["modified"], serde_json::json!([]), "{v}");
    assert!(v["report"]["files"].as_u64().unwrap() > 50, "{v}");
    let clean = e.backup(&[r]);
    e.ok(&["audit", "against", &format!("{clean}:{r}")]);

    // An intruder replaces ls and drops a tool of their own.
    std::fs::write(root.join("usr/bin/ls"), b"#!/bin/sh\nexec /usr/bin/ls.real \"$@\"\n").unwrap();
    std::fs::write(root.join("usr/bin/backdoor"), b"#!/bin/sh\n").unwrap();
    sh(&format!("chmod 755 '{r}/usr/bin/backdoor'"));
    let tampered = e.backup(&[r]);
    for args in
        [vec!["audit", "packages", "--live", "--root", r], vec!["audit", "packages", &format!("{tampered}:{r}")]]
    {
        let mut a = vec!["--json"];
        a.extend(args.iter().copied());
        let o = e.run(&a);
        assert_eq!(o.status.code(), Some(4), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        let v = common::last_json(&String::from_utf8_lossy(&o.stdout));
        // dpkg lists bin/ls; on a merged /usr it is /usr/bin/ls.
        assert_eq!(
            v["report"]["modified"],
            serde_json::json!([{"path": "/usr/bin/ls", "package": "coreutils"}]),
            "{args:?}"
        );
        assert_eq!(v["report"]["unowned"], serde_json::json!(["/usr/bin/backdoor"]), "{args:?}");
    }
    // Against the clean snapshot, by content: no dpkg records needed or trusted.
    let o = e.run(&["--json", "audit", "against", &format!("{clean}:{r}")]);
    assert_eq!(o.status.code(), Some(4));
    let v = common::last_json(&String::from_utf8_lossy(&o.stdout));
    let d = v["report"]["differences"].as_object().unwrap();
    assert_eq!(d.get("/usr/bin/ls").and_then(|x| x.as_str()), Some("modified"), "{v}");
    assert_eq!(d.get("/usr/bin/backdoor").and_then(|x| x.as_str()), Some("added"), "{v}");
    assert_eq!(d.len(), 2, "{v}");
    // A root without a dpkg database is refused by name.
    let o = e.run(&["audit", "packages", "--live", "--root", e.path("home").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no dpkg database"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `blkid -p` of every partition of an image, and the parameters `tune2fs -l` and `xfs_db`
/// report, less what changes with time and use (counts of free blocks, times, mount counts).
fn filesystem_parameters(image: &Path) -> String {
    sh(&format!(
        r#"set -e; img='{img}'
        sfdisk --dump "$img" | grep -v '^device:' | sed "s|$img|IMG|"
        sfdisk --json "$img" | python3 -c 'import json,sys; [print(p["start"], p["size"]) for p in json.load(sys.stdin)["partitiontable"]["partitions"]]' |
        while read -r start size; do
          l=$(losetup --find --show --read-only --offset $((start * 512)) --sizelimit $((size * 512)) "$img")
          # UUID_SUB: btrfs's device UUID, which btrfs-progs cannot set (nothing else refers to it).
          blkid -p -o export "$l" | grep -v -E '^(DEVNAME|UUID_SUB)=' | sort
          case "$(blkid -p -s TYPE -o value "$l")" in
            ext4) tune2fs -l "$l" | grep -E '^(Filesystem (UUID|volume name|features|flags)|Block (size|count)|Inode (size|count)|Reserved block count|Directory Hash Seed|Default mount options):' ;;
            xfs) xfs_db -r -c info "$l" | sed 's|^meta-data=[^ ]*|meta-data=DEV|' ;;
            btrfs) btrfs inspect-internal dump-super "$l" | grep -E '^(fsid|label|nodesize|sectorsize|csum_type|incompat_flags|compat_ro_flags)' ;;
          esac
          losetup -d "$l"
        done"#,
        img = image.display()
    ))
}

#[test]
fn a_machine_on_disk_images_is_described_wiped_and_rebuilt_by_its_recovery_script() {
    if !common::have("root (loop devices)", common::is_root()) {
        return;
    }
    for tool in ["sfdisk", "mkfs.xfs", "mkfs.btrfs", "shellcheck", "dash", "busybox"] {
        if !common::have(tool, !sh(&format!("command -v {tool} || true")).trim().is_empty()) {
            return;
        }
    }
    let e = Env::init();
    let dir = e.path("m");
    std::fs::create_dir_all(&dir).unwrap();
    let (disk, root) = (dir.join("disk.img"), dir.join("root"));
    let d = disk.to_str().unwrap();
    let r = root.to_str().unwrap();
    // The machine: GPT with ext4 (label, 512-byte inodes, no huge_file), XFS, btrfs (without
    // no-holes, a default of mkfs.btrfs) with two subvolumes and swap; mounted as / , /srv and
    // /pool.
    sh(&format!(
        r#"set -e; truncate -s 1200M '{d}'
        printf 'label: gpt\nsize=200MiB, type=L, name=root\nsize=320MiB, type=L, name=data\nsize=300MiB, type=L, name=pool\nsize=64MiB, type=S, name=swap\n' | sfdisk -q '{d}'
        lo() {{ losetup --find --show --offset $(($1 * 512)) --sizelimit $(($2 * 512)) '{d}'; }}
        L1=$(lo 2048 409600); L2=$(lo 411648 655360); L3=$(lo 1067008 614400); L4=$(lo 1681408 131072)
        mkfs.ext4 -q -F -L root -I 512 -O ^huge_file "$L1"; tune2fs -c 20 "$L1" >/dev/null
        mkfs.xfs -q -f -L data "$L2"; mkfs.btrfs -q -f -L pool -O ^no-holes "$L3" >/dev/null 2>&1; mkswap -L swap "$L4" >/dev/null
        mkdir -p '{r}'; mount "$L1" '{r}'; mkdir '{r}/srv' '{r}/pool'; mount "$L2" '{r}/srv'; mount "$L3" '{r}/pool'
        btrfs subvolume create '{r}/pool/home' >/dev/null; btrfs subvolume create '{r}/pool/logs' >/dev/null
        mkdir -p '{r}/etc' '{r}/srv/www' '{r}/pool/home/ann'
        echo 'UUID=x / ext4 defaults 0 1' > '{r}/etc/fstab'
        head -c 3000000 /dev/urandom > '{r}/srv/www/big'; echo page > '{r}/srv/www/index.html'
        ln '{r}/srv/www/index.html' '{r}/srv/www/hard'; setfattr -n user.note -v kept '{r}/pool/home/ann' 2>/dev/null || true
        echo log > '{r}/pool/logs/one.log'; ln -s ../srv/www '{r}/etc/www'
        cp -a '{r}' '{dir}/reference'"#,
        dir = dir.display()
    ));
    let cleanup = |mounts: &str| {
        sh(&format!("for m in {mounts}; do umount \"$m\" 2>/dev/null || true; done; for l in $(losetup -j '{d}' | cut -d: -f1) $(losetup -j '{d}.new' | cut -d: -f1); do losetup -d \"$l\"; done"))
    };
    e.backup(&[r]);
    let sys = e.backup(&["--system", "--disk", d, "--system-root", r]);
    let text = e.ok(&["dump", &sys, "/system.txt"]);
    assert!(
        text.contains("ext4 label \"root\"") && text.contains("xfs label \"data\"") && text.contains("subvolume home"),
        "{text}"
    );
    cleanup(&format!("'{r}/srv' '{r}/pool' '{r}'"));
    // Unmounted, as the rebuilt one is measured (a mounted ext4 says needs_recovery).
    let before = filesystem_parameters(&disk);

    // Wiped: a blank disk of the same size in its place.
    let new = format!("{d}.new");
    sh(&format!("truncate -s 1200M '{new}'"));
    let script = dir.join("recover.sh");
    e.ok(&["recovery-script", &sys, "--map", &format!("{d}={new}"), "-o", script.to_str().unwrap()]);
    let s = script.to_str().unwrap();
    sh(&format!("shellcheck -s sh '{s}' && dash -n '{s}' && busybox sh -n '{s}'"));
    let dry = sh(&format!("dash '{s}' --dry-run"));
    assert!(dry.contains("+ mkfs.xfs") && dry.contains("+ arca restore"), "{dry}");
    assert!(sh(&format!("blkid -p '{new}' || true")).trim().is_empty(), "a dry run changes nothing");
    // Without --yes it asks, and a wrong answer does nothing.
    let o = std::process::Command::new("dash").arg(s).stdin(std::process::Stdio::null()).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stdout).contains("This destroys everything on"));

    let target = dir.join("target");
    let t = target.to_str().unwrap();
    // Run as a rescue system would: dash, arca on the PATH, the repository in the environment.
    let env = e.cmd(&[]);
    let bin = Path::new(env!("CARGO_BIN_EXE_arca")).parent().unwrap().display().to_string();
    let recover = |password: &str| {
        std::process::Command::new("dash")
            .arg(s)
            .arg("--yes")
            .envs(env.get_envs().filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))))
            .env("ARCA_PASSWORD", password)
            .env("ARCA_TARGET", t)
            .env("PATH", format!("{bin}:{}", std::env::var("PATH").unwrap_or_default()))
            .output()
            .unwrap()
    };
    // A run that fails late (a wrong password at the restore) names the step and takes down
    // what it mounted, so the next run starts over on the same disk.
    let o = recover("not the password");
    let said = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success() && said.contains("step \"restore the files\" failed"), "{said}");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    let loops = sh(&format!("losetup -j '{new}'"));
    if mounts.contains(t) || !loops.trim().is_empty() {
        cleanup(&format!("'{t}/srv' '{t}/pool' '{t}'"));
        panic!("a failed run left mounts or loop devices behind:\n{mounts}\n{loops}\n{said}");
    }
    let o = recover(common::PASSWORD);
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let diff = common::rsync_diff_both_ways(&dir.join("reference"), &target);
    cleanup(&format!("'{t}/srv' '{t}/pool' '{t}'"));
    assert!(o.status.success(), "the script failed:\n{said}");
    assert_eq!(diff, "", "the rebuilt machine's files differ");
    let after = filesystem_parameters(Path::new(&new));
    assert_eq!(after, before, "partition table, UUIDs, labels or filesystem parameters differ");
}

#[test]
fn a_luks_container_is_described_and_its_header_kept_when_asked() {
    if !common::have("root (loop devices)", common::is_root())
        || !common::have("cryptsetup", !sh("command -v cryptsetup || true").trim().is_empty())
    {
        return;
    }
    let e = Env::init();
    let img = e.path("luks.img");
    let i = img.to_str().unwrap();
    // luksFormat writes a header on a plain file (opening it would need device-mapper).
    sh(&format!(
        "truncate -s 32M '{i}' && printf secret | cryptsetup luksFormat --type luks2 -q --batch-mode --pbkdf pbkdf2 --pbkdf-force-iterations 1000 '{i}' -"
    ));
    let uuid = sh(&format!("blkid -p -s UUID -o value '{i}'")).trim().to_string();
    let root = e.path("root");
    std::fs::create_dir_all(&root).unwrap();
    let id = e.backup(&["--system", "--disk", i, "--system-root", root.to_str().unwrap(), "--luks-headers"]);
    let text = e.ok(&["dump", &id, "/system.txt"]);
    assert!(text.contains(&format!("whole disk: crypto_LUKS UUID {uuid}")), "{text}");
    let json: serde_json::Value = serde_json::from_str(&e.ok(&["dump", &id, "/system.json"])).unwrap();
    let report = json["disks"][0]["filesystem"]["report"].as_str().unwrap();
    assert!(report.contains("LUKS header information") && report.contains("Keyslots:"), "{report}");
    // The header, restorable with cryptsetup luksHeaderRestore, and not in the JSON.
    let header = e.run(&["dump", &id, &format!("/luks/{uuid}.header")]);
    assert!(header.status.success());
    let stored = e.path("header");
    std::fs::write(&stored, &header.stdout).unwrap();
    assert_eq!(sh(&format!("blkid -p -s UUID -o value '{}'", stored.display())).trim(), uuid);
    assert!(!serde_json::to_string(&json).unwrap().contains("\"header\""));
}

#[test]
fn an_intruder_who_rewrote_dpkgs_sums_too_is_found_against_the_archive() {
    let Some((e, root)) = coreutils_machine() else { return };
    let r = root.to_str().unwrap();
    sh(&format!("dpkg -s coreutils > '{r}/var/lib/dpkg/status'; printf '\\n' >> '{r}/var/lib/dpkg/status'"));
    // ls replaced, and its line in the MD5 list made to match: debsums would say nothing.
    std::fs::write(root.join("usr/bin/ls"), b"#!/bin/sh\n# a trojan\n").unwrap();
    sh(&format!(
        "sum=$(md5sum '{r}/usr/bin/ls' | cut -d' ' -f1); sed -i \"s|^[0-9a-f]*  \\(usr/\\)\\{{0,1\\}}bin/ls$|$sum  bin/ls|\" '{r}/var/lib/dpkg/info/coreutils.md5sums'"
    ));
    let v = e.json(&["audit", "packages", "--live", "--root", r]);
    assert_eq!(v["report"]["modified"], serde_json::json!([]), "the MD5 list was rewritten to match: {v}");
    // cat replaced and dropped from coreutils' list: no package lists it, so it is still
    // checked against coreutils' .deb (dropping a line hides nothing).
    std::fs::write(root.join("usr/bin/cat"), b"#!/bin/sh\n# the other package's cat\n").unwrap();
    sh(&format!("sed -i -e '/^\\/bin\\/cat$/d' -e '/^\\/usr\\/bin\\/cat$/d' '{r}/var/lib/dpkg/info/coreutils.list'"));
    assert!(!std::fs::read_to_string(root.join("var/lib/dpkg/info/coreutils.list")).unwrap().contains("bin/cat\n"));
    // Against the package from the archive (apt-get download checks it against the signed index).
    let cache = e.path("debs");
    let archive_audit = || {
        let o = e.run(&[
            "--json",
            "audit",
            "packages",
            "--live",
            "--root",
            r,
            "--archive",
            "--package",
            "coreutils",
            "--deb-cache",
            cache.to_str().unwrap(),
        ]);
        let v = common::last_json(&String::from_utf8_lossy(&o.stdout));
        (o.status.code(), v)
    };
    let (code, v) = archive_audit();
    let unverifiable = &v["report"]["unverifiable"];
    if !common::have(
        "the Debian archive (apt-get download coreutils)",
        unverifiable.as_array().is_some_and(|u| u.is_empty()),
    ) {
        return;
    }
    assert_eq!(code, Some(4), "{v}");
    assert_eq!(
        v["report"]["modified"],
        serde_json::json!([{"path": "/usr/bin/cat", "package": "coreutils"}, {"path": "/usr/bin/ls", "package": "coreutils"}]),
        "{v}"
    );
    // Another package lists it now (it took the file over, `Replaces:`): that package's .deb
    // is the reference, not coreutils'.
    std::fs::write(root.join("var/lib/dpkg/info/other-cat.list"), "/bin/cat\n").unwrap();
    let (_, t) = archive_audit();
    assert_eq!(t["report"]["modified"], serde_json::json!([{"path": "/usr/bin/ls", "package": "coreutils"}]), "{t}");
    assert!(v["report"]["files"].as_u64().unwrap() > 50, "{v}");
    // A cached .deb that no longer matches the signed index is not trusted: fetched again.
    for deb in std::fs::read_dir(&cache).unwrap().flatten() {
        std::fs::write(deb.path(), b"not the package").unwrap();
    }
    let (_, w) = archive_audit();
    assert_eq!(w["report"]["modified"], t["report"]["modified"], "{w}");
    assert_eq!(w["report"]["unverifiable"], serde_json::json!([]), "{w}");
}
