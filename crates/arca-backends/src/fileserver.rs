//! `ftp://`, `ftps://`, `webdav://` and `webdavs://` repositories: a directory on a file
//! server, reached through OpenDAL (`dal.rs`). The user is named in the URL; the password comes
//! from `ARCA_FTP_PASSWORD` or `ARCA_WEBDAV_PASSWORD` (never from the URL, which shows in
//! process lists and logs), a WebDAV bearer token from `ARCA_WEBDAV_TOKEN`.

use crate::dal::{layered, DalStorage, Writes};
use arca_storage::{StorageError, StorageResult};

/// Which protocol, and whether over TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Ftp,
    Ftps,
    WebDav,
    WebDavs,
}

impl Protocol {
    pub fn scheme(self) -> &'static str {
        match self {
            Protocol::Ftp => "ftp",
            Protocol::Ftps => "ftps",
            Protocol::WebDav => "webdav",
            Protocol::WebDavs => "webdavs",
        }
    }

    fn of(scheme: &str) -> Option<Protocol> {
        [Protocol::Ftp, Protocol::Ftps, Protocol::WebDav, Protocol::WebDavs].into_iter().find(|p| p.scheme() == scheme)
    }

    /// The environment variable holding the password.
    pub fn password_variable(self) -> &'static str {
        match self {
            Protocol::Ftp | Protocol::Ftps => "ARCA_FTP_PASSWORD",
            Protocol::WebDav | Protocol::WebDavs => "ARCA_WEBDAV_PASSWORD",
        }
    }
}

/// Where and how to reach a repository on a file server.
#[derive(Clone, Debug)]
pub struct FileServer {
    pub protocol: Protocol,
    /// `host` or `host:port`.
    pub authority: String,
    pub user: Option<String>,
    /// The repository's directory on the server, from its root (`/srv/repo`).
    pub path: String,
    pub password: Option<String>,
    pub token: Option<String>,
    pub limit_upload: Option<u32>,
    pub limit_download: Option<u32>,
    /// Requests in flight at once (`--connections`).
    pub connections: usize,
    /// No byte for this long: the request is stalled (`--io-timeout`).
    pub io_timeout: std::time::Duration,
}

impl FileServer {
    /// From `scheme://[user@]host[:port]/path` and the password variables; `None` if the
    /// scheme is not one of these, an error naming what is missing otherwise.
    pub fn from_url(url: &str) -> Option<Result<FileServer, String>> {
        let (scheme, rest) = url.split_once("://")?;
        let protocol = Protocol::of(scheme)?;
        Some(Self::parse(protocol, rest))
    }

    fn parse(protocol: Protocol, rest: &str) -> Result<FileServer, String> {
        let scheme = protocol.scheme();
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| format!("give a host and a path, as in {scheme}://user@host/srv/repo"))?;
        let (user, authority) = match authority.rsplit_once('@') {
            Some((u, _)) if u.contains(':') => {
                return Err(format!(
                    "do not write the password in the URL (it shows in process lists): set {}",
                    protocol.password_variable()
                ))
            }
            Some((u, h)) => (Some(u.to_string()), h),
            None => (None, authority),
        };
        host_and_port(authority)?;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Ok(FileServer {
            protocol,
            authority: authority.to_string(),
            user,
            path: format!("/{}", path.trim_matches('/')),
            password: env(protocol.password_variable()),
            token: env("ARCA_WEBDAV_TOKEN").filter(|_| matches!(protocol, Protocol::WebDav | Protocol::WebDavs)),
            limit_upload: None,
            limit_download: None,
            connections: crate::DEFAULT_CONNECTIONS,
            io_timeout: crate::DEFAULT_IO_TIMEOUT,
        })
    }

    /// The URL without credentials, for messages.
    pub fn url(&self) -> String {
        let user = self.user.as_deref().map(|u| format!("{u}@")).unwrap_or_default();
        format!("{}://{user}{}{}", self.protocol.scheme(), self.authority, self.path)
    }
}

fn operator(s: &FileServer, limit: Option<u32>) -> opendal::Result<opendal::Operator> {
    match s.protocol {
        Protocol::Ftp | Protocol::Ftps => {
            let mut b = opendal::services::Ftp::default()
                .endpoint(&format!("{}://{}", s.protocol.scheme(), s.authority))
                .root(&s.path);
            if let Some(u) = &s.user {
                b = b.user(u);
            }
            if let Some(p) = &s.password {
                b = b.password(p);
            }
            layered(b, limit, s.io_timeout, s.connections)
        }
        Protocol::WebDav | Protocol::WebDavs => {
            let http = if s.protocol == Protocol::WebDavs { "https" } else { "http" };
            let mut b =
                opendal::services::Webdav::default().endpoint(&format!("{http}://{}", s.authority)).root(&s.path);
            if let Some(u) = &s.user {
                b = b.username(u);
            }
            if let Some(p) = &s.password {
                b = b.password(p);
            }
            if let Some(t) = &s.token {
                b = b.token(t);
            }
            layered(b, limit, s.io_timeout, s.connections)
        }
    }
}

/// The host (an IPv6 address without its brackets) and the port of `host[:port]` or
/// `[v6]:port`.
fn host_and_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or("an IPv6 address is closed with ]")?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() || host.starts_with('-') {
        return Err("no host".into());
    }
    let port = port.map(|p| p.parse::<u16>().map_err(|_| format!("{p:?} is not a port number"))).transpose()?;
    Ok((host, port))
}

