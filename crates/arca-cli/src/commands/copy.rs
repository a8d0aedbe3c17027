//! `arca copy --from-repo SRC`: replicate snapshots between repositories.

use crate::cli::{Cli, CopyArgs};
use crate::context::{self, Session};
use crate::output::Output;
use crate::progress::Progress;
use crate::text::size;
use anyhow::{anyhow, Result};
use arca_format::Id;
use arca_repo::copy::{origin_of, BlobMap, Copier};
use arca_repo::snapshots::{self as snaps, SnapshotEntry};
use arca_repo::writer::{BlobWriter, WriterOptions};
use arca_storage::ObjectKind;
use std::collections::{HashMap, HashSet};

pub fn run(cli: &Cli, out: &Output, a: &CopyArgs) -> Result<i32> {
    let from_loc = context::location_named(cli, &a.from_repo)?;
    let from = context::shown(&from_loc);
    let from_storage = context::storage(&from_loc).map_err(|e| e.context(format!("source repository {from}")))?;
    if !from_storage.exists(ObjectKind::Config, "config")? {
        return Err(anyhow!("source repository {from}: no repository there (check --from-repo)"));
    }
    let pw = context::from_password(a.from_password_file.as_deref())?;
    let (src, _src_lock) = context::open_with(cli, out, from_storage, &pw, Session::Read("copy"))
        .map_err(|e| e.context(format!("source repository {from}")))?;
    let session = if a.dry_run { Session::Metadata } else { Session::Write("copy") };
    let (dst, lock) = context::open_session(cli, out, session)?;
    if src.config().repo_id == dst.config().repo_id {
        return Err(anyhow!("the source and the destination are the same repository"));
    }
    if let (Some(l), false) = (&lock, a.dry_run) {
        // Packs an interrupted copy uploaded after its last checkpoint are reused.
        if let Ok(n @ 1..) = arca_repo::repair::adopt_orphan_packs(&dst, l) {
            out.info(format!("reusing {n} packs left by an interrupted session"));
        }
    }
    let filter = a.filter.filter();
    let all_src = super::all_snapshots(&src, out)?;
    let selected: Vec<SnapshotEntry> = if a.snapshots.is_empty() {
        all_src.iter().filter(|e| filter.matches(&e.snapshot)).cloned().collect()
    } else {
        a.snapshots.iter().map(|s| snaps::resolve(&all_src, s, &filter)).collect::<Result<_, _>>()?
    };
    let all_dst = super::all_snapshots(&dst, out)?;
    // Destination snapshots by the identity they carry from their first repository.
    let mut here: HashMap<Id, Id> = all_dst.iter().map(|e| (origin_of(&e.id, &e.snapshot), e.id)).collect();
    let todo: Vec<&SnapshotEntry> =
        selected.iter().filter(|e| !here.contains_key(&origin_of(&e.id, &e.snapshot))).collect();
    let map_path = (!cli.no_cache)
        .then(|| context::cache_dir(cli, &dst).join(format!("copy-from-{}.map", src.config().repo_id.to_hex())));
    let writer_opts =
        WriterOptions { threads: cli.threads.unwrap_or(WriterOptions::default().threads), ..Default::default() };
    let writer = match &lock {
        Some(l) if !a.dry_run => BlobWriter::new(dst.clone(), l, writer_opts),
        _ if a.dry_run => BlobWriter::dry_run(dst.clone(), writer_opts),
        _ => return Err(anyhow!("copy needs a lock on the destination")),
    };
    let mut copier = Copier {
        src: &src,
        writer: &writer,
        map: BlobMap::open(&src, &dst, map_path),
        stats: Default::default(),
        dry_run: a.dry_run,
    };
    let progress = Progress::new(out, "copy");
    let mut copies = vec![];
    if let Some(e) = todo.iter().find(|e| e.snapshot.kind == arca_format::SnapshotKind::Unknown) {
        return Err(
            arca_repo::RepoError::NewerFormat { what: format!("snapshot {}", e.id.short()), action: "copy" }.into()
        );
    }
    for (i, e) in todo.iter().enumerate() {
        progress.message(format!("snapshot {}/{} {}", i + 1, todo.len(), e.id.short()));
        let tree = copier.tree(&e.snapshot.tree)?;
        copies.push((e, tree));
    }
    let stats = copier.stats.clone();
    drop(copier);
    writer.finish()?;
    progress.finish();
    if let Some(l) = &lock {
        let trees: Vec<_> = copies.iter().map(|(_, t)| *t).collect();
        l.confirm_commit(&dst, &trees)?;
        l.check_alive()?;
    }
    let mut copied = vec![];
    let src_by_id: HashMap<Id, &SnapshotEntry> = all_src.iter().map(|e| (e.id, e)).collect();
    // Oldest first, so a copy's parent is already here when it is saved.
    for (e, tree) in copies {
        let mut s = e.snapshot.clone();
        s.tree = tree;
        s.original = Some(origin_of(&e.id, &e.snapshot));
        s.parent = e
            .snapshot
            .parent
            .and_then(|p| src_by_id.get(&p))
            .and_then(|p| here.get(&origin_of(&p.id, &p.snapshot)).copied());
        if a.dry_run {
            copied.push((e.id, None));
            continue;
        }
        let id = snaps::save(&dst, &s)?;
        here.insert(origin_of(&e.id, &e.snapshot), id);
        copied.push((e.id, Some(id)));
    }
    let mut deleted = vec![];
    let mut protected = vec![];
    if a.delete {
        let wanted: HashSet<Id> = selected.iter().map(|e| origin_of(&e.id, &e.snapshot)).collect();
        let now = chrono::Local::now().fixed_offset();
        for e in all_dst.iter().filter(|e| filter.matches(&e.snapshot)) {
            if wanted.contains(&origin_of(&e.id, &e.snapshot)) {
                continue;
            }
            if let Some(p) = arca_repo::retention::protected_until(e, now) {
                protected.push(format!("{} is {p}", e.id.short()));
                continue;
            }
            if !a.dry_run {
                dst.storage().delete(ObjectKind::Snapshot, &e.id.to_hex())?;
            }
            deleted.push(e.id.to_hex());
        }
    }
    for p in &protected {
        out.warn(format!("not deleted: snapshot {p}"));
    }
    if out.json {
        out.json_line(&serde_json::json!({
            "type": "summary", "dry_run": a.dry_run,
            "snapshots_selected": selected.len(), "snapshots_already_here": selected.len() - todo.len(),
            "copied": copied.iter().map(|(s, d)| serde_json::json!({"from": s.to_hex(), "to": d.map(|d| d.to_hex())})).collect::<Vec<_>>(),
            "deleted": deleted, "stats": stats,
        }));
    } else {
        for (s, d) in &copied {
            match d {
                Some(d) => out.line(format!("copied {} → {}", s.short(), d.short())),
                None => out.line(format!("would copy {}", s.short())),
            }
        }
        for d in &deleted {
            out.line(format!("{} {}", if a.dry_run { "would delete" } else { "deleted" }, &d[..8]));
        }
        out.info(format!(
            "{} snapshots {}, {} already here; {} blobs ({}) {}, {} already present",
            copied.len(),
            if a.dry_run { "to copy" } else { "copied" },
            selected.len() - todo.len(),
            stats.blobs_sent,
            size(stats.bytes_sent),
            if a.dry_run { "to send" } else { "sent" },
            stats.blobs_present
        ));
    }
    Ok(crate::exit::OK)
}
