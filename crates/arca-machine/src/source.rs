//! The machine's description as a snapshot source (`backup --system`): a snapshot of kind
//! `system` holding `system.json` (what `recovery-script` reads) and `system.txt` (for a
//! person).

use crate::describe::{self, Machine, Options};
use crate::{MachineError, MachineResult};
use arca_format::{Id, NodeKind, SnapshotKind};
use arca_fs::BackupOutcome;
use arca_ops::{OpsResult, Source};
use arca_repo::snapshots::SnapshotEntry;
use arca_repo::{BlobWriter, Cancel, Events, Repository};
use std::collections::BTreeMap;

/// The files of a system snapshot.
pub const JSON: &str = "system.json";
pub const TEXT: &str = "system.txt";

/// Describes the machine when stored.
pub struct SystemDescription {
    opts: Options,
    recorded: BTreeMap<String, String>,
}

impl SystemDescription {
    pub fn new(opts: Options) -> SystemDescription {
        SystemDescription { opts, recorded: BTreeMap::new() }
    }
}

impl Source for SystemDescription {
    fn kind(&self) -> SnapshotKind {
        SnapshotKind::System
    }

    fn paths(&self) -> Vec<String> {
        vec![self.opts.root.display().to_string()]
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
        let m = describe::describe(&self.opts).map_err(arca_ops::OpsError::from)?;
        let json = serde_json::to_vec_pretty(&m)
            .map_err(|e| arca_ops::OpsError::from(MachineError::NotInSnapshot(e.to_string())))?;
        let text = describe::text(&m).into_bytes();
        let mut nodes = vec![];
        let (mut bytes, mut files) = (0, 0);
        for (name, data) in [(JSON, &json), (TEXT, &text)] {
            let (blobs, size) =
                arca_fs::backup::store_stream(writer, &data[..], std::path::Path::new(name), events, cancel)?;
            bytes += size;
            files += 1;
            nodes.push(arca_fs::backup::stream_node(name.as_bytes(), blobs, size));
        }
        // LUKS headers, when asked for, as luks/<uuid>.header.
        let headers: Vec<(String, &Vec<u8>)> = m
            .disks
            .iter()
            .flat_map(|d| d.partitions.iter().filter_map(|p| p.filesystem.as_ref()).chain(d.filesystem.as_ref()))
            .filter_map(|f| Some((format!("{}.header", f.uuid.as_deref()?), f.header.as_ref()?)))
            .collect();
        if !headers.is_empty() {
            let mut inner = vec![];
            for (name, data) in headers {
                let (blobs, size) =
                    arca_fs::backup::store_stream(writer, &data[..], std::path::Path::new(&name), events, cancel)?;
                bytes += size;
                files += 1;
                let mut node = arca_fs::backup::stream_node(name.as_bytes(), blobs, size);
                node.mode = 0o600;
                inner.push(node);
            }
            let sub = arca_fs::backup::store_tree(writer, inner)?;
            let mut dir = arca_fs::backup::dir_node(b"luks", sub);
            dir.mode = 0o700;
            nodes.push(dir);
        }
        let tree = arca_fs::backup::store_tree(writer, nodes)?;
        self.recorded = BTreeMap::from([
            (
                "system.disks".to_string(),
                m.disks.iter().map(|d| d.path.display().to_string()).collect::<Vec<_>>().join(", "),
            ),
            ("system.absent".to_string(), m.absent.len().to_string()),
        ]);
        Ok(BackupOutcome::of_streams(tree, files, bytes, started))
    }
}

/// The description a system snapshot holds.
pub fn load(repo: &Repository, snap: &SnapshotEntry) -> MachineResult<Machine> {
    if snap.snapshot.kind != SnapshotKind::System {
        return Err(MachineError::NotInSnapshot(format!(
            "snapshot {} is not a system description (it is a {:?} snapshot; `arca backup --system` makes one)",
            snap.id.short(),
            snap.snapshot.kind
        )));
    }
    let tree = repo.read_tree(&snap.snapshot.tree)?;
    let node = tree
        .nodes
        .iter()
        .find(|n| n.kind == NodeKind::File && &n.name[..] == JSON.as_bytes())
        .ok_or_else(|| MachineError::NotInSnapshot(format!("snapshot {} has no {JSON}", snap.id.short())))?;
    let mut b = vec![];
    arca_fs::restore::dump(repo, node, &mut b)?;
    serde_json::from_slice(&b)
        .map_err(|e| MachineError::NotInSnapshot(format!("{JSON} of snapshot {}: {e}", snap.id.short())))
}
