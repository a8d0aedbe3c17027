//! The engine's errors, each with a kind a caller can act on (exit codes derive from it).

use arca_format::Id;
use arca_storage::StorageError;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("no repository at {location} (create one with `arca init`)")]
    NoRepository { location: String },
    #[error("a repository already exists at {location}")]
    AlreadyExists { location: String },
    #[error("{location} holds repository objects ({dir}/) but no config: it is a damaged repository, not an empty place; a new repository there would make the old data unreadable (see docs/RECOVERY.md, \"A lost or damaged config\")")]
    DamagedRepositoryPresent { location: String, dir: &'static str },
    #[error("wrong password: no key slot of {location} opens with it")]
    WrongPassword { location: String },
    #[error("repository format version {found} is newer than this arca supports ({supported}); upgrade arca")]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{what} is damaged: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("{kind} blob {id} is not in the index (if an index file was deleted, run `arca repair index`)")]
    BlobNotIndexed { kind: &'static str, id: Id },
    #[error("no snapshot matches {0}")]
    SnapshotNotFound(String),
    #[error("{spec:?} matches more than one snapshot ({candidates}); give more digits")]
    AmbiguousSnapshot { spec: String, candidates: String },
    #[error("the backup's {stage} thread crashed ({message}); nothing was committed (this is a bug in arca: please report it)")]
    WorkerPanicked { stage: &'static str, message: String },
    #[error("this session's lock was not refreshed for {secs} s (the machine was suspended or stalled, or the repository was unreachable) and a prune has since removed or marked {missing} packs it relied on; nothing was committed: run the command again")]
    SessionLapsed { secs: u64, missing: usize },
    #[error("this session's lock was not refreshed for {secs} s (the machine was suspended or stalled, or the repository was unreachable); a prune may have removed data it relied on, so nothing was committed: run the command again")]
    LockLate { secs: u64 },
    #[error("{what} was written by a newer arca (a type this version does not know); {action} needs that version or later (listing, forget, prune and check work with this one)")]
    NewerFormat { what: String, action: &'static str },
    #[error("interrupted; nothing was committed (what was already stored is reused by the next run)")]
    Cancelled,
    /// The local index cache cannot be used (only this signals the fall-back to an index in
    /// memory; it never reaches a user as a failure).
    #[error("local index cache: {0}")]
    Cache(std::io::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Refused(String),
}

impl RepoError {
    /// A damaged object.
    pub fn corrupt(what: impl Into<String>, detail: impl std::fmt::Display) -> RepoError {
        RepoError::Corrupt { what: what.into(), detail: detail.to_string() }
    }
}

/// Result of an engine operation.
pub type RepoResult<T> = Result<T, RepoError>;
