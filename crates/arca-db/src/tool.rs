//! Running a database's own tools through arca-ops' runner, with this crate's error type.

use crate::DbResult;
use std::process::{ChildStdin, ChildStdout, Command};

/// See [`arca_ops::tool::read_output`].
pub(crate) fn read_output<T>(
    cmd: Command,
    program: &str,
    hint: &'static str,
    consume: impl FnOnce(ChildStdout) -> DbResult<T>,
) -> DbResult<T> {
    arca_ops::tool::read_output(cmd, program, hint, consume)
}

/// See [`arca_ops::tool::write_input`].
pub(crate) fn write_input<T>(
    cmd: Command,
    program: &str,
    hint: &'static str,
    produce: impl FnOnce(&mut ChildStdin) -> DbResult<T>,
) -> DbResult<T> {
    arca_ops::tool::write_input(cmd, program, hint, produce)
}

/// See [`arca_ops::tool::output`].
pub(crate) fn output(cmd: Command, program: &str, hint: &'static str) -> DbResult<String> {
    Ok(arca_ops::tool::output(cmd, program, hint)?)
}
