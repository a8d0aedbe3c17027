//! Which mount a path is on (`/proc/self/mountinfo`): the filesystem type and source an LVM
//! or ZFS snapshot needs.

use std::path::{Path, PathBuf};

/// One line of mountinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub point: PathBuf,
    /// The directory of the filesystem mounted there (`/` unless a bind mount of a part).
    pub root: PathBuf,
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
            let mut fields = left.split(' ').skip(3);
            let root = fields.next()?;
            let point = fields.next()?;
            let mut r = right.split(' ');
            let fstype = r.next()?;
            let source = r.next()?;
            Some(Mount {
                point: PathBuf::from(unescape(point)),
                root: PathBuf::from(unescape(root)),
                fstype: fstype.into(),
                source: unescape(source),
            })
        })
        .collect()
}

/// The mount `path` (absolute, canonical) is on: the deepest mount point above it, the last
/// mounted where several share one.
pub fn mount_of<'m>(mounts: &'m [Mount], path: &Path) -> Option<&'m Mount> {
    mounts.iter().filter(|m| path.starts_with(&m.point)).max_by_key(|m| m.point.components().count())
}

/// The mounts strictly below `path` that are not below another of them: the filesystems a
/// walk of `path` crosses into first (one per mount point, the last mounted).
pub fn below<'m>(mounts: &'m [Mount], path: &Path) -> Vec<&'m Mount> {
    let mut points: Vec<&Mount> = vec![];
    for m in mounts.iter().rev() {
        if m.point != path && m.point.starts_with(path) && !points.iter().any(|p| p.point == m.point) {
            points.push(m);
        }
    }
    points.sort_by_key(|m| m.point.components().count());
    let mut top: Vec<&Mount> = vec![];
    for m in points {
        if !top.iter().any(|t| m.point.starts_with(&t.point)) {
            top.push(m);
        }
    }
    top
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
        assert_eq!(m[1].root, Path::new("/"));
        let under: Vec<_> = below(&m, Path::new("/")).iter().map(|m| m.source.clone()).collect();
        assert_eq!(under, ["/dev/mapper/vg0-home2", "tank/data"]);
        assert!(below(&m, Path::new("/home")).is_empty());
        let nested = parse("1 0 8:1 / / rw - ext4 a rw\n2 1 0:5 / /proc rw - proc proc rw\n3 2 0:6 / /proc/sys/fs/binfmt_misc rw - binfmt_misc b rw\n4 1 8:2 /srv/x /mnt/bind rw - ext4 a rw\n");
        let under: Vec<_> = below(&nested, Path::new("/")).iter().map(|m| m.point.clone()).collect();
        assert_eq!(under, [Path::new("/proc"), Path::new("/mnt/bind")]);
        assert_eq!(nested[3].root, Path::new("/srv/x"));
    }
}
