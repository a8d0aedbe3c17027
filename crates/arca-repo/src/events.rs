//! One event stream for every long operation: progress, per-file notices and warnings.
//!
//! Backup, restore, prune, check and the repairs all report through [`Events`], so a front-end
//! writes one sink (a terminal progress bar, JSON lines, a web socket) instead of one callback
//! shape per operation. Events are borrowed views, emitted from worker threads, and must be
//! cheap to ignore: a sink that wants to keep one copies what it needs.

use serde::Serialize;
use std::path::Path;

/// How a file compares with the parent snapshot (for `backup -v` listings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Not in the parent snapshot.
    New,
    /// In the parent, but changed: read again.
    Modified,
    /// As in the parent: its content was reused without reading.
    Unchanged,
}

/// Something an operation reports while it runs.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// A phase of work advanced: `done` of `total` units (snapshots, packs, ...).
    Phase { name: &'a str, done: u64, total: u64 },
    /// The bytes of file contents the operation will process in all, now known (sent only
    /// to sinks that [`Events::wants_totals`]).
    Total { bytes: u64 },
    /// Work on a file started (backup: reading it; restore: writing it).
    File { path: &'a Path, size: u64 },
    /// A file was classified against the parent snapshot.
    Change { path: &'a Path, change: Change },
    /// This many more bytes of file contents were processed.
    Bytes(u64),
    /// An unchanged file of this many bytes was reused without reading.
    Skipped(u64),
    /// One more file counts as done (backup: once stored; restore: as it starts).
    FileDone,
    /// A problem with one path that the operation went past; the user must see it.
    Warning { path: &'a Path, message: &'a str },
    /// `restore --delete` removed (or, in a dry run, would remove) `path`, `entries` in all.
    Deleted { path: &'a Path, entries: u64 },
    /// A note about the operation as a whole (not tied to one path).
    Notice(&'a str),
    /// A problem with the operation as a whole that it went past (an unreadable snapshot
    /// skipped, a lookup that failed); the user must see it.
    Caution(&'a str),
}

/// Where an operation's events go. Called from several threads at once.
pub trait Events: Sync {
    fn emit(&self, event: Event<'_>);

    /// True if the sink shows totals (a bar with a percentage): an operation then spends a
    /// little work up front to count what it will do and sends [`Event::Total`].
    fn wants_totals(&self) -> bool {
        false
    }

    /// Shorthand for [`Event::Phase`].
    fn phase(&self, name: &str, done: u64, total: u64) {
        self.emit(Event::Phase { name, done, total });
    }
}

/// A sink that drops every event.
pub struct Quiet;

impl Events for Quiet {
    fn emit(&self, _: Event<'_>) {}
}

impl<F: Fn(Event<'_>) + Sync> Events for F {
    fn emit(&self, event: Event<'_>) {
        self(event)
    }
}
