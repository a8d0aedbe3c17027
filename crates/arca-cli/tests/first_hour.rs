//! Issue 17: what a new user who knows restic and borg hits in the first hour. Each test
//! names the row of the review (`../shared/research/newcomer-review.md`) it holds to.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// `arca` on the default repository: no -r, no password, HOME inside the scratch directory.
fn default_cmd(e: &Env, args: &[&str]) -> std::process::Command {
    let mut c = e.cmd(args);
    c.env_remove("ARCA_REPOSITORY").env_remove("ARCA_PASSWORD");
    c
}

fn run_default(e: &Env, args: &[&str]) -> std::process::Output {
    default_cmd(e, args).output().unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).unwrap().flatten() {
        let md = e.metadata().unwrap();
        n += if md.is_dir() { dir_size(&e.path()) } else { md.len() };
    }
    n
}

/// Row 1: `arca backup "$HOME"` must not back up the default repository, its cache or its
/// key file into itself, whatever path leads there.
#[test]
fn backing_up_home_leaves_out_the_default_repository_its_cache_and_key() {
    if !have("root (for mount --bind)", is_root()) {
        return;
    }
    let e = Env::new();
    let home = e.path("home");
    std::fs::create_dir_all(home.join("docs")).unwrap();
    std::fs::write(home.join("docs/a"), random_bytes(2 << 20, 1)).unwrap();
    // Second ways to the same directory: a symlink (with a trailing slash, followed), and a
    // bind mount, which no path comparison sees through.
    std::os::unix::fs::symlink(&home, e.path("home-link")).unwrap();
    let bind = e.path("bind");
    std::fs::create_dir_all(&bind).unwrap();
    let first = run_default(&e, &["backup", home.to_str().unwrap()]);
    assert!(first.status.success(), "{}", text(&first));
    let t = text(&first);
    assert!(t.contains("created the default repository at") && t.contains("default.key"), "{t}");
    assert!(t.contains("same disk"), "says that the repository shares the data's disk: {t}");
    let repo = home.join(".local/share/arca/default");
    let size1 = dir_size(&repo);
    for _ in 0..3 {
        let o = run_default(&e, &["--json", "backup", home.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        let v = last_json(&String::from_utf8_lossy(&o.stdout));
        assert!(v["summary"]["bytes_added"].as_u64().unwrap() < 64 << 10, "nothing changed, nothing much added: {v}");
    }
    let o = run_default(&e, &["backup", &format!("{}/", e.path("home-link").display())]);
    assert!(o.status.success(), "{}", text(&o));
    sh(&format!("mount --bind '{}' '{}'", home.display(), bind.display()));
    let o = run_default(&e, &["--json", "backup", bind.to_str().unwrap()]);
    sh(&format!("umount '{}'", bind.display()));
    assert!(o.status.success(), "{}", text(&o));
    let bind_id = last_json(&String::from_utf8_lossy(&o.stdout))["snapshot_id"].as_str().unwrap().to_string();
    let size2 = dir_size(&repo);
    assert!(size2 < size1 + (1 << 20), "the repository did not take itself in: {size1} -> {size2}");
    for snap in ["latest", &bind_id] {
        let listing = String::from_utf8_lossy(&run_default(&e, &["ls", snap]).stdout).into_owned();
        assert!(listing.contains("docs/a"), "{listing}");
        for own in [".local/share/arca/default", ".cache/arca", "default.key"] {
            assert!(!listing.contains(own), "{own} is not in the snapshot:\n{listing}");
        }
    }
}

/// Row 2: unknown schemes and other tools' remote syntax are refused, and nothing is created.
#[test]
fn unknown_schemes_and_host_paths_are_refused_not_made_into_local_folders() {
    let e = Env::new();
    let cwd = e.path("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    for r in [
        "gopher://backup.example.com/repo",
        "backup@nas:/srv/repo",
        "nas:/srv/repo",
        "file:///srv/repo",
        "S3://bucket/prefix",
        "rest:http://x/",
        "b2:bucket",
        "http://x/repo",
        "",
    ] {
        let o = e.cmd(&["-r", r, "init"]).current_dir(&cwd).output().unwrap();
        let t = text(&o);
        assert!(!o.status.success(), "{r:?} must be refused: {t}");
        assert!(t.contains("ssh://") || t.contains("empty") || t.contains("lower case"), "{r:?}: says what works: {t}");
        assert!(std::fs::read_dir(&cwd).unwrap().next().is_none(), "{r:?} created nothing");
    }
    let o = e.cmd(&["-r", "backup@nas:/srv/repo", "init"]).current_dir(&cwd).output().unwrap();
    assert!(text(&o).contains("ssh://backup@nas/"), "borg's syntax gets the ssh:// spelling: {}", text(&o));
    // A plain relative path and local: still work.
    e.ok(&["-r", e.path("rel").to_str().unwrap(), "init"]);
    e.ok(&["-r", &format!("local:{}", e.path("loc").display()), "init"]);
}

/// Row 3: `--keep-within 0d` removed every snapshot; huge spans removed every snapshot or
/// panicked.
#[test]
fn keep_within_zero_is_refused_and_huge_spans_keep_everything() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    e.backup(&[src.to_str().unwrap()]);
    e.backup(&[src.to_str().unwrap()]);
    for zero in ["0d", "0h"] {
        let o = e.run(&["forget", "--keep-within", zero]);
        assert!(!o.status.success(), "{zero}");
        assert!(text(&o).contains("longer than zero"), "{}", text(&o));
    }
    for huge in ["300000y", "3000000000d"] {
        let o = e.run(&["forget", "--keep-within", huge]);
        assert!(o.status.success(), "{huge}: {}", text(&o));
        assert_ne!(o.status.code(), Some(101));
    }
    assert_eq!(snapshot_ids(&e).len(), 2, "every snapshot is kept");
    assert!(!e.run(&["forget", "--keep-within", "99999999999d"]).status.success());
}

/// Row 4: `restore --target FILE` deleted the user's file.
#[test]
fn restore_onto_a_file_refuses_and_keeps_the_file() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"snap").unwrap();
    let id = e.backup(&[src.to_str().unwrap()]);
    let target = e.path("afile");
    std::fs::write(&target, b"precious").unwrap();
    let o = e.run(&["restore", &id, "--target", target.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("is not a directory"), "{}", text(&o));
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    // A symlink to a directory is a directory to restore into.
    std::fs::create_dir_all(e.path("real")).unwrap();
    std::os::unix::fs::symlink(e.path("real"), e.path("link")).unwrap();
    e.ok(&["restore", &format!("{id}:{}", src.display()), "--target", e.path("link").to_str().unwrap()]);
    assert_eq!(std::fs::read(e.path("real/f")).unwrap(), b"snap");
}

