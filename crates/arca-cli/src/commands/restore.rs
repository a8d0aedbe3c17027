//! `arca restore` and `arca dump`.

use crate::cli::{Cli, DumpArgs, OverwriteMode, RestoreArgs};
use crate::context;
use crate::output::Output;
use crate::progress::{Progress, Reporter};
use crate::text::{escape, size};
use anyhow::{bail, Context, Result};
use arca_format::NodeKind;
use arca_fs::Overwrite;
use arca_ops::restore::{RestoreRequest, Restored};
use arca_repo::treewalk::{lookup, Found};

/// Split `SNAPSHOT[:PATH]`.
fn split_spec(spec: &str) -> (&str, &str) {
    match spec.split_once(':') {
        Some((s, p)) => (s, p),
        None => (spec, ""),
    }
}

pub fn run(cli: &Cli, out: &Output, a: &RestoreArgs) -> Result<i32> {
    if let Some(dir) = &a.btrfs_receive {
        return receive(cli, out, a, dir);
    }
    let Some(target) = &a.target else { bail!("--target is required: the directory to restore into") };
    if let Some(from) = &a.reflink_from {
        if !from.is_dir() {
            bail!(
                "--reflink-from {}: not a directory (give an earlier restore to clone unchanged files from)",
                from.display()
            );
        }
    }
    let (spec, path) = split_spec(a.snapshot.as_deref().unwrap_or(""));
    let req = RestoreRequest {
        snapshot: (!spec.is_empty()).then(|| spec.to_string()),
        at: a.at.as_deref().map(super::backup::parse_time).transpose()?,
        path: path.to_string(),
        filter: a.filter.filter(),
        target: target.clone(),
        includes: a.includes.clone(),
        excludes: a.excludes.clone(),
        verify: a.verify,
        overwrite: match a.overwrite {
            OverwriteMode::Always => Overwrite::Always,
            OverwriteMode::IfChanged => Overwrite::IfChanged,
            OverwriteMode::Never => Overwrite::Never,
        },
        delete: a.delete,
        dry_run: a.dry_run,
        set_owner: None,
        threads: cli.threads,
        reflink_from: a.reflink_from.clone(),
    };
    let (repo, _lock) = context::open_session(cli, out, context::Session::Read("restore"))?;
    let reporter = Reporter { progress: Progress::new(out, "restore"), out, list: u8::from(a.dry_run) };
    let result = arca_ops::restore::restore(&repo, &req, &reporter);
    reporter.progress.finish();
    let Restored { snapshot_id, report } = result?;
    if out.json {
        out.json_line(
            &serde_json::json!({"type": "summary", "snapshot_id": snapshot_id, "target": target, "report": report}),
        );
    } else {
        if !a.no_warn_metadata {
            for w in &report.warnings {
                out.warn(w);
            }
        }
        if report.unchanged + report.kept + report.deleted > 0 {
            out.info(format!(
                "{} already matched, {} kept, {} {}",
                crate::text::count(report.unchanged, "file", "files"),
                crate::text::count(report.kept, "existing entry", "existing entries"),
                crate::text::count(report.deleted, "extra entry", "extra entries"),
                if a.dry_run { "would be deleted" } else { "deleted" }
            ));
        }
        out.info(format!(
            "{} {}, {}, {}, {} of data from snapshot {} to {}{}",
            if a.dry_run { "dry run: would restore" } else { "restored" },
            crate::text::count(report.files, "file", "files"),
            crate::text::count(report.dirs, "directory", "directories"),
            crate::text::count(report.other, "other entry", "other entries"),
            size(report.bytes),
            &snapshot_id[..8],
            target.display(),
            if a.verify {
                format!("; {} verified", crate::text::count(report.verified_files, "file", "files"))
            } else {
                String::new()
            }
        ));
        if report.reflinked > 0 {
            out.info(format!(
                "{} ({}) cloned from {}, sharing their extents",
                crate::text::count(report.reflinked, "file", "files"),
                size(report.reflinked_bytes),
                a.reflink_from.as_deref().unwrap_or(std::path::Path::new("")).display()
            ));
        }
        for (p, e) in &report.errors {
            out.problem(format!("error: {}: {e}", escape(p.as_bytes())));
        }
    }
    if !report.errors.is_empty() {
        bail!(
            "{} could not be restored (listed above); everything else was restored",
            crate::text::count(report.errors.len() as u64, "entry", "entries")
        );
    }
    Ok(crate::exit::OK)
}

/// `restore --btrfs-receive DIR`: the stored send stream into `btrfs receive`.
fn receive(cli: &Cli, out: &Output, a: &RestoreArgs, dir: &std::path::Path) -> Result<i32> {
    let (spec, path) = split_spec(a.snapshot.as_deref().unwrap_or(""));
    if !path.is_empty() {
        bail!("--btrfs-receive takes a whole snapshot (its one stream): give SNAPSHOT without :{path}");
    }
    if spec.is_empty() {
        bail!("which snapshot? give its id prefix or `latest` (`arca snapshots` lists them)");
    }
    if a.dry_run {
        bail!("--btrfs-receive has no --dry-run: btrfs receive cannot check a stream without applying it");
    }
    let to_stdout = dir == std::path::Path::new("-");
    if to_stdout {
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            bail!("--btrfs-receive - writes the stream to standard output, which is a terminal here: pipe it (… | btrfs receive DIR) or redirect it");
        }
        crate::output::data_on_stdout();
    }
    let (repo, _lock) = context::open_session(cli, out, context::Session::Read("restore"))?;
    let snap = super::find_snapshot(&repo, out, spec, &a.filter)?;
    let done = arca_fsnap::receive::receive(&repo, &snap, dir)?;
    if out.json {
        out.json_line(&serde_json::json!({"type": "summary", "received": done, "dir": dir}));
    } else if to_stdout {
        out.problem(format!("wrote the send stream of snapshot {} ({})", &done.snapshot_id[..8], size(done.bytes)));
    } else {
        out.info(format!(
            "received {} ({}) from snapshot {} into {}{}",
            done.stream,
            size(done.bytes),
            &done.snapshot_id[..8],
            dir.display(),
            done.subvolume.map(|s| format!(" as subvolume {s}")).unwrap_or_default()
        ));
    }
    Ok(crate::exit::OK)
}

pub fn dump(cli: &Cli, out: &Output, a: &DumpArgs) -> Result<i32> {
    let (repo, _lock) = context::open_session(cli, out, context::Session::Read("restore"))?;
    let snap = super::find_snapshot(&repo, out, &a.snapshot, &a.filter)?;
    let node = match lookup(&repo, &snap.snapshot.tree, a.path.as_bytes())? {
        Some(Found::Node(n)) => n,
        Some(Found::Root(_)) => {
            bail!(
                "{} is the snapshot root, a directory: use `arca export {}` for a tar of it, or `arca restore`",
                a.path,
                a.snapshot
            )
        }
        None => return Err(super::not_in_snapshot(&a.path, &snap)),
    };
    if node.kind != NodeKind::File {
        bail!(
            "{} is {}, not a file: use `arca export {}:{}` for a tar of it, or `arca restore`",
            a.path,
            super::kind_name(node.kind),
            a.snapshot,
            a.path
        );
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) && node.size > 0 {
        bail!("standard output is a terminal: redirect the file's contents (arca dump … > FILE) or pipe them");
    }
    crate::output::data_on_stdout();
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    arca_fs::restore::dump(&repo, &node, &mut lock).with_context(|| format!("cannot dump {}", a.path))?;
    Ok(crate::exit::OK)
}
