//! `arca init`: create a repository.

use crate::cli::{Cli, Encryption, InitArgs};
use crate::context;
use crate::output::Output;
use anyhow::{Context, Result};
use arca_format::{ChunkerParams, EncryptionMode};
use arca_repo::{InitOptions, Repository};

pub fn run(cli: &Cli, out: &Output, a: &InitArgs) -> Result<i32> {
    let loc = context::location(cli)?;
    let avg = a.chunk_size_kib.saturating_mul(1024);
    let opts = InitOptions {
        encryption: match a.encryption {
            Encryption::Aes256GcmSiv => EncryptionMode::Aes256GcmSiv,
            Encryption::Xchacha20Poly1305 => EncryptionMode::XChaCha20Poly1305,
            Encryption::None => EncryptionMode::AuthenticatedOnly,
        },
        chunker: ChunkerParams { min_size: avg / 2, avg_size: avg, max_size: avg.saturating_mul(8) },
        compression_level: a.compression_level,
        pack_size: a.pack_size_mib.saturating_mul(1024 * 1024),
        parity_percent: a.parity,
        kdf: context::kdf_params(),
        version: a.format_version,
    };
    if cli.repo.is_none() {
        // The default repository is made the way `arca backup` makes it on first use (a key
        // file, unless a password is given): one behaviour, whichever command comes first.
        if context::create_default(cli, out, &[], &opts)? {
            return Ok(crate::exit::OK);
        }
        return Err(arca_repo::RepoError::AlreadyExists { location: context::shown(&loc) }.into());
    }
    let password = context::password(cli, &loc, true)?;
    match &loc.place {
        arca_backends::Location::S3(o) => arca_backends::S3Storage::new(o)?.ensure_bucket()?,
        arca_backends::Location::Local(path) => {
            if let Ok(mut entries) = std::fs::read_dir(path) {
                if entries.next().is_some() && !path.join("config").exists() && !path.join("keys").exists() {
                    anyhow::bail!(
                        "{} is not empty and is not an arca repository: give an empty or new directory",
                        path.display()
                    );
                }
            }
            arca_backends::create_private_dir(path).with_context(|| format!("cannot create {}", path.display()))?;
        }
        arca_backends::Location::Ssh { .. }
        | arca_backends::Location::Sftp { .. }
        | arca_backends::Location::FileServer(_) => {}
    }
    let repo = Repository::init(context::storage(&loc)?, password.as_bytes(), &opts)?;
    if out.json {
        out.json_doc(&serde_json::json!({
            "repository": context::shown(&loc),
            "id": repo.config().repo_id.to_hex(),
            "version": repo.config().version,
        }));
    } else {
        out.info(format!(
            "created repository {} at {}\nKeep the password safe: without it the data cannot be read.",
            repo.config().repo_id.short(),
            context::shown(&loc)
        ));
    }
    if opts.encryption == EncryptionMode::AuthenticatedOnly {
        out.warn("this repository is not encrypted (--encryption none): anyone who can read its storage reads the files; changes are still detected");
    }
    Ok(crate::exit::OK)
}
