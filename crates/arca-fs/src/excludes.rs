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
    /// The compiled patterns: case-sensitive ones, then (`--iexclude`) case-insensitive ones.
    sets: Vec<Sets>,
    pub exclude_caches: bool,
    pub if_present: Vec<String>,
    pub patterns: Vec<String>,
    /// arca's own files (the repository, its cache, the key file) by device and inode, so no
    /// path that leads there (a symlink, a bind mount, another spelling) backs them up.
    own: HashSet<(u64, u64)>,
}

/// One group of patterns, compiled. Patterns with a `/` match the whole path (one without a
/// leading `/` matches at any depth, as `**/` + it); others match the base name anywhere.
/// Patterns written with a trailing `/` match directories only.
#[derive(Default)]
struct Sets {
    full: Option<GlobSet>,
    names: Option<GlobSet>,
    full_dirs: Option<GlobSet>,
    names_dirs: Option<GlobSet>,
}

impl Sets {
    fn build(patterns: &[String], ignore_case: bool) -> Result<Sets, String> {
        let (mut full, mut names, mut full_dirs, mut names_dirs) = (vec![], vec![], vec![], vec![]);
        for p in patterns {
            let trimmed = p.trim_end_matches('/');
            if trimmed.is_empty() {
                return Err(format!("bad exclude pattern {p:?}: it would exclude everything"));
            }
            let dir_only = trimmed.len() < p.len();
            let (f, n) = if dir_only { (&mut full_dirs, &mut names_dirs) } else { (&mut full, &mut names) };
            match (trimmed.contains('/'), trimmed.starts_with('/')) {
                (false, _) => n.push(trimmed.to_string()),
                (true, true) => f.push(trimmed.to_string()),
                // `src/docs`: that sub-path wherever it lies.
                (true, false) => f.push(format!("**/{trimmed}")),
            }
        }
        Ok(Sets {
            full: build(&full, ignore_case)?,
            names: build(&names, ignore_case)?,
            full_dirs: build(&full_dirs, ignore_case)?,
            names_dirs: build(&names_dirs, ignore_case)?,
        })
    }

    fn matches(&self, path: &Path, is_dir: bool) -> bool {
        let hit = |full: &Option<GlobSet>, names: &Option<GlobSet>| {
            full.as_ref().is_some_and(|g| g.is_match(path))
                || matches!((path.file_name(), names), (Some(n), Some(g)) if g.is_match(n))
        };
        hit(&self.full, &self.names) || (is_dir && self.hit_dirs(path))
    }

    fn hit_dirs(&self, path: &Path) -> bool {
        self.full_dirs.as_ref().is_some_and(|g| g.is_match(path))
            || matches!((path.file_name(), &self.names_dirs), (Some(n), Some(g)) if g.is_match(n))
    }
}

