//! The config file of repositories and jobs, through the binary.

mod common;
use common::Env;

#[test]
fn config_check_lists_a_good_file_and_names_file_line_and_key_of_a_bad_one() {
    let e = Env::new();
    let file = e.path("arca.toml");
    let good = format!(
        "[repositories.main]\nurl = {:?}\n\n[repositories.nas]\nurl = \"sftp://backup@nas/srv/arca\"\n\n[jobs.home]\nrepository = \"main\"\npaths = [\"/etc\"]\nkeep = {{ daily = 7 }}\nschedule = \"daily\"\n\n[[jobs.home.replicas]]\nrepository = \"nas\"\nkeep = {{ monthly = 6 }}\n",
        e.repo.display().to_string()
    );
    std::fs::write(&file, &good).unwrap();
    let f = file.to_str().unwrap();
    let v = e.json(&["--config", f, "config", "check"]);
    assert_eq!(v["jobs"][0]["name"], "home");
    assert_eq!(v["jobs"][0]["replicas"][0], "nas");
    assert_eq!(v["repositories"].as_array().map(Vec::len), Some(2));
    // ARCA_CONFIG names the file as --config does.
    let text = String::from_utf8(e.cmd(&["config", "check"]).env("ARCA_CONFIG", f).output().unwrap().stdout).unwrap();
    assert!(text.contains("job home: /etc → main, replicas nas, daily"), "{text}");

    std::fs::write(&file, good.replace("monthly = 6", "montly = 6")).unwrap();
    let o = e.run(&["--config", f, "config", "check"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{f}:15: jobs.home.replicas.keep.montly: unknown field `montly`")), "{err}");

    let o = e.run(&["--config", "/nonexistent/arca.toml", "config", "check"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read the config file /nonexistent/arca.toml"));
}

/// Snapshot times in the repository at `url` (password in `pw`), oldest first.
fn times(e: &Env, url: &std::path::Path, pw: &std::path::Path) -> Vec<String> {
    let o = e
        .cmd(&["--json", "-r", url.to_str().unwrap(), "--password-file", pw.to_str().unwrap(), "snapshots"])
        .env_remove("ARCA_PASSWORD")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = common::last_json(&String::from_utf8_lossy(&o.stdout));
    let mut t: Vec<String> = v.as_array().unwrap().iter().map(|s| s["time"].as_str().unwrap().to_string()).collect();
    t.sort();
    t
}

#[test]
fn a_dry_run_pasted_into_a_shell_does_what_the_run_does_and_each_repository_keeps_its_own() {
    let e = Env::new();
    let (primary, replica) = (e.path("primary"), e.path("replica"));
    let (pw1, pw2) = (e.path("primary.pw"), e.path("replica.pw"));
    std::fs::write(&pw1, "first secret\n").unwrap();
    std::fs::write(&pw2, "second secret\n").unwrap();
    for (r, pw) in [(&primary, &pw1), (&replica, &pw2)] {
        let o = e
            .cmd(&["-r", r.to_str().unwrap(), "--password-file", pw.to_str().unwrap(), "init"])
            .env_remove("ARCA_PASSWORD")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let log = e.path("hooks.log");
    let config = format!(
        r#"
[repositories.primary]
url = {primary:?}
password_file = {pw1:?}

[repositories.replica]
url = {replica:?}
password_file = {pw2:?}

[jobs.home]
repository = "primary"
paths = [{src:?}]
keep = {{ last = 1 }}
hooks = {{ before = ["echo before $ARCA_JOB >> {log}"], finally = ["echo finally $ARCA_JOB >> {log}"] }}

[[jobs.home.replicas]]
repository = "replica"
keep = {{ last = 2 }}

[jobs.broken]
repository = "primary"
paths = [{src:?}]
hooks = {{ before = ["false"], finally = ["echo finally $ARCA_JOB >> {log}"] }}
"#,
        log = log.display()
    );
    let file = e.path("arca.toml");
    std::fs::write(&file, config).unwrap();
    let f = file.to_str().unwrap();

    let script = e.ok(&["--config", f, "run", "home", "--dry-run"]);
    assert!(!script.contains("secret"), "no password in the plan: {script}");
    let lines: Vec<&str> = script.lines().filter(|l| !l.starts_with('#')).collect();
    let at = |what: &str| lines.iter().position(|l| l.contains(what)).unwrap_or_else(|| panic!("{what}: {script}"));
    assert!(at(" backup ") < at(" copy ") && at(" copy ") < at(" forget "), "copies before any forget: {script}");
    // Three runs by pasting the plan into a shell, with the tree changing in between.
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_arca")).parent().unwrap().to_owned();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    for round in 0..3 {
        std::fs::write(src.join(format!("f{round}")), format!("round {round}")).unwrap();
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env_clear()
            .env("PATH", &path)
            .env("HOME", e.path("home"))
            .env("ARCA_KDF_MEMORY_KIB", "1024")
            .env("ARCA_JOB", "home")
            .output()
            .unwrap();
        assert!(o.status.success(), "round {round}: {}", String::from_utf8_lossy(&o.stderr));
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let (p, r) = (times(&e, &primary, &pw1), times(&e, &replica, &pw2));
    assert_eq!((p.len(), r.len()), (1, 2), "primary keeps 1, the replica 2: {p:?} {r:?}");
    assert_eq!(p.last(), r.last(), "the newest snapshot reached the replica");

    // The run itself does the same.
    std::fs::write(src.join("f3"), "round 3").unwrap();
    let o = e.run(&["--config", f, "--json", "run", "home"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let steps: Vec<serde_json::Value> =
        String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(steps.iter().all(|s| s["exit"] == 0) && steps.len() >= 5, "{steps:?}");
    let (p2, r2) = (times(&e, &primary, &pw1), times(&e, &replica, &pw2));
    assert_eq!((p2.len(), r2.len()), (1, 2));
    assert!(p2[0] > p[0] && r2[0] == r[1], "{p2:?} {r2:?}");

    // A failing before-hook skips the job, the finally hook still runs, the exit code is 1.
    let o = e.run(&["--config", f, "run", "broken"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("job broken: before failed"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(times(&e, &primary, &pw1).len(), 1, "the broken job backed nothing up");
    let hooks = std::fs::read_to_string(&log).unwrap();
    assert_eq!(hooks.matches("before home").count(), 4, "{hooks}");
    assert_eq!(hooks.matches("finally home").count(), 4, "{hooks}");
    assert_eq!(hooks.matches("finally broken").count(), 1, "{hooks}");
}
