//! Running another program's tool (a database's dump and restore tools, `btrfs send` and
//! `receive`, `lvcreate`, `zfs`): its output streamed to the caller, its input fed by the
//! caller, what it says on stderr kept (the end of it) for the error if it fails.
//!
//! The functions are generic over the caller's error type, so a source keeps its own error
//! enum and converts a [`ToolError`] into it.

use std::io::Read;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;

/// How much of a tool's stderr an error quotes (the end: where the reason usually is).
const STDERR_KEPT: usize = 4096;

/// What can go wrong running a tool.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The tool is not installed (or not where the settings say).
    #[error("{program} is not installed or not on PATH ({hint})")]
    Missing { program: String, hint: &'static str },
    /// The tool could not be started.
    #[error("cannot start {program}: {source}")]
    Start { program: String, source: std::io::Error },
    /// The tool failed; `stderr` is the end of what it said.
    #[error("{program} failed ({status}){}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    Failed { program: String, status: String, stderr: String },
    /// Its output could not be read.
    #[error("reading the output of {program}: {source}")]
    Output { program: String, source: std::io::Error },
}

/// A started tool with its stderr drained on a thread (a full stderr pipe would stall it).
struct Running {
    program: String,
    child: Child,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

fn start(
    mut cmd: Command,
    program: &str,
    hint: &'static str,
    stdin: Stdio,
    stdout: Stdio,
) -> Result<Running, ToolError> {
    cmd.stdin(stdin).stdout(stdout).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => ToolError::Missing { program: program.to_string(), hint },
        _ => ToolError::Start { program: program.to_string(), source },
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
    fn finish(mut self) -> Result<(), ToolError> {
        let status = self.child.wait().map_err(|source| ToolError::Start { program: self.program.clone(), source })?;
        let stderr = self.stderr.take().and_then(|t| t.join().ok()).unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(STDERR_KEPT)..]).trim().to_string();
        Err(ToolError::Failed { program: self.program, status: status.to_string(), stderr: text })
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
pub fn read_output<T, E: From<ToolError>>(
    cmd: Command,
    program: &str,
    hint: &'static str,
    consume: impl FnOnce(ChildStdout) -> Result<T, E>,
) -> Result<T, E> {
    let mut run = start(cmd, program, hint, Stdio::null(), Stdio::piped())?;
    let Some(stdout) = run.child.stdout.take() else {
        run.abandon();
        return Err(
            ToolError::Failed { program: program.into(), status: "no output".into(), stderr: String::new() }.into()
        );
    };
    match consume(stdout) {
        Ok(v) => run.finish().map(|()| v).map_err(E::from),
        Err(e) => {
            run.abandon();
            Err(e)
        }
    }
}

/// Run `cmd` feeding its standard input from `produce` (its stdout is dropped); the tool
/// must succeed too.
pub fn write_input<T, E: From<ToolError>>(
    cmd: Command,
    program: &str,
    hint: &'static str,
    produce: impl FnOnce(&mut ChildStdin) -> Result<T, E>,
) -> Result<T, E> {
    let mut run = start(cmd, program, hint, Stdio::piped(), Stdio::null())?;
    let Some(mut stdin) = run.child.stdin.take() else {
        run.abandon();
        return Err(
            ToolError::Failed { program: program.into(), status: "no input".into(), stderr: String::new() }.into()
        );
    };
    let produced = produce(&mut stdin);
    // Closing its input lets the tool finish.
    drop(stdin);
    match produced {
        Ok(v) => run.finish().map(|()| v).map_err(E::from),
        // A tool that stopped reading (it failed) closes the pipe: its own error says why.
        Err(e) => match run.finish() {
            Err(tool) => Err(tool.into()),
            Ok(()) => Err(e),
        },
    }
}

/// Run `cmd` and return its standard output as text (small outputs: lists, versions).
pub fn output(cmd: Command, program: &str, hint: &'static str) -> Result<String, ToolError> {
    read_output(cmd, program, hint, |mut out| {
        let mut s = String::new();
        out.read_to_string(&mut s).map_err(|source| ToolError::Output { program: program.to_string(), source })?;
        Ok(s)
    })
}