/// Row 11: a missing source path no longer aborts the backup: the rest is saved, exit 3.
#[test]
fn a_missing_source_path_is_skipped_with_exit_3() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    let missing = e.path("does-not-exist");
    let o = e.run(&["backup", src.to_str().unwrap(), missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("does-not-exist"), "{}", text(&o));
    assert_eq!(snapshot_ids(&e).len(), 1);
    let o = e.run(&["backup", missing.to_str().unwrap()]);
    assert!(!o.status.success() && o.status.code() != Some(3), "nothing at all to back up is an error");
    assert!(text(&o).contains("nothing to back up"), "{}", text(&o));
}

/// Row 7: a missing second password names the variables for it, not ARCA_PASSWORD.
#[test]
fn a_missing_second_password_names_its_own_variables() {
    let e = Env::init();
    let o = e.run(&["key", "add"]);
    assert!(text(&o).contains("ARCA_NEW_PASSWORD"), "{}", text(&o));
    let src = Env::init();
    let o = e.run(&["copy", "--from-repo", src.repo.to_str().unwrap()]);
    assert!(text(&o).contains("ARCA_FROM_PASSWORD"), "{}", text(&o));
}

/// Rows 8 and 9: the default repository's messages tell the truth about how it opens.
#[test]
fn default_repository_messages_tell_how_it_opens() {
    let e = Env::new();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    let pw = e.path("pw");
    std::fs::write(&pw, "a password\n").unwrap();
    let o = default_cmd(&e, &["backup", src.to_str().unwrap()]).env("ARCA_PASSWORD_FILE", &pw).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no key file was written"), "{}", text(&o));
    assert!(!e.path("home/.config/arca/default.key").exists());

    let e = Env::new();
    std::fs::create_dir_all(e.path("src")).unwrap();
    let o = run_default(&e, &["backup", e.path("src").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    // A password for other repositories takes the key file's place: say so.
    let o = default_cmd(&e, &["snapshots"]).env("ARCA_PASSWORD", "other").output().unwrap();
    assert_eq!(o.status.code(), Some(12));
    assert!(text(&o).contains("key file"), "{}", text(&o));
    // A lost key file is named.
    let key = e.path("home/.config/arca/default.key");
    std::fs::rename(&key, e.path("key-copy")).unwrap();
    let o = run_default(&e, &["snapshots"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("default.key") && text(&o).contains("missing"), "{}", text(&o));
}

/// Row 10: repositories and caches are private; the cache carries a CACHEDIR.TAG.
#[test]
fn repository_and_cache_are_private_and_the_cache_is_tagged() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    e.backup(&[src.to_str().unwrap()]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&e.repo), 0o700);
    assert_eq!(mode(&e.repo.join("config")), 0o600);
    for sub in ["keys", "snapshots", "index", "data"] {
        assert_eq!(mode(&e.repo.join(sub)), 0o700, "{sub}/");
        for f in std::fs::read_dir(e.repo.join(sub)).unwrap().flatten() {
            if f.file_type().unwrap().is_file() {
                assert_eq!(mode(&f.path()), 0o600, "{}", f.path().display());
            }
        }
    }
    let cache = e.path("home/.cache/arca");
    let dirs: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().collect();
    assert!(!dirs.is_empty());
    for d in dirs {
        assert_eq!(mode(&d.path()), 0o700);
        let tag = std::fs::read_to_string(d.path().join("CACHEDIR.TAG")).unwrap();
        assert!(tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55"));
    }
}

/// Row 17: init refuses a damaged repository (config lost, keys left) and a non-empty
/// directory that is not a repository.
#[test]
fn init_refuses_a_damaged_repository_and_a_non_empty_directory() {
    let e = Env::init();
    std::fs::remove_file(e.repo.join("config")).unwrap();
    let o = e.run(&["init"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("damaged repository"), "{}", text(&o));
    assert!(!e.repo.join("config").exists(), "nothing was written");
    let d = e.path("stuff");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("notes.txt"), b"mine").unwrap();
    let o = e.run(&["-r", d.to_str().unwrap(), "init"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("not empty"), "{}", text(&o));
    // Row 28: range checks.
    for bad in [["--pack-size-mib", "0"], ["--compression-level", "99"], ["--chunk-size-kib", "1"]] {
        let o = e.run(&["-r", e.path("new").to_str().unwrap(), "init", bad[0], bad[1]]);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", text(&o));
    }
}

/// Row 22: `prune --dry-run` writes nothing, not even the removal of a stale lock.
#[test]
fn prune_dry_run_writes_nothing() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), random_bytes(1 << 20, 3)).unwrap();
    let id = e.backup(&[src.to_str().unwrap()]);
    e.ok(&["forget", &id]);
    // A backup killed mid-way leaves a stale lock (its process is gone).
    let o = e.cmd(&["backup", src.to_str().unwrap()]).env("ARCA_FAILPOINT", "backup-before-snapshot").output().unwrap();
    assert!(!o.status.success());
    let before = e.repo_files();
    assert!(before.iter().any(|(p, _)| p.to_string_lossy().contains("/locks/")), "a stale lock is there");
    e.ok(&["prune", "--dry-run"]);
    assert_eq!(e.repo_files(), before, "the dry run changed nothing");
}

