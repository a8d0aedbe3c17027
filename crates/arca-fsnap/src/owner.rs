//! Which snapshots arca took, and which of those a run that ended without cleaning up left.
//!
//! Names are `arca-fsnap-<pid>-<start>[-<n>]`, where `<start>` is the process's start time in
//! clock ticks since boot (`/proc/<pid>/stat`), which a reused process id does not repeat.
//! For LVM and ZFS the name alone cannot prove a snapshot is arca's, so they also carry a tag
//! (`lvcreate --addtag`, a ZFS user property) and a leftover must have both. For btrfs each run
//! holds an `flock` on its snapshot directory for as long as it runs: a directory nobody holds
//! is a leftover, whatever the process ids (which other PID namespaces do not share).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// The prefix of every name arca gives a filesystem snapshot.
pub const PREFIX: &str = "arca-fsnap-";

/// This process's name for its snapshots.
pub fn mine() -> String {
    let pid = std::process::id();
    format!("{PREFIX}{pid}-{}", start_ticks(pid).unwrap_or(0))
}

/// The start time of process `pid` in clock ticks since boot, if it runs.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True if `name` is an arca snapshot name (with or without a `-<n>` suffix) whose process no
/// longer runs here. Names of running processes, and names arca does not make, are not.
pub fn is_leftover(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else { return false };
    let mut parts = rest.split('-');
    let (Some(pid), Some(start)) = (parts.next(), parts.next()) else { return false };
    let suffix_ok = parts.next().is_none_or(|n| n.parse::<u32>().is_ok()) && parts.next().is_none();
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else { return false };
    suffix_ok && start_ticks(pid) != Some(start)
}

/// Hold `dir` for this run: an exclusive `flock` on it, released when the file is dropped.
pub fn hold(dir: &Path) -> std::io::Result<File> {
    let f = File::open(dir)?;
    // SAFETY: flock on an open descriptor has no other preconditions.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(f)
}

/// True if no running process holds `dir` (see [`hold`]).
pub fn is_abandoned(dir: &Path) -> bool {
    hold(dir).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_name_is_not_a_leftover_and_a_dead_ones_is() {
        let me = mine();
        assert!(me.starts_with(PREFIX));
        assert!(!is_leftover(&me));
        assert!(!is_leftover(&format!("{me}-3")));
        // Same pid, another start time: a reused pid.
        let pid = std::process::id();
        assert!(is_leftover(&format!("{PREFIX}{pid}-1")));
        assert!(is_leftover(&format!("{PREFIX}{pid}-1-0")));
        // A process that cannot exist (above pid_max).
        assert!(is_leftover(&format!("{PREFIX}{}-5", u32::MAX)));
        // Not arca's: a user's own names, even ones that look like ours.
        for other in ["arca-2024-06", "arca-2024-06-01", "arca-fsnap-x-5", "arca-fsnap-1-2-x", "daily", "arca-fsnap-1"]
        {
            assert!(!is_leftover(other), "{other}");
        }
    }

    #[test]
    fn a_held_directory_is_not_abandoned() {
        let d = tempfile::tempdir().unwrap();
        let held = hold(d.path()).unwrap();
        assert!(!is_abandoned(d.path()));
        drop(held);
        assert!(is_abandoned(d.path()));
    }
}
