//! Restoring a stored btrfs send stream: its bytes piped into `btrfs receive`.

use crate::{FsnapError, FsnapResult};
use arca_format::{NodeKind, SnapshotKind};
use arca_fs::export::BlobReader;
use arca_repo::snapshots::SnapshotEntry;
use arca_repo::Repository;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// What a receive did.
#[derive(Debug, Serialize)]
pub struct Received {
    pub snapshot_id: String,
    /// The stream's file in the snapshot.
    pub stream: String,
    pub bytes: u64,
    /// The subvolume `btrfs receive` made, when the snapshot recorded its name.
    pub subvolume: Option<String>,
}

/// Pipe the send stream stored in `snap` into `btrfs receive DIR` (`-`: write it to standard
/// output instead).
pub fn receive(repo: &Repository, snap: &SnapshotEntry, dir: &Path) -> FsnapResult<Received> {
    if snap.snapshot.kind != SnapshotKind::BtrfsSend {
        return Err(FsnapError::NotFound(format!(
            "snapshot {} holds no btrfs send stream (it is a {:?} snapshot; streams come from `arca backup --btrfs-send`)",
            snap.id.short(),
            snap.snapshot.kind
        )));
    }
    let tree = repo.read_tree(&snap.snapshot.tree)?;
    let part = |suffix: &str| {
        tree.nodes.iter().find(|n| n.kind == NodeKind::File && n.name.ends_with(suffix.as_bytes())).ok_or_else(|| {
            FsnapError::NotFound(format!("snapshot {} lacks the stream's {suffix} part", snap.id.short()))
        })
    };
    let (commands, data) = (part(".btrfs-commands")?, part(".btrfs-data")?);
    let expected: Option<u64> = snap.snapshot.source.get("btrfs.stream_size").and_then(|s| s.parse().ok());
    let joined = |out: &mut dyn Write| -> FsnapResult<u64> {
        let c = BlobReader::of(repo, &commands.content);
        let d = BlobReader::of(repo, &data.content);
        let n = crate::stream::join(c, d, out).map_err(|e| FsnapError::io(Path::new("the stored send stream"), e))?;
        match expected {
            Some(e) if e != n => Err(FsnapError::Invalid(format!(
                "the send stream of snapshot {} came back as {n} bytes, not the {e} stored",
                snap.id.short()
            ))),
            _ => Ok(n),
        }
    };
    let name = String::from_utf8_lossy(&commands.name).trim_end_matches(".btrfs-commands").to_string();
    let bytes = if dir == Path::new("-") {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        joined(&mut lock)?
    } else {
        if !dir.is_dir() {
            return Err(FsnapError::Unsupported { path: dir.to_path_buf(), why: "is not a directory".into() });
        }
        if !crate::btrfs::is_btrfs(dir) {
            return Err(FsnapError::Unsupported {
                path: dir.to_path_buf(),
                why: "is not on btrfs (btrfs receive makes subvolumes)".into(),
            });
        }
        let mut c = std::process::Command::new("btrfs");
        c.args(["receive", "-e"]).arg(dir);
        // When the stream cannot be read, btrfs receive fails too ("short read"): the reason
        // is ours, so ours is the error.
        let ours = std::cell::RefCell::new(None);
        let result = arca_ops::tool::write_input(c, "btrfs receive", "install btrfs-progs", |stdin| {
            joined(stdin).inspect_err(|e| {
                let pipe =
                    matches!(e, FsnapError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe);
                if !pipe {
                    *ours.borrow_mut() = Some(e.to_string());
                }
            })
        });
        match (result, ours.into_inner()) {
            (Ok(n), _) => n,
            (Err(_), Some(why)) => {
                return Err(FsnapError::Invalid(format!(
                "{why}; btrfs receive may have left a partial subvolume in {}: remove it with `btrfs subvolume delete`",
                dir.display()
            )))
            }
            (Err(e), None) => return Err(e),
        }
    };
    Ok(Received {
        snapshot_id: snap.id.to_hex(),
        stream: name,
        bytes,
        subvolume: snap.snapshot.source.get("btrfs.name").cloned(),
    })
}
