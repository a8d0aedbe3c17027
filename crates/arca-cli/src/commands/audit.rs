//! `arca audit packages|against` and `arca recovery-script`: arca-machine's tools.

use crate::cli::{AuditCommand, Cli};
use crate::context;
use crate::output::Output;
use anyhow::Result;
use arca_machine::audit::{self, System};

/// Findings shown per kind without `--all`.
const SHOWN: usize = 50;

pub fn run(cli: &Cli, out: &Output, c: &AuditCommand) -> Result<i32> {
    match c {
        AuditCommand::Packages { snapshot, live, root, all, archive, packages, deb_cache } => {
            let started = std::time::Instant::now();
            let opened;
            let (system, what) = if *live {
                (System::Live(root.clone()), format!("the live system at {}", root.display()))
            } else {
                let spec = snapshot.as_deref().unwrap_or("latest");
                let (id, path) = spec.split_once(':').unwrap_or((spec, "/"));
                opened = context::open_session(cli, out, context::Session::Read("audit"))?;
                let snap = super::find_snapshot(&opened.0, out, id, &Default::default())?;
                let path = if path.is_empty() { "/" } else { path };
                let sys = System::snapshot(&opened.0, &snap.snapshot.tree, path)?;
                (sys, format!("snapshot {} at {path}", snap.id.short()))
            };
            let r = if *archive {
                let cache = match deb_cache {
                    Some(d) => d.clone(),
                    None => context::cache_root(cli).join("debs"),
                };
                arca_machine::archive::audit_against_archive(
                    &system,
                    &arca_machine::archive::ArchiveOptions { cache, packages: packages.clone() },
                )?
            } else {
                audit::audit_packages(&system)?
            };
            let seconds = started.elapsed().as_secs_f64();
            if out.json {
                out.json_line(
                    &serde_json::json!({"type": "summary", "audited": what, "report": r, "seconds": seconds}),
                );
            } else {
                let limit = if *all { usize::MAX } else { SHOWN };
                let more =
                    |n: usize| if n > limit { format!(" (and {} more: --all)", n - limit) } else { String::new() };
                for f in r.modified.iter().take(limit) {
                    out.line(format!("modified  {} ({})", f.path, f.package));
                }
                for f in r.missing.iter().take(limit) {
                    out.line(format!("missing   {} ({})", f.path, f.package));
                }
                for p in r.unowned.iter().take(limit) {
                    out.line(format!("unowned   {p}"));
                }
                for (p, why) in r.unreadable.iter().take(limit) {
                    out.line(format!("unreadable {p}: {why}"));
                }
                for (p, why) in r.unverifiable.iter().take(limit) {
                    out.line(format!("unverifiable package {p}: {why}"));
                }
                out.info(format!(
                    "{what}: {} files of {} packages checked in {seconds:.1}s: {} modified{}, {} missing{}, {} unowned executables{}, {} unreadable",
                    r.files,
                    r.packages,
                    r.modified.len(),
                    more(r.modified.len()),
                    r.missing.len(),
                    more(r.missing.len()),
                    r.unowned.len(),
                    more(r.unowned.len()),
                    r.unreadable.len()
                ));
            }
            Ok(if r.is_clean() { crate::exit::OK } else { crate::exit::DIFFERS })
        }
        AuditCommand::Against { snapshot, root, all } => {
            let (id, path) = snapshot.split_once(':').unwrap_or((snapshot, "/"));
            let path = if path.is_empty() { "/" } else { path };
            let (repo, _lock) = context::open_session(cli, out, context::Session::Read("audit"))?;
            let snap = super::find_snapshot(&repo, out, id, &Default::default())?;
            let system = System::snapshot(&repo, &snap.snapshot.tree, path)?;
            let live = root.join(path.trim_start_matches('/'));
            let r = audit::compare(&live, &system)?;
            if out.json {
                out.json_line(&serde_json::json!({"type": "summary", "snapshot_id": snap.id.to_hex(), "path": path, "live": live, "report": r}));
            } else {
                let limit = if *all { usize::MAX } else { SHOWN };
                for (p, d) in r.differences.iter().take(limit) {
                    let word = match d {
                        audit::Difference::Modified => "modified",
                        audit::Difference::Missing => "missing",
                        audit::Difference::Added => "added",
                        audit::Difference::Changed => "changed",
                    };
                    out.line(format!("{word:<9} {}{p}", path.trim_end_matches('/')));
                }
                if r.differences.len() > limit {
                    out.line(format!("(and {} more: --all)", r.differences.len() - limit));
                }
                out.info(format!(
                    "{} against snapshot {}: {} files compared by content, {} differences",
                    live.display(),
                    snap.id.short(),
                    r.files,
                    r.differences.len()
                ));
            }
            Ok(if r.differences.is_empty() { crate::exit::OK } else { crate::exit::DIFFERS })
        }
    }
}

