//! The sources this crate adds to arca-ops': files read from a filesystem snapshot
//! ([`FrozenFiles`]) and a btrfs send stream ([`SendStream`]).

use crate::freeze::{self, Method, Runner};
use crate::{btrfs, FsnapError, FsnapResult};
use arca_format::{Id, SnapshotKind};
use arca_fs::BackupOutcome;
use arca_ops::source::{Files, FilesOptions};
use arca_ops::{OpsResult, Source};
use arca_repo::{BlobWriter, Cancel, Event, Events};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Local files, read from snapshots of their filesystems taken just before (`backup
/// --fs-snapshot`): the backup sees one instant, not files changing under it.
pub struct FrozenFiles {
    paths: Vec<PathBuf>,
    opts: FilesOptions,
    own: Vec<PathBuf>,
    method: Method,
    runner: Arc<dyn Runner>,
    recorded: BTreeMap<String, String>,
}

impl FrozenFiles {
    /// The given paths (resolved as a file backup resolves them), read through snapshots
    /// taken by `method`.
    pub fn new(given: &[PathBuf], opts: FilesOptions, own: &[PathBuf], method: Method) -> OpsResult<FrozenFiles> {
        let files = Files::new(given, opts.clone(), own)?;
        let paths = files.source_paths().to_vec();
        Ok(FrozenFiles {
            paths,
            opts,
            own: own.to_vec(),
            method,
            runner: Arc::new(freeze::SystemRunner),
            recorded: BTreeMap::new(),
        })
    }
}

impl Source for FrozenFiles {
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

    fn metadata(&self) -> BTreeMap<String, String> {
        self.recorded.clone()
    }

    fn store(
        &mut self,
        writer: &BlobWriter,
        parent: Option<Id>,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> OpsResult<BackupOutcome> {
        let frozen = freeze::freeze(&self.paths, self.method, self.opts.one_file_system, self.runner.clone())?;
        for l in &frozen.removed_leftovers {
            events.emit(Event::Notice(&format!("removed {l}, a snapshot left by a run that did not finish")));
        }
        for n in &frozen.notes {
            events.emit(Event::Caution(n));
        }
        let mut own = self.own.clone();
        own.extend(frozen.own.iter().cloned());
        let mut files = Files::new(&self.paths, self.opts.clone(), &own)?;
        files.set_redirects(frozen.redirects.clone());
        self.recorded = frozen.metadata.clone();
        let outcome = files.store(writer, parent, events, cancel);
        for problem in frozen.release() {
            events.emit(Event::Caution(&format!("{problem} (the next backup with --fs-snapshot removes it)")));
        }
        outcome
    }
}

/// The names of a send stream's two parts in its snapshot ([`crate::stream`]).
pub fn stream_file_names(name: &str) -> (String, String) {
    (format!("{name}.btrfs-commands"), format!("{name}.btrfs-data"))
}

/// A full `btrfs send` stream of one subvolume (`backup --btrfs-send`), stored as its two
/// parts ([`crate::stream`]) so that a second full stream costs about what changed. A
/// subvolume that is not read-only is sent from a read-only snapshot taken for it (send
/// needs one), named as the subvolume so the stream receives under its name.
pub struct SendStream {
    subvolume: PathBuf,
    recorded: BTreeMap<String, String>,
}

impl SendStream {
    pub fn new(subvolume: &Path) -> FsnapResult<SendStream> {
        let subvolume = std::fs::canonicalize(subvolume).map_err(|e| FsnapError::io(subvolume, e))?;
        if !btrfs::is_subvolume(&subvolume) {
            return Err(FsnapError::Unsupported {
                path: subvolume,
                why: "is not a btrfs subvolume (btrfs send sends whole subvolumes)".into(),
            });
        }
        Ok(SendStream { subvolume, recorded: BTreeMap::new() })
    }

    fn name(&self) -> String {
        self.subvolume.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "root".into())
    }
}

