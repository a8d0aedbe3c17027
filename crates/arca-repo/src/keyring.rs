//! The keyring of a format-version-2 repository: numbered content keys, each of one class,
//! each in its own `keyring/<id>` object sealed with the master key. Packs and sealed objects
//! name the key that sealed them; deleting a class's objects (`key destroy-class`) leaves its
//! data unreadable to every key, with nothing rewritten (docs/FORMAT.md, "Keyring").

use crate::{RepoError, RepoResult};
use arca_crypto::{Cipher, MasterKey};
use arca_format::keyring::is_content_key_number;
use arca_format::{ContentKeyFile, EncryptionMode, Id, DEFAULT_CLASS, MASTER_KEY_NUMBER, SHARED_KEY_NUMBER};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

/// The most content keys of classes a repository may have: every writer holds every key of
/// its class in memory, and a reader all of them.
pub const MAX_KEYS: usize = 4096;

/// The most keys backup-only sessions may have left (one per backup each): about 100 bytes
/// of memory each until a cipher is needed, for a reader that opens them all.
pub const MAX_SESSION_KEYS: usize = 262_144;

/// What a key is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRole {
    /// The master key (number 0) or a class's content key: new data of its class is sealed
    /// with the lowest-numbered one.
    Content,
    /// The shared key (number 1): index, locks and marks, readable by every kind of key.
    Shared,
    /// A key a backup-only session made and sealed to the recipient key: it reads what that
    /// session wrote, and nothing new is sealed with it by anyone else.
    Session,
}

/// Which of a content key's secrets a session holds: all of them, or (a reader key) only
/// the metadata key or only the summary key of a key that splits what it seals. A reader
/// key's [`ContentKey`] keeps that one secret in place of the data key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    All,
    Metadata,
    Summary,
}

/// One content key: what seals packs and objects and makes blob ids for one class.
pub struct ContentKey {
    pub number: u32,
    /// `""` for the default class.
    pub class: String,
    pub role: KeyRole,
    key: MasterKey,
    mode: EncryptionMode,
    /// Made when first needed: a reader holding thousands of session keys uses few.
    cipher: OnceLock<Cipher>,
    /// The `keyring/` object holding it (`None`: the master key itself, number 0).
    pub object: Option<String>,
    /// A backup-only session's key bound to a host (its proof checked): the host every
    /// snapshot sealed with it must name.
    pub host: Option<String>,
    /// Replaced by `key rotate`: it opens, and never seals anything new.
    pub retired: bool,
    /// It seals trees and snapshot bodies with its metadata key and snapshot digests with its
    /// summary key (docs/FORMAT.md, "Reader keys").
    pub split: bool,
    held: Held,
    metadata: OnceLock<Cipher>,
    summary: OnceLock<Cipher>,
    /// A metadata-only key's copy of the summary key, to tell two claims apart.
    summary_secret: Option<zeroize::Zeroizing<[u8; 32]>>,
}

/// Shows the number and class, never the secrets.
impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentKey").field("number", &self.number).field("class", &self.class).finish_non_exhaustive()
    }
}

impl ContentKey {
    /// The master key as content key 0 (format version 1, and objects written before an
    /// upgrade).
    pub fn master(key: &MasterKey, mode: EncryptionMode) -> ContentKey {
        ContentKey::new(MASTER_KEY_NUMBER, DEFAULT_CLASS, KeyRole::Content, key.clone(), mode, None)
    }

    pub(crate) fn new(
        number: u32,
        class: &str,
        role: KeyRole,
        key: MasterKey,
        mode: EncryptionMode,
        object: Option<String>,
    ) -> ContentKey {
        ContentKey {
            number,
            class: class.into(),
            role,
            key,
            mode,
            cipher: OnceLock::new(),
            object,
            host: None,
            retired: false,
            split: false,
            held: Held::All,
            metadata: OnceLock::new(),
            summary: OnceLock::new(),
            summary_secret: None,
        }
    }

    /// A reader key's view of content key `number`: `held` names which of its keys `secret`
    /// is (32 bytes).
    pub(crate) fn reader(number: u32, class: &str, held: Held, secret: &[u8; 32], mode: EncryptionMode) -> ContentKey {
        let mut k =
            ContentKey::new(number, class, KeyRole::Content, MasterKey::generate().with_data_key(secret), mode, None);
        k.split = true;
        k.held = held;
        k
    }

