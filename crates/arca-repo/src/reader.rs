//! Reader keys (format version 2): a metadata-only key lists snapshots and reads their trees
//! (names, sizes, times; no contents), a summary-only key reads only snapshot digests (hosts,
//! times, sizes; no names). They back a server's detail and summary roles.
//!
//! A content key that *splits* what it seals seals its trees and snapshot bodies with its
//! metadata key and each snapshot's digest with its summary key, both derived from its data
//! key. Next to its own `keyring/` object, each such key's metadata key is stored sealed to
//! the repository's metadata recipient key, and its summary key sealed to the summary
//! recipient key (X25519, both derived from the master key). A reader key's slot seals the
//! secret of one of those recipient keys: it opens those objects and nothing else, so it
//! gets the metadata (or summary) key of every content key, present and future, including
//! backup-only sessions' keys, and never a data key. Keys made before reader keys existed do
//! not split; what they sealed stays out of a reader's reach until `key rotate --rewrite`.

use crate::keyring::{self, ContentKey, Held, KeyRole, Keyring};
use crate::repository::object_ad_v2;
use crate::{RepoError, RepoResult, Repository};
use arca_crypto::recipient::{seal_to, RecipientSecret};
use arca_format::keyring::{envelope, envelope_prefix, is_content_key_number, name_matches, object_name};
use arca_format::{
    decode, encode, Config, EncryptionMode, ReaderBundle, ReaderKeyFile, DEFAULT_CLASS, ROLE_METADATA, ROLE_SUMMARY,
    SEALED_TO_METADATA, SEALED_TO_SUMMARY,
};
use arca_storage::{ObjectKind, Storage};
use serde_bytes::ByteBuf;

/// What a reader key reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Snapshots, trees (names, sizes, times, owners), the index: no contents.
    Metadata,
    /// Snapshot digests (hosts, users, times, tags, sizes and counts): no names.
    Summary,
}

impl Level {
    /// The role its key slots carry.
    pub fn slot_role(self) -> &'static str {
        match self {
            Level::Metadata => ROLE_METADATA,
            Level::Summary => ROLE_SUMMARY,
        }
    }

    /// As shown to a user.
    pub fn name(self) -> &'static str {
        match self {
            Level::Metadata => "metadata-only",
            Level::Summary => "summary-only",
        }
    }

    /// What it can do, for the message that refuses the rest.
    pub fn can(self) -> &'static str {
        match self {
            Level::Metadata => {
                "lists snapshots and their files (ls, find, diff, stats), never contents; use a full key for that"
            }
            Level::Summary => {
                "lists snapshots' hosts, times and sizes (snapshots), never a file name; use a full key for that"
            }
        }
    }

    pub(crate) fn held(self) -> Held {
        match self {
            Level::Metadata => Held::Metadata,
            Level::Summary => Held::Summary,
        }
    }

    /// The envelope number of the `keyring/` objects it opens.
    fn envelope(self) -> u32 {
        match self {
            Level::Metadata => SEALED_TO_METADATA,
            Level::Summary => SEALED_TO_SUMMARY,
        }
    }
}

/// The public halves of the metadata and summary recipient keys, which writers seal the
/// reader keys of the content keys they make to.
#[derive(Clone, Copy)]
pub(crate) struct Recipients {
    pub metadata: [u8; 32],
    pub summary: [u8; 32],
}

impl Recipients {
    /// Those of the master key `master`.
    pub fn of(master: &arca_crypto::MasterKey, config: &Config) -> Recipients {
        Recipients {
            metadata: master.metadata_recipient(&config.repo_id).public(),
            summary: master.summary_recipient(&config.repo_id).public(),
        }
    }
}

