//! `arca key`: list, add, remove and change passwords.

use crate::cli::{Cli, KeyAddArgs, KeyCommand, NewPassword, RotateArgs};
use crate::context;
use crate::output::Output;
use anyhow::{Context, Result};
use arca_ops::keys::KeyExport;
use arca_repo::keys;

fn new_password(a: &NewPassword) -> Result<String> {
    if let Some(p) = context::env_password("ARCA_NEW_PASSWORD")? {
        return Ok(p);
    }
    if let Some(f) = &a.new_password_file {
        let s = std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        return Ok(s.lines().next().unwrap_or("").to_string());
    }
    context::prompt("new password", true, "ARCA_NEW_PASSWORD or --new-password-file")
}

pub fn run(cli: &Cli, out: &Output, k: &KeyCommand) -> Result<i32> {
    if let KeyCommand::Import { file, replace_config } = k {
        return import(cli, out, file, *replace_config);
    }
    if let KeyCommand::Signer { output } = k {
        return signer(out, output.as_deref());
    }
    let repo = context::open(cli, out)?;
    let storage = repo.storage();
    // Everything but listing needs the full key: refused up front (before a new password is
    // asked for), whatever the key may otherwise do.
    let needs_full = match k {
        KeyCommand::List => None,
        KeyCommand::Add(_) => Some("add a key"),
        KeyCommand::Remove { .. } => Some("remove a key"),
        KeyCommand::Passwd(_) => Some("change a password"),
        KeyCommand::Export { .. } => Some("export the key"),
        KeyCommand::Classes => Some("list classes"),
        KeyCommand::Rotate(_) => Some("rotate the key"),
        KeyCommand::DestroyClass { .. } => Some("destroy a class"),
        KeyCommand::Import { .. } | KeyCommand::Signer { .. } => None,
    };
    if let Some(action) = needs_full {
        repo.key(action)?;
    }
    match k {
        KeyCommand::List => {
            let list = keys::list(storage, repo.key_slot())?;
            if out.json {
                out.json_doc(&list);
            } else {
                out.line(format!(
                    " {:<8}  {:<19}  {:<12}  {:<16}  {:<11}  Label",
                    "ID", "Created", "User", "Host", "Role"
                ));
                for k in list {
                    out.line(format!(
                        "{}{:<8}  {:<19}  {:<12}  {:<16}  {:<11}  {}",
                        if k.current { "*" } else { " " },
                        k.id.get(..8).unwrap_or(&k.id),
                        super::snapshots::short_time(&k.created),
                        k.username,
                        k.hostname,
                        k.role,
                        k.label
                    ));
                }
            }
        }
        KeyCommand::Add(a) if a.metadata_only || a.summary_only => {
            let level =
                if a.metadata_only { arca_repo::reader::Level::Metadata } else { arca_repo::reader::Level::Summary };
            let pw = new_password(&a.password)?;
            let added =
                arca_ops::keys::add_reader(&repo, level, pw.as_bytes(), context::kdf_params(), &a.password.label)?;
            if out.json {
                out.json_doc(&serde_json::json!({"result": "added", "id": added.id, "role": added.role, "renewed_classes": added.renewed_classes, "unreadable_snapshots": added.unreadable_snapshots, "packs_to_rewrite": added.packs_to_rewrite}));
            } else {
                if !added.renewed_classes.is_empty() {
                    out.info(format!(
                        "{} now write with keys that reader keys can follow",
                        crate::text::count(added.renewed_classes.len() as u64, "class", "classes")
                    ));
                }
                out.info(format!(
                    "added {} key {}: it {}",
                    added.role,
                    &added.id[..8.min(added.id.len())],
                    level.can().split(';').next().unwrap_or_default()
                ));
                if added.unreadable_snapshots > 0 || added.packs_to_rewrite > 0 {
                    out.warn(format!(
                        "{} and {} (trees among them, which backups of unchanged directories keep using) were written before reader keys existed and stay out of its reach until `arca key rotate --rewrite-only` re-encrypts them",
                        crate::text::count(added.unreadable_snapshots as u64, "snapshot", "snapshots"),
                        crate::text::count(added.packs_to_rewrite, "pack", "packs")
                    ));
                }
            }
        }
        KeyCommand::Add(a) if a.backup_only => {
            let pw = new_password(&a.password)?;
            let added = arca_ops::keys::add_backup_only(
                &repo,
                pw.as_bytes(),
                context::kdf_params(),
                &a.password.label,
                a.host.clone(),
            )?;
            if out.json {
                out.json_doc(&serde_json::json!({"result": "added", "id": added.id, "role": "backup-only", "host": added.host, "resealed": added.resealed}));
            } else {
                if added.resealed > 0 {
                    out.info(format!("sealed {} index and mark objects again with the shared key, so a backup-only key can deduplicate against them", added.resealed));
                }
                let host = added.host.as_deref().map(|h| format!(" for host {h}")).unwrap_or_default();
                out.info(format!(
                    "added backup-only key {}{host}: it can add backups, and read nothing back",
                    &added.id[..8.min(added.id.len())]
                ));
            }
        }
        KeyCommand::Add(a) => {
            let id = add_slot(&repo, a)?;
            report(out, "added", &id);
        }
        KeyCommand::Remove { id } => {
            let removed = keys::remove(storage, id, repo.key_slot())?;
            report(out, "removed", &removed);
        }
        KeyCommand::Passwd(a) => {
            let id =
                arca_ops::keys::change_password(&repo, new_password(a)?.as_bytes(), context::kdf_params(), &a.label)?;
            report(out, "password changed; new key slot", &id);
        }
        KeyCommand::Export { output, paper } => {
            let loc = context::location(cli)?;
            let e = arca_ops::keys::export(&repo, &context::shown(&loc), context::default_key_in_use(cli, &loc)?)?;
            let mut text = serde_json::to_string_pretty(&e)? + "\n";
            if *paper {
                text = paper_copy(&e, &serde_json::to_string(&e)?)?;
            }
            match output {
                Some(path) => {
                    use std::io::Write;
                    use std::os::unix::fs::OpenOptionsExt;
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    f.write_all(text.as_bytes())
                        .and_then(|()| f.sync_all())
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    let holds = if e.default_key.is_some() {
                        " (it holds the default key: whoever has it can read the backups)"
                    } else {
                        " (it opens only with the password)"
                    };
                    if out.json {
                        out.json_doc(&serde_json::json!({"result": "exported", "file": path, "holds_default_key": e.default_key.is_some()}));
                    } else {
                        out.info(format!(
                            "wrote the key of repository {} to {}; keep it away from this machine{holds}",
                            repo.config().repo_id.short(),
                            path.display()
                        ));
                    }
                }
                None => crate::output::stdout_line(text.trim_end()),
            }
        }
        KeyCommand::Classes => classes(&repo, out)?,
        KeyCommand::Rotate(a) => {
            drop(repo);
            return rotate(cli, out, a);
        }
        KeyCommand::DestroyClass { class, dry_run, yes } => {
            drop(repo);
            return destroy_class(cli, out, class, *dry_run, *yes);
        }
        KeyCommand::Import { .. } | KeyCommand::Signer { .. } => {}
    }
    Ok(crate::exit::OK)
}

