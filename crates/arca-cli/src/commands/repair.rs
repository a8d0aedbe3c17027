//! `arca repair`.

use crate::cli::{Cli, RepairCommand};
use crate::context;
use crate::output::Output;
use crate::progress::Progress;
use anyhow::Result;

pub fn run(cli: &Cli, out: &Output, r: &RepairCommand) -> Result<i32> {
    let session = match r {
        RepairCommand::Index => context::Session::Exclusive("repair index"),
        RepairCommand::Snapshots(_) => context::Session::Write("repair snapshots"),
    };
    let (repo, _lock) = context::open_session(cli, out, session)?;
    match r {
        RepairCommand::Snapshots(a) => {
            let p = Progress::new(out, "repair-snapshots");
            let report = arca_repo::repair::repair_snapshots(&repo, a.dry_run, a.forget, &mut |done, total| {
                p.message(format!("snapshot {done}/{total}"))
            })?;
            p.finish();
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
            let p = Progress::new(out, "repair-index");
            let report =
                arca_repo::repair::repair_index(&repo, &mut |done, total| p.message(format!("pack {done}/{total}")))?;
            p.finish();
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
