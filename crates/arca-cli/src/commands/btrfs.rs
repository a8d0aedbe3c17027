//! `arca btrfs push|list|pull`: btrfs snapshot sets (arca-fsnap's `set`).

use crate::cli::{BtrfsCommand, Cli};
use crate::context;
use crate::output::Output;
use crate::progress::{Progress, Reporter};
use crate::text::size;
use anyhow::{bail, Result};
use arca_fsnap::set;
use arca_ops::Target;

pub fn run(cli: &Cli, out: &Output, c: &BtrfsCommand) -> Result<i32> {
    match c {
        BtrfsCommand::Push { dir, dry_run, delete, host, tags } => {
            let session = if *dry_run {
                context::Session::Read("btrfs push --dry-run")
            } else {
                context::Session::Write("btrfs push")
            };
            let (repo, lock) = context::open_session(cli, out, session)?;
            let target = match (&lock, dry_run) {
                (_, true) => Target::DryRun,
                (Some(l), false) => Target::Locked(l),
                (None, false) => bail!("a push needs a lock on the repository"),
            };
            let opts = set::PushOptions {
                dir: dir.clone(),
                dry_run: *dry_run,
                delete: *delete,
                request: arca_ops::backup::BackupRequest {
                    host: host.clone(),
                    tags: tags.clone(),
                    threads: cli.threads,
                    ..Default::default()
                },
                files: Default::default(),
            };
            let reporter = Reporter { progress: Progress::new(out, "btrfs push"), out, list: cli.verbose };
            let cancel = crate::interrupt::on_signals()?;
            let result = set::push(&repo, target, &opts, &reporter, &cancel);
            reporter.progress.finish();
            let r = result?;
            if out.json {
                out.json_line(&serde_json::json!({"type": "summary", "push": r}));
                return Ok(crate::exit::OK);
            }
            for p in &r.pushed {
                match &p.snapshot_id {
                    Some(id) => out.info(format!(
                        "{}: snapshot {} ({} files read, {} unchanged, {} added)",
                        p.name,
                        &id[..8],
                        p.files_read,
                        p.files_unchanged,
                        size(p.bytes_added_stored)
                    )),
                    None => out.info(format!("{}: would be pushed", p.name)),
                }
            }
            for f in &r.forgotten {
                out.info(format!(
                    "{f}: {} (no longer in {})",
                    if r.dry_run { "would be forgotten" } else { "forgotten" },
                    r.set
                ));
            }
            out.info(format!(
                "{}: {} pushed, {} already stored{}",
                r.set,
                r.pushed.len(),
                r.present.len(),
                if r.dry_run { " (dry run: nothing stored)" } else { "" }
            ));
            Ok(crate::exit::OK)
        }
        BtrfsCommand::List { dir, set: which, host, local } => {
            let opened = if *local {
                None
            } else {
                Some(context::open_session(cli, out, context::Session::Read("btrfs list"))?)
            };
            let reporter = Reporter { progress: Progress::new(out, "btrfs list"), out, list: 0 };
            let (name, rows) = set::list(
                opened.as_ref().map(|(r, _)| r.as_ref()),
                dir.as_deref(),
                which.as_deref(),
                host.as_deref(),
                &reporter,
            )?;
            reporter.progress.finish();
            if out.json {
                out.json_line(&serde_json::json!({"type": "btrfs-set", "set": name, "members": rows}));
                return Ok(crate::exit::OK);
            }
            let opt = |v: Option<u64>| v.map(size).unwrap_or_else(|| "-".into());
            out.info(format!("set {name}"));
            out.line(format!(
                "{:<28} {:>10} {:>10} {:>10}   {:>9} {:>10} {:>10} {:>10}",
                "name", "btrfs", "exclusive", "shared", "snapshot", "stored", "exclusive", "shared"
            ));
            for r in &rows {
                out.line(format!(
                    "{:<28} {:>10} {:>10} {:>10}   {:>9} {:>10} {:>10} {:>10}",
                    r.name,
                    if r.local { opt(r.local_total) } else { "-".into() },
                    opt(r.local_exclusive),
                    opt(r.local_shared),
                    r.snapshot_id.as_deref().map(|i| &i[..8]).unwrap_or("-"),
                    opt(r.stored_total),
                    opt(r.stored_exclusive),
                    opt(r.stored_shared),
                ));
            }
            Ok(crate::exit::OK)
        }
        BtrfsCommand::Pull { dir, set: which, host, only, dry_run, delete } => {
            let (repo, _lock) = context::open_session(cli, out, context::Session::Read("btrfs pull"))?;
            let opts = set::PullOptions {
                dir: dir.clone(),
                set: which.clone(),
                host: host.clone(),
                only: only.clone(),
                dry_run: *dry_run,
                delete: *delete,
                threads: cli.threads,
            };
            let reporter = Reporter { progress: Progress::new(out, "btrfs pull"), out, list: 0 };
            let cancel = crate::interrupt::on_signals()?;
            let result = set::pull(&repo, &opts, &reporter, &cancel);
            reporter.progress.finish();
            let r = result?;
            if out.json {
                out.json_line(&serde_json::json!({"type": "summary", "pull": r}));
                return Ok(crate::exit::OK);
            }
            for p in &r.pulled {
                let from = p.based_on.as_deref().map(|b| format!(" on top of {b}")).unwrap_or_default();
                if r.dry_run {
                    out.info(format!(
                        "{}: would be pulled{from}{}",
                        p.name,
                        if p.resumed { " (resuming)" } else { "" }
                    ));
                } else {
                    out.info(format!(
                        "{}: pulled{from}: {} files written ({}), {} unchanged, {} removed",
                        p.name,
                        p.files_written,
                        size(p.bytes_written),
                        p.files_kept,
                        p.deleted
                    ));
                }
                if let Some(why) = &p.not_marked {
                    out.warn(format!(
                        "{}: not marked as received from the original ({why}): btrfs send -p cannot build on it",
                        p.name
                    ));
                }
            }
            for d in &r.deleted {
                out.info(format!("{d}: {}", if r.dry_run { "would be deleted" } else { "deleted" }));
            }
            out.info(format!(
                "{}: {} pulled, {} already here{}",
                r.set,
                r.pulled.len(),
                r.present.len(),
                if r.dry_run { " (dry run: nothing changed)" } else { "" }
            ));
            Ok(crate::exit::OK)
        }
    }
}
