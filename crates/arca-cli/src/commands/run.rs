//! `arca run`: each job's steps (arca-jobs' plan) through `sh -c`, with the run recorded in
//! the history, health pings at start and end, hooks with timeouts, the check skipped when
//! it ran recently enough, and the Prometheus textfile and repository figures brought up to
//! date afterwards.

use crate::cli::{Cli, RunArgs};
use crate::output::Output;
use anyhow::{Context, Result};
use arca_jobs::config::{default_path, Config, Job};
use arca_jobs::history::{History, RunRecord, RunResult, StepRecord};
use arca_jobs::ping::{self, Moment};
use arca_jobs::{plan, Phase, Step};
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

pub fn run(cli: &Cli, out: &Output, a: &RunArgs) -> Result<i32> {
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
                    Phase::Check => {
                        if let Some(every) = config.jobs[*name].check.as_ref().and_then(|c| c.every) {
                            out.line(format!("# the check runs when the last one is older than {every}"));
                        }
                        out.line(&s.command);
                    }
                    _ => out.line(&s.command),
                }
            }
        }
        return Ok(crate::exit::OK);
    }
    let history = History::new(arca_jobs::history::default_dir());
    let mut worst = crate::exit::OK;
    for (name, steps) in &plans {
        let job = &config.jobs[*name];
        let code = if a.report_failure {
            report_failure(out, &config, &history, name, job, steps)?
        } else {
            Runner { out, config: &config, history: &history, job_name: name, job }.run(steps)?
        };
        if code != crate::exit::OK && worst != crate::exit::ERROR {
            worst = code;
        }
        super::status::after_run(cli, out, &config, &history, name);
    }
    Ok(worst)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The environment a step's `sh` gets besides arca's own.
#[derive(Default)]
struct HookEnv {
    vars: BTreeMap<&'static str, String>,
}

struct Runner<'a> {
    out: &'a Output,
    config: &'a Config,
    history: &'a History,
    job_name: &'a str,
    job: &'a Job,
}

/// How one step ended.
struct Ended {
    exit: i32,
    error: Option<String>,
}

