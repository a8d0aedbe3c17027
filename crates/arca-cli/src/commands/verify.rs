//! `arca verify-signature`: an auditor's check of one snapshot with a public key and no
//! password. Statements are signed in the clear, snapshot names are the BLAKE3 of their bytes,
//! and the config's envelope names the repository, so none of this needs the key.

use crate::cli::{Cli, VerifySignatureArgs};
use crate::context;
use crate::output::Output;
use anyhow::{bail, Context, Result};
use arca_format::{ConfigFile, Id};
use arca_repo::history::{fingerprint, parse_public_key, read_all, Verified};
use arca_storage::ObjectKind;
use std::collections::HashMap;

pub fn run(cli: &Cli, out: &Output, a: &VerifySignatureArgs) -> Result<i32> {
    let text = std::fs::read_to_string(&a.pubkey)
        .with_context(|| format!("cannot read public key file {}", a.pubkey.display()))?;
    let public = parse_public_key(&text).with_context(|| {
        format!("{} does not hold a public key line (`arca key signer -o FILE` writes one)", a.pubkey.display())
    })?;
    let loc = context::location(cli)?;
    let storage = context::storage(&loc)?;
    let config = storage
        .get(ObjectKind::Config, "config")
        .with_context(|| format!("no repository at {}", context::shown(&loc)))?;
    let envelope_id = ConfigFile::from_bytes(&config).map_err(|e| anyhow::anyhow!("config: {e}"))?.repo_id;
    let repo_id = match &a.repo_id {
        Some(given) => {
            let id = Id::from_hex(given).with_context(|| format!("--repo-id {given:?} is not a 64-digit id"))?;
            if id != envelope_id {
                bail!("the repository's config names id {}, not the {} given with --repo-id", envelope_id, id);
            }
            id
        }
        None => envelope_id,
    };
    let cache = (!cli.no_cache).then(|| context::cache_root(cli).join(repo_id.to_hex()));
    let (statements, _) = read_all(&*storage, cache.as_deref())?;
    let mine: Vec<&Verified> =
        statements.iter().filter(|v| v.signer() == public.as_slice() && v.body.repo == repo_id).collect();
    // The snapshot: among those present, or among those this signer recorded.
    let prefix = a.snapshot.to_ascii_lowercase();
    let mut candidates: Vec<Id> = storage
        .list(ObjectKind::Snapshot)?
        .into_iter()
        .filter(|(n, _)| n.starts_with(&prefix))
        .filter_map(|(n, _)| Id::from_hex(&n))
        .chain(mine.iter().flat_map(|v| v.body.added.iter().copied()).filter(|id| id.to_hex().starts_with(&prefix)))
        .collect();
    candidates.sort();
    candidates.dedup();
    let id = match candidates.as_slice() {
        [one] => *one,
        [] => bail!("no snapshot id starts with {:?} (give an id from `arca snapshots`)", a.snapshot),
        _ => bail!("{:?} matches more than one snapshot; give more digits", a.snapshot),
    };
    let fp = fingerprint(&public);
    let Some(adding) = mine.iter().find(|v| v.body.added.contains(&id)) else {
        let others: Vec<String> =
            statements.iter().filter(|v| v.body.added.contains(&id)).map(|v| fingerprint(v.signer())).collect();
        let by = if others.is_empty() {
            "no statement records it".to_string()
        } else {
            format!("it was signed by {}", others.join(", "))
        };
        bail!("snapshot {} is not signed by key {fp} ({by})", id.short());
    };
    // The chain from this signer's first statement to this one.
    let by_id: HashMap<Id, &Verified> = mine.iter().map(|v| (v.id, *v)).collect();
    let mut chain_gap = None;
    let mut at = *adding;
    while let Some(prev) = at.body.prev {
        match by_id.get(&prev) {
            Some(p) if p.body.seq + 1 == at.body.seq => at = p,
            _ => {
                chain_gap = Some(at.body.seq - 1);
                break;
            }
        }
    }
    if chain_gap.is_none() && at.body.seq != 1 {
        chain_gap = Some(1);
    }
    let removed = mine.iter().find(|v| v.body.removed.contains(&id));
    let stored = storage.get(ObjectKind::Snapshot, &id.to_hex());
    let present = stored.is_ok();
    let intact = stored.as_ref().is_ok_and(|b| Id::of_bytes(b) == id);
    let ok = present && intact && chain_gap.is_none() && removed.is_none();
    if out.json {
        out.json_doc(&serde_json::json!({
            "snapshot": id.to_hex(), "signer": hex::encode(public), "statement": adding.id.to_hex(),
            "seq": adding.body.seq, "time": adding.body.time, "present": present, "intact": intact,
            "chain_intact": chain_gap.is_none(), "removed_by_statement": removed.map(|r| r.id.to_hex()), "ok": ok,
            "repository": repo_id.to_hex(), "repository_pinned": a.repo_id.is_some(),
        }));
    } else {
        out.line(format!(
            "snapshot {}: signed by {fp} at {} (statement {}, number {} of its chain)",
            id.short(),
            adding.body.time,
            adding.id.short(),
            adding.body.seq
        ));
        out.line(format!(
            "repository {}{}",
            repo_id,
            if a.repo_id.is_some() { " (as given)" } else { " (from its config's envelope; pin it with --repo-id)" }
        ));
        out.line(match chain_gap {
            None => format!("its chain is intact from statement 1 to {}", adding.body.seq),
            Some(n) => format!("its chain is broken: statement {n} is missing"),
        });
        if let Some(r) = removed {
            out.line(format!("the same signer removed it at {} (statement {})", r.body.time, r.id.short()));
        }
        out.line(match (present, intact) {
            (true, true) => "its stored bytes are the ones signed".to_string(),
            (true, false) => "its stored bytes are NOT the ones signed (altered or swapped)".to_string(),
            (false, _) => "it is no longer stored".to_string(),
        });
    }
    if !ok {
        bail!("snapshot {} does not verify: see above", id.short());
    }
    Ok(crate::exit::OK)
}
