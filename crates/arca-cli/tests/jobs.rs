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

/// An HTTP server on 127.0.0.1 that records each request as "METHOD PATH BODY".
fn recorder() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(s);
            let mut head = String::new();
            r.read_line(&mut head).unwrap_or_default();
            let mut len = 0;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let mut words = head.split_whitespace();
            let (m, p) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            g.lock().unwrap().push(format!("{m} {p} {}", String::from_utf8_lossy(&body)));
            let _ = r.get_mut().write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK");
        }
    });
    (port, got)
}

/// A private snmpd on 127.0.0.1 whose arca subtree is `wrapper` (pass_persist).
struct Snmpd {
    port: u16,
    child: std::process::Child,
}

impl Drop for Snmpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const BASE: &str = ".1.3.6.1.4.1.8072.9999.9999.7";

/// A private snmptrapd on 127.0.0.1 that logs every trap it receives (numeric OIDs).
struct Trapd {
    port: u16,
    log: std::path::PathBuf,
    child: std::process::Child,
}

impl Drop for Trapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Trapd {
    fn start(e: &Env) -> Trapd {
        let conf = e.path("snmptrapd.conf");
        std::fs::write(&conf, "disableAuthorization yes\n").unwrap();
        for attempt in 0..5 {
            let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let log = e.path(&format!("traps{attempt}.log"));
            let child = std::process::Command::new("/usr/sbin/snmptrapd")
                .args(["-f", "-On", "-C", "-c"])
                .arg(&conf)
                .arg("-Lf")
                .arg(&log)
                .arg(format!("udp:127.0.0.1:{port}"))
                .env("MIBS", "")
                .stdin(std::process::Stdio::null())
                .spawn()
                .expect("snmptrapd must be installed (scripts/test installs snmptrapd)");
            let mut t = Trapd { port, log, child };
            // Ready when it says so in its log.
            for _ in 0..100 {
                if std::fs::read_to_string(&t.log).unwrap_or_default().contains("NET-SNMP version") {
                    return t;
                }
                if t.child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        panic!("snmptrapd did not start");
    }
}

impl Snmpd {
    fn start(e: &Env, wrapper: &std::path::Path) -> Snmpd {
        for attempt in 0..5 {
            let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let conf = e.path(&format!("snmpd{attempt}.conf"));
            std::fs::write(&conf, format!("rocommunity public 127.0.0.1\npass_persist {BASE} {}\n", wrapper.display()))
                .unwrap();
            let log = e.path(&format!("snmpd{attempt}.log"));
            let child = std::process::Command::new("/usr/sbin/snmpd")
                .args(["-f", "-C", "-c"])
                .arg(&conf)
                .arg("-Lf")
                .arg(&log)
                .arg(format!("udp:127.0.0.1:{port}"))
                .stdin(std::process::Stdio::null())
                .spawn()
                .expect("snmpd must be installed (scripts/test installs snmpd)");
            let mut s = Snmpd { port, child };
            for _ in 0..100 {
                if s.get(&format!("{BASE}.1.0")).is_some() {
                    return s;
                }
                if s.child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(text.contains("in use") || text.contains("bind"), "snmpd did not start: {text}");
        }
        panic!("snmpd did not start on a free port");
    }

    /// `snmpget` of one OID: "TYPE: VALUE", or None if snmpd did not answer.
    fn get(&self, oid: &str) -> Option<String> {
        let o = std::process::Command::new("snmpget")
            .args(["-v2c", "-c", "public", "-On", "-t", "1", "-r", "0"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg(oid)
            .env("MIBS", "")
            .output()
            .expect("snmpget must be installed (scripts/test installs snmp)");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        if !o.status.success() {
            return None;
        }
        Some(text.split_once(" = ").map(|(_, v)| v.trim().to_string()).unwrap_or(text))
    }
}

#[test]
fn a_failed_job_shows_in_status_prometheus_pings_and_snmp() {
    let parts = ["/usr/sbin/snmpd", "/usr/sbin/snmptrapd", "/usr/bin/snmpget", "/usr/bin/snmptrap"];
    if !common::have("snmpd, snmptrapd and the snmp tools", parts.iter().all(|p| std::path::Path::new(p).exists())) {
        return;
    }
    let e = Env::new();
    let pw = e.path("pw");
    std::fs::write(&pw, "a secret\n").unwrap();
    let o = e.cmd(&["--password-file", pw.to_str().unwrap(), "init"]).env_remove("ARCA_PASSWORD").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let src = e.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), "some data").unwrap();
    let (port, pings) = recorder();
    let (prom, after) = (e.path("arca.prom"), e.path("after.env"));
    let traps = Trapd::start(&e);
    let config = format!(
        r#"
[monitoring]
prometheus = {prom:?}
snmp = {{ trap_host = "127.0.0.1:{trap_port}" }}

[repositories.good]
url = {repo:?}
password_file = {pw:?}

[repositories.gone]
url = {gone:?}
password_file = {pw:?}

[jobs.good]
repository = "good"
paths = [{src:?}]
ping = {{ url = "http://127.0.0.1:{port}/good" }}
hooks = {{ after = ["echo $ARCA_SNAPSHOT_ID $ARCA_FILES_NEW > {after}"] }}

[jobs.broken]
repository = "gone"
paths = [{src:?}]
ping = {{ url = "http://127.0.0.1:{port}/broken" }}

[jobs.slow]
repository = "good"
paths = [{src:?}]
hooks = {{ before = ["sleep 30"], timeout = "1s" }}
"#,
        repo = e.repo,
        gone = e.path("no-such-repository"),
        after = after.display(),
        trap_port = traps.port
    );
    let file = e.path("arca.toml");
    std::fs::write(&file, config).unwrap();
    let f = file.to_str().unwrap();

    let started = std::time::Instant::now();
    let o = e.cmd(&["--config", f, "run", "--all"]).env_remove("ARCA_PASSWORD").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("job slow: before hook timed out after 1s"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(25), "the timeout stopped the hook");

    // The hooks after the backup know the snapshot it saved.
    let env = std::fs::read_to_string(&after).unwrap();
    let (id, new) = env.trim().split_once(' ').unwrap();
    assert_eq!((id.len(), new), (64, "1"), "{env}");

    let o = e.cmd(&["--config", f, "--json", "status"]).env_remove("ARCA_PASSWORD").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "Nagios CRITICAL: {}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let job = |n: &str| v["jobs"].as_array().unwrap().iter().find(|j| j["job"] == n).unwrap().clone();
    assert_eq!(job("broken")["state"], "failed", "{v}");
    assert_eq!(job("slow")["state"], "failed", "{v}");
    assert_eq!(job("good")["state"], "ok", "{v}");
    assert_eq!(v["repositories"]["good"]["snapshots"], 1);
    assert!(v["repositories"]["good"]["dedup_ratio"].as_f64().is_some_and(|r| r > 0.0), "{v}");
    assert!(v["repositories"]["good"]["free_bytes"].as_u64().is_some_and(|b| b > 0), "{v}");
    assert_eq!(v["repositories"]["gone"]["reachable"], false);
    let o = e.run(&["--config", f, "status", "--offline", "--nagios"]);
    assert_eq!(o.status.code(), Some(2));
    let nagios = String::from_utf8_lossy(&o.stdout);
    assert!(nagios.starts_with("ARCA CRITICAL - 2 failed (broken, slow), 1 ok (good) | jobs=3"), "{nagios}");

    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.contains("# TYPE arca_job_failed gauge"), "{text}");
    let line = |m: &str, job: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{m}{{job=\"{job}\"")))
            .unwrap_or_else(|| panic!("{m} {job}: {text}"))
            .to_string()
    };
    assert!(line("arca_job_failed", "broken").ends_with(" 1"), "{text}");
    assert!(line("arca_job_failed", "good").ends_with(" 0"), "{text}");
    assert!(line("arca_job_last_success_timestamp_seconds", "good").contains("} 1"), "{text}");
    let bytes = text.lines().find(|l| l.starts_with("arca_repository_bytes{repository=\"good\"}")).unwrap();
    assert!(bytes.rsplit(' ').next().unwrap().parse::<f64>().unwrap() > 0.0, "{bytes}");