/// The process's TLS provider: more than one is built in (aws-lc-rs for OpenDAL's FTPS,
/// ring through reqwest), and rustls then refuses to pick one by itself; OpenDAL's FTPS
/// connections use the process default, so it is set before any is made.
fn install_tls_provider() {
    // An error means one is installed already: that one serves.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A TLS client configuration trusting the platform's root certificates.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    install_tls_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Log in to an FTP server once, so a wrong user or password is said at once (OpenDAL's
/// connection pool retries a refused login until its requests time out, minutes later).
fn try_login(s: &FileServer) -> StorageResult<()> {
    use std::net::ToSocketAddrs;
    use suppaftp::{FtpError, FtpStream, RustlsConnector, RustlsFtpStream};
    let url = s.url();
    let unreachable = |e: String| StorageError::Transient { path: url.clone(), source: std::io::Error::other(e) };
    let (host, port) = host_and_port(&s.authority).map_err(&unreachable)?;
    let port = port.unwrap_or(21);
    let addr = &s.authority;
    let to = (host, port)
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("cannot resolve {addr}: {e}")))?
        .next()
        .ok_or_else(|| unreachable(format!("{addr} has no address")))?;
    let timeout = std::time::Duration::from_secs(20);
    let (user, password) = (s.user.as_deref().unwrap_or("anonymous"), s.password.as_deref().unwrap_or(""));
    let refused = |e: FtpError| match e {
        FtpError::UnexpectedResponse(r) if r.status == suppaftp::Status::NotLoggedIn => StorageError::Refused(format!(
            "{url}: the server refused the login of {user}: check the user in the URL and {}",
            s.protocol.password_variable()
        )),
        other => unreachable(format!("cannot log in: {other}")),
    };
    if s.protocol == Protocol::Ftps {
        let config = tls_config().map_err(|e| unreachable(format!("cannot set up TLS: {e}")))?;
        let mut ftp = RustlsFtpStream::connect_timeout(to, timeout)
            .and_then(|f| f.into_secure(RustlsConnector::from(std::sync::Arc::new(config)), host))
            .map_err(|e| unreachable(format!("cannot open a TLS session: {e}")))?;
        ftp.login(user, password).map_err(refused)?;
        let _ = ftp.quit();
    } else {
        let mut ftp = FtpStream::connect_timeout(to, timeout).map_err(|e| unreachable(e.to_string()))?;
        ftp.login(user, password).map_err(refused)?;
        let _ = ftp.quit();
    }
    Ok(())
}

/// Connect to a repository in a directory of an FTP or WebDAV server (FTP: one login first).
pub fn connect(s: &FileServer) -> StorageResult<DalStorage> {
    if s.protocol == Protocol::Ftps {
        install_tls_provider();
    }
    if matches!(s.protocol, Protocol::Ftp | Protocol::Ftps) {
        try_login(s)?;
    }
    // FTP: OpenDAL uploads under a temporary name and renames. WebDAV: a PUT may be seen
    // half-written by a server that writes into its files, so arca moves it into place.
    let writes = match s.protocol {
        Protocol::Ftp | Protocol::Ftps => Writes::RenamedByService,
        Protocol::WebDav | Protocol::WebDavs => Writes::Renamed,
    };
    let limits = (s.limit_upload, s.limit_download);
    let mut dal = DalStorage::new(s.url(), "", writes, limits, |limit| operator(s, limit))?;
    dal.transfers = s.connections.max(1);
    Ok(dal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ftps_sets_up_tls_with_two_providers_built_in() {
        // rustls panics in ClientConfig::builder() when more than one provider is built in
        // and none is installed: OpenDAL's FTPS connections call it.
        tls_config().unwrap();
        let _ = rustls::ClientConfig::builder();
        let refused = connect(&FileServer::from_url("ftps://u@127.0.0.1:1/r").unwrap().unwrap()).err().unwrap();
        assert!(refused.to_string().contains("ftps://u@127.0.0.1:1/r"), "{refused}");
    }

    #[test]
    fn urls_name_the_server_and_never_hold_a_password() {
        let s = FileServer::from_url("ftp://backup@nas:2121/srv/repo/").unwrap().unwrap();
        assert_eq!(
            (s.protocol, s.authority.as_str(), s.user.as_deref(), s.path.as_str()),
            (Protocol::Ftp, "nas:2121", Some("backup"), "/srv/repo")
        );
        assert_eq!(s.url(), "ftp://backup@nas:2121/srv/repo");
        let w = FileServer::from_url("webdavs://dav.example.org/remote.php/dav/files/me/arca").unwrap().unwrap();
        assert_eq!((w.protocol, w.user), (Protocol::WebDavs, None));
        assert!(FileServer::from_url("s3://b/p").is_none());
        let v6 = FileServer::from_url("ftp://u@[::1]:2121/r").unwrap().unwrap();
        assert_eq!(host_and_port(&v6.authority).unwrap(), ("::1", Some(2121)));
        assert_eq!(host_and_port("[fe80::1]").unwrap(), ("fe80::1", None));
        for (bad, says) in [
            ("ftp://u:secret@h/r", "ARCA_FTP_PASSWORD"),
            ("webdav://h", "give a host and a path"),
            ("ftps://@:21/r", "no host"),
            ("ftp://h:x/r", "not a port"),
            ("ftp://[::1/r", "closed with ]"),
        ] {
            let e = FileServer::from_url(bad).unwrap().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
