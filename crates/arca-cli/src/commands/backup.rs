//! `arca backup`: files, standard input, or a command's output.

use crate::cli::{BackupArgs, Cli};
use crate::context;
use crate::exit;
use crate::output::Output;
use crate::progress::{Progress, Reporter};
use crate::text::size;
use anyhow::{bail, Context, Result};
use arca_format::{Snapshot, SnapshotKind, WarningKind};
use arca_fs::backup::backup_stream;
use arca_fs::{BackupOptions, BackupOutcome, Excludes};
use arca_repo::blob::Compression;
use arca_repo::keys::Origin;
use arca_repo::snapshots::{self as snaps, find_parent};
use arca_repo::writer::WriterOptions;
use arca_repo::BlobWriter;
use chrono::{DateTime, FixedOffset, Local, NaiveDate, NaiveDateTime, TimeZone};
use std::path::{Path, PathBuf};

pub fn run(cli: &Cli, out: &Output, a: &BackupArgs) -> Result<i32> {
    let compression: Compression = a.compression.parse().map_err(|e| anyhow::anyhow!("--compression {e}"))?;
    let time = match &a.time {
        Some(t) => parse_time_arg(t)?,
        None => Local::now().fixed_offset(),
    };
    let is_stream = a.stdin || a.stdin_from_command.is_some();
    if a.stdin && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!("--stdin reads the data to back up from standard input, which is a terminal here: pipe or redirect it (pg_dump db | arca backup --stdin --stdin-filename db.sql)");
    }
    let paths = if is_stream { vec![] } else { source_paths(&listed_paths(a)?)? };
    // A dry run stores nothing, not even a lock (it may run against a read-only repository).
    let session =
        if a.dry_run { context::Session::Read("backup --dry-run") } else { context::Session::Write("backup") };
    let (repo, lock) = context::open_or_create_default(cli, out, session, &paths)?;
    if let (Some(l), false) = (&lock, a.dry_run) {
        // Packs an interrupted backup uploaded after its last checkpoint are reused, not sent again.
        match arca_repo::repair::adopt_orphan_packs(&repo, l) {
            Ok(0) => {}
            Ok(n) => out.info(format!("reusing {n} packs left by an interrupted session")),
            Err(e) => out.warn(format!("could not look for packs of an interrupted session: {e}")),
        }
    }
    let origin = Origin::current();
    let host = a.host.clone().unwrap_or(origin.hostname.clone());
    let path_strings: Vec<String> = if is_stream {
        vec![format!("/{}", a.stdin_filename.trim_matches('/'))]
    } else {
        paths.iter().map(|p| p.display().to_string()).collect()
    };
    let all = super::all_snapshots(&repo, out)?;
    let parent = match &a.parent {
        Some(spec) => Some(snaps::resolve(&all, spec, &Default::default())?),
        None if is_stream => None,
        None => find_parent(&all, &host, &path_strings).cloned(),
    };
    let writer_opts = WriterOptions {
        compression,
        paranoid_dedup: a.paranoid_dedup,
        dry_run: a.dry_run,
        threads: cli.threads.unwrap_or(WriterOptions::default().threads),
    };
    let writer = match &lock {
        Some(l) if !a.dry_run => BlobWriter::new(repo.clone(), l, writer_opts),
        _ if a.dry_run => BlobWriter::dry_run(repo.clone(), writer_opts),
        _ => bail!("a backup needs a lock on the repository"),
    };
    // `-v` lists new and modified files, `-vv` every file; a dry run lists what it would add.
    let list = if a.dry_run { cli.verbose.max(1) } else { cli.verbose };
    let reporter = Reporter { progress: Progress::new(out, "backup"), out, list };
    let cancel = crate::interrupt::on_signals()?;
    let (outcome, kind) = if a.stdin {
        (backup_stream(&writer, &a.stdin_filename, std::io::stdin().lock(), &reporter, &cancel)?, SnapshotKind::Stdin)
    } else if let Some(cmd) = &a.stdin_from_command {
        (from_command(&writer, &a.stdin_filename, cmd, &reporter, &cancel)?, SnapshotKind::CommandOutput)
    } else {
        let own = context::own_paths(cli);
        for p in &own {
            if let Ok(p) = std::fs::canonicalize(p) {
                if paths.iter().any(|s| p.starts_with(s)) {
                    out.info(format!("leaving out {}: it is arca's own (repository, cache or key file)", p.display()));
                }
            }
        }
        let opts = BackupOptions {
            paths,
            excludes: excludes(a)?.with_own(&own),
            one_file_system: a.one_file_system,
            ignore_ctime: a.ignore_ctime,
            rehash: a.rehash,
            read_threads: a.read_concurrency as usize,
            cancel: cancel.clone(),
        };
        if out.show_progress || out.json {
            spawn_scanner(&opts.paths, excludes(a)?.with_own(&own), &reporter.progress);
        }
        let parent_tree = parent.as_ref().map(|p| p.snapshot.tree);
        (arca_fs::backup(&writer, parent_tree, &opts, &reporter)?, SnapshotKind::Files)
    };
    let stats = writer.finish()?;
    reporter.progress.finish();
    let mut summary = outcome.summary.clone();
    summary.blobs_added = stats.blobs_added;
    summary.bytes_added = stats.bytes_added;
    summary.bytes_added_stored = stats.bytes_stored;
    let snapshot = Snapshot {
        time: time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
        hostname: host,
        username: origin.username,
        paths: path_strings,
        tags: a.tags.iter().flat_map(|t| t.split(',')).filter(|t| !t.is_empty()).map(String::from).collect(),
        parent: parent.as_ref().map(|p| p.id),
        tree: outcome.tree,
        kind,
        summary,
        warnings: outcome.warnings.clone(),
        excludes: a.excludes.clone(),
        keep_until: None,
        destroy_after: None,
        program_version: format!("arca {}", env!("CARGO_PKG_VERSION")),
        original: None,
        previous_ids: vec![],
    };
    if let Some(l) = &lock {
        // A lock that lapsed (suspended, stalled) may have let a prune take what this backup
        // relies on: confirm it is all still there, or commit nothing.
        l.confirm_commit(&repo, &[outcome.tree])?;
        l.check_alive()?;
    }
    arca_repo::failpoint::hit("backup-before-snapshot");
    // The last safe point: after it the snapshot is saved even if a signal arrives.
    cancel.check()?;
    let id = if a.dry_run { None } else { Some(snaps::save(&repo, &snapshot)?) };
    drop(lock);
    report(out, &snapshot, id.map(|i| i.to_hex()), &outcome, parent.map(|p| p.id));
    let unreadable = outcome.warnings.iter().any(|w| w.kind == WarningKind::Unreadable);
    Ok(if unreadable { exit::PARTIAL } else { exit::OK })
}