    /// True if `other` is the same key as far as a reader key can tell: number, class, host
    /// and the secrets it holds.
    pub(crate) fn same_as(&self, other: &ContentKey) -> bool {
        self.number == other.number
            && self.class == other.class
            && self.host == other.host
            && self.role == other.role
            && *self.key.to_secret() == *other.key.to_secret()
            && self.summary_secret == other.summary_secret
    }

    /// A metadata-only key's view also holds the summary key (`ReaderKeyFile::summary_key`).
    pub(crate) fn add_summary_key(&mut self, key: &[u8; 32]) {
        self.summary = OnceLock::from(Cipher::new(self.mode, key));
        self.summary_secret = Some(zeroize::Zeroizing::new(*key));
    }

    /// Which of its secrets this session holds.
    pub fn held(&self) -> Held {
        self.held
    }

    /// The cipher that seals its blobs of `kind`: a split key's trees with its metadata key,
    /// everything else with the data key. `None` where this session does not hold it.
    pub fn blob_cipher(&self, kind: arca_format::BlobKind) -> Option<&Cipher> {
        match kind {
            arca_format::BlobKind::Tree => self.metadata_cipher(),
            _ => (self.held == Held::All).then(|| self.cipher()),
        }
    }

    /// The cipher of its trees and snapshot bodies: the metadata key of a split key, else the
    /// data key.
    pub fn metadata_cipher(&self) -> Option<&Cipher> {
        match (self.held, self.split) {
            (Held::All, false) => Some(self.cipher()),
            (Held::All, true) => Some(self.metadata.get_or_init(|| Cipher::new(self.mode, &self.key.metadata_key()))),
            (Held::Metadata, _) => Some(self.cipher()),
            (Held::Summary, _) => None,
        }
    }

    /// The cipher of its snapshot digests (a split key's summary key). `None` for a key that
    /// does not split, or where this session does not hold it.
    pub fn summary_cipher(&self) -> Option<&Cipher> {
        match (self.held, self.split) {
            (Held::All, true) => Some(self.summary.get_or_init(|| Cipher::new(self.mode, &self.key.summary_key()))),
            (Held::Summary, _) => Some(self.cipher()),
            (Held::Metadata, _) => self.summary.get(),
            (Held::All, false) => None,
        }
    }

    /// Key `number` of `class`, just stored as `keyring/<object>`.
    pub(crate) fn stored(number: u32, class: &str, key: MasterKey, mode: EncryptionMode, object: &str) -> ContentKey {
        ContentKey::new(number, class, KeyRole::Content, key, mode, Some(object.into()))
    }

    /// The shared key (number 1), `data_key` in `template`'s place.
    pub(crate) fn shared(template: &MasterKey, data_key: &[u8; 32], mode: EncryptionMode) -> ContentKey {
        ContentKey::new(SHARED_KEY_NUMBER, DEFAULT_CLASS, KeyRole::Shared, template.with_data_key(data_key), mode, None)
    }

    /// A fresh key of `class` that is stored nowhere: a dry run into a class that does not
    /// exist yet counts what it would store with it.
    pub fn unsaved(class: &str, mode: EncryptionMode) -> ContentKey {
        ContentKey::new(u32::MAX, class, KeyRole::Content, MasterKey::generate(), mode, None)
    }

    /// The secrets: data key (sealing), MAC key (blob ids), chunker seed.
    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    /// The cipher of its data key.
    pub fn cipher(&self) -> &Cipher {
        self.cipher.get_or_init(|| self.key.cipher(self.mode))
    }

    /// The keyed id of a blob's plaintext under this key's class.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        self.key.blob_id(plaintext)
    }

    /// The class as shown to a user.
    pub fn class_label(&self) -> &str {
        if self.class.is_empty() {
            "(default)"
        } else {
            &self.class
        }
    }
}

/// Every content key a session can use, by number.
#[derive(Default)]
pub struct Keyring {
    keys: BTreeMap<u32, Arc<ContentKey>>,
}

