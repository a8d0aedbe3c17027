//! `arca export`: a snapshot as a tar or zip archive.

use crate::cli::{Cli, ExportArgs, ExportFormat};
use crate::context;
use crate::output::Output;
use anyhow::{bail, Context, Result};
use arca_fs::export::{export_tar, export_zip, ExportReport};
use arca_repo::treewalk::{lookup, Found};
use arca_repo::Repository;
use std::io::{Read, Write};

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
fn render_hash(repo: &Repository, found: &Found, format: ExportFormat) -> Result<blake3::Hash> {
    Ok(match format {
        ExportFormat::Zip => {
            let (_, cur) = export_zip(repo, found, std::io::Cursor::new(Vec::new()))?;
            blake3::hash(cur.get_ref())
        }
        _ => {
            let (_, h) = export_tar(repo, found, Hashing { inner: std::io::sink(), hasher: blake3::Hasher::new() })?;
            h.hasher.finalize()
        }
    })
}

pub fn run(cli: &Cli, out: &Output, a: &ExportArgs) -> Result<i32> {
    let (repo, _lock) = context::open_session(cli, out, context::Session::Read("export"))?;
    let (spec, path) = a.snapshot.split_once(':').unwrap_or((&a.snapshot, ""));
    let snap = super::find_snapshot(&repo, out, spec, &a.filter)?;
    let found = lookup(&repo, &snap.snapshot.tree, path.trim_end_matches('/').as_bytes())?
        .ok_or_else(|| super::not_in_snapshot(path, &snap))?;
    let to_stdout = a.output == "-";
    if to_stdout && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        bail!("standard output is a terminal: an archive there is binary noise; give -o FILE, or pipe it (arca export … | tar -t)");
    }
    if a.verify && to_stdout {
        bail!("--verify reads the archive back, so it needs -o FILE (a file or a device), not standard output");
    }
    let report: ExportReport = match (a.format, to_stdout) {
        (ExportFormat::Zip, true) => bail!("zip needs a seekable output: give -o FILE, or use --format tar for pipes"),
        (ExportFormat::Zip, false) => {
            let f = std::fs::File::create(&a.output).with_context(|| format!("cannot create {}", a.output))?;
            let (r, f) = export_zip(&repo, &found, f)?;
            f.sync_all().with_context(|| format!("cannot write {}", a.output))?;
            r
        }
        (_, true) => {
            crate::output::data_on_stdout();
            let stdout = std::io::stdout().lock();
            let (r, mut w) = export_tar(&repo, &found, std::io::BufWriter::with_capacity(1 << 20, stdout))?;
            w.flush().context("cannot write to standard output")?;
            r
        }
        (_, false) => {
            let f = std::fs::File::create(&a.output).with_context(|| format!("cannot create {}", a.output))?;
            let (r, w) = export_tar(&repo, &found, std::io::BufWriter::with_capacity(1 << 20, f))?;
            let f = w.into_inner().map_err(|e| e.into_error()).with_context(|| format!("cannot write {}", a.output))?;
            f.sync_all().with_context(|| format!("cannot write {}", a.output))?;
            r
        }
    };
    for s in &report.skipped {
        out.warn(format!("not in the archive: {s}"));
    }
    let mut verified = None;
    if a.verify {
        let expected = render_hash(&repo, &found, a.format)?;
        let mut f = std::fs::File::open(&a.output).with_context(|| format!("cannot read back {}", a.output))?;
        let mut h = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).with_context(|| format!("cannot read back {}", a.output))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        if h.finalize() != expected {
            bail!("verification failed: {} does not match snapshot {}", a.output, snap.id.short());
        }
        verified = Some(true);
    }
    if out.json {
        out.json_line(&serde_json::json!({"type": "summary", "snapshot_id": snap.id.to_hex(), "report": report, "verified": verified}));
    } else if !to_stdout {
        out.info(format!(
            "wrote {} entries ({} of data) to {}{}",
            report.entries,
            crate::text::size(report.data_bytes),
            a.output,
            if verified.is_some() { "; verified against the snapshot" } else { "" }
        ));
    }
    Ok(crate::exit::OK)
}
