//! The restorer: recreate a snapshot's tree under a target directory, exactly — contents with
//! holes left sparse, hardlinks, symlinks, devices, fifos, sockets, then ownership, mode,
//! xattrs/ACLs and times (directories after their contents).
//!
//! The walk runs on the calling thread and creates directories and special files; regular
//! files go through a bounded queue to a pool of writer threads. Hard links to files and
//! directory metadata are applied once every file is written.
//!
//! Safety: names come from validated trees (no `/`, `..` or NUL), files are created with
//! O_NOFOLLOW, and a symlink found where a directory is needed is replaced, never followed,
//! so nothing is written outside the target.

use crate::meta::{apply, MetaKind};
use crate::{FsError, FsResult};
use arca_format::{BlobKind, Id, Node, NodeKind};
use arca_io::{AlignedBuf, DirectWriter};
use arca_repo::events::{Event, Events};
use arca_repo::spans::{spans, Span, Wanted};
use arca_repo::treewalk::Found;
use arca_repo::Repository;
use crossbeam_channel::bounded;
use globset::GlobSet;
use nix::sys::stat::{mknod, Mode, SFlag};
use serde::Serialize;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::ops::Range;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Files without holes from this size on are written with direct I/O through a buffer of
/// this size (smaller ones, most of them, are cheaper through the page cache).
const DIRECT_WRITE_MIN: u64 = 1 << 20;

thread_local! {
    /// Each file writer thread's buffer for direct writes.
    static WRITE_BUFFER: RefCell<Option<AlignedBuf>> = const { RefCell::new(None) };
}

/// How to restore.
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Restore only paths matching one of these (and what lies below them).
    pub includes: Option<GlobSet>,
    /// Skip paths matching one of these.
    pub excludes: Option<GlobSet>,
    /// Re-read every restored file and check it against the snapshot's blob ids.
    pub verify: bool,
    /// Set owners (needs root).
    pub set_owner: bool,
    /// The snapshot path of what is restored (e.g. `/home/a`); include and exclude patterns
    /// match full snapshot paths.
    pub base: Vec<u8>,
    /// Files written at the same time.
    pub threads: usize,
    /// Spans (neighbouring blobs, one request each) of one large file or of one batch of
    /// small files fetched at the same time (a remote repository: each fetch waits a round
    /// trip, so several in flight hide the latency); 1: one after the other.
    pub read_ahead: usize,
    /// What to do with entries that already exist in the target.
    pub overwrite: Overwrite,
    /// Remove entries of restored directories that the snapshot does not have.
    pub delete: bool,
    /// Change nothing: count what would be restored, kept and deleted (reading existing
    /// files to compare them), and report each deletion.
    pub dry_run: bool,
    /// A directory holding an earlier restore: a file whose contents equal the file at the
    /// same path there is cloned from it (FICLONE: the two share their extents on btrfs and
    /// XFS) instead of written.
    pub reflink_from: Option<PathBuf>,
}

/// What to do with an entry that already exists in the target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrite {
    /// Replace it.
    Always,
    /// Keep a regular file whose contents already match the snapshot (only its metadata is
    /// set), replace anything else. Makes an interrupted restore resumable.
    #[default]
    IfChanged,
    /// Keep it as it is.
    Never,
}

/// What a restore did.
#[derive(Debug, Default, Serialize)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
    pub verified_files: u64,
    /// Existing files whose contents already matched (not rewritten).
    pub unchanged: u64,
    /// Existing entries left alone (`--overwrite never`).
    pub kept: u64,
    /// Entries removed because the snapshot does not have them (`--delete`), counting what
    /// a removed directory held.
    pub deleted: u64,
    /// Files cloned from `--reflink-from` (sharing its extents), and their bytes.
    pub reflinked: u64,
    pub reflinked_bytes: u64,
    /// Paths that could not be restored, with why.
    pub errors: Vec<(String, String)>,
    /// Kinds of metadata that could not be set, once each.
    pub warnings: Vec<String>,
}

/// State shared by the walker and the file writers.
struct Shared<'a> {
    repo: &'a Repository,
    opts: &'a RestoreOptions,
    events: &'a dyn Events,
    report: Mutex<RestoreReport>,
    warned: Mutex<HashSet<MetaKind>>,
    /// Cloning failed once (another filesystem, no reflink support): not tried again.
    no_reflink: std::sync::atomic::AtomicBool,
}

nix::ioctl_write_int!(ficlone, 0x94, 9);

