//! The arca engine: open a repository with a key, write blobs into packs, keep the index,
//! read trees and snapshots back, check integrity. It knows nothing of terminals, servers or
//! which backend it runs on.

pub mod adaptive;
pub mod blob;
mod cachedir;
pub mod cancel;
pub mod check;
pub mod copy;
pub mod diff;
pub mod error;
pub mod events;
pub use arca_storage::failpoint;
pub mod history;
pub mod index;
mod index_cache;
pub mod keyring;
pub mod keys;
pub mod limits;
pub mod lock;
pub mod pack;
pub mod parity;
pub mod prefetch;
pub mod prune;
pub mod reader;
pub mod repair;
pub mod repository;
pub mod resume;
pub mod retention;
pub mod rewrite;
pub mod rotate;
pub mod sendlog;
pub mod session;
pub mod shred;
pub mod snapshots;
pub mod spans;
pub mod stats;
pub mod treecache;
mod treepacks;
pub mod treewalk;
pub mod units;
pub mod writer;

pub use cancel::Cancel;
pub use error::{RepoError, RepoResult};
pub use events::{Event, Events};
pub use repository::{InitOptions, Repository};
pub use writer::{BlobWriter, WriteStats};
