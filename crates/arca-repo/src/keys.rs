//! Key slots: create, open with a password, list, add, remove. None of these re-encrypts data.

use crate::{RepoError, RepoResult};
use arca_crypto::{derive_slot_key, open_slot, open_slot_secret, random_bytes, seal_slot, seal_slot_secret, MasterKey};
use arca_format::{
    decode, encode, BackupBundle, Id, KdfParams, KeySlot, ReaderBundle, ROLE_BACKUP_ONLY, ROLE_FULL, ROLE_METADATA,
    ROLE_SUMMARY,
};
use arca_storage::{ObjectKind, Storage};
use serde::Serialize;
use serde_bytes::ByteBuf;

/// Key slots are the same in format versions 1 and 2.
const KEY_SLOT_VERSION: u32 = 1;

/// Who and where a key slot or snapshot was made.
#[derive(Clone, Debug)]
pub struct Origin {
    pub hostname: String,
    pub username: String,
}

impl Origin {
    /// This machine and user.
    pub fn current() -> Origin {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let username = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "root".into());
        Origin { hostname, username }
    }
}

/// A key slot as shown to the user.
#[derive(Clone, Debug, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub created: String,
    pub hostname: String,
    pub username: String,
    pub label: String,
    pub current: bool,
    /// `full`, `backup-only`, `metadata` or `summary`.
    pub role: String,
}

/// What a password opened.
pub enum Unlocked {
    /// The master key.
    Full(MasterKey),
    /// A backup-only key's bundle.
    BackupOnly(Box<BackupBundle>),
    /// A metadata-only or summary-only key's bundle.
    Reader(Box<ReaderBundle>, crate::reader::Level),
}

/// Seal `master` under `password` as a new key slot; returns its name and bytes.
pub fn make_slot(
    master: &MasterKey,
    password: &[u8],
    params: KdfParams,
    origin: &Origin,
    label: &str,
) -> RepoResult<(String, Vec<u8>)> {
    let salt: [u8; 16] = random_bytes();
    let sk = derive_slot_key(password, &salt, &params).map_err(|e| RepoError::KeyDerivation(e.to_string()))?;
    let slot = KeySlot {
        version: KEY_SLOT_VERSION,
        kdf: "argon2id".into(),
        params,
        salt: ByteBuf::from(salt.to_vec()),
        sealed_master: ByteBuf::from(seal_slot(master, &sk)),
        created: chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        hostname: origin.hostname.clone(),
        username: origin.username.clone(),
        label: label.to_string(),
        role: ROLE_FULL.into(),
    };
    let bytes = encode("key slot", &slot)?;
    Ok((Id::of_bytes(&bytes).to_hex(), bytes))
}

/// Store a new key slot.
pub fn store_slot(
    storage: &dyn Storage,
    master: &MasterKey,
    password: &[u8],
    params: KdfParams,
    origin: &Origin,
    label: &str,
) -> RepoResult<String> {
    let (name, bytes) = make_slot(master, password, params, origin, label)?;
    storage.put(ObjectKind::Key, &name, &bytes)?;
    Ok(name)
}

/// Store a new backup-only key slot sealing `bundle` under `password`.
pub fn store_backup_slot(
    storage: &dyn Storage,
    bundle: &BackupBundle,
    password: &[u8],
    params: KdfParams,
    origin: &Origin,
    label: &str,
) -> RepoResult<String> {
    let plain = zeroize::Zeroizing::new(encode("backup-only key", bundle)?);
    store_sealed_slot(storage, ROLE_BACKUP_ONLY, &plain, password, params, origin, label)
}

/// Store a new metadata-only or summary-only key slot sealing `bundle` under `password`.
pub fn store_reader_slot(
    storage: &dyn Storage,
    bundle: &ReaderBundle,
    level: crate::reader::Level,
    password: &[u8],
    params: KdfParams,
    origin: &Origin,
    label: &str,
) -> RepoResult<String> {
    let plain = zeroize::Zeroizing::new(encode("reader key", bundle)?);
    store_sealed_slot(storage, level.slot_role(), &plain, password, params, origin, label)
}

