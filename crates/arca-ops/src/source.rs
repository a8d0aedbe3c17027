//! Where a snapshot's data comes from: the [`Source`] seam, and its first three kinds (local
//! files, standard input, a command's output).
//!
//! A source stores its data through the session's [`BlobWriter`] and yields the root tree of
//! what it stored, so sources that build their own trees (database dumps, btrfs send streams,
//! system descriptions) plug in beside these; what a source records about itself goes into
//! the snapshot's `source` field.

use crate::{OpsError, OpsResult};
use arca_format::{Id, SnapshotKind};
use arca_fs::backup::backup_stream;
use arca_fs::{BackupOptions, BackupOutcome, Excludes};
use arca_repo::{BlobWriter, Cancel, Events};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

/// A source of one snapshot's data.
pub trait Source {
    /// The kind of snapshot this source makes.
    fn kind(&self) -> SnapshotKind;

    /// The paths the snapshot records (they choose the parent and show in listings).
    fn paths(&self) -> Vec<String>;

    /// True if the latest snapshot of the same host and paths lets this source skip data it
    /// already stored (file backups do; a stream is read in full anyway).
    fn uses_parent(&self) -> bool {
        false
    }

    /// The exclusion patterns the snapshot records.
    fn excludes(&self) -> Vec<String> {
        vec![]
    }

    /// What the snapshot records about the source, asked after [`Source::store`].
    fn metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// Store the data through `writer` (`parent`: the parent snapshot's root tree, if
    /// [`Source::uses_parent`]) and return the root tree with what was done. Checks `cancel`
    /// at safe points: a cancelled source returns [`arca_repo::RepoError::Cancelled`].
    fn store(
        &mut self,
        writer: &BlobWriter,
        parent: Option<Id>,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> OpsResult<BackupOutcome>;
}

/// The exclusion rules of a file backup, as a command line, a job file or a request gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExcludeRules {
    /// Glob patterns (`*.tmp`, `/home/*/.cache`, `build/`).
    pub patterns: Vec<String>,
    /// Files with one pattern a line.
    pub pattern_files: Vec<PathBuf>,
    /// Patterns matched without regard to case.
    pub case_insensitive: Vec<String>,
    /// Leave out directories holding a valid CACHEDIR.TAG (keeping the tag file).
    pub caches: bool,
    /// Leave out directories holding a file of one of these names (keeping that file).
    pub if_present: Vec<String>,
}

impl ExcludeRules {
    /// Compile the rules; `own` are arca's own files, always left out.
    pub fn build(&self, own: &[PathBuf]) -> OpsResult<Excludes> {
        let mut patterns = self.patterns.clone();
        for f in &self.pattern_files {
            let read = Excludes::read_file(f)
                .map_err(|e| OpsError::Io { path: format!("exclude file {}", f.display()), source: e })?;
            patterns.extend(read);
        }
        let bad = OpsError::BadPattern;
        Ok(Excludes::new(patterns, self.caches, self.if_present.clone())
            .and_then(|e| e.with_case_insensitive(self.case_insensitive.clone()))
            .map_err(bad)?
            .with_own(own))
    }
}

/// How a file backup reads its sources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesOptions {
    pub excludes: ExcludeRules,
    /// Do not cross into other filesystems below a source path.
    pub one_file_system: bool,
    /// Compare only size, mtime and inode with the parent.
    pub ignore_ctime: bool,
    /// Read every file even if it looks unchanged.
    pub rehash: bool,
    /// Threads walking and reading (I/O bound: more than the cores helps).
    pub read_threads: usize,
    /// What to do with a running database's files found while walking: warn, skip or fail.
    pub live_databases: arca_fs::livedb::LiveDbPolicy,
}

impl Default for FilesOptions {
    fn default() -> Self {
        FilesOptions {
            excludes: ExcludeRules::default(),
            one_file_system: false,
            ignore_ctime: false,
            rehash: false,
            read_threads: 8,
            live_databases: Default::default(),
        }
    }
}

/// Files and directories on the local filesystem.
pub struct Files {
    paths: Vec<PathBuf>,
    opts: FilesOptions,
    own: Vec<PathBuf>,
    redirects: Vec<arca_fs::backup::Redirect>,
}

impl Files {
    /// The named paths, made absolute (see [`resolve_paths`]); `own` are arca's own files (the
    /// repository, caches, key files), never taken in.
    pub fn new(given: &[PathBuf], opts: FilesOptions, own: &[PathBuf]) -> OpsResult<Files> {
        let paths = resolve_paths(given)?;
        // Compiled once here so bad patterns fail before the repository is opened.
        opts.excludes.build(own)?;
        Ok(Files { paths, opts, own: own.to_vec(), redirects: vec![] })
    }

    /// Read these source paths from frozen copies of them (filesystem snapshots) from now on;
    /// the snapshot still records the original paths.
    pub fn set_redirects(&mut self, redirects: Vec<arca_fs::backup::Redirect>) {
        self.redirects = redirects;
    }

    /// How the sources are read.
    pub fn options(&self) -> &FilesOptions {
        &self.opts
    }

    /// The absolute source paths.
    pub fn source_paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The compiled rules again (for a scan that counts what the backup will read).
    pub fn excludes_compiled(&self) -> OpsResult<Excludes> {
        self.opts.excludes.build(&self.own)
    }
}

