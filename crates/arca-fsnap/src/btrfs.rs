//! btrfs: subvolumes, read-only snapshots, send and receive, through the `btrfs` tool, plus
//! the two kernel requests it has no command for: reading a subvolume's UUIDs and transaction
//! ids (`BTRFS_IOC_GET_SUBVOL_INFO`) and setting its received UUID
//! (`BTRFS_IOC_SET_RECEIVED_SUBVOL`, what `btrfs receive` does at its end, so a later
//! `btrfs send -p` finds the parent). Those two are declared here by hand: the one crate that
//! wraps them binds the C library libbtrfsutil, a system library and headers to install for
//! two structs whose layout the kernel keeps stable.

use crate::{FsnapError, FsnapResult};
use arca_ops::tool;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const HINT: &str = "install btrfs-progs";
/// The inode number of every subvolume's root directory.
const SUBVOL_ROOT_INO: u64 = 256;
/// `BTRFS_ROOT_SUBVOL_RDONLY`: the root item's flag, which GET_SUBVOL_INFO reports (not the
/// ioctl flag `BTRFS_SUBVOL_RDONLY`, 1 << 1).
const FLAG_READONLY: u64 = 1;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Timespec {
    sec: u64,
    nsec: u32,
}

/// `struct btrfs_ioctl_get_subvol_info_args` (linux/btrfs.h).
#[repr(C)]
struct GetSubvolInfoArgs {
    treeid: u64,
    name: [u8; 256],
    parent_id: u64,
    dirid: u64,
    generation: u64,
    flags: u64,
    uuid: [u8; 16],
    parent_uuid: [u8; 16],
    received_uuid: [u8; 16],
    ctransid: u64,
    otransid: u64,
    stransid: u64,
    rtransid: u64,
    ctime: Timespec,
    otime: Timespec,
    stime: Timespec,
    rtime: Timespec,
    reserved: [u64; 8],
}

/// `struct btrfs_ioctl_received_subvol_args` (linux/btrfs.h).
#[repr(C)]
struct ReceivedSubvolArgs {
    uuid: [u8; 16],
    stransid: u64,
    rtransid: u64,
    stime: Timespec,
    rtime: Timespec,
    flags: u64,
    reserved: [u64; 16],
}

nix::ioctl_read!(ioc_get_subvol_info, 0x94, 60, GetSubvolInfoArgs);
nix::ioctl_readwrite!(ioc_set_received_subvol, 0x94, 37, ReceivedSubvolArgs);

/// What btrfs knows about one subvolume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubvolInfo {
    /// Its tree id.
    pub id: u64,
    pub uuid: String,
    /// The UUID of the subvolume it is a snapshot of.
    pub parent_uuid: Option<String>,
    /// The UUID of the subvolume it was received from (`btrfs receive`, `arca btrfs pull`).
    pub received_uuid: Option<String>,
    pub generation: u64,
    /// The transaction of its last change: what `btrfs send` records and `receive` checks.
    pub ctransid: u64,
    /// The transaction it was created in (snapshots sort by it).
    pub otransid: u64,
    /// The source's `ctransid`, for a received subvolume.
    pub stransid: u64,
    /// Creation time, seconds since the epoch.
    pub otime: i64,
    pub readonly: bool,
}

/// Formats a UUID as btrfs prints it; `None` for the all-zero "none".
fn uuid_text(b: &[u8; 16]) -> Option<String> {
    if b.iter().all(|&x| x == 0) {
        return None;
    }
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]))
}

/// Reads a UUID written as [`uuid_text`] writes it.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|&c| c != b'-').collect();
    if hex.len() != 32 || s.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

fn open_dir(path: &Path) -> FsnapResult<std::fs::File> {
    std::fs::File::open(path).map_err(|e| FsnapError::io(path, e))
}

/// True if `path` is on btrfs.
pub fn is_btrfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::BTRFS_SUPER_MAGIC)
}

