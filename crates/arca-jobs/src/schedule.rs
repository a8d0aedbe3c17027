//! A job's schedule as systemd units (`arca-JOB.service`, `arca-JOB.timer`, and
//! `arca-JOB-failed.service` that records a run systemd saw fail, e.g. killed), or as a
//! crontab line where systemd is absent. Both run `arca --config FILE run JOB`, so the
//! schedule adds no second way of running a job.

use crate::calendar::{Calendar, CalendarError};
use crate::config::{IoClass, Job};
use std::path::Path;

/// The unit files of one job.
#[derive(Clone, Debug)]
pub struct Units {
    /// `arca-JOB` (the unit names add `.service`, `.timer`, `-failed.service`).
    pub stem: String,
    pub service: String,
    pub timer: String,
    pub failed: String,
}

/// Why a job cannot be scheduled.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("job {0:?} has no schedule (add schedule = \"daily\" to its table)")]
    NoSchedule(String),
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    #[error("job {job:?}: its schedule cannot be written as a cron line: {reason}")]
    NoCron { job: String, reason: String },
    #[error("job name {0:?} cannot name a unit file (letters, digits, '-', '_', '.' only)")]
    UnitName(String),
}

/// A word for an `ExecStart=` line: systemd splits on spaces, honours double quotes with
/// C escapes, and expands `%` specifiers and `$` variables, so those are escaped.
fn exec_word(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%").replace('$', "$$");
    if escaped.is_empty() || escaped.contains(char::is_whitespace) || escaped != s {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

fn unit_stem(name: &str) -> Result<String, ScheduleError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(ScheduleError::UnitName(name.into()));
    }
    Ok(format!("arca-{name}"))
}

/// The calendar of a job's schedule.
pub fn calendar(name: &str, job: &Job) -> Result<Calendar, ScheduleError> {
    let spec = job.schedule.as_ref().ok_or_else(|| ScheduleError::NoSchedule(name.into()))?;
    Ok(Calendar::parse(spec.get_ref())?)
}

/// The units that run job `name` on its schedule with the arca at `exe` and the config
/// file at `config` (both absolute).
pub fn units(name: &str, job: &Job, exe: &Path, config: &Path) -> Result<Units, ScheduleError> {
    let cal = calendar(name, job)?;
    let stem = unit_stem(name)?;
    let run = |extra: &str| {
        format!(
            "{} --config {} run {}{extra}",
            exec_word(&exe.display().to_string()),
            exec_word(&config.display().to_string()),
            exec_word(name)
        )
    };
    let mut limits = String::new();
    if let Some(n) = &job.limits.nice {
        limits.push_str(&format!("Nice={}\n", n.get_ref()));
    }
    if let Some(c) = job.limits.ionice {
        let class = match c {
            IoClass::Realtime => "realtime",
            IoClass::BestEffort => "best-effort",
            IoClass::Idle => "idle",
        };
        limits.push_str(&format!("IOSchedulingClass={class}\n"));
    }
    let service = format!(
        "# Written by `arca schedule install`; `arca schedule remove {name}` removes it.\n\
         [Unit]\n\
         Description=arca job {name}\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         OnFailure={stem}-failed.service\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={}\n\
         # Exit 3: the snapshot was saved, some files could not be read (`arca status` shows it).\n\
         SuccessExitStatus=3\n\
         {limits}",
        run("")
    );
    let timer = format!(
        "# Written by `arca schedule install`; `arca schedule remove {name}` removes it.\n\
         [Unit]\n\
         Description=Schedule of arca job {name}\n\
         \n\
         [Timer]\n\
         OnCalendar={cal}\n\
         # A run missed while the machine was off happens at the next boot.\n\
         Persistent=true\n\
         Unit={stem}.service\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n"
    );
    let failed = format!(
        "# Written by `arca schedule install`: records a run that systemd saw fail (killed,\n\
         # crashed, timed out) in the job's history, its failure ping and hooks.\n\
         [Unit]\n\
         Description=Report a failed run of arca job {name}\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={}\n",
        run(" --report-failure")
    );
    Ok(Units { stem, service, timer, failed })
}

/// A crontab line (as `crontab -e` takes it) that runs job `name` on its schedule.
pub fn cron_line(name: &str, job: &Job, exe: &Path, config: &Path) -> Result<String, ScheduleError> {
    let cal = calendar(name, job)?;
    let time = cal.cron().map_err(|reason| ScheduleError::NoCron { job: name.into(), reason })?;
    let q = |s: &str| shlex::try_quote(s).map(|c| c.into_owned()).unwrap_or_else(|_| s.to_string());
    // cron treats % as a newline: escape it.
    let cmd =
        format!("{} --config {} run {}", q(&exe.display().to_string()), q(&config.display().to_string()), q(name))
            .replace('%', "\\%");
    Ok(format!("{time} {cmd}"))
}

#[cfg(test)]
mod tests {
    use super::exec_word;

    #[test]
    fn exec_words_survive_systemd_splitting_and_specifiers() {
        assert_eq!(exec_word("/usr/bin/arca"), "/usr/bin/arca");
        assert_eq!(exec_word("/srv/my arca.toml"), "\"/srv/my arca.toml\"");
        assert_eq!(exec_word("100%"), "\"100%%\"");
        assert_eq!(exec_word("$HOME"), "\"$$HOME\"");
    }
}