/// The two `keyring/` objects that give reader keys the metadata and the summary key of the
/// split content key `key` (a session key's `host` goes with it): names and bytes.
pub(crate) fn reader_key_objects(
    config: &Config,
    key: &ContentKey,
    host: Option<&str>,
    to: Recipients,
) -> RepoResult<Vec<(String, Vec<u8>)>> {
    if !key.split || key.held() != Held::All {
        return Err(RepoError::Internal("reader keys of a key that does not split, or is not whole"));
    }
    let mut out = vec![];
    for (envelope_number, recipient, secret) in [
        (SEALED_TO_METADATA, to.metadata, key.key().metadata_key()),
        (SEALED_TO_SUMMARY, to.summary, key.key().summary_key()),
    ] {
        let file = ReaderKeyFile {
            number: key.number,
            class: key.class.clone(),
            key: ByteBuf::from(secret.to_vec()),
            host: host.map(String::from),
            session: key.role == KeyRole::Session,
            summary_key: (envelope_number == SEALED_TO_METADATA)
                .then(|| ByteBuf::from(key.key().summary_key().to_vec())),
        };
        let plain = zeroize::Zeroizing::new(encode("reader key", &file)?);
        let ad = object_ad_v2(ObjectKind::Keyring, &config.repo_id, envelope_number);
        let mut bytes = envelope_prefix(envelope_number).to_vec();
        bytes.extend_from_slice(&seal_to(&recipient, &plain, &ad));
        out.push((object_name(key.number, &bytes), bytes));
    }
    Ok(out)
}

/// A reader key's keyring: the metadata (or summary) key of every content key that has one,
/// opened with the recipient `secret`; with a metadata key's bundle, the shared key too. And
/// the objects that could not be read.
pub(crate) fn load_keyring(
    storage: &dyn Storage,
    level: Level,
    secret: &RecipientSecret,
    shared: Option<&[u8; 32]>,
    config: &Config,
) -> RepoResult<(Keyring, Vec<RepoError>)> {
    let mut ring = Keyring::default();
    if let Some(shared) = shared {
        ring.insert(ContentKey::shared(&arca_crypto::MasterKey::generate(), shared, config.encryption))?;
    }
    let mut problems = vec![];
    let ad = object_ad_v2(ObjectKind::Keyring, &config.repo_id, level.envelope());
    // Every claim first: two objects giving different keys for one number are both refused
    // (a backup-only key holder can seal such objects too, and could name its own to be
    // listed first), so a reader never takes a planted key over the real one.
    let mut claims: std::collections::BTreeMap<u32, Vec<(String, ContentKey)>> = Default::default();
    for (name, _) in storage.list(ObjectKind::Keyring)? {
        let what = || format!("reader key {name}");
        let loaded = (|| -> RepoResult<Option<ContentKey>> {
            let bytes = storage.get(ObjectKind::Keyring, &name)?;
            let Some((number, sealed)) = envelope(&bytes) else { return Ok(None) };
            if number != level.envelope() {
                return Ok(None); // a content key, or the other level's
            }
            if !name_matches(&name, &bytes) {
                return Err(RepoError::corrupt(what(), "contents do not match the object name"));
            }
            let plain = secret.open(sealed, &ad).map_err(|e| RepoError::corrupt(what(), e))?;
            let file: ReaderKeyFile = decode("reader key", &plain).map_err(|e| RepoError::corrupt(what(), e))?;
            let key: [u8; 32] =
                file.key.as_slice().try_into().map_err(|_| RepoError::corrupt(what(), "the key is not 32 bytes"))?;
            if !is_content_key_number(file.number) || arca_format::keyring::number_in_name(&name) != Some(file.number) {
                return Err(RepoError::corrupt(
                    what(),
                    format!("it claims number {}, which its name does not", file.number),
                ));
            }
            keyring::validate_class(&file.class).map_err(|e| RepoError::corrupt(what(), e))?;
            let mut k = ContentKey::reader(file.number, &file.class, level.held(), &key, config.encryption);
            if file.session {
                k.role = KeyRole::Session;
            }
            if let Some(summary) = &file.summary_key {
                let summary: [u8; 32] = summary
                    .as_slice()
                    .try_into()
                    .map_err(|_| RepoError::corrupt(what(), "the summary key is not 32 bytes"))?;
                k.add_summary_key(&summary);
            }
            k.host = file.host;
            Ok(Some(k))
        })();
        match loaded {
            Ok(Some(k)) => claims.entry(k.number).or_default().push((name.clone(), k)),
            Ok(None) => {}
            Err(RepoError::Storage(e)) if e.is_not_found() => {} // destroyed meanwhile
            Err(e @ RepoError::Storage(_)) => return Err(e),
            Err(e) => problems.push(e),
        }
    }
    for (number, mut found) in claims {
        let (_, first) = &found[0];
        let agree = found.iter().all(|(_, k)| k.same_as(first));
        if !agree {
            let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
            problems.push(RepoError::corrupt(
                format!("reader keys {}", names.join(", ")),
                format!("they give different keys for content key {number:08x}: none is used (a planted object; a full key's `check` names it)"),
            ));
            continue;
        }
        if let Err(e) = ring.insert(found.swap_remove(0).1) {
            problems.push(e);
        }
    }
    Ok((ring, problems))
}