/// A printable page: what it is, a QR code of the compact JSON, and the JSON itself.
fn paper_copy(e: &KeyExport, compact: &str) -> Result<String> {
    let code = qrcode::QrCode::with_error_correction_level(compact.as_bytes(), qrcode::EcLevel::M)
        .map_err(|err| anyhow::anyhow!("cannot make a QR code of the export: {err}"))?;
    let picture = code.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build();
    let (holds, who) = if e.default_key.is_some() {
        ("It holds the default repository's key file password.", " can read the backups: keep it locked away.")
    } else {
        ("It opens only with the repository's password.", " and the password can read the backups.")
    };
    Ok(format!(
        "arca repository key\n\nrepository {}\nat {}\nkey slot {}\n{holds}\nScan the code (or type the JSON below) into a file and run `arca key import FILE`.\nWhoever has this page{who}\n\n{picture}\n\n{compact}\n",
        e.repository_id, e.location, e.key_slot_id,
    ))
}

/// `key import`: put back an exported key slot and, if asked, the config, into a repository
/// that may not open any more; then open it to prove the result.
fn import(cli: &Cli, out: &Output, file: &std::path::Path, replace_config: bool) -> Result<i32> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let e = KeyExport::parse(&text).with_context(|| format!("{}", file.display()))?;
    let loc = context::location(cli)?;
    let storage = context::storage(&loc)?;
    let done = arca_ops::keys::import(&*storage, &e, replace_config).with_context(|| format!("{}", file.display()))?;
    if done.config_differs {
        out.warn("this repository's config differs from the exported one; give --replace-config if it is damaged");
    }
    let mut wrote = done.wrote;
    let pw = match &e.default_key {
        Some(k) => k.clone(),
        None => context::password(cli, &loc, false)?,
    };
    let repo = arca_repo::Repository::open(storage, pw.as_bytes()).context("the repository still does not open")?;
    // The reader keys of the keys put back (derived from them, so not in the export).
    let readers = arca_repo::reader::store_missing_reader_keys(&repo)?;
    if readers > 0 {
        wrote.push(format!("{readers} reader keys"));
    }
    if out.json {
        out.json_doc(&serde_json::json!({"result": "imported", "wrote": wrote, "opens": true}));
        return Ok(crate::exit::OK);
    }
    out.info(if wrote.is_empty() {
        "nothing was missing; the repository opens".to_string()
    } else {
        format!("wrote {}; the repository opens", wrote.join(", "))
    });
    Ok(crate::exit::OK)
}

