//! `arca status`: each job's state from its run history and its repository; the same values
//! as a Nagios line and a Prometheus textfile. Also what `arca run` does after each job:
//! read its repositories' figures again and rewrite the textfile.

use crate::cli::{Cli, StatusArgs};
use crate::context;
use crate::output::Output;
use anyhow::{Context, Result};
use arca_jobs::config::{default_path, Config, RepositoryConfig};
use arca_jobs::history::{write_atomically, History, RepositoryFacts};
use arca_jobs::status::{dedup_ratio, status, Status};
use arca_repo::snapshots::Filter;
use clap::Parser;
use std::collections::BTreeMap;

fn local_host() -> String {
    arca_repo::keys::Origin::current().hostname
}

pub fn run(cli: &Cli, out: &Output, a: &StatusArgs) -> Result<i32> {
    let file = cli.config.clone().unwrap_or_else(default_path);
    let mut config = Config::load(&file)?;
    if !a.jobs.is_empty() {
        if let Some(n) = a.jobs.iter().find(|n| !config.jobs.contains_key(*n)) {
            anyhow::bail!("no job {n:?} in {}", file.display());
        }
        config.jobs.retain(|n, _| a.jobs.contains(n));
    }
    let history = History::new(arca_jobs::history::default_dir());
    if !a.offline {
        let names: Vec<String> = config.jobs.values().map(|j| j.repository.get_ref().clone()).collect();
        refresh(cli, out, &config, &history, &names);
    }
    let st = status(&config, &history, chrono::Utc::now(), &local_host());
    if let Some(p) = &a.prometheus {
        write_atomically(p, st.prometheus().as_bytes())
            .with_context(|| format!("cannot write the Prometheus file {}", p.display()))?;
    }
    let drills = arca_db::drill::last(&arca_jobs::history::default_dir());
    if a.nagios {
        out.line(st.nagios_line());
    } else if out.json {
        let mut doc = serde_json::to_value(&st)?;
        doc["drills"] = serde_json::to_value(&drills)?;
        out.json_doc(&doc);
    } else {
        show(out, &st);
        for d in &drills {
            out.line(format!(
                "drill    {} {} of snapshot {} ({}): {} {}",
                d.drill.engine,
                d.drill.database,
                &d.snapshot[..8.min(d.snapshot.len())],
                d.time,
                if d.drill.ok { "ok" } else { "FAILED" },
                d.drill.detail
            ));
        }
    }
    Ok(st.nagios_code())
}

