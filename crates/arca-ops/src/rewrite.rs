//! Changing snapshots: tags, and copies without some entries. Snapshots are immutable objects
//! named by their hash, so each change stores a new object; the replaced ids keep selecting it.

use crate::readable_snapshots;
use crate::{OpsError, OpsResult, Target};
use arca_repo::snapshots::{self as snaps, Filter, SnapshotEntry};
use arca_repo::writer::WriterOptions;
use arca_repo::{BlobWriter, Event, Events, RepoError, Repository};
use serde::{Deserialize, Serialize};

/// The snapshots named (each passing the filter), or, if none is named, all that pass it.
pub fn select(
    repo: &Repository,
    specs: &[String],
    filter: &Filter,
    events: &dyn Events,
) -> OpsResult<Vec<SnapshotEntry>> {
    let all = readable_snapshots(repo, events)?;
    if specs.is_empty() {
        return Ok(all.into_iter().filter(|e| filter.matches(&e.snapshot)).collect());
    }
    let mut picked: Vec<SnapshotEntry> = vec![];
    for s in specs {
        let e = snaps::resolve(&all, s, filter)?;
        if !picked.iter().any(|p| p.id == e.id) {
            picked.push(e);
        }
    }
    Ok(picked)
}

/// A tag change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TagRequest {
    pub snapshots: Vec<String>,
    pub filter: Filter,
    pub add: Vec<String>,
    pub remove: Vec<String>,
    /// Replace all tags (alone: not with `add` or `remove`).
    pub set: Vec<String>,
}

/// One snapshot whose tags changed.
#[derive(Clone, Debug, Serialize)]
pub struct Retagged {
    pub old: String,
    pub new: String,
    pub tags: Vec<String>,
}

impl TagRequest {
    /// Refuse a request that changes nothing or selects everything by accident (before any
    /// repository is opened).
    pub fn validate(&self) -> OpsResult<()> {
        let req = self;
        if req.add.is_empty() && req.remove.is_empty() && req.set.is_empty() {
            return Err(OpsError::NothingToDo("give --add, --remove or --set".into()));
        }
        if !req.set.is_empty() && (!req.add.is_empty() || !req.remove.is_empty()) {
            return Err(OpsError::bad_option("--set", "replaces all tags: give it alone, or use --add and --remove"));
        }
        if req.snapshots.is_empty() && req.filter == Filter::default() {
            // Retagging every snapshot in the repository is never what an empty selection meant.
            return Err(OpsError::NothingToDo(
                "which snapshots? name them, or select with --host, --tag or --path".into(),
            ));
        }
        Ok(())
    }
}

/// Change the tags of the selected snapshots; those already as asked are left alone.
pub fn tag(repo: &Repository, req: &TagRequest, events: &dyn Events) -> OpsResult<Vec<Retagged>> {
    req.validate()?;
    let mut changed = vec![];
    for e in select(repo, &req.snapshots, &req.filter, events)? {
        let mut s = e.snapshot.clone();
        if !req.set.is_empty() {
            s.tags = req.set.clone();
        }
        s.tags.retain(|t| !req.remove.contains(t));
        for t in &req.add {
            if !s.tags.contains(t) {
                s.tags.push(t.clone());
            }
        }
        if s.tags == e.snapshot.tags {
            continue;
        }
        let id = snaps::replace(repo, &e, s.clone())?;
        // Told at once: if a later snapshot fails, the user knows which ids already changed.
        let (old, new) = (e.id.short(), id.short());
        events.emit(Event::Notice(&format!(
            "snapshot {old} is now {new} (tags: {}; {old} still selects it)",
            s.tags.join(", ")
        )));
        changed.push(Retagged { old: e.id.to_hex(), new: id.to_hex(), tags: s.tags });
    }
    Ok(changed)
}

/// Copies of snapshots without the entries `leave_out` matches.
pub struct RewriteRequest<'a> {
    pub snapshots: Vec<String>,
    pub filter: Filter,
    /// True for a path (and whether it is a directory) to leave out.
    pub leave_out: &'a (dyn Fn(&std::path::Path, bool) -> bool + Sync),
    /// Replace the originals (their ids then select the copies) instead of keeping them.
    pub forget: bool,
}

/// One snapshot rewritten.
#[derive(Clone, Debug, Serialize)]
pub struct Rewritten {
    /// The original's id (full hex).
    pub snapshot: String,
    /// The copy's id; `None` in a dry run.
    pub new: Option<String>,
    /// The paths left out.
    pub removed: Vec<String>,
}

/// Rewrite the selected snapshots; those with nothing to leave out are not touched. Copies
/// are tagged `rewritten`.
pub fn rewrite(
    repo: &std::sync::Arc<Repository>,
    target: Target,
    req: &RewriteRequest,
    events: &dyn Events,
) -> OpsResult<(usize, Vec<Rewritten>)> {
    let todo = select(repo, &req.snapshots, &req.filter, events)?;
    if let Some((e, c)) = todo.iter().find_map(|e| Some((e, e.snapshot.class.as_ref()?))) {
        return Err(RepoError::ClassNotCarried { class: c.clone(), snapshot: e.id.short(), action: "rewrite" }.into());
    }
    let writer = target.lock().map(|l| BlobWriter::new(repo.clone(), l, WriterOptions::default()));
    let mut rewriter = arca_repo::rewrite::Rewriter::new(repo, writer.as_ref(), req.leave_out);
    let mut plans = vec![];
    for e in &todo {
        let mut removed = vec![];
        if let Some(tree) = rewriter.tree(&e.snapshot.tree, &mut removed)? {
            plans.push((e.clone(), tree, removed));
        }
    }
    drop(rewriter);
    if let Some(w) = writer {
        w.finish()?;
    }
    if let Some(l) = target.lock() {
        let trees: Vec<_> = plans.iter().map(|p| p.1).collect();
        l.confirm_commit(repo, &trees)?;
        l.check_alive()?;
    }
    let mut out = vec![];
    for (e, tree, removed) in plans {
        let new = match target {
            Target::DryRun => None,
            Target::Locked(_) => {
                let mut s = e.snapshot.clone();
                s.tree = tree;
                if !s.tags.iter().any(|t| t == "rewritten") {
                    s.tags.push("rewritten".into());
                }
                let id = if req.forget { snaps::replace(repo, &e, s)? } else { snaps::save(repo, &s)? };
                Some(id.to_hex())
            }
        };
        out.push(Rewritten { snapshot: e.id.to_hex(), new, removed });
    }
    Ok((todo.len(), out))
}