impl Keyring {
    /// A keyring holding only the master key (format version 1).
    pub fn of_master(key: &MasterKey, mode: EncryptionMode) -> Keyring {
        let mut k = Keyring::default();
        k.keys.insert(MASTER_KEY_NUMBER, Arc::new(ContentKey::master(key, mode)));
        k
    }

    /// Key `number`, if the repository has it.
    pub fn get(&self, number: u32) -> Option<Arc<ContentKey>> {
        self.keys.get(&number).cloned()
    }

    /// The key new data of `class` is sealed with: of the class's keys (the master key
    /// aside), the one with the lowest number, so that two writers that created a class at
    /// the same moment settle on the same key.
    ///
    /// Keys that split what they seal come first: a repository given its first reader key
    /// gets a split key for each class (`reader::ensure_split_writers`), and every writer
    /// then moves to it.
    pub fn writing(&self, class: &str) -> Option<Arc<ContentKey>> {
        let mut usable = self.keys.values().filter(|k| {
            k.number != MASTER_KEY_NUMBER
                && k.role == KeyRole::Content
                && !k.retired
                && k.held == Held::All
                && k.class == class
        });
        let first = usable.next()?;
        std::iter::once(first).chain(usable).find(|k| k.split).or(Some(first)).cloned()
    }

    /// Every key of `class` that seals data (the master key and the shared key never: they
    /// cannot be destroyed).
    pub fn of_class(&self, class: &str) -> Vec<Arc<ContentKey>> {
        self.keys
            .values()
            .filter(|k| k.number != MASTER_KEY_NUMBER && k.role != KeyRole::Shared && k.class == class)
            .cloned()
            .collect()
    }

    /// Every key, by number.
    pub fn all(&self) -> Vec<Arc<ContentKey>> {
        self.keys.values().cloned().collect()
    }

    /// How many keys backup-only sessions left.
    pub fn session_keys(&self) -> usize {
        self.keys.values().filter(|k| k.role == KeyRole::Session).count()
    }

    /// The named classes (the default class left out).
    pub fn classes(&self) -> BTreeSet<String> {
        self.keys.values().filter(|k| !k.class.is_empty()).map(|k| k.class.clone()).collect()
    }

    /// Add a key read from the keyring. Two different keys under one number are damage
    /// (numbers are random, so honest writers do not collide). Key 0 read from the keyring
    /// (the master key of before `key rotate`) takes the place of the session's master key,
    /// which then only opens the keyring and the config.
    pub fn insert(&mut self, k: ContentKey) -> RepoResult<Arc<ContentKey>> {
        if k.number == MASTER_KEY_NUMBER && self.keys.get(&k.number).is_some_and(|m| m.object.is_none()) {
            let k = Arc::new(k);
            self.keys.insert(k.number, k.clone());
            return Ok(k);
        }
        if let Some(old) = self.keys.get(&k.number) {
            if *old.key.to_secret() == *k.key.to_secret() && old.class == k.class && old.role == k.role {
                // The same key stored twice: as it was and retired (a retirement killed
                // before it deleted the old object). Retired wins.
                if k.retired && !old.retired {
                    let k = Arc::new(k);
                    self.keys.insert(k.number, k.clone());
                    return Ok(k);
                }
                return Ok(old.clone());
            }
            return Err(RepoError::corrupt(
                format!("content key {:08x}", k.number),
                "two different keyring objects carry this number",
            ));
        }
        let (count, max, of) = match k.role {
            KeyRole::Session => (self.session_keys(), MAX_SESSION_KEYS, "keys of backup-only sessions"),
            _ => (self.keys.len() - self.session_keys(), MAX_KEYS, "content keys"),
        };
        if count >= max {
            return Err(RepoError::LimitExceeded { what: "keyring/".into(), detail: format!("more than {max} {of}") });
        }
        let k = Arc::new(k);
        self.keys.insert(k.number, k.clone());
        Ok(k)
    }

    /// Forget the keys of `class` (after their objects were deleted).
    pub fn remove_class(&mut self, class: &str) {
        self.keys.retain(|n, k| *n == MASTER_KEY_NUMBER || k.class != class);
    }

