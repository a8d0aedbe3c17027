//! `arca schedule`: a job's schedule as systemd units or crontab lines, and its next runs.

use crate::cli::{Cli, ScheduleCommand, ScheduleInstallArgs};
use crate::output::Output;
use anyhow::{Context, Result};
use arca_jobs::config::{default_path, is_root, Config};
use arca_jobs::schedule::{calendar, cron_line, units};
use std::path::{Path, PathBuf};

/// The config file (absolute: units and cron lines run from elsewhere) and its contents.
fn load(cli: &Cli) -> Result<(PathBuf, Config)> {
    let file = cli.config.clone().unwrap_or_else(default_path);
    let config = Config::load(&file)?;
    let file = std::fs::canonicalize(&file).with_context(|| format!("cannot resolve {}", file.display()))?;
    Ok((file, config))
}

/// The jobs named, or every job with a schedule.
fn chosen(config: &Config, names: &[String], all: bool) -> Result<Vec<String>> {
    if names.is_empty() || all {
        return Ok(config.jobs.iter().filter(|(_, j)| j.schedule.is_some()).map(|(n, _)| n.clone()).collect());
    }
    for n in names {
        anyhow::ensure!(config.jobs.contains_key(n), "no job {n:?} in the config file");
    }
    Ok(names.to_vec())
}

fn exe() -> Result<PathBuf> {
    std::env::current_exe().context("cannot find the path of this arca binary")
}

pub fn run(cli: &Cli, out: &Output, c: &ScheduleCommand) -> Result<i32> {
    let (file, config) = load(cli)?;
    match c {
        ScheduleCommand::Show { jobs } => {
            let now = chrono::Utc::now();
            let mut docs = vec![];
            for name in chosen(&config, jobs, false)? {
                let cal = calendar(&name, &config.jobs[&name])?;
                let next = cal.next_n(now, 5);
                if out.json {
                    docs.push(serde_json::json!({
                        "job": name, "schedule": config.jobs[&name].schedule.as_ref().map(|s| s.get_ref()),
                        "normalized": cal.to_string(), "next": next.iter().map(|t| t.to_rfc3339()).collect::<Vec<_>>(),
                        "cron": cal.cron().ok(),
                    }));
                    continue;
                }
                out.line(format!("job {name}: {cal}"));
                for t in next {
                    out.line(format!("  {}", t.with_timezone(&chrono::Local).format("%a %Y-%m-%d %H:%M:%S %Z")));
                }
            }
            if out.json {
                out.json_doc(&docs);
            }
        }
        ScheduleCommand::Cron { jobs } => {
            let exe = exe()?;
            for name in chosen(&config, jobs, false)? {
                out.line(format!("# arca job {name}"));
                out.line(cron_line(&name, &config.jobs[&name], &exe, &file)?);
            }
        }
        ScheduleCommand::Install(a) => install(out, &file, &config, a)?,
        ScheduleCommand::Remove(a) => remove(out, &config, a)?,
    }
    Ok(crate::exit::OK)
}

/// Where units go: --dir, else the system's or the user's unit directory.
fn unit_dir(a: &ScheduleInstallArgs) -> PathBuf {
    a.dir.clone().unwrap_or_else(|| {
        if is_root() {
            PathBuf::from("/etc/systemd/system")
        } else {
            arca_jobs::config::xdg_dir("XDG_CONFIG_HOME", ".config").join("systemd/user")
        }
    })
}

/// `systemctl` (with `--user` for a user's units) if systemd runs here.
fn systemctl(out: &Output, args: &[&str]) -> Result<bool> {
    if !Path::new("/run/systemd/system").exists() {
        return Ok(false);
    }
    let mut c = std::process::Command::new("systemctl");
    if !is_root() {
        c.arg("--user");
    }
    let o = c.args(args).output().context("cannot run systemctl")?;
    if !o.status.success() {
        out.warn(format!("systemctl {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim()));
    }
    Ok(o.status.success())
}

fn install(out: &Output, file: &Path, config: &Config, a: &ScheduleInstallArgs) -> Result<()> {
    let dir = unit_dir(a);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let exe = exe()?;
    let mut timers = vec![];
    for name in chosen(config, &a.jobs, a.all)? {
        let u = units(&name, &config.jobs[&name], &exe, file)?;
        for (suffix, text) in [(".service", &u.service), (".timer", &u.timer), ("-failed.service", &u.failed)] {
            let path = dir.join(format!("{}{suffix}", u.stem));
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
            out.info(format!("wrote {}", path.display()));
        }
        timers.push(format!("{}.timer", u.stem));
    }
    if timers.is_empty() {
        out.warn("no job has a schedule (add schedule = \"daily\" to a job)");
        return Ok(());
    }
    let user = if is_root() { "" } else { "--user " };
    if a.no_enable || a.dir.is_some() {
        out.info(format!(
            "to start them: systemctl {user}daemon-reload && systemctl {user}enable --now {}",
            timers.join(" ")
        ));
        return Ok(());
    }
    if !systemctl(out, &["daemon-reload"])? {
        out.warn(format!(
            "systemd is not running here: the units are written but not enabled; without systemd use `arca schedule cron` (then: systemctl {user}enable --now {})",
            timers.join(" ")
        ));
        return Ok(());
    }
    let mut args = vec!["enable", "--now"];
    args.extend(timers.iter().map(String::as_str));
    if systemctl(out, &args)? {
        out.info(format!("enabled {}", timers.join(" ")));
    }
    Ok(())
}

fn remove(out: &Output, config: &Config, a: &ScheduleInstallArgs) -> Result<()> {
    let dir = unit_dir(a);
    let names: Vec<String> = if a.all { config.jobs.keys().cloned().collect() } else { a.jobs.clone() };
    for name in names {
        let stem = format!("arca-{name}");
        if !a.no_enable && a.dir.is_none() {
            systemctl(out, &["disable", "--now", &format!("{stem}.timer")])?;
        }
        for suffix in [".service", ".timer", "-failed.service"] {
            let path = dir.join(format!("{stem}{suffix}"));
            match std::fs::remove_file(&path) {
                Ok(()) => out.info(format!("removed {}", path.display())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
            }
        }
    }
    Ok(())
}