/// A pipe between threads: what one writes, the other reads.
struct ChannelWriter(crossbeam_channel::Sender<Vec<u8>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the data store stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct ChannelReader {
    rx: crossbeam_channel::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(b) => (self.buf, self.pos) = (b, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Split `stream` as it comes: the data part is chunked and stored on a second thread while
/// the commands part collects in a temporary file, stored after. The blobs and sizes of the
/// commands part, of the data part, and the split's byte counts.
#[allow(clippy::type_complexity)]
fn store_split(
    writer: &BlobWriter,
    stream: impl std::io::Read,
    events: &dyn Events,
    cancel: &Cancel,
) -> FsnapResult<((Vec<Id>, u64), (Vec<Id>, u64), crate::stream::Sizes)> {
    let mut commands = tempfile::tempfile().map_err(|e| FsnapError::io(&std::env::temp_dir(), e))?;
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(16);
    let (data, sizes) = std::thread::scope(|s| {
        let store = s.spawn(move || {
            let reader = ChannelReader { rx, buf: vec![], pos: 0 };
            arca_fs::backup::store_stream(writer, reader, Path::new("btrfs send (data)"), events, cancel)
        });
        let sink = std::io::BufWriter::with_capacity(1 << 20, ChannelWriter(tx));
        let split = crate::stream::split(stream, std::io::BufWriter::new(&mut commands), sink);
        let stored =
            store.join().map_err(|_| FsnapError::Invalid("the thread storing the stream's data panicked".into()))?;
        // The store's own error explains a broken pipe better than the pipe does.
        let data = stored?;
        let sizes = split.map_err(|e| FsnapError::io(Path::new("btrfs send"), e))?;
        Ok::<_, FsnapError>((data, sizes))
    })?;
    use std::io::Seek;
    commands.rewind().map_err(|e| FsnapError::io(Path::new("btrfs send (commands)"), e))?;
    let cmds = arca_fs::backup::store_stream(writer, commands, Path::new("btrfs send (commands)"), events, cancel)?;
    Ok((cmds, data, sizes))
}

impl Source for SendStream {
    fn kind(&self) -> SnapshotKind {
        SnapshotKind::BtrfsSend
    }

    fn paths(&self) -> Vec<String> {
        vec![self.subvolume.display().to_string()]
    }

    fn metadata(&self) -> BTreeMap<String, String> {
        self.recorded.clone()
    }

    fn store(
        &mut self,
        writer: &BlobWriter,
        _: Option<Id>,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> OpsResult<BackupOutcome> {
        let started = std::time::Instant::now();
        let info = btrfs::subvolume_info(&self.subvolume)?;
        // Held until the stream is stored: a writable subvolume is sent from its snapshot.
        let frozen = match info.readonly {
            true => None,
            // Only the subvolume: a send stream holds nothing mounted below it.
            false => Some(freeze::freeze(
                std::slice::from_ref(&self.subvolume),
                Method::Btrfs,
                true,
                Arc::new(freeze::SystemRunner),
            )?),
        };
        let sent = frozen.as_ref().and_then(|f| f.redirects.first()).map(|r| r.read_from.clone());
        let sent = sent.unwrap_or_else(|| self.subvolume.clone());
        let mut c = std::process::Command::new("btrfs");
        c.args(["send", "-q"]).arg(&sent);
        let ((cmd_blobs, cmd_size), (data_blobs, data_size), sizes) =
            arca_ops::tool::read_output(c, "btrfs send", "install btrfs-progs", |out| {
                store_split(writer, out, events, cancel)
            })?;
        if let Some(f) = frozen {
            for problem in f.release() {
                events.emit(Event::Caution(&format!("{problem} (the next backup with --btrfs-send removes it)")));
            }
        }
        let (cmd_name, data_name) = stream_file_names(&self.name());
        let nodes = vec![
            arca_fs::backup::stream_node(cmd_name.as_bytes(), cmd_blobs, cmd_size),
            arca_fs::backup::stream_node(data_name.as_bytes(), data_blobs, data_size),
        ];
        let tree = arca_fs::backup::store_tree(writer, nodes)?;
        self.recorded = BTreeMap::from([
            ("btrfs.name".to_string(), self.name()),
            ("btrfs.uuid".to_string(), info.uuid.clone()),
            ("btrfs.ctransid".to_string(), info.ctransid.to_string()),
            ("btrfs.stream".to_string(), "split-1".to_string()),
            ("btrfs.stream_size".to_string(), sizes.stream.to_string()),
        ]);
        Ok(BackupOutcome::of_streams(tree, 2, sizes.stream, started))
    }
}
