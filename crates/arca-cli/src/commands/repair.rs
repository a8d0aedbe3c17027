//! `arca repair`.

use crate::cli::{Cli, RepairCommand};
use crate::context;
use crate::output::Output;
use crate::progress::Reporter;
use anyhow::Result;
use arca_ops::repair::{repair, RepairReport, RepairRequest};

pub fn run(cli: &Cli, out: &Output, r: &RepairCommand) -> Result<i32> {
    let req = match r {
        RepairCommand::Index => RepairRequest::Index,
        RepairCommand::Snapshots(a) => RepairRequest::Snapshots { dry_run: a.dry_run, forget: a.forget },
        RepairCommand::Packs(a) => RepairRequest::Packs { packs: a.packs.clone() },
    };
    let (repo, lock) = context::open_session(cli, out, req.access())?;
    let lock = lock.ok_or_else(|| anyhow::anyhow!("repair needs a lock on the repository"))?;
    let p = Reporter::new(out, req.phase());
    let report = repair(&repo, &lock, &req, &p)?;
    p.progress.finish();
    let (dry_run, forget) = match req {
        RepairRequest::Snapshots { dry_run, forget } => (dry_run, forget),
        _ => (false, false),
    };
    match report {
        RepairReport::Packs(report) => {
            if out.json {
                out.json_line(&serde_json::json!({"type": "summary", "report": report}));
            } else {
                for r in &report.repaired {
                    out.line(format!("repaired pack {r}"));
                }
                for r in &report.parity_rebuilt {
                    out.line(format!("wrote the parity of pack {r} anew (it was damaged or missing)"));
                }
                for u in &report.unrepairable {
                    out.problem(format!("cannot repair {u}"));
                }
                out.info(format!(
                    "checked {} packs: {} repaired, {} damaged beyond repair",
                    report.packs_checked,
                    report.repaired.len(),
                    report.unrepairable.len()
                ));
            }
            if !report.unrepairable.is_empty() {
                anyhow::bail!("{} packs could not be repaired", report.unrepairable.len());
            }
        }
        RepairReport::Snapshots(report) => {
            if out.json {
                out.json_line(&serde_json::json!({"type": "summary", "dry_run": dry_run, "report": report}));
            } else {
                for s in &report.repaired {
                    match &s.repaired {
                        Some(new) => out.line(format!("snapshot {} → repaired copy {}", &s.original[..8], &new[..8])),
                        None => out.line(format!("snapshot {} would be repaired", &s.original[..8])),
                    }
                    for l in &s.lost {
                        out.line(format!("  lost {}", crate::text::escape(l.as_bytes())));
                    }
                }
                out.info(format!(
                    "{} of {} snapshots {}; {} originals forgotten{}",
                    report.repaired.len(),
                    report.snapshots_checked,
                    if dry_run { "need repair (dry run)" } else { "repaired" },
                    report.originals_forgotten.len(),
                    if forget || report.repaired.is_empty() {
                        ""
                    } else {
                        " (forget them when you are satisfied; --forget does it)"
                    }
                ));
            }
        }
        RepairReport::Index(report) => {
            if out.json {
                out.json_line(&serde_json::json!({"type": "summary", "report": report}));
            } else {
                out.info(format!(
                    "indexed {} blobs in {} packs; wrote {} index files, removed {}",
                    report.blobs_indexed,
                    report.packs_indexed,
                    report.index_files_written.len(),
                    report.index_files_removed.len()
                ));
                for u in &report.unreadable_packs {
                    out.warn(format!("unreadable pack {u}"));
                }
            }
        }
    }
    Ok(crate::exit::OK)
}
