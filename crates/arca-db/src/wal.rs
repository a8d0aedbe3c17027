//! The PostgreSQL WAL archive: `arca wal-push %p` as `archive_command`, `arca wal-fetch %f %p`
//! as `restore_command`. Each file PostgreSQL archives (segments, `.history`, `.backup`,
//! `.partial` files) becomes a small snapshot of kind `database` holding `/wal/<name>`, whose
//! paths name the cluster (`/wal/<system identifier>`), so segments deduplicate, compress,
//! encrypt and sign like everything else, and `forget` can reach them.
//!
//! Pushing is idempotent: a file archived already with the same contents succeeds without
//! storing anything (PostgreSQL retries after a crash); different contents under a name
//! already archived is refused, as PostgreSQL's documentation asks of an archive command.

use crate::layout::Builder;
use crate::source::Dumper;
use crate::{DbError, DbResult};
use arca_format::{Id, Snapshot, SnapshotKind};
use arca_repo::snapshots::SnapshotEntry;
use arca_repo::{BlobWriter, Cancel, Events, Repository};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The top-level directory of a WAL snapshot.
pub const WAL: &str = "wal";

/// The `paths` entry of the WAL snapshots of cluster `sysid`.
pub fn cluster_path(sysid: &str) -> String {
    format!("/{WAL}/{sysid}")
}

/// True if `name` can be a file PostgreSQL archives (a segment, a timeline history, a backup
/// history file, a partial segment): hex digits, dots and letters, nothing else.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
}

/// A WAL segment's 24-digit name: timeline, log, segment.
pub fn segment_parts(name: &str) -> Option<(u32, u32, u32)> {
    if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let p = |r: std::ops::Range<usize>| u32::from_str_radix(&name[r], 16).ok();
    Some((p(0..8)?, p(8..16)?, p(16..24)?))
}

/// The system identifier a WAL segment's first page names (its long page header), if `head`
/// (the segment's first bytes) has one.
pub fn sysid_of_segment(head: &[u8]) -> Option<u64> {
    // XLogLongPageHeaderData: magic u16 (XLOG_PAGE_MAGIC, 0xD1xx in PostgreSQL 10 to 17,
    // 0xD0xx before), info u16 (XLP_LONG_HEADER = 0x0002), tli u32, pageaddr u64, rem_len
    // u32, padding, then sysid u64 at offset 24.
    let magic = u16::from_le_bytes(head.get(0..2)?.try_into().ok()?);
    let info = u16::from_le_bytes(head.get(2..4)?.try_into().ok()?);
    if !(0xD000..=0xD1FF).contains(&magic) || info & 0x0002 == 0 {
        return None;
    }
    Some(u64::from_le_bytes(head.get(24..32)?.try_into().ok()?))
}

/// The system identifier of the cluster whose data directory is `dir` (`global/pg_control`
/// starts with it). PostgreSQL runs archive and restore commands in the data directory.
pub fn sysid_of_cluster(dir: &Path) -> Option<u64> {
    let mut f = std::fs::File::open(dir.join("global/pg_control")).ok()?;
    let mut b = [0u8; 8];
    f.read_exact(&mut b).ok()?;
    Some(u64::from_le_bytes(b))
}

/// The cluster a WAL file belongs to: `given`, or what the segment says, or what the data
/// directory (the working directory) says.
pub fn sysid_for(file: &Path, given: Option<&str>) -> DbResult<String> {
    if let Some(g) = given {
        return Ok(g.to_string());
    }
    let mut head = [0u8; 40];
    // Only a segment (or a partial one) starts with a page header; a history or backup file
    // is text, whose bytes could pass for one.
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let segment =
        name.get(..24).is_some_and(|n| segment_parts(n).is_some()) && (name.len() == 24 || name.ends_with(".partial"));
    let from_segment = std::fs::File::open(file)
        .and_then(|mut f| f.read_exact(&mut head))
        .ok()
        .filter(|()| segment)
        .and_then(|()| sysid_of_segment(&head));
    let from_dir = || std::env::current_dir().ok().and_then(|d| sysid_of_cluster(&d));
    from_segment.or_else(from_dir).map(|s| s.to_string()).ok_or_else(|| {
        DbError::Invalid(format!(
            "cannot tell which cluster {} belongs to (not a WAL segment, and the working directory is no data directory): give --system-identifier",
            file.display()
        ))
    })
}

