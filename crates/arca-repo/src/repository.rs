//! Repository: open (unlock a key slot, read the authenticated config), load the index, and
//! read and write sealed objects and blobs.

use crate::index::{BlobLocation, Index};
use crate::index_cache::{Builder, Record, SortedIndex};
use crate::keyring::{self, ContentKey, Held, KeyRole, Keyring};
use crate::keys::{self, Origin, Unlocked};
use crate::{blob, RepoError, RepoResult};
use arca_chunker::Chunker;
use arca_crypto::{Cipher, MasterKey};
use arca_format::keyring::{envelope, envelope_prefix};
use arca_format::{
    decode, encode, BackupBundle, BlobKind, ChunkerParams, Config, ConfigFile, ContentKeyFile, EncryptionMode, Id,
    IndexFile, KdfParams, Tree, DEFAULT_CLASS, FORMAT_VERSION, FORMAT_VERSION_1, MASTER_KEY_NUMBER, SEALED_TO_METADATA,
    SEALED_TO_RECIPIENT, SEALED_TO_SUMMARY, SHARED_KEY_NUMBER,
};
use arca_storage::{ObjectKind, Storage};
use serde::{de::DeserializeOwned, Serialize};
use serde_bytes::ByteBuf;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Index objects not yet in the cache are kept in memory up to this many stored bytes (about
/// 100,000 blobs); past that the cache file is rebuilt.
const OVERLAY_MAX_BYTES: u64 = 8 << 20;

/// Associated data for each kind of sealed object, so one kind cannot pass for another.
pub(crate) fn object_ad(kind: ObjectKind) -> &'static [u8] {
    match kind {
        ObjectKind::Config => b"arca config v1",
        ObjectKind::Index => b"arca index v1",
        ObjectKind::Snapshot => b"arca snapshot v1",
        ObjectKind::Pack => b"arca pack header v1",
        ObjectKind::Key => b"arca key slot v1",
        ObjectKind::Lock => b"arca lock v1",
        ObjectKind::Mark => b"arca mark v1",
        ObjectKind::Parity => b"arca parity v1",
        ObjectKind::Received => b"arca received v1",
        // Statements are signed, not sealed; this seals the signer certificate inside them
        // (followed by the repository id, docs/FORMAT.md "History").
        ObjectKind::History => b"arca signer certificate v1",
        ObjectKind::Keyring => b"arca content key v2",
    }
}

/// Associated data of a sealed object in format version 2: the kind, the repository and the
/// key, so an object cannot pass for another kind's, another repository's, or one sealed with
/// another key (docs/FORMAT.md, "Sealing").
pub(crate) fn object_ad_v2(kind: ObjectKind, repo_id: &Id, key: u32) -> Vec<u8> {
    let label: &[u8] = match kind {
        ObjectKind::Config => b"arca config v2",
        ObjectKind::Index => b"arca index v2",
        ObjectKind::Snapshot => b"arca snapshot v2",
        ObjectKind::Pack => b"arca pack header v2",
        ObjectKind::Lock => b"arca lock v2",
        ObjectKind::Mark => b"arca mark v2",
        ObjectKind::Keyring => b"arca content key v2",
        // Key slots, signer certificates, parity and received records are as in version 1.
        other => object_ad(other),
    };
    [label, &repo_id.0[..], &key.to_le_bytes()[..]].concat()
}

/// Settings for a new repository.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub encryption: EncryptionMode,
    pub chunker: ChunkerParams,
    pub compression_level: i32,
    pub pack_size: u64,
    pub kdf: KdfParams,
    /// Reed-Solomon parity per pack in percent (0: none).
    pub parity_percent: u32,
    /// The format version to create (1 only for tests of upgrading and of old readers).
    pub version: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            encryption: EncryptionMode::Aes256GcmSiv,
            chunker: ChunkerParams::default(),
            compression_level: 3,
            pack_size: 16 * 1024 * 1024,
            kdf: KdfParams::default(),
            parity_percent: 0,
            version: FORMAT_VERSION,
        }
    }
}

/// What a backup-only session holds besides the shared key (docs/SECURITY.md).
struct BackupOnly {
    /// The only host its snapshots may name (`None`: any).
    host: Option<String>,
    /// The repository's recipient public key: the session key is sealed to it.
    recipient: [u8; 32],
    /// With `host`: the key proving the session key was made by a key bound to it.
    host_key: Option<[u8; 32]>,
    /// This session's own content key: everything it writes is sealed with it, and it is
    /// forgotten when the session ends.
    session: Arc<ContentKey>,
    /// Whether the session key's `keyring/` object is stored yet.
    stored: Mutex<bool>,
    /// Trees of this host's last snapshot and of this session (the send log).
    send_log: crate::sendlog::SendLog,
    /// Where the session key's reader keys are sealed to (`None`: a key made before reader
    /// keys existed, whose session keys do not split).
    readers: Option<crate::reader::Recipients>,
}

/// Which kind of key opened a repository.
enum Role {
    Full(MasterKey),
    BackupOnly(Box<BackupOnly>),
    Reader(crate::reader::Level),
}

/// An open repository: storage, key and config, and (after `load_index`) the index.
pub struct Repository {
    storage: Arc<dyn Storage>,
    config: Config,
    /// `None` for a backup-only key.
    key: Option<MasterKey>,
    cipher: Option<Cipher>,
    backup_only: Option<BackupOnly>,
    /// A metadata-only or summary-only key's session (docs/SECURITY.md): reads, never writes.
    reader: Option<crate::reader::Level>,
    key_slot: String,
    index: RwLock<Index>,
    /// Where the local index cache lives (`None`: keep the whole index in memory).
    cache_dir: Option<PathBuf>,
    /// Who signs this session's changes to `snapshots/` (`None`: they go unrecorded).
    signer: Option<Arc<crate::history::Signer>>,
    /// Where a backup-only key keeps its send logs (`None`: it reads every file each time).
    send_log_dir: Option<PathBuf>,
    /// The content keys (format version 1: the master key alone).
    keyring: RwLock<Keyring>,
    /// `keyring/` objects that could not be read (for `check` to report).
    keyring_problems: Vec<RepoError>,
    /// Trees read, kept when the repository is remote (see `treecache`).
    trees: crate::treecache::TreeCache,
    /// Set by check and repair: trees come from the storage, not from tree packs kept in the
    /// cache (which would hide a tree pack damaged on the storage).
    storage_trees_only: std::sync::atomic::AtomicBool,
    /// Tree packs being fetched whole into the cache.
    tree_pack_fetches: crate::treepacks::Fetches,
    /// A listing of `snapshots/` made when the session began, for the first reader of it.
    snapshot_listing: std::sync::Mutex<Option<Vec<(String, u64)>>>,
}

impl Repository {
    /// An open repository without its index, cache or signer yet.
    fn assemble(storage: Arc<dyn Storage>, config: Config, key: MasterKey, key_slot: String) -> Repository {
        let mut ring = Keyring::of_master(&key, config.encryption);
        if config.version >= 2 {
            let shared = ContentKey::shared(&key, &key.shared_key(&config.repo_id), config.encryption);
            // A fresh keyring cannot refuse a second key.
            let _ = ring.insert(shared);
        }
        Repository::from_parts(storage, config, Role::Full(key), key_slot, ring, vec![])
    }

    /// An open repository of a key of `role`, with its keyring, no index or cache yet.
    fn from_parts(
        storage: Arc<dyn Storage>,
        config: Config,
        role: Role,
        key_slot: String,
        ring: Keyring,
        keyring_problems: Vec<RepoError>,
    ) -> Repository {
        let (key, backup_only, reader) = match role {
            Role::Full(k) => (Some(k), None, None),
            Role::BackupOnly(b) => (None, Some(*b), None),
            Role::Reader(l) => (None, None, Some(l)),
        };
        Repository {
            storage,
            cipher: key.as_ref().map(|k| k.cipher(config.encryption)),
            key,
            backup_only,
            reader,
            key_slot,
            index: RwLock::new(Index::default()),
            cache_dir: None,
            signer: None,
            send_log_dir: None,
            keyring: RwLock::new(ring),
            keyring_problems,
            config,
            trees: Default::default(),
            storage_trees_only: Default::default(),
            tree_pack_fetches: Default::default(),
            snapshot_listing: Default::default(),
        }
    }

    /// Create a repository: fails if a config, or any other repository object, already
    /// exists (a repository whose config was lost must be repaired, not covered by a new
    /// config that its key slots do not open).
    pub fn init(storage: Arc<dyn Storage>, password: &[u8], opts: &InitOptions) -> RepoResult<Repository> {
        if storage.exists(ObjectKind::Config, "config")? {
            return Err(RepoError::AlreadyExists { location: storage.location() });
        }
        for kind in [ObjectKind::Key, ObjectKind::Snapshot, ObjectKind::Index, ObjectKind::Pack] {
            if !storage.list(kind)?.is_empty() {
                return Err(RepoError::DamagedRepositoryPresent { location: storage.location(), dir: kind.dir() });
            }
        }
        Chunker::new(opts.chunker.min_size as usize, opts.chunker.avg_size as usize, opts.chunker.max_size as usize, 1)
            .map_err(|e| RepoError::BadChunkerParams(e.to_string()))?;
        if !(FORMAT_VERSION_1..=FORMAT_VERSION).contains(&opts.version) {
            return Err(RepoError::UnsupportedVersion { found: opts.version, supported: FORMAT_VERSION });
        }
        let key = MasterKey::generate();
        let repo_id = Id(arca_crypto::random_bytes());
        let config = Config {
            version: opts.version,
            repo_id,
            chunker: opts.chunker,
            encryption: opts.encryption,
            compression_level: opts.compression_level,
            pack_size: opts.pack_size,
            parity_percent: opts.parity_percent,
        };
        // The key slot goes first: a config without a key would be an unopenable repository;
        // then (version 2) the default class's content key, which the config's readers need.
        let key_slot = keys::store_slot(&*storage, &key, password, opts.kdf, &Origin::current(), "")?;
        let bytes = config_bytes(&config, &key)?;
        let repo = Repository::assemble(storage, config, key.clone(), key_slot);
        if repo.version() >= 2 {
            repo.store_content_key(DEFAULT_CLASS, key.with_fresh_data_key())?;
        }
        repo.storage.put(ObjectKind::Config, "config", &bytes)?;
        Ok(repo)
    }

