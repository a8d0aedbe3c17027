//! The one printer: human text or JSON, and where each goes.

use serde::Serialize;
use std::io::{IsTerminal, Write};

/// How results are printed.
pub struct Output {
    pub json: bool,
    pub quiet: bool,
    /// Progress bars only where a person watches.
    pub show_progress: bool,
}

impl Output {
    /// Printer for the given global flags.
    pub fn new(json: bool, quiet: bool) -> Output {
        Output { json, quiet, show_progress: !json && !quiet && std::io::stderr().is_terminal() }
    }

    /// A line for people (stdout), unless quiet or JSON.
    pub fn info(&self, msg: impl AsRef<str>) {
        if !self.json && !self.quiet {
            stdout_line(msg.as_ref());
        }
    }

    /// A result line for people that `--quiet` does not hide (e.g. a listing).
    pub fn line(&self, msg: impl AsRef<str>) {
        if !self.json {
            stdout_line(msg.as_ref());
        }
    }

    /// A line about a problem, for people (stderr), whatever the output mode.
    pub fn problem(&self, msg: impl AsRef<str>) {
        // Never panic on a stderr that is closed or full.
        let _ = writeln!(std::io::stderr(), "{}", msg.as_ref());
    }

    /// A warning: stderr for people, a JSON line on stdout for scripts.
    pub fn warn(&self, msg: impl AsRef<str>) {
        if self.json {
            self.json_line(&serde_json::json!({"type": "warning", "message": msg.as_ref()}));
        } else {
            // Never panic on a stderr that is full or non-blocking.
            let _ = writeln!(std::io::stderr(), "warning: {}", msg.as_ref());
        }
    }

    /// One JSON value on one line (progress, events, final summaries of long commands); on
    /// stderr once standard output carries data (`export -o -`, `dump`).
    pub fn json_line<T: Serialize>(&self, value: &T) {
        if let Ok(s) = serde_json::to_string(value) {
            if DATA_ON_STDOUT.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = writeln!(std::io::stderr(), "{s}");
                return;
            }
            let mut o = std::io::stdout().lock();
            let _ = writeln!(o, "{s}");
            let _ = o.flush();
        }
    }

    /// A whole JSON document (listings).
    pub fn json_doc<T: Serialize>(&self, value: &T) {
        if let Ok(s) = serde_json::to_string_pretty(value) {
            stdout_line(&s);
        }
    }

    /// Report a failure.
    pub fn error(&self, e: &anyhow::Error) {
        let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        let mut msg = chain.first().cloned().unwrap_or_default();
        for c in chain.iter().skip(1) {
            if !msg.contains(c.as_str()) {
                msg.push_str(": ");
                msg.push_str(c);
            }
        }
        let (kind, remedy) = crate::exit::kind_and_remedy(e);
        if self.json {
            // `kind` and `remedy` let a script (or a web UI) act without parsing the message.
            self.json_line(&serde_json::json!({
                "type": "error", "message": msg, "exit_code": crate::exit::code_for(e),
                "kind": kind, "remedy": remedy,
                "remedy_command": remedy.and_then(arca_repo::error::Remedy::command),
            }));
        } else {
            self.problem(format!("error: {msg}"));
            if let Some(cmd) = remedy.and_then(arca_repo::error::Remedy::command) {
                if !msg.contains(cmd) {
                    self.problem(format!("hint: `{cmd}` may help"));
                }
            }
        }
    }
}

/// Set once a command writes data (an archive, a file's bytes) to standard output: from then
/// on JSON records go to stderr, so they never end up inside the data.
static DATA_ON_STDOUT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Standard output now carries data (see [`Output::json_line`]).
pub fn data_on_stdout() {
    DATA_ON_STDOUT.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Print a result line. When the reader has gone (`arca ls | head`), stop the way a
/// SIGPIPE-killed tool does (status 141), quietly: nobody is left to read the rest. (Rust
/// ignores SIGPIPE so that a dead ssh connection is an error arca can handle, not a kill;
/// `println!` would panic here instead.)
pub fn stdout_line(text: &str) {
    let mut o = std::io::stdout().lock();
    let written = writeln!(o, "{text}").and_then(|()| o.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        let _ = writeln!(std::io::stderr(), "error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}
