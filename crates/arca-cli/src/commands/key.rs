//! `arca key`: list, add, remove and change passwords.

use crate::cli::{Cli, KeyCommand, NewPassword};
use crate::context;
use crate::output::Output;
use anyhow::{Context, Result};
use arca_repo::keys;
use arca_storage::ObjectKind;

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

/// What `key export` writes: enough to open the repository again if its key slots are lost or
/// its config is damaged (docs/RECOVERY.md).
#[derive(serde::Serialize, serde::Deserialize)]
struct KeyExport {
    format: String,
    repository_id: String,
    location: String,
    key_slot_id: String,
    key_slot_hex: String,
    config_hex: String,
    /// The password of the default repository's key file, when that is what opens it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default_key: Option<String>,
}

const EXPORT_FORMAT: &str = "arca-key-export-v1";

pub fn run(cli: &Cli, out: &Output, k: &KeyCommand) -> Result<i32> {
    if let KeyCommand::Import { file, replace_config } = k {
        return import(cli, out, file, *replace_config);
    }
    let repo = context::open(cli, out)?;
    let storage = repo.storage();
    match k {
        KeyCommand::List => {
            let list = keys::list(storage, repo.key_slot())?;
            if out.json {
                out.json_doc(&list);
            } else {
                out.line(format!(" {:<8}  {:<19}  {:<12}  {:<16}  Label", "ID", "Created", "User", "Host"));
                for k in list {
                    out.line(format!(
                        "{}{:<8}  {:<19}  {:<12}  {:<16}  {}",
                        if k.current { "*" } else { " " },
                        k.id.get(..8).unwrap_or(&k.id),
                        super::snapshots::short_time(&k.created),
                        k.username,
                        k.hostname,
                        k.label
                    ));
                }
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
            let e = KeyExport {
                format: EXPORT_FORMAT.into(),
                repository_id: repo.config().repo_id.to_hex(),
                location: context::shown(&loc),
                key_slot_id: repo.key_slot().to_string(),
                key_slot_hex: hex::encode(storage.get(ObjectKind::Key, repo.key_slot())?),
                config_hex: hex::encode(storage.get(ObjectKind::Config, "config")?),
                default_key: context::default_key_in_use(cli, &loc)?,
            };
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
        KeyCommand::Import { .. } => {}
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
    // The JSON of `key export`, or a `--paper` page (its last line is the JSON).
    let e: KeyExport = serde_json::from_str(&text)
        .or_else(|err| match text.lines().rev().find(|l| l.trim_start().starts_with('{')) {
            Some(line) => serde_json::from_str(line),
            None => Err(err),
        })
        .with_context(|| format!("{} is not a key export", file.display()))?;
    if e.format != EXPORT_FORMAT {
        anyhow::bail!("{}: format {:?}, this arca reads {EXPORT_FORMAT:?}", file.display(), e.format);
    }
    let slot = hex::decode(&e.key_slot_hex).context("key_slot_hex is not hex")?;
    let config = hex::decode(&e.config_hex).context("config_hex is not hex")?;
    if arca_format::Id::of_bytes(&slot).to_hex() != e.key_slot_id {
        anyhow::bail!("{}: the key slot does not match its id (the file is damaged)", file.display());
    }
    let exported = arca_format::ConfigFile::from_bytes(&config).context("the exported config is damaged")?;
    if exported.repo_id.to_hex() != e.repository_id {
        anyhow::bail!("{}: the config does not belong to repository {}", file.display(), e.repository_id);
    }
    let loc = context::location(cli)?;
    let storage = context::storage(&loc)?;
    let present = match storage.get(ObjectKind::Config, "config") {
        Ok(b) => Some(b),
        Err(err) if err.is_not_found() => None,
        Err(err) => return Err(err.into()),
    };
    if let Some(c) = present.as_deref().and_then(|b| arca_format::ConfigFile::from_bytes(b).ok()) {
        if c.repo_id != exported.repo_id {
            anyhow::bail!(
                "{} is repository {}, the export is of {}: nothing was written",
                context::shown(&loc),
                c.repo_id.short(),
                exported.repo_id.short()
            );
        }
    }
    let mut wrote = vec![];
    if !storage.exists(ObjectKind::Key, &e.key_slot_id)? {
        storage.put(ObjectKind::Key, &e.key_slot_id, &slot)?;
        wrote.push(format!("key slot {}", &e.key_slot_id[..8]));
    }
    match &present {
        Some(b) if *b == config => {}
        None => {
            storage.put(ObjectKind::Config, "config", &config)?;
            wrote.push("config".to_string());
        }
        Some(_) if replace_config => {
            storage.delete(ObjectKind::Config, "config")?;
            storage.put(ObjectKind::Config, "config", &config)?;
            wrote.push("config (replaced)".to_string());
        }
        Some(_) => {
            out.warn("this repository's config differs from the exported one; give --replace-config if it is damaged")
        }
    }
    let pw = match &e.default_key {
        Some(k) => k.clone(),
        None => context::password(cli, &loc, false)?,
    };
    arca_repo::Repository::open(storage, pw.as_bytes()).context("the repository still does not open")?;
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
fn add_slot(repo: &arca_repo::Repository, a: &NewPassword) -> Result<String> {
    Ok(arca_ops::keys::add_password(repo, new_password(a)?.as_bytes(), context::kdf_params(), &a.label)?)
}

fn report(out: &Output, what: &str, id: &str) {
    if out.json {
        out.json_doc(&serde_json::json!({"result": what, "id": id}));
    } else {
        out.info(format!("{what} {}", &id[..8.min(id.len())]));
    }
}
