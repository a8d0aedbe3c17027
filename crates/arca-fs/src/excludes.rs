//! What a backup leaves out: globs, cache directories (CACHEDIR.TAG), directories holding a
//! marker file, other filesystems.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The signature a valid CACHEDIR.TAG starts with (https://bford.info/cachedir/).
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// Compiled exclusion rules.
#[derive(Default)]
pub struct Excludes {
    /// Patterns with a `/` match the whole path; others match the base name anywhere.
    full: Option<GlobSet>,
    names: Option<GlobSet>,
    pub exclude_caches: bool,
    pub if_present: Vec<String>,
    pub patterns: Vec<String>,
    /// arca's own files (the repository, its cache, the key file) by device and inode, so no
    /// path that leads there (a symlink, a bind mount, another spelling) backs them up.
    own: HashSet<(u64, u64)>,
}

fn build(globs: &[String]) -> Result<Option<GlobSet>, String> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob: Glob = GlobBuilder::new(g)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("bad exclude pattern {g:?}: {e}"))?;
        b.add(glob);
        // `dir/**`-free patterns also exclude what lies below a matching directory, which the
        // walk does by not descending.
    }
    b.build().map(Some).map_err(|e| e.to_string())
}

impl Excludes {
    /// Compile patterns; lines of exclude files are passed here too (comments and blanks
    /// already removed).
    pub fn new(patterns: Vec<String>, exclude_caches: bool, if_present: Vec<String>) -> Result<Excludes, String> {
        let (full, names): (Vec<String>, Vec<String>) = patterns.iter().cloned().partition(|p| p.contains('/'));
        Ok(Excludes {
            full: build(&full)?,
            names: build(&names)?,
            exclude_caches,
            if_present,
            patterns,
            own: HashSet::new(),
        })
    }

    /// Never back up `paths` (arca's own repository, cache and key files); those that do not
    /// exist are ignored.
    pub fn with_own(mut self, paths: &[std::path::PathBuf]) -> Excludes {
        for p in paths {
            if let Ok(md) = std::fs::metadata(p) {
                self.own.insert((md.dev(), md.ino()));
            }
        }
        self
    }

    /// True if `md` is one of arca's own files or directories.
    pub fn is_own(&self, md: &std::fs::Metadata) -> bool {
        !self.own.is_empty() && self.own.contains(&(md.dev(), md.ino()))
    }

    /// Read an exclude file: one pattern per line, `#` comments and blank lines skipped.
    pub fn read_file(path: &Path) -> std::io::Result<Vec<String>> {
        Ok(std::fs::read_to_string(path)?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect())
    }

    /// True if `path` (absolute) is excluded by a pattern.
    pub fn matches(&self, path: &Path) -> bool {
        if self.full.as_ref().is_some_and(|g| g.is_match(path)) {
            return true;
        }
        match (path.file_name(), &self.names) {
            (Some(n), Some(g)) => g.is_match(n),
            _ => false,
        }
    }

    /// True if directory `dir` must be skipped because of its contents.
    pub fn skip_dir(&self, dir: &Path) -> bool {
        if self.exclude_caches {
            if let Ok(mut f) = std::fs::File::open(dir.join("CACHEDIR.TAG")) {
                let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
                if std::io::Read::read_exact(&mut f, &mut head).is_ok() && head == CACHEDIR_SIGNATURE {
                    return true;
                }
            }
        }
        self.if_present.iter().any(|n| dir.join(n).symlink_metadata().is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_full_paths() {
        let e = Excludes::new(vec!["*.tmp".into(), "/data/skip/*".into()], false, vec![]).unwrap();
        assert!(e.matches(Path::new("/x/y/a.tmp")));
        assert!(!e.matches(Path::new("/x/y/a.txt")));
        assert!(e.matches(Path::new("/data/skip/one")));
        assert!(!e.matches(Path::new("/data/skip/one/two")));
        assert!(Excludes::new(vec!["[".into()], false, vec![]).is_err());
    }

    #[test]
    fn cache_dirs_and_markers() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("CACHEDIR.TAG"), CACHEDIR_SIGNATURE).unwrap();
        assert!(Excludes::new(vec![], true, vec![]).unwrap().skip_dir(d.path()));
        assert!(!Excludes::new(vec![], false, vec![]).unwrap().skip_dir(d.path()));
        std::fs::write(d.path().join(".nobackup"), b"").unwrap();
        assert!(Excludes::new(vec![], false, vec![".nobackup".into()]).unwrap().skip_dir(d.path()));
    }
}
