//! `arca backup`: files, standard input, or a command's output.

use crate::cli::{BackupArgs, Cli};
use crate::context;
use crate::exit;
use crate::output::Output;
use crate::progress::{Progress, Reporter};
use crate::text::size;
use anyhow::{bail, Context, Result};
use arca_fs::Excludes;
use arca_ops::backup::{BackupReport, BackupRequest};
use arca_ops::source::{self, ExcludeRules, FilesOptions, Source};
use arca_ops::Target;
use chrono::{DateTime, FixedOffset};
use std::path::{Path, PathBuf};

pub fn run(cli: &Cli, out: &Output, a: &BackupArgs) -> Result<i32> {
    let req = BackupRequest {
        host: a.host.clone(),
        tags: a.tags.clone(),
        time: a.time.as_deref().map(parse_time).transpose()?,
        parent: a.parent.clone(),
        compression: a.compression.parse().map_err(|e| anyhow::anyhow!("--compression {e}"))?,
        paranoid_dedup: a.paranoid_dedup,
        threads: cli.threads,
        class: a.class.clone(),
    };
    if a.stdin && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!("--stdin reads the data to back up from standard input, which is a terminal here: pipe or redirect it (pg_dump db | arca backup --stdin --stdin-filename db.sql)");
    }
    let own = context::own_paths(cli);
    let mut files = None;
    let mut source: Box<dyn Source> = if a.stdin {
        Box::new(source::Stream::new(&a.stdin_filename, std::io::stdin().lock()))
    } else if a.system {
        Box::new(arca_machine::source::SystemDescription::new(arca_machine::describe::Options {
            root: std::path::absolute(&a.system_root)?,
            disks: a.disks.iter().map(std::path::absolute).collect::<std::io::Result<_>>()?,
            depth: a.usage_depth,
            luks_headers: a.luks_headers,
        }))
    } else if let Some(subvolume) = &a.btrfs_send {
        Box::new(arca_fsnap::source::SendStream::new(subvolume)?)
    } else if let Some(cmd) = &a.stdin_from_command {
        // `--stdin-from-command -- CMD ARG...`: the `--` arrives as the first value.
        let cmd = cmd.strip_prefix(&["--".to_string()]).unwrap_or(cmd);
        Box::new(source::Command::new(&a.stdin_filename, cmd)?)
    } else {
        let f = source::Files::new(&listed_paths(a)?, files_options(a), &own)?;
        files = Some((f.source_paths().to_vec(), f.excludes_compiled()?));
        if a.fs_snapshot {
            let paths = f.source_paths().to_vec();
            Box::new(arca_fsnap::source::FrozenFiles::new(&paths, files_options(a), &own, a.fs_snapshot_method)?)
        } else {
            Box::new(f)
        }
    };
    let sources = files.as_ref().map(|(p, _)| p.clone()).unwrap_or_default();
    store(cli, out, source.as_mut(), &req, a.dry_run, &sources, files)
}

/// Store `source` as a snapshot (`sources`: the local paths it reads, for the default
/// repository's checks; `files`: with their exclusions, for the progress scan) and report.
pub fn store(
    cli: &Cli,
    out: &Output,
    source: &mut dyn Source,
    req: &BackupRequest,
    dry_run: bool,
    sources: &[PathBuf],
    files: Option<(Vec<PathBuf>, Excludes)>,
) -> Result<i32> {
    // A dry run stores no data (a read session: it works against a read-only repository).
    let session = if dry_run { context::Session::Read("backup --dry-run") } else { context::Session::Write("backup") };
    let (repo, lock) = context::open_or_create_default(cli, out, session, sources)?;
    store_in(cli, out, &repo, lock, source, req, dry_run, files)
}

/// [`store`] into an open repository with its session's lock.
#[allow(clippy::too_many_arguments)]
pub fn store_in(
    cli: &Cli,
    out: &Output,
    repo: &std::sync::Arc<arca_repo::Repository>,
    lock: Option<arca_repo::lock::SessionLock>,
    source: &mut dyn Source,
    req: &BackupRequest,
    dry_run: bool,
    files: Option<(Vec<PathBuf>, Excludes)>,
) -> Result<i32> {
    let own = context::own_paths(cli);
    let target = match (&lock, dry_run) {
        (_, true) => Target::DryRun,
        (Some(l), false) => Target::Locked(l),
        (None, false) => bail!("a backup needs a lock on the repository"),
    };
    // `-v` lists new and modified files, `-vv` every file; a dry run lists what it would add.
    let list = if dry_run { cli.verbose.max(1) } else { cli.verbose };
    let reporter = Reporter { progress: Progress::new(out, "backup"), out, list };
    if let Some((paths, excludes)) = files {
        for p in &own {
            if let Ok(p) = std::fs::canonicalize(p) {
                if paths.iter().any(|s| p.starts_with(s)) {
                    out.info(format!("leaving out {}: it is arca's own (repository, cache or key file)", p.display()));
                }
            }
        }
        if out.show_progress || out.json {
            spawn_scanner(&paths, excludes, &reporter.progress);
        }
    }
    let cancel = crate::interrupt::on_signals()?;
    let result = arca_ops::backup::backup(repo, target, source, req, &reporter, &cancel);
    reporter.progress.finish();
    let done = result?;
    drop(lock);
    report(out, &done);
    Ok(if done.partial() { exit::PARTIAL } else { exit::OK })
}

