//! A job as the `arca` command lines that carry it out, in order: hooks before, the backup of
//! each source (between its own hooks), a copy into every replica, retention on the primary and then on each replica, the check,
//! hooks after. Copies come before any forget, so nothing leaves the primary before it has
//! reached every replica. The lines are what `arca run --dry-run` prints and what `arca run`
//! executes (through `sh -c`, so a pasted copy expands `$VAR` and `$(…)` exactly alike), and
//! they never hold a secret: a password is named by its file, its command or its variable.

use crate::config::{Config, IoClass, Job, Limits, RepositoryConfig, Source};
use arca_repo::check::ReadData;
use arca_repo::retention::Policy;
use arca_repo::units::ByteSize;
use serde::Serialize;

/// What a step does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Before,
    /// A source's hook before its backup (the source named by its first path).
    SourceBefore(String),
    Backup,
    /// A source's hook after its backup succeeded.
    SourceAfter(String),
    /// A copy into the named replica.
    Replicate(String),
    /// Retention (and prune) on the named repository.
    Forget(String),
    Check,
    After,
    /// Run only when a step failed.
    OnFailure,
    /// Run whatever happened.
    Finally,
}

/// The phase in words, as runs report it ("replicate to offsite").
impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Before => write!(f, "before"),
            Phase::SourceBefore(s) => write!(f, "before {s}"),
            Phase::Backup => write!(f, "backup"),
            Phase::SourceAfter(s) => write!(f, "after {s}"),
            Phase::Replicate(r) => write!(f, "replicate to {r}"),
            Phase::Forget(r) => write!(f, "forget on {r}"),
            Phase::Check => write!(f, "check"),
            Phase::After => write!(f, "after"),
            Phase::OnFailure => write!(f, "on failure"),
            Phase::Finally => write!(f, "finally"),
        }
    }
}

/// One command line of a job.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub phase: Phase,
    /// The line for `sh -c`.
    pub command: String,
}

/// Why a job cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("no job {name:?} in the config file (jobs: {known})")]
    NoSuchJob { name: String, known: String },
    #[error("a path of job {job:?} is not valid UTF-8: {path}")]
    NotUtf8 { job: String, path: String },
    #[error("cannot quote {0:?} for the shell")]
    Unquotable(String),
    /// `arca copy` applies one `--ssh-command`/`--s3-endpoint` to both repositories.
    #[error("job {job:?}: repositories {primary:?} and {replica:?} set different {option}, but a copy between them uses one for both; give them the same {option}, or set it only on one")]
    CopyConflict { job: String, primary: String, replica: String, option: &'static str },
}

fn q(s: &str) -> Result<String, PlanError> {
    shlex::try_quote(s).map(|c| c.into_owned()).map_err(|_| PlanError::Unquotable(s.to_string()))
}

/// `arca -r URL` with how the repository is reached and how its password is found; the
/// environment assignments go before `arca`.
fn arca(r: &RepositoryConfig, env: &mut Vec<String>) -> Result<Vec<String>, PlanError> {
    let mut a = vec!["arca".to_string(), "-r".into(), q(&r.url)?];
    if let Some(f) = &r.password_file {
        a.extend(["--password-file".into(), q(&f.display().to_string())?]);
    }
    if let Some(c) = &r.password_command {
        a.extend(["--password-command".into(), q(c)?]);
    }
    if let Some(v) = &r.password_env {
        env.push(format!("ARCA_PASSWORD=\"${{{v}}}\""));
    }
    if let Some(c) = &r.ssh_command {
        a.extend(["--ssh-command".into(), q(c)?]);
    }
    if let Some(e) = &r.s3_endpoint {
        a.extend(["--s3-endpoint".into(), q(e)?]);
    }
    // The command line takes KiB per second.
    if let Some(b) = r.limit_upload {
        a.extend(["--limit-upload".into(), b.0.div_ceil(1024).to_string()]);
    }
    if let Some(b) = r.limit_download {
        a.extend(["--limit-download".into(), b.0.div_ceil(1024).to_string()]);
    }
    Ok(a)
}

/// `--host/--tag/--path`: the snapshots of one source of the job, for copy and forget.
fn filter(job_name: &str, job: &Job, source: &Source) -> Result<Vec<String>, PlanError> {
    let mut a = vec![];
    if let Some(h) = &job.host {
        a.extend(["--host".into(), q(h)?]);
    }
    for t in &job.tags {
        a.extend(["--tag".into(), q(t)?]);
    }
    for p in paths(job_name, source)? {
        a.extend(["--path".into(), p]);
    }
    Ok(a)
}

