//! Database sources: what a file backup of a running database gets wrong (a torn copy of
//! files written while they were read), these get right by asking the database itself.
//!
//! Each engine's dump tool streams into the repository without a temporary file where the
//! tool can write to a pipe (`pg_dump`, `pg_dumpall`, `mariadb-dump`); SQLite's online backup
//! needs a file, made in a private temporary directory and removed afterwards. A snapshot of
//! kind `database` holds one directory per engine with one file per database
//! ([`layout`]); restoring feeds that file back to the engine's own loader.

pub mod cold;
pub mod drill;
pub mod error;
pub mod layout;
pub mod mariadb;
pub mod physical;
pub mod pitr;
pub mod postgres;
pub mod retention;
pub mod source;
pub mod sqlite;
mod tool;
pub mod wal;

pub use error::{DbError, DbResult};
pub use layout::{Engine, Entry};