/// The archived file `name` of cluster `sysid`, if there is one.
pub fn find<'a>(all: &'a [SnapshotEntry], sysid: &str, name: &str) -> Option<&'a SnapshotEntry> {
    let path = cluster_path(sysid);
    all.iter().find(|s| {
        s.snapshot.kind == SnapshotKind::Database
            && s.snapshot.paths == [path.clone()]
            && s.snapshot.source.get("segment").map(String::as_str) == Some(name)
    })
}

/// The stored node of an archived WAL file.
pub fn node(repo: &Repository, s: &Snapshot, name: &str) -> DbResult<arca_format::Node> {
    let root = repo.read_tree(&s.tree)?;
    let dir = root
        .nodes
        .iter()
        .find(|n| n.name.as_slice() == WAL.as_bytes())
        .and_then(|n| n.subtree)
        .ok_or_else(|| DbError::NotInSnapshot(format!("snapshot of {name} holds no {WAL}/ directory")))?;
    repo.read_tree(&dir)?
        .nodes
        .into_iter()
        .find(|n| n.name.as_slice() == name.as_bytes())
        .ok_or_else(|| DbError::NotInSnapshot(format!("snapshot of {name} does not hold it")))
}

/// One file PostgreSQL archives, as a snapshot.
pub struct Segment {
    path: PathBuf,
    name: String,
    sysid: String,
}

impl Segment {
    /// `path` (PostgreSQL's `%p`) of cluster `sysid`.
    pub fn new(path: &Path, sysid: &str) -> DbResult<Segment> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| valid_name(n))
            .ok_or_else(|| DbError::Invalid(format!("{} is not the name of a WAL file", path.display())))?
            .to_string();
        Ok(Segment { path: path.to_path_buf(), name, sysid: sysid.to_string() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Segment {
    /// What the snapshot records.
    fn recorded(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("engine".to_string(), "postgresql-wal".to_string()),
            ("system_identifier".to_string(), self.sysid.clone()),
            ("segment".to_string(), self.name.clone()),
        ])
    }
}

impl Dumper for Segment {
    fn paths(&self) -> Vec<String> {
        vec![cluster_path(&self.sysid)]
    }

    fn dump(
        &mut self,
        b: &mut Builder,
        writer: &BlobWriter,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> DbResult<BTreeMap<String, String>> {
        let f = std::fs::File::open(&self.path).map_err(|source| DbError::Io { path: self.path.clone(), source })?;
        let node = arca_fs::backup::stream_node(self.name.as_bytes(), vec![], 0);
        b.add_file(writer, WAL, &[self.name.as_bytes()], node, f, events, cancel)?;
        Ok(self.recorded())
    }
}

/// The blob ids and size `path` would be stored as with `repo`'s default key (what the
/// writer computes), to tell a file archived already from a different one of the same name.
pub fn content_ids(repo: &Repository, path: &Path) -> DbResult<(Vec<Id>, u64)> {
    let key = repo.default_key();
    let chunker = repo.chunker_for(&key)?;
    let f = std::fs::File::open(path).map_err(|source| DbError::Io { path: path.to_path_buf(), source })?;
    let mut stream = chunker.stream(f);
    let (mut ids, mut size) = (vec![], 0u64);
    while let Some(chunk) = stream.next_chunk().map_err(|source| DbError::Io { path: path.to_path_buf(), source })? {
        size += chunk.len() as u64;
        ids.push(key.blob_id(chunk));
    }
    Ok((ids, size))
}

/// How the WAL archive of one cluster covers time.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Coverage {
    pub system_identifier: String,
    /// Base backups: snapshot id, end time, first WAL segment.
    pub base_backups: Vec<(String, String, String)>,
    /// Archived segments, and the timelines they are on.
    pub segments: usize,
    pub timelines: Vec<u32>,
    /// Restorable from (the earliest base backup's end) to (the archive time of the last
    /// segment of the unbroken run of WAL after it); `None` if no base backup has its WAL.
    pub restorable_from: Option<String>,
    pub restorable_to: Option<String>,
    /// Missing segments after the earliest usable base backup, as (after, next present).
    pub gaps: Vec<(String, String)>,
}

