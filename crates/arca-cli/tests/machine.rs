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

#[test]
fn a_tampered_binary_is_found_live_and_in_a_snapshot_and_against_one() {
    if !common::have("coreutils' dpkg records", Path::new("/var/lib/dpkg/info/coreutils.md5sums").exists()) {
        return;
    }
    let e = Env::init();
    let root = e.path("machine");
    coreutils_root(&root);
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
