//! `arca check`: verify structure and, optionally, data.

use crate::cli::{CheckArgs, Cli};
use crate::context;
use crate::output::Output;
use crate::progress::Reporter;
use crate::text::size;
use anyhow::{bail, Result};
use arca_ops::check::{check, CheckRequest};
use arca_repo::check::ReadData;

fn read_mode(a: &CheckArgs) -> Result<ReadData> {
    if a.read_data {
        return Ok(ReadData::All);
    }
    let Some(s) = &a.read_data_subset else { return Ok(ReadData::None) };
    s.parse().map_err(|e| anyhow::anyhow!("--read-data-subset {e}"))
}

pub fn run(cli: &Cli, out: &Output, a: &CheckArgs) -> Result<i32> {
    let read = read_mode(a)?;
    let (repo, lock) = context::open_session(cli, out, context::Session::Read("check"))?;
    let progress = Reporter::new(out, "check");
    let r = check(&repo, lock.as_ref(), &CheckRequest { read_data: read }, &progress)?;
    progress.progress.finish();
    if out.json {
        out.json_line(&serde_json::json!({"type": "summary", "ok": r.ok(), "report": r}));
    } else {
        out.info(format!(
            "checked {}, {}; read {} ({}), {}",
            crate::text::count(r.snapshots_checked as u64, "snapshot", "snapshots"),
            crate::text::count(r.trees_checked as u64, "tree", "trees"),
            crate::text::count(r.packs_read as u64, "pack", "packs"),
            size(r.bytes_read),
            r.blobs_read
        ));
        let h = &r.history;
        out.info(format!(
            "history: {} by {}; {} signed, {} unsigned",
            crate::text::count(h.statements as u64, "signed statement", "signed statements"),
            crate::text::count(h.signers as u64, "signer", "signers"),
            crate::text::count(h.signed_snapshots as u64, "snapshot", "snapshots"),
            h.unsigned_snapshots
        ));
        for n in &r.notes {
            out.info(format!("note: {}: {}", n.object, n.message));
        }
        for e in &r.errors {
            out.problem(format!("error: {}: {}", e.object, e.message));
        }
        if !r.damaged_packs.is_empty() {
            out.problem(format!("damaged packs: {}", r.damaged_packs.join(", ")));
        }
        for af in &r.affected {
            let short = af.snapshot.get(..8).unwrap_or(&af.snapshot);
            out.problem(format!("snapshot {short} ({}) has damaged data in:", af.time));
            for p in &af.paths {
                out.problem(format!("  {p}"));
            }
        }
        if r.ok() {
            out.info("no errors found");
        }
    }
    if !r.ok() {
        bail!(
            "the repository has {}; likely causes: disk or memory faults, an interrupted copy, or tampering. Unaffected files still restore.",
            crate::text::count(r.errors.len() as u64, "error", "errors")
        );
    }
    Ok(crate::exit::OK)
}