impl Shared<'_> {
    fn report(&self) -> std::sync::MutexGuard<'_, RestoreReport> {
        self.report.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn problem(&self, path: &Path, message: String) {
        self.events.emit(Event::Warning { path, message: &message });
        self.report().errors.push((path.display().to_string(), message));
    }

    fn metadata(&self, path: &Path, node: &Node) {
        if self.opts.dry_run {
            return;
        }
        for (kind, e) in apply(path, node, self.opts.set_owner) {
            if self.warned.lock().unwrap_or_else(|p| p.into_inner()).insert(kind) {
                self.report().warnings.push(format!(
                    "could not restore {} (first at {}: {e})",
                    kind.describe(),
                    path.display()
                ));
            }
        }
    }

    /// Write, verify and finish one regular file. With `existing`, a file already at `target`
    /// whose contents match is kept and only its metadata set.
    fn file(&self, n: &Node, target: &Path, existing: bool, fetched: Option<&Fetched>) {
        self.events.emit(Event::File { path: target, size: n.size });
        self.events.emit(Event::FileDone);
        if existing {
            let same = File::open(target).ok().is_some_and(|f| self.verify(n, &f, target).is_ok());
            if same {
                self.report().unchanged += 1;
                self.events.emit(Event::Bytes(n.content_len()));
                self.metadata(target, n);
                return;
            }
            if self.opts.dry_run {
                self.report().files += 1;
                return;
            }
            if let Err(e) = fs::remove_file(target) {
                self.problem(target, format!("cannot replace: {e}"));
                return;
            }
        }
        if self.opts.dry_run {
            let mut r = self.report();
            r.files += 1;
            r.bytes += n.content_len();
            return;
        }
        if self.reflink(n, target) {
            return;
        }
        let result = self.write_file(n, target, fetched).and_then(|f| {
            if self.opts.verify {
                self.verify(n, &f, target)?;
                self.report().verified_files += 1;
            }
            Ok(())
        });
        match result {
            Ok(()) => {
                self.report().files += 1;
                self.metadata(target, n);
            }
            Err(e) => {
                // Never leave a file with wrong contents behind.
                let _ = fs::remove_file(target);
                self.problem(target, e);
            }
        }
    }

    /// Clone the file at the same path under `reflink_from` and keep the clone if its
    /// contents are the snapshot's (read back and checked against the blob ids and holes:
    /// sizes and times prove nothing, and checking the clone, not its source, leaves no window
    /// for a writer). True if done; false to write the file instead.
    fn reflink(&self, n: &Node, target: &Path) -> bool {
        use std::sync::atomic::Ordering;
        let Some(from) = &self.opts.reflink_from else { return false };
        if self.no_reflink.load(Ordering::Relaxed) || n.size == 0 {
            return false;
        }
        let Ok(rel) = target.strip_prefix(&self.opts.target) else { return false };
        let source = from.join(rel);
        let open = fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&source);
        let Ok(src) = open else { return false };
        if !src.metadata().is_ok_and(|m| m.is_file() && m.len() == n.size) {
            return false;
        }
        let dst = match create_new(target) {
            Ok(f) => f,
            Err(_) => return false,
        };
        use std::os::fd::AsRawFd;
        // SAFETY: both descriptors are open for the call; FICLONE takes the source fd as its
        // integer argument.
        if let Err(errno) = unsafe { ficlone(dst.as_raw_fd(), src.as_raw_fd() as libc::c_ulong as _) } {
            drop(dst);
            let _ = fs::remove_file(target);
            if !self.no_reflink.swap(true, Ordering::Relaxed) {
                self.report().warnings.push(format!(
                    "cannot clone files from {} (first at {}: {errno}); writing copies instead",
                    from.display(),
                    source.display()
                ));
            }
            return false;
        }
        if self.verify(n, &dst, target).is_err() {
            // Not the snapshot's contents: written instead.
            drop(dst);
            let _ = fs::remove_file(target);
            return false;
        }
        {
            let mut r = self.report();
            r.files += 1;
            r.reflinked += 1;
            r.reflinked_bytes += n.size;
        }
        self.events.emit(Event::Bytes(n.content_len()));
        self.metadata(target, n);
        true
    }

    fn write_file(&self, n: &Node, target: &Path, fetched: Option<&Fetched>) -> Result<File, String> {
        let f = create_new(target).map_err(|e| format!("cannot create: {e}"))?;
        if n.holes.is_empty() && n.size >= DIRECT_WRITE_MIN {
            return self.write_dense(n, f);
        }
        let mut pos = Placer::new(&n.holes);
        self.each_blob(n, fetched, |data| {
            for (off, range) in pos.place(data.len()) {
                f.write_all_at(&data[range], off).map_err(|e| format!("write failed: {e}"))?;
            }
            Ok(())
        })?;
        // Only a trailing hole (or a short snapshot record) needs the length set.
        if pos.file_pos != n.size {
            f.set_len(n.size).map_err(|e| format!("cannot set size: {e}"))?;
        }
        Ok(f)
    }

    /// Read a file's blobs in order, hand each to `write`, and count the bytes restored. From
    /// `fetched` when a batch read them already; otherwise by the span (neighbours in a pack
    /// with one request), `read_ahead` spans at once.
    fn each_blob(
        &self,
        n: &Node,
        fetched: Option<&Fetched>,
        mut write: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut put = |data: &[u8]| -> Result<(), String> {
            write(data)?;
            self.report().bytes += data.len() as u64;
            self.events.emit(Event::Bytes(data.len() as u64));
            Ok(())
        };
        if let Some(fetched) = fetched {
            for id in &n.content {
                match fetched.get(id) {
                    Some(Ok(data)) => put(data)?,
                    Some(Err(e)) => return Err(e.clone()),
                    None => return Err(format!("cannot read its data: blob {id} was not read")),
                }
            }
            return Ok(());
        }
        let wanted =
            locate(self.repo, &n.content).map_err(|id| format!("cannot read its data: {}", not_indexed(id)))?;
        // A file of zeros names one blob again and again: opened once.
        let mut last: Option<(Id, Vec<u8>)> = None;
        let mut emit = |span: &Span, w: &Wanted| -> Result<(), String> {
            if last.as_ref().is_none_or(|(id, _)| *id != w.id) {
                let data = span.open(self.repo, BlobKind::Data, w).map_err(|e| format!("cannot read its data: {e}"))?;
                last = Some((w.id, data));
            }
            match &last {
                Some((_, data)) => put(data),
                None => Ok(()),
            }
        };
        let runs = spans(&wanted, self.gap());
        fetch_in_order(self.repo, &wanted, &runs, self.opts.read_ahead, |r, span| {
            let span = span.map_err(|e| format!("cannot read its data: {e}"))?;
            for w in &wanted[r.clone()] {
                emit(&span, w)?;
            }
            Ok(())
        })
    }

    /// How far apart neighbouring blobs may lie to be fetched with one request: further on
    /// a remote repository, where a round trip costs more than reading a megabyte.
    fn gap(&self) -> u64 {
        if self.repo.is_remote() {
            arca_repo::spans::GAP_REMOTE
        } else {
            arca_repo::spans::GAP
        }
    }

    /// Restore a batch of small files (in the walk's order) from what one read of their
    /// blobs in pack order brings: a few requests for many files (see [`BATCH_FILE_MAX`]).
    fn batch(&self, jobs: Vec<FileJob>) {
        let mut wanted: Vec<Wanted> = vec![];
        let mut fetched: Fetched = HashMap::new();
        {
            let index = self.repo.index();
            let mut seen = HashSet::new();
            for id in jobs.iter().flat_map(|j| &j.node.content) {
                if !seen.insert(*id) {
                    continue;
                }
                match index.get(id) {
                    Some(loc) => wanted.push(Wanted { id: *id, loc }),
                    None => {
                        fetched.insert(*id, Err(format!("cannot read its data: {}", not_indexed(*id))));
                    }
                }
            }
        }
        wanted.sort_by_key(|w| (w.loc.pack, w.loc.offset));
        let runs = spans(&wanted, self.gap());
        // Nothing here stops the batch: a blob that cannot be read fails only its files.
        let _ = fetch_in_order(self.repo, &wanted, &runs, self.opts.read_ahead, |r, span| {
            for w in &wanted[r.clone()] {
                let data: Result<Vec<u8>, String> = match &span {
                    Ok(span) => span.open(self.repo, BlobKind::Data, w).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                fetched.insert(w.id, data.map_err(|e| format!("cannot read its data: {e}")));
            }
            Ok(())
        });
        for job in jobs {
            self.file(&job.node, &job.target, job.existing, Some(&fetched));
        }
    }

    /// A large file without holes: written front to back through this thread's aligned
    /// buffer, whole buffers bypassing the page cache (arca-io; see docs/ARCHITECTURE.md).
    fn write_dense(&self, n: &Node, f: File) -> Result<File, String> {
        let buf =
            WRITE_BUFFER.with(|b| b.borrow_mut().take()).unwrap_or_else(|| AlignedBuf::new(DIRECT_WRITE_MIN as usize));
        let mut w = DirectWriter::with_buffer(f, buf);
        self.each_blob(n, None, |data| w.write_all(data).map_err(|e| format!("write failed: {e}")))?;
        let written = w.len();
        let (f, buf) = w.finish_unsynced().map_err(|e| format!("write failed: {e}"))?;
        WRITE_BUFFER.with(|b| *b.borrow_mut() = Some(buf));
        if written != n.size {
            f.set_len(n.size).map_err(|e| format!("cannot set size: {e}"))?;
        }
        Ok(f)
    }

    fn verify(&self, n: &Node, f: &File, target: &Path) -> Result<(), String> {
        matches_node(self.repo, n, f, target)
    }
}