fn paths(job_name: &str, source: &Source) -> Result<Vec<String>, PlanError> {
    source
        .snapshot_paths()
        .iter()
        .map(|p| {
            p.to_str()
                .ok_or_else(|| PlanError::NotUtf8 { job: job_name.into(), path: p.display().to_string() })
                .and_then(q)
        })
        .collect()
}

/// The options of a database source's `arca db backup`.
fn database_flags(s: &Source) -> Result<Vec<String>, PlanError> {
    let mut a = vec![];
    for d in &s.databases {
        a.extend(["--database".into(), q(d)?]);
    }
    for (flag, v) in [
        ("--db-host", s.db_host.clone()),
        ("--db-user", s.db_user.clone()),
        ("--db-port", s.db_port.map(|p| p.to_string())),
    ] {
        if let Some(v) = v {
            a.extend([flag.to_string(), q(&v)?]);
        }
    }
    for (flag, v) in [("--db-socket", &s.db_socket), ("--pg-bin", &s.pg_bin), ("--cold", &s.cold)] {
        if let Some(v) = v {
            let text =
                v.to_str().ok_or_else(|| PlanError::NotUtf8 { job: flag.into(), path: v.display().to_string() })?;
            a.extend([flag.to_string(), q(text)?]);
        }
    }
    for (flag, v) in [("--stop", &s.stop), ("--start", &s.start)] {
        if let Some(v) = v {
            a.extend([flag.to_string(), q(v)?]);
        }
    }
    Ok(a)
}

fn keep_flags(p: &Policy) -> Result<Vec<String>, PlanError> {
    let mut a = vec![];
    for (flag, n) in [
        ("--keep-last", p.last),
        ("--keep-hourly", p.hourly),
        ("--keep-daily", p.daily),
        ("--keep-weekly", p.weekly),
        ("--keep-monthly", p.monthly),
        ("--keep-yearly", p.yearly),
    ] {
        if n > 0 {
            a.extend([flag.to_string(), n.to_string()]);
        }
    }
    if let Some(w) = &p.within {
        a.extend(["--keep-within".into(), q(&w.to_string())?]);
    }
    for t in &p.tags {
        a.extend(["--keep-tag".into(), q(t)?]);
    }
    Ok(a)
}

/// `r` with the job's bandwidth limits, where they are lower than its own.
fn limited(r: &RepositoryConfig, l: &Limits) -> RepositoryConfig {
    let lower = |a: Option<ByteSize>, b: Option<ByteSize>| match (a, b) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    };
    let mut r = r.clone();
    r.limit_upload = lower(r.limit_upload, l.limit_upload);
    r.limit_download = lower(r.limit_download, l.limit_download);
    r
}

fn line(env: Vec<String>, words: Vec<String>) -> String {
    env.into_iter().chain(words).collect::<Vec<_>>().join(" ")
}

