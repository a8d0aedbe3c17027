//! `arca forget` and `arca protect`.

use crate::cli::{Cli, ForgetArgs, ProtectArgs};
use crate::context;
use crate::output::Output;
use anyhow::{bail, Context, Result};
use arca_repo::retention::{apply, protected_until, Decision, GroupBy, Policy, Span};
use arca_repo::snapshots::{self as snaps, SnapshotEntry};
use arca_storage::ObjectKind;
use chrono::{DateTime, FixedOffset, Local};

fn now() -> DateTime<FixedOffset> {
    Local::now().fixed_offset()
}

fn decision_of(e: &SnapshotEntry, reasons: Vec<String>) -> Decision {
    Decision {
        id: e.id.to_hex(),
        time: e.snapshot.time.clone(),
        hostname: e.snapshot.hostname.clone(),
        paths: e.snapshot.paths.clone(),
        tags: e.snapshot.tags.clone(),
        group: String::new(),
        reasons,
    }
}

pub fn run(cli: &Cli, out: &Output, a: &ForgetArgs) -> Result<i32> {
    let policy = Policy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within: a.keep_within.as_deref().map(str::parse::<Span>).transpose().map_err(|e| anyhow::anyhow!("--keep-within {e}"))?,
        tags: a.keep_tags.clone(),
    };
    let prune_opts = if a.prune { Some(super::prune::options(cli, &a.tuning, a.dry_run)?) } else { None };
    let session =
        if a.prune && !a.dry_run { context::Session::Exclusive("forget --prune") } else { context::Session::Metadata };
    let (repo, lock) = context::open_session(cli, out, session)?;
    let filter = a.filter.filter();
    let all = super::all_snapshots(&repo, out)?;
    let now = now();
    let mut overdue = vec![];
    let decisions: Vec<Decision> = if !a.snapshots.is_empty() {
        let mut d = vec![];
        for spec in &a.snapshots {
            let e = snaps::resolve(&all, spec, &filter)?;
            if let Some(p) = protected_until(&e, now) {
                bail!("snapshot {} is {p}; it cannot be forgotten before then", e.id.short());
            }
            d.push(decision_of(&e, vec![]));
        }
        d
    } else if a.enforce_destroy {
        let mut d = vec![];
        for e in all.iter().filter(|e| filter.matches(&e.snapshot)) {
            let Some(by) = e.snapshot.destroy_after.as_deref() else { continue };
            let due = DateTime::parse_from_rfc3339(by).map(|t| t <= now).unwrap_or(false);
            if !due {
                d.push(decision_of(e, vec![format!("destroy after {by} (not yet due)")]));
            } else if let Some(p) = protected_until(e, now) {
                overdue.push(format!("{} was due for destruction on {by} but is {p}", e.id.short()));
                d.push(decision_of(e, vec![p]));
            } else {
                d.push(decision_of(e, vec![]));
            }
        }
        d
    } else {
        if policy.is_empty() {
            bail!("no policy given: add --keep-last/--keep-daily/... (or name snapshots to remove)");
        }
        let by: GroupBy = a.group_by.parse().map_err(|e: String| anyhow::anyhow!("--group-by {e}"))?;
        let chosen: Vec<SnapshotEntry> = all.iter().filter(|e| filter.matches(&e.snapshot)).cloned().collect();
        // Snapshots whose claimed time is far from when an append-only server received them
        // are kept and left out of the count: they must not push genuine ones out.
        let skew =
            crate::text::parse_duration(&a.max_clock_skew).map_err(|e| anyhow::anyhow!("--max-clock-skew: {e}"))?;
        let received = received_times(&repo)?;
        let mut suspicious = vec![];
        let mut counted = vec![];
        for e in chosen {
            let got = received.get(&e.id.to_hex()).and_then(|t| DateTime::parse_from_rfc3339(t).ok());
            match (got, e.time()) {
                (Some(got), Some(claimed)) if (claimed - got).abs().to_std().unwrap_or_default() > skew => {
                    let why = format!(
                        "suspicious: claims {}, but the append-only server received it {}",
                        claimed.to_rfc3339(),
                        got.to_rfc3339()
                    );
                    out.warn(format!("snapshot {} is {why}; kept and not counted by the policy", e.id.short()));
                    suspicious.push(decision_of(&e, vec![why]));
                }
                _ => counted.push(e),
            }
        }
        let mut d = apply(&counted, &policy, by, now);
        d.extend(suspicious);
        d
    };
    let mut removed = vec![];
    if !a.dry_run {
        for d in decisions.iter().filter(|d| !d.keep()) {
            repo.storage()
                .delete(ObjectKind::Snapshot, &d.id)
                .with_context(|| format!("cannot remove snapshot {}", &d.id[..8]))?;
            let _ = repo.storage().delete(ObjectKind::Received, &d.id);
            removed.push(d.id.clone());
        }
    }
    if out.json {
        out.json_line(&serde_json::json!({"type": "summary", "dry_run": a.dry_run, "decisions": decisions, "removed": removed, "overdue": overdue}));
    } else {
        let mut group = None;
        for d in &decisions {
            if group.as_ref() != Some(&d.group) && !d.group.is_empty() {
                out.line(format!("{}:", d.group));
                group = Some(d.group.clone());
            }
            let verdict = if d.keep() { format!("keep ({})", d.reasons.join(", ")) } else { "remove".to_string() };
            out.line(format!("  {}  {:<19}  {verdict}", &d.id[..8], super::snapshots::short_time(&d.time)));
        }
        for o in &overdue {
            out.warn(format!("overdue: {o}"));
        }
        let n = decisions.iter().filter(|d| !d.keep()).count();
        out.info(if a.dry_run {
            format!("dry run: {} would be removed", crate::text::count(n as u64, "snapshot", "snapshots"))
        } else {
            format!("{} removed", crate::text::count(n as u64, "snapshot", "snapshots"))
        });
    }
    if let Some(opts) = prune_opts {
        if a.dry_run {
            out.info("a dry run of forget does not plan the prune: the snapshots it would remove are still there");
        } else if let Some(lock) = &lock {
            super::prune::execute(out, &repo, Some(lock), &opts)?;
        }
    }
    Ok(crate::exit::OK)
}

