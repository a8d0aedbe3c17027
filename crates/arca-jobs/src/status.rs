//! The state of each job, from its run history and from what its repository holds: last
//! success and failure, whether it is late against its schedule, the repository's size and
//! dedup ratio, the last check. `arca status`, the Prometheus textfile and `arca snmp` all
//! show these same values, so the three never disagree.

use crate::calendar::Calendar;
use crate::config::Config;
use crate::history::{History, RepositoryFacts, RunResult};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The state of a job, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Ok,
    Running,
    /// Its last run saved a snapshot but could not read some files.
    Partial,
    /// No success since a scheduled run was due (or the repository's newest snapshot is older).
    Late,
    Never,
    Failed,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Running => "running",
            State::Partial => "partial",
            State::Late => "late",
            State::Never => "never",
            State::Failed => "failed",
        }
    }

    /// The value in ARCA-MIB's `arcaJobStatus`.
    pub fn snmp(self) -> i64 {
        match self {
            State::Ok => 1,
            State::Late => 2,
            State::Failed => 3,
            State::Never => 4,
            State::Running => 5,
            State::Partial => 6,
        }
    }

    pub const ALL: [State; 6] = [State::Ok, State::Running, State::Partial, State::Late, State::Never, State::Failed];
}

/// One job's status.
#[derive(Clone, Debug, Serialize)]
pub struct JobStatus {
    pub job: String,
    pub host: String,
    pub repository: String,
    pub state: State,
    /// Why, in words.
    pub reason: String,
    pub last_success: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_exit: Option<i32>,
    pub last_duration_seconds: Option<f64>,
    /// The newest snapshot of the job in its repository (as last read).
    pub last_snapshot: Option<DateTime<Utc>>,
    pub last_check: Option<DateTime<Utc>>,
    pub last_check_ok: Option<bool>,
    pub schedule: Option<String>,
    pub next_run: Option<DateTime<Utc>>,
    pub runs: usize,
}

/// The whole picture.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub now: DateTime<Utc>,
    pub jobs: Vec<JobStatus>,
    pub repositories: BTreeMap<String, RepositoryFacts>,
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// The status of every job in `config`, from `history` and its stored repository facts.
pub fn status(config: &Config, history: &History, now: DateTime<Utc>, local_host: &str) -> Status {
    let facts = history.facts();
    let grace = config.monitoring.late_after.map(|i| i.0).unwrap_or(std::time::Duration::from_secs(3600));
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::hours(1));
    let mut jobs = vec![];
    for (name, job) in &config.jobs {
        let runs = history.runs(name).unwrap_or_default();
        let when = |r: &crate::history::RunRecord| parse_time(&r.end);
        let last = runs.last();
        let last_success = runs.iter().rev().find(|r| r.result != RunResult::Failed).and_then(when);
        let last_failure = runs.iter().rev().find(|r| r.result == RunResult::Failed).and_then(when);
        let check = runs.iter().rev().find(|r| r.check_ok.is_some());
        let repo_facts = facts.get(job.repository.get_ref());
        let last_snapshot = repo_facts.and_then(|f| f.last_snapshot.get(name)).and_then(|t| parse_time(t));
        let cal = job.schedule.as_ref().and_then(|s| Calendar::parse(s.get_ref()).ok());
        // The newer of the two: a run recorded here, or a snapshot found in the repository
        // (the history may be lost, or kept on another machine).
        let newest = last_success.max(last_snapshot);
        let running = history.running(name);
        let (state, reason) = if running.as_ref().is_some_and(|m| m.alive) {
            (State::Running, format!("running since {}", running.map(|m| m.start).unwrap_or_default()))
        } else if let Some(m) = running {
            (State::Failed, format!("the run started {} was killed or the machine stopped", m.start))
        } else if last.is_some_and(|r| r.result == RunResult::Failed) {
            let r = last.map(|r| r.failed_phase.clone().unwrap_or_default()).unwrap_or_default();
            (State::Failed, format!("the last run failed in {r}"))
        } else if let Some(f) = repo_facts.filter(|f| !f.reachable) {
            (State::Failed, format!("the repository cannot be opened: {}", f.error.clone().unwrap_or_default()))
        } else if newest.is_none() {
            (State::Never, "it has never run".into())
        } else if let Some(due) =
            cal.as_ref().and_then(|c| newest.and_then(|t| c.next_after(t))).filter(|d| *d + grace < now)
        {
            (State::Late, format!("no success since a run was due at {}", due.to_rfc3339()))
        } else if last.is_some_and(|r| r.result == RunResult::Partial) {
            (State::Partial, "the last run could not read some files".into())
        } else {
            (State::Ok, "the last run succeeded".into())
        };
        jobs.push(JobStatus {
            job: name.clone(),
            host: job.host.clone().unwrap_or_else(|| local_host.to_string()),
            repository: job.repository.get_ref().clone(),
            state,
            reason,
            last_success,
            last_failure,
            last_error: runs.iter().rev().find(|r| r.result == RunResult::Failed).and_then(|r| r.error.clone()),
            last_exit: last.map(|r| r.exit),
            last_duration_seconds: last
                .and_then(|r| Some((parse_time(&r.end)? - parse_time(&r.start)?).num_milliseconds() as f64 / 1000.0)),
            last_snapshot,
            last_check: check.and_then(when),
            last_check_ok: check.and_then(|r| r.check_ok),
            schedule: cal.as_ref().map(ToString::to_string),
            next_run: cal.as_ref().and_then(|c| c.next_after(now)),
            runs: runs.len(),
        });
    }
    let repositories = facts.into_iter().filter(|(n, _)| config.repositories.contains_key(n)).collect();
    Status { now, jobs, repositories }
}

