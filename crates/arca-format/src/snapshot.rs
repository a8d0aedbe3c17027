//! Snapshots: one small sealed object each, pointing at a root tree.

use crate::Id;
use serde::{Deserialize, Serialize};

/// Where a snapshot's contents came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotKind {
    Files,
    Stdin,
    CommandOutput,
    /// Database dumps (`arca db backup`): one directory per engine, one file per database.
    Database,
    /// A btrfs send stream of one subvolume (`arca backup --btrfs-send`), in two files.
    BtrfsSend,
    /// A machine's description (`arca backup --system`): `system.json` and `system.txt`.
    System,
    /// A kind a newer arca wrote: it lists, forgets, prunes and checks like any other; copy
    /// refuses it (rewriting it would lose the kind). Never written.
    #[serde(other)]
    Unknown,
}

/// What the backup did, for the user and for `stats`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotSummary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    /// Files whose contents were read (the rest reused their parent's content list).
    pub files_read: u64,
    pub dirs: u64,
    pub other_nodes: u64,
    pub bytes_read: u64,
    /// Logical size of all files in the snapshot.
    pub total_bytes: u64,
    pub blobs_added: u64,
    /// New bytes before compression.
    pub bytes_added: u64,
    /// New bytes as stored (compressed and sealed).
    pub bytes_added_stored: u64,
    pub duration_secs: f64,
}

/// What kind of problem a warning reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarningKind {
    /// The path could not be read (or vanished); it is missing from the snapshot.
    #[default]
    Unreadable,
    /// The file changed while being read; it is stored as read.
    Changed,
    /// A running database's files (stored as read, or left out, as the backup's policy for
    /// live databases says).
    LiveDatabase,
    /// A kind of warning a newer arca wrote.
    #[serde(other)]
    Unknown,
}

/// A problem with one source path that did not stop the backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotWarning {
    pub path: String,
    pub message: String,
    #[serde(default)]
    pub kind: WarningKind,
}

/// The contents of `snapshots/<id>`, sealed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// RFC 3339 with nanoseconds and the local offset.
    pub time: String,
    pub hostname: String,
    pub username: String,
    pub paths: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub parent: Option<Id>,
    pub tree: Id,
    pub kind: SnapshotKind,
    #[serde(default)]
    pub summary: SnapshotSummary,
    #[serde(default)]
    pub warnings: Vec<SnapshotWarning>,
    #[serde(default)]
    pub excludes: Vec<String>,
    /// RFC 3339 or "forever"; the snapshot may not be forgotten before then.
    #[serde(default)]
    pub keep_until: Option<String>,
    /// RFC 3339; the snapshot must be destroyed by then (`forget --enforce-destroy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroy_after: Option<String>,
    #[serde(default)]
    pub program_version: String,
    /// For a copy (`arca copy`): the id the snapshot had in the repository where it was made,
    /// so copying again recognises it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Id>,
    /// Ids this snapshot had before `protect`, `tag` or `rewrite` replaced its object: they
    /// still select it, so an id a user wrote down keeps working.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_ids: Vec<Id>,
    /// What the source recorded about itself (e.g. the command whose output this is), as
    /// name → value text; empty for file backups.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub source: std::collections::BTreeMap<String, String>,
    /// The class its trees and data were written in (`backup --class`, format version 2);
    /// `None`: the default class. Its blobs can be read only while the class's keys exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

impl Snapshot {
    /// A snapshot of `kind` of `paths` on `hostname` with root `tree`, made at `time`
    /// (RFC 3339); everything else empty.
    pub fn new(
        kind: SnapshotKind,
        tree: Id,
        paths: Vec<String>,
        hostname: &str,
        username: &str,
        time: &str,
    ) -> Snapshot {
        Snapshot {
            time: time.into(),
            hostname: hostname.into(),
            username: username.into(),
            paths,
            tags: vec![],
            parent: None,
            tree,
            kind,
            summary: SnapshotSummary::default(),
            warnings: vec![],
            excludes: vec![],
            keep_until: None,
            destroy_after: None,
            program_version: String::new(),
            original: None,
            previous_ids: vec![],
            source: Default::default(),
            class: None,
        }
    }
}

/// What a summary-only key reads of a snapshot: who made it, when, of what kind, how much;
/// never a path or a file name (no `paths`, `tree`, `excludes`, `warnings`, `source`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotDigest {
    pub time: String,
    pub hostname: String,
    pub username: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub parent: Option<Id>,
    pub kind: SnapshotKind,
    #[serde(default)]
    pub summary: SnapshotSummary,
    #[serde(default)]
    pub keep_until: Option<String>,
    #[serde(default)]
    pub destroy_after: Option<String>,
    #[serde(default)]
    pub program_version: String,
    #[serde(default)]
    pub original: Option<Id>,
    #[serde(default)]
    pub previous_ids: Vec<Id>,
    #[serde(default)]
    pub class: Option<String>,
}

impl SnapshotDigest {
    /// The digest of `s`.
    pub fn of(s: &Snapshot) -> SnapshotDigest {
        SnapshotDigest {
            time: s.time.clone(),
            hostname: s.hostname.clone(),
            username: s.username.clone(),
            tags: s.tags.clone(),
            parent: s.parent,
            kind: s.kind,
            summary: s.summary.clone(),
            keep_until: s.keep_until.clone(),
            destroy_after: s.destroy_after.clone(),
            program_version: s.program_version.clone(),
            original: s.original,
            previous_ids: s.previous_ids.clone(),
            class: s.class.clone(),
        }
    }

