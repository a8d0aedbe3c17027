//! Repository: open (unlock a key slot, read the authenticated config), load the index, and
//! read and write sealed objects and blobs.

use crate::index::Index;
use crate::index_cache::{Builder, Record, SortedIndex};
use crate::keyring::{self, ContentKey, Keyring};
use crate::keys::{self, Origin};
use crate::{blob, RepoError, RepoResult};
use arca_chunker::Chunker;
use arca_crypto::{Cipher, MasterKey};
use arca_format::keyring::{envelope, envelope_prefix};
use arca_format::{
    decode, encode, BlobKind, ChunkerParams, Config, ConfigFile, ContentKeyFile, EncryptionMode, Id, IndexFile,
    KdfParams, Tree, DEFAULT_CLASS, FORMAT_VERSION, FORMAT_VERSION_1, MASTER_KEY_NUMBER,
};
use arca_storage::{ObjectKind, Storage};
use serde::{de::DeserializeOwned, Serialize};
use serde_bytes::ByteBuf;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

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

/// An open repository: storage, key and config, and (after `load_index`) the index.
pub struct Repository {
    storage: Arc<dyn Storage>,
    config: Config,
    key: MasterKey,
    cipher: Cipher,
    key_slot: String,
    index: RwLock<Index>,
    /// Where the local index cache lives (`None`: keep the whole index in memory).
    cache_dir: Option<PathBuf>,
    /// Who signs this session's changes to `snapshots/` (`None`: they go unrecorded).
    signer: Option<Arc<crate::history::Signer>>,
    /// The content keys (format version 1: the master key alone).
    keyring: RwLock<Keyring>,
    /// `keyring/` objects that could not be read (for `check` to report).
    keyring_problems: Vec<RepoError>,
}

