//! How a database snapshot is laid out: one directory per engine, one file per database.
//!
//! ```text
//! /postgres/@globals.sql        roles and tablespaces (pg_dumpall --globals-only)
//! /postgres/<database>.dump     pg_dump --format=custom, uncompressed (arca compresses, and
//!                               uncompressed dumps deduplicate from one day to the next)
//! /mariadb/@system.sql          users, grants, roles (mariadb-dump --system=users,...)
//! /mariadb/<database>.sql       mariadb-dump --single-transaction --routines --events
//! /sqlite/<its path>            the database file as VACUUM INTO copied it
//! ```
//!
//! A database's name becomes a file name with `%`, `/`, control characters and a leading `.`
//! or `@` written as `%XX` (`@` starts only the engine-wide entries); `entries` reverses it.
//! Nothing else is special: `arca restore` and `ls` of such a snapshot see plain files.

use crate::{DbError, DbResult};
use arca_format::{Id, Node, NodeKind, Snapshot, SnapshotSummary};
use arca_repo::{BlobWriter, Cancel, Events, Repository};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// The engine an entry belongs to (the snapshot's top-level directory).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgres,
    Mariadb,
    Sqlite,
}

impl Engine {
    /// Its directory in a snapshot.
    pub fn dir(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mariadb => "mariadb",
            Engine::Sqlite => "sqlite",
        }
    }

    /// The extension of its per-database files.
    fn extension(self) -> &'static str {
        match self {
            Engine::Postgres => ".dump",
            Engine::Mariadb => ".sql",
            Engine::Sqlite => "",
        }
    }

    fn from_dir(dir: &[u8]) -> Option<Engine> {
        [Engine::Postgres, Engine::Mariadb, Engine::Sqlite].into_iter().find(|e| e.dir().as_bytes() == dir)
    }
}

/// One stored file of a database snapshot.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Entry {
    pub engine: Engine,
    /// The database's name (SQLite: the path it was backed up from); for an engine-wide
    /// entry, its name without the `@` (`globals`, `system`).
    pub database: String,
    /// An engine-wide entry (roles, grants) rather than one database.
    pub global: bool,
    /// Its path in the snapshot.
    pub path: String,
    pub size: u64,
    #[serde(skip)]
    pub node: Node,
}

/// The databases a dump takes: every one the server has (`all`) when none is `wanted`,
/// else the wanted ones, each of which must exist on the server `server` describes.
pub fn choose(all: Vec<String>, wanted: &[String], server: &str) -> DbResult<Vec<String>> {
    if wanted.is_empty() {
        return Ok(all);
    }
    match wanted.iter().find(|d| !all.contains(d)) {
        Some(d) => Err(DbError::Invalid(format!("{server} has no database {d:?} (it has: {})", all.join(", ")))),
        None => Ok(wanted.to_vec()),
    }
}

/// The file name holding database `name` of `engine`.
pub fn file_name(engine: Engine, name: &str) -> DbResult<String> {
    if name.is_empty() {
        return Err(DbError::Invalid("a database name cannot be empty".into()));
    }
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        let leading = i == 0 && (c == '.' || c == '@');
        if leading || c == '%' || c == '/' || c.is_control() {
            let mut b = [0u8; 4];
            for byte in c.encode_utf8(&mut b).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    Ok(out + engine.extension())
}

/// The database a file name holds (the reverse of [`file_name`]); `None` if it is not one.
fn database_of(engine: Engine, file: &str) -> Option<String> {
    let stem = file.strip_suffix(engine.extension())?;
    let mut bytes = vec![];
    let mut it = stem.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hex = [it.next()?, it.next()?];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).ok()
}

/// A directory being filled: its own metadata (if a source gave it), files and
/// subdirectories by name.
#[derive(Default)]
struct Dir {
    meta: Option<Node>,
    files: Vec<Node>,
    dirs: BTreeMap<Vec<u8>, Dir>,
}

/// Collects the streams of one backup and stores the snapshot's tree.
#[derive(Default)]
pub struct Builder {
    root: Dir,
    pub summary: SnapshotSummary,
}

impl Builder {
    /// The directory `parents` below the top-level directory `top`, made as needed.
    fn dir(&mut self, top: &str, parents: &[&[u8]]) -> &mut Dir {
        let mut dir = self.root.dirs.entry(top.as_bytes().to_vec()).or_default();
        for p in parents {
            dir = dir.dirs.entry(p.to_vec()).or_default();
        }
        dir
    }