/// `arca recovery-script`.
pub fn recovery_script(
    cli: &Cli,
    out: &Output,
    snapshot: &str,
    map: &[String],
    files: Option<&str>,
    output: Option<&std::path::Path>,
    filter: &crate::cli::FilterArgs,
) -> Result<i32> {
    let mut disks = std::collections::BTreeMap::new();
    for m in map {
        let Some((old, new)) = m.split_once('=') else {
            anyhow::bail!("--map {m:?}: give OLD=NEW (the disk the machine had, the disk to use)");
        };
        disks.insert(std::path::PathBuf::from(old), std::path::PathBuf::from(new));
    }
    let (repo, _lock) = context::open_session(cli, out, context::Session::Read("recovery-script"))?;
    let all = super::all_snapshots(&repo, out)?;
    let f = filter.filter();
    let system = {
        let systems: Vec<_> =
            all.iter().filter(|s| s.snapshot.kind == arca_format::SnapshotKind::System).cloned().collect();
        arca_repo::snapshots::resolve(&systems, snapshot, &f)?
    };
    let machine = arca_machine::source::load(&repo, &system)?;
    for old in disks.keys() {
        if !machine.disks.iter().any(|d| &d.path == old) {
            anyhow::bail!(
                "--map {}: the machine had no such disk (it had {})",
                old.display(),
                machine.disks.iter().map(|d| d.path.display().to_string()).collect::<Vec<_>>().join(", ")
            );
        }
    }
    let root = machine.root.display().to_string();
    let files_snap = match files {
        Some(spec) => arca_repo::snapshots::resolve(&all, spec, &Default::default())?,
        None => {
            // The files snapshot of the same host and root taken closest to the description.
            let at = system.time();
            let distance = |s: &arca_repo::snapshots::SnapshotEntry| match (s.time(), at) {
                (Some(t), Some(a)) => (t - a).num_seconds().unsigned_abs(),
                _ => u64::MAX,
            };
            all.iter()
                .filter(|s| {
                    s.snapshot.kind == arca_format::SnapshotKind::Files
                        && s.snapshot.hostname == system.snapshot.hostname
                        && s.snapshot.paths.iter().any(|p| p == &root)
                })
                .min_by_key(|s| distance(s))
                .cloned()
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "no files snapshot of {} with path {root}: back the files up (arca backup {root}), or name one with --files",
                        system.snapshot.hostname
                    )
                })?
        }
    };
    let text = arca_machine::script::script(
        &machine,
        &arca_machine::script::ScriptOptions {
            system_snapshot: system.id.short().to_string(),
            files_snapshot: files_snap.id.to_hex(),
            files_root: root,
            map: disks,
        },
    )
    .map_err(|why| anyhow::anyhow!("no recovery script: {why}"))?;
    match output {
        Some(p) => {
            std::fs::write(p, &text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
            out.info(format!("wrote {} (run it with --dry-run first)", p.display()));
        }
        None => {
            crate::output::data_on_stdout();
            print!("{text}");
        }
    }
    Ok(crate::exit::OK)
}