impl Repository {
    /// An open repository without its index, cache or signer yet.
    fn assemble(
        storage: Arc<dyn Storage>,
        config: Config,
        key: MasterKey,
        cipher: Cipher,
        key_slot: String,
    ) -> Repository {
        Repository {
            storage,
            cipher,
            key_slot,
            index: RwLock::new(Index::default()),
            cache_dir: None,
            signer: None,
            keyring: RwLock::new(Keyring::of_master(&key, config.encryption)),
            keyring_problems: vec![],
            key,
            config,
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
        let cipher = key.cipher(opts.encryption);
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
        let bytes = config_bytes(&config, &cipher)?;
        let repo = Repository::assemble(storage, config, key, cipher, key_slot);
        if repo.version() >= 2 {
            repo.store_content_key(DEFAULT_CLASS, repo.key.with_fresh_data_key())?;
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
        let mut v2 = self.config.clone();
        v2.version = FORMAT_VERSION;
        let (ring, _) = load_keyring(&*self.storage, &self.key, &v2)?;
        if ring.writing(DEFAULT_CLASS).is_none() {
            let number = ring.free_number();
            let (name, bytes) =
                content_key_object(&v2, &self.cipher, number, DEFAULT_CLASS, &self.key.with_fresh_data_key())?;
            self.storage.put(ObjectKind::Keyring, &name, &bytes)?;
        }
        crate::failpoint::hit("upgrade-before-config");
        self.storage.put(ObjectKind::Config, "config", &config_bytes(&v2, &self.cipher)?)?;
        Ok(true)
    }

    /// Open a repository with a password. Does not load the index.
    pub fn open(storage: Arc<dyn Storage>, password: &[u8]) -> RepoResult<Repository> {
        let bytes = match storage.get(ObjectKind::Config, "config") {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                if !storage.list(ObjectKind::Key)?.is_empty() {
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
        let (key, key_slot) = keys::unlock(&*storage, password)?;
        let cipher = key.cipher(file.encryption);
        let body = cipher
            .open(&file.sealed, &config_ad(file.version, &file.repo_id), "config")
            .map_err(|e| RepoError::corrupt("config", e))?;
        let config: Config = decode("config", &body).map_err(|e| RepoError::corrupt("config", e))?;
        if config.version != file.version || config.repo_id != file.repo_id || config.encryption != file.encryption {
            return Err(RepoError::corrupt("config", "the plaintext envelope does not match the sealed body"));
        }
        let mut repo = Repository::assemble(storage, config, key, cipher, key_slot);
        if repo.version() >= 2 {
            let (ring, problems) = load_keyring(&*repo.storage, &repo.key, &repo.config)?;
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

    /// The backend.
    pub fn storage(&self) -> &dyn Storage {
        &*self.storage
    }

    /// The authenticated settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The master key (format version 1 seals everything with it; version 2 only the config,
    /// the keyring and objects written before the upgrade).
    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    /// The master key's cipher.
    pub fn cipher(&self) -> &Cipher {
        &self.cipher
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
        self.keyring().get(number).ok_or_else(|| RepoError::Shredded { what: what(), number })
    }

    /// The key that new data and objects of `class` are sealed with (`""`: the default
    /// class). A named class must exist already: see [`Repository::create_class`].
    pub fn writing_key(&self, class: &str) -> RepoResult<Arc<ContentKey>> {
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
        let ring = self.keyring();
        let key = if self.version() >= 2 { ring.writing(DEFAULT_CLASS) } else { None };
        key.or_else(|| ring.get(MASTER_KEY_NUMBER))
            .unwrap_or_else(|| Arc::new(ContentKey::master(&self.key, self.config.encryption)))
    }

    /// The writing key of `class`, creating the class (a new, random content key) if it has
    /// none. Needs format version 2.
    pub fn create_class(&self, class: &str) -> RepoResult<Arc<ContentKey>> {
        if self.version() < 2 {
            return Err(RepoError::NeedsUpgrade { feature: "a class (backup --class)", version: self.version() });
        }
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

    /// Store a new content key of `class` in `keyring/` and add it to the keyring.
    fn store_content_key(&self, class: &str, key: MasterKey) -> RepoResult<Arc<ContentKey>> {
        let number = self.keyring().free_number();
        let (name, bytes) = content_key_object(&self.config, &self.cipher, number, class, &key)?;
        self.storage.put(ObjectKind::Keyring, &name, &bytes)?;
        let k = ContentKey::stored(number, class, key, self.config.encryption, &name);
        self.keyring.write().unwrap_or_else(|p| p.into_inner()).insert(k)
    }

    /// Forget the keys of `class` in this session (after `key destroy-class` deleted them).
    pub(crate) fn forget_class(&self, class: &str) {
        self.keyring.write().unwrap_or_else(|p| p.into_inner()).remove_class(class);
    }

    /// Seal `plain` as an object of `kind` with `key`: version 1's form (nonce first) with
    /// the master key of a version-1 repository, else version 2's envelope.
    fn seal_with(&self, key: &ContentKey, kind: ObjectKind, plain: &[u8]) -> Vec<u8> {
        if self.version() < 2 {
            return key.cipher().seal(plain, object_ad(kind));
        }
        let ad = object_ad_v2(kind, &self.config.repo_id, key.number);
        let mut out = envelope_prefix(key.number).to_vec();
        out.extend_from_slice(&key.cipher().seal(plain, &ad));
        out
    }

    /// Seal an object of `kind` with the default class's key.
    pub fn seal_object_bytes(&self, kind: ObjectKind, plain: &[u8]) -> RepoResult<Vec<u8>> {
        Ok(self.seal_with(&self.default_key(), kind, plain))
    }

    /// Open a sealed object of `kind` (either form; version 1's with the master key).
    pub fn open_object_bytes(&self, kind: ObjectKind, bytes: &[u8], what: impl Fn() -> String) -> RepoResult<Vec<u8>> {
        match envelope(bytes) {
            Some((number, sealed)) if self.version() >= 2 => {
                let key = self.content_key(number, &what)?;
                key.cipher()
                    .open(sealed, &object_ad_v2(kind, &self.config.repo_id, number), "object")
                    .map_err(|e| RepoError::corrupt(what(), e))
            }
            _ => self.cipher.open(bytes, object_ad(kind), "object").map_err(|e| RepoError::corrupt(what(), e)),
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
        let bytes = self.storage.get(kind, name)?;
        let what = || format!("{kind} {name}");
        let plain = self.open_object_bytes(kind, &bytes, what)?;
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

    /// The session's signer, if it has one.
    pub fn signer(&self) -> Option<&crate::history::Signer> {
        self.signer.as_deref()
    }

    /// Load every index object that no other one supersedes, then the packs that prunes have
    /// marked (readable, never deduplicated against). Damaged objects are returned as errors
    /// and skipped, so the caller can warn and go on with what is readable.
    pub fn load_index(&self) -> RepoResult<Vec<RepoError>> {
        let mut listed = self.storage.list(ObjectKind::Index)?;
        listed.sort();
        let mut problems = vec![];
        let memo_path = self.cache_dir.as_ref().map(|d| d.join("supersedes-memo.txt"));
        let mut memo = memo_path.as_deref().map(read_supersedes_memo).unwrap_or_default();
        // Objects not in the memo are decoded now; small ones are kept for the overlay.
        let mut decoded: HashMap<Id, IndexFile> = HashMap::new();
        let mut kept_bytes = 0u64;
        let mut memo_grew = false;
        for (name, size) in &listed {
            let Some(id) = Id::from_hex(name) else { continue };
            if memo.contains_key(&id) {
                continue;
            }
            match self.load_object::<IndexFile>(ObjectKind::Index, name) {
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
        problems.extend(self.load_marks()?);
        Ok(problems)
    }

    /// Add the packs of every mark to the index as marked packs.
    fn load_marks(&self) -> RepoResult<Vec<RepoError>> {
        let mut problems = vec![];
        let mut ix = self.index_mut();
        for (name, _) in self.storage.list(ObjectKind::Mark)? {
            match self.load_object::<arca_format::MarkFile>(ObjectKind::Mark, &name) {
                Ok(m) => m.packs.iter().for_each(|p| ix.add_retired_pack(p)),
                Err(RepoError::Storage(e)) if e.is_not_found() => {} // swept meanwhile
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
        let sealed = self
            .storage
            .get_range(ObjectKind::Pack, &loc.pack.to_hex(), loc.offset, loc.length as u64)
            .map_err(|e| match e {
                // A missing or short pack is damage; other failures (permissions, a dropped
                // connection) are reported as what they are.
                arca_storage::StorageError::NotFound { path } => {
                    RepoError::corrupt(format!("pack {}", loc.pack), format!("{path} is missing"))
                }
                arca_storage::StorageError::Io { path, source }
                    if source.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    RepoError::corrupt(format!("pack {}", loc.pack), format!("{path} is shorter than the index says"))
                }
                e => RepoError::Storage(e),
            })?;
        let key = self.content_key(loc.key, || format!("pack {}", loc.pack))?;
        blob::decode(key.key(), key.cipher(), kind, id, &sealed, loc.raw_length)
            .map_err(|e| RepoError::corrupt(format!("pack {}", loc.pack), e))
    }

    /// Read one directory listing.
    pub fn read_tree(&self, id: &Id) -> RepoResult<Tree> {
        let bytes = self.read_blob(BlobKind::Tree, id)?;
        let tree: Tree = decode("tree", &bytes).map_err(|e| RepoError::corrupt(format!("tree {id}"), e))?;
        tree.validate().map_err(|e| RepoError::corrupt(format!("tree {id}"), e))?;
        Ok(tree)
    }
}

/// The config's stored bytes: `cipher` is the master key's.
fn config_bytes(config: &Config, cipher: &Cipher) -> RepoResult<Vec<u8>> {
    let body = encode("config", config)?;
    let file = ConfigFile {
        version: config.version,
        repo_id: config.repo_id,
        encryption: config.encryption,
        sealed: ByteBuf::from(cipher.seal(&body, &config_ad(config.version, &config.repo_id))),
    };
    Ok(file.to_bytes()?)
}

/// The config body's associated data in format `version`.
fn config_ad(version: u32, repo_id: &Id) -> Vec<u8> {
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
    };
    let plain = zeroize::Zeroizing::new(encode("content key", &file)?);
    let mut sealed = envelope_prefix(MASTER_KEY_NUMBER).to_vec();
    sealed.extend_from_slice(
        &master.seal(&plain, &object_ad_v2(ObjectKind::Keyring, &config.repo_id, MASTER_KEY_NUMBER)),
    );
    Ok((Id::of_bytes(&sealed).to_hex(), sealed))
}

/// Read every `keyring/` object: the keyring (with the master key as number 0) and the
/// objects that could not be read.
fn load_keyring(storage: &dyn Storage, master: &MasterKey, config: &Config) -> RepoResult<(Keyring, Vec<RepoError>)> {
    let mut ring = Keyring::of_master(master, config.encryption);
    let mut problems = vec![];
    let master_cipher = master.cipher(config.encryption);
    let ad = object_ad_v2(ObjectKind::Keyring, &config.repo_id, MASTER_KEY_NUMBER);
    for (name, _) in storage.list(ObjectKind::Keyring)? {
        let what = || format!("content key {name}");
        let loaded = (|| {
            let bytes = storage.get(ObjectKind::Keyring, &name)?;
            if Id::of_bytes(&bytes).to_hex() != name {
                return Err(RepoError::corrupt(what(), "contents do not match the object name"));
            }
            let Some((MASTER_KEY_NUMBER, sealed)) = envelope(&bytes) else {
                return Err(RepoError::corrupt(what(), "not sealed with the master key"));
            };
            let plain = zeroize::Zeroizing::new(
                master_cipher.open(sealed, &ad, "content key").map_err(|e| RepoError::corrupt(what(), e))?,
            );
            let file: ContentKeyFile = decode("content key", &plain).map_err(|e| RepoError::corrupt(what(), e))?;
            ring.insert(keyring::from_file(file, config.encryption, &name)?)
        })();
        match loaded {
            Ok(_) => {}
            Err(RepoError::Storage(e)) if e.is_not_found() => {} // destroyed meanwhile
            Err(e @ RepoError::Storage(_)) => return Err(e),
            Err(e) => problems.push(e),
        }
    }
    Ok((ring, problems))
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