    let got = pings.lock().unwrap().clone();
    assert!(got.iter().any(|p| p.starts_with("POST /good/start ")), "{got:?}");
    assert!(got.iter().any(|p| p.starts_with("POST /good arca job good: ok, snapshot ")), "{got:?}");
    assert!(got.iter().any(|p| p.starts_with("POST /broken/start ")), "{got:?}");
    assert!(got.iter().any(|p| p.starts_with("POST /broken/fail arca job broken: failed")), "{got:?}");
    assert!(!got.iter().any(|p| p.starts_with("POST /broken ")), "no success ping for a failure: {got:?}");

    // A trap for each failed job reached snmptrapd.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let log = loop {
        let log = std::fs::read_to_string(&traps.log).unwrap_or_default();
        if log.matches(&format!("{BASE}.0.1")).count() >= 2 || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(log.contains(&format!("{BASE}.3.1 = STRING: \"broken\"")), "{log}");
    assert!(log.contains(&format!("{BASE}.3.1 = STRING: \"slow\"")), "{log}");
    assert!(!log.contains("STRING: \"good\""), "{log}");

    // snmpd serves the same through `arca snmp`.
    let wrapper = e.path("arca-snmp");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexport ARCA_CONFIG={f} ARCA_STATE_DIR={}\nexec {} snmp\n",
            e.path("state").display(),
            env!("CARGO_BIN_EXE_arca")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let snmpd = Snmpd::start(&e, &wrapper);
    assert_eq!(snmpd.get(&format!("{BASE}.1.0")).as_deref(), Some("INTEGER: 3"));
    // Rows by job name: broken, good, slow.
    assert_eq!(snmpd.get(&format!("{BASE}.2.1.2.1")).as_deref(), Some("STRING: \"broken\""));
    assert_eq!(snmpd.get(&format!("{BASE}.2.1.3.1")).as_deref(), Some("INTEGER: 3"), "broken is failed(3)");
    assert_eq!(snmpd.get(&format!("{BASE}.2.1.3.2")).as_deref(), Some("INTEGER: 1"), "good is ok(1)");
    let bytes = snmpd.get(&format!("{BASE}.2.1.7.2")).unwrap();
    assert!(bytes.starts_with("Counter64: ") && bytes != "Counter64: 0", "{bytes}");
    let walk = std::process::Command::new("snmpwalk")
        .args(["-v2c", "-c", "public", "-On"])
        .arg(format!("127.0.0.1:{}", snmpd.port))
        .arg(BASE)
        .env("MIBS", "")
        .output()
        .unwrap();
    let walk = String::from_utf8_lossy(&walk.stdout);
    assert_eq!(walk.lines().count(), 1 + 8 * 3, "{walk}");
    assert!(walk.contains("the last run failed in backup"), "{walk}");
}