/// Store a key slot of `role` sealing `plain` (a bundle) under `password`.
fn store_sealed_slot(
    storage: &dyn Storage,
    role: &str,
    plain: &[u8],
    password: &[u8],
    params: KdfParams,
    origin: &Origin,
    label: &str,
) -> RepoResult<String> {
    let salt: [u8; 16] = random_bytes();
    let sk = derive_slot_key(password, &salt, &params).map_err(|e| RepoError::KeyDerivation(e.to_string()))?;
    let slot = KeySlot {
        version: KEY_SLOT_VERSION,
        kdf: "argon2id".into(),
        params,
        salt: ByteBuf::from(salt.to_vec()),
        sealed_master: ByteBuf::from(seal_slot_secret(plain, &sk)),
        created: chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        hostname: origin.hostname.clone(),
        username: origin.username.clone(),
        label: label.to_string(),
        role: role.into(),
    };
    let bytes = encode("key slot", &slot)?;
    let name = Id::of_bytes(&bytes).to_hex();
    storage.put(ObjectKind::Key, &name, &bytes)?;
    Ok(name)
}

/// Read every key slot; damaged ones are skipped with their error.
pub fn read_slots(storage: &dyn Storage) -> RepoResult<Slots> {
    let mut out = vec![];
    for (name, _) in storage.list(ObjectKind::Key)? {
        let slot = storage.get(ObjectKind::Key, &name).map_err(RepoError::from).and_then(|b| {
            if Id::of_bytes(&b).to_hex() != name {
                return Err(RepoError::corrupt(format!("key slot {name}"), "contents do not match its name"));
            }
            decode::<KeySlot>("key slot", &b).map_err(|e| RepoError::corrupt(format!("key slot {name}"), e))
        });
        out.push((name, slot));
    }
    Ok(out)
}

/// Try every slot with `password`; returns what it opened and the slot that opened.
pub fn unlock(storage: &dyn Storage, password: &[u8]) -> RepoResult<(Unlocked, String)> {
    unlock_where(storage, password, |_| true)
}

/// Try every slot with `password`; returns the first key it opens that `accept` takes (the
/// one whose master key opens the config: after `key rotate`, an old slot put back still
/// opens its slot, but not the repository).
pub fn unlock_where(
    storage: &dyn Storage,
    password: &[u8],
    accept: impl Fn(&Unlocked) -> bool,
) -> RepoResult<(Unlocked, String)> {
    unlock_slots(read_slots(storage)?, &storage.location(), password, accept)
}

/// Key slots read, named, in the order listed (see [`read_slots`]).
pub type Slots = Vec<(String, Result<KeySlot, RepoError>)>;

/// [`unlock_where`] over slots already read from the storage at `location`.
pub fn unlock_slots(
    slots: Slots,
    location: &str,
    password: &[u8],
    accept: impl Fn(&Unlocked) -> bool,
) -> RepoResult<(Unlocked, String)> {
    let mut rotated_out = vec![];
    let mut damaged = vec![];
    let mut refused = vec![];
    if slots.is_empty() {
        return Err(RepoError::corrupt(
            "keys/",
            "no key slot exists: the repository cannot be opened (were they deleted?)",
        ));
    }
    for (name, slot) in slots {
        let slot = match slot {
            Ok(s) => s,
            Err(_) => {
                damaged.push(name);
                continue;
            }
        };
        if slot.kdf != "argon2id" {
            continue;
        }
        if let Some(why) = slot.params.refusal() {
            refused.push(format!("key slot {name} {why}"));
            continue;
        }
        let Ok(sk) = derive_slot_key(password, &slot.salt, &slot.params) else {
            continue;
        };
        let opened = open_role(&name, &slot, &sk)?;
        match opened {
            Some(u) if accept(&u) => return Ok((u, name)),
            Some(_) => rotated_out.push(name),
            None => {}
        }
    }
    if let Some(slot) = rotated_out.first() {
        return Err(RepoError::RotatedOut { slot: slot.clone() });
    }
    if !damaged.is_empty() {
        return Err(RepoError::corrupt(
            format!("key slot {}", damaged.join(", key slot ")),
            "damaged, and no intact key slot opens with this password (restore the slot from a copy of keys/, or use another password)",
        ));
    }
    if !refused.is_empty() {
        return Err(RepoError::LimitExceeded {
            what: refused.join("; "),
            detail: "no other key slot opens with this password (a slot this costly was not written by arca's defaults: check keys/ for planted slots)".into(),
        });
    }
    Err(RepoError::WrongPassword { location: location.to_string() })
}

