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
    /// For a tape: a plain-text header block saying what follows and how to restore it with
    /// `dd` and `tar` alone, then the tar, all written in records of [`TAPE_BLOCK`] bytes.
    pub tape: bool,
}

/// The record size of `--tape` output: the header is one record, the tar fills whole ones.
pub const TAPE_BLOCK: usize = 65536;

/// Writes whole records of [`TAPE_BLOCK`] bytes, the last padded with zeros (which tar reads
/// as the end of the archive), so a tape drive in fixed-block mode takes every write and
/// `dd bs=65536` reads them back one each.
struct Records<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> Records<W> {
    fn new(inner: W) -> Self {
        Records { inner, buf: Vec::with_capacity(TAPE_BLOCK) }
    }

    /// Pad the last record and hand back the writer.
    fn finish(mut self) -> std::io::Result<W> {
        if !self.buf.is_empty() {
            self.buf.resize(TAPE_BLOCK, 0);
            self.inner.write_all(&self.buf)?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Records<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(TAPE_BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == TAPE_BLOCK {
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Only whole records go out: the rest waits for more or for `finish`.
        Ok(())
    }
}

/// The header record of a tape: what it holds and the exact commands that restore it,
/// readable with `head` or `dd count=1`, padded with newlines to one record. The same for the
/// same snapshot (no time of writing), so `--verify` can render it again.
pub fn tape_header(snap: &snaps::SnapshotEntry, path: &str) -> Vec<u8> {
    let s = &snap.snapshot;
    let what = if path.is_empty() { "the whole snapshot".to_string() } else { format!("{path} of the snapshot") };
    let text = format!(
        "ARCA TAPE 1\n\
         \n\
         This tape holds {what} as one POSIX (pax) tar archive, after this header record of\n\
         {TAPE_BLOCK} bytes. Everything is written in records of {TAPE_BLOCK} bytes.\n\
         \n\
         snapshot:  {id}\n\
         time:      {time}\n\
         host:      {host}\n\
         paths:     {paths}\n\
         files:     {files} ({bytes} bytes)\n\
         written by arca {version}\n\
         \n\
         Restore it with dd and GNU tar alone (as root, to keep owners):\n\
         \n\
         \x20 mkdir /restore && cd /restore\n\
         \x20 dd if=/dev/nst0 bs={TAPE_BLOCK} skip=1 | tar -x -p -f - --numeric-owner --xattrs --xattrs-include='*' --acls\n\
         \n\
         List it:  dd if=/dev/nst0 bs={TAPE_BLOCK} skip=1 | tar -t -v -f -\n\
         From a file instead of a tape drive, give if=FILE. Sparse files are GNU sparse 1.0,\n\
         extended attributes and ACLs SCHILY records, hard links tar links: GNU tar restores them.\n",
        id = snap.id.to_hex(),
        time = s.time,
        host = s.hostname,
        paths = s.paths.join(", "),
        files = s.summary.files_new + s.summary.files_changed + s.summary.files_unchanged,
        bytes = s.summary.total_bytes,
        version = env!("CARGO_PKG_VERSION"),
    );
    let mut b = text.into_bytes();
    b.truncate(TAPE_BLOCK);
    b.resize(TAPE_BLOCK, b'\n');
    b
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

/// The BLAKE3 of the archive rendered from the snapshot (nothing written anywhere), after
/// `header` (a tape's).
fn render_hash(
    repo: &Repository,
    found: &Found,
    format: ArchiveFormat,
    header: Option<&[u8]>,
) -> OpsResult<blake3::Hash> {
    let io = |source| OpsError::Io { path: "a rendering of the snapshot".into(), source };
    Ok(match (format, header) {
        (ArchiveFormat::Zip, _) => {
            let (_, cur) = export_zip(repo, found, std::io::Cursor::new(Vec::new()))?;
            blake3::hash(cur.get_ref())
        }
        (ArchiveFormat::Tar, None) => {
            let (_, h) = export_tar(repo, found, Hashing { inner: std::io::sink(), hasher: blake3::Hasher::new() })?;
            h.hasher.finalize()
        }
        (ArchiveFormat::Tar, Some(header)) => {
            let mut h = Hashing { inner: std::io::sink(), hasher: blake3::Hasher::new() };
            h.write_all(header).map_err(io)?;
            let (_, records) = export_tar(repo, found, Records::new(h))?;
            records.finish().map_err(io)?.hasher.finalize()
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
    if let (Destination::File(p), true) = (&dest, req.verify) {
        use std::os::unix::fs::FileTypeExt;
        if std::fs::metadata(p).is_ok_and(|m| m.file_type().is_char_device()) {
            return Err(OpsError::bad_option(
                "--verify",
                "reads the output back, which a tape drive cannot do without rewinding: verify a file, or read the tape back with dd and tar",
            ));
        }
    }
    if req.tape && req.format != ArchiveFormat::Tar {
        return Err(OpsError::bad_option("--tape", "writes a tar archive: leave out --format zip"));
    }
    let all = readable_snapshots(repo, events)?;
    let snap = snaps::resolve(&all, &req.snapshot, &req.filter)?;
    let path = req.path.trim_end_matches('/');
    let found = lookup(repo, &snap.snapshot.tree, path.as_bytes())?
        .ok_or_else(|| crate::restore::not_in_snapshot(path, &snap))?;
    let header = req.tape.then(|| tape_header(&snap, path));
    let (report, written) = match dest {
        Destination::Stream(w) => {
            let io = |source| OpsError::Io { path: "the output stream".into(), source };
            let r = match &header {
                Some(h) => {
                    w.write_all(h).map_err(io)?;
                    let (r, records) = export_tar(repo, &found, Records::new(&mut *w))?;
                    records.finish().map_err(io)?;
                    r
                }
                None => {
                    let (r, mut w) = export_tar(repo, &found, std::io::BufWriter::with_capacity(1 << 20, w))?;
                    w.flush().map_err(io)?;
                    r
                }
            };
            (r, None)
        }
        Destination::File(p) => {
            let io = |source| OpsError::Io { path: p.display().to_string(), source };
            let mut f = std::fs::File::create(p).map_err(io)?;
            let (r, f) = match (req.format, &header) {
                (ArchiveFormat::Zip, _) => export_zip(repo, &found, f)?,
                (ArchiveFormat::Tar, Some(h)) => {
                    f.write_all(h).map_err(io)?;
                    let (r, records) = export_tar(repo, &found, Records::new(f))?;
                    (r, records.finish().map_err(io)?)
                }
                (ArchiveFormat::Tar, None) => {
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
            if file_hash(p)? != render_hash(repo, &found, req.format, header.as_deref())? {
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
