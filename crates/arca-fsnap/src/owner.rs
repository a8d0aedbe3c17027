//! Names that say which process made a snapshot, so a run can tell its own from what a killed
//! run left: `arca-<pid>-<start>`, where `<start>` is the process's start time in clock ticks
//! since boot (`/proc/<pid>/stat`), which a reused process id does not repeat.

/// The prefix of every name arca gives a filesystem snapshot.
pub const PREFIX: &str = "arca-";

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

/// True if `name` is an arca snapshot name whose process no longer runs (a leftover of a
/// killed or crashed run). Names of running processes, and names arca did not make, are not.
pub fn is_leftover(name: &str) -> bool {
    let Some((pid, start)) = name.strip_prefix(PREFIX).and_then(|r| r.split_once('-')) else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    start_ticks(pid) != Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_name_is_not_a_leftover_and_a_dead_ones_is() {
        let me = mine();
        assert!(me.starts_with(PREFIX));
        assert!(!is_leftover(&me));
        // Same pid, another start time: a reused pid.
        let pid = std::process::id();
        assert!(is_leftover(&format!("{PREFIX}{pid}-1")));
        // A process that cannot exist (above pid_max).
        assert!(is_leftover(&format!("{PREFIX}{}-5", u32::MAX)));
        assert!(!is_leftover("arca-notanumber-5"));
        assert!(!is_leftover("daily-2026-12-07"));
    }
}