#[test]
fn schedules_become_units_systemd_accepts_cron_lines_and_next_runs_systemd_agrees_with() {
    let e = Env::init();
    let file = e.path("arca.toml");
    let log = e.path("failure.log");
    let good = format!(
        "[repositories.main]\nurl = {:?}\npassword_command = \"echo pw\"\n\n[jobs.home]\nrepository = \"main\"\npaths = [\"/etc\"]\nschedule = \"Mon..Fri 02:00\"\nlimits = {{ nice = 10, ionice = \"idle\" }}\nhooks = {{ on_failure = [\"echo $ARCA_FAILED_PHASE >> {}\"] }}\n",
        e.repo.display().to_string(),
        log.display()
    );
    std::fs::write(&file, &good).unwrap();
    let f = file.to_str().unwrap();
    let units = e.path("units");
    e.ok(&["--config", f, "schedule", "install", "home", "--dir", units.to_str().unwrap()]);
    let service = std::fs::read_to_string(units.join("arca-home.service")).unwrap();
    let timer = std::fs::read_to_string(units.join("arca-home.timer")).unwrap();
    assert!(
        service.contains("run home") && service.contains("Nice=10") && service.contains("IOSchedulingClass=idle"),
        "{service}"
    );
    assert!(service.contains("OnFailure=arca-home-failed.service"), "{service}");
    assert!(timer.contains("OnCalendar=Mon..Fri *-*-* 02:00:00") && timer.contains("Persistent=true"), "{timer}");
    let names = ["arca-home.service", "arca-home.timer", "arca-home-failed.service"];
    let o = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(names.iter().map(|n| units.join(n)))
        .output()
        .expect("systemd-analyze must be installed (scripts/test installs systemd)");
    let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "systemd-analyze verify: {said}");
    assert!(!said.contains("arca-home"), "no complaint about the units: {said}");

    // The next five runs are those systemd computes.
    let v = e.json(&["--config", f, "schedule", "show", "home"]);
    let ours: Vec<String> =
        v[0]["next"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()[..19].replace('T', " ")).collect();
    let o = std::process::Command::new("systemd-analyze")
        .args(["calendar", "--iterations=5", "Mon..Fri 02:00"])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let theirs: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.contains("Next elapse:") || l.contains("Iter. #"))
        .map(|l| l.split_once(": ").unwrap().1.trim()[4..23].to_string())
        .collect();
    assert_eq!(ours, theirs);
    let cron = e.ok(&["--config", f, "schedule", "cron"]);
    assert!(
        cron.contains(&format!("0 2 * * 1,2,3,4,5 {} --config {f} run home", env!("CARGO_BIN_EXE_arca"))),
        "{cron}"
    );
    e.ok(&["--config", f, "schedule", "remove", "home", "--dir", units.to_str().unwrap()]);
    assert!(!units.join("arca-home.timer").exists());

    // A run systemd saw fail (killed: its marker names a process that is gone) is recorded,
    // and its on-failure hooks run, by the OnFailure= unit's command.
    let state = e.path("state/jobs");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("home.running"), r#"{"pid":999999999,"start":"2026-12-01T02:00:00Z"}"#).unwrap();
    e.ok(&["--config", f, "run", "home", "--report-failure"]);
    assert_eq!(std::fs::read_to_string(&log).unwrap().trim(), "killed");
    let o = e.run(&["--config", f, "--json", "status", "--offline"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["jobs"][0]["state"], "failed", "{v}");
    assert!(v["jobs"][0]["last_error"].as_str().unwrap().contains("killed"), "{v}");
    // Reported once: a second call finds the failure recorded.
    e.ok(&["--config", f, "run", "home", "--report-failure"]);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);

    // A bad calendar spec is one error naming file, line and key.
    std::fs::write(&file, good.replace("Mon..Fri 02:00", "Mon..Fry 02:00")).unwrap();
    let o = e.run(&["--config", f, "config", "check"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{f}:8: jobs.home.schedule: bad calendar spec \"Mon..Fry 02:00\"")), "{err}");
}