/// Rows 24, 25, 6: `--path` ignores a trailing slash; an ambiguous prefix lists candidates; a
/// time copied from the snapshots table selects that snapshot.
#[test]
fn snapshot_selection_is_forgiving_where_it_is_safe() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    let mut ids = vec![];
    for i in 0..20 {
        std::fs::write(src.join("f"), format!("{i}")).unwrap();
        ids.push(e.backup(&[src.to_str().unwrap()]));
    }
    e.ok(&["ls", "latest", "--path", &format!("{}/", src.display())]);
    let o = e.run(&["ls", "latest", "--path", "/nowhere"]);
    assert!(text(&o).contains("--path /nowhere"), "the message names the filter: {}", text(&o));
    // Two of 20 ids share a first hex digit.
    let first: Vec<char> = ids.iter().map(|i| i.chars().next().unwrap()).collect();
    let c = first.iter().find(|c| first.iter().filter(|d| d == c).count() > 1).unwrap();
    let o = e.run(&["ls", &c.to_string()]);
    let t = text(&o);
    assert!(t.contains("more than one snapshot"), "{t}");
    let shared: Vec<&String> = ids.iter().filter(|i| i.starts_with(*c)).collect();
    assert!(shared.iter().all(|i| t.contains(&i[..12])), "names the candidates: {t}");
    // The newest snapshot's time as the table shows it (whole seconds, UTC in the tests).
    let v = e.json(&["snapshots"]);
    let last = v.as_array().unwrap().last().unwrap();
    let time = chrono::DateTime::parse_from_rfc3339(last["time"].as_str().unwrap()).unwrap();
    let shown = time.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S").to_string();
    let target = e.path("at");
    e.ok(&["restore", "--at", &shown, &format!(":{}", src.display()), "--target", target.to_str().unwrap()]);
    assert_eq!(std::fs::read(target.join("f")).unwrap(), b"19");
    let frac = format!("{}.9", shown);
    e.ok(&["restore", "--at", &frac, &format!(":{}", src.display()), "--target", e.path("at2").to_str().unwrap()]);
}

