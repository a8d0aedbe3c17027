//! Repository: open (unlock a key slot, read the authenticated config), load the index, and
//! read and write sealed objects and blobs.

use crate::index::Index;
use crate::index_cache::{Builder, Record, SortedIndex};
use crate::keys::{self, Origin};
use crate::{blob, RepoError, RepoResult};
use arca_chunker::Chunker;
use arca_crypto::{Cipher, MasterKey};
use arca_format::{
    decode, encode, BlobKind, ChunkerParams, Config, ConfigFile, EncryptionMode, Id, IndexFile, KdfParams, Tree,
    FORMAT_VERSION,
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
    }
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
            config,
            key,
            cipher,
            key_slot,
            index: RwLock::new(Index::default()),
            cache_dir: None,
            signer: None,
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
        let key = MasterKey::generate();
        let cipher = key.cipher(opts.encryption);
        let repo_id = Id(arca_crypto::random_bytes());
        let config = Config {
            version: FORMAT_VERSION,
            repo_id,
            chunker: opts.chunker,
            encryption: opts.encryption,
            compression_level: opts.compression_level,
            pack_size: opts.pack_size,
            parity_percent: opts.parity_percent,
        };
        let body = encode("config", &config)?;
        let file = ConfigFile {
            version: FORMAT_VERSION,
            repo_id,
            encryption: opts.encryption,
            sealed: ByteBuf::from(cipher.seal(&body, object_ad(ObjectKind::Config))),
        };
        // The key slot goes first: a config without a key would be an unopenable repository.
        let key_slot = keys::store_slot(&*storage, &key, password, opts.kdf, &Origin::current(), "")?;
        let bytes = file.to_bytes()?;
        storage.put(ObjectKind::Config, "config", &bytes)?;
        Ok(Repository::assemble(storage, config, key, cipher, key_slot))
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
            .open(&file.sealed, object_ad(ObjectKind::Config), "config")
            .map_err(|e| RepoError::corrupt("config", e))?;
        let config: Config = decode("config", &body).map_err(|e| RepoError::corrupt("config", e))?;
        if config.version != file.version || config.repo_id != file.repo_id || config.encryption != file.encryption {
            return Err(RepoError::corrupt("config", "the plaintext envelope does not match the sealed body"));
        }
        Ok(Repository::assemble(storage, config, key, cipher, key_slot))
    }

    /// The backend.
    pub fn storage(&self) -> &dyn Storage {
        &*self.storage
    }

    /// The authenticated settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The master key.
    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    /// The object cipher.
    pub fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    /// The key slot this repository was opened with.
    pub fn key_slot(&self) -> &str {
        &self.key_slot
    }

    /// A chunker with this repository's parameters and secret seed.
    pub fn chunker(&self) -> RepoResult<Chunker> {
        let c = self.config.chunker;
        Chunker::new(c.min_size as usize, c.avg_size as usize, c.max_size as usize, self.key.chunker_seed())
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
        let sealed = self.cipher.seal(&plain, object_ad(kind));
        let id = Id::of_bytes(&sealed);
        self.storage.put(kind, &id.to_hex(), &sealed)?;
        Ok(id)
    }

    /// Seal a structure under the name that is the BLAKE3 of `proof` (locks), replacing any
    /// object of that name; see [`Storage::put_owned`].
    pub fn save_owned_object<T: Serialize>(&self, kind: ObjectKind, proof: &[u8], value: &T) -> RepoResult<()> {
        let plain = encode("object", value)?;
        let sealed = self.cipher.seal(&plain, object_ad(kind));
        let name = blake3::hash(proof).to_hex();
        Ok(self.storage.put_owned(kind, name.as_str(), &sealed, proof)?)
    }

    /// Read and open an object stored with [`Repository::save_owned_object`].
    pub fn load_named_object<T: DeserializeOwned>(&self, kind: ObjectKind, name: &str) -> RepoResult<T> {
        let bytes = self.storage.get(kind, name)?;
        let what = || format!("{kind} {name}");
        let plain = self.cipher.open(&bytes, object_ad(kind), "object").map_err(|e| RepoError::corrupt(what(), e))?;
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
        let plain = self.cipher.open(bytes, object_ad(kind), "object").map_err(|e| RepoError::corrupt(what(), e))?;
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
        let mut pack_no: HashMap<Id, u32> = packs.iter().enumerate().map(|(i, (id, _))| (*id, i as u32)).collect();
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
                    packs.push((p.id, p.size));
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
        blob::decode(&self.key, &self.cipher, kind, id, &sealed, loc.raw_length)
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