/// Whether the open file `f` (named `target` in errors) holds exactly the contents of the
/// snapshot's file `n`: its size, zeros where `n` has holes, and data whose keyed ids are
/// `n`'s blob ids (read in the blobs' own pieces, so no chunking is needed). Restores
/// compare with it, and so do audits of a live system against a snapshot.
pub fn matches_node(repo: &Repository, n: &Node, f: &File, target: &Path) -> Result<(), String> {
    let size = f.metadata().map_err(|e| e.to_string())?.len();
    if size != n.size {
        return Err(format!(
            "verification failed: {} has {size} bytes, the snapshot says {}",
            target.display(),
            n.size
        ));
    }
    // Where the snapshot has a hole the file must read as zeros.
    let mut buf = vec![];
    for &(off, len) in &n.holes {
        let end = off.saturating_add(len).min(n.size);
        let mut at = off;
        while at < end {
            let step = (end - at).min(1 << 20) as usize;
            buf.resize(step, 0);
            f.read_exact_at(&mut buf[..step], at).map_err(|e| format!("verification read failed: {e}"))?;
            if buf[..step].iter().any(|&b| b != 0) {
                return Err(format!(
                    "verification failed: {} has data where the snapshot has a hole (at {at})",
                    target.display()
                ));
            }
            at += step as u64;
        }
    }
    let mut pos = Placer::new(&n.holes);
    for id in &n.content {
        let Some(loc) = repo.index().get(id) else {
            return Err(format!("verification failed: blob {id} not indexed"));
        };
        let mut buf = vec![0u8; loc.raw_length as usize];
        for (off, range) in pos.place(buf.len()) {
            f.read_exact_at(&mut buf[range], off).map_err(|e| format!("verification read failed: {e}"))?;
        }
        let key = repo.content_key(loc.key, || format!("blob {id}")).map_err(|e| e.to_string())?;
        if key.blob_id(&buf) != *id {
            return Err(format!("verification failed: the bytes of {} differ from the snapshot", target.display()));
        }
    }
    Ok(())
}