/// Row 15: Ctrl-C stops a backup cleanly (message, exit 130, lock and temporary files gone),
/// and temporaries a SIGKILL leaves are removed by the next prune once they are old.
#[test]
fn ctrl_c_cleans_up_and_prune_removes_what_a_kill_left() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..24 {
        std::fs::write(src.join(format!("f{i}")), random_bytes(8 << 20, 500 + i)).unwrap();
    }
    let child = e
        .cmd(&["backup", src.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the backup has stored something (its lock and a first pack).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !e.repo_files().iter().any(|(p, _)| p.to_string_lossy().contains("/data/")) {
        assert!(std::time::Instant::now() < deadline, "the backup never stored a pack");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    sh(&format!("kill -INT {}", child.id()));
    let o = child.wait_with_output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(130), "{t}");
    assert!(t.contains("interrupted"), "{t}");
    let files = e.repo_files();
    assert!(!files.iter().any(|(p, _)| p.to_string_lossy().contains("/locks/")), "the lock was removed");
    assert!(!files.iter().any(|(p, _)| p.to_string_lossy().contains(".tmp-")), "no temporary file is left");
    assert!(snapshot_ids(&e).is_empty());
    // What the interrupted backup stored was indexed on the way out: the next one reuses it.
    let v = e.json(&["backup", src.to_str().unwrap()]);
    let added = v["summary"]["bytes_added"].as_u64().unwrap();
    assert!(added < 24 * (8 << 20), "the packs stored before Ctrl-C were reused: {added} bytes added");
    // A kill leaves a temporary file; prune removes it once it is older than the stale limit.
    let tmp = e.repo.join("data/ab/new.tmp-0123456789abcdef");
    std::fs::create_dir_all(tmp.parent().unwrap()).unwrap();
    std::fs::write(&tmp, b"partial pack").unwrap();
    sh(&format!("touch -d '1 hour ago' '{}'", tmp.display()));
    let fresh = e.repo.join("data/ab/new.tmp-fedcba9876543210");
    std::fs::write(&fresh, b"being written").unwrap();
    let o = e.cmd(&["prune"]).env("ARCA_LOCK_STALE_SECS", "600").output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(!tmp.exists(), "the old temporary file was removed");
    assert!(fresh.exists(), "a fresh one may belong to a live writer: kept");
    e.backup(&[src.to_str().unwrap()]);
    e.ok(&["check"]);
}

/// Rows 23, 29, 30: binary output to a terminal, a mount over a non-empty directory, and
/// `--stdin` from a terminal are refused.
#[test]
fn terminals_and_non_empty_mount_points_are_refused() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    let id = e.backup(&[src.to_str().unwrap()]);
    // `script` gives the command a terminal for stdin and stdout.
    let arca = env!("CARGO_BIN_EXE_arca");
    let tty = |args: &str| {
        let o = std::process::Command::new("script")
            .args(["-qec", &format!("{arca} {args}"), "/dev/null"])
            .env("ARCA_REPOSITORY", &e.repo)
            .env("ARCA_PASSWORD", PASSWORD)
            .env("HOME", e.path("home"))
            .env("TZ", "UTC")
            .env("ARCA_KDF_MEMORY_KIB", "1024")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("script (util-linux) runs a command on a terminal");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(tty(&format!("export {id}")).contains("terminal"), "export to a terminal");
    assert!(tty(&format!("dump {id} {}/f", src.display())).contains("terminal"), "dump to a terminal");
    assert!(tty("backup --stdin").contains("terminal"), "--stdin from a terminal");
    let o = e.run(&["mount", src.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("not empty"), "{}", text(&o));
}

/// Rows 12 and 31: `backup -v` lists new and modified files, `-vv` every file, a dry run
/// lists what it would add; a hard link on a first backup is new, not unchanged.
#[test]
fn backup_lists_files_by_change_and_counts_hard_links_right() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"a").unwrap();
    std::fs::write(src.join("b"), b"b").unwrap();
    std::fs::hard_link(src.join("b"), src.join("b-link")).unwrap();
    let s = src.display();
    let o = e.ok(&["backup", "-n", src.to_str().unwrap()]);
    assert!(o.contains(&format!("new       {s}/a")), "{o}");
    assert!(o.contains("nothing was stored"), "{o}");
    let v = e.json(&["backup", src.to_str().unwrap()]);
    assert_eq!(v["summary"]["files_new"], 3, "{v}");
    assert_eq!(v["summary"]["files_unchanged"], 0, "a hard link on a first backup is not unchanged: {v}");
    std::fs::write(src.join("a"), b"changed").unwrap();
    let o = e.ok(&["backup", "-v", src.to_str().unwrap()]);
    assert!(o.contains(&format!("modified  {s}/a")), "{o}");
    assert!(!o.contains(&format!("{s}/b\n")), "-v leaves out unchanged files: {o}");
    let o = e.ok(&["backup", "-vv", src.to_str().unwrap()]);
    assert!(o.contains(&format!("unchanged {s}/b")), "{o}");
    let o = e.ok(&["--json", "backup", "-v", src.to_str().unwrap()]);
    assert!(!o.contains("\"type\":\"file\""), "unchanged files are not listed at -v: {o}");
    std::fs::write(src.join("c"), b"c").unwrap();
    let o = e.ok(&["--json", "backup", "-v", src.to_str().unwrap()]);
    assert!(
        o.lines().any(|l| l.contains("\"type\":\"file\"") && l.contains("\"change\":\"new\"") && l.contains("/c")),
        "{o}"
    );
}

/// Row 13: `restore --dry-run` changes nothing and lists what `--delete` would remove; the
/// count includes what a removed directory held.
#[test]
fn restore_dry_run_lists_deletions_and_changes_nothing() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"snap").unwrap();
    let id = e.backup(&[src.to_str().unwrap()]);
    let victim = e.path("victim");
    std::fs::create_dir_all(victim.join("important")).unwrap();
    for i in 1..=3 {
        std::fs::write(victim.join(format!("important/p{i}")), b"mine").unwrap();
    }
    std::fs::write(victim.join("notes.txt"), b"mine").unwrap();
    let spec = format!("{id}:{}", src.display());
    let before = sh(&format!("find '{}' -printf '%p %s %T@\\n' | sort", victim.display()));
    let o = e.ok(&["restore", &spec, "--target", victim.to_str().unwrap(), "--delete", "--dry-run"]);
    assert!(o.contains("would delete") && o.contains("important (4 entries in all)") && o.contains("notes.txt"), "{o}");
    assert!(o.contains("5 extra entries would be deleted"), "{o}");
    assert!(o.contains("would restore 1 file"), "{o}");
    let after = sh(&format!("find '{}' -printf '%p %s %T@\\n' | sort", victim.display()));
    assert_eq!(before, after, "the dry run changed nothing");
    let o = e.ok(&["restore", &spec, "--target", victim.to_str().unwrap(), "--delete"]);
    assert!(o.contains("deleted") && o.contains("notes.txt"), "{o}");
    assert!(!victim.join("important").exists());
    assert_eq!(std::fs::read(victim.join("f")).unwrap(), b"snap");
}