    /// Turn a version-1 repository into version 2 (`arca upgrade`): store the default class's
    /// content key (the same MAC key and chunker seed, so deduplication carries on; a new data
    /// key), then replace the config. A kill before the config is replaced leaves a version-1
    /// repository with an unused `keyring/` object, which the next upgrade takes up; after
    /// it, a version-2 repository. Nothing else is rewritten: version-1 objects stay readable
    /// with the master key. Returns false if the repository was version 2 already. This
    /// session keeps its version-1 view: open the repository again to write as version 2.
    pub fn upgrade(&self) -> RepoResult<bool> {
        if self.version() >= 2 {
            return Ok(false);
        }
        let (key, cipher) = (self.key("upgrade the repository")?, self.cipher("upgrade the repository")?);
        let mut v2 = self.config.clone();
        v2.version = FORMAT_VERSION;
        let (ring, _) = load_keyring(&*self.storage, key, &v2)?;
        let writing = match ring.writing(DEFAULT_CLASS) {
            Some(k) => k,
            None => {
                let number = ring.free_number();
                let fresh = key.with_fresh_data_key();
                let (name, bytes) = content_key_object(&v2, cipher, number, DEFAULT_CLASS, &fresh)?;
                self.storage.put(ObjectKind::Keyring, &name, &bytes)?;
                let mut k = ContentKey::stored(number, DEFAULT_CLASS, fresh, v2.encryption, &name);
                k.split = true;
                Arc::new(k)
            }
        };
        // Its reader keys (a rerun stores those a killed run did not).
        if writing.split {
            crate::reader::store_missing(&*self.storage, &v2, &[&writing], crate::reader::Recipients::of(key, &v2))?;
        }
        crate::failpoint::hit("upgrade-before-config");
        self.storage.put(ObjectKind::Config, "config", &config_bytes(&v2, key)?)?;
        Ok(true)
    }

    /// Open a repository with a password. Does not load the index.
    pub fn open(storage: Arc<dyn Storage>, password: &[u8]) -> RepoResult<Repository> {
        Opening::start(storage).unlock(password)
    }

