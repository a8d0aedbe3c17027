//! The local cache directory of a repository: private (0700), and tagged with a CACHEDIR.TAG
//! so that backup tools (arca's `--exclude-caches`, restic, borg, tar) leave it out.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

/// The tag's contents (https://bford.info/cachedir/).
const TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by arca.\n# For information about cache directory tags see https://bford.info/cachedir/\n";

/// Create `dir` (and its parents) private to this user if missing, and tag it as a cache.
pub fn create(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let tag = dir.join("CACHEDIR.TAG");
    if std::fs::symlink_metadata(&tag).is_err() {
        std::fs::write(&tag, TAG)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_and_tagged() {
        let d = tempfile::tempdir().unwrap();
        let c = d.path().join("a/b");
        super::create(&c).unwrap();
        assert_eq!(std::fs::metadata(&c).unwrap().permissions().mode() & 0o777, 0o700);
        let tag = std::fs::read_to_string(c.join("CACHEDIR.TAG")).unwrap();
        assert!(tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55"));
        super::create(&c).unwrap();
    }
}