/// What a reader key's slot seals (`key add --metadata-only` / `--summary-only`): needs the
/// full key, format version 2 and encryption.
pub fn bundle(repo: &Repository, level: Level) -> RepoResult<ReaderBundle> {
    let key = repo.key(&format!("make a {} key", level.name()))?;
    if repo.version() < 2 {
        return Err(RepoError::NeedsUpgrade { feature: "a reader key", version: repo.version() });
    }
    let config = repo.config();
    if config.encryption == EncryptionMode::AuthenticatedOnly {
        return Err(RepoError::Unsuitable(format!(
            "a {} key keeps contents from its holder, but this repository was made with `init --encryption none`: everything in it is stored in the clear",
            level.name()
        )));
    }
    let secret = match level {
        Level::Metadata => key.metadata_recipient(&config.repo_id),
        Level::Summary => key.summary_recipient(&config.repo_id),
    };
    Ok(ReaderBundle {
        version: 1,
        config: config.clone(),
        recipient_secret: ByteBuf::from(secret.to_bytes().to_vec()),
        recipient: ByteBuf::from(key.recipient(&config.repo_id).public().to_vec()),
        shared_key: (level == Level::Metadata).then(|| ByteBuf::from(key.shared_key(&config.repo_id).to_vec())),
    })
}

/// Make sure every class writes with a key that splits what it seals, so that what is
/// written from now on is readable to reader keys: a class whose writing key does not gets a
/// successor (a fresh data key with the same MAC key and chunker seed, so deduplication
/// carries on), which writers prefer from then on. Also stores the reader keys of split keys
/// that lack them. Returns the classes given a new key.
pub fn ensure_split_writers(repo: &Repository) -> RepoResult<Vec<String>> {
    store_missing_reader_keys(repo)?;
    let mut renewed = vec![];
    let classes: Vec<String> = std::iter::once(DEFAULT_CLASS.to_string()).chain(repo.keyring().classes()).collect();
    for class in classes {
        let writing = repo.writing_key(&class)?;
        if !writing.split {
            repo.store_content_key(&class, writing.key().with_fresh_data_key())?;
            renewed.push(class);
        }
    }
    // Keys that do not split seal nothing new from now on, and `key rotate --rewrite-only`
    // moves what they sealed to their successors.
    let old: Vec<_> = repo
        .keyring()
        .all()
        .into_iter()
        .filter(|k| !k.split && !k.retired && k.object.is_some() && k.role == KeyRole::Content && k.held() == Held::All)
        .collect();
    for k in old {
        repo.retire_key(&k)?;
    }
    Ok(renewed)
}