/// True if `path` is the root of a btrfs subvolume.
pub fn is_subvolume(path: &Path) -> bool {
    is_btrfs(path) && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && m.ino() == SUBVOL_ROOT_INO)
}

/// The UUIDs and transaction ids of the subvolume `path` is the root of.
pub fn subvolume_info(path: &Path) -> FsnapResult<SubvolInfo> {
    use std::os::fd::AsRawFd;
    let f = open_dir(path)?;
    // SAFETY: an all-zero bit pattern is valid for this plain-data struct.
    let mut args: GetSubvolInfoArgs = unsafe { std::mem::zeroed() };
    // SAFETY: the fd is open for the call and `args` has the kernel's layout (a unit test
    // checks its size against the header's).
    unsafe { ioc_get_subvol_info(f.as_raw_fd(), &mut args) }.map_err(|errno| FsnapError::Ioctl {
        path: path.to_path_buf(),
        what: "reading subvolume information (is it a btrfs subvolume?)",
        errno,
    })?;
    Ok(SubvolInfo {
        id: args.treeid,
        uuid: uuid_text(&args.uuid).unwrap_or_default(),
        parent_uuid: uuid_text(&args.parent_uuid),
        received_uuid: uuid_text(&args.received_uuid),
        generation: args.generation,
        ctransid: args.ctransid,
        otransid: args.otransid,
        stransid: args.stransid,
        otime: args.otime.sec as i64,
        readonly: args.flags & FLAG_READONLY != 0,
    })
}

/// Record that the (writable) subvolume `path` was received from the subvolume `uuid` at its
/// transaction `stransid`, as `btrfs receive` does before it makes a subvolume read-only.
pub fn set_received(path: &Path, uuid: &str, stransid: u64) -> FsnapResult<()> {
    use std::os::fd::AsRawFd;
    let bytes = parse_uuid(uuid).ok_or_else(|| FsnapError::Invalid(format!("{uuid:?} is not a UUID")))?;
    let f = open_dir(path)?;
    let mut args = ReceivedSubvolArgs {
        uuid: bytes,
        stransid,
        rtransid: 0,
        stime: Timespec::default(),
        rtime: Timespec::default(),
        flags: 0,
        reserved: [0; 16],
    };
    // SAFETY: as in `subvolume_info`.
    unsafe { ioc_set_received_subvol(f.as_raw_fd(), &mut args) }.map_err(|errno| FsnapError::Ioctl {
        path: path.to_path_buf(),
        what: "setting the received UUID",
        errno,
    })?;
    Ok(())
}

/// The root of the subvolume holding `path` (the highest directory above it on the same
/// device: every subvolume has a device number of its own).
pub fn subvolume_root(path: &Path) -> FsnapResult<PathBuf> {
    let path = std::fs::canonicalize(path).map_err(|e| FsnapError::io(path, e))?;
    let dev = std::fs::metadata(&path).map_err(|e| FsnapError::io(&path, e))?.dev();
    let mut root = path.clone();
    while let Some(up) = root.parent() {
        match std::fs::metadata(up) {
            Ok(m) if m.dev() == dev => root = up.to_path_buf(),
            _ => break,
        }
    }
    if !is_subvolume(&root) {
        return Err(FsnapError::Unsupported {
            path,
            why: format!("{} should be the root of its btrfs subvolume but is not", root.display()),
        });
    }
    Ok(root)
}

fn btrfs(args: &[&std::ffi::OsStr]) -> FsnapResult<String> {
    let mut c = Command::new("btrfs");
    c.args(args);
    Ok(tool::output(c, "btrfs", HINT)?)
}

/// `btrfs subvolume snapshot [-r] SOURCE DEST`.
pub fn snapshot(source: &Path, dest: &Path, readonly: bool) -> FsnapResult<()> {
    let mut args: Vec<&std::ffi::OsStr> = vec!["subvolume".as_ref(), "snapshot".as_ref()];
    if readonly {
        args.push("-r".as_ref());
    }
    args.extend([source.as_os_str(), dest.as_os_str()]);
    btrfs(&args).map(drop)
}

