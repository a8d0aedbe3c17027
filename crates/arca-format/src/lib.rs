//! The arca repository format, versions 1 and 2: identifiers, the structs stored in each kind of
//! object, magic numbers and versions — all in one place, with no I/O. `docs/FORMAT.md`
//! describes the same bytes in prose.

pub mod codec;
pub mod config;
pub mod history;
pub mod id;
pub mod index;
pub mod keyring;
pub mod keyslot;
pub mod lock;
pub mod mark;
pub mod pack;
pub mod parity;
pub mod snapshot;
pub mod tree;
pub mod wire;

pub use codec::{decode, encode, FormatError};
pub use config::{ChunkerParams, Config, ConfigFile, EncryptionMode};
pub use history::{SignerCertificate, Statement, StatementBody};
pub use id::{BlobId, Id, PackId};
pub use index::{IndexEntry, IndexFile, IndexPack};
pub use keyring::{
    ContentKeyFile, ReaderKeyFile, DEFAULT_CLASS, MASTER_KEY_NUMBER, SEALED_TO_METADATA, SEALED_TO_RECIPIENT,
    SEALED_TO_SUMMARY, SHARED_KEY_NUMBER,
};
pub use keyslot::{
    BackupBundle, KdfParams, KeySlot, ReaderBundle, ROLE_BACKUP_ONLY, ROLE_FULL, ROLE_METADATA, ROLE_SUMMARY,
};
pub use lock::LockFile;
pub use mark::MarkFile;
pub use pack::{BlobKind, PackHeader, PackHeaderEntry};
pub use parity::ParityFile;
pub use snapshot::{Snapshot, SnapshotDigest, SnapshotKind, SnapshotSummary, SnapshotWarning, WarningKind};
pub use tree::{Node, NodeKind, Tree};

/// The newest repository format version this code reads and writes, and the one `init`
/// creates. Version 1 repositories are read and written as version 1 until `arca upgrade`.
pub const FORMAT_VERSION: u32 = 2;

/// The first version: one master key seals everything, ADs name only the object's kind.
pub const FORMAT_VERSION_1: u32 = 1;

/// Compression tags: the last byte of every blob's plaintext before sealing.
pub const COMPRESSION_NONE: u8 = 0;
/// zstd frame follows.
pub const COMPRESSION_ZSTD: u8 = 1;