/// Store the reader-key objects every split key of the keyring should have and lacks (lost,
/// or dropped by a key import, which carries only the keys themselves); needs the full key.
/// Returns how many objects were stored.
pub fn store_missing_reader_keys(repo: &Repository) -> RepoResult<usize> {
    if repo.version() < 2 {
        return Ok(0);
    }
    let master = repo.key("store reader keys")?;
    let to = Recipients::of(master, repo.config());
    let ring: Vec<_> = repo.keyring().all();
    let split: Vec<&ContentKey> = ring.iter().map(|k| &**k).filter(|k| k.split && k.held() == Held::All).collect();
    store_missing(repo.storage(), repo.config(), &split, to)
}

/// Store the reader keys of those of `keys` that lack them (a run killed between storing a
/// key and its reader keys); returns how many objects were stored.
pub(crate) fn store_missing(
    storage: &dyn Storage,
    config: &Config,
    keys: &[&ContentKey],
    to: Recipients,
) -> RepoResult<usize> {
    let mut present = std::collections::HashSet::new();
    for (name, _) in storage.list(ObjectKind::Keyring)? {
        let Some(number) = arca_format::keyring::number_in_name(&name) else { continue };
        if keys.iter().any(|k| k.number == number) {
            match storage.get(ObjectKind::Keyring, &name) {
                Ok(bytes) => {
                    if let Some((env, _)) = envelope(&bytes) {
                        present.insert((number, env));
                    }
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut stored = 0;
    for k in keys {
        if present.contains(&(k.number, SEALED_TO_METADATA)) && present.contains(&(k.number, SEALED_TO_SUMMARY)) {
            continue;
        }
        for (name, bytes) in reader_key_objects(config, k, k.host.as_deref(), to)? {
            let env = envelope(&bytes).map(|(n, _)| n);
            if env.is_some_and(|e| !present.contains(&(k.number, e))) {
                storage.put(ObjectKind::Keyring, &name, &bytes)?;
                stored += 1;
            }
        }
    }
    Ok(stored)
}

/// Snapshot objects a reader key cannot open: sealed with a key that does not split (written
/// before reader keys existed, or by a backup-only key made before them).
pub fn unreadable_snapshots(repo: &Repository) -> RepoResult<usize> {
    let mut n = 0;
    for (name, _) in repo.storage().list(ObjectKind::Snapshot)? {
        match repo.storage().get(ObjectKind::Snapshot, &name) {
            Ok(bytes) if arca_format::snapshot::split_parts(&bytes).is_none() => n += 1,
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

/// A reader key just added.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AddedReader {
    pub id: String,
    pub role: &'static str,
    /// Classes given a writing key that splits what it seals (so what they write from now on
    /// is readable to reader keys).
    pub renewed_classes: Vec<String>,
    /// What was written before reader keys existed, which it cannot open until `key rotate
    /// --rewrite-only` re-encrypts it: snapshot objects, and packs (trees among them, which
    /// new snapshots of unchanged directories still refer to).
    pub unreadable_snapshots: usize,
    pub packs_to_rewrite: u64,
}

/// Add a reader key slot for `password` (`key add --metadata-only` / `--summary-only`):
/// first, under an exclusive lock, index and mark objects are sealed with the shared key
/// (a metadata key reads the index to find trees), every class is given a split writing key
/// and every split key its reader keys; then the slot is stored.
pub fn add(
    repo: &std::sync::Arc<Repository>,
    level: Level,
    password: &[u8],
    kdf: arca_format::KdfParams,
    origin: &crate::keys::Origin,
    label: &str,
) -> RepoResult<AddedReader> {
    let bundle = bundle(repo, level)?;
    let lock = crate::lock::SessionLock::acquire(repo, &format!("key add --{}", level.name()), true)?;
    repo.reseal_shared()?;
    let renewed_classes = ensure_split_writers(repo)?;
    drop(lock);
    let id = crate::keys::store_reader_slot(repo.storage(), &bundle, level, password, kdf, origin, label)?;
    let pending = crate::rotate::pending(repo, &crate::rotate::retired_keys(repo))?;
    Ok(AddedReader {
        id,
        role: level.name(),
        renewed_classes,
        unreadable_snapshots: unreadable_snapshots(repo)?,
        packs_to_rewrite: pending.packs,
    })
}