/// Segments per log file at the default 16 MiB segment size.
const SEGMENTS_PER_LOG: u64 = 0x1_0000_0000 / (16 << 20);

fn seq(log: u32, seg: u32) -> u64 {
    log as u64 * SEGMENTS_PER_LOG + seg as u64
}

/// The coverage of cluster `sysid` from its snapshots `all`.
pub fn coverage(all: &[SnapshotEntry], sysid: &str) -> Coverage {
    let mut c = Coverage { system_identifier: sysid.to_string(), ..Default::default() };
    let path = cluster_path(sysid);
    // Archived segments by timeline: sequence number -> archive time.
    let mut by_tli: BTreeMap<u32, BTreeMap<u64, String>> = BTreeMap::new();
    for s in all.iter().filter(|s| s.snapshot.paths == [path.clone()]) {
        let Some(name) = s.snapshot.source.get("segment") else { continue };
        c.segments += 1;
        if let Some((tli, log, seg)) = segment_parts(name) {
            by_tli.entry(tli).or_default().insert(seq(log, seg), s.snapshot.time.clone());
        }
    }
    c.timelines = by_tli.keys().copied().collect();
    let mut bases: Vec<&SnapshotEntry> = all
        .iter()
        .filter(|s| {
            s.snapshot.source.get("engine").map(String::as_str) == Some("postgresql-physical")
                && s.snapshot.source.get("system_identifier").map(String::as_str) == Some(sysid)
        })
        .collect();
    bases.sort_by(|a, b| a.snapshot.time.cmp(&b.snapshot.time));
    for b in &bases {
        let src = &b.snapshot.source;
        c.base_backups.push((
            b.id.to_hex(),
            src.get("end_time").cloned().unwrap_or_else(|| b.snapshot.time.clone()),
            src.get("start_wal").cloned().unwrap_or_default(),
        ));
    }
    // From each base backup, follow the WAL run; the earliest base whose start segment is
    // archived (or carried in the backup itself) starts the window.
    for b in &bases {
        let Some((tli, log, seg)) = b.snapshot.source.get("start_wal").and_then(|w| segment_parts(w)) else { continue };
        let Some(segs) = by_tli.get(&tli) else {
            c.restorable_from.get_or_insert_with(|| b.snapshot.time.clone());
            continue;
        };
        let start = seq(log, seg);
        let mut last = None;
        let mut expect = start;
        for (&n, time) in segs.range(start..) {
            if n != expect {
                let name = |n: u64| format!("{tli:08X}{:08X}{:08X}", n / SEGMENTS_PER_LOG, n % SEGMENTS_PER_LOG);
                c.gaps.push((last.as_ref().map(|_| name(expect - 1)).unwrap_or_else(|| name(start)), name(n)));
                break;
            }
            last = Some(time.clone());
            expect = n + 1;
        }
        if c.restorable_from.is_none() {
            c.restorable_from =
                Some(b.snapshot.source.get("end_time").cloned().unwrap_or_else(|| b.snapshot.time.clone()));
        }
        if let Some(t) = last {
            if c.restorable_to.as_ref().is_none_or(|r| *r < t) {
                c.restorable_to = Some(t);
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_and_headers_are_read() {
        assert_eq!(segment_parts("000000010000000A000000FF"), Some((1, 10, 255)));
        assert_eq!(segment_parts("00000002.history"), None);
        assert!(valid_name("00000002.history") && valid_name("000000010000000000000003.00000028.backup"));
        assert!(!valid_name("../etc") && !valid_name("a/b") && !valid_name(""));
        let mut head = vec![0u8; 40];
        head[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
        head[2] = 0x07; // XLP_LONG_HEADER among the flags
        head[24..32].copy_from_slice(&7_454_921_389_123_456_789u64.to_le_bytes());
        assert_eq!(sysid_of_segment(&head), Some(7_454_921_389_123_456_789));
        head[2] = 0x01;
        assert_eq!(sysid_of_segment(&head), None, "a short page header has no system identifier");
        let history = b"1\t7F/7000000\tno recovery target specified\n\n\n\n\n\n";
        assert_eq!(sysid_of_segment(history), None, "text is no page header");
    }
}
