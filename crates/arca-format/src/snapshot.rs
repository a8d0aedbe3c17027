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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
        let b = crate::encode("snapshot", &K { kind: "btrfs-send" }).unwrap();
        assert_eq!(crate::decode::<Back>("snapshot", &b).unwrap().kind, SnapshotKind::Unknown);
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
