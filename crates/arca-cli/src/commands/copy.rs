//! `arca copy --from-repo SRC`: replicate snapshots between repositories.

use crate::cli::{Cli, CopyArgs};
use crate::context::{self, Session};
use crate::output::Output;
use crate::progress::Reporter;
use crate::text::size;
use anyhow::{anyhow, Result};
use arca_ops::copy::CopyRequest;
use arca_ops::Target;
use arca_storage::ObjectKind;

pub fn run(cli: &Cli, out: &Output, a: &CopyArgs) -> Result<i32> {
    let from_loc = context::location_named(cli, &a.from_repo)?;
    let from = context::shown(&from_loc);
    let from_storage = context::storage(&from_loc).map_err(|e| e.context(format!("source repository {from}")))?;
    if !from_storage.exists(ObjectKind::Config, "config")? {
        return Err(anyhow!("source repository {from}: no repository there (check --from-repo)"));
    }
    let pw = context::from_password(a.from_password_file.as_deref())?;
    let (src, _src_lock) = context::open_with(cli, out, from_storage, &pw, Session::Read("copy"))
        .map_err(|e| e.context(format!("source repository {from}")))?;
    let session = if a.dry_run { Session::Metadata } else { Session::Write("copy") };
    let (dst, lock) = context::open_session(cli, out, session)?;
    let target = match (&lock, a.dry_run) {
        (_, true) => Target::DryRun,
        (Some(l), false) => Target::Locked(l),
        (None, false) => return Err(anyhow!("copy needs a lock on the destination")),
    };
    let req = CopyRequest {
        snapshots: a.snapshots.clone(),
        filter: a.filter.filter(),
        delete: a.delete,
        threads: cli.threads,
        map_file: (!cli.no_cache)
            .then(|| context::cache_dir(cli, &dst).join(format!("copy-from-{}.map", src.config().repo_id.to_hex()))),
    };
    let reporter = Reporter::new(out, "copy");
    let result = arca_ops::copy::copy(&src, &dst, target, &req, &reporter);
    reporter.progress.finish();
    let r = result?;
    for p in &r.protected {
        out.warn(format!("not deleted: snapshot {p}"));
    }
    if out.json {
        out.json_line(&serde_json::json!({
            "type": "summary", "dry_run": r.dry_run,
            "snapshots_selected": r.snapshots_selected, "snapshots_already_here": r.snapshots_already_here,
            "copied": r.copied, "deleted": r.deleted, "stats": r.stats,
        }));
        return Ok(crate::exit::OK);
    }
    for c in &r.copied {
        match &c.to {
            Some(d) => out.line(format!("copied {} → {}", &c.from[..8], &d[..8])),
            None => out.line(format!("would copy {}", &c.from[..8])),
        }
    }
    for d in &r.deleted {
        out.line(format!("{} {}", if r.dry_run { "would delete" } else { "deleted" }, &d[..8]));
    }
    out.info(format!(
        "{} snapshots {}, {} already here; {} blobs ({}) {}, {} already present",
        r.copied.len(),
        if r.dry_run { "to copy" } else { "copied" },
        r.snapshots_already_here,
        r.stats.blobs_sent,
        size(r.stats.bytes_sent),
        if r.dry_run { "to send" } else { "sent" },
        r.stats.blobs_present
    ));
    Ok(crate::exit::OK)
}
