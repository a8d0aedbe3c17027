//! Named fail points for crash tests: with `ARCA_FAILPOINT=name` (or `name:N` for the N-th
//! time the point is passed) the process kills itself with SIGKILL right there, as a power cut
//! or `kill -9` would; `name:N:stop` stops it with SIGSTOP instead, as a suspended laptop or
//! a stalled machine would (a test then lets it go on with SIGCONT), and `name:N:panic` panics
//! the thread that passes it (a bug in a worker). `ARCA_FAULT=name[:N]` instead flips a bit in data passing a fault point
//! (a simulated memory or compressor fault). Without the variables each costs one check of a
//! value read once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// `name` or `name:N` from an environment variable.
fn parse(var: &str) -> Option<(String, u64)> {
    let v = std::env::var(var).ok()?;
    let v = v.strip_suffix(":stop").or_else(|| v.strip_suffix(":panic")).unwrap_or(&v).to_string();
    match v.split_once(':') {
        Some((name, n)) => Some((name.to_string(), n.parse().unwrap_or(1).max(1))),
        None => Some((v, 1)),
    }
}

fn armed() -> &'static Option<(String, u64)> {
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    ARMED.get_or_init(|| parse("ARCA_FAILPOINT"))
}

/// What an armed fail point does when its count is reached.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Kill,
    Stop,
    Panic,
}

fn action() -> Action {
    static ACTION: OnceLock<Action> = OnceLock::new();
    *ACTION.get_or_init(|| match std::env::var("ARCA_FAILPOINT") {
        Ok(v) if v.ends_with(":stop") => Action::Stop,
        Ok(v) if v.ends_with(":panic") => Action::Panic,
        _ => Action::Kill,
    })
}

/// Die here if this fail point is armed and its count is reached.
pub fn hit(name: &str) {
    static HITS: AtomicU64 = AtomicU64::new(0);
    let Some((armed_name, at)) = armed() else { return };
    if armed_name != name {
        return;
    }
    if HITS.fetch_add(1, Ordering::Relaxed) + 1 == *at {
        let sig = match action() {
            Action::Panic => panic!("fail point {name} reached"),
            Action::Stop => libc::SIGSTOP,
            Action::Kill => libc::SIGKILL,
        };
        let what = if sig == libc::SIGSTOP { "stopping" } else { "killing" };
        eprintln!("arca: fail point {name} reached; {what} the process");
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), sig);
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
