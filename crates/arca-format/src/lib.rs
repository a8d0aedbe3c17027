//! The arca repository format, version 1: identifiers, the structs stored in each kind of
//! object, magic numbers and versions — all in one place, with no I/O. `docs/FORMAT.md`
//! describes the same bytes in prose.

pub mod codec;
pub mod config;
pub mod history;
pub mod id;
pub mod index;
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
pub use keyslot::{KdfParams, KeySlot};
pub use lock::LockFile;
pub use mark::MarkFile;
pub use pack::{BlobKind, PackHeader, PackHeaderEntry};
pub use parity::ParityFile;
pub use snapshot::{Snapshot, SnapshotKind, SnapshotSummary, SnapshotWarning, WarningKind};
pub use tree::{Node, NodeKind, Tree};

/// The repository format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Compression tags: the last byte of every blob's plaintext before sealing.
pub const COMPRESSION_NONE: u8 = 0;
/// zstd frame follows.
pub const COMPRESSION_ZSTD: u8 = 1;
