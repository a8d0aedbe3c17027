//! Filesystem snapshots for arca: btrfs, LVM and ZFS snapshots taken so a backup reads one
//! instant ([`freeze`], [`source::FrozenFiles`]), btrfs send streams stored as snapshots
//! ([`source::SendStream`], [`receive`]), and sets of read-only btrfs snapshots pushed to and
//! pulled from a repository as space-sharing subvolumes ([`set`]).
//!
//! The filesystems' own tools do the work (`btrfs`, `lvcreate`, `zfs`); two btrfs requests
//! that have no command are made directly ([`btrfs`]).

pub mod btrfs;
mod error;
pub mod freeze;
pub mod mounts;
pub mod owner;
pub mod receive;
pub mod set;
pub mod source;
pub mod stream;

pub use error::{FsnapError, FsnapResult};