fn files_options(a: &BackupArgs) -> FilesOptions {
    FilesOptions {
        excludes: ExcludeRules {
            patterns: a.excludes.clone(),
            pattern_files: a.exclude_files.clone(),
            case_insensitive: a.iexcludes.clone(),
            caches: a.exclude_caches,
            if_present: a.exclude_if_present.clone(),
        },
        one_file_system: a.one_file_system,
        ignore_ctime: a.ignore_ctime,
        rehash: a.rehash,
        read_threads: a.read_concurrency as usize,
        live_databases: a.live_databases,
    }
}

fn report(out: &Output, r: &BackupReport) {
    let m = &r.summary;
    // Ids in JSON are always full (the short forms are for people).
    let doc = serde_json::json!({
        "type": "summary", "snapshot_id": r.snapshot_id, "dry_run": r.dry_run, "parent": r.parent,
        "summary": m, "warnings": r.warnings, "packs_reused": r.packs_reused, "uploads_resumed": r.uploads_resumed,
    });
    // `arca run` reads the summary from here for its history and the hooks after the backup.
    if let Some(f) = std::env::var_os("ARCA_REPORT_FILE").filter(|f| !f.is_empty()) {
        if let Err(e) = std::fs::write(&f, doc.to_string()) {
            out.warn(format!(
                "cannot write the summary to ARCA_REPORT_FILE {}: {e}",
                std::path::Path::new(&f).display()
            ));
        }
    }
    if out.json {
        out.json_line(&doc);
        return;
    }
    if let Some(p) = &r.parent {
        out.info(format!("using parent snapshot {}", &p[..8.min(p.len())]));
    }
    out.info(format!(
        "files: {} new, {} changed, {} unchanged ({} read); dirs: {}; other: {}",
        m.files_new, m.files_changed, m.files_unchanged, m.files_read, m.dirs, m.other_nodes
    ));
    out.info(format!(
        "read {} of {}; added {} in {} new blobs ({} stored after compression) in {:.1}s",
        size(m.bytes_read),
        size(m.total_bytes),
        size(m.bytes_added),
        m.blobs_added,
        size(m.bytes_added_stored),
        m.duration_secs
    ));
    if !r.warnings.is_empty() {
        // Each was printed as it happened; the snapshot records them all (`arca cat snapshot`).
        out.warn(format!(
            "{} had problems (listed above)",
            crate::text::count(r.warnings.len() as u64, "path", "paths")
        ));
    }
    match &r.snapshot_id {
        Some(id) => out.info(format!("snapshot {} saved", &id[..8])),
        None => out.info("dry run: nothing was stored"),
    }
}

/// The paths named on the command line and in --files-from* files.
fn listed_paths(a: &BackupArgs) -> Result<Vec<PathBuf>> {
    use std::os::unix::ffi::OsStrExt;
    let read = |f: &PathBuf| -> Result<Vec<u8>> {
        if f.as_os_str() == "-" {
            let mut b = vec![];
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
                .context("cannot read paths from standard input")?;
            Ok(b)
        } else {
            std::fs::read(f).with_context(|| format!("cannot read the path list {}", f.display()))
        }
    };
    let mut out = a.paths.clone();
    let to_path = |b: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(b));
    for f in &a.files_from {
        for line in read(f)?.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let trimmed = line.trim_ascii();
            if !trimmed.is_empty() && !trimmed.starts_with(b"#") {
                out.push(to_path(trimmed));
            }
        }
    }
    for f in &a.files_from_verbatim {
        out.extend(read(f)?.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(to_path));
    }
    for f in &a.files_from_raw {
        out.extend(read(f)?.split(|b| *b == 0).filter(|l| !l.is_empty()).map(to_path));
    }
    Ok(out)
}

/// A time given on the command line (`--time`, and the dates of other commands).
pub fn parse_time(s: &str) -> Result<arca_ops::time::TimeSpec> {
    Ok(s.parse()?)
}

/// The first instant `s` can mean.
pub fn parse_time_arg(s: &str) -> Result<DateTime<FixedOffset>> {
    Ok(parse_time(s)?.start())
}

/// The last instant `s` can mean (see `TimeSpec::end`).
pub fn parse_time_end(s: &str) -> Result<DateTime<FixedOffset>> {
    Ok(parse_time(s)?.end())
}

/// Count bytes to back up in the background, for the ETA.
fn spawn_scanner(paths: &[PathBuf], excludes: Excludes, progress: &Progress) {
    fn walk(p: &Path, ex: &Excludes, total: &crate::progress::TotalHandle) {
        let Ok(md) = std::fs::symlink_metadata(p) else { return };
        if ex.is_own(&md) {
            return;
        }
        if md.is_file() {
            total.add(md.len());
        } else if md.is_dir() && !ex.skip_dir(p) {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    let c = e.path();
                    if !ex.matches(&c, e.file_type().is_ok_and(|t| t.is_dir())) {
                        walk(&c, ex, total);
                    }
                }
            }
        }
    }
    let paths = paths.to_vec();
    let total = progress.total_handle();
    std::thread::spawn(move || {
        for p in &paths {
            walk(p, &excludes, &total);
        }
        total.done();
    });
}
