//! A machine's description: its disks and partition tables, the filesystems on them with the
//! parameters that make them what they are (UUIDs, labels, features, block and inode sizes),
//! where they are mounted, swap, RAID, LVM and LUKS as their tools report them, the boot
//! configuration, the installed packages and how much lives under each directory. Captured
//! through the tools a rescue system also has (`sfdisk`, `blkid`, `tune2fs`, `xfs_db`,
//! `btrfs`, `mkswap`'s `blkid` view, `mdadm`, `lvm`, `cryptsetup`, `dpkg`), as JSON for
//! [`crate::script`] and as text for a person deciding how to rebuild. What a machine lacks
//! is recorded as absent, not as an error.

use crate::{MachineError, MachineResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The whole description.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub hostname: String,
    pub kernel: String,
    pub cmdline: String,
    /// The directory described as the machine's `/` (a chroot or a mounted disk: not always `/`).
    pub root: PathBuf,
    pub disks: Vec<Disk>,
    /// Filesystems mounted under the root, by mount point relative to it (`/`, `/srv`).
    pub mounts: Vec<Mounted>,
    pub fstab: Option<String>,
    pub crypttab: Option<String>,
    /// `mdadm --detail --scan --verbose`, if any arrays run.
    pub raid: Option<String>,
    /// `pvs`, `vgs`, `lvs` as JSON reports, and `vgcfgbackup` files by volume group.
    pub lvm: Option<Lvm>,
    /// The boot configuration: GRUB's config file, EFI boot entries.
    pub boot: Boot,
    pub packages: Option<Packages>,
    /// Bytes, files and hard links under each directory, to `depth` levels below each mount.
    pub usage: Vec<DirUsage>,
    /// Parts that could not be captured, with why (a tool missing, a device unreadable).
    pub absent: Vec<String>,
    /// Device names as the tools reported them (RAID arrays and members, LVM's physical
    /// volumes, GRUB's install devices, the disks given) mapped to the kernel's node: the
    /// same array may be `/dev/md/0` to mdadm and `/dev/md127` to the kernel, a disk
    /// `/dev/disk/by-id/…` to one and `/dev/sda` to another.
    #[serde(default)]
    pub device_nodes: BTreeMap<String, String>,
}

