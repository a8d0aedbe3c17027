//! Lock objects (`locks/<session>`): a running command announces itself so a prune knows whom
//! it must not pull data from under. Locks never block a backup: they only defer the sweep
//! phase of a prune, and they expire on their own when not refreshed.

use crate::Id;
use serde::{Deserialize, Serialize};

/// The contents of `locks/<session id>`, sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFile {
    /// Random, chosen by the session; also the object's name.
    pub session: Id,
    pub host: String,
    pub pid: u32,
    /// What runs, for messages ("backup", "prune", …).
    pub command: String,
    /// Only one exclusive session (prune, repair) may run at a time; shared ones are unlimited.
    pub exclusive: bool,
    /// Unix time in nanoseconds when the session began.
    pub started: i64,
    /// Unix time in nanoseconds of the last refresh; older than the stale limit means dead.
    pub refreshed: i64,
}
