//! What a server (`arca serve --stdio` behind an ssh forced command) may serve: one
//! repository, or any repository inside one directory tree.

use crate::{OpsError, OpsResult};
use std::path::{Component, Path, PathBuf};

/// The repositories a server may open.
#[derive(Clone, Debug)]
pub struct ServedTree {
    /// The one repository served (what a forced command's `--repo` gives).
    repo: Option<PathBuf>,
    /// The directory every served repository must lie in (symlinks resolved).
    restrict: Option<PathBuf>,
}

impl ServedTree {
    /// Serve `repo`, or what clients ask for inside `restrict_to`; `repo` must lie inside
    /// `restrict_to` when both are given.
    pub fn new(repo: Option<PathBuf>, restrict_to: Option<&Path>) -> OpsResult<ServedTree> {
        let restrict = match restrict_to {
            Some(d) => Some(
                d.canonicalize()
                    .map_err(|e| OpsError::Io { path: format!("--restrict-to {}", d.display()), source: e })?,
            ),
            None => None,
        };
        if let (Some(r), Some(dir)) = (&repo, &restrict) {
            if !inside(r, dir) {
                let why = format!("{} is not inside --restrict-to {}", r.display(), dir.display());
                return Err(OpsError::bad_option("--repo", why));
            }
        }
        Ok(ServedTree { repo, restrict })
    }

    /// The local path of the repository a client asked for (`asked`, absolute or relative to
    /// the restricting directory). A fixed `repo` wins over what the client asks.
    pub fn resolve(&self, asked: &str) -> OpsResult<PathBuf> {
        match (&self.repo, &self.restrict) {
            (Some(p), _) => Ok(p.clone()),
            (None, Some(dir)) => {
                let asked = Path::new(asked);
                let p = if asked.is_absolute() { asked.to_path_buf() } else { dir.join(asked) };
                if !inside(&p, dir) {
                    return Err(OpsError::OutsideServedTree {
                        path: p.display().to_string(),
                        allowed: dir.display().to_string(),
                    });
                }
                Ok(p)
            }
            (None, None) => {
                Err(OpsError::NothingToDo("this server has neither --repo nor --restrict-to: it serves nothing".into()))
            }
        }
    }
}

/// True if `p` (which may not exist yet) lies inside `dir`: no `..`, and its nearest existing
/// ancestor resolves (symlinks followed) inside `dir`.
fn inside(p: &Path, dir: &Path) -> bool {
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return false;
    }
    let mut existing: PathBuf = p.to_path_buf();
    // `symlink_metadata`, not `exists`: a dangling symlink inside the tree is an entry that
    // exists (and would lead writes out of the tree), not a missing one to step over.
    while std::fs::symlink_metadata(&existing).is_err() {
        match existing.parent() {
            Some(parent) => existing = parent.to_path_buf(),
            None => return false,
        }
    }
    match existing.canonicalize() {
        Ok(c) => c.starts_with(dir),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restricted_server_serves_only_inside_its_tree() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("repos");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("escape")).unwrap();
        std::os::unix::fs::symlink("/var/tmp/arca-no-such-dir/x", dir.join("dangling")).unwrap();
        let t = ServedTree::new(None, Some(&dir)).unwrap();
        let real = dir.canonicalize().unwrap();
        assert_eq!(t.resolve("alice").unwrap(), real.join("alice"));
        assert_eq!(t.resolve("new/not/yet").unwrap(), real.join("new/not/yet"));
        for hostile in ["../x", "/etc", "escape/passwd", "alice/../../x", "escape", "dangling", "dangling/repo"] {
            assert!(matches!(t.resolve(hostile), Err(OpsError::OutsideServedTree { .. })), "{hostile}");
        }
        assert!(ServedTree::new(Some("/etc".into()), Some(&dir)).is_err());
        assert!(ServedTree::new(None, None).unwrap().resolve("x").is_err());
    }
}
