//! Compare a snapshot's tree with the live filesystem. With `content`, files are read and
//! chunked again and their blob ids compared, which finds contents that changed while the
//! metadata says they did not (a replaced binary with its mtime put back).

use crate::meta::{node_from, read_xattrs, NameCache};
use crate::FsResult;
use arca_chunker::Chunker;
use arca_format::{Id, Node, NodeKind};
use arca_repo::diff::{node_differences, Change};
use arca_repo::keyring::ContentKey;
use arca_repo::Repository;
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Differences from the snapshot tree `tree` (absent: empty) to directory `dir` on disk;
/// `key` is the snapshot's class's content key (contents are compared by blob id).
pub fn diff_live(
    repo: &Repository,
    key: &ContentKey,
    tree: Option<&Id>,
    dir: &Path,
    content: bool,
    excludes: &crate::Excludes,
) -> FsResult<Vec<Change>> {
    let chunker = repo.chunker_for(key)?;
    let mut out = vec![];
    let mut names = NameCache::default();
    let ctx = Walk { repo, key, chunker: &chunker, content, excludes };
    ctx.walk(tree, dir, &mut names, &mut out)?;
    Ok(out)
}

/// What stays the same through one live diff.
struct Walk<'a> {
    repo: &'a Repository,
    key: &'a ContentKey,
    chunker: &'a Chunker,
    content: bool,
    /// Files on disk a backup would leave out are not "added".
    excludes: &'a crate::Excludes,
}

fn content_ids(key: &ContentKey, chunker: &Chunker, path: &Path) -> std::io::Result<Vec<Id>> {
    let f = std::fs::File::open(path)?;
    let mut stream = chunker.stream(f);
    let mut ids = vec![];
    while let Some(c) = stream.next_chunk()? {
        ids.push(key.blob_id(c));
    }
    Ok(ids)
}

impl Walk<'_> {
    fn walk(&self, tree: Option<&Id>, dir: &Path, names: &mut NameCache, out: &mut Vec<Change>) -> FsResult<()> {
        let (repo, chunker, content) = (self.repo, self.chunker, self.content);
        let stored: BTreeMap<Vec<u8>, Node> = match tree {
            Some(id) => repo.read_tree(id)?.nodes.into_iter().map(|n| (n.name.to_vec(), n)).collect(),
            None => BTreeMap::new(),
        };
        let mut live: BTreeMap<Vec<u8>, std::fs::Metadata> = BTreeMap::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if let Ok(md) = e.path().symlink_metadata() {
                    if self.excludes.matches(&e.path(), md.is_dir()) {
                        continue;
                    }
                    live.insert(e.file_name().as_bytes().to_vec(), md);
                }
            }
        }
        let mut all: Vec<&Vec<u8>> = stored.keys().chain(live.keys()).collect();
        all.sort();
        all.dedup();
        for name in all {
            let path = dir.join(std::ffi::OsStr::from_bytes(name));
            let shown = path.display().to_string();
            match (stored.get(name), live.get(name)) {
                (Some(_), None) => out.push(Change { op: '-', path: shown, what: vec![] }),
                (None, Some(md)) => {
                    out.push(Change { op: '+', path: shown, what: vec![] });
                    if md.is_dir() {
                        self.walk(None, &path, names, out)?;
                    }
                }
                (Some(n), Some(md)) => {
                    let mut now = node_from(name, md, names);
                    now.xattrs = read_xattrs(&path).unwrap_or_default();
                    if let Ok(t) = std::fs::read_link(&path) {
                        now.target = Some(serde_bytes::ByteBuf::from(t.as_os_str().as_bytes().to_vec()));
                    }
                    if now.kind != n.kind {
                        out.push(Change { op: 'T', path: shown, what: vec!["type"] });
                        continue;
                    }
                    now.content = n.content.clone();
                    now.holes = n.holes.clone();
                    let mut what = node_differences(n, &now);
                    if content && n.kind == NodeKind::File && n.holes.is_empty() {
                        match content_ids(self.key, chunker, &path) {
                            Ok(ids) if ids != n.content => what.insert(0, "content"),
                            Ok(_) => {}
                            Err(_) => what.insert(0, "unreadable"),
                        }
                    }
                    if !what.is_empty() {
                        out.push(Change { op: 'M', path: shown, what });
                    }
                    if n.kind == NodeKind::Dir {
                        self.walk(n.subtree.as_ref(), &path, names, out)?;
                    }
                }
                (None, None) => {}
            }
        }
        Ok(())
    }
}