fn show(out: &Output, st: &Status) {
    let age = |t: Option<chrono::DateTime<chrono::Utc>>| match t {
        Some(t) => crate::text::age(st.now - t),
        None => "never".into(),
    };
    for j in &st.jobs {
        out.line(format!("{:<8} {}  ({})", j.state.name().to_uppercase(), j.job, j.reason));
        out.line(format!(
            "         last success {}, last failure {}{}",
            age(j.last_success.max(j.last_snapshot)),
            age(j.last_failure),
            j.next_run
                .map(|t| format!(", next run {}", t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M")))
                .unwrap_or_default()
        ));
        if let Some(ok) = j.last_check_ok {
            out.line(format!("         last check {} {}", if ok { "passed" } else { "FAILED" }, age(j.last_check)));
        }
    }
    for (name, r) in &st.repositories {
        if !r.reachable {
            out.line(format!("repository {name}: CANNOT OPEN: {}", r.error.as_deref().unwrap_or("")));
            continue;
        }
        let mut line = format!("repository {name}: {} snapshots, {} stored", r.snapshots, crate::text::size(r.bytes));
        if let Some(ratio) = r.dedup_ratio {
            line.push_str(&format!(", {ratio:.1}x dedup and compression"));
        }
        if let Some(free) = r.free_bytes {
            line.push_str(&format!(", {} free", crate::text::size(free)));
        }
        if r.stale_locks > 0 {
            line.push_str(&format!(
                ", {} (`arca prune` removes them)",
                crate::text::count(r.stale_locks, "stale lock", "stale locks")
            ));
        }
        out.line(line);
    }
}

/// After a run of `job`: read its repositories' figures again and rewrite the Prometheus
/// file. Problems here are warnings: the run itself is over and recorded.
pub fn after_run(cli: &Cli, out: &Output, config: &Config, history: &History, job: &str) {
    if let Some(j) = config.jobs.get(job) {
        let names: Vec<String> = std::iter::once(&j.repository)
            .chain(j.replicas.iter().map(|r| &r.repository))
            .map(|r| r.get_ref().clone())
            .collect();
        refresh(cli, out, config, history, &names);
    }
    if let Some(p) = &config.monitoring.prometheus {
        let st = status(config, history, chrono::Utc::now(), &local_host());
        if let Err(e) = write_atomically(p, st.prometheus().as_bytes()) {
            out.warn(format!("cannot write the Prometheus file {}: {e}", p.display()));
        }
    }
}

/// Read the figures of the named repositories and store them in the history.
fn refresh(cli: &Cli, out: &Output, config: &Config, history: &History, names: &[String]) {
    let mut facts = BTreeMap::new();
    for name in names {
        if facts.contains_key(name) {
            continue;
        }
        let Some(r) = config.repositories.get(name) else { continue };
        let f = read_facts(cli, config, name, r).unwrap_or_else(|e| RepositoryFacts {
            read_at: chrono::Utc::now().to_rfc3339(),
            reachable: false,
            error: Some(format!("{e:#}")),
            ..Default::default()
        });
        facts.insert(name.clone(), f);
    }
    if let Err(e) = history.store_facts(facts) {
        out.warn(e.to_string());
    }
}

/// The password of a configured repository, found as its step lines find it.
fn password(r: &RepositoryConfig) -> Result<Option<String>> {
    let first = |s: &str| s.lines().next().unwrap_or("").to_string();
    if let Some(f) = &r.password_file {
        let s = std::fs::read_to_string(f).with_context(|| format!("cannot read password file {}", f.display()))?;
        return Ok(Some(first(&s)));
    }
    if let Some(c) = &r.password_command {
        let o =
            std::process::Command::new("sh").arg("-c").arg(c).output().context("cannot run the password command")?;
        anyhow::ensure!(o.status.success(), "the password command failed ({})", o.status);
        return Ok(Some(first(&String::from_utf8_lossy(&o.stdout))));
    }
    if let Some(v) = &r.password_env {
        return context::env_password(v)?.map(Some).with_context(|| format!("{v} is not set"));
    }
    Ok(None)
}

/// Open the configured repository `r` read-only and read its figures.
fn read_facts(cli: &Cli, config: &Config, name: &str, r: &RepositoryConfig) -> Result<RepositoryFacts> {
    // The repository's own options, as its step lines give them to `arca`.
    let mut args = vec!["arca".to_string(), "-r".into(), r.url.clone()];
    if let Some(c) = &r.ssh_command {
        args.extend(["--ssh-command".into(), c.clone()]);
    }
    if let Some(e) = &r.s3_endpoint {
        args.extend(["--s3-endpoint".into(), e.clone()]);
    }
    if let Some(d) = &cli.cache_dir {
        args.extend(["--cache-dir".into(), d.display().to_string()]);
    }
    args.push("snapshots".into());
    let sub = Cli::try_parse_from(&args).with_context(|| format!("repository {name}"))?;
    let loc = context::location(&sub)?;
    let storage = context::storage(&loc)?;
    let pw = match password(r)? {
        Some(p) => p,
        None => context::default_key_in_use(&sub, &loc)?
            .with_context(|| format!("repository {name} names no password_file, password_command or password_env"))?,
    };
    let quiet = Output::new(false, true);
    let (repo, _lock) = context::open_with(&sub, &quiet, storage, &pw, context::Session::Metadata)
        .with_context(|| format!("repository {name} ({})", context::shown(&loc)))?;
    let all = super::all_snapshots(&repo, &quiet)?;
    let mut last = BTreeMap::new();
    let host = local_host();
    for (job_name, j) in &config.jobs {
        if j.repository.get_ref() != name && !j.replicas.iter().any(|x| x.repository.get_ref() == name) {
            continue;
        }
        let filters: Vec<Filter> = j
            .all_sources()
            .iter()
            .map(|s| Filter {
                hosts: vec![j.host.clone().unwrap_or_else(|| host.clone())],
                tags: j.tags.clone(),
                paths: s.snapshot_paths().iter().map(|p| p.display().to_string()).collect(),
            })
            .collect();
        if let Some(e) = all.iter().rev().find(|e| filters.iter().any(|f| f.matches(&e.snapshot))) {
            last.insert(job_name.clone(), e.snapshot.time.clone());
        }
    }
    let bytes = repo.index().packs().iter().map(|(_, s)| s).sum();
    let (locks, _) = arca_repo::lock::list(&repo)?;
    let now = arca_repo::lock::now_ns();
    let free_bytes = loc
        .place
        .local_path()
        .and_then(|p| nix::sys::statvfs::statvfs(p).ok())
        .map(|s| s.blocks_available().saturating_mul(s.fragment_size()));
    let logical_bytes = all.iter().map(|e| e.snapshot.summary.total_bytes).sum();
    Ok(RepositoryFacts {
        read_at: chrono::Utc::now().to_rfc3339(),
        reachable: true,
        error: None,
        snapshots: all.len() as u64,
        bytes,
        logical_bytes,
        dedup_ratio: dedup_ratio(bytes, logical_bytes),
        stale_locks: locks.iter().filter(|l| arca_repo::lock::is_stale(l, now)).count() as u64,
        free_bytes,
        last_snapshot: last,
    })
}

/// An SNMP trap for a failed job, if the config asks for them (`snmptrap`, net-snmp's CLI):
/// notification `arcaJobFailed` (BASE.0.1) with the job's name and what failed.
pub fn trap(out: &Output, config: &Config, job: &str, text: &str) {
    let Some(snmp) = &config.monitoring.snmp else { return };
    let Some(host) = &snmp.trap_host else { return };
    let base = snmp.base_oid.as_deref().unwrap_or(arca_jobs::snmp::DEFAULT_BASE);
    let o = std::process::Command::new("snmptrap")
        .args(["-v", "2c", "-c", &snmp.trap_community, host, ""])
        .arg(format!("{base}.0.1"))
        .args([&format!("{base}.3.1"), "s", job, &format!("{base}.3.2"), "s", text])
        // Numeric OIDs only: loading MIB files would only print warnings.
        .env("MIBS", "")
        .stdin(std::process::Stdio::null())
        .output();
    match o {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            out.warn(format!("job {job}: snmptrap to {host} failed: {}", String::from_utf8_lossy(&o.stderr).trim()))
        }
        Err(e) => out.warn(format!("job {job}: cannot run snmptrap (Debian: apt install snmp): {e}")),
    }
}