    /// A number no key has yet: random, so writers need not coordinate.
    pub fn free_number(&self) -> u32 {
        free_number(|n| self.keys.contains_key(&n))
    }
}

/// A random content key number for which `taken` is false (never a reserved one).
pub fn free_number(taken: impl Fn(u32) -> bool) -> u32 {
    loop {
        let n = u32::from_le_bytes(arca_crypto::random_bytes());
        if is_content_key_number(n) && !taken(n) {
            return n;
        }
    }
}

/// A content key decoded from its `keyring/<name>` object's plaintext.
pub fn from_file(file: ContentKeyFile, mode: EncryptionMode, object: &str, role: KeyRole) -> RepoResult<ContentKey> {
    let what = || format!("content key {object}");
    let previous_master = file.number == MASTER_KEY_NUMBER
        && file.retired
        && file.class.is_empty()
        && role == KeyRole::Content
        && file.host.is_none();
    if !is_content_key_number(file.number) && !previous_master {
        return Err(RepoError::corrupt(what(), format!("it claims number {}, which is reserved", file.number)));
    }
    validate_class(&file.class).map_err(|e| RepoError::corrupt(what(), e))?;
    if role == KeyRole::Session && !file.class.is_empty() {
        return Err(RepoError::corrupt(
            what(),
            "a backup-only session's key claims a class; they write the default class only",
        ));
    }
    let secret = zeroize::Zeroizing::new(file.secret.into_vec());
    let key = MasterKey::from_secret(&secret).ok_or_else(|| RepoError::corrupt(what(), "the secret is malformed"))?;
    let mut k = ContentKey::new(file.number, &file.class, role, key, mode, Some(object.to_string()));
    k.retired = file.retired;
    k.split = file.split;
    Ok(k)
}

/// Why `name` cannot be a class name, if it cannot: 1–64 characters of letters, digits and
/// `-_.`, so a class is safe to show and to pass on a command line.
pub fn validate_class(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Ok(());
    }
    if name.len() > 64 {
        return Err("a class name has at most 64 characters");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err("a class name is made of letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(class: &str, number: u32) -> ContentKey {
        ContentKey::new(number, class, KeyRole::Content, MasterKey::generate(), EncryptionMode::Aes256GcmSiv, None)
    }

    #[test]
    fn the_lowest_number_of_a_class_writes_and_the_master_never_does() {
        let mut r = Keyring::of_master(&MasterKey::generate(), EncryptionMode::Aes256GcmSiv);
        assert!(r.writing("").is_none());
        r.insert(key("", 9)).unwrap();
        r.insert(key("hr", 7)).unwrap();
        r.insert(key("hr", 3)).unwrap();
        assert_eq!(r.writing("").unwrap().number, 9);
        assert_eq!(r.writing("hr").unwrap().number, 3);
        assert_eq!(r.of_class("hr").len(), 2);
        assert_eq!(r.classes().into_iter().collect::<Vec<_>>(), vec!["hr".to_string()]);
        assert!(r.insert(key("", 9)).is_err(), "a second key under one number is damage");
        r.remove_class("hr");
        assert!(r.writing("hr").is_none() && r.get(0).is_some() && r.get(9).is_some());
        let n = r.free_number();
        assert!(n != 0 && r.get(n).is_none());
        let m = MasterKey::generate();
        r.insert(ContentKey::shared(&m, &[5; 32], EncryptionMode::Aes256GcmSiv)).unwrap();
        r.insert(ContentKey::new(2, "", KeyRole::Session, m.clone(), EncryptionMode::Aes256GcmSiv, None)).unwrap();
        assert_eq!(r.writing("").unwrap().number, 9, "neither the shared key nor a session's key writes");
        assert_eq!(r.of_class("").iter().map(|k| k.number).collect::<Vec<_>>(), vec![2, 9]);
        assert_eq!(r.session_keys(), 1);
    }

    #[test]
    fn class_names_are_plain() {
        assert!(validate_class("hr-2026.q1_x").is_ok());
        assert!(validate_class("a b").is_err());
        assert!(validate_class("../x").is_err());
        assert!(validate_class(&"x".repeat(65)).is_err());
    }
}
