//! The export use case: a snapshot (or a path in it) as a tar or zip archive, optionally read
//! back and compared with a second rendering of the snapshot.

use crate::{readable_snapshots, OpsError, OpsResult};
use arca_fs::export::{export_tar, export_zip, ExportReport};
use arca_repo::snapshots::{self as snaps, Filter};
use arca_repo::treewalk::{lookup, Found};
use arca_repo::{Events, Repository};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::Path;

/// The archive format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveFormat {
    /// POSIX pax tar with ownership, times, xattrs, ACLs, hard links and sparse files.
    #[default]
    Tar,
    /// Files, directories and symlinks only; needs a seekable destination.
    Zip,
}

/// An export request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportRequest {
    /// The snapshot (an id prefix, `latest`, `latest~2`).
    pub snapshot: String,
    /// Of the snapshot, only this path (and what lies below); empty: all of it.
    pub path: String,
    pub filter: Filter,
    pub format: ArchiveFormat,
    /// Read the written file back and compare it with the snapshot (needs a file).
    pub verify: bool,
}

/// Where the archive goes.
pub enum Destination<'a> {
    /// A file or device, created (or truncated) and synced.
    File(&'a Path),
    /// A stream, such as a pipe (tar only, no verify).
    Stream(&'a mut dyn Write),
}

/// What an export wrote.
#[derive(Debug, Serialize)]
pub struct Exported {
    /// The snapshot exported (full hex).
    pub snapshot_id: String,
    pub report: ExportReport,
    /// True when the file was read back and matched; absent when not asked.
    pub verified: Option<bool>,
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The BLAKE3 of the archive rendered from the snapshot (nothing written anywhere).
fn render_hash(repo: &Repository, found: &Found, format: ArchiveFormat) -> OpsResult<blake3::Hash> {
    Ok(match format {
        ArchiveFormat::Zip => {
            let (_, cur) = export_zip(repo, found, std::io::Cursor::new(Vec::new()))?;
            blake3::hash(cur.get_ref())
        }
        ArchiveFormat::Tar => {
            let (_, h) = export_tar(repo, found, Hashing { inner: std::io::sink(), hasher: blake3::Hasher::new() })?;
            h.hasher.finalize()
        }
    })
}

fn file_hash(path: &Path) -> OpsResult<blake3::Hash> {
    let io = |source| OpsError::Io { path: path.display().to_string(), source };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            return Ok(h.finalize());
        }
        h.update(&buf[..n]);
    }
}

/// Export the snapshot `req` names to `dest`, from a repository opened with a read session.
pub fn export(repo: &Repository, req: &ExportRequest, dest: Destination, events: &dyn Events) -> OpsResult<Exported> {
    if let Destination::Stream(_) = dest {
        if req.format == ArchiveFormat::Zip {
            return Err(OpsError::bad_option(
                "--format",
                "zip needs a seekable output: give a file, or use tar for pipes",
            ));
        }
        if req.verify {
            return Err(OpsError::bad_option(
                "--verify",
                "reads the archive back, so it needs a file (or a device), not a stream",
            ));
        }
    }
    let all = readable_snapshots(repo, events)?;
    let snap = snaps::resolve(&all, &req.snapshot, &req.filter)?;
    let path = req.path.trim_end_matches('/');
    let found = lookup(repo, &snap.snapshot.tree, path.as_bytes())?
        .ok_or_else(|| crate::restore::not_in_snapshot(path, &snap))?;
    let (report, written) = match dest {
        Destination::Stream(w) => {
            let (r, mut w) = export_tar(repo, &found, std::io::BufWriter::with_capacity(1 << 20, w))?;
            w.flush().map_err(|source| OpsError::Io { path: "the output stream".into(), source })?;
            (r, None)
        }
        Destination::File(p) => {
            let io = |source| OpsError::Io { path: p.display().to_string(), source };
            let f = std::fs::File::create(p).map_err(io)?;
            let (r, f) = match req.format {
                ArchiveFormat::Zip => export_zip(repo, &found, f)?,
                ArchiveFormat::Tar => {
                    let (r, w) = export_tar(repo, &found, std::io::BufWriter::with_capacity(1 << 20, f))?;
                    (r, w.into_inner().map_err(|e| io(e.into_error()))?)
                }
            };
            f.sync_all().map_err(io)?;
            (r, Some(p))
        }
    };
    let verified = match written {
        Some(p) if req.verify => {
            if file_hash(p)? != render_hash(repo, &found, req.format)? {
                return Err(OpsError::VerifyFailed {
                    what: p.display().to_string(),
                    snapshot: snap.id.short().to_string(),
                });
            }
            Some(true)
        }
        _ => None,
    };
    Ok(Exported { snapshot_id: snap.id.to_hex(), report, verified })
}
