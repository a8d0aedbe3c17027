//! Cold backups of PostgreSQL: stop the cluster cleanly, check that it did shut down
//! cleanly (`pg_controldata` says "shut down"; a crashed or still running cluster's files
//! are not trusted), back up its files, start it again (whatever happened in between).

use crate::tool;
use crate::{DbError, DbResult};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const HINT: &str = "install PostgreSQL's server (Debian: postgresql), or give --pg-bin";

/// How to stop and start one cluster.
#[derive(Clone, Debug)]
pub struct Cold {
    /// The data directory.
    pub pgdata: PathBuf,
    /// A shell command that stops it (default: `pg_ctl stop -m fast` as its owner).
    pub stop: Option<String>,
    /// A shell command that starts it (default: `pg_ctl start` with the options it last ran
    /// with, from `postmaster.opts`, as its owner).
    pub start: Option<String>,
    /// PostgreSQL's server programs.
    pub bin: PathBuf,
}

/// What `postmaster.opts` says the server was started with: its arguments after the program.
fn last_options(pgdata: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(pgdata.join("postmaster.opts")).ok()?;
    let mut words = shlex::split(text.trim())?;
    if words.is_empty() {
        return None;
    }
    words.remove(0);
    Some(words)
}

impl Cold {
    /// `pg_ctl` run as the data directory's owner (servers refuse to run as root).
    fn pg_ctl(&self) -> DbResult<Command> {
        let owner =
            std::fs::metadata(&self.pgdata).map_err(|source| DbError::Io { path: self.pgdata.clone(), source })?.uid();
        let program = self.bin.join("pg_ctl");
        if nix::unistd::geteuid().is_root() && owner != 0 {
            let user =
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(owner)).ok().flatten().ok_or_else(|| {
                    DbError::Invalid(format!("{} belongs to uid {owner}, which has no name", self.pgdata.display()))
                })?;
            let mut c = Command::new("runuser");
            c.args(["-u", &user.name, "--"]).arg(program);
            Ok(c)
        } else {
            Ok(Command::new(program))
        }
    }

    fn shell(cmd: &str, what: &str) -> DbResult<()> {
        let mut c = Command::new("sh");
        c.args(["-c", cmd]);
        tool::output(c, what, "the command given").map(drop)
    }

    /// Stop the cluster and check it shut down cleanly; returns how to start it again.
    pub fn stop(&self) -> DbResult<Restart> {
        let options = last_options(&self.pgdata);
        let restart = Restart { cold: self.clone(), options };
        let stopped = match &self.stop {
            Some(cmd) => Self::shell(cmd, "the stop command"),
            None => self.pg_ctl().and_then(|mut c| {
                c.arg("-D").arg(&self.pgdata).args(["-m", "fast", "-w", "-t", "300", "stop"]);
                tool::output(c, "pg_ctl stop", HINT).map(drop)
            }),
        };
        if let Err(e) = stopped {
            // Whatever state it is in, it must be running again afterwards.
            let started = restart.start();
            return Err(DbError::Invalid(format!(
                "stopping PostgreSQL at {} failed ({e}); nothing was backed up{}",
                self.pgdata.display(),
                match started {
                    Ok(()) => ", and it is running".to_string(),
                    Err(e) => format!(", and starting it failed: {e}"),
                }
            )));
        }
        let mut c = Command::new(self.bin.join("pg_controldata"));
        c.arg(&self.pgdata);
        let state = tool::output(c, "pg_controldata", HINT)
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| l.strip_prefix("Database cluster state:").map(|v| v.trim().to_string()))
            })
            .unwrap_or_default();
        if state != "shut down" {
            // Not a copy to trust: start it again (its own recovery runs) and say why.
            let started = restart.start();
            return Err(DbError::Invalid(format!(
                "PostgreSQL at {} did not shut down cleanly (pg_controldata: {:?}): its files are not a usable backup; nothing was backed up{}",
                self.pgdata.display(),
                state,
                match started {
                    Ok(()) => ", and it was started again".to_string(),
                    Err(e) => format!(", and starting it again failed: {e}"),
                }
            )));
        }
        Ok(restart)
    }
}

/// Starts a cluster [`Cold::stop`] stopped.
pub struct Restart {
    cold: Cold,
    options: Option<Vec<String>>,
}

impl Restart {
    /// Start it again.
    pub fn start(&self) -> DbResult<()> {
        match &self.cold.start {
            Some(cmd) => Cold::shell(cmd, "the start command"),
            None => {
                let mut c = self.cold.pg_ctl()?;
                c.arg("-D").arg(&self.cold.pgdata).args(["-w", "-t", "300", "-l"]);
                c.arg(self.cold.pgdata.join("arca-cold-start.log"));
                if let Some(o) = self.options.as_ref().filter(|o| !o.is_empty()) {
                    // Everything it ran with but the data directory, which -D gives.
                    let mut rest = vec![];
                    let mut it = o.iter();
                    while let Some(w) = it.next() {
                        if w == "-D" {
                            it.next();
                        } else {
                            rest.push(w.clone());
                        }
                    }
                    if !rest.is_empty() {
                        c.arg("-o").arg(shlex::try_join(rest.iter().map(String::as_str)).unwrap_or_default());
                    }
                }
                c.arg("start");
                // After a crash the old server's processes may hold on a few seconds.
                let mut tries = 0;
                loop {
                    let mut again = Command::new(c.get_program());
                    again.args(c.get_args());
                    match tool::output(again, "pg_ctl start", HINT) {
                        Ok(_) => return Ok(()),
                        Err(e) if tries >= 15 => return Err(e),
                        Err(_) => {
                            tries += 1;
                            std::thread::sleep(std::time::Duration::from_secs(1));
                        }
                    }
                }
            }
        }
    }
}