/// Row 19: protection can be extended but not shortened (`--until forever` could be undone
/// with `--until 2020-01-01`).
#[test]
fn protection_cannot_be_shortened() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    e.backup(&[src.to_str().unwrap()]);
    e.ok(&["protect", "latest", "--until", "2999-01-01"]);
    let o = e.run(&["protect", "latest", "--until", "2020-01-01"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("not shortened"), "{}", text(&o));
    e.ok(&["protect", "latest", "--until", "forever"]);
    let o = e.run(&["protect", "latest", "--until", "2999-01-01"]);
    assert!(!o.status.success(), "forever stays forever");
    let o = e.run(&["forget", "latest"]);
    assert!(!o.status.success() || snapshot_ids(&e).len() == 1, "a protected snapshot stays");
    assert_eq!(snapshot_ids(&e).len(), 1);
}

/// Issue 17, "Done when": the README tour, run top to bottom in a fresh $HOME as written,
/// works. The block between the tour markers runs under `bash -euo pipefail` with the built
/// arca first on PATH; it backs up this machine's /etc and /home (read only).
#[test]
fn the_readme_tour_runs_as_written() {
    let readme = include_str!("../../../README.md");
    let start =
        readme.find("<!-- tour-start -->\n```sh\n").expect("tour start marker") + "<!-- tour-start -->\n```sh\n".len();
    let end = readme[start..].find("```\n<!-- tour-end -->").expect("tour end marker") + start;
    let script = &readme[start..end];
    let e = Env::new();
    let home = e.path("home");
    std::fs::create_dir_all(&home).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_arca")).parent().unwrap().to_path_buf();
    let o = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-xc", script])
        .env_clear()
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
        .env("HOME", &home)
        .env("ARCA_KDF_MEMORY_KIB", "1024")
        .env("TZ", "UTC")
        .current_dir(&home)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "the tour failed ({}):\n{}", o.status, text(&o));
    let t = text(&o);
    assert!(t.contains("created repository"), "{t}");
    assert!(home.join("restored/apt").is_dir() && home.join("apt.tar").exists(), "{t}");
}

/// Issue 17: key export for safekeeping and the recovery paths of docs/RECOVERY.md — the
/// default repository from its exported key, lost key slots and a damaged config put back.
#[test]
fn key_export_and_import_recover_lost_slots_and_a_damaged_config() {
    let e = Env::new();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    let o = run_default(&e, &["backup", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let export = e.path("key.json");
    let o = run_default(&e, &["key", "export", "-o", export.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::metadata(&export).unwrap().permissions().mode() & 0o777, 0o600);
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&export).unwrap()).unwrap();
    let key = saved["default_key"].as_str().expect("the default key is in the export").to_string();
    std::fs::remove_file(e.path("home/.config/arca/default.key")).unwrap();
    let repo = e.path("home/.local/share/arca/default");
    let o = e.cmd(&["-r", repo.to_str().unwrap(), "snapshots"]).env("ARCA_PASSWORD", &key).output().unwrap();
    assert!(o.status.success(), "the exported key opens it from anywhere: {}", text(&o));

    // An explicit repository loses its key slots, then its config.
    let e = Env::init();
    e.backup(&[src.to_str().unwrap()]);
    let export = e.path("key.json");
    e.ok(&["key", "export", "-o", export.to_str().unwrap()]);
    let paper = e.path("key.txt");
    e.ok(&["key", "export", "--paper", "-o", paper.to_str().unwrap()]);
    // Format version 2: the default class's key object goes too; the export has it.
    for dir in ["keys", "keyring"] {
        for k in std::fs::read_dir(e.repo.join(dir)).unwrap().flatten() {
            std::fs::remove_file(k.path()).unwrap();
        }
    }
    assert!(!e.run(&["snapshots"]).status.success());
    let page = std::fs::read_to_string(&paper).unwrap();
    assert!(page.contains('█') || page.contains('▀'), "a QR code is on the page");
    let o = e.ok(&["key", "import", paper.to_str().unwrap()]);
    assert!(o.contains("key slot") && o.contains("opens"), "the paper copy imports: {o}");
    assert!(o.contains("default class key"), "the default class's key is put back: {o}");
    assert_eq!(snapshot_ids(&e).len(), 1);
    let config = e.repo.join("config");
    let mut bytes = std::fs::read(&config).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&config, &bytes).unwrap();
    assert!(!e.run(&["snapshots"]).status.success(), "a damaged config does not open");
    assert!(!e.run(&["key", "import", export.to_str().unwrap()]).status.success(), "not replaced without asking");
    e.ok(&["key", "import", export.to_str().unwrap(), "--replace-config"]);
    e.ok(&["check", "--read-data"]);
    // An export of another repository is refused.
    let other = Env::init();
    let o = other.run(&["key", "import", export.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o).contains("nothing was written"), "{}", text(&o));
}