impl Runner<'_> {
    fn run(&self, steps: &[Step]) -> Result<i32> {
        let job = self.job_name;
        // A run that was killed left its marker: it is recorded as the failure it was.
        if let Some(m) = self.history.running(job) {
            if m.alive {
                anyhow::bail!("job {job} is already running (process {}, since {})", m.pid, m.start);
            }
            self.out
                .warn(format!("job {job}: the run started {} did not finish (killed?); recorded as failed", m.start));
            self.record_killed(&m.start)?;
        }
        let start = now();
        let _running = self.history.start(job, &start)?;
        self.ping(Moment::Start, &format!("arca job {job} started"));
        let mut ctx = HookEnv::default();
        let mut records = vec![];
        let mut result = RunResult::Ok;
        let mut failed: Option<(String, String)> = None;
        let mut snapshot = None;
        let mut check_ok = None;
        for s in steps.iter().filter(|s| !matches!(s.phase, Phase::OnFailure | Phase::Finally)) {
            if s.phase == Phase::Check && self.check_is_recent()? {
                continue;
            }
            let report = (s.phase == Phase::Backup).then(tempfile::NamedTempFile::new).transpose()?;
            let ended = self.exec(s, &ctx, report.as_ref().map(|r| r.path()), &mut records)?;
            if let Some(r) = &report {
                if let Some(summary) = std::fs::read(r.path()).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
                    snapshot = backup_context(&summary, &mut ctx);
                }
            }
            if s.phase == Phase::Check {
                check_ok = Some(ended.exit == 0);
            }
            if s.phase == Phase::Backup && ended.exit == crate::exit::PARTIAL {
                result = RunResult::Partial;
            } else if ended.exit != 0 {
                let phase = s.phase.to_string();
                let why = ended.error.unwrap_or_else(|| format!("{phase} failed (exit {})", ended.exit));
                self.out.problem(format!("job {job}: {why}; the steps after it were not run"));
                failed = Some((phase, why));
                result = RunResult::Failed;
                break;
            }
        }
        if let Some((phase, why)) = &failed {
            ctx.vars.insert("ARCA_FAILED_PHASE", phase.clone());
            ctx.vars.insert("ARCA_ERROR", why.clone());
            for s in steps.iter().filter(|s| s.phase == Phase::OnFailure) {
                self.exec(s, &ctx, None, &mut records)?;
            }
        }
        ctx.vars.insert("ARCA_RESULT", result.name().into());
        for s in steps.iter().filter(|s| s.phase == Phase::Finally) {
            let ended = self.exec(s, &ctx, None, &mut records)?;
            if ended.exit != 0 && failed.is_none() {
                let why = ended.error.unwrap_or_else(|| format!("a finally hook failed (exit {})", ended.exit));
                self.out.problem(format!("job {job}: {why}"));
                failed = Some(("finally".into(), why));
                result = RunResult::Failed;
            }
        }
        let exit = match result {
            RunResult::Ok => crate::exit::OK,
            RunResult::Partial => crate::exit::PARTIAL,
            RunResult::Failed => crate::exit::ERROR,
        };
        let record = RunRecord {
            job: job.into(),
            start,
            end: now(),
            result,
            exit,
            failed_phase: failed.as_ref().map(|f| f.0.clone()),
            error: failed.as_ref().map(|f| f.1.clone()),
            snapshot,
            check_ok,
            steps: records,
        };
        self.history.append(&record)?;
        self.announce(&record);
        Ok(exit)
    }

    /// Whether the job's check passed within its `every`, so this run leaves it out.
    fn check_is_recent(&self) -> Result<bool> {
        let Some(every) = self.job.check.as_ref().and_then(|c| c.every) else { return Ok(false) };
        let runs = self.history.runs(self.job_name)?;
        let last = runs.iter().rev().find(|r| r.check_ok == Some(true));
        let recent = last
            .and_then(|r| chrono::DateTime::parse_from_rfc3339(&r.end).ok())
            .is_some_and(|t| chrono::Utc::now().signed_duration_since(t).to_std().is_ok_and(|age| age < every.0));
        if recent {
            self.out.info(format!("job {}: check: skipped (it passed less than {every} ago)", self.job_name));
        }
        Ok(recent)
    }

    /// Ping and trap for a finished run.
    fn announce(&self, r: &RunRecord) {
        let text = format!(
            "arca job {}: {}{}{}",
            r.job,
            r.result.name(),
            r.snapshot.as_deref().map(|s| format!(", snapshot {s}")).unwrap_or_default(),
            r.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        );
        let moment = if r.result == RunResult::Failed { Moment::Failure } else { Moment::Success };
        self.ping(moment, &text);
        if r.result == RunResult::Failed {
            super::status::trap(self.out, self.config, self.job_name, &text);
        }
    }

    fn ping(&self, moment: Moment, body: &str) {
        if let Err(e) = ping::send(&self.job.ping, moment, body) {
            self.out.warn(format!("job {}: health ping failed: {e}", self.job_name));
        }
    }

    fn record_killed(&self, start: &str) -> Result<()> {
        let r = RunRecord {
            job: self.job_name.into(),
            start: start.into(),
            end: now(),
            result: RunResult::Failed,
            exit: crate::exit::ERROR,
            failed_phase: Some("killed".into()),
            error: Some("the run stopped without finishing (killed, crashed, or the machine went down)".into()),
            snapshot: None,
            check_ok: None,
            steps: vec![],
        };
        self.history.append(&r)?;
        self.history.clear_dead_marker(self.job_name);
        Ok(())
    }

    /// Run one step; hooks are stopped after the job's hook timeout.
    fn exec(
        &self,
        s: &Step,
        ctx: &HookEnv,
        report: Option<&std::path::Path>,
        records: &mut Vec<StepRecord>,
    ) -> Result<Ended> {
        let job = self.job_name;
        let phase = s.phase.to_string();
        if !self.out.json {
            self.out.info(format!("job {job}: {phase}: {}", s.command));
        }
        let mut c = std::process::Command::new("sh");
        c.arg("-c").arg(&s.command).env("ARCA_JOB", job).env("ARCA_PHASE", &phase);
        c.envs(&ctx.vars);
        // `arca` in a step is this arca, wherever PATH would have found another.
        if let Some(dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(std::path::Path::to_path_buf)) {
            let rest = std::env::var_os("PATH").unwrap_or_default();
            let dirs = std::iter::once(dir).chain(std::env::split_paths(&rest));
            if let Ok(path) = std::env::join_paths(dirs) {
                c.env("PATH", path);
            }
        }
        // A step's line names its repository and password itself; what the caller's
        // environment holds for another repository must not take their place.
        for v in [
            "ARCA_REPOSITORY",
            "ARCA_PASSWORD",
            "ARCA_PASSWORD_FILE",
            "ARCA_PASSWORD_COMMAND",
            "ARCA_FROM_PASSWORD",
            "ARCA_FROM_PASSWORD_FILE",
            "ARCA_REPORT_FILE",
        ] {
            c.env_remove(v);
        }
        if let Some(r) = report {
            c.env("ARCA_REPORT_FILE", r);
        }
        let is_hook = matches!(
            s.phase,
            Phase::Before
                | Phase::SourceBefore(_)
                | Phase::SourceAfter(_)
                | Phase::After
                | Phase::OnFailure
                | Phase::Finally
        );
        let timeout = self.job.hooks.timeout.filter(|_| is_hook).map(|t| t.0);
        if timeout.is_some() {
            // Its own process group, so a timeout stops what the hook started too.
            c.process_group(0);
        }
        let started = Instant::now();
        let mut child = c.spawn().with_context(|| format!("job {job}: cannot start sh"))?;
        let mut error = None;
        let status = match timeout {
            None => child.wait()?,
            Some(limit) => loop {
                if let Some(st) = child.try_wait()? {
                    break st;
                }
                if started.elapsed() >= limit {
                    error = Some(format!("{phase} hook timed out after {}", arca_repo::units::Interval(limit)));
                    stop_group(&mut child)?;
                    break child.wait()?;
                }
                std::thread::sleep(Duration::from_millis(20));
            },
        };
        let exit = if error.is_some() { crate::exit::ERROR } else { status.code().unwrap_or(crate::exit::ERROR) };
        if self.out.json {
            self.out.json_line(
                &serde_json::json!({"type": "step", "job": job, "phase": s.phase, "command": s.command, "exit": exit, "error": error}),
            );
        }
        records.push(StepRecord {
            phase,
            command: s.command.clone(),
            exit,
            seconds: started.elapsed().as_secs_f64(),
            error: error.clone(),
        });
        Ok(Ended { exit, error })
    }
}

