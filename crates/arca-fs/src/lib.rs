//! The local filesystem as a backup source and a restore destination: walking with excludes,
//! full metadata (owners, modes, ns times, xattrs and ACLs, devices), sparse files and
//! hardlinks.

pub mod backup;
pub mod excludes;
pub mod export;
pub mod livediff;
pub mod meta;
pub mod restore;
pub mod sparse;

pub use arca_repo::events::{Change, Event, Events};
pub use backup::{backup, BackupOptions, BackupOutcome};
pub use excludes::Excludes;
pub use restore::{restore, Overwrite, RestoreOptions, RestoreReport};

/// Errors that stop a backup or restore as a whole (per-file problems are warnings).
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error(transparent)]
    Repo(#[from] arca_repo::RepoError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("the restore target {0} exists and is not a directory; nothing was changed (name a directory, or a path that does not exist yet)")]
    TargetNotADirectory(String),
    #[error("{0}")]
    Invalid(String),
}

impl FsError {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> FsError {
        FsError::Io { path: path.display().to_string(), source }
    }
}

/// Result of a filesystem operation.
pub type FsResult<T> = Result<T, FsError>;
