//! Exit codes, documented in `arca --help` and the README.

use arca_fs::FsError;
use arca_ops::OpsError;
use arca_repo::error::{ErrorKind, Remedy};
use arca_repo::RepoError;

/// Success.
pub const OK: i32 = 0;
/// Any error.
pub const ERROR: i32 = 1;
/// The snapshot was created but some source files could not be read.
pub const PARTIAL: i32 = 3;
/// An audit found files that differ from what their packages or a snapshot say.
pub const DIFFERS: i32 = 4;
/// The repository does not exist.
pub const NO_REPOSITORY: i32 = 10;
/// Wrong password: no key slot opens.
pub const WRONG_PASSWORD: i32 = 12;
/// `wal-fetch` could not tell whether the archive has the file (a wrong password, an
/// outage): above 125, so PostgreSQL stops recovering instead of taking it for the end.
pub const ABORT_RECOVERY: i32 = 126;
/// Interrupted by Ctrl-C (SIGINT) or SIGTERM, as a shell reports a SIGINT death.
pub const INTERRUPTED: i32 = 130;

/// The text for `--help`.
pub const HELP: &str = "Exit codes:
  0   success
  1   error
  2   the command line cannot be parsed (unknown option or subcommand, a value of the wrong
      type); nothing was done (values arca checks itself, such as dates, give 1)
  3   the snapshot was created, but some source files could not be read (they are listed)
  4   an audit found files that differ from what their packages or the snapshot say
  10  the repository does not exist (create it with `arca init`)
  12  wrong password: no key slot opens with it (nothing in the repository was changed)
  126 wal-fetch failed for another reason than the archive not having the file
  101 arca itself failed (a bug: please report it with the message)
  130 a backup was interrupted (Ctrl-C or SIGTERM): it stopped at a safe point, nothing was
      committed, its lock was removed, and the next run reuses what was already stored
      (other commands end at once on a signal; what they wrote before stays consistent)";

/// The engine error behind `e`, wherever it sits in the chain (directly, or inside a
/// filesystem or use-case error).
pub fn repo_error(e: &anyhow::Error) -> Option<&RepoError> {
    e.chain().find_map(|cause| {
        cause
            .downcast_ref::<RepoError>()
            .or_else(|| match cause.downcast_ref::<FsError>() {
                Some(FsError::Repo(r)) => Some(r),
                _ => None,
            })
            .or_else(|| cause.downcast_ref::<OpsError>().and_then(OpsError::repo_error))
    })
}

/// What sort of failure `e` is and what may help, from the first error in its chain that
/// knows (an engine error, or a use-case error).
pub fn kind_and_remedy(e: &anyhow::Error) -> (Option<ErrorKind>, Option<Remedy>) {
    if let Some(r) = repo_error(e) {
        return (Some(r.kind()), r.remedy());
    }
    match e.chain().find_map(|c| c.downcast_ref::<OpsError>()) {
        Some(o) => (o.kind(), o.remedy()),
        None => (None, None),
    }
}

/// The exit code for an error.
pub fn code_for(e: &anyhow::Error) -> i32 {
    match repo_error(e) {
        Some(RepoError::NoRepository { .. }) => NO_REPOSITORY,
        Some(RepoError::WrongPassword { .. }) => WRONG_PASSWORD,
        Some(RepoError::Cancelled) => INTERRUPTED,
        _ => ERROR,
    }
}