/// SIGTERM to the child's process group, then SIGKILL if it is still there after 5 s.
fn stop_group(child: &mut std::process::Child) -> Result<()> {
    let group = -(child.id() as i32);
    // SAFETY: kill has no memory preconditions; a negative pid names the process group.
    unsafe { libc::kill(group, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above.
    unsafe { libc::kill(group, libc::SIGKILL) };
    Ok(())
}

/// The backup's summary (ARCA_REPORT_FILE) as variables for the hooks after it; returns the
/// snapshot id.
fn backup_context(summary: &serde_json::Value, ctx: &mut HookEnv) -> Option<String> {
    let m = &summary["summary"];
    for (var, key) in [
        ("ARCA_FILES_NEW", "files_new"),
        ("ARCA_FILES_CHANGED", "files_changed"),
        ("ARCA_FILES_UNCHANGED", "files_unchanged"),
        ("ARCA_BYTES_ADDED", "bytes_added"),
        ("ARCA_TOTAL_BYTES", "total_bytes"),
    ] {
        if let Some(v) = m[key].as_u64() {
            ctx.vars.insert(var, v.to_string());
        }
    }
    if let Some(w) = summary["warnings"].as_array() {
        ctx.vars.insert("ARCA_WARNINGS", w.len().to_string());
    }
    let id = summary["snapshot_id"].as_str()?.to_string();
    ctx.vars.insert("ARCA_SNAPSHOT_ID", id.clone());
    Some(id)
}

/// `run --report-failure`: systemd saw the run fail. If arca recorded the failure itself,
/// it was announced already; otherwise (killed, crashed) record and announce it now.
fn report_failure(
    out: &Output,
    config: &Config,
    history: &History,
    name: &str,
    job: &Job,
    steps: &[Step],
) -> Result<i32> {
    let runner = Runner { out, config, history, job_name: name, job };
    let already =
        history.runs(name)?.last().is_some_and(|r| r.result == RunResult::Failed) && history.running(name).is_none();
    if already {
        out.info(format!("job {name}: its failure was recorded and announced by the run itself"));
        return Ok(crate::exit::OK);
    }
    let start = history.running(name).map(|m| m.start).unwrap_or_else(now);
    runner.record_killed(&start)?;
    let mut ctx = HookEnv::default();
    ctx.vars.insert("ARCA_FAILED_PHASE", "killed".into());
    ctx.vars.insert("ARCA_ERROR", "the run stopped without finishing".into());
    let mut records = vec![];
    for s in steps.iter().filter(|s| s.phase == Phase::OnFailure) {
        runner.exec(s, &ctx, None, &mut records)?;
    }
    if let Some(r) = history.runs(name)?.last() {
        runner.announce(r);
    }
    Ok(crate::exit::OK)
}
