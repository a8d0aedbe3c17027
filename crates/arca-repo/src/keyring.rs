//! The keyring of a format-version-2 repository: numbered content keys, each of one class,
//! each in its own `keyring/<id>` object sealed with the master key. Packs and sealed objects
//! name the key that sealed them; deleting a class's objects (`key destroy-class`) leaves its
//! data unreadable to every key, with nothing rewritten (docs/FORMAT.md, "Keyring").

use crate::{RepoError, RepoResult};
use arca_crypto::{Cipher, MasterKey};
use arca_format::{ContentKeyFile, EncryptionMode, Id, DEFAULT_CLASS, MASTER_KEY_NUMBER};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The most classes a repository may have: every writer holds every key of its class in
/// memory, and a reader all of them.
pub const MAX_KEYS: usize = 4096;

/// One content key: what seals packs and objects and makes blob ids for one class.
pub struct ContentKey {
    pub number: u32,
    /// `""` for the default class.
    pub class: String,
    key: MasterKey,
    cipher: Cipher,
    /// The `keyring/` object holding it (`None`: the master key itself, number 0).
    pub object: Option<String>,
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
        ContentKey {
            number: MASTER_KEY_NUMBER,
            class: DEFAULT_CLASS.into(),
            cipher: key.cipher(mode),
            key: key.clone(),
            object: None,
        }
    }

    /// Key `number` of `class`, just stored as `keyring/<object>`.
    pub(crate) fn stored(number: u32, class: &str, key: MasterKey, mode: EncryptionMode, object: &str) -> ContentKey {
        ContentKey { number, class: class.into(), cipher: key.cipher(mode), key, object: Some(object.into()) }
    }

    /// A fresh key of `class` that is stored nowhere: a dry run into a class that does not
    /// exist yet counts what it would store with it.
    pub fn unsaved(class: &str, mode: EncryptionMode) -> ContentKey {
        let key = MasterKey::generate();
        ContentKey { number: u32::MAX, class: class.into(), cipher: key.cipher(mode), key, object: None }
    }

    /// The secrets: data key (sealing), MAC key (blob ids), chunker seed.
    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    /// The cipher of its data key.
    pub fn cipher(&self) -> &Cipher {
        &self.cipher
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
    pub fn writing(&self, class: &str) -> Option<Arc<ContentKey>> {
        self.keys.values().find(|k| k.number != MASTER_KEY_NUMBER && k.class == class).cloned()
    }

    /// Every key of `class` (the master key never: it cannot be destroyed).
    pub fn of_class(&self, class: &str) -> Vec<Arc<ContentKey>> {
        self.keys.values().filter(|k| k.number != MASTER_KEY_NUMBER && k.class == class).cloned().collect()
    }

    /// The named classes (the default class left out).
    pub fn classes(&self) -> BTreeSet<String> {
        self.keys.values().filter(|k| !k.class.is_empty()).map(|k| k.class.clone()).collect()
    }

    /// Add a key read from the keyring. Two different keys under one number are damage
    /// (numbers are random, so honest writers do not collide).
    pub fn insert(&mut self, k: ContentKey) -> RepoResult<Arc<ContentKey>> {
        if let Some(old) = self.keys.get(&k.number) {
            if *old.key.to_secret() == *k.key.to_secret() && old.class == k.class {
                return Ok(old.clone());
            }
            return Err(RepoError::corrupt(
                format!("content key {:08x}", k.number),
                "two different keyring objects carry this number",
            ));
        }
        if self.keys.len() >= MAX_KEYS {
            return Err(RepoError::LimitExceeded {
                what: "keyring/".into(),
                detail: format!("more than {MAX_KEYS} content keys"),
            });
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
        loop {
            let n = u32::from_le_bytes(arca_crypto::random_bytes());
            if n != MASTER_KEY_NUMBER && !self.keys.contains_key(&n) {
                return n;
            }
        }
    }
}

/// A content key decoded from its `keyring/<name>` object's plaintext.
pub fn from_file(file: ContentKeyFile, mode: EncryptionMode, object: &str) -> RepoResult<ContentKey> {
    let what = || format!("content key {object}");
    if file.number == MASTER_KEY_NUMBER {
        return Err(RepoError::corrupt(what(), "it claims number 0, the master key's"));
    }
    validate_class(&file.class).map_err(|e| RepoError::corrupt(what(), e))?;
    let secret = zeroize::Zeroizing::new(file.secret.into_vec());
    let key = MasterKey::from_secret(&secret).ok_or_else(|| RepoError::corrupt(what(), "the secret is malformed"))?;
    Ok(ContentKey {
        number: file.number,
        class: file.class,
        cipher: key.cipher(mode),
        key,
        object: Some(object.to_string()),
    })
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
        let k = MasterKey::generate();
        ContentKey { number, class: class.into(), cipher: k.cipher(EncryptionMode::Aes256GcmSiv), key: k, object: None }
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
    }

    #[test]
    fn class_names_are_plain() {
        assert!(validate_class("hr-2026.q1_x").is_ok());
        assert!(validate_class("a b").is_err());
        assert!(validate_class("../x").is_err());
        assert!(validate_class(&"x".repeat(65)).is_err());
    }
}