/// Issue 17: --files-from (comments and blanks skipped), --files-from-raw (NUL-separated,
/// names with newlines), --files-from-verbatim, and --iexclude.
#[test]
fn paths_from_files_and_case_insensitive_excludes() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::create_dir_all(src.join("b")).unwrap();
    std::fs::write(src.join("a/keep.txt"), b"1").unwrap();
    std::fs::write(src.join("a/PHOTO.JPG"), b"2").unwrap();
    std::fs::write(src.join("b/x"), b"3").unwrap();
    std::fs::write(src.join("odd\nname"), b"4").unwrap();
    let list = e.path("list");
    std::fs::write(&list, format!("# the nightly list\n\n{}/a\r\n", src.display())).unwrap();
    let raw = e.path("raw");
    std::fs::write(&raw, format!("{}/odd\nname\0{}/b\0", src.display(), src.display())).unwrap();
    let v = e.json(&[
        "backup",
        "--files-from",
        list.to_str().unwrap(),
        "--files-from-raw",
        raw.to_str().unwrap(),
        "--iexclude",
        "*.jpg",
    ]);
    let id = v["snapshot_id"].as_str().unwrap().to_string();
    let ls = e.ok(&["ls", &id]);
    assert!(ls.contains("/a/keep.txt") && ls.contains("/b/x") && ls.contains("odd\\nname"), "{ls}");
    assert!(!ls.contains("PHOTO.JPG"), "--iexclude *.jpg left out PHOTO.JPG: {ls}");
    let verbatim = e.path("verbatim");
    std::fs::write(&verbatim, format!("{}/b\n", src.display())).unwrap();
    let v = e.json(&["backup", "--files-from-verbatim", verbatim.to_str().unwrap()]);
    let ls = e.ok(&["ls", v["snapshot_id"].as_str().unwrap()]);
    assert!(ls.contains("/b/x") && !ls.contains("/a/"), "{ls}");
}

/// Issue 17: shell completions and man pages, generated from the command definitions.
#[test]
fn completions_and_man_pages_are_generated() {
    let e = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let o = e.ok(&["completions", shell]);
        assert!(o.contains("backup") && o.contains("--exclude"), "{shell}: {}", &o[..o.len().min(300)]);
    }
    let dir = e.path("man");
    e.ok(&["man", dir.to_str().unwrap()]);
    for page in ["arca.1", "arca-backup.1", "arca-key-export.1", "arca-repair-index.1"] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_else(|_| panic!("{page} missing"));
        assert!(text.contains(".TH"), "{page} is a man page");
    }
    assert!(std::fs::read_to_string(dir.join("arca-backup.1")).unwrap().contains("files\\-from"));
}

/// Row 36: with --json, a usage error is a JSON error line too (exit code 2).
#[test]
fn usage_errors_are_json_in_json_mode() {
    let e = Env::new();
    let o = e.run(&["--json", "snapshots", "--bogus"]);
    assert_eq!(o.status.code(), Some(2));
    let v = last_json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(v["type"], "error");
    assert_eq!(v["exit_code"], 2);
    assert!(v["message"].as_str().unwrap().contains("--bogus"), "{v}");
    let o = e.run(&["snapshots", "--bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--bogus"));
}

/// Row 18: JSON progress carries the totals, and a percentage and time left once the totals
/// are final (ARCA_PROGRESS_INTERVAL_MS makes the lines frequent enough to see here).
#[test]
fn json_progress_has_totals_and_percent() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..40 {
        std::fs::write(src.join(format!("f{i}")), random_bytes(1 << 20, 900 + i)).unwrap();
    }
    let o = e.cmd(&["--json", "backup", src.to_str().unwrap()]).env("ARCA_PROGRESS_INTERVAL_MS", "1").output().unwrap();
    assert!(o.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "progress")
        .collect();
    assert!(!lines.is_empty());
    let last = lines.iter().rev().find(|v| v["totals_final"] == true).expect("a progress line with final totals");
    assert_eq!(last["total_files"], 40, "{last}");
    assert_eq!(last["total_bytes"], 40u64 << 20, "{last}");
    let pct = last["percent_done"].as_f64().expect("percent_done");
    assert!((0.0..=100.0).contains(&pct), "{last}");
}

/// Issue 17: a time before 1970 with a fraction survives export → GNU tar (it was written as
/// -315619200.5, which GNU tar reads as half a second earlier).
#[test]
fn export_keeps_fractional_times_before_1970_for_gnu_tar() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("old"), b"1960").unwrap();
    sh(&format!("TZ=UTC touch -d '1960-01-01 00:00:00.5' '{}'", src.join("old").display()));
    e.backup(&[src.to_str().unwrap()]);
    let tar = e.path("x.tar");
    e.ok(&["export", &format!("latest:{}", src.display()), "-o", tar.to_str().unwrap()]);
    let out = e.path("out");
    std::fs::create_dir_all(&out).unwrap();
    sh(&format!("tar -xf '{}' -C '{}'", tar.display(), out.display()));
    let found = sh(&format!("find '{}' -name old", out.display()));
    let t = sh(&format!("TZ=UTC stat -c %y '{}'", found.trim()));
    assert!(t.starts_with("1960-01-01 00:00:00.5"), "GNU tar restored {t}");
}

