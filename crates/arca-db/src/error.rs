//! What can go wrong with a database source, in kinds a caller can act on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A database tool is missing, could not start, or failed.
    #[error(transparent)]
    Tool(#[from] arca_ops::tool::ToolError),
    /// Reading or writing a local file.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The snapshot has no such database, or is not a database snapshot.
    #[error("{0}")]
    NotInSnapshot(String),
    /// A setting that cannot work (a database name that cannot be a file name, ...).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Ops(#[from] arca_ops::OpsError),
    #[error(transparent)]
    Fs(#[from] arca_fs::FsError),
    #[error(transparent)]
    Repo(#[from] arca_repo::RepoError),
}

pub type DbResult<T> = Result<T, DbError>;

impl From<DbError> for arca_ops::OpsError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Ops(e) => e,
            DbError::Fs(e) => e.into(),
            DbError::Repo(e) => e.into(),
            other => arca_ops::OpsError::Source(Box::new(other)),
        }
    }
}
