//! Which mount a path is on (`/proc/self/mountinfo`): the filesystem type and source an LVM
//! or ZFS snapshot needs.

use std::path::{Path, PathBuf};

/// One line of mountinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub point: PathBuf,
    pub fstype: String,
    /// The device or dataset (`/dev/mapper/vg-home`, `tank/home`).
    pub source: String,
}

/// Undo mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = (i + 3 < b.len() && b[i] == b'\\')
            .then(|| {
                b[i + 1..i + 4]
                    .iter()
                    .try_fold(0u16, |v, &c| (b'0'..=b'7').contains(&c).then(|| v * 8 + u16::from(c - b'0')))
            })
            .flatten()
            .and_then(|v| u8::try_from(v).ok());
        if let Some(byte) = octal {
            out.push(byte);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mounts listed in `mountinfo` text, in order.
pub fn parse(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let fstype = r.next()?;
            let source = r.next()?;
            Some(Mount { point: PathBuf::from(unescape(point)), fstype: fstype.into(), source: unescape(source) })
        })
        .collect()
}

/// The mount `path` (absolute, canonical) is on: the deepest mount point above it, the last
/// mounted where several share one.
pub fn mount_of<'m>(mounts: &'m [Mount], path: &Path) -> Option<&'m Mount> {
    mounts.iter().filter(|m| path.starts_with(&m.point)).max_by_key(|m| m.point.components().count())
}

/// This process's mounts.
pub fn current() -> std::io::Result<Vec<Mount>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 253:0 / /home rw,relatime shared:2 - xfs /dev/mapper/vg0-home rw,attr2
31 22 0:40 / /srv/my\\040data rw shared:3 - zfs tank/data rw,xattr
32 22 0:41 / /home rw shared:4 - ext4 /dev/mapper/vg0-home2 rw
";

    #[test]
    fn finds_the_deepest_and_latest_mount() {
        let m = parse(INFO);
        assert_eq!(m.len(), 4);
        assert_eq!(m[2].point, Path::new("/srv/my data"));
        let home = mount_of(&m, Path::new("/home/a/b")).unwrap();
        assert_eq!(home.source, "/dev/mapper/vg0-home2");
        assert_eq!(mount_of(&m, Path::new("/srv/my data/x")).unwrap().fstype, "zfs");
        assert_eq!(mount_of(&m, Path::new("/etc")).unwrap().point, Path::new("/"));
        assert_eq!(mount_of(&m, Path::new("/homework")).unwrap().point, Path::new("/"));
    }
}