/// `received/<snapshot id>` records of append-only servers: snapshot id → RFC 3339 time.
fn received_times(repo: &arca_repo::Repository) -> Result<std::collections::HashMap<String, String>> {
    let mut out = std::collections::HashMap::new();
    for (name, size) in repo.storage().list(ObjectKind::Received)? {
        if size > 64 {
            continue;
        }
        if let Ok(b) = repo.storage().get(ObjectKind::Received, &name) {
            out.insert(name, String::from_utf8_lossy(&b).trim().to_string());
        }
    }
    Ok(out)
}

fn date_arg(s: &str) -> Result<String> {
    if s == "forever" {
        return Ok(s.to_string());
    }
    Ok(super::backup::parse_time_arg(s)?.to_rfc3339())
}

pub fn protect(cli: &Cli, out: &Output, a: &ProtectArgs) -> Result<i32> {
    if a.until.is_none() && a.destroy_after.is_none() {
        bail!("give --until DATE|forever and/or --destroy-after DATE");
    }
    if a.destroy_after.as_deref() == Some("forever") {
        bail!("--destroy-after needs a date");
    }
    let until = a.until.as_deref().map(date_arg).transpose()?;
    let destroy = a.destroy_after.as_deref().map(date_arg).transpose()?;
    let repo = context::open(cli, out)?;
    if !repo.storage().capabilities().delete {
        // Protecting rewrites the snapshot object (new, then delete the old): through a key
        // that may not delete, that would leave a protected duplicate beside the original.
        bail!("protect replaces the snapshot object, which needs a key that may delete: this repository's server allows no deletes with this key (append-only or read-only); run protect on the server or with a full-access key");
    }
    let all = super::all_snapshots(&repo, out)?;
    let mut changed = vec![];
    for spec in &a.snapshots {
        let e = snaps::resolve(&all, spec, &a.filter.filter())?;
        let mut s = e.snapshot.clone();
        if let Some(u) = &until {
            if let Some(now) = &e.snapshot.keep_until {
                // Protection can be extended, never shortened: that would defeat it.
                let later = |a: &str, b: &str| match (a, b) {
                    (_, "forever") => false,
                    ("forever", _) => true,
                    (a, b) => matches!((snaps::parse_time(a), snaps::parse_time(b)), (Some(x), Some(y)) if x > y),
                };
                if later(now, u) {
                    bail!(
                        "snapshot {} is protected until {now}; protection can be extended, not shortened (to {u})",
                        e.id.short()
                    );
                }
            }
            s.keep_until = Some(u.clone());
        }
        if let Some(d) = &destroy {
            s.destroy_after = Some(d.clone());
        }
        let new_id = snaps::replace(&repo, &e, s.clone())?;
        changed.push(serde_json::json!({"old": e.id.to_hex(), "new": new_id.to_hex(), "keep_until": s.keep_until, "destroy_after": s.destroy_after}));
        out.info(format!(
            "snapshot {} is now {} ({})",
            e.id.short(),
            new_id.short(),
            [
                s.keep_until.as_ref().map(|u| format!("protected until {u}")),
                s.destroy_after.as_ref().map(|d| format!("destroy after {d}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ")
        ));
    }
    if out.json {
        out.json_doc(&changed);
    }
    Ok(crate::exit::OK)
}
