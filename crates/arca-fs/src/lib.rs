//! The local filesystem as a backup source and a restore destination: walking with excludes,
//! full metadata (owners, modes, ns times, xattrs and ACLs, devices), sparse files and
//! hardlinks.

pub mod backup;
pub mod excludes;
pub mod export;
pub mod livedb;
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
    #[error(transparent)]
    Format(#[from] arca_format::FormatError),
    #[error("{0} is not an absolute path")]
    NotAbsolute(String),
    #[error("--stdin-filename {0:?} must be a plain file name")]
    BadStreamName(String),
    #[error("{0} was replaced by something that is not a file")]
    NotAFile(String),
    #[error("cannot start the {what} threads: {detail}")]
    Threads { what: &'static str, detail: String },
    #[error("zip: {0}")]
    Zip(String),
    #[error("cannot export: {0}")]
    Export(String),
    #[error("{0}: data shorter than its size")]
    ShortData(String),
    /// A live database in a file backup whose policy is `fail` (livedb).
    #[error("{0}")]
    LiveDatabase(String),
    #[error("internal error: {0} (this is a bug in arca: please report it)")]
    Internal(&'static str),
}

impl FsError {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> FsError {
        FsError::Io { path: path.display().to_string(), source }
    }
}

/// Result of a filesystem operation.
pub type FsResult<T> = Result<T, FsError>;
