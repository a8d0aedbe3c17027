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
    #[error(transparent)]
    Format(#[from] arca_format::FormatError),
    #[error("cannot derive a key from the password: {0}")]
    KeyDerivation(String),
    #[error("chunker parameters: {0}")]
    BadChunkerParams(String),
    #[error("another exclusive session is running: {holder}; it must end first (or its lock goes stale after {stale_secs} s without a refresh)")]
    Locked { holder: String, stale_secs: u64 },
    #[error("lock {name} cannot be read ({detail}); remove it by hand if no arca command is running")]
    UnreadableLock { name: String, detail: String },
    #[error("{operation} needs an exclusive lock")]
    NeedsExclusive { operation: &'static str },
    #[error("{action} needs a key that may delete: this one may not (append-only or read-only); use a full-access key or run it on the server")]
    DeleteNotAllowed { action: &'static str },
    #[error("{detail}; {operation} needs every index object (run `arca repair index` first)")]
    IndexIncomplete { operation: &'static str, detail: String },
    #[error("{detail}; {consequence}")]
    UnreadableSnapshot { detail: String, consequence: &'static str },
    #[error("snapshot {snapshot}: {detail}; prune must read every tree to know what is used (run `arca check`, then `arca repair snapshots`)")]
    UnreadableTree { snapshot: String, detail: String },
    #[error("no key slot matches {0:?}")]
    KeySlotNotFound(String),
    #[error("{0:?} matches more than one key slot")]
    AmbiguousKeySlot(String),
    #[error(
        "key slot {0} is the one this command opened the repository with; open it with another password to remove it"
    )]
    KeySlotInUse(String),
    #[error("refusing to remove the last key slot: the data would be unreadable")]
    LastKeySlot,
    #[error("paranoid dedup: blob {0} has the same id as different stored bytes (a hash collision or a damaged repository); nothing was overwritten")]
    DedupCollision(Id),
    #[error("the writer has stopped: {0}")]
    WriterStopped(String),
    #[error("parity: {0}")]
    Parity(String),
    #[error("signing the repository's history: {0}")]
    Signing(String),
    #[error(
        "{what}: {detail}; refused (a limit that guards readers against crafted repositories, see docs/SECURITY.md)"
    )]
    LimitExceeded { what: String, detail: String },
    #[error("{what} is sealed with content key {number:08x}, which this repository does not have: its class was destroyed (`arca key destroy-class`), or keyring/ is damaged")]
    Shredded { what: String, number: u32 },
    #[error("{feature} needs repository format version 2; this repository is version {version}: run `arca upgrade` (older arca versions can then no longer open it)")]
    NeedsUpgrade { feature: &'static str, version: u32 },
    #[error("class {0:?}: {1}")]
    Class(String, &'static str),
    #[error("snapshot {snapshot} is of class {class:?}, and {action} does not carry classes yet (its data would leave the reach of `key destroy-class`): select snapshots without it")]
    ClassNotCarried { class: String, snapshot: String, action: &'static str },
    #[error("this is a backup-only key (key slot {}): it adds backups but cannot {action}; use a full key for that", &slot[..slot.len().min(8)])]
    BackupOnly { slot: String, action: String },
    #[error("this is a {role} key (key slot {}): it cannot {action}; it {can}", &slot[..slot.len().min(8)])]
    ReaderKey { slot: String, role: &'static str, can: &'static str, action: String },
    #[error("{0}")]
    Unsuitable(String),
    #[error("config: key slot {} opens with this password, but its key does not open the config: the config is damaged (`arca key import` puts back an exported one), or the slot is left from before `arca key rotate` (use a password added since)", &slot[..slot.len().min(8)])]
    RotatedOut { slot: String },
    #[error("internal error: {0} (this is a bug in arca: please report it)")]
    Internal(&'static str),
}

/// What sort of failure an error is, for a caller deciding what to do (retry, ask for a
/// password, offer a repair, report a bug).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// What was asked for is not there (repository, snapshot, key slot).
    NotFound,
    /// The request cannot be met as given (ambiguous, already exists, nothing to remove).
    BadRequest,
    WrongPassword,
    /// Stored data is damaged or incomplete.
    Damaged,
    /// Another session stands in the way; trying later may work.
    Conflict,
    /// The key or the server does not allow it.
    NotAllowed,
    /// The session lost its lock and committed nothing; running again works.
    Lapsed,
    Interrupted,
    /// Written by a newer arca.
    NewerFormat,
    /// The storage failed (disk, network, server).
    Storage,
    /// A bug in arca.
    Bug,
}

/// What a user can do about an error. The CLI prints the command; a web UI can offer it as a
/// button.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Remedy {
    /// Create the repository.
    Init,
    /// Rebuild the index from the packs.
    RepairIndex,
    /// Save repaired copies of damaged snapshots.
    RepairSnapshots,
    /// Find out what is damaged.
    Check,
    /// Forget the damaged snapshot.
    Forget,
    /// Run the same command again.
    RunAgain,
    /// Wait for the other session, or retry with `--retry-lock`.
    WaitForLock,
    /// Use another password.
    OtherPassword,
    /// Use a key that may delete, or run on the server.
    FullAccessKey,
    /// Upgrade arca.
    Upgrade,
    /// Report the bug.
    ReportBug,
}

impl Remedy {
    /// The command that carries out the remedy, if there is one.
    pub fn command(self) -> Option<&'static str> {
        match self {
            Remedy::Init => Some("arca init"),
            Remedy::RepairIndex => Some("arca repair index"),
            Remedy::RepairSnapshots => Some("arca repair snapshots"),
            Remedy::Check => Some("arca check"),
            _ => None,
        }
    }
}

impl RepoError {
    /// What sort of failure this is.
    pub fn kind(&self) -> ErrorKind {
        use RepoError::*;
        match self {
            NoRepository { .. } | SnapshotNotFound(_) | KeySlotNotFound(_) => ErrorKind::NotFound,
            AlreadyExists { .. }
            | DamagedRepositoryPresent { .. }
            | AmbiguousSnapshot { .. }
            | AmbiguousKeySlot(_)
            | KeySlotInUse(_)
            | LastKeySlot
            | BadChunkerParams(_)
            | KeyDerivation(_)
            | NeedsUpgrade { .. }
            | Class(..)
            | Unsuitable(_)
            | ClassNotCarried { .. } => ErrorKind::BadRequest,
            WrongPassword { .. } => ErrorKind::WrongPassword,
            Corrupt { .. }
            | BlobNotIndexed { .. }
            | IndexIncomplete { .. }
            | UnreadableSnapshot { .. }
            | UnreadableTree { .. }
            | UnreadableLock { .. }
            | DedupCollision(_)
            | LimitExceeded { .. }
            | Parity(_)
            | RotatedOut { .. }
            | Shredded { .. } => ErrorKind::Damaged,
            Locked { .. } => ErrorKind::Conflict,
            DeleteNotAllowed { .. } | BackupOnly { .. } | ReaderKey { .. } => ErrorKind::NotAllowed,
            SessionLapsed { .. } | LockLate { .. } => ErrorKind::Lapsed,
            Cancelled => ErrorKind::Interrupted,
            UnsupportedVersion { .. } | NewerFormat { .. } => ErrorKind::NewerFormat,
            Storage(_) | Cache(_) | WriterStopped(_) | Signing(_) => ErrorKind::Storage,
            WorkerPanicked { .. } | NeedsExclusive { .. } | Format(_) | Internal(_) => ErrorKind::Bug,
        }
    }

    /// What the user can do about it, if arca knows.
    pub fn remedy(&self) -> Option<Remedy> {
        use RepoError::*;
        Some(match self {
            NoRepository { .. } => Remedy::Init,
            WrongPassword { .. } => Remedy::OtherPassword,
            BlobNotIndexed { .. } | IndexIncomplete { .. } => Remedy::RepairIndex,
            UnreadableTree { .. } => Remedy::RepairSnapshots,
            UnreadableSnapshot { .. } => Remedy::Forget,
            Corrupt { .. } | Parity(_) | DedupCollision(_) | LimitExceeded { .. } => Remedy::Check,
            Locked { .. } => Remedy::WaitForLock,
            DeleteNotAllowed { .. } | BackupOnly { .. } | ReaderKey { .. } => Remedy::FullAccessKey,
            SessionLapsed { .. } | LockLate { .. } | Cancelled => Remedy::RunAgain,
            UnsupportedVersion { .. } | NewerFormat { .. } => Remedy::Upgrade,
            WorkerPanicked { .. } | NeedsExclusive { .. } | Format(_) | Internal(_) => Remedy::ReportBug,
            _ => return None,
        })
    }

    /// A damaged object.
    pub fn corrupt(what: impl Into<String>, detail: impl std::fmt::Display) -> RepoError {
        RepoError::Corrupt { what: what.into(), detail: detail.to_string() }
    }
}

/// Result of an engine operation.
pub type RepoResult<T> = Result<T, RepoError>;