impl Status {
    /// The worst state of any job.
    pub fn worst(&self) -> State {
        self.jobs.iter().map(|j| j.state).max().unwrap_or(State::Ok)
    }

    /// The Nagios plugin exit code: 0 OK, 1 WARNING (late, partial), 2 CRITICAL (failed,
    /// never run).
    pub fn nagios_code(&self) -> i32 {
        match self.worst() {
            State::Ok | State::Running => 0,
            State::Partial | State::Late => 1,
            State::Never | State::Failed => 2,
        }
    }

    /// One Nagios plugin line: `ARCA CRITICAL - 1 failed (db) | jobs=3 failed=1 …`.
    pub fn nagios_line(&self) -> String {
        let word = ["OK", "WARNING", "CRITICAL"][self.nagios_code() as usize];
        let mut parts = vec![];
        for s in State::ALL.iter().rev() {
            let names: Vec<&str> = self.jobs.iter().filter(|j| j.state == *s).map(|j| j.job.as_str()).collect();
            if !names.is_empty() {
                parts.push(format!("{} {} ({})", names.len(), s.name(), names.join(", ")));
            }
        }
        if parts.is_empty() {
            parts.push("no jobs".into());
        }
        let perf: Vec<String> = State::ALL
            .iter()
            .map(|s| format!("{}={}", s.name(), self.jobs.iter().filter(|j| j.state == *s).count()))
            .collect();
        format!("ARCA {word} - {} | jobs={} {}", parts.join(", "), self.jobs.len(), perf.join(" "))
    }