/// A new file for restored contents: private until its metadata is set, never through a
/// symlink, never over an existing entry.
fn create_new(target: &Path) -> std::io::Result<File> {
    fs::OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(target)
}

/// Blobs a batch read, by id (or why one could not be read).
type Fetched = HashMap<Id, Result<Vec<u8>, String>>;

/// Files below this size are restored in batches (most files of a source tree or a home
/// directory are): their blobs lie next to each other in packs, and one read serves many.
const BATCH_FILE_MAX: u64 = 1 << 20;

/// A batch's most bytes of contents (its blobs are in memory at once, in each writer)...
const BATCH_BYTES: u64 = 4 << 20;

/// ...and its most files.
const BATCH_FILES: usize = 1024;

/// Work for the writer pool: one file, or a batch of small ones.
enum Work {
    File(Box<FileJob>),
    Batch(Vec<FileJob>),
}

/// The error for a blob no index knows (it says how to repair).
fn not_indexed(id: Id) -> arca_repo::RepoError {
    arca_repo::RepoError::BlobNotIndexed { kind: arca_repo::repository::kind_name(BlobKind::Data), id }
}

/// The blobs `ids` name and where they are stored, in order; the id of one not indexed.
fn locate(repo: &Repository, ids: &[Id]) -> Result<Vec<Wanted>, Id> {
    let index = repo.index();
    ids.iter().map(|id| index.get(id).map(|loc| Wanted { id: *id, loc }).ok_or(*id)).collect()
}

