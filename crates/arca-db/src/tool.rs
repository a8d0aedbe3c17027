//! Running a database's own tools: their output streamed into the repository, their input
//! fed from it, what they say on stderr kept (the end of it) for the error if they fail.

use crate::{DbError, DbResult};
use std::io::Read;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;

/// How much of a tool's stderr an error quotes (the end: where the reason usually is).
const STDERR_KEPT: usize = 4096;

/// A started tool with its stderr drained on a thread (a full stderr pipe would stall it).
struct Running {
    program: String,
    child: Child,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

fn start(mut cmd: Command, program: &str, hint: &'static str, stdin: Stdio, stdout: Stdio) -> DbResult<Running> {
    cmd.stdin(stdin).stdout(stdout).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => DbError::ToolMissing { program: program.to_string(), hint },
        _ => DbError::ToolStart { program: program.to_string(), source },
    })?;
    let stderr = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = e.read(&mut buf) {
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * STDERR_KEPT {
                    kept.drain(..kept.len() - STDERR_KEPT);
                }
            }
            kept
        })
    });
    Ok(Running { program: program.to_string(), child, stderr })
}

impl Running {
    /// Wait for the tool; an error quoting its stderr if it failed.
    fn finish(mut self) -> DbResult<()> {
        let status =
            self.child.wait().map_err(|source| DbError::ToolStart { program: self.program.clone(), source })?;
        let stderr = self.stderr.take().and_then(|t| t.join().ok()).unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(STDERR_KEPT)..]).trim().to_string();
        Err(DbError::ToolFailed { program: self.program, status: status.to_string(), stderr: text })
    }

    /// Stop the tool (what it was doing is abandoned) and reap it.
    fn abandon(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = self.stderr.take() {
            let _ = t.join();
        }
    }
}

/// Run `cmd` and hand its standard output to `consume` as it comes; the tool must succeed
/// too. If `consume` fails the tool is stopped.
pub(crate) fn read_output<T>(
    cmd: Command,
    program: &str,
    hint: &'static str,
    consume: impl FnOnce(ChildStdout) -> DbResult<T>,
) -> DbResult<T> {
    let mut run = start(cmd, program, hint, Stdio::null(), Stdio::piped())?;
    let Some(stdout) = run.child.stdout.take() else {
        run.abandon();
        return Err(DbError::ToolFailed { program: program.into(), status: "no output".into(), stderr: String::new() });
    };
    match consume(stdout) {
        Ok(v) => run.finish().map(|()| v),
        Err(e) => {
            run.abandon();
            Err(e)
        }
    }
}

/// Run `cmd` feeding its standard input from `produce` (its stdout goes to ours, for tools
/// that report progress there); the tool must succeed too.
pub(crate) fn write_input<T>(
    cmd: Command,
    program: &str,
    hint: &'static str,
    produce: impl FnOnce(&mut ChildStdin) -> DbResult<T>,
) -> DbResult<T> {
    let mut run = start(cmd, program, hint, Stdio::piped(), Stdio::null())?;
    let Some(mut stdin) = run.child.stdin.take() else {
        run.abandon();
        return Err(DbError::ToolFailed { program: program.into(), status: "no input".into(), stderr: String::new() });
    };
    let produced = produce(&mut stdin);
    // Closing its input lets the tool finish.
    drop(stdin);
    match produced {
        Ok(v) => run.finish().map(|()| v),
        // A tool that stopped reading (it failed) closes the pipe: its own error says why.
        Err(e) => match run.finish() {
            Err(tool) => Err(tool),
            Ok(()) => Err(e),
        },
    }
}

/// Run `cmd` and return its standard output as text (small outputs: lists, versions).
pub(crate) fn output(cmd: Command, program: &str, hint: &'static str) -> DbResult<String> {
    read_output(cmd, program, hint, |mut out| {
        let mut s = String::new();
        out.read_to_string(&mut s)
            .map_err(|source| DbError::Io { path: format!("<{program} output>").into(), source })?;
        Ok(s)
    })
}
