//! Key slots: adding a password, changing one.

use crate::OpsResult;
use arca_format::KdfParams;
use arca_repo::keys::{self, Origin};
use arca_repo::Repository;
use arca_storage::ObjectKind;
use std::sync::Arc;

/// Add a key slot that opens the repository with `password`; returns its id.
pub fn add_password(repo: &Repository, password: &[u8], kdf: KdfParams, label: &str) -> OpsResult<String> {
    let master = repo.key("add a key")?;
    Ok(keys::store_slot(repo.storage(), master, password, kdf, &Origin::current(), label)?)
}

/// A backup-only key just added.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BackupOnlyKey {
    pub id: String,
    pub host: Option<String>,
    /// Index and mark objects sealed again with the shared key first.
    pub resealed: usize,
}

/// Add a backup-only key slot (docs/SECURITY.md): first, under an exclusive lock, every index
/// and mark object is sealed with the shared key (so the new key can deduplicate and sees
/// what a prune is deleting), then the slot is stored.
pub fn add_backup_only(
    repo: &Arc<Repository>,
    password: &[u8],
    kdf: KdfParams,
    label: &str,
    host: Option<String>,
) -> OpsResult<BackupOnlyKey> {
    if let Some(h) = &host {
        if h.is_empty() || h.chars().any(|c| c.is_control()) {
            return Err(arca_repo::RepoError::Unsuitable(format!(
                "--host {h:?}: a host name is not empty and has no control characters"
            ))
            .into());
        }
    }
    let bundle = repo.backup_bundle(host.clone())?;
    let lock = arca_repo::lock::SessionLock::acquire(repo, "key add --backup-only", true)?;
    let resealed = repo.reseal_shared()?;
    drop(lock);
    let id = keys::store_backup_slot(repo.storage(), &bundle, password, kdf, &Origin::current(), label)?;
    Ok(BackupOnlyKey { id, host, resealed })
}

/// Add a metadata-only or summary-only key slot for `password` (docs/SECURITY.md, "Reader
/// keys"). Takes an exclusive lock for a moment (the index is sealed with the shared key,
/// classes get split writing keys).
pub fn add_reader(
    repo: &Arc<Repository>,
    level: arca_repo::reader::Level,
    password: &[u8],
    kdf: KdfParams,
    label: &str,
) -> OpsResult<arca_repo::reader::AddedReader> {
    Ok(arca_repo::reader::add(repo, level, password, kdf, &Origin::current(), label)?)
}

/// Rotate the repository's key (docs/SECURITY.md, "Key rotation"): a new master key kept by
/// a new slot for `password`, every other slot removed. `lock` is exclusive; open the
/// repository again afterwards.
pub fn rotate(
    repo: &Arc<Repository>,
    lock: &arca_repo::lock::SessionLock,
    password: &[u8],
    kdf: KdfParams,
) -> OpsResult<arca_repo::rotate::RotationReport> {
    Ok(arca_repo::rotate::rotate(repo, lock, password, kdf, &Origin::current())?)
}

/// Re-encrypt what is still sealed with keys a rotation retired, repacking through a prune
/// tuned by `req` (its `max_repack` bounds one run; a rerun carries on). `repo` is opened
/// after the rotation, `lock` exclusive.
///
/// With the `password` that opened it, what a rotation killed around its commit left is
/// removed first (the other master key it finds through another slot of that password).
pub fn rewrite(
    repo: &Arc<Repository>,
    lock: &arca_repo::lock::SessionLock,
    password: Option<&[u8]>,
    req: &crate::prune::PruneRequest,
    events: &dyn arca_repo::Events,
) -> OpsResult<arca_repo::rotate::RewriteReport> {
    let mut opts = crate::prune::options(req, false);
    // Only what the rewrite needs: no repacking for waste.
    opts.max_unused = arca_repo::prune::MaxUnused::Percent(100.0);
    Ok(arca_repo::rotate::rewrite(repo, lock, password, opts, events)?)
}

/// Replace the key slot the repository was opened with by one for `password`; returns the
/// new slot's id. The new slot is stored before the old one is removed, so a crash in between
/// leaves both passwords working, never neither.
pub fn change_password(repo: &Repository, password: &[u8], kdf: KdfParams, label: &str) -> OpsResult<String> {
    let id = add_password(repo, password, kdf, label)?;
    repo.storage().delete(ObjectKind::Key, repo.key_slot())?;
    Ok(id)
}

/// What `key export` writes: enough to open the repository again if its key slots are lost or
/// its config is damaged (docs/RECOVERY.md).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyExport {
    pub format: String,
    pub repository_id: String,
    pub location: String,
    pub key_slot_id: String,
    pub key_slot_hex: String,
    pub config_hex: String,
    /// The password of the default repository's key file, when that is what opens it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_key: Option<String>,
    /// Format version 2: the default class's `keyring/` objects (name → stored bytes, hex),
    /// without which nothing written since version 2 can be read. Named classes' keys are
    /// never exported, so that `key destroy-class` cannot be undone from an export.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub default_class_keys: std::collections::BTreeMap<String, String>,
}

/// The format name of [`KeyExport`].
pub const EXPORT_FORMAT: &str = "arca-key-export-v1";