/// Store a new key slot for the password `a` names.
fn add_slot(repo: &arca_repo::Repository, a: &KeyAddArgs) -> Result<String> {
    let p = &a.password;
    Ok(arca_ops::keys::add_password(repo, new_password(p)?.as_bytes(), context::kdf_params(), &p.label)?)
}

fn report(out: &Output, what: &str, id: &str) {
    if out.json {
        out.json_doc(&serde_json::json!({"result": what, "id": id}));
    } else {
        out.info(format!("{what} {}", &id[..8.min(id.len())]));
    }
}

/// `key signer`: this host's public signing key (created on first use; it needs no repository).
fn signer(out: &Output, output: Option<&std::path::Path>) -> Result<i32> {
    let signer = context::signer()?;
    let origin = arca_repo::keys::Origin::current();
    let line =
        arca_repo::history::public_key_line(&signer.public(), &format!("{}@{}", origin.username, origin.hostname));
    if let Some(path) = output {
        std::fs::write(path, format!("{line}\n")).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if out.json {
        out.json_doc(&serde_json::json!({
            "public_key": hex::encode(signer.public()), "fingerprint": arca_repo::history::fingerprint(&signer.public()),
            "line": line, "identity": context::signing_dir().join("identity"),
        }));
    } else {
        out.line(line);
    }
    Ok(crate::exit::OK)
}

/// One class as `key classes` shows it.
#[derive(serde::Serialize)]
struct ClassRow {
    class: String,
    keys: Vec<String>,
    snapshots: usize,
    packs: usize,
    bytes: u64,
}

/// `key classes`: the default class and every named one, with their keys and what they hold.
fn classes(repo: &arca_repo::Repository, out: &Output) -> Result<()> {
    let (snaps, _) = arca_repo::snapshots::list_all(repo)?;
    let packs = repo.index().packs_with_keys();
    let ring = repo.keyring();
    let mut names: Vec<String> = vec![String::new()];
    names.extend(ring.classes());
    let rows: Vec<ClassRow> = names
        .into_iter()
        .map(|c| {
            let keys = ring.of_class(&c);
            let numbers: std::collections::HashSet<u32> = keys.iter().map(|k| k.number).collect();
            let mine = |k: u32| numbers.contains(&k) || (c.is_empty() && k == arca_format::MASTER_KEY_NUMBER);
            let held: Vec<_> = packs.iter().filter(|p| mine(p.2)).collect();
            ClassRow {
                snapshots: snaps.iter().filter(|s| s.snapshot.class.as_deref().unwrap_or_default() == c).count(),
                packs: held.len(),
                bytes: held.iter().map(|p| p.1).sum(),
                keys: keys.iter().map(|k| format!("{:08x}", k.number)).collect(),
                class: c,
            }
        })
        .collect();
    if out.json {
        out.json_doc(&rows);
        return Ok(());
    }
    if repo.version() < 2 {
        out.info("format version 1: one key seals everything; `arca upgrade` enables classes");
    }
    out.line(format!("{:<24}  {:>9}  {:>6}  {:>10}  Keys", "Class", "Snapshots", "Packs", "Size"));
    for r in rows {
        let name = if r.class.is_empty() { "(default)".to_string() } else { r.class.clone() };
        let keys = if r.keys.is_empty() { "master".to_string() } else { r.keys.join(" ") };
        out.line(format!("{name:<24}  {:>9}  {:>6}  {:>10}  {keys}", r.snapshots, r.packs, crate::text::size(r.bytes)));
    }
    Ok(())
}

/// `key destroy-class`: asks first (unless --yes or --dry-run), then shreds.
fn destroy_class(cli: &Cli, out: &Output, class: &str, dry_run: bool, yes: bool) -> Result<i32> {
    let session = if dry_run { context::Session::Metadata } else { context::Session::Exclusive("key destroy-class") };
    let (repo, lock) = context::open_session(cli, out, session)?;
    let plan = arca_repo::shred::destroy_class(&repo, None, class)?;
    let summary = format!(
        "class {class:?}: {} snapshots, {} packs ({}), {} keys",
        plan.snapshots.len(),
        plan.packs,
        crate::text::size(plan.bytes),
        plan.keys.len()
    );
    if dry_run {
        if out.json {
            out.json_doc(&plan);
        } else {
            out.line(format!("would destroy {summary}"));
        }
        return Ok(crate::exit::OK);
    }
    if !yes {
        if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            anyhow::bail!("destroying {summary} cannot be undone: pass --yes to do it without a terminal to ask");
        }
        let answer = context::prompt_line(&format!(
            "destroy {summary}? Nobody will be able to read it again. Type the class name to confirm: "
        ))?;
        if answer.trim() != class {
            anyhow::bail!("not confirmed; nothing was destroyed");
        }
    }
    let report = arca_repo::shred::destroy_class(&repo, lock.as_ref(), class)?;
    if out.json {
        out.json_doc(&report);
    } else {
        out.line(format!("destroyed {summary}; `arca prune` deletes the packs"));
    }
    Ok(crate::exit::OK)
}

