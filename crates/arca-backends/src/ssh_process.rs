//! What the two ssh-based backends (`ssh://`, `sftp://`) share: the retry schedule, how a lost
//! connection is reported, and how the ssh child's stderr reaches ours.

use arca_storage::StorageError;
use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

/// Attempts per operation before the error is final.
pub const ATTEMPTS: u32 = 4;

/// Wait before retry number `attempt` (1, 2, 3): 100 ms, 400 ms, 1.6 s, plus up to half as
/// much random jitter so many clients do not retry in step.
pub fn backoff(attempt: u32) {
    let base = 100u64 << (2 * attempt.saturating_sub(1).min(8));
    let jitter = rand::random::<u64>() % (base / 2 + 1);
    std::thread::sleep(Duration::from_millis(base + jitter));
}

/// A connection failure on `location` while `doing` something.
pub fn lost(location: &str, doing: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Transient {
        path: location.to_string(),
        source: std::io::Error::other(format!("connection to {location} lost {doing}: {e}")),
    }
}

/// The final error after all retries.
pub fn gave_up(location: &str, doing: &str, last: &str) -> StorageError {
    StorageError::Transient {
        path: location.to_string(),
        source: std::io::Error::other(format!(
            "connection to {location} lost after {} retries while {doing}: {last}",
            ATTEMPTS - 1
        )),
    }
}

/// The ssh command ready to spawn, all three streams piped (stderr goes through
/// [`forward_stderr`]).
pub fn command(command: &[String]) -> Result<std::process::Command, StorageError> {
    let (prog, args) = command.split_first().ok_or_else(|| StorageError::Refused("empty ssh command".into()))?;
    let mut c = std::process::Command::new(prog);
    c.args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    Ok(c)
}

/// Starting the ssh command failed (not installed, not executable).
pub fn spawn_failed(location: &str, command: &[String], e: std::io::Error) -> StorageError {
    let prog = command.first().map(String::as_str).unwrap_or("ssh");
    StorageError::Io {
        path: location.to_string(),
        source: std::io::Error::new(e.kind(), format!("cannot run {prog}: {e}")),
    }
}

/// The last lines ssh wrote to its stderr, kept to tell a lasting failure from a dropped
/// connection.
pub type StderrTail = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Pass the ssh child's stderr on, line by line, keeping the last few. Never let ssh inherit
/// our stderr: it makes its stderr non-blocking, and then our own writes to the shared
/// descriptor can fail.
pub fn forward_stderr(err: impl Read + Send + 'static) -> StderrTail {
    let tail: StderrTail = Default::default();
    let keep = tail.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = writeln!(std::io::stderr(), "ssh: {line}");
            let mut t = keep.lock().unwrap_or_else(|p| p.into_inner());
            if t.len() >= 16 {
                t.remove(0);
            }
            t.push(line);
        }
    });
    tail
}

/// If what ssh said means that trying again cannot help (an unknown host, refused keys, a
/// changed host key), the error to report at once instead of retrying.
pub fn lasting_failure(location: &str, tail: &StderrTail) -> Option<StorageError> {
    let lines = tail.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
    let why = if lines.contains("Could not resolve hostname") {
        "cannot resolve the host name (check the name in the URL, and DNS)"
    } else if lines.contains("Permission denied") {
        "the server refused the login (check the user, the key, and authorized_keys)"
    } else if lines.contains("Host key verification failed") {
        "the host key is unknown or has changed (check known_hosts)"
    } else {
        return None;
    };
    Some(StorageError::Refused(format!("{location}: {why}")))
}
