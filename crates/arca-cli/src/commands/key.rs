//! `arca key`: list, add, remove and change passwords.

use crate::cli::{Cli, KeyCommand, NewPassword};
use crate::context;
use crate::output::Output;
use anyhow::{Context, Result};
use arca_repo::keys::{self, Origin};

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
    let repo = context::open(cli, out)?;
    let storage = repo.storage();
    match k {
        KeyCommand::List => {
            let list = keys::list(storage, repo.key_slot())?;
            if out.json {
                out.json_doc(&list);
            } else {
                out.line(format!(" {:<8}  {:<25}  {:<12}  {:<16}  Label", "ID", "Created", "User", "Host"));
                for k in list {
                    out.line(format!(
                        "{}{:<8}  {:<25}  {:<12}  {:<16}  {}",
                        if k.current { "*" } else { " " },
                        &k.id[..8],
                        k.created,
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
            // Add the new slot before removing the old one: a crash in between leaves both.
            let id = add_slot(&repo, a)?;
            storage.delete(arca_storage::ObjectKind::Key, repo.key_slot())?;
            report(out, "password changed; new key slot", &id);
        }
    }
    Ok(crate::exit::OK)
}

/// Store a new key slot for the password `a` names.
fn add_slot(repo: &arca_repo::Repository, a: &NewPassword) -> Result<String> {
    let pw = new_password(a)?;
    let params = context::kdf_params();
    Ok(keys::store_slot(repo.storage(), repo.key(), pw.as_bytes(), params, &Origin::current(), &a.label)?)
}

fn report(out: &Output, what: &str, id: &str) {
    if out.json {
        out.json_doc(&serde_json::json!({"result": what, "id": id}));
    } else {
        out.info(format!("{what} {}", &id[..8.min(id.len())]));
    }
}