/// Why an export cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not a key export: {0}")]
    NotAnExport(String),
    #[error("format {0:?}, this arca reads {EXPORT_FORMAT:?}")]
    Format(String),
    #[error("the file is damaged: {0}")]
    Damaged(&'static str),
    #[error("{location} is repository {here}, the export is of {exported}: nothing was written")]
    OtherRepository { location: String, here: String, exported: String },
    #[error(transparent)]
    Storage(#[from] arca_storage::StorageError),
}

/// The export of the key slot `repo` was opened with, and of its config.
pub fn export(repo: &Repository, location: &str, default_key: Option<String>) -> OpsResult<KeyExport> {
    let storage = repo.storage();
    let mut default_class_keys = std::collections::BTreeMap::new();
    // Keys of backup-only sessions are left out: one per backup, they would grow the export
    // without end (docs/RECOVERY.md).
    // Key 0 of before a `key rotate` is one of them (it opens version-1 objects).
    for k in repo.keyring().all() {
        if k.role != arca_repo::keyring::KeyRole::Content || !k.class.is_empty() {
            continue;
        }
        if let Some(name) = &k.object {
            default_class_keys.insert(name.clone(), hex::encode(storage.get(ObjectKind::Keyring, name)?));
        }
    }
    Ok(KeyExport {
        format: EXPORT_FORMAT.into(),
        repository_id: repo.config().repo_id.to_hex(),
        location: location.to_string(),
        key_slot_id: repo.key_slot().to_string(),
        key_slot_hex: hex::encode(&storage.get(ObjectKind::Key, repo.key_slot())?),
        config_hex: hex::encode(&storage.get(ObjectKind::Config, "config")?),
        default_key,
        default_class_keys,
    })
}

impl KeyExport {
    /// Read an export: its JSON, or a `--paper` page (whose last JSON line is the export).
    pub fn parse(text: &str) -> Result<KeyExport, ImportError> {
        let e: KeyExport = serde_json::from_str(text)
            .or_else(|err| match text.lines().rev().find(|l| l.trim_start().starts_with('{')) {
                Some(line) => serde_json::from_str(line),
                None => Err(err),
            })
            .map_err(|e| ImportError::NotAnExport(e.to_string()))?;
        if e.format != EXPORT_FORMAT {
            return Err(ImportError::Format(e.format));
        }
        Ok(e)
    }
}

/// What an import wrote.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Imported {
    pub wrote: Vec<String>,
    /// The repository has a config that differs from the export's, left alone (no
    /// `replace_config`).
    pub config_differs: bool,
}

/// Put an exported key slot back into `storage` and, where it is missing (or, with
/// `replace_config`, different), the config. Refuses an export of another repository.
/// Opening the repository afterwards (with the password) proves the result.
pub fn import(
    storage: &dyn arca_storage::Storage,
    e: &KeyExport,
    replace_config: bool,
) -> Result<Imported, ImportError> {
    let slot = hex::decode(&e.key_slot_hex).map_err(|_| ImportError::Damaged("key_slot_hex is not hex"))?;
    let config = hex::decode(&e.config_hex).map_err(|_| ImportError::Damaged("config_hex is not hex"))?;
    if arca_format::Id::of_bytes(&slot).to_hex() != e.key_slot_id {
        return Err(ImportError::Damaged("the key slot does not match its id"));
    }
    let exported = arca_format::ConfigFile::from_bytes(&config).map_err(|_| ImportError::Damaged("the config"))?;
    if exported.repo_id.to_hex() != e.repository_id {
        return Err(ImportError::Damaged("the config belongs to another repository than the export names"));
    }
    let present = match storage.get(ObjectKind::Config, "config") {
        Ok(b) => Some(b),
        Err(err) if err.is_not_found() => None,
        Err(err) => return Err(err.into()),
    };
    if let Some(c) = present.as_deref().and_then(|b| arca_format::ConfigFile::from_bytes(b).ok()) {
        if c.repo_id != exported.repo_id {
            return Err(ImportError::OtherRepository {
                location: storage.location(),
                here: c.repo_id.short(),
                exported: exported.repo_id.short(),
            });
        }
    }
    let mut keys = vec![];
    for (name, h) in &e.default_class_keys {
        let bytes = hex::decode(h).map_err(|_| ImportError::Damaged("a default class key is not hex"))?;
        if !arca_format::keyring::name_matches(name, &bytes) {
            return Err(ImportError::Damaged("a default class key does not match its name"));
        }
        keys.push((name, bytes));
    }
    let mut done = Imported::default();
    for (name, bytes) in keys {
        if !storage.exists(ObjectKind::Keyring, name)? {
            storage.put(ObjectKind::Keyring, name, &bytes)?;
            done.wrote.push(format!("default class key {}", name.get(..8).unwrap_or(name)));
        }
    }
    if !storage.exists(ObjectKind::Key, &e.key_slot_id)? {
        storage.put(ObjectKind::Key, &e.key_slot_id, &slot)?;
        done.wrote.push(format!("key slot {}", e.key_slot_id.get(..8).unwrap_or(&e.key_slot_id)));
    }
    match &present {
        Some(b) if *b == config => {}
        None => {
            storage.put(ObjectKind::Config, "config", &config)?;
            done.wrote.push("config".to_string());
        }
        Some(_) if replace_config => {
            // Objects are never overwritten in place: delete, then store. A crash in between
            // leaves no config, which this same import puts back.
            storage.delete(ObjectKind::Config, "config")?;
            storage.put(ObjectKind::Config, "config", &config)?;
            done.wrote.push("config (replaced)".to_string());
        }
        Some(_) => done.config_differs = true,
    }
    Ok(done)
}