fn report(out: &Output, s: &Snapshot, id: Option<String>, o: &BackupOutcome, parent: Option<arca_format::Id>) {
    let m = &s.summary;
    if out.json {
        // Ids in JSON are always full (the short forms are for people).
        out.json_line(&serde_json::json!({
            "type": "summary", "snapshot_id": id, "dry_run": id.is_none(), "parent": parent.map(|p| p.to_hex()),
            "summary": m, "warnings": o.warnings,
        }));
        return;
    }
    if let Some(p) = parent {
        out.info(format!("using parent snapshot {}", p.short()));
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
    if !o.warnings.is_empty() {
        // Each was printed as it happened; the snapshot records them all (`arca cat snapshot`).
        out.warn(format!(
            "{} had problems (listed above)",
            crate::text::count(o.warnings.len() as u64, "path", "paths")
        ));
    }
    match id {
        Some(id) => out.info(format!("snapshot {} saved", &id[..8])),
        None => out.info("dry run: nothing was stored"),
    }
}

fn from_command(
    writer: &BlobWriter,
    name: &str,
    cmd: &[String],
    reporter: &Reporter,
    cancel: &arca_repo::Cancel,
) -> Result<BackupOutcome> {
    // `--stdin-from-command -- CMD ARG...`: the `--` arrives as the first value.
    let cmd = cmd.strip_prefix(&["--".to_string()]).unwrap_or(cmd);
    let (prog, args) = cmd.split_first().context("--stdin-from-command needs a command")?;
    let mut child = std::process::Command::new(prog)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {prog:?}"))?;
    let stdout = child.stdout.take().context("no standard output from the command")?;
    let outcome = backup_stream(writer, name, stdout, reporter, cancel);
    let status = child.wait().with_context(|| format!("waiting for {prog:?}"))?;
    if !status.success() {
        bail!("{prog:?} failed ({status}); no snapshot was created");
    }
    Ok(outcome?)
}

fn excludes(a: &BackupArgs) -> Result<Excludes> {
    let mut patterns = a.excludes.clone();
    for f in &a.exclude_files {
        patterns.extend(Excludes::read_file(f).with_context(|| format!("cannot read exclude file {}", f.display()))?);
    }
    Excludes::new(patterns, a.exclude_caches, a.exclude_if_present.clone())
        .and_then(|e| e.with_case_insensitive(a.iexcludes.clone()))
        .map_err(anyhow::Error::msg)
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

/// Absolute source paths; symlinks named directly are kept as symlinks. A path that does not
/// exist is kept (the archiver warns about it and the backup ends with exit code 3, as a
/// nightly job with one unmounted path must still back up the rest), unless none exists.
fn source_paths(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if given.is_empty() {
        bail!("nothing to back up: name files or directories, or use --stdin");
    }
    let mut out = vec![];
    let mut missing = vec![];
    for p in given {
        if p.as_os_str().is_empty() {
            bail!("an empty path was given as a source");
        }
        if let Err(e) = std::fs::symlink_metadata(p) {
            missing.push(format!("{}: {e}", p.display()));
        }
        let abs = std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))?;
        // `link/` means the directory the link leads to, as in rsync and POSIX path lookup.
        let follow = p.as_os_str().as_encoded_bytes().ends_with(b"/");
        let resolved = match (abs.parent(), abs.file_name()) {
            _ if follow => std::fs::canonicalize(&abs).unwrap_or_else(|_| abs.clone()),
            (Some(parent), Some(name)) if name != ".." => match std::fs::canonicalize(parent) {
                Ok(parent) => parent.join(name),
                Err(_) => abs.clone(),
            },
            _ => std::fs::canonicalize(&abs).unwrap_or_else(|_| abs.clone()),
        };
        out.push(resolved);
    }
    if missing.len() == given.len() {
        bail!("nothing to back up: {}", missing.join("; "));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// RFC 3339, or a local "YYYY-MM-DD[ HH:MM[:SS[.fraction]]]".
pub fn parse_time_arg(s: &str) -> Result<DateTime<FixedOffset>> {
    Ok(parse_time_span(s)?.0)
}

/// The last instant a time as written can mean: "04:39:53", copied from the snapshots table
/// (which shows whole seconds), means up to the end of that second, so it selects a snapshot
/// taken at 04:39:53.659; a date alone means up to the end of that day.
pub fn parse_time_end(s: &str) -> Result<DateTime<FixedOffset>> {
    let (t, precision) = parse_time_span(s)?;
    Ok(t + precision - chrono::TimeDelta::nanoseconds(1))
}

/// A time and the precision it was written with.
fn parse_time_span(s: &str) -> Result<(DateTime<FixedOffset>, chrono::TimeDelta)> {
    let s = s.trim();
    let has_fraction = |s: &str| s.rsplit_once(':').is_some_and(|(_, sec)| sec.contains('.'));
    let second = chrono::TimeDelta::seconds(1);
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok((t, if has_fraction(s) { chrono::TimeDelta::nanoseconds(1) } else { second }));
    }
    let formats: [(&str, chrono::TimeDelta); 4] = [
        ("%Y-%m-%d %H:%M:%S%.f", second),
        ("%Y-%m-%dT%H:%M:%S%.f", second),
        ("%Y-%m-%d %H:%M", chrono::TimeDelta::minutes(1)),
        ("%Y-%m-%dT%H:%M", chrono::TimeDelta::minutes(1)),
    ];
    let parsed =
        formats.iter().find_map(|(f, p)| NaiveDateTime::parse_from_str(s, f).ok().map(|t| (t, *p))).or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| (t, chrono::TimeDelta::days(1)))
        });
    let (naive, mut precision) = parsed.with_context(|| {
        format!("cannot read time {s:?}: use RFC 3339 (2026-11-01T12:00:00+01:00) or \"2026-11-01 12:00[:00[.5]]\" (local time)")
    })?;
    if has_fraction(s) {
        precision = chrono::TimeDelta::nanoseconds(1);
    }
    let t = Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.fixed_offset())
        .with_context(|| format!("{s:?} does not exist in the local time zone"))?;
    Ok((t, precision))
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
