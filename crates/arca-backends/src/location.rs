//! Where a repository is: the text a user writes (`/srv/repo`, `ssh://host/srv/repo`,
//! `sftp://…`, `s3://bucket/prefix`) parsed once into a [`Location`] that connects to its
//! storage, so the CLI, a job file and a server mean the same place by the same words.

use crate::{FileServer, RemoteStorage, S3Options, S3Storage, SftpStorage, Throttle};
use arca_storage::{Storage, StorageResult};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The schemes arca reaches, for messages.
pub const SUPPORTED: &str = "a local path (/srv/repo, ./repo, local:/srv/repo), ssh://[user@]host[:port]/path (arca serve), sftp://[user@]host[:port]/path, s3://bucket/prefix, ftp[s]://[user@]host[:port]/path or webdav[s]://[user@]host[:port]/path";

/// How remote repositories are reached: settings shared by every location a run names.
#[derive(Clone, Debug)]
pub struct Reach {
    /// The ssh command line (`ssh`, or e.g. `ssh -i key -o StrictHostKeyChecking=yes`).
    pub ssh_command: String,
    /// The S3 endpoint (`http://127.0.0.1:8333`); `None`: the `AWS_ENDPOINT_URL*` variables or AWS.
    pub s3_endpoint: Option<String>,
    /// Upload and download limits in bytes per second (remote repositories only).
    pub limit_upload: Option<u32>,
    pub limit_download: Option<u32>,
    /// Requests in flight at once to a remote repository (`--connections`): ssh:// opens up
    /// to this many sessions, the others multiplex one.
    pub connections: usize,
    /// When a stalled connection is dropped and its request retried (`--io-timeout`): for
    /// ssh:// and sftp:// silence that long (ssh's keep-alives); for the OpenDAL services the
    /// limit of one read or write call, scaled in `dal.rs`.
    pub io_timeout: std::time::Duration,
}

impl Default for Reach {
    fn default() -> Self {
        Reach {
            ssh_command: "ssh".into(),
            s3_endpoint: None,
            limit_upload: None,
            limit_download: None,
            connections: crate::DEFAULT_CONNECTIONS,
            io_timeout: crate::DEFAULT_IO_TIMEOUT,
        }
    }
}

/// Why a location cannot be used, with what to write instead.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("the repository location is empty (check -r / ARCA_REPOSITORY); use {SUPPORTED}")]
    Empty,
    /// A scheme or another tool's syntax that arca does not reach.
    #[error("repository {location:?}: {hint}")]
    Unsupported { location: String, hint: String },
    /// A supported scheme with a part missing (host, path, bucket).
    #[error("{location}: {hint}")]
    Incomplete { location: String, hint: String },
    #[error("cannot parse the ssh command {0:?}")]
    BadSshCommand(String),
}

/// A repository's place.
#[derive(Clone, Debug)]
pub enum Location {
    Local(PathBuf),
    /// `ssh://`: `command` runs `arca serve --stdio` for `path` on the far side (a forced
    /// command in authorized_keys may replace it and decide the repository and mode).
    Ssh {
        url: String,
        command: Vec<String>,
        path: String,
        limits: (Option<u32>, Option<u32>),
        connections: usize,
    },
    /// `sftp://`: `command` starts the server's SFTP subsystem.
    Sftp {
        url: String,
        command: Vec<String>,
        path: String,
        limits: (Option<u32>, Option<u32>),
        connections: usize,
    },
    S3(S3Options),
    /// `ftp://`, `ftps://`, `webdav://`, `webdavs://`.
    FileServer(FileServer),
}

impl Location {
    /// Parse what a user wrote. Anything that looks like a URL or another tool's remote
    /// syntax but is not a supported scheme is refused, so a typo or a borg habit never turns
    /// into a local folder that the user takes for an off-site copy.
    pub fn parse(text: &str, reach: &Reach) -> Result<Location, LocationError> {
        if text.starts_with("ssh://") || text.starts_with("sftp://") {
            return ssh(text, reach);
        }
        if text.starts_with("s3://") {
            let mut o = S3Options::from_url(text, reach.s3_endpoint.clone())
                .map_err(|hint| LocationError::Incomplete { location: text.into(), hint })?;
            o.limit_upload = reach.limit_upload;
            o.limit_download = reach.limit_download;
            o.connections = reach.connections.max(1);
            o.io_timeout = reach.io_timeout;
            return Ok(Location::S3(o));
        }
        if let Some(server) = FileServer::from_url(text) {
            let mut s = server.map_err(|hint| LocationError::Incomplete { location: text.into(), hint })?;
            s.limit_upload = reach.limit_upload;
            s.limit_download = reach.limit_download;
            s.connections = reach.connections.max(1);
            s.io_timeout = reach.io_timeout;
            return Ok(Location::FileServer(s));
        }
        local_path(text).map(|p| Location::Local(PathBuf::from(p)))
    }