    /// A snapshot carrying only what the digest holds: no paths, and the all-zero tree id
    /// (which names no tree).
    pub fn to_snapshot(&self) -> Snapshot {
        let mut s = Snapshot::new(self.kind, Id([0; 32]), vec![], &self.hostname, &self.username, &self.time);
        s.tags = self.tags.clone();
        s.parent = self.parent;
        s.summary = self.summary.clone();
        s.keep_until = self.keep_until.clone();
        s.destroy_after = self.destroy_after.clone();
        s.program_version = self.program_version.clone();
        s.original = self.original;
        s.previous_ids = self.previous_ids.clone();
        s.class = self.class.clone();
        s
    }
}

/// Leads a snapshot object in the split form (format version 2, written with a content key
/// that splits what it seals): then the key number (u32 LE), the length of the sealed digest
/// (u32 LE), the sealed digest, the sealed snapshot.
pub const SPLIT_MAGIC: &[u8; 8] = b"ARCASNP2";

/// A snapshot object in the split form, taken apart: key number, sealed digest, sealed body.
pub fn split_parts(bytes: &[u8]) -> Option<(u32, &[u8], &[u8])> {
    let rest = bytes.strip_prefix(&SPLIT_MAGIC[..])?;
    let number = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
    let len = u32::from_le_bytes(rest.get(4..8)?.try_into().ok()?) as usize;
    let rest = &rest[8..];
    let digest = rest.get(..len)?;
    Some((number, digest, &rest[len..]))
}

/// The bytes of a snapshot object in the split form.
pub fn split_bytes(number: u32, digest: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + digest.len() + body.len());
    out.extend_from_slice(SPLIT_MAGIC);
    out.extend_from_slice(&number.to_le_bytes());
    out.extend_from_slice(&(digest.len() as u32).to_le_bytes());
    out.extend_from_slice(digest);
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn split_form_round_trips_and_refuses_truncation() {
        let b = split_bytes(0xabcd, b"digest", b"body");
        assert_eq!(split_parts(&b), Some((0xabcd, &b"digest"[..], &b"body"[..])));
        assert_eq!(split_parts(&b[..18]), None, "a digest cut short");
        assert_eq!(split_parts(b"ARCAOBJ2...."), None);
    }

    #[test]
    fn a_digest_names_no_path() {
        let mut s = Snapshot::new(SnapshotKind::Files, Id([2; 32]), vec!["/secret/path".into()], "h", "u", "t");
        s.excludes = vec!["/secret/excluded".into()];
        s.warnings =
            vec![SnapshotWarning { path: "/secret/w".into(), message: "m".into(), kind: WarningKind::Changed }];
        s.source = [("command".to_string(), "pg_dump secretdb".to_string())].into();
        let d = SnapshotDigest::of(&s);
        let bytes = crate::encode("digest", &d).unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"secret"), "no path, exclude, warning or source");
        let back = d.to_snapshot();
        assert_eq!((back.hostname.as_str(), back.paths.len(), back.tree), ("h", 0, Id([0; 32])));
    }

    /// A kind a newer arca writes decodes as Unknown instead of failing the whole listing.
    #[test]
    fn unknown_snapshot_kinds_decode() {
        #[derive(serde::Serialize)]
        struct K {
            kind: &'static str,
        }
        #[derive(serde::Deserialize)]
        struct Back {
            kind: SnapshotKind,
        }
        let b = crate::encode("snapshot", &K { kind: "a-kind-from-the-future" }).unwrap();
        assert_eq!(crate::decode::<Back>("snapshot", &b).unwrap().kind, SnapshotKind::Unknown);
        let b = crate::encode("snapshot", &K { kind: "btrfs-send" }).unwrap();
        assert_eq!(crate::decode::<Back>("snapshot", &b).unwrap().kind, SnapshotKind::BtrfsSend);
        let b = crate::encode("snapshot", &K { kind: "command-output" }).unwrap();
        assert_eq!(crate::decode::<Back>("snapshot", &b).unwrap().kind, SnapshotKind::CommandOutput);
    }

    proptest! {
        #[test]
        fn snapshot_round_trip(host in ".*", paths in proptest::collection::vec(".*", 0..3), tags in proptest::collection::vec("[a-z]+", 0..3), n: u64) {
            let s = Snapshot { time: "2026-01-01T00:00:00Z".into(), hostname: host, username: "u".into(), paths, tags,
                parent: Some(Id([1; 32])), tree: Id([2; 32]), kind: SnapshotKind::Files,
                summary: SnapshotSummary { files_new: n, ..Default::default() },
                warnings: vec![SnapshotWarning { path: "p".into(), message: "m".into(), kind: WarningKind::Changed }], excludes: vec![], keep_until: None, destroy_after: None, program_version: "x".into(), original: Some(Id([3; 32])), previous_ids: vec![Id([4; 32])], source: [("command".to_string(), "pg_dump db".to_string())].into(), class: Some("hr".into()) };
            let bytes = crate::encode("snapshot", &s).unwrap();
            prop_assert_eq!(crate::decode::<Snapshot>("snapshot", &bytes).unwrap(), s);
        }
    }
}