/// The steps of job `name`, in order.
pub fn plan(config: &Config, name: &str) -> Result<Vec<Step>, PlanError> {
    let Some(job) = config.jobs.get(name) else {
        let known: Vec<&str> = config.jobs.keys().map(String::as_str).collect();
        return Err(PlanError::NoSuchJob { name: name.into(), known: known.join(", ") });
    };
    // Config::parse has checked that every repository a job names is defined.
    // The job's bandwidth limits apply to every repository it touches (the lower one wins).
    let repo = |n: &str| config.repositories.get(n).map(|r| limited(r, &job.limits));
    let mut steps = vec![];
    let hook = |phase: Phase, cmds: &[String], steps: &mut Vec<Step>| {
        steps.extend(cmds.iter().map(|c| Step { phase: phase.clone(), command: c.clone() }));
    };
    hook(Phase::Before, &job.hooks.before, &mut steps);

    let Some(primary) = repo(job.repository.get_ref()) else { return Ok(steps) };
    let sources = job.all_sources();
    for source in &sources {
        let label = source.snapshot_paths().first().map(|p| p.display().to_string()).unwrap_or_default();
        hook(Phase::SourceBefore(label.clone()), &source.hooks.before, &mut steps);
        let mut env = vec![];
        let mut words = vec![];
        if let Some(n) = &job.limits.nice {
            words.extend(["nice".to_string(), "-n".into(), n.get_ref().to_string()]);
        }
        if let Some(c) = job.limits.ionice {
            let class = match c {
                IoClass::Realtime => "1",
                IoClass::BestEffort => "2",
                IoClass::Idle => "3",
            };
            words.extend(["ionice".to_string(), "-c".into(), class.into()]);
        }
        words.extend(arca(&primary, &mut env)?);
        match &source.database {
            Some(engine) => words.extend(["db".into(), "backup".into(), q(engine.get_ref())?]),
            None if source.system => words.extend(["backup".into(), "--system".into()]),
            None => words.push("backup".into()),
        }
        if let Some(h) = &job.host {
            words.extend(["--host".into(), q(h)?]);
        }
        for t in &job.tags {
            words.extend(["--tag".into(), q(t)?]);
        }
        if source.database.is_some() {
            words.extend(database_flags(source)?);
        } else if source.system {
            if let Some(c) = job.compression {
                words.extend(["--compression".into(), c.to_string()]);
            }
        } else {
            for e in job.exclude.iter().chain(&source.exclude) {
                words.extend(["--exclude".into(), q(e)?]);
            }
            if let Some(c) = job.compression {
                words.extend(["--compression".into(), c.to_string()]);
            }
            if let Some(l) = &job.live_databases {
                words.extend(["--live-databases".into(), q(l.get_ref())?]);
            }
            if let Some(f) = &job.fs_snapshot {
                words.extend(["--fs-snapshot".into(), "--fs-snapshot-method".into(), q(f.get_ref())?]);
            }
        }
        words.extend(
            paths(name, source)?
                .into_iter()
                .filter(|_| !source.system && source.database.as_ref().is_none_or(|d| d.get_ref() == "sqlite")),
        );
        steps.push(Step { phase: Phase::Backup, command: line(env, words) });
        hook(Phase::SourceAfter(label), &source.hooks.after, &mut steps);
    }

    for source in &sources {
        let only_this = filter(name, job, source)?;
        for r in &job.replicas {
            let Some(replica) = repo(r.repository.get_ref()) else { continue };
            // The copy runs with the replica's options; the source's travel along where the
            // replica has none, as one --ssh-command/--s3-endpoint serves both ends.
            let mut replica = replica.clone();
            for (option, src, dst) in [
                ("ssh_command", &primary.ssh_command, &mut replica.ssh_command),
                ("s3_endpoint", &primary.s3_endpoint, &mut replica.s3_endpoint),
            ] {
                match (src, &*dst) {
                    (Some(a), Some(b)) if a != b => {
                        return Err(PlanError::CopyConflict {
                            job: name.into(),
                            primary: job.repository.get_ref().clone(),
                            replica: r.repository.get_ref().clone(),
                            option,
                        })
                    }
                    (Some(a), None) => *dst = Some(a.clone()),
                    _ => {}
                }
            }
            let mut env = vec![];
            let mut words = arca(&replica, &mut env)?;
            words.extend(["copy".into(), "--from-repo".into(), q(&primary.url)?]);
            // The source's password travels as copy expects it.
            if let Some(f) = &primary.password_file {
                words.extend(["--from-password-file".into(), q(&f.display().to_string())?]);
            } else if let Some(c) = &primary.password_command {
                env.push(format!("ARCA_FROM_PASSWORD=\"$({c})\""));
            } else if let Some(v) = &primary.password_env {
                env.push(format!("ARCA_FROM_PASSWORD=\"${{{v}}}\""));
            }
            words.extend(only_this.iter().cloned());
            steps.push(Step { phase: Phase::Replicate(r.repository.get_ref().clone()), command: line(env, words) });
        }
    }

    let mut forget =
        |repo_name: &str, cfg: &RepositoryConfig, keep: &Policy, only_this: &[String]| -> Result<(), PlanError> {
            let mut env = vec![];
            let mut words = arca(cfg, &mut env)?;
            words.push("forget".into());
            words.extend(keep_flags(keep)?);
            if job.prune.unwrap_or(true) {
                words.push("--prune".into());
            }
            words.extend(only_this.iter().cloned());
            steps.push(Step { phase: Phase::Forget(repo_name.into()), command: line(env, words) });
            Ok(())
        };
    for source in &sources {
        let only_this = filter(name, job, source)?;
        if let Some(keep) = job.keep.as_ref().filter(|k| !k.is_empty()) {
            forget(job.repository.get_ref(), &primary, keep, &only_this)?;
        }
        for r in &job.replicas {
            if let (Some(cfg), Some(keep)) = (repo(r.repository.get_ref()), r.keep.as_ref().filter(|k| !k.is_empty())) {
                forget(r.repository.get_ref(), &cfg, keep, &only_this)?;
            }
        }
    }

    if let Some(check) = &job.check {
        let mut env = vec![];
        let mut words = arca(&primary, &mut env)?;
        words.push("check".into());
        match check.read_data {
            ReadData::None => {}
            ReadData::All => words.push("--read-data".into()),
            other => words.extend(["--read-data-subset".into(), q(&other.to_string())?]),
        }
        steps.push(Step { phase: Phase::Check, command: line(env, words) });
    }
    hook(Phase::After, &job.hooks.after, &mut steps);
    hook(Phase::OnFailure, &job.hooks.on_failure, &mut steps);
    hook(Phase::Finally, &job.hooks.finally, &mut steps);
    Ok(steps)
}