fn build(globs: &[String], ignore_case: bool) -> Result<Option<GlobSet>, String> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob: Glob = GlobBuilder::new(g)
            .literal_separator(true)
            .case_insensitive(ignore_case)
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
        let sets = Sets::build(&patterns, false)?;
        Ok(Excludes { sets: vec![sets], exclude_caches, if_present, patterns, own: HashSet::new() })
    }

    /// Add patterns that match without regard to case (`--iexclude`).
    pub fn with_case_insensitive(mut self, patterns: Vec<String>) -> Result<Excludes, String> {
        if !patterns.is_empty() {
            self.sets.push(Sets::build(&patterns, true)?);
            self.patterns.extend(patterns);
        }
        Ok(self)
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
        self.is_own_at(md.dev(), md.ino())
    }

    /// True if the file numbered `ino` on device `dev` is one of arca's own.
    pub fn is_own_at(&self, dev: u64, ino: u64) -> bool {
        !self.own.is_empty() && self.own.contains(&(dev, ino))
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

    /// True if `path` (absolute; a directory if `is_dir`) is excluded by a pattern.
    pub fn matches(&self, path: &Path, is_dir: bool) -> bool {
        self.sets.iter().any(|s| s.matches(path, is_dir))
    }

    /// True if directory `path` is excluded by a directory-only pattern (`docs/`): for a walk
    /// that already asked [`Excludes::matches`] with `is_dir` false before it knew the type.
    pub fn matches_dir_only(&self, path: &Path) -> bool {
        self.sets.iter().any(|s| s.hit_dirs(path))
    }

    /// True if directory `dir` must be skipped because of its contents.
    pub fn skip_dir(&self, dir: &Path) -> bool {
        self.tags_in(dir).is_some()
    }

    /// If directory `dir` is excluded by a tag file in it (CACHEDIR.TAG, an `--exclude-if-present`
    /// name), the names of those tag files: the backup keeps the directory and its tags, so a
    /// restore shows that something was there and why it is empty (as restic and borg's
    /// `--keep-exclude-tags` do).
    pub fn tags_in(&self, dir: &Path) -> Option<Vec<std::ffi::OsString>> {
        let mut tags = vec![];
        if self.exclude_caches {
            if let Ok(mut f) = std::fs::File::open(dir.join("CACHEDIR.TAG")) {
                let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
                if std::io::Read::read_exact(&mut f, &mut head).is_ok() && head == CACHEDIR_SIGNATURE {
                    tags.push("CACHEDIR.TAG".into());
                }
            }
        }
        tags.extend(self.if_present.iter().filter(|n| dir.join(n).symlink_metadata().is_ok()).map(Into::into));
        (!tags.is_empty()).then_some(tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_full_paths() {
        let e = Excludes::new(vec!["*.tmp".into(), "/data/skip/*".into()], false, vec![]).unwrap();
        assert!(e.matches(Path::new("/x/y/a.tmp"), false));
        assert!(!e.matches(Path::new("/x/y/a.txt"), false));
        assert!(e.matches(Path::new("/data/skip/one"), false));
        assert!(!e.matches(Path::new("/data/skip/one/two"), false));
        assert!(Excludes::new(vec!["[".into()], false, vec![]).is_err());
        assert!(Excludes::new(vec!["/".into()], false, vec![]).is_err());
    }

    /// Issue 17 row 14: `docs/`, `src/docs` and `/abs/src/docs/` matched nothing.
    #[test]
    fn trailing_slashes_and_relative_sub_paths() {
        for p in ["docs/", "src/docs", "/t/src/docs/", "src/docs/"] {
            let e = Excludes::new(vec![p.into()], false, vec![]).unwrap();
            assert!(e.matches(Path::new("/t/src/docs"), true), "{p}");
            assert!(!e.matches(Path::new("/t/src/other"), true), "{p}");
            assert!(!e.matches(Path::new("/t/src/docsx"), true), "{p}");
        }
        let e = Excludes::new(vec!["docs/".into()], false, vec![]).unwrap();
        assert!(!e.matches(Path::new("/t/src/docs"), false), "a trailing slash matches directories only");
        let e = Excludes::new(vec!["src/docs".into()], false, vec![]).unwrap();
        assert!(e.matches(Path::new("/t/src/docs"), false));
        assert!(!e.matches(Path::new("/t/xsrc/docs"), false));
    }

    #[test]
    fn case_insensitive_patterns() {
        let e = Excludes::new(vec!["*.tmp".into()], false, vec![]).unwrap();
        assert!(!e.matches(Path::new("/a/B.TMP"), false));
        let e = e.with_case_insensitive(vec!["*.jpg".into(), "Cache/".into()]).unwrap();
        assert!(e.matches(Path::new("/a/IMG.JPG"), false));
        assert!(e.matches(Path::new("/a/cache"), true));
        assert!(e.matches(Path::new("/a/x.tmp"), false));
        assert!(!e.matches(Path::new("/a/X.TMP"), false), "--exclude stays case-sensitive");
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
