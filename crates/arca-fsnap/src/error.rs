//! What can go wrong with a filesystem snapshot, in kinds a caller can act on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum FsnapError {
    /// A tool (`btrfs`, `lvcreate`, `zfs`, `mount`) is missing, could not start, or failed.
    #[error(transparent)]
    Tool(#[from] arca_ops::tool::ToolError),
    /// Reading or writing a local file.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The path is on a filesystem this kind of snapshot does not work on.
    #[error("{}: {why}", path.display())]
    Unsupported { path: PathBuf, why: String },
    /// A btrfs request the kernel refused.
    #[error("{}: {what}: {errno}", path.display())]
    Ioctl { path: PathBuf, what: &'static str, errno: nix::errno::Errno },
    /// The repository holds no such snapshot (set), or one that is not what the command needs.
    #[error("{0}")]
    NotFound(String),
    /// A setting or a stored record that cannot work.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Ops(#[from] arca_ops::OpsError),
    #[error(transparent)]
    Fs(#[from] arca_fs::FsError),
    #[error(transparent)]
    Repo(#[from] arca_repo::RepoError),
}

pub type FsnapResult<T> = Result<T, FsnapError>;

impl FsnapError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> FsnapError {
        FsnapError::Io { path: path.to_path_buf(), source }
    }
}

impl From<FsnapError> for arca_ops::OpsError {
    fn from(e: FsnapError) -> Self {
        match e {
            FsnapError::Ops(e) => e,
            FsnapError::Fs(e) => e.into(),
            FsnapError::Repo(e) => e.into(),
            other => arca_ops::OpsError::Source(Box::new(other)),
        }
    }
}