/// `key rotate`: a new master key; every other key slot goes; with `--rewrite`, then
/// everything sealed with the retired keys is re-encrypted.
fn rotate(cli: &Cli, out: &Output, a: &RotateArgs) -> Result<i32> {
    if a.max_repack.is_some() && !a.rewrite && !a.rewrite_only {
        anyhow::bail!("--max-repack limits a rewrite: give it with --rewrite or --rewrite-only");
    }
    if a.rewrite_only {
        return rewrite(cli, out, a, None);
    }
    let session = if a.dry_run { context::Session::Metadata } else { context::Session::Exclusive("key rotate") };
    let (repo, lock, pw) = context::open_session_keeping_password(cli, out, session)?;
    let plan = arca_repo::rotate::plan(&repo)?;
    let others: Vec<String> = plan
        .removed_slots
        .iter()
        .map(|(id, label, role)| {
            let label = if label.is_empty() { String::new() } else { format!(" ({label})") };
            format!("{} {role}{label}", &id[..8.min(id.len())])
        })
        .collect();
    if a.dry_run {
        // Before a rotation, everything stored would be sealed with a retired key.
        let pending = if a.rewrite {
            let all = repo.keyring().all().iter().map(|k| k.number).collect();
            Some(arca_repo::rotate::pending(&repo, &all)?)
        } else {
            None
        };
        if out.json {
            out.json_doc(&serde_json::json!({"dry_run": true, "rotation": plan, "rewrite": pending}));
        } else {
            out.line(format!(
                "would rotate the key: {} content keys carried over, new writing keys for {} classes; {} other key slots removed{}",
                plan.keys_carried,
                plan.rotated.len(),
                others.len(),
                if others.is_empty() { String::new() } else { format!(": {}", others.join(", ")) }
            ));
            if let Some(p) = pending {
                out.line(format!(
                    "would then re-encrypt {} packs ({}) and {} snapshot objects",
                    p.packs,
                    crate::text::size(p.bytes),
                    p.snapshots
                ));
            }
        }
        return Ok(crate::exit::OK);
    }
    if !others.is_empty() && !a.yes {
        let what = format!("removes {} other key slots ({})", others.len(), others.join(", "));
        if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            anyhow::bail!("rotating the key {what}: pass --yes to do it without a terminal to ask");
        }
        let answer = context::prompt_line(&format!(
            "rotating the key {what}; their passwords will open nothing. Type yes to go on: "
        ))?;
        if answer.trim() != "yes" {
            anyhow::bail!("not confirmed; nothing was changed");
        }
    }
    let Some(lock) = lock else { anyhow::bail!("key rotate needs an exclusive lock, and none was taken") };
    let report = arca_ops::keys::rotate(&repo, &lock, pw.as_bytes(), context::kdf_params())?;
    drop(lock);
    drop(repo);
    if out.json && !a.rewrite {
        out.json_doc(&report);
    } else if !out.json {
        if report.leftovers_removed > 0 {
            out.info(format!("removed {} objects an interrupted rotation had left", report.leftovers_removed));
        }
        let slot = report.slot.as_deref().unwrap_or("");
        out.line(format!(
            "rotated the key: this password now opens key slot {}; {} content keys carried over, new writing keys for {} classes, {} index and mark objects sealed again",
            &slot[..8.min(slot.len())],
            report.keys_carried,
            report.rotated.len(),
            report.resealed
        ));
        if !others.is_empty() {
            out.line(format!(
                "removed {} other key slots ({}): add them again with `arca key add` (and `--backup-only`), and run `arca key export` again",
                others.len(),
                others.join(", ")
            ));
        }
        if !a.rewrite {
            out.line("data written before stays sealed with the retired keys; `arca key rotate --rewrite-only` re-encrypts it");
        }
    }
    if a.rewrite {
        return rewrite(cli, out, a, Some((pw, report)));
    }
    Ok(crate::exit::OK)
}

