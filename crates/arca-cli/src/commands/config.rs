//! `arca config` (check the config file of repositories and jobs) and `arca run` (run them).

use crate::cli::{Cli, ConfigCommand, RunArgs};
use crate::output::Output;
use anyhow::{Context, Result};
use arca_jobs::config::{default_path, Config};
use arca_jobs::{plan, Phase, Step};

pub fn run(cli: &Cli, out: &Output, c: &ConfigCommand) -> Result<i32> {
    let file = cli.config.clone().unwrap_or_else(default_path);
    match c {
        ConfigCommand::Path => {
            if out.json {
                out.json_doc(&serde_json::json!({"config": file, "exists": file.exists()}));
            } else {
                out.line(file.display().to_string());
            }
        }
        ConfigCommand::Check => {
            let config = Config::load(&file)?;
            if out.json {
                let repositories: Vec<_> = config
                    .repositories
                    .iter()
                    .map(|(name, r)| serde_json::json!({"name": name, "url": r.url}))
                    .collect();
                let jobs: Vec<_> = config
                    .jobs
                    .iter()
                    .map(|(name, j)| {
                        serde_json::json!({
                            "name": name,
                            "repository": j.repository.get_ref(),
                            "paths": j.paths.get_ref(),
                            "replicas": j.replicas.iter().map(|r| r.repository.get_ref()).collect::<Vec<_>>(),
                            "schedule": j.schedule,
                        })
                    })
                    .collect();
                out.json_doc(&serde_json::json!({"config": file, "repositories": repositories, "jobs": jobs}));
            } else {
                out.info(format!(
                    "{}: {}, {}",
                    file.display(),
                    crate::text::count(config.repositories.len() as u64, "repository", "repositories"),
                    crate::text::count(config.jobs.len() as u64, "job", "jobs")
                ));
                for (name, r) in &config.repositories {
                    out.line(format!("repository {name}: {}", r.url));
                }
                for (name, j) in &config.jobs {
                    let replicas: Vec<&str> = j.replicas.iter().map(|r| r.repository.get_ref().as_str()).collect();
                    out.line(format!(
                        "job {name}: {} → {}{}{}",
                        j.paths.get_ref().iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" "),
                        j.repository.get_ref(),
                        if replicas.is_empty() { String::new() } else { format!(", replicas {}", replicas.join(", ")) },
                        j.schedule.as_deref().map(|s| format!(", {s}")).unwrap_or_default()
                    ));
                }
            }
        }
    }
    Ok(crate::exit::OK)
}

/// `arca run`: each job's steps through `sh -c`, stopping at the first failure (a backup
/// that saved a snapshot but skipped files, exit 3, goes on); then the on-failure hooks if
/// one failed, and the finally hooks always. The exit code is the worst: 1, else 3, else 0.
pub fn run_jobs(cli: &Cli, out: &Output, a: &RunArgs) -> Result<i32> {
    let file = cli.config.clone().unwrap_or_else(default_path);
    let config = Config::load(&file)?;
    let names: Vec<String> = if a.all { config.jobs.keys().cloned().collect() } else { a.jobs.clone() };
    let plans = names.iter().map(|n| Ok((n, plan(&config, n)?))).collect::<Result<Vec<_>>>()?;
    if a.dry_run {
        for (name, steps) in &plans {
            if out.json {
                out.json_line(&serde_json::json!({"type": "plan", "job": name, "steps": steps}));
                continue;
            }
            out.line(format!("# job {name}"));
            for s in steps {
                match s.phase {
                    Phase::OnFailure => out.line(format!("# on failure: {}", s.command)),
                    _ => out.line(&s.command),
                }
            }
        }
        return Ok(crate::exit::OK);
    }
    let mut worst = crate::exit::OK;
    for (name, steps) in &plans {
        let code = run_one(out, name, steps)?;
        if code != crate::exit::OK && worst != crate::exit::ERROR {
            worst = code;
        }
    }
    Ok(worst)
}

fn run_one(out: &Output, job: &str, steps: &[Step]) -> Result<i32> {
    let exec = |s: &Step, failed: Option<&str>| -> Result<i32> {
        if !out.json {
            out.info(format!("job {job}: {}: {}", phase_name(&s.phase), s.command));
        }
        let mut c = std::process::Command::new("sh");
        c.arg("-c").arg(&s.command).env("ARCA_JOB", job).env("ARCA_PHASE", phase_name(&s.phase));
        // A step's line names its repository and password itself; what the caller's
        // environment holds for another repository must not take their place.
        // `arca` in a step is this arca, wherever PATH would have found another.
        if let Some(dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(std::path::Path::to_path_buf)) {
            let rest = std::env::var_os("PATH").unwrap_or_default();
            let dirs = std::iter::once(dir).chain(std::env::split_paths(&rest));
            if let Ok(path) = std::env::join_paths(dirs) {
                c.env("PATH", path);
            }
        }
        for v in [
            "ARCA_REPOSITORY",
            "ARCA_PASSWORD",
            "ARCA_PASSWORD_FILE",
            "ARCA_PASSWORD_COMMAND",
            "ARCA_FROM_PASSWORD",
            "ARCA_FROM_PASSWORD_FILE",
        ] {
            c.env_remove(v);
        }
        if let Some(f) = failed {
            c.env("ARCA_FAILED_PHASE", f);
        }
        let status = c.status().with_context(|| format!("job {job}: cannot start sh"))?;
        let code = status.code().unwrap_or(crate::exit::ERROR);
        if out.json {
            out.json_line(
                &serde_json::json!({"type": "step", "job": job, "phase": s.phase, "command": s.command, "exit": code}),
            );
        }
        Ok(code)
    };
    let mut result = crate::exit::OK;
    let mut failed = None;
    for s in steps.iter().filter(|s| !matches!(s.phase, Phase::OnFailure | Phase::Finally)) {
        let code = exec(s, None)?;
        let partial = s.phase == Phase::Backup && code == crate::exit::PARTIAL;
        if partial {
            result = crate::exit::PARTIAL;
        } else if code != 0 {
            out.problem(format!(
                "job {job}: {} failed (exit {code}); the steps after it were not run",
                phase_name(&s.phase)
            ));
            failed = Some(phase_name(&s.phase));
            result = crate::exit::ERROR;
            break;
        }
    }
    if let Some(f) = &failed {
        for s in steps.iter().filter(|s| s.phase == Phase::OnFailure) {
            exec(s, Some(f))?;
        }
    }
    for s in steps.iter().filter(|s| s.phase == Phase::Finally) {
        if exec(s, failed.as_deref())? != 0 {
            result = crate::exit::ERROR;
        }
    }
    Ok(result)
}

fn phase_name(p: &Phase) -> String {
    match p {
        Phase::Before => "before".into(),
        Phase::Backup => "backup".into(),
        Phase::Replicate(r) => format!("replicate to {r}"),
        Phase::Forget(r) => format!("forget on {r}"),
        Phase::Check => "check".into(),
        Phase::After => "after".into(),
        Phase::OnFailure => "on failure".into(),
        Phase::Finally => "finally".into(),
    }
}
