//! Key slots: adding a password, changing one.

use crate::OpsResult;
use arca_format::KdfParams;
use arca_repo::keys::{self, Origin};
use arca_repo::Repository;
use arca_storage::ObjectKind;

/// Add a key slot that opens the repository with `password`; returns its id.
pub fn add_password(repo: &Repository, password: &[u8], kdf: KdfParams, label: &str) -> OpsResult<String> {
    Ok(keys::store_slot(repo.storage(), repo.key(), password, kdf, &Origin::current(), label)?)
}

/// Replace the key slot the repository was opened with by one for `password`; returns the
/// new slot's id. The new slot is stored before the old one is removed, so a crash in between
/// leaves both passwords working, never neither.
pub fn change_password(repo: &Repository, password: &[u8], kdf: KdfParams, label: &str) -> OpsResult<String> {
    let id = add_password(repo, password, kdf, label)?;
    repo.storage().delete(ObjectKind::Key, repo.key_slot())?;
    Ok(id)
}
