//! What can stop a use case, in kinds a front-end can act on.

use arca_fs::FsError;
use arca_repo::error::{ErrorKind, Remedy};
use arca_repo::RepoError;

/// An error from a use case.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Storage(#[from] arca_storage::StorageError),
    /// An option's text or value is not valid.
    #[error("{option} {message}")]
    BadOption { option: &'static str, message: String },
    /// An exclude pattern that does not compile.
    #[error("{0}")]
    BadPattern(String),
    /// A path the snapshot does not have (the message says what it has).
    #[error("{0}")]
    NotInSnapshot(String),
    /// The request names nothing to do.
    #[error("{0}")]
    NothingToDo(String),
    /// A protected snapshot cannot be removed (or its protection shortened) before a date.
    #[error("snapshot {snapshot} is {why}")]
    Protected { snapshot: String, why: String },
    /// Source and destination of a copy are one repository.
    #[error("the source and the destination are the same repository")]
    SameRepository,
    /// The program whose output was being backed up could not start.
    #[error("cannot run {program:?}: {source}")]
    CommandStart { program: String, source: std::io::Error },
    /// The program whose output was being backed up failed; nothing was saved.
    #[error("{program:?} failed ({status}); no snapshot was created")]
    CommandFailed { program: String, status: String },
    /// A path a server was asked for lies outside what it may serve.
    #[error("refused by server: {path} is outside {allowed}")]
    OutsideServedTree { path: String, allowed: String },
    /// What was written does not read back as the snapshot it came from.
    #[error("verification failed: {what} does not match snapshot {snapshot}")]
    VerifyFailed { what: String, snapshot: String },
    /// An I/O error on a local file the use case reads or writes.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// A source of another crate failed (a database tool, ...); nothing was saved.
    #[error(transparent)]
    Source(Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl OpsError {
    /// The repository error underneath, if there is one (for exit codes and remedies).
    pub fn repo_error(&self) -> Option<&RepoError> {
        match self {
            OpsError::Repo(r) | OpsError::Fs(FsError::Repo(r)) => Some(r),
            _ => None,
        }
    }

    /// What sort of failure this is (see [`RepoError::kind`]).
    pub fn kind(&self) -> Option<ErrorKind> {
        Some(match self {
            OpsError::Repo(_) | OpsError::Fs(FsError::Repo(_)) => return self.repo_error().map(RepoError::kind),
            OpsError::Storage(_) => ErrorKind::Storage,
            OpsError::Protected { .. } => ErrorKind::NotAllowed,
            OpsError::BadOption { .. }
            | OpsError::BadPattern(_)
            | OpsError::NothingToDo(_)
            | OpsError::SameRepository
            | OpsError::OutsideServedTree { .. } => ErrorKind::BadRequest,
            OpsError::NotInSnapshot(_) => ErrorKind::NotFound,
            OpsError::VerifyFailed { .. } => ErrorKind::Damaged,
            OpsError::CommandStart { .. }
            | OpsError::CommandFailed { .. }
            | OpsError::Io { .. }
            | OpsError::Fs(_)
            | OpsError::Source(_) => return None,
        })
    }

    /// What the user can do about it, if arca knows (see [`RepoError::remedy`]).
    pub fn remedy(&self) -> Option<Remedy> {
        self.repo_error().and_then(RepoError::remedy)
    }

    pub(crate) fn bad_option(option: &'static str, e: impl std::fmt::Display) -> OpsError {
        OpsError::BadOption { option, message: e.to_string() }
    }
}

/// Result of a use case.
pub type OpsResult<T> = Result<T, OpsError>;
