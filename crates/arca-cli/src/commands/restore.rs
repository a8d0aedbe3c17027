//! `arca restore` and `arca dump`.

use crate::cli::{Cli, DumpArgs, OverwriteMode, RestoreArgs};
use crate::context;
use crate::output::Output;
use crate::progress::{Progress, Reporter};
use crate::text::{escape, size};
use anyhow::{bail, Context, Result};
use arca_format::NodeKind;
use arca_fs::{Overwrite, RestoreOptions};
use arca_repo::treewalk::{lookup, walk, Found, Visit};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

fn globs(patterns: &[String]) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(GlobBuilder::new(p).build().with_context(|| format!("bad pattern {p:?}"))?);
    }
    Ok(Some(b.build()?))
}

/// Split `SNAPSHOT[:PATH]`.
fn split_spec(spec: &str) -> (&str, &str) {
    match spec.split_once(':') {
        Some((s, p)) => (s, p),
        None => (spec, ""),
    }
}

pub fn run(cli: &Cli, out: &Output, a: &RestoreArgs) -> Result<i32> {
    let (repo, _lock) = context::open_session(cli, out, context::Session::Read("restore"))?;
    let (spec, path) = split_spec(a.snapshot.as_deref().unwrap_or(""));
    let snap = match (&a.at, spec) {
        (Some(at), "") => {
            let at = super::backup::parse_time_end(at)?;
            let all = super::all_snapshots(&repo, out)?;
            arca_repo::snapshots::resolve_at(&all, at, &a.filter.filter())?
        }
        (Some(_), _) => bail!("--at chooses the snapshot: give only :PATH, not {spec:?}"),
        (None, "") => bail!("which snapshot? give SNAPSHOT[:PATH] (an id prefix or `latest`) or --at TIME"),
        (None, spec) => super::find_snapshot(&repo, out, spec, &a.filter)?,
    };
    let base: Vec<u8> = path.trim_end_matches('/').as_bytes().to_vec();
    let found = lookup(&repo, &snap.snapshot.tree, &base)?.ok_or_else(|| super::not_in_snapshot(path, &snap))?;
    let reporter = Reporter { progress: Progress::new(out, "restore"), out, list: u8::from(a.dry_run) };
    if out.show_progress || out.json {
        let mut total = 0u64;
        let root = match &found {
            Found::Root(t) => Some(*t),
            Found::Node(n) => n.subtree,
        };
        match (root, &found) {
            (Some(t), _) => {
                let mut add = |_: &[u8], n: &arca_format::Node| {
                    if n.kind == NodeKind::File {
                        total += n.size - n.holes.iter().map(|h| h.1).sum::<u64>();
                    }
                    Ok(Visit::Continue)
                };
                walk(&repo, &t, &mut add, &mut |_, _| {})?;
            }
            (None, Found::Node(n)) => total = n.size,
            (None, Found::Root(_)) => {}
        }
        reporter.progress.set_total(total);
    }
    let opts = RestoreOptions {
        target: a.target.clone(),
        includes: globs(&a.includes)?,
        excludes: globs(&a.excludes)?,
        verify: a.verify,
        set_owner: nix::unistd::geteuid().is_root(),
        overwrite: match a.overwrite {
            OverwriteMode::Always => Overwrite::Always,
            OverwriteMode::IfChanged => Overwrite::IfChanged,
            OverwriteMode::Never => Overwrite::Never,
        },
        delete: a.delete,
        dry_run: a.dry_run,
        threads: cli.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)),
        base: if base.starts_with(b"/") || base.is_empty() { base.clone() } else { [b"/".as_slice(), &base].concat() },
    };
    let report = arca_fs::restore(&repo, found, &opts, &reporter)?;
    reporter.progress.finish();
    if out.json {
        out.json_line(&serde_json::json!({"type": "summary", "snapshot_id": snap.id.to_hex(), "target": a.target, "report": report}));
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
            snap.id.short(),
            a.target.display(),
            if a.verify {
                format!("; {} verified", crate::text::count(report.verified_files, "file", "files"))
            } else {
                String::new()
            }
        ));
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