impl Source for Files {
    fn kind(&self) -> SnapshotKind {
        SnapshotKind::Files
    }

    fn paths(&self) -> Vec<String> {
        self.paths.iter().map(|p| p.display().to_string()).collect()
    }

    fn uses_parent(&self) -> bool {
        true
    }

    fn excludes(&self) -> Vec<String> {
        self.opts.excludes.patterns.clone()
    }

    fn store(
        &mut self,
        writer: &BlobWriter,
        parent: Option<Id>,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> OpsResult<BackupOutcome> {
        let opts = BackupOptions {
            paths: self.paths.clone(),
            // Compiled for each run: a source stored twice (a retried job) keeps its rules.
            excludes: self.opts.excludes.build(&self.own)?,
            one_file_system: self.opts.one_file_system,
            ignore_ctime: self.opts.ignore_ctime,
            rehash: self.opts.rehash,
            read_threads: self.opts.read_threads,
            cancel: cancel.clone(),
            live_databases: self.opts.live_databases,
            redirects: self.redirects.clone(),
        };
        Ok(arca_fs::backup(writer, parent, &opts, events)?)
    }
}

/// Absolute source paths; symlinks named directly are kept as symlinks (`link/` means the
/// directory it leads to, as in rsync). A path that does not exist is kept (the backup warns
/// and ends partial, as a nightly job with one unmounted path must still back up the rest),
/// unless none exists.
pub fn resolve_paths(given: &[PathBuf]) -> OpsResult<Vec<PathBuf>> {
    let nothing = |why: String| OpsError::NothingToDo(format!("nothing to back up: {why}"));
    if given.is_empty() {
        return Err(nothing("name files or directories, or use --stdin".into()));
    }
    let mut out = vec![];
    let mut missing = vec![];
    for p in given {
        if p.as_os_str().is_empty() {
            return Err(OpsError::bad_option("a source path", "is empty"));
        }
        if let Err(e) = std::fs::symlink_metadata(p) {
            missing.push(format!("{}: {e}", p.display()));
        }
        let abs = std::path::absolute(p)
            .map_err(|e| OpsError::Io { path: format!("cannot resolve {}", p.display()), source: e })?;
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
        return Err(nothing(missing.join("; ")));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// One stream (standard input, a pipe) stored as a snapshot holding one file.
pub struct Stream<R: Read> {
    name: String,
    reader: Option<R>,
}

impl<R: Read> Stream<R> {
    /// `name` is the file name the stream gets in the snapshot (`--stdin-filename`).
    pub fn new(name: &str, reader: R) -> Stream<R> {
        Stream { name: name.to_string(), reader: Some(reader) }
    }
}

/// The path a stream snapshot records for the file name `name`.
fn stream_path(name: &str) -> String {
    format!("/{}", name.trim_matches('/'))
}

impl<R: Read> Source for Stream<R> {
    fn kind(&self) -> SnapshotKind {
        SnapshotKind::Stdin
    }

    fn paths(&self) -> Vec<String> {
        vec![stream_path(&self.name)]
    }

    fn store(
        &mut self,
        writer: &BlobWriter,
        _: Option<Id>,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> OpsResult<BackupOutcome> {
        let reader = self.reader.take().ok_or_else(|| OpsError::NothingToDo("the stream was already stored".into()))?;
        Ok(backup_stream(writer, &self.name, reader, events, cancel)?)
    }
}

/// The standard output of a command, stored as one file; a command that fails saves nothing.
pub struct Command {
    name: String,
    argv: Vec<String>,
    status: Option<String>,
}

impl Command {
    /// `argv`: the program and its arguments (run directly, not through a shell).
    pub fn new(name: &str, argv: &[String]) -> OpsResult<Command> {
        if argv.is_empty() {
            return Err(OpsError::bad_option("--stdin-from-command", "needs a command"));
        }
        Ok(Command { name: name.to_string(), argv: argv.to_vec(), status: None })
    }
}

impl Source for Command {
    fn kind(&self) -> SnapshotKind {
        SnapshotKind::CommandOutput
    }

    fn paths(&self) -> Vec<String> {
        vec![stream_path(&self.name)]
    }

    fn metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let words = self.argv.iter().map(String::as_str);
        m.insert("command".into(), shlex::try_join(words).unwrap_or_else(|_| self.argv.join(" ")));
        if let Some(s) = &self.status {
            m.insert("exit".into(), s.clone());
        }
        m
    }

    fn store(
        &mut self,
        writer: &BlobWriter,
        _: Option<Id>,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> OpsResult<BackupOutcome> {
        let program = self.argv[0].clone();
        let mut child = std::process::Command::new(&program)
            .args(&self.argv[1..])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|source| OpsError::CommandStart { program: program.clone(), source })?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err(OpsError::CommandFailed { program, status: "no standard output".into() });
        };
        let outcome = backup_stream(writer, &self.name, stdout, events, cancel);
        let status = child.wait().map_err(|e| OpsError::CommandFailed {
            program: program.clone(),
            status: format!("cannot wait for it: {e}"),
        })?;
        if !status.success() {
            return Err(OpsError::CommandFailed { program, status: status.to_string() });
        }
        self.status = Some(status.code().map(|c| c.to_string()).unwrap_or_else(|| status.to_string()));
        Ok(outcome?)
    }
}
