//! `arca export`: a snapshot as a tar or zip archive.

use crate::cli::{Cli, ExportArgs, ExportFormat};
use crate::context;
use crate::output::Output;
use crate::progress::Reporter;
use anyhow::{bail, Result};
use arca_ops::export::{export, ArchiveFormat, Destination, ExportRequest};
use std::path::Path;

pub fn run(cli: &Cli, out: &Output, a: &ExportArgs) -> Result<i32> {
    let (snapshot, path) = a.snapshot.split_once(':').unwrap_or((&a.snapshot, ""));
    let req = ExportRequest {
        snapshot: snapshot.to_string(),
        path: path.to_string(),
        filter: a.filter.filter(),
        format: match a.format {
            ExportFormat::Zip => ArchiveFormat::Zip,
            ExportFormat::Tar | ExportFormat::Pax => ArchiveFormat::Tar,
        },
        verify: a.verify,
        tape: a.tape,
    };
    let to_stdout = a.output == "-";
    if to_stdout && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        bail!("standard output is a terminal: an archive there is binary noise; give -o FILE, or pipe it (arca export … | tar -t)");
    }
    let (repo, _lock) = context::open_session(cli, out, context::Session::Read("export"))?;
    let events = Reporter::new(out, "export");
    let done = if to_stdout {
        crate::output::data_on_stdout();
        let mut stdout = std::io::stdout().lock();
        export(&repo, &req, Destination::Stream(&mut stdout), &events)?
    } else {
        export(&repo, &req, Destination::File(Path::new(&a.output)), &events)?
    };
    let (report, verified) = (&done.report, done.verified);
    for s in &report.skipped {
        out.warn(format!("not in the archive: {s}"));
    }
    if out.json {
        out.json_line(&serde_json::json!({"type": "summary", "snapshot_id": done.snapshot_id, "report": report, "verified": verified}));
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