    /// Store everything `reader` gives as the file `path` (components below the engine's
    /// directory) of `engine`; returns its size.
    pub fn add_stream(
        &mut self,
        writer: &BlobWriter,
        engine: Engine,
        path: &[&[u8]],
        reader: impl Read,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> DbResult<u64> {
        let Some(name) = path.last() else { return Err(DbError::Invalid("an entry needs a name".into())) };
        let node = arca_fs::backup::stream_node(name, vec![], 0);
        self.add_file(writer, engine.dir(), path, node, reader, events, cancel)
    }

    /// Store everything `reader` gives as the file `path` below the top-level directory
    /// `top`, with `node`'s metadata (its name must be the last component); returns its size.
    #[allow(clippy::too_many_arguments)]
    pub fn add_file(
        &mut self,
        writer: &BlobWriter,
        top: &str,
        path: &[&[u8]],
        mut node: Node,
        reader: impl Read,
        events: &dyn Events,
        cancel: &Cancel,
    ) -> DbResult<u64> {
        let Some((_, parents)) = path.split_last() else {
            return Err(DbError::Invalid("an entry needs a name".into()));
        };
        let shown = Path::new(top).join(String::from_utf8_lossy(&path.join(&b'/')).as_ref());
        let (blobs, size) = arca_fs::backup::store_stream(writer, reader, &shown, events, cancel)?;
        node.content = blobs;
        node.size = size;
        self.dir(top, parents).files.push(node);
        self.summary.files_new += 1;
        self.summary.files_read += 1;
        self.summary.bytes_read += size;
        self.summary.total_bytes += size;
        Ok(size)
    }

    /// Record directory `path` below `top` with `meta`'s metadata (mode, owner, times).
    pub fn add_dir(&mut self, top: &str, path: &[&[u8]], meta: Node) {
        self.dir(top, path).meta = Some(meta);
    }

    /// Record an entry without contents (a symbolic link, ...) at `path` below `top`.
    pub fn add_other(&mut self, top: &str, path: &[&[u8]], node: Node) {
        let parents = path.split_last().map(|(_, p)| p).unwrap_or_default();
        self.dir(top, parents).files.push(node);
        self.summary.other_nodes += 1;
    }

    /// Store the directories and return the root tree.
    pub fn finish(self, writer: &BlobWriter) -> DbResult<(Id, SnapshotSummary)> {
        fn store(writer: &BlobWriter, dir: Dir, summary: &mut SnapshotSummary) -> DbResult<Id> {
            let mut nodes = dir.files;
            for (name, sub) in dir.dirs {
                let meta = sub.meta.clone();
                let id = store(writer, sub, summary)?;
                summary.dirs += 1;
                let node = match meta {
                    Some(mut m) => {
                        m.name = serde_bytes::ByteBuf::from(name);
                        m.kind = NodeKind::Dir;
                        m.subtree = Some(id);
                        m
                    }
                    None => arca_fs::backup::dir_node(&name, id),
                };
                nodes.push(node);
            }
            Ok(arca_fs::backup::store_tree(writer, nodes)?)
        }
        let mut summary = self.summary;
        let root = store(writer, self.root, &mut summary)?;
        Ok((root, summary))
    }
}

/// Every entry of a database snapshot, by engine and name.
pub fn entries(repo: &Repository, snapshot: &Snapshot) -> DbResult<Vec<Entry>> {
    if snapshot.kind != arca_format::SnapshotKind::Database {
        return Err(DbError::NotInSnapshot(format!(
            "it is a snapshot of kind {:?}, not a database backup (`arca db backup` makes those)",
            snapshot.kind
        )));
    }
    let mut out = vec![];
    for dir in repo.read_tree(&snapshot.tree)?.nodes {
        let (Some(engine), Some(sub)) = (Engine::from_dir(&dir.name), dir.subtree) else { continue };
        let mut stack = vec![(sub, String::new())];
        while let Some((tree, prefix)) = stack.pop() {
            for n in repo.read_tree(&tree)?.nodes {
                let name = String::from_utf8_lossy(&n.name).into_owned();
                let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
                match (n.kind, n.subtree) {
                    (NodeKind::Dir, Some(t)) if engine == Engine::Sqlite => stack.push((t, rel)),
                    (NodeKind::File, _) => {
                        let (database, global) = match (engine, name.strip_prefix('@')) {
                            (Engine::Sqlite, _) => (format!("/{rel}"), false),
                            (_, Some(g)) => (g.trim_end_matches(".sql").to_string(), true),
                            (_, None) => match database_of(engine, &name) {
                                Some(d) => (d, false),
                                None => continue,
                            },
                        };
                        out.push(Entry {
                            engine,
                            database,
                            global,
                            path: format!("/{}/{rel}", engine.dir()),
                            size: n.size,
                            node: n,
                        });
                    }
                    _ => {}
                }
            }
        }
    }
    out.sort_by(|a, b| (a.engine, !a.global, &a.database).cmp(&(b.engine, !b.global, &b.database)));
    Ok(out)
}

/// The entry of `engine` holding `database` (or, with `global`, the engine-wide one).
pub fn find<'a>(all: &'a [Entry], engine: Engine, database: &str) -> DbResult<&'a Entry> {
    all.iter().find(|e| e.engine == engine && !e.global && e.database == database).ok_or_else(|| {
        let have: Vec<&str> =
            all.iter().filter(|e| e.engine == engine && !e.global).map(|e| e.database.as_str()).collect();
        DbError::NotInSnapshot(if have.is_empty() {
            format!("the snapshot holds no {} database", engine.dir())
        } else {
            format!("the snapshot has no {} database {database:?}; it has: {}", engine.dir(), have.join(", "))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_round_trip_through_file_names() {
        for name in ["app", "with space", "a/b", "100%", ".hidden", "@at", "tab\there", "ünïcode", "globals"] {
            for engine in [Engine::Postgres, Engine::Mariadb] {
                let f = file_name(engine, name).unwrap();
                assert!(!f.contains('/') && !f.starts_with('.') && !f.starts_with('@'), "{f}");
                assert_eq!(database_of(engine, &f).as_deref(), Some(name), "{f}");
            }
        }
        assert!(file_name(Engine::Postgres, "").is_err());
        assert_eq!(database_of(Engine::Postgres, "broken%4.dump"), None);
    }
}
