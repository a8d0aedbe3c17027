//! `arca stats`.

use crate::cli::{Cli, StatsArgs, StatsMode};
use crate::context;
use crate::output::Output;
use crate::text::size;
use anyhow::Result;
use arca_repo::stats::{stats, StatsMode as Mode};

pub fn run(cli: &Cli, out: &Output, a: &StatsArgs) -> Result<i32> {
    let repo = context::open(cli, out)?;
    let filter = a.filter.filter();
    let snaps = match &a.snapshot {
        Some(spec) => vec![super::find_snapshot(&repo, out, spec, &a.filter)?],
        None => super::all_snapshots(&repo, out)?.into_iter().filter(|e| filter.matches(&e.snapshot)).collect(),
    };
    let mode = match a.mode {
        StatsMode::RestoreSize => Mode::RestoreSize,
        StatsMode::RawData => Mode::RawData,
    };
    let st = stats(&repo, &snaps, mode)?;
    if out.json {
        // Only the figures of the mode asked for: zeros of the other would look measured.
        let v = match mode {
            Mode::RestoreSize => serde_json::json!({
                "mode": "restore-size", "snapshots": st.snapshots, "files": st.files, "dirs": st.dirs,
                "total_size": st.total_size,
            }),
            Mode::RawData => serde_json::json!({
                "mode": "raw-data", "snapshots": st.snapshots, "blobs": st.blobs, "raw_bytes": st.raw_bytes,
                "stored_bytes": st.stored_bytes,
            }),
        };
        out.json_doc(&v);
        return Ok(crate::exit::OK);
    }
    out.line(format!("snapshots: {}", st.snapshots));
    match mode {
        Mode::RestoreSize => {
            out.line(format!("files: {}, dirs: {}", st.files, st.dirs));
            out.line(format!("restore size: {} ({} bytes)", size(st.total_size), st.total_size));
        }
        Mode::RawData => {
            out.line(format!("unique blobs: {}", st.blobs));
            out.line(format!("raw data: {} ({} bytes)", size(st.raw_bytes), st.raw_bytes));
            out.line(format!("stored: {} ({} bytes)", size(st.stored_bytes), st.stored_bytes));
            if st.stored_bytes > 0 {
                out.line(format!("compression ratio: {:.2}x", st.raw_bytes as f64 / st.stored_bytes as f64));
            }
        }
    }
    Ok(crate::exit::OK)
}
