//! `arca snmp`: net-snmp's `pass_persist` on stdin/stdout, answering from the run history and
//! the repository figures the last run or status stored (no repository is opened: snmpd
//! waits for each answer).

use crate::cli::Cli;
use anyhow::{Context, Result};
use arca_jobs::config::{default_path, Config};
use arca_jobs::history::History;
use arca_jobs::snmp::{parse_oid, serve, DEFAULT_BASE};
use std::time::{Duration, Instant};

pub fn run(cli: &Cli) -> Result<i32> {
    let file = cli.config.clone().unwrap_or_else(default_path);
    let config = Config::load(&file)?;
    let base_text =
        config.monitoring.snmp.as_ref().and_then(|s| s.base_oid.clone()).unwrap_or_else(|| DEFAULT_BASE.into());
    let base = parse_oid(&base_text)
        .with_context(|| format!("{}: monitoring.snmp.base_oid {base_text:?} is not an OID", file.display()))?;
    let history = History::new(arca_jobs::history::default_dir());
    let host = arca_repo::keys::Origin::current().hostname;
    // A walk asks for every object in turn: the status is read at most once a second.
    let mut cached: Option<(Instant, arca_jobs::status::Status)> = None;
    let status = move || {
        if let Some((at, s)) = &cached {
            if at.elapsed() < Duration::from_secs(1) {
                return s.clone();
            }
        }
        let s = arca_jobs::status::status(&config, &history, chrono::Utc::now(), &host);
        cached = Some((Instant::now(), s.clone()));
        s
    };
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    serve(&base, stdin, stdout, status).context("pass_persist")?;
    Ok(crate::exit::OK)
}