/// (path, time) of every snapshot in the repository at `url`.
fn snaps(e: &Env, url: &str, pw: &std::path::Path) -> std::collections::BTreeSet<(String, String)> {
    let o = e
        .cmd(&["--json", "-r", url, "--password-file", pw.to_str().unwrap(), "snapshots"])
        .env_remove("ARCA_PASSWORD")
        .env("AWS_ACCESS_KEY_ID", common::weed::KEY)
        .env("AWS_SECRET_ACCESS_KEY", common::weed::SECRET)
        .env("AWS_ENDPOINT_URL", &common::weed::weed().endpoint)
        .output()
        .unwrap();
    assert!(o.status.success(), "{url}: {}", String::from_utf8_lossy(&o.stderr));
    let v = common::last_json(&String::from_utf8_lossy(&o.stdout));
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| (s["paths"][0].as_str().unwrap().to_string(), s["time"].as_str().unwrap()[..10].to_string()))
        .collect()
}

/// Two jobs, a local primary and an s3:// replica with longer retention, run once a day for
/// twelve simulated days; on one day the replica is unreachable. Each repository keeps exactly
/// what its own policy says for each job, and nothing leaves the primary before it is on the
/// replica.
#[test]
fn each_repository_keeps_its_own_retention_and_nothing_leaves_the_primary_unreplicated() {
    if !common::weed::weed_here() {
        return;
    }
    let e = Env::new();
    let pw = e.path("pw");
    std::fs::write(&pw, "a secret\n").unwrap();
    let primary = e.path("primary");
    let replica = format!("s3://jobs/replica-{}", std::process::id());
    let endpoint = common::weed::weed().endpoint.clone();
    for url in [primary.to_str().unwrap(), &replica] {
        let o = e
            .cmd(&["-r", url, "--password-file", pw.to_str().unwrap(), "--s3-endpoint", &endpoint, "init"])
            .env_remove("ARCA_PASSWORD")
            .env("AWS_ACCESS_KEY_ID", common::weed::KEY)
            .env("AWS_SECRET_ACCESS_KEY", common::weed::SECRET)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (docs, etc) = (e.path("docs"), e.path("etc"));
    for d in [&docs, &etc] {
        std::fs::create_dir_all(d).unwrap();
    }
    let config = |endpoint: &str| {
        format!(
            r#"
[repositories.primary]
url = {primary:?}
password_file = {pw:?}

[repositories.offsite]
url = {replica:?}
password_file = {pw:?}
s3_endpoint = {endpoint:?}

[jobs.docs]
repository = "primary"
paths = [{docs:?}]
keep = {{ daily = 2 }}
replicas = [{{ repository = "offsite", keep = {{ daily = 5 }} }}]

[jobs.etc]
repository = "primary"
paths = [{etc:?}]
keep = {{ last = 1 }}
replicas = [{{ repository = "offsite", keep = {{ last = 3 }} }}]
"#
        )
    };
    let file = e.path("arca.toml");
    let f = file.to_str().unwrap();
    let (d, t) = (docs.to_str().unwrap().to_string(), etc.to_str().unwrap().to_string());
    let day = |n: u32| format!("2026-01-{:02}", n + 1);
    let mut ever_on_primary = std::collections::BTreeSet::new();
    let mut p_before = std::collections::BTreeSet::new();
    for n in 0..12 {
        // Day 6: the replica's endpoint is a closed port.
        let down = n == 6;
        let closed = format!(
            "http://127.0.0.1:{}",
            std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
        );
        std::fs::write(&file, config(if down { &closed } else { &endpoint })).unwrap();
        std::fs::write(docs.join("note"), format!("day {n}")).unwrap();
        std::fs::write(etc.join("conf"), format!("setting {n}")).unwrap();
        let o = e
            .cmd(&["--config", f, "run", "--all"])
            .env_remove("ARCA_PASSWORD")
            .env("ARCA_BACKUP_TIME", format!("{}T03:00:00Z", day(n)))
            .env("AWS_ACCESS_KEY_ID", common::weed::KEY)
            .env("AWS_SECRET_ACCESS_KEY", common::weed::SECRET)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(if down { 1 } else { 0 }), "day {n}: {err}");
        let p = snaps(&e, primary.to_str().unwrap(), &pw);
        let r = snaps(&e, &replica, &pw);
        ever_on_primary.extend(p.iter().cloned());
        // What left the primary today is on the replica (whose policy keeps more).
        for gone in p_before.difference(&p) {
            assert!(r.contains(gone), "day {n}: {gone:?} left the primary but is not on the replica: {r:?}");
        }
        if down {
            assert!(err.contains("replicate to offsite failed"), "{err}");
            // Nothing was forgotten on the primary: yesterday's snapshots are all still there.
            assert!(p_before.is_subset(&p), "day {n}: forgot on the primary while the replica was down");
        }
        p_before = p;
    }
    let of = |set: &std::collections::BTreeSet<(String, String)>, path: &str| -> Vec<String> {
        set.iter().filter(|(p, _)| p == path).map(|(_, t)| t.clone()).collect()
    };
    let (p, r) = (snaps(&e, primary.to_str().unwrap(), &pw), snaps(&e, &replica, &pw));
    assert_eq!(of(&p, &d), vec![day(10), day(11)], "primary: docs keeps 2 daily");
    assert_eq!(of(&p, &t), vec![day(11)], "primary: etc keeps the last 1");
    assert_eq!(of(&r, &d), (7..12).map(day).collect::<Vec<_>>(), "replica: docs keeps 5 daily");
    assert_eq!(of(&r, &t), (9..12).map(day).collect::<Vec<_>>(), "replica: etc keeps the last 3");
    // Every day's snapshot of both jobs was on the primary once (the run on day 6 backed up).
    assert_eq!(ever_on_primary.len(), 24);
    let o = e
        .cmd(&["-r", primary.to_str().unwrap(), "--password-file", pw.to_str().unwrap(), "check"])
        .env_remove("ARCA_PASSWORD")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn each_source_is_its_own_snapshot_between_its_own_hooks() {
    let e = Env::init();
    let (files, dumps) = (e.path("files"), e.path("dumps"));
    std::fs::create_dir_all(&files).unwrap();
    std::fs::create_dir_all(&dumps).unwrap();
    std::fs::write(files.join("a"), "a").unwrap();
    let dump = dumps.join("db.sql");
    let config = |second_before: &str| {
        format!(
            r#"
[repositories.main]
url = {repo:?}
password_env = "ARCA_TEST_PW"

[jobs.mixed]
repository = "main"
paths = [{files:?}]
keep = {{ last = 1 }}

[[jobs.mixed.sources]]
paths = [{dumps:?}]
hooks = {{ before = ["{second_before}"], after = ["rm {dump}"] }}
"#,
            repo = e.repo,
            dump = dump.display()
        )
    };
    let file = e.path("arca.toml");
    std::fs::write(&file, config(&format!("echo dumped > {}", dump.display()))).unwrap();
    let f = file.to_str().unwrap();
    let plan = e.ok(&["--config", f, "run", "mixed", "--dry-run"]);
    let lines: Vec<&str> = plan.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 6, "two backups, their hooks, two forgets: {plan}");
    assert!(
        lines[0].contains(" backup ") && lines[1].starts_with("echo dumped") && lines[2].contains(" backup "),
        "{plan}"
    );
    assert!(lines[3].starts_with("rm ") && lines[4].contains(" forget ") && lines[5].contains(" forget "), "{plan}");

    let run = |e: &Env| {
        e.cmd(&["--config", f, "--json", "run", "mixed"]).env("ARCA_TEST_PW", common::PASSWORD).output().unwrap()
    };
    for _ in 0..2 {
        let o = run(&e);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert!(!dump.exists(), "the source's after-hook ran");
    let v = e.json(&["snapshots"]);
    let paths: Vec<&str> = v.as_array().unwrap().iter().map(|s| s["paths"][0].as_str().unwrap()).collect();
    assert_eq!(paths.len(), 2, "each source keeps its own last one: {v}");
    let dumped = e.ok(&["dump", "latest", dump.to_str().unwrap(), "--path", dumps.to_str().unwrap()]);
    assert_eq!(dumped, "dumped\n");

    // A failing source hook fails the job there; the source before it was backed up.
    std::fs::write(&file, config("exit 7")).unwrap();
    let o = run(&e);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("job mixed: before {} failed (exit 7)", dumps.display()))
    );
    assert_eq!(e.json(&["snapshots"]).as_array().unwrap().len(), 3, "the first source's backup ran, no forget did");
}