impl Machine {
    /// The kernel's node for a device name as a tool reported it (itself when unknown).
    pub fn node<'a>(&'a self, name: &'a str) -> &'a str {
        self.device_nodes.get(name).map(String::as_str).unwrap_or(name)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Disk {
    /// The device or image file.
    pub path: PathBuf,
    pub size: u64,
    /// `sfdisk --dump`: applied as it is to recreate the table (label, ids, every partition).
    pub table: Option<String>,
    /// `gpt` or `dos`.
    pub label: Option<String>,
    pub partitions: Vec<Partition>,
    /// A filesystem on the whole disk (no table).
    pub filesystem: Option<Filesystem>,
    /// The devices it is made of, by kernel node (`/dev/sda3` under an opened LUKS
    /// container, the members under an array): how a recovery knows what to make first.
    #[serde(default)]
    pub slaves: Vec<String>,
    /// How the disk is known apart from others (`lsblk`'s model, serial and WWN), so a
    /// person matches the description with the hardware.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub wwn: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Partition {
    /// 1-based, as `sfdisk` numbers them.
    pub number: u32,
    /// In 512-byte sectors.
    pub start: u64,
    pub size: u64,
    pub filesystem: Option<Filesystem>,
}

/// A filesystem (or swap, or a LUKS container) as `blkid -p` and its own tools see it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Filesystem {
    /// `ext4`, `xfs`, `btrfs`, `swap`, `crypto_LUKS`, `linux_raid_member`, `LVM2_member`…
    pub kind: String,
    pub uuid: Option<String>,
    pub label: Option<String>,
    /// Parameters to recreate it with, by name (ext4: `features`, `block_size`, `inode_size`,
    /// `inode_count`, `reserved_blocks`, `hash_seed`, `default_mount_options`; xfs: `block_size`,
    /// `inode_size`, `agcount`, `crc`…; btrfs: `nodesize`, `sectorsize`, `features`).
    pub params: BTreeMap<String, String>,
    /// btrfs subvolumes (paths inside the filesystem), when it is mounted.
    pub subvolumes: Vec<String>,
    /// The tool's own report (`tune2fs -l`, `xfs_info`, `btrfs inspect-internal dump-super`,
    /// `cryptsetup luksDump`), for a person.
    pub report: Option<String>,
    /// A LUKS header (`cryptsetup luksHeaderBackup`), when asked for: stored beside the
    /// description as `luks/<uuid>.header`, not in the JSON.
    #[serde(skip)]
    pub header: Option<Vec<u8>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Mounted {
    /// Relative to the machine's root, starting with `/`.
    pub point: String,
    /// The directory of the filesystem mounted there (`/`; a btrfs subvolume such as `/@home`).
    #[serde(default)]
    pub fs_root: String,
    pub source: String,
    pub fstype: String,
    pub options: String,
    pub uuid: Option<String>,
    pub size: u64,
    pub used: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Lvm {
    pub pvs: String,
    pub vgs: String,
    pub lvs: String,
    pub vgcfgbackup: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Boot {
    pub grub_cfg: Option<String>,
    pub grub_default: Option<String>,
    pub efi_entries: Option<String>,
    /// The disks GRUB was installed on (`grub-pc/install_devices` from debconf), if known.
    pub grub_devices: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Packages {
    /// `dpkg --get-selections`.
    pub selections: String,
    /// `apt-mark showmanual`.
    pub manual: Option<String>,
    /// `rpm -qa`, where RPM is.
    pub rpm: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DirUsage {
    pub path: String,
    pub bytes: u64,
    pub files: u64,
    /// Files with more than one link, and the bytes a split would copy twice.
    pub hardlinked_files: u64,
    pub hardlinked_bytes: u64,
}

/// What to describe.
#[derive(Clone, Debug)]
pub struct Options {
    /// The machine's `/`.
    pub root: PathBuf,
    /// The disks (devices or image files); empty: every disk in /sys/block but loop, ram, zram.
    pub disks: Vec<PathBuf>,
    /// Levels of directories below each mount point whose sizes are recorded.
    pub depth: usize,
    /// Keep each LUKS container's header (keyslots included: it opens with the passphrases of
    /// the time, so it is as secret as they are).
    pub luks_headers: bool,
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let mut c = Command::new(program);
    c.args(args);
    arca_ops::tool::output(c, program, "install it to have this part described").map_err(|e| e.to_string())
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Describe the machine.
pub fn describe(opts: &Options) -> MachineResult<Machine> {
    let mut m = Machine {
        hostname: hostname(&opts.root),
        kernel: read(Path::new("/proc/sys/kernel/osrelease")).unwrap_or_default().trim().to_string(),
        cmdline: read(Path::new("/proc/cmdline")).unwrap_or_default().trim().to_string(),
        root: opts.root.clone(),
        ..Default::default()
    };
    let disks = if opts.disks.is_empty() { system_disks() } else { opts.disks.clone() };
    for d in disks {
        match describe_disk(&d, opts.luks_headers) {
            Ok(disk) => m.disks.push(disk),
            Err(e) => m.absent.push(format!("disk {}: {e}", d.display())),
        }
    }
    m.mounts = mounts_under(&opts.root);
    for mnt in m.mounts.iter_mut() {
        if mnt.point.is_empty() {
            mnt.point = "/".into();
        }
    }
    // btrfs subvolumes, listed where the filesystem is mounted.
    for mnt in m.mounts.iter().filter(|m| m.fstype == "btrfs") {
        let dir = opts.root.join(mnt.point.trim_start_matches('/'));
        let Ok(list) = run("btrfs", &["subvolume", "list", &dir.to_string_lossy()]) else { continue };
        let subvolumes: Vec<String> = list.lines().filter_map(|l| l.split(" path ").nth(1).map(String::from)).collect();
        for fs in m
            .disks
            .iter_mut()
            .flat_map(|d| d.partitions.iter_mut().filter_map(|p| p.filesystem.as_mut()).chain(d.filesystem.as_mut()))
        {
            if fs.kind == "btrfs" && fs.uuid.is_some() && fs.uuid == mnt.uuid {
                fs.subvolumes = subvolumes.clone();
            }
        }
    }
    m.fstab = read(&opts.root.join("etc/fstab"));
    m.crypttab = read(&opts.root.join("etc/crypttab"));
    match run("mdadm", &["--detail", "--scan", "--verbose"]) {
        Ok(s) if !s.trim().is_empty() => m.raid = Some(s),
        Ok(_) => {}
        Err(e) => m.absent.push(format!("RAID: {e}")),
    }
    m.lvm = describe_lvm(&mut m.absent);
    m.boot = Boot {
        grub_cfg: read(&opts.root.join("boot/grub/grub.cfg")),
        grub_default: read(&opts.root.join("etc/default/grub")),
        efi_entries: run("efibootmgr", &["-v"]).ok(),
        grub_devices: run("debconf-show", &["grub-pc"])
            .ok()
            .and_then(|s| s.lines().find(|l| l.contains("install_devices:")).map(|l| l.trim().to_string())),
    };
    m.packages = describe_packages(&opts.root, &mut m.absent);
    for mnt in &m.mounts {
        if !walked(&mnt.fstype) {
            m.absent.push(format!("directory sizes under {}: a {} filesystem, not walked", mnt.point, mnt.fstype));
            continue;
        }
        let dir = opts.root.join(mnt.point.trim_start_matches('/'));
        let dev = std::fs::metadata(&dir).map(|md| md.dev()).unwrap_or(0);
        usage(&dir, &mnt.point, dev, opts.depth, &mut m.usage);
    }
    m.usage.sort_by(|a, b| a.path.cmp(&b.path));
    m.device_nodes = device_nodes(&m);
    Ok(m)
}

/// The machine's name: its own `/etc/hostname` when it is described from another root (a
/// mounted disk), the running kernel's otherwise.
fn hostname(root: &Path) -> String {
    let own = (root != Path::new("/"))
        .then(|| read(&root.join("etc/hostname")))
        .flatten()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    own.unwrap_or_else(|| read(Path::new("/proc/sys/kernel/hostname")).unwrap_or_default().trim().to_string())
}

/// Filesystems whose sizes are not walked: another machine's (network) or a program's (FUSE).
fn walked(fstype: &str) -> bool {
    !(["nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "sshfs", "davfs", "afs"].contains(&fstype)
        || fstype.starts_with("fuse"))
}

/// Every device name the description holds, mapped to the kernel's node where it differs.
fn device_nodes(m: &Machine) -> BTreeMap<String, String> {
    let mut names: Vec<String> = m.disks.iter().map(|d| d.path.to_string_lossy().into_owned()).collect();
    if let Some(raid) = &m.raid {
        for l in raid.lines() {
            let mut w = l.split_whitespace();
            match w.next() {
                Some("ARRAY") => names.extend(w.next().map(String::from)),
                Some(d) if d.starts_with("devices=") => {
                    names.extend(d["devices=".len()..].split(',').map(String::from))
                }
                _ => {}
            }
        }
    }
    if let Some(lvm) = &m.lvm {
        for cfg in lvm.vgcfgbackup.values() {
            names.extend(crate::script::physical_volumes(cfg).into_iter().map(|(_, d)| d));
        }
    }
    names.extend(m.boot.grub_devices.iter().flat_map(|g| crate::script::grub_devices(g)));
    names.extend(m.mounts.iter().map(|mnt| mnt.source.clone()));
    let mut out = BTreeMap::new();
    for n in names.into_iter().filter(|n| n.starts_with("/dev/")) {
        if let Ok(real) = std::fs::canonicalize(&n) {
            let real = real.to_string_lossy().into_owned();
            if real != n {
                out.insert(n, real);
            }
        }
    }
    out
}

/// The kernel's name of a block device (`sda`, `md127`, `dm-2`), if it is one.
fn kernel_name(path: &Path) -> Option<String> {
    let md = std::fs::metadata(path).ok()?;
    if !md.file_type().is_block_device() {
        return None;
    }
    Some(std::fs::canonicalize(path).ok()?.file_name()?.to_string_lossy().into_owned())
}

/// The devices under a block device, by node (`/sys/block/<name>/slaves`).
fn slaves(path: &Path) -> Vec<String> {
    let Some(name) = kernel_name(path) else { return vec![] };
    let mut out: Vec<String> = std::fs::read_dir(Path::new("/sys/block").join(name).join("slaves"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| format!("/dev/{}", e.file_name().to_string_lossy()))
        .collect();
    out.sort();
    out
}

/// Model, serial and WWN of a disk, as lsblk knows them.
fn identity(path: &Path) -> (Option<String>, Option<String>, Option<String>) {
    if kernel_name(path).is_none() {
        return (None, None, None);
    }
    let Ok(json) = run("lsblk", &["--json", "--nodeps", "--output", "MODEL,SERIAL,WWN", &path.to_string_lossy()])
    else {
        return (None, None, None);
    };
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    let d = &v["blockdevices"][0];
    let field = |k: &str| d[k].as_str().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    (field("model"), field("serial"), field("wwn"))
}

/// Whole disks the kernel knows (RAID arrays and device-mapper devices, such as logical
/// volumes and opened LUKS containers, by their /dev/mapper names), but loop, RAM, zram and
/// optical devices.
fn system_disks() -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir("/sys/block").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if ["loop", "ram", "zram", "sr"].iter().any(|p| name.starts_with(p)) {
            continue;
        }
        // USB sticks and card readers (the live system, a backup drive) are not the machine's.
        if read(&e.path().join("removable")).is_some_and(|r| r.trim() == "1") {
            continue;
        }
        if name.starts_with("dm-") {
            if let Some(dm) = read(&e.path().join("dm/name")) {
                out.push(PathBuf::from("/dev/mapper").join(dm.trim()));
            }
            continue;
        }
        out.push(PathBuf::from("/dev").join(name));
    }
    // Member disks before the arrays and volumes made of them.
    out.sort_by_key(|p| (p.starts_with("/dev/mapper") || p.to_string_lossy().starts_with("/dev/md"), p.clone()));
    out
}

fn describe_disk(path: &Path, luks_headers: bool) -> MachineResult<Disk> {
    let md = std::fs::metadata(path).map_err(|e| MachineError::io(path, e))?;
    let size = if md.file_type().is_block_device() {
        run("blockdev", &["--getsize64", &path.to_string_lossy()]).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
    } else {
        md.len()
    };
    let (model, serial, wwn) = identity(path);
    let mut disk =
        Disk { path: path.to_path_buf(), size, slaves: slaves(path), model, serial, wwn, ..Default::default() };
    let p = path.to_string_lossy().into_owned();
    match run("sfdisk", &["--json", &p]) {
        Ok(json) => {
            let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
            let t = &v["partitiontable"];
            disk.label = t["label"].as_str().map(String::from);
            disk.table = run("sfdisk", &["--dump", &p]).ok();
            if let Some(parts) = t["partitions"].as_array() {
                for part in parts {
                    // `disk.img1`, `/dev/sda1`, `/dev/nvme0n1p1`: the number is the trailing digits.
                    let node = part["node"].as_str().unwrap_or_default();
                    let number: u32 =
                        node.rsplit(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok()).unwrap_or(0);
                    let start = part["start"].as_u64().unwrap_or(0);
                    let size = part["size"].as_u64().unwrap_or(0);
                    let filesystem =
                        with_partition(path, number, start, size, |dev| probe(dev, luks_headers)).ok().flatten();
                    disk.partitions.push(Partition { number, start, size, filesystem });
                }
            }
        }
        Err(_) => disk.filesystem = probe(path, luks_headers),
    }
    Ok(disk)
}

/// Run `f` on partition `number` of `disk`: its device node where the kernel made one, else a
/// read-only loop device over its sectors (image files; kernels without a partition scanner).
fn with_partition<T>(disk: &Path, number: u32, start: u64, size: u64, f: impl FnOnce(&Path) -> T) -> Result<T, String> {
    if let Some(node) = partition_node(disk, number) {
        return Ok(f(&node));
    }
    let loop_dev = run(
        "losetup",
        &[
            "--find",
            "--show",
            "--read-only",
            "--offset",
            &(start * 512).to_string(),
            "--sizelimit",
            &(size * 512).to_string(),
            &disk.to_string_lossy(),
        ],
    )?;
    let dev = PathBuf::from(loop_dev.trim());
    let out = f(&dev);
    let _ = run("losetup", &["-d", &dev.to_string_lossy()]);
    Ok(out)
}

/// The kernel's device node for partition `n` of a block device (`sda1`, `nvme0n1p1`).
pub fn partition_node(disk: &Path, n: u32) -> Option<PathBuf> {
    let md = std::fs::metadata(disk).ok()?;
    if !md.file_type().is_block_device() {
        return None;
    }
    // By its kernel name: /dev/disk/by-id/... names its partitions -partN.
    let real = std::fs::canonicalize(disk).ok()?;
    let s = real.to_string_lossy();
    let sep = if s.ends_with(|c: char| c.is_ascii_digit()) { "p" } else { "" };
    let node = PathBuf::from(format!("{s}{sep}{n}"));
    node.exists().then_some(node)
}

/// What `blkid -p` and the filesystem's own tool say about a device.
fn probe(dev: &Path, luks_headers: bool) -> Option<Filesystem> {
    let d = dev.to_string_lossy().into_owned();
    // `-o udev`: the `_ENC` values keep every byte (`\x20` for a space), where `-o export`
    // shell-escapes them.
    let out = run("blkid", &["-p", "-o", "udev", &d]).ok()?;
    let tags: BTreeMap<String, String> =
        out.lines().filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect();
    let kind = tags.get("ID_FS_TYPE")?.clone();
    let enc = |k: &str| tags.get(&format!("{k}_ENC")).or_else(|| tags.get(k)).map(|v| decode_udev(v));
    let mut fs =
        Filesystem { kind: kind.clone(), uuid: enc("ID_FS_UUID"), label: enc("ID_FS_LABEL"), ..Default::default() };
    match kind.as_str() {
        "ext2" | "ext3" | "ext4" => {
            if let Ok(r) = run("tune2fs", &["-l", &d]) {
                fs.params = ext_params(&r);
                fs.report = Some(r);
            }
        }
        "xfs" => {
            if let Ok(r) = run("xfs_db", &["-r", "-c", "info", &d]) {
                fs.params = xfs_params(&r);
                fs.report = Some(r);
            }
        }
        "btrfs" => {
            if let Ok(r) = run("btrfs", &["inspect-internal", "dump-super", &d]) {
                fs.params = btrfs_params(&r);
                fs.report = Some(r);
            }
        }
        "crypto_LUKS" => {
            fs.report = run("cryptsetup", &["luksDump", &d]).ok();
            if luks_headers {
                let file = std::env::temp_dir().join(format!(
                    "arca-luks-{}-{}",
                    std::process::id(),
                    fs.uuid.as_deref().unwrap_or("x")
                ));
                let _ = std::fs::remove_file(&file);
                if run("cryptsetup", &["luksHeaderBackup", &d, "--header-backup-file", &file.to_string_lossy()]).is_ok()
                {
                    fs.header = std::fs::read(&file).ok();
                }
                let _ = std::fs::remove_file(&file);
            }
        }
        _ => {}
    }
    Some(fs)
}

/// Undo udev's `\xHH` escapes.
pub fn decode_udev(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            let hex = b.get(i + 2..i + 4).and_then(|h| std::str::from_utf8(h).ok());
            if let Some(h) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(h);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `tune2fs -l`'s "Name:   value" lines.
fn colon_fields(report: &str) -> BTreeMap<String, String> {
    report
        .lines()
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect()
}

/// What mke2fs and tune2fs need to make the same ext filesystem.
pub fn ext_params(report: &str) -> BTreeMap<String, String> {
    let f = colon_fields(report);
    let mut p = BTreeMap::new();
    for (key, name) in [
        ("Filesystem features", "features"),
        ("Block size", "block_size"),
        ("Block count", "block_count"),
        ("Inode size", "inode_size"),
        ("Inode count", "inode_count"),
        ("Reserved block count", "reserved_blocks"),
        ("Directory Hash Seed", "hash_seed"),
        ("Default mount options", "default_mount_options"),
        ("Filesystem flags", "flags"),
    ] {
        if let Some(v) = f.get(key) {
            p.insert(name.to_string(), v.clone());
        }
    }
    p
}

/// `xfs_db -c info` (as `xfs_info` prints it): `name=value` pairs on its lines.
pub fn xfs_params(report: &str) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    let mut section = "";
    for line in report.lines() {
        // Each section starts with its name before the first `=` ("meta-data=/dev/x", "data
        // =", "log      =internal log"); continuation lines start with "=".
        let head = line.trim_start().split('=').next().unwrap_or("").trim();
        section = match head {
            "meta-data" => "meta",
            "data" => "data",
            "naming" => "naming",
            "log" => "log",
            "realtime" => "realtime",
            _ => section,
        };
        for w in line.split_whitespace() {
            let w = w.trim_start_matches("meta-data=").trim_start_matches("data=");
            if let Some((k, v)) = w.split_once('=') {
                let v = v.trim_end_matches(',');
                if !k.is_empty() && !v.is_empty() {
                    p.insert(format!("{section}.{k}"), v.to_string());
                }
            }
        }
    }
    p
}

/// `btrfs inspect-internal dump-super`'s "name\tvalue" lines, and the names of the
/// incompatible features (the `( A | B )` lines under `incompat_flags`).
pub fn btrfs_params(report: &str) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    let mut names: Option<Vec<String>> = None;
    let mut in_incompat = false;
    for line in report.lines() {
        let t = line.trim();
        if line.starts_with("incompat_flags") {
            in_incompat = true;
            names = Some(vec![]);
        } else if in_incompat && t.starts_with(|c: char| c == '(' || c.is_ascii_uppercase()) {
            let list = names.get_or_insert_with(Vec::new);
            list.extend(
                t.split(|c: char| "()|".contains(c)).map(str::trim).filter(|w| !w.is_empty()).map(String::from),
            );
        } else {
            in_incompat = false;
        }
        let mut w = line.split_whitespace();
        match (w.next(), w.next()) {
            (Some("nodesize"), Some(v)) => {
                p.insert("nodesize".into(), v.into());
            }
            (Some("sectorsize"), Some(v)) => {
                p.insert("sectorsize".into(), v.into());
            }
            (Some("incompat_flags"), Some(v)) => {
                p.insert("incompat_flags".into(), v.into());
            }
            (Some("csum_type"), Some(v)) => {
                p.insert("csum_type".into(), v.into());
            }
            (Some("compat_ro_flags"), Some(v)) => {
                p.insert("compat_ro_flags".into(), v.into());
            }
            _ => {}
        }
    }
    if let Some(n) = names {
        p.insert("incompat_features".into(), n.join(" "));
    }
    p
}

/// The filesystems mounted under `root`, by mount point relative to it, with their UUIDs.
fn mounts_under(root: &Path) -> Vec<Mounted> {
    let text = read(Path::new("/proc/self/mountinfo")).unwrap_or_default();
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut out = vec![];
    for l in text.lines() {
        let Some((left, right)) = l.split_once(" - ") else { continue };
        let f: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if f.len() < 6 || r.len() < 2 {
            continue;
        }
        let point = PathBuf::from(f[4].replace("\\040", " "));
        let Ok(rel) = point.strip_prefix(&root) else { continue };
        let stat = nix_statvfs(&point);
        let source = r[1].replace("\\040", " ");
        let uuid = if source.starts_with("/dev/") {
            run("blkid", &["-p", "-s", "UUID", "-o", "value", &source])
                .ok()
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
        } else {
            None
        };
        out.push(Mounted {
            point: format!("/{}", rel.display()).replace("//", "/").trim_end_matches('/').to_string(),
            fs_root: f[3].replace("\\040", " "),
            source,
            fstype: r[0].to_string(),
            options: f[5].to_string(),
            uuid,
            size: stat.0,
            used: stat.1,
        });
    }
    out.retain(|m| {
        ![
            "proc",
            "sysfs",
            "devtmpfs",
            "devpts",
            "tmpfs",
            "cgroup2",
            "mqueue",
            "debugfs",
            "securityfs",
            "pstore",
            "bpf",
            "tracefs",
            "fusectl",
            "configfs",
            "hugetlbfs",
            "autofs",
            "binfmt_misc",
        ]
        .contains(&m.fstype.as_str())
    });
    // The last mounted on a point is the one seen.
    let mut seen = std::collections::HashSet::new();
    out.reverse();
    out.retain(|m| seen.insert(m.point.clone()));
    out.reverse();
    out.sort_by(|a, b| a.point.cmp(&b.point));
    out
}

fn nix_statvfs(p: &Path) -> (u64, u64) {
    match nix::sys::statvfs::statvfs(p) {
        Ok(s) => {
            let f = s.fragment_size();
            (s.blocks().saturating_mul(f), s.blocks().saturating_sub(s.blocks_free()).saturating_mul(f))
        }
        Err(_) => (0, 0),
    }
}

fn describe_lvm(absent: &mut Vec<String>) -> Option<Lvm> {
    let report = |what: &str| run(what, &["--reportformat", "json", "--all"]);
    match (report("pvs"), report("vgs"), report("lvs")) {
        (Ok(pvs), Ok(vgs), Ok(lvs)) => {
            let names: Vec<String> = serde_json::from_str::<serde_json::Value>(&vgs)
                .ok()
                .and_then(|v| v["report"][0]["vg"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|vg| vg["vg_name"].as_str().map(String::from))
                .collect();
            if names.is_empty() {
                return None;
            }
            let mut vgcfgbackup = BTreeMap::new();
            for vg in names {
                // A private directory: vgcfgbackup runs as root and follows what it finds.
                if let Ok(dir) = tempfile::tempdir() {
                    let file = dir.path().join(&vg);
                    if run("vgcfgbackup", &["-f", &file.to_string_lossy(), &vg]).is_ok() {
                        if let Some(text) = read(&file) {
                            vgcfgbackup.insert(vg, text);
                        }
                    }
                }
            }
            Some(Lvm { pvs, vgs, lvs, vgcfgbackup })
        }
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
            absent.push(format!("LVM: {e}"));
            None
        }
    }
}

fn describe_packages(root: &Path, absent: &mut Vec<String>) -> Option<Packages> {
    let admin = root.join("var/lib/dpkg");
    let admindir = format!("--admindir={}", admin.display());
    match run("dpkg", &[&admindir, "--get-selections"]) {
        Ok(selections) if selections.trim().is_empty() => {
            absent.push(format!("packages: no dpkg database at {}", admin.display()));
            None
        }
        Ok(selections) => {
            let manual = if root == Path::new("/") { run("apt-mark", &["showmanual"]).ok() } else { None };
            Some(Packages { selections, manual, rpm: run("rpm", &["--root", &root.to_string_lossy(), "-qa"]).ok() })
        }
        Err(e) => {
            absent.push(format!("packages: {e}"));
            None
        }
    }
}

/// Sizes under `dir` (shown as `shown`), one filesystem only, recording directories down to
/// `depth` levels; returns (bytes, files, hardlinked files, their bytes).
fn usage(dir: &Path, shown: &str, dev: u64, depth: usize, out: &mut Vec<DirUsage>) -> (u64, u64, u64, u64) {
    let mut total = (0u64, 0u64, 0u64, 0u64);
    let Ok(rd) = std::fs::read_dir(dir) else { return total };
    for e in rd.flatten() {
        let Ok(md) = e.metadata() else { continue };
        if md.dev() != dev {
            continue;
        }
        if md.is_dir() {
            let name = e.file_name().to_string_lossy().into_owned();
            let child = if shown == "/" { format!("/{name}") } else { format!("{shown}/{name}") };
            let mut deeper = vec![];
            let t =
                usage(&e.path(), &child, dev, depth.saturating_sub(1), if depth > 0 { &mut *out } else { &mut deeper });
            total = (total.0 + t.0, total.1 + t.1, total.2 + t.2, total.3 + t.3);
        } else {
            total.0 += md.len();
            total.1 += 1;
            if md.nlink() > 1 {
                total.2 += 1;
                total.3 += md.len();
            }
        }
    }
    out.push(DirUsage {
        path: shown.to_string(),
        bytes: total.0,
        files: total.1,
        hardlinked_files: total.2,
        hardlinked_bytes: total.3,
    });
    total
}

/// The description as text for a person.
pub fn text(m: &Machine) -> String {
    let gib = |b: u64| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64);
    let mut t = format!(
        "Machine {} (kernel {}), described from {}\nKernel command line: {}\n\n",
        m.hostname,
        m.kernel,
        m.root.display(),
        m.cmdline
    );
    for d in &m.disks {
        t += &format!("Disk {} ({}, {} table)\n", d.path.display(), gib(d.size), d.label.as_deref().unwrap_or("no"));
        let ident: Vec<String> = [("model", &d.model), ("serial", &d.serial), ("WWN", &d.wwn)]
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
            .collect();
        if !ident.is_empty() {
            t += &format!("  {}\n", ident.join(", "));
        }
        if !d.slaves.is_empty() {
            t += &format!("  made of {}\n", d.slaves.join(", "));
        }
        let fs_line = |f: &Filesystem| {
            format!(
                "{}{}{}",
                f.kind,
                f.label.as_deref().map(|l| format!(" label {l:?}")).unwrap_or_default(),
                f.uuid.as_deref().map(|u| format!(" UUID {u}")).unwrap_or_default()
            )
        };
        for p in &d.partitions {
            t += &format!(
                "  partition {}: {} from sector {}: {}\n",
                p.number,
                gib(p.size * 512),
                p.start,
                p.filesystem.as_ref().map(fs_line).unwrap_or_else(|| "no filesystem found".into())
            );
            if let Some(f) = &p.filesystem {
                for (k, v) in &f.params {
                    t += &format!("      {k}: {v}\n");
                }
                for s in &f.subvolumes {
                    t += &format!("      subvolume {s}\n");
                }
            }
        }
        if let Some(f) = &d.filesystem {
            t += &format!("  whole disk: {}\n", fs_line(f));
        }
    }
    t += "\nMounted filesystems (size, used):\n";
    for mnt in &m.mounts {
        t += &format!(
            "  {:<20} {:<8} {} ({}, {} used)\n",
            mnt.point,
            mnt.fstype,
            mnt.source,
            gib(mnt.size),
            gib(mnt.used)
        );
    }
    t += "\nDirectory sizes (bytes, files, hard-linked files and their bytes, which a split would copy twice):\n";
    for u in &m.usage {
        t += &format!(
            "  {:<40} {:>10} {:>8} files  {:>6} hard-linked ({})\n",
            u.path,
            gib(u.bytes),
            u.files,
            u.hardlinked_files,
            gib(u.hardlinked_bytes)
        );
    }
    for (what, v) in [("RAID", &m.raid), ("fstab", &m.fstab), ("crypttab", &m.crypttab)] {
        if let Some(v) = v {
            t += &format!("\n{what}:\n{v}\n");
        }
    }
    if let Some(l) = &m.lvm {
        t += &format!("\nLVM volume groups: {}\n", l.vgcfgbackup.keys().cloned().collect::<Vec<_>>().join(", "));
    }
    if let Some(p) = &m.packages {
        t += &format!("\nPackages: {} installed (dpkg)\n", p.selections.lines().count());
    }
    if !m.absent.is_empty() {
        t += "\nNot described:\n";
        for a in &m.absent {
            t += &format!("  {a}\n");
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udev_escapes_are_undone() {
        assert_eq!(decode_udev("My\\x20Disk"), "My Disk");
        assert_eq!(decode_udev("Donn\\xc3\\xa9es"), "Données");
        assert_eq!(decode_udev("a\\xZZ\\x"), "a\\xZZ\\x");
    }

    #[test]
    fn ext_and_xfs_reports_parse() {
        let ext = "Filesystem volume name:   root\nFilesystem UUID:          1-2\nFilesystem features:      has_journal ext_attr\nBlock size:               4096\nInode size:\t          256\nReserved block count:     2560\nDirectory Hash Seed:      aa-bb\n";
        let p = ext_params(ext);
        assert_eq!(p["features"], "has_journal ext_attr");
        assert_eq!(p["block_size"], "4096");
        assert_eq!(p["inode_size"], "256");
        assert_eq!(p["reserved_blocks"], "2560");
        assert_eq!(p["hash_seed"], "aa-bb");
        let xfs = "meta-data=/dev/loop3             isize=512    agcount=4, agsize=20480 blks\n         =                       sectsz=512   attr=2, projid32bit=1\n         =                       crc=1        finobt=1, sparse=1, rmapbt=0\ndata     =                       bsize=4096   blocks=81920, imaxpct=25\nnaming   =version 2              bsize=4096   ascii-ci=0, ftype=1\nlog      =internal log           bsize=4096   blocks=1368, version=2\n";
        let p = xfs_params(xfs);
        assert_eq!(p["meta.isize"], "512");
        assert_eq!(p["meta.agcount"], "4");
        assert_eq!(p["meta.crc"], "1");
        assert_eq!(p["data.bsize"], "4096");
        assert_eq!(p["log.blocks"], "1368");
        let btrfs = "nodesize\t\t16384\ncompat_ro_flags\t\t0x3\nincompat_flags\t\t0x141\n\t\t\t( MIXED_BACKREF |\n\t\t\t  EXTENDED_IREF |\n\t\t\t  SKINNY_METADATA )\ncache_generation\t0\n";
        let p = btrfs_params(btrfs);
        assert_eq!(p["incompat_features"], "MIXED_BACKREF EXTENDED_IREF SKINNY_METADATA");
        assert_eq!(p["compat_ro_flags"], "0x3");
        assert_eq!(p["nodesize"], "16384");
    }
}
