//! `arca serve --stdio`: the far side of ssh:// repositories.

use crate::cli::{Cli, ServeArgs, ServeMode};
use crate::output::Output;
use anyhow::{bail, Context, Result};
use arca_backends::serve::{serve, Mode};
use arca_backends::LocalStorage;
use arca_storage::Storage;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

pub fn run(cli: &Cli, _out: &Output, a: &ServeArgs) -> Result<i32> {
    // stdout carries the protocol: nothing else may be printed there.
    let mode = match a.mode {
        ServeMode::Read => Mode::Read,
        ServeMode::Append => Mode::Append,
        ServeMode::Full => Mode::Full,
    };
    // The repository is the global --repo (what a forced command gives).
    let repo_path: Option<PathBuf> = cli.repo.as_deref().map(|r| PathBuf::from(r.strip_prefix("local:").unwrap_or(r)));
    let restrict = match &a.restrict_to {
        Some(d) => Some(d.canonicalize().with_context(|| format!("--restrict-to {}", d.display()))?),
        None => None,
    };
    if let (Some(repo), Some(dir)) = (&repo_path, &restrict) {
        if !inside(repo, dir) {
            bail!("--repo {} is not inside --restrict-to {}", repo.display(), dir.display());
        }
    }
    let open = |asked: &str| -> Result<(Arc<dyn Storage>, String), String> {
        let path = match (&repo_path, &restrict) {
            (Some(p), _) => p.clone(),
            (None, Some(dir)) => {
                let asked = Path::new(asked);
                let p = if asked.is_absolute() { asked.to_path_buf() } else { dir.join(asked) };
                if !inside(&p, dir) {
                    return Err(format!("refused by server: {} is outside {}", p.display(), dir.display()));
                }
                p
            }
            (None, None) => return Err("this server has neither --repo nor --restrict-to: it serves nothing".into()),
        };
        Ok((Arc::new(LocalStorage::new(&path)), path.display().to_string()))
    };
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    serve(&mut input, &mut output, mode, open).context("serving the repository")?;
    Ok(crate::exit::OK)
}

/// True if `p` (which may not exist yet) lies inside `dir`: no `..`, and its nearest existing
/// ancestor resolves (symlinks followed) inside `dir`.
fn inside(p: &Path, dir: &Path) -> bool {
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return false;
    }
    let mut existing: PathBuf = p.to_path_buf();
    let mut rest = vec![];
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(n), Some(parent)) => {
                rest.push(n.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return false,
        }
    }
    match existing.canonicalize() {
        Ok(c) => c.starts_with(dir),
        Err(_) => false,
    }
}
