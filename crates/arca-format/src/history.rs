//! The repository's history (`history/<id>`): signed statements of which snapshots a host added
//! and removed. Each signer's statements form a chain (each names its predecessor), so a
//! snapshot that vanishes, comes back or is rolled back shows as a gap, a fork or a
//! contradiction. Statements are not encrypted: an auditor verifies them with a public key
//! alone.

use crate::Id;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The signature domain of a statement's `body`.
pub const STATEMENT_DOMAIN: &[u8] = b"arca history statement v1";

/// The object: the encoded body and the signer's Ed25519 signature of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// MessagePack of a [`StatementBody`], signed as it is.
    pub body: ByteBuf,
    /// 64 bytes: Ed25519 over [`STATEMENT_DOMAIN`] framed with `body` (docs/FORMAT.md).
    pub sig: ByteBuf,
}

/// What a statement says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementBody {
    /// 1.
    pub version: u32,
    /// The repository's id (config `repo_id`): a statement cannot be replayed into another.
    pub repo: Id,
    /// The signer's Ed25519 public key (32 bytes).
    pub signer: ByteBuf,
    /// 1 for a signer's first statement in this repository, then one more each time.
    pub seq: u64,
    /// The id of the signer's statement `seq - 1`; none for the first.
    pub prev: Option<Id>,
    /// RFC 3339, UTC, when it was signed.
    pub time: String,
    /// Snapshot ids this statement adds.
    #[serde(default)]
    pub added: Vec<Id>,
    /// Snapshot ids it removes (forget, or the old object of a replaced snapshot).
    #[serde(default)]
    pub removed: Vec<Id>,
    /// A [`SignerCertificate`] sealed with the repository's key: only a key holder can enrol a
    /// signer, so the storage cannot sign statements of its own that a check would accept.
    pub cert: ByteBuf,
}

/// Who a signer is, as a key holder vouched when it signed (sealed inside statements).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerCertificate {
    pub signer: ByteBuf,
    pub hostname: String,
    pub username: String,
}
