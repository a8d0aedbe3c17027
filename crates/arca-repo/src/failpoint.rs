//! Named fail points for crash tests: with `ARCA_FAILPOINT=name` (or `name:N` for the N-th
//! time the point is passed) the process kills itself with SIGKILL right there, as a power cut
//! or `kill -9` would. `ARCA_FAULT=name[:N]` instead flips a bit in data passing a fault point
//! (a simulated memory or compressor fault). Without the variables each costs one check of a
//! value read once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// `name` or `name:N` from an environment variable.
fn parse(var: &str) -> Option<(String, u64)> {
    let v = std::env::var(var).ok()?;
    match v.split_once(':') {
        Some((name, n)) => Some((name.to_string(), n.parse().unwrap_or(1).max(1))),
        None => Some((v, 1)),
    }
}

fn armed() -> &'static Option<(String, u64)> {
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    ARMED.get_or_init(|| parse("ARCA_FAILPOINT"))
}

/// Die here if this fail point is armed and its count is reached.
pub fn hit(name: &str) {
    static HITS: AtomicU64 = AtomicU64::new(0);
    let Some((armed_name, at)) = armed() else { return };
    if armed_name != name {
        return;
    }
    if HITS.fetch_add(1, Ordering::Relaxed) + 1 == *at {
        eprintln!("arca: fail point {name} reached; killing the process");
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

fn fault_armed() -> &'static Option<(String, u64)> {
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    ARMED.get_or_init(|| parse("ARCA_FAULT"))
}

/// Flip one bit of `data` if this fault point is armed and its count is reached.
pub fn corrupt(name: &str, data: &mut [u8]) {
    static HITS: AtomicU64 = AtomicU64::new(0);
    let Some((armed_name, at)) = fault_armed() else { return };
    if armed_name != name || data.is_empty() {
        return;
    }
    if HITS.fetch_add(1, Ordering::Relaxed) + 1 == *at {
        let i = data.len() / 2;
        data[i] ^= 0x10;
    }
}
