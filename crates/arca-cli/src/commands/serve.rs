//! `arca serve --stdio`: the far side of ssh:// repositories.

use crate::cli::{Cli, ServeArgs, ServeMode};
use crate::output::Output;
use anyhow::{Context, Result};
use arca_backends::serve::{serve, Mode};
use arca_backends::LocalStorage;
use arca_storage::Storage;
use std::path::PathBuf;
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
    let served = arca_ops::serve::ServedTree::new(repo_path, a.restrict_to.as_deref())?;
    let open = |asked: &str| -> Result<(Arc<dyn Storage>, String), String> {
        let path = served.resolve(asked).map_err(|e| e.to_string())?;
        Ok((Arc::new(LocalStorage::new(&path)), path.display().to_string()))
    };
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    serve(&mut input, &mut output, mode, open).context("serving the repository")?;
    Ok(crate::exit::OK)
}
