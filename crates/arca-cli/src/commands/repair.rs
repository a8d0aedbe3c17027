//! `arca repair`.

use crate::cli::{Cli, RepairCommand};
use crate::context;
use crate::output::Output;
use crate::progress::Progress;
use anyhow::Result;

pub fn run(cli: &Cli, out: &Output, r: &RepairCommand) -> Result<i32> {
    let repo = context::open(cli, out)?;
    match r {
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