    /// A node-exporter textfile (Prometheus text format 0.0.4).
    pub fn prometheus(&self) -> String {
        let mut o = String::new();
        let label = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let mut metric = |name: &str, help: &str, kind: &str, rows: Vec<(String, f64)>| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(o, "{name}{{{labels}}} {v}");
            }
        };
        let jl = |j: &JobStatus| format!("job=\"{}\",host=\"{}\"", label(&j.job), label(&j.host));
        let ts = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_millis() as f64 / 1000.0);
        let rows = |f: &dyn Fn(&JobStatus) -> Option<f64>| -> Vec<(String, f64)> {
            self.jobs.iter().filter_map(|j| f(j).map(|v| (jl(j), v))).collect()
        };
        metric(
            "arca_job_last_success_timestamp_seconds",
            "When the job last succeeded (or its newest snapshot, if newer).",
            "gauge",
            rows(&|j| ts(j.last_success.max(j.last_snapshot))),
        );
        metric(
            "arca_job_last_failure_timestamp_seconds",
            "When the job last failed.",
            "gauge",
            rows(&|j| ts(j.last_failure)),
        );
        metric(
            "arca_job_last_run_duration_seconds",
            "How long the job's last run took.",
            "gauge",
            rows(&|j| j.last_duration_seconds),
        );
        metric(
            "arca_job_last_exit_code",
            "Exit code of the job's last run (0 ok, 3 some files unreadable, 1 failed).",
            "gauge",
            rows(&|j| j.last_exit.map(f64::from)),
        );
        metric(
            "arca_job_failed",
            "1 if the job is failed (its last run failed, was killed, or its repository cannot be opened).",
            "gauge",
            rows(&|j| Some(if j.state == State::Failed { 1.0 } else { 0.0 })),
        );
        let mut state_rows = vec![];
        for j in &self.jobs {
            for s in State::ALL {
                state_rows.push((format!("{},state=\"{}\"", jl(j), s.name()), if j.state == s { 1.0 } else { 0.0 }));
            }
        }
        metric("arca_job_state", "The job's state, one series per state (1 for the current one).", "gauge", state_rows);
        metric(
            "arca_job_last_check_timestamp_seconds",
            "When the job's check last ran.",
            "gauge",
            rows(&|j| ts(j.last_check)),
        );
        metric(
            "arca_job_last_check_success",
            "1 if the job's last check passed.",
            "gauge",
            rows(&|j| j.last_check_ok.map(|ok| if ok { 1.0 } else { 0.0 })),
        );
        let rl = |n: &str| format!("repository=\"{}\"", label(n));
        let repo_rows = |f: &dyn Fn(&RepositoryFacts) -> Option<f64>| -> Vec<(String, f64)> {
            self.repositories.iter().filter_map(|(n, r)| f(r).map(|v| (rl(n), v))).collect()
        };
        metric(
            "arca_repository_up",
            "1 if the repository opened when last read.",
            "gauge",
            repo_rows(&|r| Some(if r.reachable { 1.0 } else { 0.0 })),
        );
        metric(
            "arca_repository_bytes",
            "Bytes stored in the repository's packs.",
            "gauge",
            repo_rows(&|r| r.reachable.then_some(r.bytes as f64)),
        );
        metric(
            "arca_repository_logical_bytes",
            "Bytes of file data its snapshots hold, before deduplication and compression.",
            "gauge",
            repo_rows(&|r| r.reachable.then_some(r.logical_bytes as f64)),
        );
        metric(
            "arca_repository_dedup_ratio",
            "Logical bytes per stored byte (what deduplication and compression save).",
            "gauge",
            repo_rows(&|r| r.dedup_ratio),
        );
        metric(
            "arca_repository_snapshots",
            "Snapshots in the repository.",
            "gauge",
            repo_rows(&|r| r.reachable.then_some(r.snapshots as f64)),
        );
        metric(
            "arca_repository_stale_locks",
            "Locks of sessions that stopped refreshing them.",
            "gauge",
            repo_rows(&|r| r.reachable.then_some(r.stale_locks as f64)),
        );
        metric(
            "arca_repository_free_bytes",
            "Free bytes on the file system of a local repository.",
            "gauge",
            repo_rows(&|r| r.free_bytes.map(|b| b as f64)),
        );
        metric(
            "arca_repository_read_timestamp_seconds",
            "When these repository figures were read.",
            "gauge",
            repo_rows(&|r| ts(parse_time(&r.read_at))),
        );
        o
    }
}

/// The dedup-and-compression ratio of a repository (logical bytes per stored byte).
pub fn dedup_ratio(bytes: u64, logical_bytes: u64) -> Option<f64> {
    (bytes > 0).then(|| logical_bytes as f64 / bytes as f64)
}
