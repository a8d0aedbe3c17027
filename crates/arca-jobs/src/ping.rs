//! Health pings (healthchecks.io, Uptime Kuma push URLs): a request when a job starts, when
//! it succeeds and when it fails, retried a little, never holding a backup up for long (three
//! attempts of at most `timeout` each), and never failing a job: a ping that cannot be sent
//! is a warning.

use crate::config::Ping;
use std::time::Duration;

/// Which moment of a run a ping reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moment {
    Start,
    Success,
    Failure,
}

/// The URL to request for `moment`, if the job has one.
pub fn url(p: &Ping, moment: Moment) -> Option<String> {
    let explicit = match moment {
        Moment::Start => &p.start,
        Moment::Success => &p.success,
        Moment::Failure => &p.failure,
    };
    if let Some(u) = explicit {
        return Some(u.get_ref().clone());
    }
    let base = p.url.as_ref()?.get_ref().trim_end_matches('/');
    Some(match moment {
        Moment::Start => format!("{base}/start"),
        Moment::Success => base.to_string(),
        Moment::Failure => format!("{base}/fail"),
    })
}

/// Send `body` (a summary of the run, shown by healthchecks.io as the ping's log) to the
/// job's URL for `moment`. Returns the error of the last attempt if all failed.
pub fn send(p: &Ping, moment: Moment, body: &str) -> Result<(), String> {
    let Some(url) = url(p, moment) else { return Ok(()) };
    let timeout = p.timeout.map(|t| t.0).unwrap_or(Duration::from_secs(10));
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("arca/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(500 << attempt));
        }
        match client.post(&url).body(body.to_string()).send() {
            Ok(r) if r.status().is_success() => return Ok(()),
            // A client error will not change on a retry.
            Ok(r) if r.status().is_client_error() => return Err(format!("{url}: {}", r.status())),
            Ok(r) => last = format!("{url}: {}", r.status()),
            Err(e) => last = format!("{url}: {e}"),
        }
    }
    Err(last)
}
