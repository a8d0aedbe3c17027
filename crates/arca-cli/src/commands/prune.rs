//! `arca prune`, and the prune step of `arca forget --prune`.

use crate::cli::{Cli, PruneArgs, PruneTuning};
use crate::context;
use crate::output::Output;
use crate::progress::Reporter;
use crate::text::size;
use anyhow::{anyhow, Result};
use arca_ops::prune::{access, prune, PruneRequest};
use arca_ops::Target;
use arca_repo::prune::PruneReport;
use arca_repo::Repository;
use std::sync::Arc;

pub fn run(cli: &Cli, out: &Output, a: &PruneArgs) -> Result<i32> {
    let req = request(cli, &a.tuning)?;
    let (repo, lock) = context::open_session(cli, out, access(a.dry_run))?;
    let target = match (&lock, a.dry_run) {
        (_, true) => Target::DryRun,
        (Some(l), false) => Target::Locked(l),
        (None, false) => return Err(anyhow!("prune needs an exclusive lock")),
    };
    execute(out, &repo, target, &req)?;
    Ok(crate::exit::OK)
}

/// The prune request from the command line.
pub fn request(cli: &Cli, t: &PruneTuning) -> Result<PruneRequest> {
    Ok(PruneRequest {
        max_unused: t.max_unused.parse().map_err(|e| anyhow!("--max-unused {e}"))?,
        max_repack: t.max_repack.as_deref().map(str::parse).transpose().map_err(|e| anyhow!("--max-repack: {e}"))?,
        grace: t.grace.parse().map_err(|e| anyhow!("--grace: {e}"))?,
        threads: cli.threads,
    })
}

/// Prune (with the lock `target` holds), and report.
pub fn execute(out: &Output, repo: &Arc<Repository>, target: Target, req: &PruneRequest) -> Result<PruneReport> {
    let p = Reporter::new(out, "prune");
    let report = prune(repo, target, req, &p)?;
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