/// Fetch the spans `runs` of `wanted`, up to `at_once` in flight (a new one starts as the
/// oldest is handed on; 1: one after the other, no threads), handing each to `each` in
/// order. Stops at the first error `each` returns.
fn fetch_in_order(
    repo: &Repository,
    wanted: &[Wanted],
    runs: &[Range<usize>],
    at_once: usize,
    mut each: impl FnMut(&Range<usize>, arca_repo::RepoResult<Span>) -> Result<(), String>,
) -> Result<(), String> {
    let fetch = |r: &Range<usize>| Span::fetch(repo, &wanted[r.clone()]);
    if at_once <= 1 {
        return runs.iter().try_for_each(|r| each(r, fetch(r)));
    }
    std::thread::scope(|s| {
        let mut inflight = std::collections::VecDeque::new();
        let mut runs = runs.iter();
        loop {
            while inflight.len() < at_once {
                let Some(r) = runs.next() else { break };
                inflight.push_back((r, s.spawn(move || fetch(r))));
            }
            let Some((r, fetching)) = inflight.pop_front() else { return Ok(()) };
            let span = fetching.join().unwrap_or(Err(arca_repo::RepoError::Internal("a reading thread panicked")));
            each(r, span)?;
        }
    })
}

/// A regular file for the writer pool.
struct FileJob {
    node: Node,
    target: PathBuf,
    /// A regular file of the right size is already there (`--overwrite if-changed`).
    existing: bool,
}

/// The walking half: directories, special files, and queueing files.
struct Walker<'a, 's> {
    shared: &'s Shared<'a>,
    jobs: crossbeam_channel::Sender<Work>,
    /// First restored path and node of each hardlink group.
    links: HashMap<(u64, u64), (PathBuf, Node)>,
    /// Further members of hardlink groups, linked once their first member is written.
    deferred_links: Vec<(PathBuf, PathBuf, Node)>,
    /// Directories in the order created; their metadata is applied in reverse.
    dirs: Vec<(PathBuf, Node)>,
    /// Trees, read ahead on a remote repository.
    trees: arca_repo::prefetch::TreeAhead<'a>,
    /// Small files gathered for one batch, and their bytes.
    batch: Vec<FileJob>,
    batch_bytes: u64,
}

