//! Mark objects (`marks/<id>`): packs a prune found unneeded, waiting to be swept. The packs'
//! index entries move here from `index/`, so backups stop deduplicating against them while
//! readers can still find their blobs until the sweep.

use crate::{Id, IndexPack};
use serde::{Deserialize, Serialize};

/// The contents of `marks/<id>`, sealed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkFile {
    /// Unix time in nanoseconds when the packs were marked.
    pub created: i64,
    /// The marked packs with their full index entries.
    pub packs: Vec<IndexPack>,
    /// Index objects superseded by the prune that wrote this mark; deleted at the sweep.
    #[serde(default)]
    pub index_files: Vec<Id>,
    /// Sessions (locks) alive after the packs left the index: the sweep waits until all of them
    /// have ended. `None` while the mark is being written (an interrupted prune leaves it so;
    /// the next prune completes it).
    #[serde(default)]
    pub sessions: Option<Vec<Id>>,
}
