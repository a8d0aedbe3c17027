//! `arca repair`.

use crate::cli::{Cli, RepairCommand};
use crate::context;
use crate::output::Output;
use crate::progress::Reporter;
use anyhow::Result;

pub fn run(cli: &Cli, out: &Output, r: &RepairCommand) -> Result<i32> {
    let session = match r {
        RepairCommand::Index => context::Session::Exclusive("repair index"),
        RepairCommand::Snapshots(_) => context::Session::Write("repair snapshots"),
        RepairCommand::Packs(_) => context::Session::Write("repair packs"),
    };
    let (repo, lock) = context::open_session(cli, out, session)?;
    let lock = lock.ok_or_else(|| anyhow::anyhow!("repair needs a lock on the repository"))?;
    match r {
        RepairCommand::Packs(a) => {
            let only = a
                .packs
                .iter()
                .map(|p| arca_format::Id::from_hex(p).ok_or_else(|| anyhow::anyhow!("{p:?} is not a full pack id")))
                .collect::<Result<Vec<_>>>()?;
            let p = Reporter::new(out, "repair-packs");
            let report = arca_repo::parity::repair_packs(&repo, &only, &p)?;
            p.progress.finish();
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
        RepairCommand::Snapshots(a) => {
            let p = Reporter::new(out, "repair-snapshots");
            let report = arca_repo::repair::repair_snapshots(&repo, &lock, a.dry_run, a.forget, &p)?;
            p.progress.finish();
            if out.json {
                out.json_line(&serde_json::json!({"type": "summary", "dry_run": a.dry_run, "report": report}));
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
                    if a.dry_run { "need repair (dry run)" } else { "repaired" },
                    report.originals_forgotten.len(),
                    if a.forget || report.repaired.is_empty() {
                        ""
                    } else {
                        " (forget them when you are satisfied; --forget does it)"
                    }
                ));
            }
        }
        RepairCommand::Index => {
            let p = Reporter::new(out, "repair-index");
            let report = arca_repo::repair::repair_index(&repo, &lock, &p)?;
            p.progress.finish();
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