    /// The local directory, if the repository is one.
    pub fn local_path(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            _ => None,
        }
    }

    /// Connect to the storage (for ssh:// and sftp://, start the connection).
    pub fn connect(&self) -> StorageResult<Arc<dyn Storage>> {
        let throttled = |s: Arc<dyn Storage>, limits: (Option<u32>, Option<u32>)| -> Arc<dyn Storage> {
            match limits {
                (None, None) => s,
                (up, down) => Arc::new(Throttle::new(s, up, down)),
            }
        };
        Ok(match self {
            Location::Local(p) => Arc::new(crate::LocalStorage::new(p)),
            Location::S3(o) => Arc::new(S3Storage::new(o)?),
            Location::FileServer(s) => Arc::new(crate::fileserver::connect(s)?),
            Location::Ssh { url, command, path, limits, connections } => throttled(
                Arc::new(RemoteStorage::connect(url.clone(), command.clone(), path.clone(), *connections)?),
                *limits,
            ),
            Location::Sftp { url, command, path, limits, connections } => throttled(
                Arc::new(SftpStorage::connect(url.clone(), command.clone(), path.clone(), *connections)?),
                *limits,
            ),
        })
    }
}

/// The location as the user wrote it, for messages.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Ssh { url, .. } | Location::Sftp { url, .. } => f.write_str(url),
            Location::S3(o) => write!(f, "s3://{}/{}", o.bucket, o.prefix),
            Location::FileServer(s) => f.write_str(&s.url()),
        }
    }
}

fn unsupported(location: &str, hint: String) -> LocationError {
    LocationError::Unsupported { location: location.into(), hint }
}

/// A location that names no supported scheme must be a plain local path.
fn local_path(r: &str) -> Result<&str, LocationError> {
    if r.trim().is_empty() {
        return Err(LocationError::Empty);
    }
    if let Some(p) = r.strip_prefix("local:") {
        if p.is_empty() {
            return Err(unsupported(r, "local: needs a path, as in local:/srv/repo".into()));
        }
        return Ok(p);
    }
    if let Some(rest) = r.strip_prefix("file://") {
        let path = if rest.is_empty() { "/srv/repo" } else { rest };
        return Err(unsupported(
            r,
            format!("file:// URLs are not supported; give the path itself ({path}); arca reaches {SUPPORTED}"),
        ));
    }
    if let Some((scheme, _)) = r.split_once("://") {
        let lower = scheme.to_ascii_lowercase();
        if ["ssh", "sftp", "s3", "ftp", "ftps", "webdav", "webdavs"].contains(&lower.as_str()) {
            return Err(unsupported(r, format!("scheme names are lower case: {lower}://…")));
        }
        return Err(unsupported(
            r,
            format!("{scheme}:// is not a scheme this version of arca supports; use {SUPPORTED}"),
        ));
    }
    // `rest:…`, `b2:bucket`, borg's and scp's `user@host:path`: a colon before the first slash.
    let head = r.split('/').next().unwrap_or("");
    if let Some((before, _)) = head.split_once(':') {
        if !before.is_empty() {
            let hint = match before.split_once('@') {
                Some((user, host)) => format!("for a repository reached over ssh write ssh://{user}@{host}/PATH (arca serve) or sftp://{user}@{host}/PATH"),
                None => format!("{before}: is not a scheme this version of arca supports; a local directory with a colon in its name is written ./{r}"),
            };
            return Err(unsupported(r, format!("{hint}; use {SUPPORTED}")));
        }
    }
    Ok(r)
}

