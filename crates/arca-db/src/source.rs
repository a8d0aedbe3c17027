//! The one way a database source becomes a snapshot source: it fills a [`Builder`] and says
//! what the snapshot records about it; [`Database`] does the rest (the kind, the tree, the
//! timing) for every engine.

use crate::layout::Builder;
use crate::DbResult;
use arca_format::{Id, SnapshotKind};
use arca_fs::BackupOutcome;
use arca_ops::source::Source;
use arca_ops::OpsResult;
use arca_repo::{BlobWriter, Cancel, Events};
use std::collections::BTreeMap;

/// What a database source does.
pub trait Dumper {
    /// The paths its snapshots record (they name what was backed up in listings).
    fn paths(&self) -> Vec<String>;

    /// Store everything into `b`; returns what the snapshot records about it (`source`).
    fn dump(
        &mut self,
        b: &mut Builder,
        writer: &BlobWriter,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> DbResult<BTreeMap<String, String>>;
}

/// A [`Dumper`] as a source of snapshots of kind `database`.
pub struct Database<D: Dumper> {
    inner: D,
    recorded: BTreeMap<String, String>,
}

impl<D: Dumper> Database<D> {
    pub fn new(inner: D) -> Database<D> {
        Database { inner, recorded: BTreeMap::new() }
    }

    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<D: Dumper> Source for Database<D> {
    fn kind(&self) -> SnapshotKind {
        SnapshotKind::Database
    }

    fn paths(&self) -> Vec<String> {
        self.inner.paths()
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
        let mut b = Builder::default();
        self.recorded = self.inner.dump(&mut b, writer, events, cancel)?;
        let (tree, mut summary) = b.finish(writer)?;
        summary.duration_secs = started.elapsed().as_secs_f64();
        Ok(BackupOutcome { tree, summary, warnings: vec![] })
    }
}
