//! `arca prune`, and the prune step of `arca forget --prune`.

use crate::cli::{Cli, PruneArgs, PruneTuning};
use crate::context::{self, Session};
use crate::output::Output;
use crate::progress::Reporter;
use crate::text::{parse_duration, parse_size, size};
use anyhow::{anyhow, Result};
use arca_repo::lock::SessionLock;
use arca_repo::prune::{prune, MaxUnused, PruneOptions, PruneReport};
use arca_repo::Repository;
use std::sync::Arc;

pub fn run(cli: &Cli, out: &Output, a: &PruneArgs) -> Result<i32> {
    let opts = options(cli, &a.tuning, a.dry_run)?;
    // A dry run changes nothing (not even a lock needs writing); it plans from what is there.
    let session = if a.dry_run { Session::Metadata } else { Session::Exclusive("prune") };
    let (repo, lock) = context::open_session(cli, out, session)?;
    if !a.dry_run && lock.is_none() {
        return Err(anyhow!("prune needs an exclusive lock"));
    }
    execute(out, &repo, lock.as_ref(), &opts)?;
    Ok(crate::exit::OK)
}

/// The engine's options from the command line.
pub fn options(cli: &Cli, t: &PruneTuning, dry_run: bool) -> Result<PruneOptions> {
    let max_unused: MaxUnused = t.max_unused.parse().map_err(|e| anyhow!("--max-unused {e}"))?;
    let max_repack = t.max_repack.as_deref().map(parse_size).transpose().map_err(|e| anyhow!("--max-repack: {e}"))?;
    let grace = parse_duration(&t.grace).map_err(|e| anyhow!("--grace: {e}"))?;
    let threads = cli.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    Ok(PruneOptions { max_unused, max_repack, dry_run, grace, threads })
}

/// Prune with a lock already held, and report.
pub fn execute(
    out: &Output,
    repo: &Arc<Repository>,
    lock: Option<&SessionLock>,
    opts: &PruneOptions,
) -> Result<PruneReport> {
    let p = Reporter::new(out, "prune");
    let report = prune(repo, lock, opts, &p)?;
    p.progress.finish();
    if out.json {
        out.json_line(&serde_json::json!({"type": "summary", "prune": report}));
        return Ok(report);
    }
    let pl = &report.plan;
    let sw = &report.swept;
    if report.stale_locks_removed > 0 {
        out.info(format!("removed {}", crate::text::count(report.stale_locks_removed, "stale lock", "stale locks")));
    }
    if report.temporaries_removed > 0 {
        out.info(format!(
            "removed {} left by interrupted writers",
            crate::text::count(report.temporaries_removed, "temporary file", "temporary files")
        ));
    }
    out.line(format!("used by snapshots:     {}", size(pl.used_bytes)));
    out.line(format!("unused packs:          {} ({})", pl.unused_packs, size(pl.unused_bytes)));
    if pl.orphan_packs > 0 {
        out.line(format!("packs no index names:  {} ({})", pl.orphan_packs, size(pl.orphan_bytes)));
    }
    out.line(format!(
        "repack:                {} packs, {} blobs, {} to rewrite, frees {}",
        pl.repack_packs,
        pl.repack_blobs,
        size(pl.repack_bytes),
        size(pl.repack_frees)
    ));
    out.line(format!("unused left in packs:  {}", size(pl.unused_left)));
    if report.dry_run {
        out.line(format!(
            "dry run: would mark {} packs; stored data would go from {} in {} packs to about {} in {} packs",
            pl.unused_packs + pl.orphan_packs + pl.repack_packs,
            size(report.before.bytes),
            report.before.packs,
            size(report.after.bytes + pl.repack_bytes),
            report.after.packs + pl.repack_packs.min(1)
        ));
        return Ok(report);
    }
    out.line(format!(
        "deleted:               {} packs ({}), {} index files",
        sw.packs_deleted,
        size(sw.bytes_deleted),
        sw.index_files_deleted
    ));
    if sw.packs_restored > 0 {
        out.line(format!("kept:                  {} marked packs a newer snapshot needs", sw.packs_restored));
    }
    out.line(format!(
        "stored:                {} in {} packs → {} in {} packs",
        size(report.before.bytes),
        report.before.packs,
        size(report.after.bytes),
        report.after.packs
    ));
    if sw.marks_waiting > 0 {
        out.info(format!(
            "{} marks wait for their sweep (a later prune does it): {}",
            sw.marks_waiting,
            sw.waiting_for.join("; ")
        ));
    }
    Ok(report)
}