/// `ssh://[user@]host[:port]/path` and `sftp://…`: the ssh command with the port and host.
fn ssh(url: &str, reach: &Reach) -> Result<Location, LocationError> {
    let sftp = url.starts_with("sftp://");
    let rest = url.strip_prefix("ssh://").or_else(|| url.strip_prefix("sftp://")).unwrap_or(url);
    let incomplete = |hint: String| LocationError::Incomplete { location: url.into(), hint };
    let (authority, path) = rest.split_once('/').ok_or_else(|| {
        let scheme = if sftp { "sftp" } else { "ssh" };
        incomplete(format!("give a host and a path, as in {scheme}://host/srv/repo"))
    })?;
    let path = format!("/{path}");
    let (userhost, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => (h, Some(p)),
        _ => (authority, None),
    };
    if userhost.is_empty() || userhost.starts_with('-') {
        return Err(incomplete("no host".into()));
    }
    let mut command = shlex::split(&reach.ssh_command)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| LocationError::BadSshCommand(reach.ssh_command.clone()))?;
    if let Some(p) = port {
        command.extend(["-p".to_string(), p.to_string()]);
    }
    if Path::new(&command[0]).file_name().is_some_and(|n| n == "ssh") {
        // A stalled connection must end (then the client reconnects), not hang the backup:
        // four unanswered keep-alives a quarter of the I/O timeout apart. ssh takes the first
        // value given for an option, so the user's own -o options win.
        let interval = (reach.io_timeout.as_secs() / 4).max(1);
        let connect = reach.io_timeout.as_secs().max(1);
        for o in [
            format!("ServerAliveInterval={interval}"),
            "ServerAliveCountMax=4".into(),
            format!("ConnectTimeout={connect}"),
        ] {
            command.extend(["-o".to_string(), o]);
        }
    }
    let limits = (reach.limit_upload, reach.limit_download);
    let connections = reach.connections.max(1);
    if sftp {
        // The server's SFTP subsystem, not a command.
        command.extend(["-s".to_string(), userhost.to_string(), "sftp".to_string()]);
        return Ok(Location::Sftp { url: url.into(), command, path, limits, connections });
    }
    command.push(userhost.to_string());
    let quoted = shlex::try_quote(&path).map_err(|e| incomplete(e.to_string()))?;
    command.push(format!("arca serve --stdio --repo {quoted}"));
    Ok(Location::Ssh { url: url.into(), command, path, limits, connections })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Location, LocationError> {
        Location::parse(s, &Reach { ssh_command: "ssh -i 'my key'".into(), ..Default::default() })
    }

    #[test]
    fn local_paths_and_refused_look_alikes() {
        assert_eq!(parse("/srv/repo").unwrap().local_path(), Some(Path::new("/srv/repo")));
        assert_eq!(parse("local:b2:x").unwrap().local_path(), Some(Path::new("b2:x")));
        assert_eq!(parse("./a:b").unwrap().local_path(), Some(Path::new("./a:b")));
        for (bad, says) in [
            ("", "empty"),
            ("file:///srv/r", "give the path itself (/srv/r)"),
            ("SSH://h/r", "lower case: ssh://"),
            ("b2:bucket/path", "b2: is not a scheme"),
            ("rest:http://h/", "rest:http:// is not a scheme"),
            ("me@host:repo", "ssh://me@host/PATH"),
            ("gopher://h/r", "gopher:// is not a scheme"),
            ("FTP://h/r", "lower case: ftp://"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[test]
    fn ssh_and_sftp_build_the_command() {
        match parse("ssh://me@host:2222/srv/my repo").unwrap() {
            Location::Ssh { command, path, .. } => {
                assert_eq!(path, "/srv/my repo");
                assert_eq!(&command[..5], ["ssh", "-i", "my key", "-p", "2222"]);
                assert_eq!(command[command.len() - 2], "me@host");
                assert_eq!(command[command.len() - 1], "arca serve --stdio --repo '/srv/my repo'");
            }
            other => panic!("{other:?}"),
        }
        match parse("sftp://host/r").unwrap() {
            Location::Sftp { command, .. } => assert_eq!(&command[command.len() - 3..], ["-s", "host", "sftp"]),
            other => panic!("{other:?}"),
        }
        assert!(parse("ssh://host").unwrap_err().to_string().contains("give a host and a path"));
        assert!(parse("ssh://-oProxyCommand=x/r").unwrap_err().to_string().contains("no host"));
        assert!(parse("s3:///p").unwrap_err().to_string().contains("no bucket"));
        assert_eq!(parse("s3://b/p/").unwrap().to_string(), "s3://b/p");
    }
}