/// Issue 17: `tag` and `rewrite` (remove a secret from existing snapshots, then prune takes
/// its data); row 19: an id that protect, tag or rewrite replaced keeps selecting the snapshot.
#[test]
fn tag_and_rewrite_and_old_ids_keep_working() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(src.join("conf")).unwrap();
    std::fs::write(src.join("conf/app.toml"), b"name = 1").unwrap();
    let secret = random_bytes(2 << 20, 4242);
    std::fs::write(src.join("conf/.env"), &secret).unwrap();
    let first = e.backup(&[src.to_str().unwrap()]);
    let o = e.ok(&["tag", "--add", "keep", &first[..8]]);
    assert!(o.contains("still selects it"), "{o}");
    let v = e.json(&["snapshots"]);
    assert_eq!(v[0]["tags"], serde_json::json!(["keep"]), "{v}");
    e.ok(&["ls", &first[..8]]); // the old id still selects it
    e.ok(&["tag", "--remove", "keep", "--add", "weekly", "latest"]);
    e.ok(&["protect", &first[..10], "--until", "2999-01-01"]);
    assert_eq!(e.json(&["snapshots"])[0]["tags"], serde_json::json!(["weekly"]));
    // rewrite: the secret leaves the snapshot; prune then removes its data.
    let o = e.ok(&["rewrite", "--exclude", "/**/.env", "--dry-run"]);
    assert!(o.contains("would remove") && o.contains("conf/.env"), "{o}");
    assert_eq!(snapshot_ids(&e).len(), 1, "a dry run changes nothing");
    let o = e.ok(&["rewrite", "--exclude", ".env", "--forget"]);
    assert!(o.contains("rewrote 1 snapshot"), "{o}");
    let ls = e.ok(&["ls", "latest"]);
    assert!(!ls.contains(".env") && ls.contains("app.toml"), "{ls}");
    assert_eq!(snapshot_ids(&e).len(), 1);
    e.ok(&["ls", &first[..8]]); // the id from before the rewrite too
    e.ok(&["prune", "--max-unused", "0"]);
    e.ok(&["check", "--read-data"]);
    let bytes_left: u64 = e
        .repo_files()
        .iter()
        .filter(|(p, _)| p.to_string_lossy().contains("/data/"))
        .map(|(_, b)| b.len() as u64)
        .sum();
    assert!(bytes_left < 1 << 20, "the 2 MiB secret's packs are gone after prune: {bytes_left} bytes left");
}

/// Row 35: `arca cache` lists the caches, `--cleanup` removes those unused for a while, and
/// `--cache-dir` puts them elsewhere.
#[test]
fn caches_are_listed_cleaned_up_and_placeable() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    e.backup(&[src.to_str().unwrap()]);
    let root = e.path("home/.cache/arca");
    let stale = root.join("ab".repeat(32));
    std::fs::create_dir_all(&stale).unwrap();
    sh(&format!("touch -d '60 days ago' '{}'", stale.display()));
    let v = e.json(&["cache"]);
    assert_eq!(v.as_array().unwrap().len(), 2, "{v}");
    e.ok(&["cache", "--cleanup"]);
    assert!(!stale.exists(), "the unused cache went");
    assert_eq!(e.json(&["cache"]).as_array().unwrap().len(), 1, "the one in use stays");
    let elsewhere = e.path("elsewhere");
    e.ok(&["--cache-dir", elsewhere.to_str().unwrap(), "snapshots"]);
    e.ok(&["--cache-dir", elsewhere.to_str().unwrap(), "ls", "latest"]);
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_some(), "the cache went to --cache-dir");
}

/// `--retry-lock`: a second exclusive session waits for the first instead of failing.
#[test]
fn retry_lock_waits_for_another_exclusive_session() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), random_bytes(100_000, 8)).unwrap();
    e.backup(&[src.to_str().unwrap()]);
    let holder = e.cmd(&["repair", "index"]).env("ARCA_FAILPOINT", "repair-index-written:1:stop").spawn().unwrap();
    wait_until_stopped(holder.id(), "repair index");
    let o = e.run(&["prune", "--retry-lock", "1s"]);
    assert!(!o.status.success() && text(&o).contains("another exclusive session"), "{}", text(&o));
    let waiter = e.cmd(&["prune", "--retry-lock", "2m"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    sh(&format!("kill -CONT {}", holder.id()));
    let o = waiter.wait_with_output().unwrap();
    assert!(o.status.success(), "the waiting prune ran once the lock was free: {}", text(&o));
    let mut holder = holder;
    assert!(holder.wait().unwrap().success());
}

/// `check --read-data-subset SIZE` reads random packs holding at least that much.
#[test]
fn check_reads_a_subset_by_size() {
    let e = Env::new();
    e.ok(&["init", "--pack-size-mib", "1"]);
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..24 {
        std::fs::write(src.join(format!("f{i}")), random_bytes(400_000, 77 + i)).unwrap();
    }
    e.backup(&[src.to_str().unwrap()]);
    let all = e.json(&["check", "--read-data"])["report"]["bytes_read"].as_u64().unwrap();
    let v = e.json(&["check", "--read-data-subset", "2M"]);
    let read = v["report"]["bytes_read"].as_u64().unwrap();
    assert!(read >= 2 << 20 && read < all, "read {read} of {all} bytes for 2M: {v}");
    assert!(!e.run(&["check", "--read-data-subset", "0"]).status.success());
}

/// `snapshots --group-by`, and one time format for people (row 37).
#[test]
fn snapshots_group_by_and_one_time_format() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    e.backup(&[src.to_str().unwrap(), "--host", "alpha"]);
    e.backup(&[src.to_str().unwrap(), "--host", "beta"]);
    e.backup(&[src.to_str().unwrap(), "--host", "beta"]);
    let o = e.ok(&["snapshots", "--group-by", "host"]);
    assert!(o.contains("host alpha:") && o.contains("host beta:"), "{o}");
    let v = e.json(&["snapshots", "--group-by", "host"]);
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[1]["snapshots"].as_array().unwrap().len(), 2, "{v}");
    assert!(!e.run(&["snapshots", "--group-by", "colour"]).status.success());
    e.ok(&["protect", "latest", "--until", "2030-01-01"]);
    let o = e.ok(&["snapshots"]);
    assert!(o.contains("[protected until 2030-01-01 00:00:00]"), "the table's time format: {o}");
    let o = e.ok(&["forget", "--keep-last", "1", "--dry-run"]);
    assert!(o.contains("protected until 2030-01-01 00:00:00"), "forget shows it alike: {o}");
}

