//! Storage backends. Each turns the Storage trait into one kind of place: a local directory,
//! an S3-compatible bucket or a directory on an FTP or WebDAV server (through OpenDAL), a
//! directory over SFTP, or a repository behind `arca serve --stdio` (over SSH), whose server
//! side is here too.

mod dal;
pub mod fileserver;
mod limit;
mod local;
pub mod location;
mod multipart;
pub mod remote;
pub mod s3;
pub mod serve;
pub mod sftp;
mod ssh_process;

pub use dal::DalStorage;
pub use fileserver::{FileServer, Protocol};
pub use limit::Throttle;
pub use local::{create_private_dir, LocalStorage};
pub use location::{Location, LocationError, Reach};
pub use remote::RemoteStorage;
pub use s3::{S3Options, S3Storage};
pub use sftp::SftpStorage;

/// Requests in flight at once to a remote repository unless `--connections` says otherwise
/// (restic's default is 5; four uploads keep a 20 ms link busy and hold 64 MiB of packs).
pub const DEFAULT_CONNECTIONS: usize = 4;

/// How long a remote connection may carry no byte before it counts as stalled, is dropped and
/// the request retried, unless `--io-timeout` says otherwise.
pub const DEFAULT_IO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