/// Open `slot` (named `name`) with its derived key: what it seals, by its role; `None` if the
/// key does not open it or the role is a newer arca's. A bundle that opens but does not
/// decode is damage.
fn open_role(name: &str, slot: &KeySlot, sk: &arca_crypto::SlotKey) -> RepoResult<Option<Unlocked>> {
    let bundle = || open_slot_secret(&slot.sealed_master, sk).ok();
    let damaged = |e: arca_format::FormatError| RepoError::corrupt(format!("key slot {name}"), e);
    Ok(match slot.role.as_str() {
        ROLE_FULL => open_slot(&slot.sealed_master, sk).ok().map(Unlocked::Full),
        ROLE_BACKUP_ONLY => match bundle() {
            Some(p) => Some(Unlocked::BackupOnly(Box::new(decode("backup-only key", &p).map_err(damaged)?))),
            None => None,
        },
        role @ (ROLE_METADATA | ROLE_SUMMARY) => match bundle() {
            Some(p) => {
                let level =
                    if role == ROLE_METADATA { crate::reader::Level::Metadata } else { crate::reader::Level::Summary };
                Some(Unlocked::Reader(Box::new(decode("reader key", &p).map_err(damaged)?), level))
            }
            None => None,
        },
        // A role of a newer arca: not ours to open.
        _ => None,
    })
}

/// Every key slot `password` opens, with what it opened (for `key rotate`, which looks for
/// the slot an interrupted rotation left).
pub fn open_all(storage: &dyn Storage, password: &[u8]) -> RepoResult<Vec<(String, Unlocked)>> {
    let mut out = vec![];
    for (name, slot) in read_slots(storage)? {
        let Ok(slot) = slot else { continue };
        if slot.kdf != "argon2id" || slot.params.refusal().is_some() {
            continue;
        }
        let Ok(sk) = derive_slot_key(password, &slot.salt, &slot.params) else { continue };
        if let Ok(Some(u)) = open_role(&name, &slot, &sk) {
            out.push((name, u));
        }
    }
    Ok(out)
}

/// List key slots, marking the one in use.
pub fn list(storage: &dyn Storage, current: &str) -> RepoResult<Vec<KeyInfo>> {
    let mut out = vec![];
    for (name, slot) in read_slots(storage)? {
        let slot = slot?;
        out.push(KeyInfo {
            current: name == current,
            id: name,
            created: slot.created,
            hostname: slot.hostname,
            username: slot.username,
            label: slot.label,
            role: if slot.role.is_empty() { "full".into() } else { slot.role },
        });
    }
    Ok(out)
}

/// Remove a key slot by id prefix. The last slot and the slot in use are refused.
pub fn remove(storage: &dyn Storage, prefix: &str, current: &str) -> RepoResult<String> {
    let names: Vec<String> = storage.list(ObjectKind::Key)?.into_iter().map(|(n, _)| n).collect();
    let matches: Vec<&String> = names.iter().filter(|n| n.starts_with(prefix)).collect();
    let name = match matches.as_slice() {
        [one] => (*one).clone(),
        [] => return Err(RepoError::KeySlotNotFound(prefix.to_string())),
        _ => return Err(RepoError::AmbiguousKeySlot(prefix.to_string())),
    };
    if name == current {
        return Err(RepoError::KeySlotInUse(name[..8.min(name.len())].to_string()));
    }
    if names.len() <= 1 {
        return Err(RepoError::LastKeySlot);
    }
    storage.delete(ObjectKind::Key, &name)?;
    Ok(name)
}
