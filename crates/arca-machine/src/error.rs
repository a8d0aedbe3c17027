//! What can go wrong auditing a machine, in kinds a caller can act on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// Reading a local file.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The system (or the snapshot) has no package database arca can read.
    #[error("{0}")]
    NoPackageDatabase(String),
    /// The snapshot lacks the path asked for.
    #[error("{0}")]
    NotInSnapshot(String),
    #[error(transparent)]
    Ops(#[from] arca_ops::OpsError),
    #[error(transparent)]
    Fs(#[from] arca_fs::FsError),
    #[error(transparent)]
    Repo(#[from] arca_repo::RepoError),
}

pub type MachineResult<T> = Result<T, MachineError>;

impl MachineError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> MachineError {
        MachineError::Io { path: path.to_path_buf(), source }
    }
}

impl From<MachineError> for arca_ops::OpsError {
    fn from(e: MachineError) -> Self {
        match e {
            MachineError::Ops(e) => e,
            MachineError::Fs(e) => e.into(),
            MachineError::Repo(e) => e.into(),
            other => arca_ops::OpsError::Source(Box::new(other)),
        }
    }
}