/// Row 38: stats shows only the figures of its mode, and counts the directories the backup
/// counted (not those on the way to the backed-up path).
#[test]
fn stats_counts_what_the_backup_counted() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    std::fs::write(src.join("a/b/f"), b"x").unwrap();
    let v = e.json(&["backup", src.to_str().unwrap()]);
    let st = e.json(&["stats", "latest"]);
    assert_eq!(st["dirs"], v["summary"]["dirs"], "{st} vs {v}");
    assert!(st.get("blobs").is_none() && st.get("stored_bytes").is_none(), "{st}");
    let raw = e.json(&["stats", "--mode", "raw-data"]);
    assert!(raw.get("files").is_none() && raw["blobs"].as_u64().unwrap() > 0, "{raw}");
}

/// Row 27: an ssh:// host that does not resolve fails at once, saying so, not after four
/// retries as a "temporary failure".
#[test]
fn an_unknown_ssh_host_fails_at_once_and_plainly() {
    let e = Env::new();
    let started = std::time::Instant::now();
    let o = e
        .cmd(&["-r", "ssh://backup@nohost.invalid/srv/repo", "snapshots"])
        .env("ARCA_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=5")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("cannot resolve the host name"), "{}", text(&o));
    assert!(!text(&o).contains("temporary"), "{}", text(&o));
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "no retries: {:?}", started.elapsed());
    let o = e.run(&["-r", "sftp://", "snapshots"]);
    assert!(text(&o).contains("sftp://host/srv/repo"), "the example names the scheme used: {}", text(&o));
}

/// Rows 5, 21, 33 and 34: `latest` of other paths gets a hint; each warning is printed once,
/// in one wording, without the path twice; dump names kinds in words; diff against the disk
/// leaves out what the backup excluded.
#[test]
fn messages_that_help_and_say_things_once() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::create_dir_all(src.join("cachedir")).unwrap();
    std::fs::write(src.join("etc/conf"), b"x").unwrap();
    std::fs::write(src.join("x.tmp"), b"t").unwrap();
    e.backup(&[src.to_str().unwrap(), "--exclude", "*.tmp"]);
    let missing = e.path("gone");
    let o = e.run(&["backup", src.to_str().unwrap(), missing.to_str().unwrap(), "--exclude", "*.tmp"]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("gone")).collect();
    assert_eq!(lines.len(), 1, "the warning once: {err}");
    assert_eq!(lines[0].matches("gone").count(), 1, "the path once in it: {}", lines[0]);
    assert!(text(&o).contains("1 path had problems"), "{}", text(&o));
    // diff against the disk: the excluded x.tmp is not "added".
    let o = e.ok(&["diff", "latest", "--path", src.to_str().unwrap(), src.to_str().unwrap()]);
    assert!(!o.contains("x.tmp"), "{o}");
    // dump of a directory names the kind in words and points to export.
    let o = e.run(&["dump", "latest", "--path", src.to_str().unwrap(), &format!("{}/etc", src.display())]);
    assert!(text(&o).contains("is a directory") && text(&o).contains("arca export"), "{}", text(&o));
    // latest is now a stdin snapshot: the path error says how to pick a snapshot of the path.
    e.cmd(&["backup", "--stdin", "--stdin-filename", "db.sql"])
        .stdin(std::fs::File::open(src.join("etc/conf")).unwrap())
        .output()
        .unwrap();
    let o = e.run(&["ls", "latest", &format!("{}/etc", src.display())]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--path"), "{}", text(&o));
}

/// With --json, what export and dump write to standard output is only the data: their JSON
/// records go to stderr (a summary appended to a tar stream broke it).
#[test]
fn json_records_stay_out_of_data_on_stdout() {
    let e = Env::init();
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"file bytes").unwrap();
    e.backup(&[src.to_str().unwrap()]);
    let o = e.run(&["--json", "dump", "latest", &format!("{}/f", src.display())]);
    assert!(o.status.success());
    assert_eq!(o.stdout, b"file bytes", "only the file's bytes");
    let o = e.run(&["--json", "export", &format!("latest:{}", src.display())]);
    assert!(o.status.success());
    let tar = e.path("x.tar");
    std::fs::write(&tar, &o.stdout).unwrap();
    let listed = sh(&format!("tar -tvf '{}'", tar.display()));
    assert!(listed.contains("/f"), "{listed}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("\"type\""), "no JSON inside the archive");
    assert!(String::from_utf8_lossy(&o.stderr).contains("\"type\":\"summary\""), "the summary went to stderr");
}

/// Row 9: `arca init` without -r makes the default repository as `arca backup` does (a key
/// file), not by asking for a password.
#[test]
fn init_without_a_repository_makes_the_default_one_like_backup() {
    let e = Env::new();
    let o = run_default(&e, &["init"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(e.path("home/.config/arca/default.key").exists(), "{}", text(&o));
    assert!(e.path("home/.local/share/arca/default/config").exists());
    let o = run_default(&e, &["init"]);
    assert!(!o.status.success() && text(&o).contains("already exists"), "{}", text(&o));
    std::fs::create_dir_all(e.path("src")).unwrap();
    let o = run_default(&e, &["backup", e.path("src").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}