    /// [`Repository::open`] from the first reads [`Opening::start`] began.
    fn open_from(opening: Opening, password: &[u8]) -> RepoResult<Repository> {
        let Opening { storage, config, slots, keyring } = opening;
        let bytes = match config {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                if !slots.get(|| keys::read_slots(&*storage))?.is_empty() {
                    return Err(RepoError::corrupt(
                        "config",
                        "missing, but key slots exist: the repository is damaged",
                    ));
                }
                return Err(RepoError::NoRepository { location: storage.location() });
            }
            Err(e) => return Err(e.into()),
        };
        let file = ConfigFile::from_bytes(&bytes).map_err(|e| RepoError::corrupt("config", e))?;
        if file.version > FORMAT_VERSION {
            return Err(RepoError::UnsupportedVersion { found: file.version, supported: FORMAT_VERSION });
        }
        // The slot whose key opens the config: after `key rotate` an old slot put back opens,
        // but its key no longer opens anything.
        let opens_config = |u: &Unlocked| match u {
            Unlocked::Full(k) => {
                k.cipher(file.encryption).open(&file.sealed, &config_ad(file.version, &file.repo_id), "config").is_ok()
            }
            Unlocked::BackupOnly(b) => {
                b.config.repo_id == file.repo_id
                    && b.config.version == file.version
                    && file.recipient.as_ref().is_none_or(|r| *r == b.recipient)
            }
            Unlocked::Reader(b, _) => {
                b.config.repo_id == file.repo_id
                    && b.config.version == file.version
                    && file.recipient.as_ref().is_none_or(|r| *r == b.recipient)
            }
        };
        let slots = slots.get(|| keys::read_slots(&*storage))?;
        let (key, key_slot) = match keys::unlock_slots(slots, &storage.location(), password, opens_config)? {
            (Unlocked::Full(key), slot) => (key, slot),
            (Unlocked::BackupOnly(bundle), slot) => return Repository::open_backup_only(storage, &file, *bundle, slot),
            (Unlocked::Reader(bundle, level), slot) => {
                return Repository::open_reader(storage, &file, *bundle, level, slot)
            }
        };
        let cipher = key.cipher(file.encryption);
        let body = cipher
            .open(&file.sealed, &config_ad(file.version, &file.repo_id), "config")
            .map_err(|e| RepoError::corrupt("config", e))?;
        let config: Config = decode("config", &body).map_err(|e| RepoError::corrupt("config", e))?;
        if config.version != file.version || config.repo_id != file.repo_id || config.encryption != file.encryption {
            return Err(RepoError::corrupt("config", "the plaintext envelope does not match the sealed body"));
        }
        if let Some(r) = &file.recipient {
            if r.as_slice() != key.recipient(&file.repo_id).public() {
                return Err(RepoError::corrupt("config", "the recipient key in its envelope is not this repository's"));
            }
        }
        let mut repo = Repository::assemble(storage, config, key.clone(), key_slot);
        if repo.version() >= 2 {
            let objects = keyring.get(|| read_keyring_objects(&*repo.storage))?;
            let (ring, problems) = load_keyring_from(objects, &key, &repo.config)?;
            if ring.writing(DEFAULT_CLASS).is_none() {
                let why = problems
                    .first()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "missing: no object in keyring/ holds it (deleted?)".into());
                return Err(RepoError::corrupt("keyring/", format!("the default class's content key is unusable ({why}); every object written since the repository became version 2 is sealed with it")));
            }
            *repo.keyring.get_mut().unwrap_or_else(|p| p.into_inner()) = ring;
            repo.keyring_problems = problems;
        }
        Ok(repo)
    }

    /// Open with a backup-only key: the config comes from its bundle (the stored one's body
    /// is sealed with the master key), checked against the stored envelope.
    fn open_backup_only(
        storage: Arc<dyn Storage>,
        file: &ConfigFile,
        bundle: BackupBundle,
        key_slot: String,
    ) -> RepoResult<Repository> {
        let config = bundle.config;
        if config.repo_id != file.repo_id || config.encryption != file.encryption || config.version != file.version {
            return Err(RepoError::corrupt(
                format!("key slot {key_slot}"),
                "this backup-only key was made for another repository, or before the repository changed format: make a new one with `arca key add --backup-only`",
            ));
        }
        let bad = |what: &str| RepoError::corrupt(format!("key slot {key_slot}"), format!("its {what} is malformed"));
        let template = MasterKey::from_secret(&bundle.template).ok_or_else(|| bad("class key"))?;
        let shared: [u8; 32] = bundle.shared_key.as_slice().try_into().map_err(|_| bad("shared key"))?;
        let recipient: [u8; 32] = bundle.recipient.as_slice().try_into().map_err(|_| bad("recipient key"))?;
        let host_key: Option<[u8; 32]> = match &bundle.host_key {
            Some(k) => Some(k.as_slice().try_into().map_err(|_| bad("host key"))?),
            None => None,
        };
        if bundle.host.is_some() != host_key.is_some() {
            return Err(bad("host binding"));
        }
        // Numbers other writers took are in the names of keyring objects (docs/FORMAT.md).
        let taken: HashSet<u32> = storage
            .list(ObjectKind::Keyring)?
            .iter()
            .filter_map(|(n, _)| arca_format::keyring::number_in_name(n))
            .collect();
        let number = keyring::free_number(|n| taken.contains(&n));
        let readers = match (&bundle.metadata_recipient, &bundle.summary_recipient) {
            (Some(m), Some(s)) => Some(crate::reader::Recipients {
                metadata: m.as_slice().try_into().map_err(|_| bad("metadata recipient key"))?,
                summary: s.as_slice().try_into().map_err(|_| bad("summary recipient key"))?,
            }),
            (None, None) => None,
            _ => return Err(bad("reader recipient keys")),
        };
        let mut session = ContentKey::new(
            number,
            DEFAULT_CLASS,
            KeyRole::Session,
            template.with_fresh_data_key(),
            config.encryption,
            None,
        );
        session.split = readers.is_some();
        let mut ring = Keyring::default();
        ring.insert(ContentKey::shared(&template, &shared, config.encryption))?;
        let session_in_ring = ring.insert(session)?;
        let role = Role::BackupOnly(Box::new(BackupOnly {
            host: bundle.host,
            recipient,
            host_key,
            session: session_in_ring,
            stored: Mutex::new(false),
            send_log: crate::sendlog::SendLog::default(),
            readers,
        }));
        Ok(Repository::from_parts(storage, config, role, key_slot, ring, vec![]))
    }

    /// Open with a metadata-only or summary-only key: the config from its bundle (checked
    /// against the stored envelope), and a keyring of the metadata (or summary) keys the
    /// bundle's recipient secret opens.
    fn open_reader(
        storage: Arc<dyn Storage>,
        file: &ConfigFile,
        bundle: arca_format::ReaderBundle,
        level: crate::reader::Level,
        key_slot: String,
    ) -> RepoResult<Repository> {
        let config = bundle.config;
        let bad = |what: &str| RepoError::corrupt(format!("key slot {key_slot}"), format!("its {what} is malformed"));
        if config.repo_id != file.repo_id || config.encryption != file.encryption || config.version != file.version {
            return Err(RepoError::corrupt(
                format!("key slot {key_slot}"),
                "this reader key was made for another repository, or before the repository changed format",
            ));
        }
        if bundle.version != 1 {
            return Err(RepoError::corrupt(
                format!("key slot {key_slot}"),
                format!("its reader key is of version {}, which this arca does not know", bundle.version),
            ));
        }
        let secret: [u8; 32] = bundle.recipient_secret.as_slice().try_into().map_err(|_| bad("recipient secret"))?;
        let secret = arca_crypto::recipient::RecipientSecret::from_bytes(secret);
        let shared: Option<[u8; 32]> = match &bundle.shared_key {
            Some(k) => Some(k.as_slice().try_into().map_err(|_| bad("shared key"))?),
            None => None,
        };
        let (ring, problems) = crate::reader::load_keyring(&*storage, level, &secret, shared.as_ref(), &config)?;
        Ok(Repository::from_parts(storage, config, Role::Reader(level), key_slot, ring, problems))
    }

    /// The kind of reader key this session holds (`None`: a full or backup-only key).
    pub fn reader_level(&self) -> Option<crate::reader::Level> {
        self.reader
    }

    /// Refuse `action` with a reader key, which writes nothing.
    pub fn require_writer(&self, action: &str) -> RepoResult<()> {
        match self.reader {
            Some(level) => Err(self.reader_refusal(level, action)),
            None => Ok(()),
        }
    }

    /// A reader key's refusal of `what`, sealed with a key that shares nothing with reader
    /// keys.
    fn written_before_readers(&self, level: crate::reader::Level, what: &str) -> RepoError {
        self.reader_refusal(
            level,
            &format!("open {what} (its key shares nothing with reader keys: it was written before they existed, or by a backup-only key made before them; a full key's `arca key rotate --rewrite` re-encrypts it)"),
        )
    }

    /// Refuse `action` with a summary-only key, which reads no tree (its snapshots carry the
    /// all-zero tree id, which must not pass for a real one).
    pub fn require_trees(&self, action: &str) -> RepoResult<()> {
        match self.reader {
            Some(level @ crate::reader::Level::Summary) => Err(self.reader_refusal(level, action)),
            _ => Ok(()),
        }
    }

    fn reader_refusal(&self, level: crate::reader::Level, action: &str) -> RepoError {
        RepoError::ReaderKey {
            slot: self.key_slot.clone(),
            role: level.name(),
            can: level.can(),
            action: action.into(),
        }
    }

    /// True if this session holds a backup-only key.
    pub fn is_backup_only(&self) -> bool {
        self.backup_only.is_some()
    }

    /// The host a backup-only key is bound to, if it is.
    pub fn backup_only_host(&self) -> Option<&str> {
        self.backup_only.as_ref().and_then(|b| b.host.as_deref())
    }

    /// Refuse `action` ("restore", "list snapshots", ...) with a backup-only key.
    pub fn require_full(&self, action: &str) -> RepoResult<()> {
        self.require_writer(action)?;
        match self.backup_only {
            Some(_) => Err(RepoError::BackupOnly { slot: self.key_slot.clone(), action: action.to_string() }),
            None => Ok(()),
        }
    }

    /// The send log of a backup-only session (`None` with a full key).
    pub fn send_log(&self) -> Option<&crate::sendlog::SendLog> {
        self.backup_only.as_ref().map(|b| &b.send_log)
    }

    /// Store a backup-only session's content key, sealed to the repository's recipient key,
    /// before anything sealed with it is stored. Once per session; the key itself is never
    /// written anywhere this key could read it back.
    pub fn store_session_key(&self) -> RepoResult<()> {
        let Some(b) = &self.backup_only else { return Ok(()) };
        let mut stored = b.stored.lock().unwrap_or_else(|p| p.into_inner());
        if *stored {
            return Ok(());
        }
        let host = b.host.as_deref().zip(b.host_key.as_ref());
        if let Some(to) = b.readers {
            for (name, bytes) in crate::reader::reader_key_objects(&self.config, &b.session, b.host.as_deref(), to)? {
                self.storage.put(ObjectKind::Keyring, &name, &bytes)?;
            }
        }
        let file = session_key_file(&b.session, host);
        let (name, bytes) = session_key_object(&self.config, &b.recipient, &file)?;
        self.storage.put(ObjectKind::Keyring, &name, &bytes)?;
        *stored = true;
        Ok(())
    }

    /// What a backup-only key slot seals for this repository (`key add --backup-only`):
    /// needs the full key, format version 2 and encryption.
    pub fn backup_bundle(&self, host: Option<String>) -> RepoResult<BackupBundle> {
        let key = self.key("make a backup-only key")?;
        if self.version() < 2 {
            return Err(RepoError::NeedsUpgrade { feature: "a backup-only key", version: self.version() });
        }
        if self.config.encryption == EncryptionMode::AuthenticatedOnly {
            return Err(RepoError::Unsuitable(
                "a backup-only key keeps contents from its holder, but this repository was made with `init --encryption none`: its contents are stored in the clear".into(),
            ));
        }
        let template = self.writing_key(DEFAULT_CLASS)?.key().without_data_key();
        let host_key = host.as_ref().map(|h| ByteBuf::from(key.host_key(&self.config.repo_id, h).to_vec()));
        Ok(BackupBundle {
            host_key,
            version: 1,
            host,
            config: self.config.clone(),
            template: ByteBuf::from(template.to_secret().to_vec()),
            shared_key: ByteBuf::from(key.shared_key(&self.config.repo_id).to_vec()),
            recipient: ByteBuf::from(key.recipient(&self.config.repo_id).public().to_vec()),
            metadata_recipient: Some(ByteBuf::from(key.metadata_recipient(&self.config.repo_id).public().to_vec())),
            summary_recipient: Some(ByteBuf::from(key.summary_recipient(&self.config.repo_id).public().to_vec())),
        })
    }

    /// Seal every index and mark object that is not sealed with the shared key again with it,
    /// so backup-only keys can read them (`key add --backup-only`, under an exclusive lock:
    /// a prune rewriting the index meanwhile could otherwise see a resealed object escape what
    /// it supersedes). Index objects another one supersedes are deleted, not resealed (a
    /// resealed copy would have a new name and be superseded no more). Returns how many
    /// objects were resealed. A kill leaves both copies of one object, which read the same.
    pub fn reseal_shared(&self) -> RepoResult<usize> {
        self.require_full("reseal the index")?;
        if self.version() < 2 {
            return Ok(0);
        }
        let mut count = 0;
        let unshared = |name: &str| -> RepoResult<Option<Vec<u8>>> {
            let bytes = self.storage.get(ObjectKind::Index, name)?;
            Ok((envelope(&bytes).map(|(n, _)| n) != Some(SHARED_KEY_NUMBER)).then_some(bytes))
        };
        let listed = self.storage.list(ObjectKind::Index)?;
        let mut files = vec![];
        for (name, _) in &listed {
            let Some(bytes) = unshared(name)? else { continue };
            let f: IndexFile = self.open_object(ObjectKind::Index, name, &bytes)?;
            files.push((name.clone(), f));
        }
        let mut superseded: HashSet<String> = HashSet::new();
        for (name, _) in &listed {
            let Ok(f) = self.load_object::<IndexFile>(ObjectKind::Index, name) else { continue };
            superseded.extend(f.supersedes.iter().map(|i| i.to_hex()));
        }
        for (name, f) in files {
            if !superseded.contains(&name) {
                self.save_object(ObjectKind::Index, &f)?;
                count += 1;
            }
            self.storage.delete(ObjectKind::Index, &name)?;
        }
        for (name, _) in self.storage.list(ObjectKind::Mark)? {
            let bytes = self.storage.get(ObjectKind::Mark, &name)?;
            if envelope(&bytes).map(|(n, _)| n) == Some(SHARED_KEY_NUMBER) {
                continue;
            }
            let m: arca_format::MarkFile = self.open_object(ObjectKind::Mark, &name, &bytes)?;
            self.save_object(ObjectKind::Mark, &m)?;
            self.storage.delete(ObjectKind::Mark, &name)?;
            count += 1;
        }
        Ok(count)
    }

    /// The backend.
    /// True if the repository is behind a network (its location is a URL): each request
    /// waits a round trip, so walks read ahead and restores fetch several blobs at once.
    pub fn is_remote(&self) -> bool {
        self.storage.location().contains("://")
    }

    pub fn storage(&self) -> &dyn Storage {
        &*self.storage
    }

    /// The authenticated settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The master key (format version 1 seals everything with it; version 2 only the config,
    /// the keyring and objects written before the upgrade). Refused to a backup-only key,
    /// naming `action`.
    pub fn key(&self, action: &str) -> RepoResult<&MasterKey> {
        self.require_full(action)?;
        self.key.as_ref().ok_or(RepoError::Internal("a full key without its master key"))
    }

    /// The master key's cipher.
    pub fn cipher(&self, action: &str) -> RepoResult<&Cipher> {
        self.require_full(action)?;
        self.cipher.as_ref().ok_or(RepoError::Internal("a full key without its master key"))
    }

    /// The repository's format version.
    pub fn version(&self) -> u32 {
        self.config.version
    }

    /// The content keys.
    pub fn keyring(&self) -> RwLockReadGuard<'_, Keyring> {
        self.keyring.read().unwrap_or_else(|p| p.into_inner())
    }

    /// `keyring/` objects that could not be read when the repository was opened.
    pub fn keyring_problems(&self) -> &[RepoError] {
        &self.keyring_problems
    }

    /// Content key `number`; `what` names the object that needs it, for the error.
    pub fn content_key(&self, number: u32, what: impl FnOnce() -> String) -> RepoResult<Arc<ContentKey>> {
        if let Some(k) = self.keyring().get(number) {
            return Ok(k);
        }
        if let Some(level) = self.reader {
            return Err(self.written_before_readers(level, &what()));
        }
        match self.backup_only {
            Some(_) => Err(RepoError::BackupOnly { slot: self.key_slot.clone(), action: format!("open {}", what()) }),
            None => Err(RepoError::Shredded { what: what(), number }),
        }
    }

    /// The key that new data and objects of `class` are sealed with (`""`: the default
    /// class). A named class must exist already: see [`Repository::create_class`].
    pub fn writing_key(&self, class: &str) -> RepoResult<Arc<ContentKey>> {
        if let Some(b) = &self.backup_only {
            if class != DEFAULT_CLASS {
                self.require_full("write into a class (backup --class)")?;
            }
            return Ok(b.session.clone());
        }
        if self.version() < 2 {
            if class != DEFAULT_CLASS {
                return Err(RepoError::NeedsUpgrade { feature: "a class (backup --class)", version: self.version() });
            }
            return self.content_key(MASTER_KEY_NUMBER, || "this repository".into());
        }
        self.keyring().writing(class).ok_or(RepoError::Class(class.into(), "no such class in this repository"))
    }

    /// The default class's writing key (the master key in a version-1 repository; `open`
    /// made sure a version-2 repository has one).
    pub fn default_key(&self) -> Arc<ContentKey> {
        if let Some(b) = &self.backup_only {
            return b.session.clone();
        }
        let ring = self.keyring();
        let key = if self.version() >= 2 { ring.writing(DEFAULT_CLASS) } else { None };
        key.or_else(|| ring.get(MASTER_KEY_NUMBER))
            .unwrap_or_else(|| Arc::new(ContentKey::unsaved(DEFAULT_CLASS, self.config.encryption)))
    }

    /// The writing key of `class`, creating the class (a new, random content key) if it has
    /// none. Needs format version 2.
    pub fn create_class(&self, class: &str) -> RepoResult<Arc<ContentKey>> {
        if self.version() < 2 {
            return Err(RepoError::NeedsUpgrade { feature: "a class (backup --class)", version: self.version() });
        }
        self.require_full("write into a class (backup --class)")?;
        keyring::validate_class(class).map_err(|why| RepoError::Class(class.into(), why))?;
        if self.config.encryption == EncryptionMode::AuthenticatedOnly {
            return Err(RepoError::Class(
                class.into(),
                "a class is shredded by deleting its keys, which hides nothing in a repository made with `init --encryption none`",
            ));
        }
        if let Some(k) = self.keyring().writing(class) {
            return Ok(k);
        }
        self.store_content_key(class, MasterKey::generate())
    }

    /// Store a new content key of `class` in `keyring/`, with its reader keys (it splits
    /// what it seals), and add it to the keyring.
    pub(crate) fn store_content_key(&self, class: &str, key: MasterKey) -> RepoResult<Arc<ContentKey>> {
        let number = self.keyring().free_number();
        let master = self.key("make a content key")?;
        let (name, bytes) = content_key_object(&self.config, self.cipher("make a content key")?, number, class, &key)?;
        let mut k = ContentKey::stored(number, class, key, self.config.encryption, &name);
        k.split = true;
        // Its reader keys first: a kill before the key itself leaves them naming no key (a
        // note in `check`), never a key reader keys cannot follow.
        let to = crate::reader::Recipients::of(master, &self.config);
        for (name, bytes) in crate::reader::reader_key_objects(&self.config, &k, None, to)? {
            self.storage.put(ObjectKind::Keyring, &name, &bytes)?;
        }
        self.storage.put(ObjectKind::Keyring, &name, &bytes)?;
        self.keyring.write().unwrap_or_else(|p| p.into_inner()).insert(k)
    }

    /// Mark content key `k` retired: it opens what it sealed and seals nothing new. A new
    /// keyring object holding it retired is stored, then the old one deleted (a kill in
    /// between leaves both, which read as retired).
    pub(crate) fn retire_key(&self, k: &ContentKey) -> RepoResult<()> {
        let Some(old) = &k.object else { return Err(RepoError::Internal("retiring a key that is stored nowhere")) };
        let file = ContentKeyFile {
            number: k.number,
            class: k.class.clone(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            secret: ByteBuf::from(k.key().to_secret().to_vec()),
            host: None,
            host_proof: None,
            retired: true,
            split: k.split,
        };
        let (name, bytes) = master_sealed_key_object(&self.config, self.cipher("retire a key")?, &file)?;
        self.storage.put(ObjectKind::Keyring, &name, &bytes)?;
        self.storage.delete(ObjectKind::Keyring, old)?;
        let mut retired = keyring::from_file(file, self.config.encryption, &name, KeyRole::Content)?;
        retired.retired = true;
        self.keyring.write().unwrap_or_else(|p| p.into_inner()).insert(retired)?;
        Ok(())
    }

    /// Forget the keys of `class` in this session (after `key destroy-class` deleted them).
    pub(crate) fn forget_class(&self, class: &str) {
        self.keyring.write().unwrap_or_else(|p| p.into_inner()).remove_class(class);
    }

    /// Seal `plain` as an object of `kind` with `key`: version 1's form (nonce first) with
    /// the master key of a version-1 repository, else version 2's envelope.
    pub(crate) fn seal_with(&self, key: &ContentKey, kind: ObjectKind, plain: &[u8]) -> Vec<u8> {
        if self.version() < 2 {
            return key.cipher().seal(plain, object_ad(kind));
        }
        let ad = object_ad_v2(kind, &self.config.repo_id, key.number);
        let mut out = envelope_prefix(key.number).to_vec();
        out.extend_from_slice(&key.cipher().seal(plain, &ad));
        out
    }

    /// Seal an object of `kind`: index, lock and mark objects with the shared key (format
    /// version 2), the rest with the default class's key.
    pub fn seal_object_bytes(&self, kind: ObjectKind, plain: &[u8]) -> RepoResult<Vec<u8>> {
        self.require_writer(&format!("write {}", kind_label(kind)))?;
        if self.version() >= 2 && matches!(kind, ObjectKind::Index | ObjectKind::Lock | ObjectKind::Mark) {
            let shared = self.content_key(SHARED_KEY_NUMBER, || "the shared key".into())?;
            return Ok(self.seal_with(&shared, kind, plain));
        }
        let key = self.default_key();
        if key.role == KeyRole::Session {
            self.store_session_key()?;
        }
        if kind == ObjectKind::Snapshot && key.split && self.version() >= 2 {
            return self.seal_split_snapshot(&key, plain);
        }
        if kind == ObjectKind::History && key.split && self.version() >= 2 {
            // Signer certificates (host, user, public key) with the summary key: every
            // reader key can tell who signed what.
            let cipher = key.summary_cipher().ok_or(RepoError::Internal("a split key without its summary key"))?;
            let mut out = envelope_prefix(key.number).to_vec();
            out.extend_from_slice(&cipher.seal(plain, &object_ad_v2(kind, &self.config.repo_id, key.number)));
            return Ok(out);
        }
        Ok(self.seal_with(&key, kind, plain))
    }

    /// A snapshot object in the split form (docs/FORMAT.md, "Snapshots"): its body sealed
    /// with `key`'s metadata key, its digest with its summary key, the digest's associated
    /// data binding it to the sealed body.
    fn seal_split_snapshot(&self, key: &ContentKey, plain: &[u8]) -> RepoResult<Vec<u8>> {
        let snapshot: arca_format::Snapshot = decode("snapshot", plain)?;
        let (Some(meta), Some(summary)) = (key.metadata_cipher(), key.summary_cipher()) else {
            return Err(RepoError::Internal("a split key without its metadata or summary key"));
        };
        let body = meta.seal(plain, &object_ad_v2(ObjectKind::Snapshot, &self.config.repo_id, key.number));
        let digest = encode("snapshot digest", &arca_format::SnapshotDigest::of(&snapshot))?;
        let digest = summary.seal(&digest, &digest_ad(&self.config.repo_id, key.number, &body));
        Ok(arca_format::snapshot::split_bytes(key.number, &digest, &body))
    }

    /// A snapshot object in the split form, opened: the body with a key that has it (full
    /// and metadata-only keys), else the digest as a snapshot without paths or tree
    /// (summary-only keys).
    fn open_split_snapshot(
        &self,
        number: u32,
        digest: &[u8],
        body: &[u8],
        what: &dyn Fn() -> String,
    ) -> RepoResult<Vec<u8>> {
        let key = self.content_key(number, what)?;
        if let Some(meta) = key.metadata_cipher() {
            return meta
                .open(body, &object_ad_v2(ObjectKind::Snapshot, &self.config.repo_id, number), "snapshot")
                .map_err(|e| RepoError::corrupt(what(), e));
        }
        let d = self.open_digest(&key, digest, body, what)?;
        Ok(encode("snapshot", &d.to_snapshot())?)
    }

    fn open_digest(
        &self,
        key: &ContentKey,
        digest: &[u8],
        body: &[u8],
        what: &dyn Fn() -> String,
    ) -> RepoResult<arca_format::SnapshotDigest> {
        let cipher = key.summary_cipher().ok_or_else(|| RepoError::corrupt(what(), "its key has no summary key"))?;
        let plain = cipher
            .open(digest, &digest_ad(&self.config.repo_id, key.number, body), "snapshot digest")
            .map_err(|e| RepoError::corrupt(what(), e))?;
        decode("snapshot digest", &plain).map_err(|e| RepoError::corrupt(what(), e))
    }

    /// The digest of a stored snapshot object (`None` for one not in the split form), for
    /// `check` to compare with its body.
    pub fn snapshot_digest(
        &self,
        bytes: &[u8],
        what: &dyn Fn() -> String,
    ) -> RepoResult<Option<arca_format::SnapshotDigest>> {
        let Some((number, digest, body)) = arca_format::snapshot::split_parts(bytes) else { return Ok(None) };
        let key = self.content_key(number, what)?;
        self.open_digest(&key, digest, body, what).map(Some)
    }

    /// Open a sealed object of `kind` (either form; version 1's with the master key).
    pub fn open_object_bytes(&self, kind: ObjectKind, bytes: &[u8], what: impl Fn() -> String) -> RepoResult<Vec<u8>> {
        if kind == ObjectKind::Snapshot && self.version() >= 2 {
            if let Some((number, digest, body)) = arca_format::snapshot::split_parts(bytes) {
                return self.open_split_snapshot(number, digest, body, &what);
            }
        }
        match envelope(bytes) {
            Some((number, sealed)) if self.version() >= 2 => {
                let key = self.content_key(number, &what)?;
                if kind == ObjectKind::History && key.split {
                    let cipher = key.summary_cipher().ok_or_else(|| RepoError::corrupt(what(), "no summary key"))?;
                    return cipher
                        .open(sealed, &object_ad_v2(kind, &self.config.repo_id, number), "object")
                        .map_err(|e| RepoError::corrupt(what(), e));
                }
                if key.held() != Held::All {
                    let level = self.reader.ok_or(RepoError::Internal("a part of a key outside a reader session"))?;
                    return Err(self.reader_refusal(level, &format!("open {} (sealed with a data key)", what())));
                }
                key.cipher()
                    .open(sealed, &object_ad_v2(kind, &self.config.repo_id, number), "object")
                    .map_err(|e| RepoError::corrupt(what(), e))
            }
            // Key 0: the master key, or after `key rotate` the one from before the first
            // rotation, kept in the keyring.
            _ => {
                if let Some(level) = self.reader {
                    return Err(self.written_before_readers(level, &what()));
                }
                self.require_full(&format!("open {}", what()))?;
                self.content_key(MASTER_KEY_NUMBER, &what)?
                    .cipher()
                    .open(bytes, object_ad(kind), "object")
                    .map_err(|e| RepoError::corrupt(what(), e))
            }
        }
    }

    /// The associated data of a pack header sealed with key `key` into `sealed_len` bytes:
    /// version 2 binds the repository, the key number and the length the trailer states.
    pub(crate) fn pack_header_ad(&self, key: u32, sealed_len: usize) -> Vec<u8> {
        if key == MASTER_KEY_NUMBER {
            return object_ad(ObjectKind::Pack).to_vec();
        }
        let mut ad = object_ad_v2(ObjectKind::Pack, &self.config.repo_id, key);
        ad.extend_from_slice(&(sealed_len as u32).to_le_bytes());
        ad
    }

    /// The key slot this repository was opened with.
    pub fn key_slot(&self) -> &str {
        &self.key_slot
    }

    /// A chunker with this repository's parameters and the default class's secret seed.
    pub fn chunker(&self) -> RepoResult<Chunker> {
        self.chunker_for(&*self.writing_key(DEFAULT_CLASS)?)
    }

    /// A chunker with this repository's parameters and `key`'s secret seed.
    pub fn chunker_for(&self, key: &ContentKey) -> RepoResult<Chunker> {
        let c = self.config.chunker;
        Chunker::new(c.min_size as usize, c.avg_size as usize, c.max_size as usize, key.key().chunker_seed())
            .map_err(|e| RepoError::corrupt("config", e))
    }

    /// The index, for reading.
    pub fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The index, for adding packs.
    pub(crate) fn index_mut(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Seal a structure as an object of `kind`; returns the name (BLAKE3 of the stored bytes).
    pub fn save_object<T: Serialize>(&self, kind: ObjectKind, value: &T) -> RepoResult<Id> {
        let plain = encode("object", value)?;
        let sealed = self.seal_object_bytes(kind, &plain)?;
        let id = Id::of_bytes(&sealed);
        self.storage.put(kind, &id.to_hex(), &sealed)?;
        if kind == ObjectKind::Snapshot {
            self.snapshots_changed();
            if let Some(cache) = &self.cache_dir {
                // The next listing finds it there (`snapshots::list_all`), not over the network.
                crate::snapshots::cache_object(cache, &id.to_hex(), &sealed);
            }
        }
        Ok(id)
    }

    /// Seal a structure under the name that is the BLAKE3 of `proof` (locks), replacing any
    /// object of that name; see [`Storage::put_owned`].
    pub fn save_owned_object<T: Serialize>(&self, kind: ObjectKind, proof: &[u8], value: &T) -> RepoResult<()> {
        let plain = encode("object", value)?;
        let sealed = self.seal_object_bytes(kind, &plain)?;
        let name = blake3::hash(proof).to_hex();
        Ok(self.storage.put_owned(kind, name.as_str(), &sealed, proof)?)
    }

    /// Read and open an object stored with [`Repository::save_owned_object`].
    pub fn load_named_object<T: DeserializeOwned>(&self, kind: ObjectKind, name: &str) -> RepoResult<T> {
        self.open_named_object(kind, name, &self.storage.get(kind, name)?)
    }

    /// Open `bytes`, read as the object `name` stored with [`Repository::save_owned_object`].
    pub fn open_named_object<T: DeserializeOwned>(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> RepoResult<T> {
        let what = || format!("{kind} {name}");
        let plain = self.open_object_bytes(kind, bytes, what)?;
        decode(kind_label(kind), &plain).map_err(|e| RepoError::corrupt(what(), e))
    }

    /// Read, verify and open an object of `kind` by name.
    pub fn load_object<T: DeserializeOwned>(&self, kind: ObjectKind, name: &str) -> RepoResult<T> {
        let bytes = self.storage.get(kind, name)?;
        self.open_object(kind, name, &bytes)
    }

    /// Verify and open stored bytes of an object of `kind` named `name`.
    pub fn open_object<T: DeserializeOwned>(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> RepoResult<T> {
        let what = || format!("{kind} {name}");
        if Id::of_bytes(bytes).to_hex() != name {
            return Err(RepoError::corrupt(
                what(),
                "contents do not match the object name (damaged, or another object's bytes put in its place)",
            ));
        }
        let plain = self.open_object_bytes(kind, bytes, what)?;
        decode(kind_label(kind), &plain).map_err(|e| RepoError::corrupt(what(), e))
    }

    /// Keep the index in a memory-mapped cache under `dir` (see `index_cache`), so RAM does
    /// not grow with the repository. Call before [`Repository::load_index`].
    pub fn set_cache_dir(&mut self, dir: PathBuf) {
        self.cache_dir = Some(dir);
    }

    /// The local cache directory, if the session has one.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache_dir.as_deref()
    }

    /// Sign the changes this session makes to `snapshots/` (docs/FORMAT.md, "History").
    pub fn set_signer(&mut self, signer: Arc<crate::history::Signer>) {
        self.signer = Some(signer);
    }

    /// Keep a backup-only key's send logs under `dir` (docs/SECURITY.md).
    pub fn set_send_log_dir(&mut self, dir: PathBuf) {
        self.send_log_dir = Some(dir);
    }

    /// Where send logs are kept, if anywhere.
    pub fn send_log_dir(&self) -> Option<&Path> {
        self.send_log_dir.as_deref()
    }

    /// The session's signer, if it has one.
    pub fn signer(&self) -> Option<&crate::history::Signer> {
        self.signer.as_deref()
    }

    /// Load every index object that no other one supersedes, then the packs that prunes have
    /// marked (readable, never deduplicated against). Damaged objects are returned as errors
    /// and skipped, so the caller can warn and go on with what is readable.
    pub fn load_index(&self) -> RepoResult<Vec<RepoError>> {
        if self.reader == Some(crate::reader::Level::Summary) {
            // It holds no key to the index, and lists snapshots without it.
            return Ok(vec![]);
        }
        let mut listed = self.storage.list(ObjectKind::Index)?;
        listed.sort();
        // The marks are listed while the index objects are read (a round trip saved on a
        // remote repository), still after the index is listed: a prune writes its mark before
        // the index that drops the marked packs, so an index listing that sees the new index is
        // followed by a mark listing that sees the mark.
        let marks = {
            let storage = self.storage.clone();
            Ahead::start(self.is_remote(), move || storage.list(ObjectKind::Mark))
        };
        let mut problems = vec![];
        let memo_path = self.cache_dir.as_ref().map(|d| d.join("supersedes-memo.txt"));
        let mut memo = memo_path.as_deref().map(read_supersedes_memo).unwrap_or_default();
        // Objects not in the memo are decoded now; small ones are kept for the overlay.
        let mut decoded: HashMap<Id, IndexFile> = HashMap::new();
        let mut kept_bytes = 0u64;
        let mut memo_grew = false;
        let unknown: Vec<(&String, &u64, Id)> = listed
            .iter()
            .filter_map(|(name, size)| {
                Id::from_hex(name).filter(|id| !memo.contains_key(id)).map(|id| (name, size, id))
            })
            .collect();
        // Fetched several at once on a remote repository (one index object per backup: a
        // round trip each), decoded in order; a window at a time bounds the memory. Locally
        // one at a time: only one object's bytes are held.
        let window = if self.is_remote() { arca_storage::REMOTE_AT_ONCE } else { 1 };
        for window in unknown.chunks(window) {
            let names: Vec<String> = window.iter().map(|(n, _, _)| (*n).clone()).collect();
            let fetched = arca_storage::get_many(self.storage.as_ref(), ObjectKind::Index, &names);
            for ((name, size, id), bytes) in window.iter().zip(fetched) {
                let (name, size, id) = (*name, *size, *id);
                let loaded = bytes
                    .map_err(RepoError::from)
                    .and_then(|b| self.open_object::<IndexFile>(ObjectKind::Index, name, &b));
                match loaded {
                    Ok(f) => {
                        memo.insert(id, f.supersedes.clone());
                        memo_grew = true;
                        if self.cache_dir.is_none() || kept_bytes + size <= OVERLAY_MAX_BYTES {
                            kept_bytes += size;
                            decoded.insert(id, f);
                        }
                    }
                    Err(e) => problems.push(e),
                }
            }
        }
        if let (Some(path), true) = (&memo_path, memo_grew) {
            write_supersedes_memo(path, &memo);
        }
        let present: HashSet<Id> = listed.iter().filter_map(|(n, _)| Id::from_hex(n)).collect();
        let superseded: HashSet<Id> = present.iter().filter_map(|id| memo.get(id)).flatten().copied().collect();
        let effective: Vec<(String, u64)> = listed
            .into_iter()
            .filter(|(n, _)| Id::from_hex(n).is_some_and(|id| memo.contains_key(&id) && !superseded.contains(&id)))
            .collect();
        let result = match self.cache_dir.clone() {
            None => self.load_index_into_map(&effective, &mut decoded),
            Some(dir) => match self.load_index_cached(&dir, &effective, &mut decoded) {
                Err(RepoError::Cache(e)) => {
                    tracing::warn!("index cache in {} unusable ({e}); keeping the index in memory", dir.display());
                    self.load_index_into_map(&effective, &mut decoded)
                }
                r => r,
            },
        };
        problems.extend(result?);
        let marks = marks.get(|| self.storage.list(ObjectKind::Mark))?;
        problems.extend(self.load_marks(marks)?);
        if let Some(cache) = self.kept_tree_packs() {
            if crate::treepacks::any(cache) {
                let live: HashSet<Id> = self.index().packs().into_iter().map(|(id, _)| id).collect();
                crate::treepacks::sweep(cache, &live);
            }
        }
        Ok(problems)
    }

    /// Add the packs of every mark to the index as marked packs.
    fn load_marks(&self, listed: Vec<(String, u64)>) -> RepoResult<Vec<RepoError>> {
        let mut problems = vec![];
        let mut ix = self.index_mut();
        for (name, _) in listed {
            match self.load_object::<arca_format::MarkFile>(ObjectKind::Mark, &name) {
                Ok(m) => m.packs.iter().for_each(|p| ix.add_retired_pack(p)),
                Err(RepoError::Storage(e)) if e.is_not_found() => {} // swept meanwhile
                // A mark names packs a prune is deleting: a writer that cannot read one could
                // deduplicate against them and lose data. A full key's backup goes on (its
                // check of the commit catches it); a backup-only one stops here.
                Err(e) if self.is_backup_only() => {
                    return Err(RepoError::corrupt(
                        format!("mark {name}"),
                        format!("{e}; a backup-only key must read every mark: run `arca key add --backup-only` with a full key once more, which seals the index and marks again with the shared key"),
                    ))
                }
                Err(e) => problems.push(e),
            }
        }
        Ok(problems)
    }

    fn load_index_into_map(
        &self,
        listed: &[(String, u64)],
        decoded: &mut HashMap<Id, IndexFile>,
    ) -> RepoResult<Vec<RepoError>> {
        let mut problems = vec![];
        let mut ix = Index::default();
        for (name, _) in listed {
            let Some(id) = Id::from_hex(name) else { continue };
            match decoded.remove(&id).map(Ok).unwrap_or_else(|| self.load_object::<IndexFile>(ObjectKind::Index, name))
            {
                Ok(f) => {
                    f.packs.iter().for_each(|p| ix.add_pack(p));
                    ix.files.push(id);
                }
                Err(e) => problems.push(e),
            }
        }
        *self.index_mut() = ix;
        Ok(problems)
    }

    /// Open the cache built from exactly these index objects; or one built from a subset plus
    /// the missing objects in memory if they are small; or build a new one (bounded memory).
    fn load_index_cached(
        &self,
        dir: &Path,
        listed: &[(String, u64)],
        decoded: &mut HashMap<Id, IndexFile>,
    ) -> RepoResult<Vec<RepoError>> {
        let cache_err = RepoError::Cache;
        let ids: Vec<Id> = listed.iter().filter_map(|(n, _)| Id::from_hex(n)).collect();
        let sizes: HashMap<Id, u64> = listed.iter().filter_map(|(n, s)| Some((Id::from_hex(n)?, *s))).collect();
        let mut key = blake3::Hasher::new();
        for id in &ids {
            key.update(&id.0);
        }
        let path = dir.join(format!("index-{}.bin", &key.finalize().to_hex()[..32]));
        if let Ok(base) = SortedIndex::open(&path) {
            if base.sources == ids {
                *self.index_mut() = Index::with_base(base);
                return Ok(vec![]);
            }
        }
        let wanted: HashSet<Id> = ids.iter().copied().collect();
        let mut best: Option<SortedIndex> = None;
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !(n.starts_with("index-") && n.ends_with(".bin")) {
                    continue;
                }
                if let Ok(c) = SortedIndex::open(&e.path()) {
                    let subset = c.sources.iter().all(|s| wanted.contains(s));
                    if subset && best.as_ref().is_none_or(|b| b.sources.len() < c.sources.len()) {
                        best = Some(c);
                    }
                }
            }
        }
        let have: HashSet<Id> = best.as_ref().map(|b| b.sources.iter().copied().collect()).unwrap_or_default();
        let missing: Vec<Id> = ids.iter().copied().filter(|i| !have.contains(i)).collect();
        let mut problems = vec![];
        let missing_bytes: u64 = missing.iter().map(|m| sizes.get(m).copied().unwrap_or(0)).sum();
        if let Some(base) = best.take_if(|_| missing_bytes <= OVERLAY_MAX_BYTES) {
            let mut ix = Index::with_base(base);
            for id in missing {
                let loaded = decoded.remove(&id).map(Ok);
                match loaded.unwrap_or_else(|| self.load_object::<IndexFile>(ObjectKind::Index, &id.to_hex())) {
                    Ok(f) => {
                        f.packs.iter().for_each(|p| ix.add_pack(p));
                        ix.files.push(id);
                    }
                    Err(e) => problems.push(e),
                }
            }
            *self.index_mut() = ix;
            return Ok(problems);
        }
        crate::cachedir::create(dir).map_err(cache_err)?;
        let mut b = Builder::new(&path);
        let (mut packs, mut sources) = (vec![], vec![]);
        if let Some(base) = &best {
            for r in base.iter() {
                b.push(r).map_err(cache_err)?;
            }
            packs = base.packs.clone();
            sources = base.sources.clone();
        }
        let mut pack_no: HashMap<Id, u32> = packs.iter().enumerate().map(|(i, (id, ..))| (*id, i as u32)).collect();
        for id in missing {
            let loaded = decoded.remove(&id).map(Ok);
            let f = match loaded.unwrap_or_else(|| self.load_object::<IndexFile>(ObjectKind::Index, &id.to_hex())) {
                Ok(f) => f,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            for p in &f.packs {
                let n = *pack_no.entry(p.id).or_insert_with(|| {
                    packs.push((p.id, p.size, p.key));
                    (packs.len() - 1) as u32
                });
                for e in &p.blobs {
                    let offset = u32::try_from(e.offset)
                        // The cache's records hold 32-bit offsets: such an index stays in memory.
                        .map_err(|_| RepoError::Cache(std::io::Error::other(format!("pack {} is over 4 GiB", p.id))))?;
                    b.push(Record {
                        id: e.id,
                        pack: n,
                        kind: e.kind,
                        offset,
                        length: e.length,
                        raw_length: e.raw_length,
                    })
                    .map_err(cache_err)?;
                }
            }
            sources.push(id);
        }
        drop(best);
        b.finish(&sources, &packs).map_err(cache_err)?;
        let base = SortedIndex::open(&path).map_err(cache_err)?;
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with("index-") && n.ends_with(".bin") && e.path() != path {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        *self.index_mut() = Index::with_base(base);
        Ok(problems)
    }

    /// Read and verify one blob.
    pub fn read_blob(&self, kind: BlobKind, id: &Id) -> RepoResult<Vec<u8>> {
        let loc = self.index().get(id).ok_or(RepoError::BlobNotIndexed { kind: kind_name(kind), id: *id })?;
        let sealed = self.read_pack_range(&loc.pack, loc.offset, loc.length as u64)?;
        self.open_blob(kind, id, &loc, &sealed)
    }

    /// Bytes `offset..offset + length` of pack `pack`, as stored (sealed).
    pub fn read_pack_range(&self, pack: &Id, offset: u64, length: u64) -> RepoResult<Vec<u8>> {
        self.storage.get_range(ObjectKind::Pack, &pack.to_hex(), offset, length).map_err(|e| match e {
            // A missing or short pack is damage; other failures (permissions, a dropped
            // connection) are reported as what they are.
            arca_storage::StorageError::NotFound { path } => {
                RepoError::corrupt(format!("pack {pack}"), format!("{path} is missing"))
            }
            arca_storage::StorageError::Io { path, source } if source.kind() == std::io::ErrorKind::UnexpectedEof => {
                RepoError::corrupt(format!("pack {pack}"), format!("{path} is shorter than the index says"))
            }
            e => RepoError::Storage(e),
        })
    }

    /// Verify and open blob `id`, stored at `loc` as `sealed`, into its contents.
    pub fn open_blob(&self, kind: BlobKind, id: &Id, loc: &BlobLocation, sealed: &[u8]) -> RepoResult<Vec<u8>> {
        let key = self.content_key(loc.key, || format!("pack {}", loc.pack))?;
        let Some(cipher) = key.blob_cipher(kind) else {
            let level = self.reader.ok_or(RepoError::Internal("a part of a key outside a reader session"))?;
            let what = if kind == BlobKind::Tree { "read a tree (file names)" } else { "read file contents" };
            return Err(self.reader_refusal(level, what));
        };
        // A reader key has no MAC key: the AEAD, whose associated data names the blob's kind
        // and id, is what vouches for a tree it reads.
        let mac = (key.held() == Held::All).then(|| key.key());
        let read = blob::decode(mac, cipher, kind, id, sealed, loc.raw_length);
        // A tree an arca that did not know split keys sealed with the data key of a split key
        // (it ignores `split`): a full key still reads it.
        let read = match read {
            Err(_) if kind == BlobKind::Tree && key.split && key.held() == Held::All => {
                blob::decode(mac, key.cipher(), kind, id, sealed, loc.raw_length).or(read)
            }
            r => r,
        };
        read.map_err(|e| RepoError::corrupt(format!("pack {}", loc.pack), e))
    }

    /// Where this session keeps tree packs on local disk (`treepacks.rs`): a remote
    /// repository with a cache directory, opened with a key that reads trees from it.
    pub(crate) fn kept_tree_packs(&self) -> Option<&Path> {
        self.cache_dir.as_deref().filter(|_| self.is_remote() && self.backup_only.is_none())
    }

    /// From now on read trees from the storage only, never from kept tree packs (check and
    /// repair judge the storage, as restic's check uses a fresh cache). Packs this session
    /// uploads are still kept.
    pub fn read_trees_from_storage(&self) {
        self.storage_trees_only.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Tree blob `id`: from its pack kept on local disk if there is one (a kept copy that does
    /// not open is dropped and the blob fetched again), else from the storage.
    fn read_tree_blob(&self, id: &Id) -> RepoResult<Vec<u8>> {
        let storage_only = self.storage_trees_only.load(std::sync::atomic::Ordering::Relaxed);
        let Some(cache) = self.kept_tree_packs().filter(|_| !storage_only) else {
            return self.read_blob(BlobKind::Tree, id);
        };
        let loc = self.index().get(id).ok_or(RepoError::BlobNotIndexed { kind: kind_name(BlobKind::Tree), id: *id })?;
        let kept = || crate::treepacks::read(cache, &loc.pack, loc.offset, loc.length);
        // Not kept (another host's backup): fetched whole, with every tree beside this one.
        let kept_or_fetched = kept().or_else(|| {
            let fetch = || {
                let size = self.index().pack_size(&loc.pack).filter(|s| *s <= crate::treepacks::FETCH_WHOLE_MAX);
                size.is_some_and(|size| self.fetch_tree_pack(cache, &loc.pack, size))
            };
            self.tree_pack_fetches.once(&loc.pack, fetch).then(kept)?
        });
        if let Some(sealed) = kept_or_fetched {
            match self.open_blob(BlobKind::Tree, id, &loc, &sealed) {
                Ok(b) => return Ok(b),
                Err(e) => {
                    tracing::warn!(pack = %loc.pack, error = %e, "a tree pack in the local cache is damaged; reading it from the repository");
                    crate::treepacks::forget(cache, &loc.pack);
                }
            }
        }
        let sealed = self.read_pack_range(&loc.pack, loc.offset, loc.length as u64)?;
        self.open_blob(BlobKind::Tree, id, &loc, &sealed)
    }

    /// Keep a listing of `snapshots/` made as the session began (see `session::open`).
    pub(crate) fn keep_snapshot_listing(&self, listed: Vec<(String, u64)>) {
        *self.snapshot_listing.lock().unwrap_or_else(|p| p.into_inner()) = Some(listed);
    }

    /// Snapshots were added or removed: a listing kept from before no longer holds.
    pub(crate) fn snapshots_changed(&self) {
        self.snapshot_listing.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// The listing of `snapshots/`: the one made as the session began, the first time; after
    /// that, a new one.
    pub(crate) fn list_snapshots(&self) -> Listing {
        let kept = self.snapshot_listing.lock().unwrap_or_else(|p| p.into_inner()).take();
        kept.map_or_else(|| self.storage.list(ObjectKind::Snapshot), Ok)
    }

    /// Fetch tree pack `pack` of `size` bytes whole and keep it in `cache`; false if that
    /// failed (the tree is then read by its range, and the failure said there).
    fn fetch_tree_pack(&self, cache: &Path, pack: &Id, size: u64) -> bool {
        let fetched = self
            .read_pack_range(pack, 0, size)
            .and_then(|bytes| crate::treepacks::keep(cache, pack, &bytes).map_err(RepoError::Cache));
        fetched.inspect_err(|e| tracing::debug!(%pack, error = %e, "could not keep a fetched tree pack")).is_ok()
    }

    /// Read one directory listing.
    pub fn read_tree(&self, id: &Id) -> RepoResult<Tree> {
        self.require_trees("read a tree (file names)")?;
        // A backup-only key's trees come from its send log, in memory already.
        let remote = self.is_remote() && self.backup_only.is_none();
        if remote {
            if let Some(t) = self.trees.get(id) {
                return Ok(t);
            }
        }
        let bytes = match &self.backup_only {
            // This host's own trees, from its send log: the repository's are sealed with keys
            // a backup-only key no longer has.
            Some(b) => b.send_log.get(id).ok_or_else(|| RepoError::BackupOnly {
                slot: self.key_slot.clone(),
                action: format!(
                    "read tree {} (only the trees of this host's last backup are kept locally)",
                    id.short()
                ),
            })?,
            None => self.read_tree_blob(id)?,
        };
        let tree: Tree = decode("tree", &bytes).map_err(|e| RepoError::corrupt(format!("tree {id}"), e))?;
        tree.validate().map_err(|e| RepoError::corrupt(format!("tree {id}"), e))?;
        if remote {
            self.trees.put(*id, &tree);
        }
        Ok(tree)
    }
}

/// The config's stored bytes: `cipher` is the master key's.
pub(crate) fn config_bytes(config: &Config, master: &MasterKey) -> RepoResult<Vec<u8>> {
    let body = encode("config", config)?;
    let cipher = master.cipher(config.encryption);
    let file = ConfigFile {
        version: config.version,
        repo_id: config.repo_id,
        encryption: config.encryption,
        sealed: ByteBuf::from(cipher.seal(&body, &config_ad(config.version, &config.repo_id))),
        recipient: (config.version >= 2).then(|| ByteBuf::from(master.recipient(&config.repo_id).public().to_vec())),
    };
    Ok(file.to_bytes()?)
}

/// The associated data of a snapshot's digest: it names the repository and key, and binds
/// the digest to the sealed body it summarises (docs/FORMAT.md, "Snapshots").
fn digest_ad(repo_id: &Id, number: u32, body: &[u8]) -> Vec<u8> {
    [&b"arca snapshot digest v2"[..], &repo_id.0, &number.to_le_bytes(), blake3::hash(body).as_bytes()].concat()
}

/// The config body's associated data in format `version`.
pub(crate) fn config_ad(version: u32, repo_id: &Id) -> Vec<u8> {
    if version >= 2 {
        object_ad_v2(ObjectKind::Config, repo_id, MASTER_KEY_NUMBER)
    } else {
        object_ad(ObjectKind::Config).to_vec()
    }
}

/// The name and stored bytes of a `keyring/` object holding `key` as content key `number` of
/// `class`, sealed with the master key (`master`) in version 2's envelope.
fn content_key_object(
    config: &Config,
    master: &Cipher,
    number: u32,
    class: &str,
    key: &MasterKey,
) -> RepoResult<(String, Vec<u8>)> {
    let file = ContentKeyFile {
        number,
        class: class.into(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        secret: ByteBuf::from(key.to_secret().to_vec()),
        host: None,
        host_proof: None,
        retired: false,
        split: true,
    };
    master_sealed_key_object(config, master, &file)
}

/// The name and bytes of a `keyring/` object holding `file`, sealed with the master key's
/// cipher `master`.
pub(crate) fn master_sealed_key_object(
    config: &Config,
    master: &Cipher,
    file: &ContentKeyFile,
) -> RepoResult<(String, Vec<u8>)> {
    let number = file.number;
    let plain = zeroize::Zeroizing::new(encode("content key", file)?);
    let mut sealed = envelope_prefix(MASTER_KEY_NUMBER).to_vec();
    sealed.extend_from_slice(
        &master.seal(&plain, &object_ad_v2(ObjectKind::Keyring, &config.repo_id, MASTER_KEY_NUMBER)),
    );
    Ok((arca_format::keyring::object_name(number, &sealed), sealed))
}

/// The keyring record of a backup-only session's key `k`, bound (with its proof) to a host
/// if `host` gives one with its host key.
pub(crate) fn session_key_file(k: &ContentKey, host: Option<(&str, &[u8; 32])>) -> ContentKeyFile {
    let host_proof = host.map(|(h, key)| {
        let msg = arca_format::keyring::host_proof_message(k.number, h);
        ByteBuf::from(blake3::keyed_hash(key, &msg).as_bytes().to_vec())
    });
    ContentKeyFile {
        number: k.number,
        class: DEFAULT_CLASS.into(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        secret: ByteBuf::from(k.key().to_secret().to_vec()),
        host: host.map(|(h, _)| h.to_string()),
        host_proof,
        retired: false,
        split: k.split,
    }
}

/// The name and bytes of a `keyring/` object holding `file` sealed to `recipient`.
pub(crate) fn session_key_object(
    config: &Config,
    recipient: &[u8; 32],
    file: &ContentKeyFile,
) -> RepoResult<(String, Vec<u8>)> {
    let plain = zeroize::Zeroizing::new(encode("content key", file)?);
    let ad = object_ad_v2(ObjectKind::Keyring, &config.repo_id, SEALED_TO_RECIPIENT);
    let mut bytes = envelope_prefix(SEALED_TO_RECIPIENT).to_vec();
    bytes.extend_from_slice(&arca_crypto::recipient::seal_to(recipient, &plain, &ad));
    Ok((arca_format::keyring::object_name(file.number, &bytes), bytes))
}

/// Read every `keyring/` object: the keyring (with the master key as number 0) and the
/// objects that could not be read.
/// A read started ahead on a thread of its own, on a remote repository, so its round trips
/// overlap what the caller does meanwhile; locally it is done when asked for.
/// Names and sizes of a kind's objects, as listed.
pub(crate) type Listing = arca_storage::StorageResult<Vec<(String, u64)>>;

/// The first reads of opening a repository, begun together: the config, and on a remote
/// storage the key slots and the keyring, each on a thread of its own (listing, then reading).
/// Over a network that is two round trips instead of four after each other, and the key
/// derivation waits for none of the keyring. A caller learns whether a repository is there at
/// all ([`Opening::is_empty`]) before it asks for a password.
pub struct Opening {
    storage: Arc<dyn Storage>,
    config: arca_storage::StorageResult<Vec<u8>>,
    slots: Ahead<RepoResult<keys::Slots>>,
    keyring: Ahead<KeyringObjects>,
}

impl Opening {
    /// Begin the reads (the config's on this thread: the answer is awaited here).
    pub fn start(storage: Arc<dyn Storage>) -> Opening {
        let remote = arca_storage::is_remote(&*storage);
        let slots = {
            let s = storage.clone();
            Ahead::start(remote, move || keys::read_slots(&*s))
        };
        // A version 1 repository has no keyring: its listing comes back empty, unused.
        let keyring = {
            let s = storage.clone();
            Ahead::start(remote, move || read_keyring_objects(&*s))
        };
        let config = storage.get(ObjectKind::Config, "config");
        Opening { storage, config, slots, keyring }
    }

    /// True if nothing here is a repository: no config (and a listing of key slots, read
    /// only then, finds none). An error reading the config is for [`Opening::unlock`] to say.
    pub fn is_empty(&mut self) -> RepoResult<bool> {
        match &self.config {
            Err(e) if e.is_not_found() => {
                let slots = std::mem::replace(&mut self.slots, Ahead::Started(None))
                    .get(|| keys::read_slots(&*self.storage))?;
                let empty = slots.is_empty();
                self.slots = Ahead::ready(Ok(slots));
                Ok(empty)
            }
            _ => Ok(false),
        }
    }

    /// Unlock with `password` (see [`Repository::open`]).
    pub fn unlock(self, password: &[u8]) -> RepoResult<Repository> {
        Repository::open_from(self, password)
    }
}

/// A read begun on a thread of its own, or already done, or (local storage) left for later.
enum Ahead<T> {
    Started(Option<std::thread::JoinHandle<T>>),
    Ready(T),
}

impl<T: Send + 'static> Ahead<T> {
    fn start(remote: bool, read: impl FnOnce() -> T + Send + 'static) -> Ahead<T> {
        Ahead::Started(remote.then(|| std::thread::spawn(read)))
    }

    fn ready(value: T) -> Ahead<T> {
        Ahead::Ready(value)
    }

    /// The result; `read` here if it was not started, or if its thread panicked (so an error
    /// is reported where it belongs).
    fn get(self, read: impl FnOnce() -> T) -> T {
        match self {
            Ahead::Ready(v) => v,
            Ahead::Started(h) => match h.map(|h| h.join()) {
                Some(Ok(r)) => r,
                Some(Err(_)) | None => read(),
            },
        }
    }
}

/// The keyring's objects by name, read as they were listed.
type KeyringObjects = arca_storage::StorageResult<Vec<(String, arca_storage::StorageResult<Vec<u8>>)>>;

/// List and read every keyring object (several at once on a remote storage).
fn read_keyring_objects(storage: &dyn Storage) -> KeyringObjects {
    let names: Vec<String> = storage.list(ObjectKind::Keyring)?.into_iter().map(|(n, _)| n).collect();
    let fetched = arca_storage::get_many(storage, ObjectKind::Keyring, &names);
    Ok(names.into_iter().zip(fetched).collect())
}

fn load_keyring(storage: &dyn Storage, master: &MasterKey, config: &Config) -> RepoResult<(Keyring, Vec<RepoError>)> {
    load_keyring_from(read_keyring_objects(storage)?, master, config)
}

/// [`load_keyring`] from objects already read.
fn load_keyring_from(
    objects: Vec<(String, arca_storage::StorageResult<Vec<u8>>)>,
    master: &MasterKey,
    config: &Config,
) -> RepoResult<(Keyring, Vec<RepoError>)> {
    let mut ring = Keyring::of_master(master, config.encryption);
    let mut problems = vec![];
    let master_cipher = master.cipher(config.encryption);
    let recipient = master.recipient(&config.repo_id);
    let ad = object_ad_v2(ObjectKind::Keyring, &config.repo_id, MASTER_KEY_NUMBER);
    let wrapped_ad = object_ad_v2(ObjectKind::Keyring, &config.repo_id, SEALED_TO_RECIPIENT);
    if config.version >= 2 {
        let shared = ContentKey::shared(master, &master.shared_key(&config.repo_id), config.encryption);
        ring.insert(shared)?;
    }
    // Master-sealed keys first: a key a backup-only holder made can never push one out by
    // claiming its number (it is the one reported and left out).
    let mut sessions = vec![];
    for (name, bytes) in objects {
        let what = || format!("content key {name}");
        let loaded = (|| {
            let bytes = bytes?;
            if !arca_format::keyring::name_matches(&name, &bytes) {
                return Err(RepoError::corrupt(what(), "contents do not match the object name"));
            }
            let (plain, role) = match envelope(&bytes) {
                Some((MASTER_KEY_NUMBER, sealed)) => (
                    zeroize::Zeroizing::new(
                        master_cipher.open(sealed, &ad, "content key").map_err(|e| RepoError::corrupt(what(), e))?,
                    ),
                    KeyRole::Content,
                ),
                // Made by a backup-only session (docs/FORMAT.md, "Keyring").
                Some((SEALED_TO_RECIPIENT, sealed)) => {
                    (recipient.open(sealed, &wrapped_ad).map_err(|e| RepoError::corrupt(what(), e))?, KeyRole::Session)
                }
                // Reader keys' copies of content keys' metadata and summary keys: the full
                // key derives those itself (`check` verifies them).
                Some((SEALED_TO_METADATA | SEALED_TO_SUMMARY, _)) => return Ok(()),
                _ => return Err(RepoError::corrupt(what(), "not sealed with the master key nor to the recipient key")),
            };
            let file: ContentKeyFile = decode("content key", &plain).map_err(|e| RepoError::corrupt(what(), e))?;
            if role == KeyRole::Session {
                let host = verified_host(master, config, &file).map_err(|e| RepoError::corrupt(what(), e))?;
                let mut k = keyring::from_file(file, config.encryption, &name, role)?;
                k.host = host;
                sessions.push(k);
                return Ok(());
            }
            ring.insert(keyring::from_file(file, config.encryption, &name, role)?).map(|_| ())
        })();
        match loaded {
            Ok(_) => {}
            Err(RepoError::Storage(e)) if e.is_not_found() => {} // destroyed meanwhile
            Err(e @ RepoError::Storage(_)) => return Err(e),
            Err(e) => problems.push(e),
        }
    }
    for k in sessions {
        if let Err(e) = ring.insert(k) {
            problems.push(e);
        }
    }
    Ok((ring, problems))
}

/// The host a backup-only session's key is bound to, its proof checked (`None`: unbound).
fn verified_host(master: &MasterKey, config: &Config, file: &ContentKeyFile) -> Result<Option<String>, &'static str> {
    match (&file.host, &file.host_proof) {
        (None, None) => Ok(None),
        (Some(host), Some(proof)) => {
            let key = master.host_key(&config.repo_id, host);
            let expect = blake3::keyed_hash(&key, &arca_format::keyring::host_proof_message(file.number, host));
            // blake3::Hash compares in constant time.
            match <[u8; 32]>::try_from(proof.as_slice()) {
                Ok(p) if expect == blake3::Hash::from(p) => Ok(Some(host.clone())),
                _ => Err("its proof of the host it is bound to is wrong (made by a key bound to another host?)"),
            }
        }
        _ => Err("its host binding is incomplete"),
    }
}

/// The memo of which index objects supersede which (objects are immutable, so this never goes
/// stale): lines of hex ids, the first superseding the rest.
fn read_supersedes_memo(path: &Path) -> HashMap<Id, Vec<Id>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut ids = line.split(' ').map(Id::from_hex);
            let first = ids.next()??;
            let rest: Option<Vec<Id>> = ids.collect();
            Some((first, rest?))
        })
        .collect()
}

fn write_supersedes_memo(path: &Path, memo: &HashMap<Id, Vec<Id>>) {
    let mut text = String::new();
    for (id, sup) in memo {
        text.push_str(&id.to_hex());
        for s in sup {
            text.push(' ');
            text.push_str(&s.to_hex());
        }
        text.push('\n');
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = crate::cachedir::create(path.parent().unwrap_or(Path::new(".")))
        .and_then(|_| std::fs::write(&tmp, text))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!("index cache memo {} not written: {e}", path.display());
    }
}

/// A lower-case name of a blob kind, for messages.
pub fn kind_name(kind: BlobKind) -> &'static str {
    match kind {
        BlobKind::Data => "data",
        BlobKind::Tree => "tree",
    }
}

fn kind_label(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Config => "config",
        ObjectKind::Key => "key slot",
        ObjectKind::Pack => "pack header",
        ObjectKind::Index => "index",
        ObjectKind::Snapshot => "snapshot",
        ObjectKind::Lock => "lock",
        ObjectKind::Mark => "mark",
        ObjectKind::Parity => "parity",
        ObjectKind::Received => "received record",
        ObjectKind::History => "history statement",
        ObjectKind::Keyring => "content key",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arca_storage::MemoryStorage;

    pub fn cheap_opts() -> InitOptions {
        InitOptions { kdf: KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }, ..Default::default() }
    }

    #[test]
    fn init_open_and_wrong_password() {
        let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
        let r = Repository::init(s.clone(), b"pw", &cheap_opts()).unwrap();
        assert!(matches!(Repository::init(s.clone(), b"pw", &cheap_opts()), Err(RepoError::AlreadyExists { .. })));
        let o = Repository::open(s.clone(), b"pw").unwrap();
        assert_eq!(o.config(), r.config());
        assert!(matches!(Repository::open(s.clone(), b"nope"), Err(RepoError::WrongPassword { .. })));
        let empty: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
        assert!(matches!(Repository::open(empty, b"pw"), Err(RepoError::NoRepository { .. })));
    }

    #[test]
    fn newer_version_is_refused_before_the_password() {
        let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
        Repository::init(s.clone(), b"pw", &cheap_opts()).unwrap();
        let mut f = ConfigFile::from_bytes(&s.get(ObjectKind::Config, "config").unwrap()).unwrap();
        f.version = 99;
        s.put(ObjectKind::Config, "config", &f.to_bytes().unwrap()).unwrap();
        assert!(matches!(Repository::open(s, b"wrong"), Err(RepoError::UnsupportedVersion { found: 99, .. })));
    }
}