#[test]
fn a_job_without_a_recent_success_is_late_against_its_schedule() {
    let e = Env::init();
    let file = e.path("arca.toml");
    std::fs::write(
        &file,
        format!(
            "[monitoring]\nlate_after = \"30m\"\n\n[repositories.main]\nurl = {:?}\n\n[jobs.hourly]\nrepository = \"main\"\npaths = [\"/etc\"]\nschedule = \"hourly\"\n\n[jobs.weekly]\nrepository = \"main\"\npaths = [\"/etc\"]\nschedule = \"weekly\"\n",
            e.repo.display().to_string()
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let jobs = e.path("state/jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    // The hourly one last succeeded three hours ago and has missed two runs; the weekly one a
    // minute ago, so it misses none whatever the time (three hours ago made it late on Mondays
    // between 00:30 and 03:00).
    let now = chrono::Utc::now();
    for (job, ago) in [("hourly", now - chrono::Duration::hours(3)), ("weekly", now - chrono::Duration::minutes(1))] {
        let ago = ago.to_rfc3339();
        std::fs::write(
            jobs.join(format!("{job}.jsonl")),
            format!("{{\"job\":\"{job}\",\"start\":\"{ago}\",\"end\":\"{ago}\",\"result\":\"ok\",\"exit\":0,\"steps\":[]}}\n"),
        )
        .unwrap();
    }
    let o = e.run(&["--config", f, "--json", "status", "--offline"]);
    assert_eq!(o.status.code(), Some(1), "Nagios WARNING");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["jobs"][0]["job"], "hourly");
    assert_eq!(v["jobs"][0]["state"], "late", "{v}");
    assert_eq!(v["jobs"][1]["state"], "ok", "{v}");
    let o = e.run(&["--config", f, "status", "--offline", "--nagios"]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("ARCA WARNING - 1 late (hourly), 1 ok (weekly)"));
}