/// Re-encrypt what the retired keys seal; `rotated` is the rotation just done (its password
/// opens the repository again without a prompt).
fn rewrite(
    cli: &Cli,
    out: &Output,
    a: &RotateArgs,
    rotated: Option<(String, arca_repo::rotate::RotationReport)>,
) -> Result<i32> {
    let session =
        if a.dry_run { context::Session::Metadata } else { context::Session::Exclusive("key rotate --rewrite") };
    let (repo, lock, pw) = match &rotated {
        Some((pw, _)) => {
            let (r, l) = context::open_with(cli, out, context::storage(&context::location(cli)?)?, pw, session)?;
            (r, l, pw.clone())
        }
        None => context::open_session_keeping_password(cli, out, session)?,
    };
    let retired = arca_repo::rotate::retired_keys(&repo);
    if a.dry_run {
        let p = arca_repo::rotate::pending(&repo, &retired)?;
        if out.json {
            out.json_doc(&serde_json::json!({"dry_run": true, "retired_keys": retired.len(), "rewrite": p}));
        } else {
            out.line(format!(
                "would re-encrypt {} packs ({}) and {} snapshot objects sealed with {} retired keys",
                p.packs,
                crate::text::size(p.bytes),
                p.snapshots,
                retired.len()
            ));
        }
        return Ok(crate::exit::OK);
    }
    let Some(lock) = lock else { anyhow::bail!("re-encrypting needs an exclusive lock, and none was taken") };
    let req = arca_ops::prune::PruneRequest {
        max_repack: a
            .max_repack
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--max-repack: {e}"))?,
        threads: cli.threads,
        ..Default::default()
    };
    let p = crate::progress::Reporter::new(out, "re-encrypt");
    let report = arca_ops::keys::rewrite(&repo, &lock, Some(pw.as_bytes()), &req, &p)?;
    p.progress.finish();
    let done = report.packs_left == 0 && report.snapshots_left == 0;
    if out.json {
        out.json_doc(&serde_json::json!({
            "rotation": rotated.map(|(_, r)| r),
            "rewrite": report,
            "complete": done,
        }));
    } else {
        if report.leftovers_removed > 0 {
            out.info(format!("removed {} objects an interrupted rotation had left", report.leftovers_removed));
        }
        let pl = &report.prune.plan;
        out.line(format!(
            "re-encrypted {} packs ({}) and {} snapshot objects with the new keys; deleted {} packs ({})",
            pl.rewrite_packs,
            crate::text::size(pl.rewrite_bytes),
            report.snapshots_resealed,
            report.prune.swept.packs_deleted,
            crate::text::size(report.prune.swept.bytes_deleted)
        ));
        if !done {
            let why = report.prune.swept.waiting_for.first().map(|w| format!(" (waiting for {w})")).unwrap_or_default();
            out.warn(format!(
                "{} packs and {} snapshot objects are still sealed with a retired key{why}: run `arca key rotate --rewrite-only` again",
                report.packs_left, report.snapshots_left
            ));
        }
    }
    Ok(if done { crate::exit::OK } else { crate::exit::ERROR })
}

/// `arca upgrade`: format version 1 to 2.
pub fn upgrade(cli: &Cli, out: &Output, dry_run: bool) -> Result<i32> {
    let repo = context::open(cli, out)?;
    let from = repo.version();
    let changed = if from >= arca_format::FORMAT_VERSION {
        false
    } else if dry_run {
        true
    } else {
        repo.upgrade()?
    };
    if out.json {
        out.json_doc(&serde_json::json!({
            "from": from,
            "to": arca_format::FORMAT_VERSION,
            "changed": changed,
            "dry_run": dry_run,
        }));
    } else if !changed {
        out.line(format!("already format version {from}; nothing to do"));
    } else if dry_run {
        out.line(format!(
            "would upgrade from format version {from} to {}: store one key object, replace the config (arca versions before 2 could then no longer open it)",
            arca_format::FORMAT_VERSION
        ));
    } else {
        out.line(format!("upgraded from format version {from} to {}", arca_format::FORMAT_VERSION));
        out.info("run `arca key export` again: an export made before the upgrade lacks the default class's key, which everything written from now on needs");
    }
    Ok(crate::exit::OK)
}
