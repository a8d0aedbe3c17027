//! Point-in-time recovery: lay out a data directory from the last base backup before the
//! target, with recovery settings that make PostgreSQL replay the archived WAL (fetched by
//! `arca wal-fetch`) exactly up to that time or LSN, then promote. Start PostgreSQL on the
//! directory and it is there.

use crate::physical::PGDATA;
use crate::wal;
use crate::{DbError, DbResult};
use arca_repo::snapshots::SnapshotEntry;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where to recover to.
#[derive(Clone, Debug)]
pub enum Target {
    /// A moment (RFC 3339, or anything PostgreSQL's `recovery_target_time` takes).
    Time(String),
    /// A WAL location, e.g. `0/3000148`.
    Lsn(String),
}

/// The base backup a recovery to `at` starts from: the latest of cluster `sysid` (or the only
/// cluster) that ended before `at` (any, for an LSN target).
pub fn choose_base<'a>(
    all: &'a [SnapshotEntry],
    sysid: Option<&str>,
    at: Option<chrono::DateTime<chrono::FixedOffset>>,
) -> DbResult<&'a SnapshotEntry> {
    let bases: Vec<&SnapshotEntry> = all
        .iter()
        .filter(|s| s.snapshot.source.get("engine").map(String::as_str) == Some("postgresql-physical"))
        .filter(|s| sysid.is_none_or(|id| s.snapshot.source.get("system_identifier").map(String::as_str) == Some(id)))
        .collect();
    let clusters: std::collections::BTreeSet<&str> =
        bases.iter().filter_map(|s| s.snapshot.source.get("system_identifier").map(String::as_str)).collect();
    if sysid.is_none() && clusters.len() > 1 {
        return Err(DbError::Invalid(format!(
            "the repository holds base backups of {} clusters ({}): choose one with --system-identifier",
            clusters.len(),
            clusters.into_iter().collect::<Vec<_>>().join(", ")
        )));
    }
    let ended = |s: &SnapshotEntry| {
        s.snapshot
            .source
            .get("end_time")
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .or_else(|| arca_repo::snapshots::parse_time(&s.snapshot.time))
    };
    bases
        .into_iter()
        .filter(|s| match (at, ended(s)) {
            (Some(at), Some(end)) => end <= at,
            (None, _) => true,
            (Some(_), None) => false,
        })
        .max_by_key(|s| ended(s))
        .ok_or_else(|| {
            DbError::NotInSnapshot(match at {
                Some(at) => {
                    format!("no base backup ended before {at} (`arca db backup postgres --physical` makes them)")
                }
                None => "the repository holds no base backup (`arca db backup postgres --physical` makes them)".into(),
            })
        })
}

/// A single-quoted value for postgresql.conf.
fn conf_value(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// Write the recovery settings into the restored data directory `dir`: `restore_command`,
/// the target, promotion at the target, and `recovery.signal`.
pub fn configure(dir: &Path, restore_command: &str, target: &Target) -> DbResult<()> {
    let conf = dir.join("postgresql.auto.conf");
    let io = |path: PathBuf| move |source| DbError::Io { path: path.clone(), source };
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(&conf).map_err(io(conf.clone()))?;
    let (key, value) = match target {
        Target::Time(t) => ("recovery_target_time", t),
        Target::Lsn(l) => ("recovery_target_lsn", l),
    };
    let text = format!(
        "\n# point-in-time recovery, written by arca db pitr\nrestore_command = {}\n{key} = {}\nrecovery_target_action = 'promote'\n# The recovered cluster does not archive until told to: its WAL must not mix with the\n# original's. Turn it on when it takes the original's place.\narchive_mode = 'off'\n",
        conf_value(restore_command),
        conf_value(value)
    );
    f.write_all(text.as_bytes()).map_err(io(conf.clone()))?;
    f.sync_all().map_err(io(conf))?;
    // PostgreSQL refuses a data directory others may read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir.to_path_buf()))?;
    let signal = dir.join("recovery.signal");
    std::fs::write(&signal, b"").map_err(io(signal.clone()))?;
    // The same owner as the rest of the directory (PostgreSQL refuses to start otherwise).
    if let Ok(md) = std::fs::metadata(dir.join("PG_VERSION")) {
        use std::os::unix::fs::MetadataExt;
        let owner = Some(nix::unistd::Uid::from_raw(md.uid()));
        let group = Some(nix::unistd::Gid::from_raw(md.gid()));
        for p in [dir.join("postgresql.auto.conf"), signal] {
            let _ = nix::unistd::chown(&p, owner, group);
        }
    }
    Ok(())
}

/// The WAL a recovery from `base` needs that the archive lacks, if any: the first segment
/// after the base backup's start that is missing before the archive goes on (a gap), as
/// `wal::coverage` finds it.
pub fn gap(all: &[SnapshotEntry], base: &SnapshotEntry) -> Option<(String, String)> {
    let sysid = base.snapshot.source.get("system_identifier")?;
    let c = wal::coverage(all, sysid);
    c.gaps.into_iter().next()
}

/// The snapshot path of a base backup's data directory.
pub fn pgdata_path() -> String {
    format!("/{PGDATA}")
}
