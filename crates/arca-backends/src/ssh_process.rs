//! What the two ssh-based backends (`ssh://`, `sftp://`) share: the retry schedule, how a lost
//! connection is reported, and how the ssh child's stderr reaches ours.

use arca_storage::{RetryPolicy, StorageError};
use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

/// How a lost connection is retried: 4 attempts, waiting 100 ms, 400 ms, 1.6 s plus jitter
/// (every request is idempotent, so sending one again after a reconnection is safe).
pub const RETRY: RetryPolicy = RetryPolicy { attempts: 4, first_delay: Duration::from_millis(100) };

/// A connection that dropped during a request (the retry policy's final error says which).
pub fn dropped(location: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Transient {
        path: location.to_string(),
        source: std::io::Error::other(format!("connection to {location} lost: {e}")),
    }
}

/// A connection failure on `location` while `doing` something.
pub fn lost(location: &str, doing: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Transient {
        path: location.to_string(),
        source: std::io::Error::other(format!("connection to {location} lost {doing}: {e}")),
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