/// Restore what `found` names into `opts.target`: a directory's contents go into the target
/// (which takes the directory's metadata), a single entry is restored inside it.
pub fn restore(repo: &Repository, found: Found, opts: &RestoreOptions, events: &dyn Events) -> FsResult<RestoreReport> {
    let shared = Shared {
        repo,
        opts,
        events,
        report: Mutex::new(RestoreReport::default()),
        warned: Mutex::new(HashSet::new()),
        no_reflink: Default::default(),
    };
    if opts.dry_run {
        if fs::metadata(&opts.target).is_ok_and(|m| !m.is_dir()) {
            return Err(FsError::TargetNotADirectory(opts.target.display().to_string()));
        }
    } else {
        ensure_target(&opts.target)?;
    }
    // Measured before anything is written: a crafted tree that would expand beyond the readers'
    // limits is refused here (arca_repo::limits), and the measure is the progress total.
    let extent = arca_repo::limits::measure_found(repo, &found)?;
    if events.wants_totals() {
        let bytes = match (&extent, &found) {
            (Some(e), _) => e.content_bytes,
            (None, Found::Node(n)) => n.content_len(),
            (None, Found::Root(_)) => 0,
        };
        events.emit(Event::Total { bytes });
    }
    let threads = opts.threads.max(1);
    let (tx, rx) = bounded::<Work>(threads * 4);
    let (links, dirs) = std::thread::scope(|scope| -> FsResult<_> {
        for _ in 0..threads {
            let rx = rx.clone();
            let shared = &shared;
            scope.spawn(move || {
                for work in rx {
                    match work {
                        Work::File(job) => shared.file(&job.node, &job.target, job.existing, None),
                        Work::Batch(jobs) => shared.batch(jobs),
                    }
                }
            });
        }
        drop(rx);
        let mut w = Walker {
            shared: &shared,
            jobs: tx,
            links: HashMap::new(),
            deferred_links: vec![],
            dirs: vec![],
            trees: arca_repo::prefetch::TreeAhead::new(repo),
            batch: vec![],
            batch_bytes: 0,
        };
        match found {
            Found::Root(id) => {
                w.tree(&id, &opts.target, b"", false)?;
            }
            Found::Node(n) if n.kind == NodeKind::Dir => {
                if let Some(id) = n.subtree {
                    w.tree(&id, &opts.target, &opts.base, false)?;
                }
                w.dirs.insert(0, (opts.target.clone(), *n));
            }
            Found::Node(n) => {
                let target = opts.target.join(OsStr::from_bytes(&n.name));
                w.entry(*n, target)?;
            }
        }
        w.flush()?;
        // Dropping the sender ends the writers; the scope waits for them.
        Ok((w.deferred_links, w.dirs))
    })?;
    for (target, first, node) in links {
        if opts.dry_run {
            shared.report().files += 1;
            continue;
        }
        match fs::hard_link(&first, &target) {
            Ok(()) => shared.report().files += 1,
            Err(e) => {
                shared.problem(&target, format!("cannot hard-link to {}: {e}; restoring a copy", first.display()));
                shared.file(&node, &target, false, None);
            }
        }
    }
    for (path, node) in dirs.iter().rev() {
        shared.metadata(path, node);
    }
    shared.report().dirs = dirs.len() as u64;
    Ok(shared.report.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// The target itself: an existing directory (or a link to one) is used as it is, a missing
/// one is created; anything else is the user's file and is never replaced.
fn ensure_target(path: &Path) -> FsResult<()> {
    match fs::metadata(path) {
        Ok(md) if md.is_dir() => Ok(()),
        Ok(_) => Err(FsError::TargetNotADirectory(path.display().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && fs::symlink_metadata(path).is_ok() => {
            Err(FsError::TargetNotADirectory(path.display().to_string()))
        }
        Err(_) => fs::create_dir_all(path).map_err(|e| FsError::io(path, e)),
    }
}

/// How many entries lie below directory `dir` (not following symlinks).
fn entries_below(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.flatten().map(|e| if e.file_type().is_ok_and(|t| t.is_dir()) { 1 + entries_below(&e.path()) } else { 1 }).sum()
}

/// A directory inside the target: whatever stands in its place is replaced (the snapshot wins).
fn ensure_dir(path: &Path) -> FsResult<()> {
    match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => Ok(()),
        Ok(_) => {
            fs::remove_file(path).map_err(|e| FsError::io(path, e))?;
            fs::create_dir(path).map_err(|e| FsError::io(path, e))
        }
        Err(_) => fs::create_dir_all(path).map_err(|e| FsError::io(path, e)),
    }
}

fn matches(set: &Option<GlobSet>, spath: &[u8]) -> bool {
    set.as_ref().is_some_and(|g| g.is_match(Path::new(OsStr::from_bytes(spath))))
}

impl Walker<'_, '_> {
    fn send(&self, work: Work) -> FsResult<()> {
        self.jobs.send(work).map_err(|_| FsError::Internal("the restore writers stopped"))
    }

    /// The bytes of the blobs `n` names, as the index has them (a blob no index knows counts
    /// nothing: it fails the file when it is written).
    fn named_bytes(&self, n: &Node) -> u64 {
        let index = self.shared.repo.index();
        n.content.iter().filter_map(|id| index.get(id)).map(|loc| loc.raw_length as u64).sum()
    }

    /// Hand the small files gathered so far to the writers.
    fn flush(&mut self) -> FsResult<()> {
        self.batch_bytes = 0;
        match std::mem::take(&mut self.batch) {
            b if b.is_empty() => Ok(()),
            b => self.send(Work::Batch(b)),
        }
    }

    /// Restore the children of tree `id` into `dir`. Returns whether anything was restored.
    fn tree(&mut self, id: &Id, dir: &Path, spath: &[u8], selected: bool) -> FsResult<bool> {
        let opts = self.shared.opts;
        let tree = match self.trees.read(id) {
            Ok(t) => t,
            Err(e) => {
                self.shared.problem(dir, format!("directory listing unreadable: {e}"));
                return Ok(false);
            }
        };
        // A whole restore visits every subtree: the next ones are read ahead (a remote
        // repository). With includes or excludes many are never visited: nothing is.
        if opts.includes.is_none() && opts.excludes.is_none() {
            self.trees.ahead(tree.nodes.iter().filter(|n| n.kind == NodeKind::Dir).filter_map(|n| n.subtree));
        }
        let mut any = false;
        let names: HashSet<Vec<u8>> =
            if opts.delete { tree.nodes.iter().map(|n| n.name.to_vec()).collect() } else { HashSet::new() };
        for n in tree.nodes {
            let child_spath = [spath, b"/", &n.name].concat();
            if matches(&opts.excludes, &child_spath) {
                continue;
            }
            let sel = selected || opts.includes.is_none() || matches(&opts.includes, &child_spath);
            let target = dir.join(OsStr::from_bytes(&n.name));
            if n.kind == NodeKind::Dir {
                let Some(sub) = n.subtree else {
                    self.shared.problem(
                        &target,
                        "the snapshot's directory entry has no listing (damaged tree); not restored".into(),
                    );
                    continue;
                };
                if !sel && !self.tree_has_selection(&sub, &child_spath)? {
                    // Create lazily: only if something inside is selected.
                    continue;
                }
                if !opts.dry_run {
                    ensure_dir(&target)?;
                }
                self.dirs.push((target.clone(), n));
                self.tree(&sub, &target, &child_spath, sel)?;
                any = true;
            } else if sel {
                self.entry(n, target)?;
                any = true;
            }
        }
        if opts.delete && (selected || opts.includes.is_none()) {
            self.delete_extra(dir, &names);
        }
        Ok(any)
    }

    /// Remove what `dir` holds beyond `names` (the snapshot's entries).
    fn delete_extra(&mut self, dir: &Path, names: &HashSet<Vec<u8>>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            if names.contains(e.file_name().as_bytes()) {
                continue;
            }
            let p = e.path();
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let entries = if is_dir { 1 + entries_below(&p) } else { 1 };
            let removed = match (self.shared.opts.dry_run, is_dir) {
                (true, _) => Ok(()),
                (false, true) => fs::remove_dir_all(&p),
                (false, false) => fs::remove_file(&p),
            };
            match removed {
                Ok(()) => {
                    self.shared.report().deleted += entries;
                    self.shared.events.emit(Event::Deleted { path: &p, entries });
                }
                Err(err) => self.shared.problem(&p, format!("cannot delete: {err}")),
            }
        }
    }

    fn tree_has_selection(&self, id: &Id, spath: &[u8]) -> FsResult<bool> {
        let opts = self.shared.opts;
        let Ok(tree) = self.shared.repo.read_tree(id) else { return Ok(true) };
        for n in &tree.nodes {
            let p = [spath, b"/", &n.name].concat();
            if matches(&opts.excludes, &p) {
                continue;
            }
            if matches(&opts.includes, &p) {
                return Ok(true);
            }
            if let (NodeKind::Dir, Some(sub)) = (n.kind, &n.subtree) {
                if self.tree_has_selection(sub, &p)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Restore one non-directory entry at `target` (regular files go to the writer pool).
    fn entry(&mut self, n: Node, target: PathBuf) -> FsResult<()> {
        let mut existing = false;
        if let Ok(md) = fs::symlink_metadata(&target) {
            let same_link = n.kind == NodeKind::Symlink
                && md.file_type().is_symlink()
                && fs::read_link(&target).ok().map(|t| t.into_os_string().into_vec())
                    == n.target.as_ref().map(|t| t.to_vec());
            match self.shared.opts.overwrite {
                Overwrite::Never => {
                    self.shared.report().kept += 1;
                    return Ok(());
                }
                Overwrite::IfChanged if same_link => {
                    self.shared.report().unchanged += 1;
                    self.shared.metadata(&target, &n);
                    return Ok(());
                }
                Overwrite::IfChanged
                    if n.kind == NodeKind::File && !n.is_hardlinked() && md.is_file() && md.len() == n.size =>
                {
                    existing = true;
                }
                _ if self.shared.opts.dry_run => {}
                _ => {
                    let removed = if md.is_dir() { fs::remove_dir_all(&target) } else { fs::remove_file(&target) };
                    removed.map_err(|e| FsError::io(&target, e))?;
                }
            }
        }
        if n.is_hardlinked() {
            let key = (n.device, n.inode);
            if let Some((first, first_node)) = self.links.get(&key) {
                match n.link_mismatch(first_node) {
                    Some(refused) => self.shared.problem(&target, refused),
                    None => self.deferred_links.push((target, first.clone(), n)),
                }
                return Ok(());
            }
            self.links.insert(key, (target.clone(), n.clone()));
        }
        if self.shared.opts.dry_run && n.kind != NodeKind::File {
            self.shared.report().other += 1;
            return Ok(());
        }
        let created = match n.kind {
            NodeKind::File => {
                let opts = self.shared.opts;
                let job = FileJob { node: n, target, existing };
                // Files that are compared, cloned or only counted are not read in batches.
                // What a batch holds is the blobs the files name (their stored lengths), not
                // the sizes the files claim: a crafted node of size 0 naming large blobs is
                // restored on its own, streaming.
                let named = self.named_bytes(&job.node);
                let alone = existing || opts.dry_run || opts.reflink_from.is_some();
                if alone || job.node.size >= BATCH_FILE_MAX || named >= BATCH_FILE_MAX {
                    return self.send(Work::File(Box::new(job)));
                }
                if self.batch_bytes + named > BATCH_BYTES {
                    self.flush()?;
                }
                self.batch_bytes += named;
                self.batch.push(job);
                if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= BATCH_FILES {
                    self.flush()?;
                }
                return Ok(());
            }
            NodeKind::Symlink => {
                let t = n.target.as_deref().map(|t| t.to_vec()).unwrap_or_default();
                std::os::unix::fs::symlink(OsStr::from_bytes(&t), &target).map_err(|e| e.to_string())
            }
            NodeKind::BlockDevice | NodeKind::CharDevice => {
                let kind = if n.kind == NodeKind::BlockDevice { SFlag::S_IFBLK } else { SFlag::S_IFCHR };
                mknod(&target, kind, Mode::from_bits_truncate(n.mode & 0o777), n.rdev).map_err(|e| e.to_string())
            }
            NodeKind::Fifo => {
                nix::unistd::mkfifo(&target, Mode::from_bits_truncate(n.mode & 0o777)).map_err(|e| e.to_string())
            }
            NodeKind::Socket => std::os::unix::net::UnixListener::bind(&target).map(drop).map_err(|e| e.to_string()),
            NodeKind::Unknown => {
                Err("an entry of a type this arca does not know (written by a newer version): not restored; restore it with that version".into())
            }
            NodeKind::Dir => Ok(()),
        };
        match created {
            Ok(()) => {
                self.shared.report().other += 1;
                self.shared.metadata(&target, &n);
            }
            Err(e) => self.shared.problem(&target, e),
        }
        Ok(())
    }
}

/// Write a file's logical contents (holes as zeros) to `w`.
pub fn dump(repo: &Repository, n: &Node, w: &mut dyn std::io::Write) -> FsResult<u64> {
    let io = |e| FsError::io(Path::new("<output>"), e);
    let zeros = vec![0u8; 1 << 16];
    let mut written = 0u64;
    let mut pos = Placer::new(&n.holes);
    for id in &n.content {
        let data = repo.read_blob(BlobKind::Data, id)?;
        for (off, range) in pos.place(data.len()) {
            while written < off {
                let k = (off - written).min(zeros.len() as u64) as usize;
                w.write_all(&zeros[..k]).map_err(io)?;
                written += k as u64;
            }
            w.write_all(&data[range.clone()]).map_err(io)?;
            written += range.len() as u64;
        }
    }
    while written < n.size {
        let k = (n.size - written).min(zeros.len() as u64) as usize;
        w.write_all(&zeros[..k]).map_err(io)?;
        written += k as u64;
    }
    w.flush().map_err(io)?;
    Ok(written)
}

/// Maps positions in a file's data stream (its content blobs back to back) to file offsets,
/// stepping over holes.
struct Placer<'a> {
    holes: &'a [(u64, u64)],
    next_hole: usize,
    file_pos: u64,
}

impl<'a> Placer<'a> {
    fn new(holes: &'a [(u64, u64)]) -> Self {
        Placer { holes, next_hole: 0, file_pos: 0 }
    }

    /// Where the next `len` bytes of data go: (file offset, range within those bytes).
    fn place(&mut self, len: usize) -> Vec<(u64, std::ops::Range<usize>)> {
        let mut out = vec![];
        let mut done = 0usize;
        while done < len {
            while let Some(&(hs, hl)) = self.holes.get(self.next_hole) {
                if self.file_pos >= hs {
                    self.file_pos = self.file_pos.max(hs + hl);
                    self.next_hole += 1;
                } else {
                    break;
                }
            }
            let room = match self.holes.get(self.next_hole) {
                Some(&(hs, _)) => (hs - self.file_pos) as usize,
                None => usize::MAX,
            };
            let n = room.min(len - done);
            out.push((self.file_pos, done..done + n));
            self.file_pos += n as u64;
            done += n;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placer_skips_holes() {
        let holes = [(0, 10), (15, 5), (30, 100)];
        let mut p = Placer::new(&holes);
        assert_eq!(p.place(3), vec![(10, 0..3)]);
        assert_eq!(p.place(7), vec![(13, 0..2), (20, 2..7)]);
        assert_eq!(p.place(5), vec![(25, 0..5)]);
        assert_eq!(p.place(4), vec![(130, 0..4)]);
        let mut q = Placer::new(&[]);
        assert_eq!(q.place(4), vec![(0, 0..4)]);
    }
}