/// `btrfs subvolume create PATH`.
pub fn create(path: &Path) -> FsnapResult<()> {
    btrfs(&["subvolume".as_ref(), "create".as_ref(), path.as_os_str()]).map(drop)
}

/// `btrfs subvolume delete PATH` (read-only ones too).
pub fn delete(path: &Path) -> FsnapResult<()> {
    btrfs(&["subvolume".as_ref(), "delete".as_ref(), path.as_os_str()]).map(drop)
}

/// Make a subvolume read-only or writable (`btrfs property set -ts PATH ro …`). Making one
/// writable drops its received UUID (`-f`: it may then differ from what it was received from).
pub fn set_readonly(path: &Path, readonly: bool) -> FsnapResult<()> {
    let mut args: Vec<&std::ffi::OsStr> = vec!["property".as_ref(), "set".as_ref()];
    if !readonly {
        args.push("-f".as_ref());
    }
    args.extend(["-ts".as_ref(), path.as_os_str(), "ro".as_ref(), if readonly { "true" } else { "false" }.as_ref()]);
    btrfs(&args).map(drop)
}

/// The subvolumes directly inside `dir`, by name.
pub fn subvolumes_in(dir: &Path) -> FsnapResult<Vec<(String, SubvolInfo)>> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).map_err(|e| FsnapError::io(dir, e))? {
        let e = e.map_err(|e| FsnapError::io(dir, e))?;
        let path = e.path();
        if !is_subvolume(&path) {
            continue;
        }
        let Some(name) = e.file_name().to_str().map(String::from) else {
            // A name that is not UTF-8 cannot be recorded as a snapshot set member's name.
            tracing::warn!("{}: name is not UTF-8; left out", path.display());
            continue;
        };
        out.push((name, subvolume_info(&path)?));
    }
    out.sort_by_key(|(name, info)| (info.otransid, name.clone()));
    Ok(out)
}

/// How much of the subvolumes at `paths` btrfs counts as theirs alone and as shared
/// (`btrfs filesystem du -s --raw`): one `(total, exclusive, shared)` per path, and the
/// shared bytes of all of them together last.
pub fn disk_usage(paths: &[PathBuf]) -> FsnapResult<Vec<(u64, u64, u64)>> {
    let mut args: Vec<&std::ffi::OsStr> = vec!["filesystem".as_ref(), "du".as_ref(), "-s".as_ref(), "--raw".as_ref()];
    args.extend(paths.iter().map(|p| p.as_os_str()));
    let text = btrfs(&args)?;
    let rows = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut w = l.split_whitespace().map(|x| x.parse::<u64>().ok());
            Some((w.next()??, w.next()??, w.next().flatten().unwrap_or(0)))
        })
        .collect();
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_have_the_kernel_layout() {
        // sizeof in linux/btrfs.h (the ioctl numbers encode them).
        assert_eq!(std::mem::size_of::<GetSubvolInfoArgs>(), 504);
        assert_eq!(std::mem::size_of::<ReceivedSubvolArgs>(), 200);
    }

    #[test]
    fn uuids_round_trip() {
        let b: [u8; 16] = *b"\x01\x23\x45\x67\x89\xab\xcd\xef\x00\x11\x22\x33\x44\x55\x66\x77";
        let t = uuid_text(&b).unwrap();
        assert_eq!(t, "01234567-89ab-cdef-0011-223344556677");
        assert_eq!(parse_uuid(&t), Some(b));
        assert_eq!(uuid_text(&[0; 16]), None);
        assert_eq!(parse_uuid("0123456789abcdef0011223344556677"), None);
        assert_eq!(parse_uuid("01234567-89ab-cdef-0011-22334455667g"), None);
    }
}
