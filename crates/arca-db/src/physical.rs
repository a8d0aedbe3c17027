//! PostgreSQL, physical: a base backup (`pg_basebackup`, tar format streamed on its standard
//! output, the WAL it needs fetched into it) unpacked as it arrives into the snapshot's
//! `/pgdata` directory: each file of the cluster a file of the snapshot, so unchanged relation
//! files deduplicate whole and changed ones by chunk from one base backup to the next, and
//! `arca restore SNAPSHOT:/pgdata` lays out a data directory. With the WAL archive
//! ([`crate::wal`]) it is the starting point of point-in-time recovery ([`crate::pitr`]).

use crate::layout::Builder;
use crate::postgres::Connection;
use crate::source::Dumper;
use crate::tool;
use crate::{DbError, DbResult};
use arca_format::{Node, NodeKind};
use arca_repo::{BlobWriter, Cancel, Events};
use std::collections::BTreeMap;
use std::io::Read;

const HINT: &str = "install PostgreSQL's client tools (Debian: postgresql-client), or give --pg-bin";

/// The top-level directory of a base backup in a snapshot.
pub const PGDATA: &str = "pgdata";

/// What `backup_label` says about a base backup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Label {
    /// `START WAL LOCATION`, e.g. `0/2000028`.
    pub start_lsn: String,
    /// The WAL segment it starts in.
    pub start_wal: String,
    pub timeline: String,
    pub start_time: String,
}

impl Label {
    /// Read a `backup_label` file's text.
    pub fn parse(text: &str) -> Label {
        let mut l = Label::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once(": ") else { continue };
            match k {
                "START WAL LOCATION" => {
                    let mut parts = v.split_whitespace();
                    l.start_lsn = parts.next().unwrap_or_default().to_string();
                    // "(file 000000010000000000000002)"
                    l.start_wal = parts.nth(1).unwrap_or_default().trim_end_matches(')').to_string();
                }
                "START TIMELINE" => l.timeline = v.trim().to_string(),
                "START TIME" => l.start_time = v.trim().to_string(),
                _ => {}
            }
        }
        l
    }
}

/// A base backup of a PostgreSQL cluster, as a snapshot of kind `database` holding `/pgdata`.
pub struct BaseBackup {
    conn: Connection,
}

impl BaseBackup {
    pub fn new(conn: Connection) -> BaseBackup {
        BaseBackup { conn }
    }
}

/// A node of the snapshot for a tar entry's header.
fn node_of(name: &[u8], h: &tar::Header, kind: NodeKind) -> Node {
    let mut n = Node::new(name, kind);
    n.mode = h.mode().unwrap_or(0o600) & 0o7777;
    n.uid = h.uid().unwrap_or(0) as u32;
    n.gid = h.gid().unwrap_or(0) as u32;
    let mtime = h.mtime().unwrap_or(0) as i64 * 1_000_000_000;
    (n.mtime_ns, n.atime_ns, n.ctime_ns) = (mtime, mtime, mtime);
    n
}

impl Dumper for BaseBackup {
    fn paths(&self) -> Vec<String> {
        vec![format!("/{PGDATA}")]
    }

    fn dump(
        &mut self,
        b: &mut Builder,
        writer: &BlobWriter,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> DbResult<BTreeMap<String, String>> {
        let version = self.conn.server_version()?;
        let sysid =
            self.conn.query("postgres", "SELECT system_identifier FROM pg_control_system()")?.trim().to_string();
        let mut label = None;
        let mut root_seen = false;
        let mut c = self.conn.command("pg_basebackup");
        // One tar on standard output, with the WAL the backup needs to be consistent.
        c.args(["--pgdata=-", "--format=tar", "--wal-method=fetch", "--checkpoint=fast", "--label=arca"]);
        tool::read_output(c, "pg_basebackup", HINT, |out| {
            let mut archive = tar::Archive::new(out);
            let entries =
                archive.entries().map_err(|source| DbError::Io { path: "<pg_basebackup output>".into(), source })?;
            for entry in entries {
                cancel.check()?;
                let mut entry =
                    entry.map_err(|source| DbError::Io { path: "<pg_basebackup output>".into(), source })?;
                let raw = entry.path_bytes().into_owned();
                let path: Vec<&[u8]> = raw.split(|c| *c == b'/').filter(|c| !c.is_empty() && *c != b".").collect();
                if path.iter().any(|c| *c == b"..") {
                    return Err(DbError::Invalid(format!(
                        "pg_basebackup gave an entry outside the data directory: {}",
                        String::from_utf8_lossy(&raw)
                    )));
                }
                let Some(name) = path.last().copied() else { continue };
                let header = entry.header().clone();
                if !root_seen {
                    // The data directory itself has no entry: PostgreSQL wants it 0700 and its
                    // own, like what is in it.
                    root_seen = true;
                    let mut root = node_of(PGDATA.as_bytes(), &header, NodeKind::Dir);
                    root.mode = 0o700;
                    b.add_dir(PGDATA, &[], root);
                }
                match header.entry_type() {
                    tar::EntryType::Directory => b.add_dir(PGDATA, &path, node_of(name, &header, NodeKind::Dir)),
                    tar::EntryType::Symlink => {
                        let mut n = node_of(name, &header, NodeKind::Symlink);
                        let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                        n.size = target.len() as u64;
                        n.target = Some(serde_bytes::ByteBuf::from(target));
                        b.add_other(PGDATA, &path, n);
                    }
                    tar::EntryType::Regular | tar::EntryType::Continuous => {
                        let node = node_of(name, &header, NodeKind::File);
                        if path == [b"backup_label"] {
                            let mut text = String::new();
                            entry
                                .read_to_string(&mut text)
                                .map_err(|source| DbError::Io { path: "backup_label".into(), source })?;
                            label = Some(Label::parse(&text));
                            b.add_file(writer, PGDATA, &path, node, text.as_bytes(), events, cancel)?;
                        } else {
                            b.add_file(writer, PGDATA, &path, node, &mut entry, events, cancel)?;
                        }
                    }
                    other => {
                        return Err(DbError::Invalid(format!(
                            "pg_basebackup gave a tar entry of type {other:?} at {}",
                            String::from_utf8_lossy(&raw)
                        )))
                    }
                }
            }
            Ok(())
        })?;
        let label = label.ok_or_else(|| DbError::Invalid("pg_basebackup gave no backup_label".into()))?;
        Ok(BTreeMap::from([
            ("engine".to_string(), "postgresql-physical".to_string()),
            ("server".to_string(), self.conn.describe()),
            ("server_version".to_string(), version),
            ("system_identifier".to_string(), sysid),
            ("start_lsn".to_string(), label.start_lsn),
            ("start_wal".to_string(), label.start_wal),
            ("timeline".to_string(), label.timeline),
            ("start_time".to_string(), label.start_time),
            ("end_time".to_string(), chrono_now()),
        ]))
    }
}

/// Now, as RFC 3339 UTC.
fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_label_is_read() {
        let l = Label::parse(
            "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-07 02:55:00 UTC\nLABEL: arca\nSTART TIMELINE: 1\n",
        );
        assert_eq!(l.start_lsn, "0/2000028");
        assert_eq!(l.start_wal, "000000010000000000000002");
        assert_eq!(l.timeline, "1");
        assert_eq!(l.start_time, "2026-12-07 02:55:00 UTC");
    }
}
