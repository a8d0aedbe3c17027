//! The bare-metal recovery script: a POSIX `sh` program, generated from a machine's
//! description, that recreates its partition tables and filesystems (same UUIDs, labels and
//! parameters) on the disks it is given, mounts them, restores the files with arca and
//! reinstalls the bootloader. It runs under dash and busybox sh from any live system with
//! the filesystems' tools and arca on its PATH; it stops at the first failure naming the
//! step, echoes every command with `--dry-run`, asks before each step with `--confirm`, and
//! says in plain words what it will destroy before touching anything.

use crate::describe::{Disk, Filesystem, Machine};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What the script restores and onto which disks.
pub struct ScriptOptions {
    /// The system snapshot the description came from (for the header).
    pub system_snapshot: String,
    /// The files snapshot to restore, and the machine's root in it.
    pub files_snapshot: String,
    pub files_root: String,
    /// Disk paths to use instead of the recorded ones.
    pub map: BTreeMap<PathBuf, PathBuf>,
}

/// Quote a word for sh: single quotes, a quote inside as `'\''`.
pub fn quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-=,:+@%".contains(&b)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

const PRELUDE: &str = r#"set -u
DRY=0
CONFIRM=0
YES=0
for a in "$@"; do
  case "$a" in
    --dry-run) DRY=1 ;;
    --confirm) CONFIRM=1 ;;
    --yes) YES=1 ;;
    -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "unknown option: $a (--dry-run, --confirm, --yes)" >&2; exit 2 ;;
  esac
done
TARGET=${ARCA_TARGET:-/mnt/arca-target}
WORK=$(mktemp -d) || exit 1
LOOPS=""
STEP="start"
cleanup() {
  for l in $LOOPS; do losetup -d "$l" 2>/dev/null; done
  # Never into a filesystem still mounted there.
  mountpoint -q "$WORK/top" 2>/dev/null || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM HUP
# undo KIND NAME: what to take down again if a later step fails (newest first: filesystems
# unmounted, volume groups deactivated, containers closed, arrays stopped), so that the script
# can be run again from the start on the same disks.
undo() {
  [ "$DRY" = 1 ] && return 0
  { printf '%s %s\n' "$1" "$2"; [ ! -f "$WORK/undo" ] || cat "$WORK/undo"; } > "$WORK/undo.new" &&
    mv "$WORK/undo.new" "$WORK/undo"
}
takedown() {
  [ -f "$WORK/undo" ] || return 0
  while IFS= read -r line; do
    what=${line#* }
    case "$line" in
      "umount "*) ! mountpoint -q "$what" || umount "$what" ;;
      "umount-tree "*) ! mountpoint -q "$what" || umount -R "$what" ;;
      "deactivate "*) vgchange -an "$what" >/dev/null ;;
      "close "*) cryptsetup close "$what" ;;
      "stop "*) mdadm --stop "$what" ;;
    esac || echo "arca recovery: could not take down: $line" >&2
  done < "$WORK/undo"
  rm -f "$WORK/undo"
}
fail() {
  trap - INT TERM HUP
  echo "arca recovery: step \"$STEP\" failed: $*" >&2
  takedown
  echo "arca recovery: nothing after it was done, and what the script had mounted, opened or assembled is taken down again; fix the cause and run the script again (it starts over)" >&2
  exit 1
}
step() {
  STEP=$1
  echo "== $1"
  if [ "$CONFIRM" = 1 ] && [ "$DRY" = 0 ]; then
    printf 'run this step? [y/N] '
    read -r answer || answer=""
    case "$answer" in y|Y|yes) ;; *) echo "stopped before: $1"; takedown; exit 1 ;; esac
  fi
}
run() {
  if [ "$DRY" = 1 ]; then echo "+ $*"; return 0; fi
  "$@" || fail "$*"
}
# run_from FILE CMD...: CMD with its standard input from FILE.
run_from() {
  f=$1
  shift
  if [ "$DRY" = 1 ]; then echo "+ $* < $f"; return 0; fi
  "$@" < "$f" || fail "$* < $f"
}
# check_disk DISK BYTES: it exists, holds at least BYTES, and nothing has it or its partitions
# mounted, assembled or opened (sfdisk would write under a running system).
check_disk() {
  if [ -b "$1" ]; then
    size=$(blockdev --getsize64 "$1") || fail "cannot read the size of $1"
    name=$(basename "$(readlink -f "$1")")
    if grep -q "^$(readlink -f "$1")" /proc/mounts || ls /sys/class/block/"$name"/holders/* >/dev/null 2>&1 ||
       ls /sys/class/block/"$name"/"$name"*/holders/* >/dev/null 2>&1; then
      fail "$1 is in use (mounted, or part of an array, volume or open container): stop that first"
    fi
  elif [ -f "$1" ]; then
    size=$(wc -c < "$1")
    if [ -n "$(losetup -j "$1" 2>/dev/null)" ]; then
      fail "$1 is in use by a loop device ($(losetup -j "$1" | cut -d: -f1 | tr '\n' ' ')): detach it first"
    fi
  else
    fail "$1 is neither a disk nor an image file"
  fi
  [ "$size" -ge "$2" ] || fail "$1 holds $size bytes; the machine's disk held $2"
}
# part DISK N START SIZE: the device of partition N (sectors of 512 bytes): the kernel's node
# for a block device, a loop device over those sectors for an image file.
part() {
  if [ -b "$1" ]; then
    # By its kernel name (/dev/disk/by-id/... names partitions -partN).
    d=$(readlink -f "$1")
    case "$d" in *[0-9]) p="${d}p$2" ;; *) p="$d$2" ;; esac
    if [ "$DRY" = 0 ]; then
      partx -u "$d" 2>/dev/null
      i=0
      while [ ! -b "$p" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
      [ -b "$p" ] || fail "no device $p for partition $2 of $1"
    fi
    echo "$p"
  elif [ "$DRY" = 1 ]; then
    echo "$1-partition$2"
  else
    l=$(losetup --find --show --offset $(($3 * 512)) --sizelimit $(($4 * 512)) "$1") || fail "losetup on $1"
    echo "$l"
  fi
}
"#;

/// btrfs's incompatible features (as `dump-super` names them) and mkfs.btrfs's names for them.
/// …and whether a current mkfs.btrfs turns it on unasked.
const BTRFS_FEATURES: &[(&str, &str, bool)] = &[
    ("MIXED_GROUPS", "mixed-bg", false),
    ("EXTENDED_IREF", "extref", true),
    ("RAID56", "raid56", false),
    ("SKINNY_METADATA", "skinny-metadata", true),
    ("NO_HOLES", "no-holes", true),
    ("RAID1C34", "raid1c34", false),
    ("ZONED", "zoned", false),
];

/// Features mke2fs refuses or that describe a state, not a choice.
const EXT_STATE_FEATURES: &[&str] = &["needs_recovery", "orphan_present", "journal_dev", "snapshot_bitmap"];

/// The commands that make `fs` again on `dev`; a LUKS container is opened as `opened_as`.
fn mkfs_commands(fs: &Filesystem, dev: &str, opened_as: &str, out: &mut String) {
    let uuid = fs.uuid.as_deref().map(quote);
    let label = fs.label.as_deref().map(quote);
    let p = &fs.params;
    match fs.kind.as_str() {
        "ext2" | "ext3" | "ext4" => {
            let mut cmd = format!("run mkfs.{} -F -q", fs.kind);
            if let Some(u) = &uuid {
                let _ = write!(cmd, " -U {u}");
            }
            if let Some(l) = &label {
                let _ = write!(cmd, " -L {l}");
            }
            for (key, flag) in [("block_size", "-b"), ("inode_size", "-I"), ("inode_count", "-N")] {
                if let Some(v) = p.get(key) {
                    let _ = write!(cmd, " {flag} {}", quote(v));
                }
            }
            if let Some(f) = p.get("features") {
                let kept: Vec<&str> = f.split_whitespace().filter(|x| !EXT_STATE_FEATURES.contains(x)).collect();
                let _ = write!(cmd, " -O {}", quote(&format!("none,{}", kept.join(","))));
            }
            if let Some(seed) = p.get("hash_seed") {
                let _ = write!(cmd, " -E {}", quote(&format!("hash_seed={seed}")));
            }
            let _ = write!(cmd, " \"{dev}\"");
            if let Some(b) = p.get("block_count") {
                let _ = write!(cmd, " {}", quote(b));
            }
            out.push_str(&cmd);
            out.push('\n');
            if let Some(r) = p.get("reserved_blocks") {
                let _ = writeln!(out, "run tune2fs -r {} \"{dev}\"", quote(r));
            }
            if let Some(o) = p.get("default_mount_options").filter(|o| *o != "(none)") {
                let _ = writeln!(
                    out,
                    "run tune2fs -o {} \"{dev}\"",
                    quote(&o.split_whitespace().collect::<Vec<_>>().join(","))
                );
            }
        }
        "xfs" => {
            let get = |k: &str| p.get(k).map(|v| v.as_str());
            let mut meta = vec![];
            if let Some(u) = &fs.uuid {
                meta.push(format!("uuid={u}"));
            }
            for k in ["crc", "finobt", "rmapbt", "reflink", "bigtime", "inobtcount"] {
                if let Some(v) = get(&format!("meta.{k}")) {
                    meta.push(format!("{k}={v}"));
                }
            }
            let mut cmd = "run mkfs.xfs -f -q".to_string();
            if !meta.is_empty() {
                let _ = write!(cmd, " -m {}", quote(&meta.join(",")));
            }
            if let Some(l) = &label {
                let _ = write!(cmd, " -L {l}");
            }
            if let Some(b) = get("data.bsize") {
                let _ = write!(cmd, " -b size={}", quote(b));
            }
            let mut inode = vec![];
            if let Some(v) = get("meta.isize") {
                inode.push(format!("size={v}"));
            }
            if let Some(v) = get("meta.sparse") {
                inode.push(format!("sparse={v}"));
            }
            if !inode.is_empty() {
                let _ = write!(cmd, " -i {}", quote(&inode.join(",")));
            }
            if let Some(v) = get("meta.agcount") {
                let _ = write!(cmd, " -d agcount={}", quote(v));
            }
            if let Some(v) = get("naming.ftype") {
                let _ = write!(cmd, " -n ftype={}", quote(v));
            }
            if let (Some(blocks), Some(bsize)) = (get("log.blocks"), get("log.bsize")) {
                if let (Ok(b), Ok(s)) = (blocks.parse::<u64>(), bsize.parse::<u64>()) {
                    let _ = write!(cmd, " -l size={}", b * s);
                }
            }
            let _ = writeln!(out, "{cmd} \"{dev}\"");
        }
        "btrfs" => {
            let mut cmd = "run mkfs.btrfs -f -q".to_string();
            if let Some(u) = &uuid {
                let _ = write!(cmd, " -U {u}");
            }
            if let Some(l) = &label {
                let _ = write!(cmd, " -L {l}");
            }
            // Only sizes other than mkfs.btrfs's own: naming them sets the "big metadata" flag
            // the original did not have. (The device UUID, UUID_SUB, cannot be set with
            // btrfs-progs 6.2: it comes out new.)
            for (key, flag, default) in [("nodesize", "-n", "16384"), ("sectorsize", "-s", "4096")] {
                if let Some(v) = p.get(key).filter(|v| *v != default) {
                    let _ = write!(cmd, " {flag} {}", quote(v));
                }
            }
            // The features it had, where they were recorded: those on by name, off with `^`
            // only those some mkfs.btrfs turns on by itself (a name an older mkfs.btrfs does
            // not know, even with `^`, fails it).
            if let Some(have) = p.get("incompat_features") {
                let have: Vec<&str> = have.split_whitespace().collect();
                let list: Vec<String> = BTRFS_FEATURES
                    .iter()
                    .filter_map(|(flag, name, default_on)| match (have.contains(flag), default_on) {
                        (true, _) => Some(name.to_string()),
                        (false, true) => Some(format!("^{name}")),
                        (false, false) => None,
                    })
                    .collect();
                if !list.is_empty() {
                    let _ = write!(cmd, " -O {}", list.join(","));
                }
            }
            let compat_ro =
                p.get("compat_ro_flags").and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok());
            if compat_ro.is_some_and(|ro| ro & 1 == 0) {
                let _ = write!(cmd, " -R ^free-space-tree");
            }
            let _ = writeln!(out, "{cmd} \"{dev}\"");
            if !fs.subvolumes.is_empty() {
                // Subvolumes under the top level (subvolid 5), parents first; mounts name them.
                let _ = writeln!(
                    out,
                    "run mkdir -p \"$WORK/top\"\nrun mount -o subvolid=5 \"{dev}\" \"$WORK/top\"\nundo umount \"$WORK/top\""
                );
                let mut subs: Vec<&String> = fs.subvolumes.iter().collect();
                subs.sort_by_key(|s| s.matches('/').count());
                for sub in subs {
                    let path = format!("\"$WORK/top\"/{}", quote(sub));
                    let _ = writeln!(out, "run mkdir -p \"$(dirname {path})\"\nrun btrfs subvolume create {path}");
                }
                let _ = writeln!(out, "run umount \"$WORK/top\"");
            }
        }
        "vfat" => {
            // mkfs.vfat takes the volume id without its dash.
            let mut cmd = "run mkfs.vfat".to_string();
            if let Some(b) = p.get("fat_size") {
                let _ = write!(cmd, " -F {}", quote(b));
            }
            if let Some(u) = fs.uuid.as_deref() {
                let _ = write!(cmd, " -i {}", quote(&u.replace('-', "")));
            }
            if let Some(l) = &label {
                let _ = write!(cmd, " -n {l}");
            }
            let _ = writeln!(out, "{cmd} \"{dev}\"");
        }
        "swap" => {
            let mut cmd = "run mkswap".to_string();
            if let Some(u) = &uuid {
                let _ = write!(cmd, " -U {u}");
            }
            if let Some(l) = &label {
                let _ = write!(cmd, " -L {l}");
            }
            let _ = writeln!(out, "{cmd} \"{dev}\"");
        }
        "crypto_LUKS" => {
            let mut cmd = "run cryptsetup luksFormat".to_string();
            // The same LUKS version (GRUB unlocks LUKS1 only, for an encrypted /boot).
            let version = fs
                .report
                .as_deref()
                .and_then(|r| r.lines().find_map(|l| l.strip_prefix("Version:").map(|v| v.trim().to_string())));
            if let Some(v) = version.filter(|v| v == "1" || v == "2") {
                let _ = write!(cmd, " --type luks{v}");
            }
            if let Some(u) = &uuid {
                let _ = write!(cmd, " --uuid {u}");
            }
            if let Some(l) = &label {
                let _ = write!(cmd, " --label {l}");
            }
            let _ = writeln!(out, "echo \"LUKS on {dev}: cryptsetup asks for the new passphrase\"\n{cmd} \"{dev}\"");
            let name = quote(opened_as);
            let _ = writeln!(out, "run cryptsetup open \"{dev}\" {name}\nundo close {name}");
            let _ = writeln!(out, "echo \"{dev} is open as /dev/mapper/{opened_as}\"");
        }
        "linux_raid_member" => {
            let _ = writeln!(out, "echo \"{dev}: a member of a RAID array, made with the array\"");
        }
        "LVM2_member" => {
            let _ = writeln!(out, "echo \"{dev}: an LVM physical volume, made with its volume group\"");
        }
        other => {
            let _ = writeln!(
                out,
                "echo \"{dev} held {} (not recreated by this script; the description has what is known of it)\"",
                shown(other)
            );
        }
    }
}

/// One array of `mdadm --detail --scan --verbose`.
struct Array {
    device: String,
    fields: BTreeMap<String, String>,
    devices: Vec<String>,
}

/// The arrays of `mdadm --detail --scan --verbose` (`ARRAY /dev/md0 level=raid1 ...` and an
/// indented `devices=/dev/sda1,/dev/sdb1` line).
fn raid_arrays(scan: &str) -> Vec<Array> {
    let mut out: Vec<Array> = vec![];
    for line in scan.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("ARRAY") => {
                let device = words.next().unwrap_or_default().to_string();
                let fields =
                    words.filter_map(|w| w.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
                out.push(Array { device, fields, devices: vec![] });
            }
            Some(w) if w.starts_with("devices=") => {
                if let Some(a) = out.last_mut() {
                    a.devices = w["devices=".len()..].split(',').map(String::from).collect();
                }
            }
            _ => {}
        }
    }
    out
}

/// The physical volumes of a `vgcfgbackup` file: (id, device) in order.
pub fn physical_volumes(cfg: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut inside = false;
    let mut id = None;
    // `device = "/dev/sda2"	# Hint only`: the text between the first pair of quotes.
    let value = |l: &str| {
        let (_, rest) = l.split_once('"')?;
        rest.split_once('"').map(|(v, _)| v.to_string())
    };
    for line in cfg.lines() {
        let l = line.trim();
        if l.starts_with("physical_volumes") {
            inside = true;
        } else if inside && l.starts_with("logical_volumes") {
            break;
        } else if inside && l.starts_with("id =") {
            id = value(l);
        } else if inside && l.starts_with("device =") {
            if let (Some(i), Some(d)) = (id.take(), value(l)) {
                out.push((i, d));
            }
        }
    }
    out
}

/// The logical volumes of a `vgcfgbackup` file, by name (the sections inside
/// `logical_volumes`, hidden ones such as thin pools' metadata included).
fn logical_volumes(cfg: &str) -> Vec<String> {
    let (mut depth, mut inside, mut out) = (0usize, false, vec![]);
    for line in cfg.lines() {
        let l = line.split('#').next().unwrap_or("").trim();
        if let Some(head) = l.strip_suffix('{') {
            let head = head.trim();
            if depth == 1 {
                inside = head == "logical_volumes";
            } else if depth == 2 && inside {
                out.push(head.to_string());
            }
            depth += 1;
        } else if l == "}" {
            depth = depth.saturating_sub(1);
        }
    }
    out
}

/// The device-mapper name of a logical volume: `vg-lv`, a dash in either doubled.
fn lv_mapper(vg: &str, lv: &str) -> String {
    format!("/dev/mapper/{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

/// The devices of debconf's `grub-pc/install_devices: /dev/disk/by-id/a, /dev/sdb` line.
pub fn grub_devices(line: &str) -> Vec<String> {
    let list = line.split_once(": ").map(|(_, l)| l).unwrap_or("");
    list.split(',').map(|d| d.trim().to_string()).filter(|d| d.starts_with("/dev/")).collect()
}

/// Names that are safe to use bare in the script (device-mapper names, volume groups).
fn plain_name(n: &str) -> bool {
    !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
}

/// One step of making the machine's devices: what it needs made first and what it makes, by
/// the kernel's node (how the description names devices apart from the tools' aliases).
struct Action<'a> {
    what: String,
    /// The disk it works on, if it is one of the description's (named in the note when the
    /// step cannot be made).
    disk: Option<usize>,
    needs: Vec<String>,
    makes: Vec<String>,
    text: String,
    filesystem: Option<(String, &'a Filesystem)>,
}

/// The steps that make a machine's devices, ordered so that each runs once what it needs is
/// there: partitions, then arrays on them, containers on those, volume groups inside, and
/// filesystems on whatever holds them, however deep the stack.
struct Plan<'a> {
    m: &'a Machine,
    /// The name the script gives each disk of the description (`$DISKn`).
    names: Vec<String>,
    actions: Vec<Action<'a>>,
}

impl<'a> Plan<'a> {
    fn new(m: &'a Machine, map: &dyn Fn(&Path) -> PathBuf) -> Result<Plan<'a>, String> {
        let node = |p: &Path| m.node(&p.to_string_lossy()).to_string();
        let arrays = m.raid.as_deref().map(raid_arrays).unwrap_or_default();
        // What the script calls each device: disks, partitions, and what is made of them.
        let mut expr: BTreeMap<String, String> = BTreeMap::new();
        let mut names = vec![];
        for (i, d) in m.disks.iter().enumerate() {
            let n = i + 1;
            let key = node(&d.path);
            expr.insert(key.clone(), format!("$DISK{n}"));
            let sep = if key.ends_with(|c: char| c.is_ascii_digit()) { "p" } else { "" };
            for p in &d.partitions {
                expr.insert(format!("{key}{sep}{}", p.number), format!("$D{n}P{}", p.number));
            }
            // An array is made under mdadm's name for it (`/dev/md/0`), which the kernel may
            // call `/dev/md127`; what is given with --map stays as given.
            let mapped = map(&d.path);
            let name = if mapped != d.path {
                mapped.to_string_lossy().into_owned()
            } else if let Some(a) = arrays.iter().find(|a| m.node(&a.device) == key) {
                a.device.clone()
            } else {
                d.path.to_string_lossy().into_owned()
            };
            names.push(name);
        }
        let device = |p: &str| -> Result<String, String> {
            expr.get(m.node(p)).map(|v| format!("\"{v}\"")).ok_or_else(|| {
                format!("{p} (a RAID member or LVM physical volume) is not a described disk or a partition of one: describe it too (--disk), so the script never writes where it did not say")
            })
        };
        // The name a LUKS container on `key` is opened as: that of the opened device the
        // description holds, else crypttab's, else `luks-<uuid>`.
        let opened = |key: &str, fs: &Filesystem| -> String {
            let described = m
                .disks
                .iter()
                .find(|d| d.slaves == [key.to_string()])
                .and_then(|d| d.path.strip_prefix("/dev/mapper").ok().map(|n| n.to_string_lossy().into_owned()));
            let named = fs.uuid.as_deref().and_then(|u| {
                m.crypttab.as_deref()?.lines().find_map(|l| {
                    let mut w = l.split_whitespace();
                    let (name, source) = (w.next()?, w.next()?);
                    (source == format!("UUID={u}")).then(|| name.to_string())
                })
            });
            let safe: String =
                fs.uuid.as_deref().unwrap_or("").chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
            described.into_iter().chain(named).find(|n| plain_name(n)).unwrap_or(format!("luks-{safe}"))
        };
        // What making `fs` on the device `key` makes besides: the opened container.
        let made_by = |key: &str, fs: &Filesystem| -> (String, Vec<String>) {
            if fs.kind != "crypto_LUKS" {
                return (String::new(), vec![]);
            }
            let name = opened(key, fs);
            let mut makes = vec![m.node(&format!("/dev/mapper/{name}")).to_string()];
            makes.extend(m.disks.iter().filter(|d| d.slaves == [key.to_string()]).map(|d| node(&d.path)));
            (name, makes)
        };
        let mut actions = vec![];
        // Partition tables, on the disks given and on arrays or volumes that have one.
        for (i, d) in m.disks.iter().enumerate() {
            let Some(table) = &d.table else { continue };
            let n = i + 1;
            let mut text = format!("\nstep \"partition table of $DISK{n}\"\n");
            let t: String = table.lines().filter(|l| !l.starts_with("device:")).map(|l| format!("{l}\n")).collect();
            heredoc(&mut text, &format!("\"$WORK/disk{n}.sfdisk\""), &t, "ARCA_TABLE");
            let _ = writeln!(
                text,
                "run_from \"$WORK/disk{n}.sfdisk\" sfdisk --quiet --wipe always --wipe-partitions always \"$DISK{n}\""
            );
            let key = node(&d.path);
            let needs = if derived(d) { vec![key.clone()] } else { vec![] };
            actions.push(Action {
                what: format!("the partition table of {}", d.path.display()),
                disk: Some(n),
                needs,
                makes: vec![format!("table:{key}")],
                text,
                filesystem: None,
            });
        }
        // Partitions and what is on them (filesystems, swap, LUKS containers, members).
        for (i, d) in m.disks.iter().enumerate() {
            let n = i + 1;
            let key = node(&d.path);
            let sep = if key.ends_with(|c: char| c.is_ascii_digit()) { "p" } else { "" };
            for p in &d.partitions {
                let Some(fs) = &p.filesystem else { continue };
                let var = format!("D{n}P{}", p.number);
                let part = format!("{key}{sep}{}", p.number);
                let mut text = format!("\nstep \"{} on partition {} of $DISK{n}\"\n", shown(&fs.kind), p.number);
                let _ = writeln!(text, "{var}=$(part \"$DISK{n}\" {} {} {}) || exit 1", p.number, p.start, p.size);
                let _ = writeln!(text, "case \"${var}\" in /dev/loop*) LOOPS=\"$LOOPS ${var}\" ;; esac");
                let (name, mut makes) = made_by(&part, fs);
                mkfs_commands(fs, &format!("${var}"), &name, &mut text);
                makes.push(part.clone());
                actions.push(Action {
                    what: format!("{} on partition {} of {}", fs.kind, p.number, d.path.display()),
                    disk: Some(n),
                    needs: vec![format!("table:{key}")],
                    makes,
                    text,
                    filesystem: Some((var, fs)),
                });
            }
        }
        for a in &arrays {
            let mut cmd = format!("run mdadm --create {} --run", quote(&a.device));
            for (k, flag) in [
                ("level", "--level"),
                ("num-devices", "--raid-devices"),
                ("metadata", "--metadata"),
                ("UUID", "--uuid"),
                ("name", "--homehost=any --name"),
            ] {
                if let Some(v) = a.fields.get(k) {
                    let _ = write!(cmd, " {flag}={}", quote(v));
                }
            }
            if let Some(v) = a.fields.get("spares") {
                let _ = write!(cmd, " --spare-devices={}", quote(v));
            }
            for d in &a.devices {
                let _ = write!(cmd, " {}", device(d)?);
            }
            let text = format!("\nstep \"RAID array {}\"\n{cmd}\nundo stop {}\n", shown(&a.device), quote(&a.device));
            actions.push(Action {
                what: format!("the RAID array {}", a.device),
                disk: None,
                needs: a.devices.iter().map(|d| m.node(d).to_string()).collect(),
                makes: vec![m.node(&a.device).to_string()],
                text,
                filesystem: None,
            });
        }
        for (vg, cfg) in m.lvm.iter().flat_map(|l| &l.vgcfgbackup) {
            if !plain_name(vg) {
                return Err(format!("the volume group name {vg:?} is not one LVM makes"));
            }
            let file = format!("\"$WORK\"/{vg}.vg");
            let mut text = format!("\nstep \"LVM volume group {vg}\"\n");
            heredoc(&mut text, &file, cfg, "ARCA_VG");
            let pvs = physical_volumes(cfg);
            for (id, dev) in &pvs {
                // -ff: a physical volume of a failed earlier run may still be on a re-made array.
                let _ =
                    writeln!(text, "run pvcreate --yes -ff --uuid {} --restorefile {file} {}", quote(id), device(dev)?);
            }
            let _ = writeln!(text, "run vgcfgrestore -f {file} {vg}\nrun vgchange -ay {vg}\nundo deactivate {vg}");
            let mut makes = vec![];
            for lv in logical_volumes(cfg) {
                makes.push(m.node(&lv_mapper(vg, &lv)).to_string());
                makes.push(m.node(&format!("/dev/{vg}/{lv}")).to_string());
            }
            actions.push(Action {
                what: format!("the LVM volume group {vg}"),
                disk: None,
                needs: pvs.iter().map(|(_, d)| m.node(d).to_string()).collect(),
                makes,
                text,
                filesystem: None,
            });
        }
        // Filesystems (and containers) on whole devices: disks without a table, arrays,
        // logical volumes and opened containers.
        for (i, d) in m.disks.iter().enumerate() {
            let Some(fs) = &d.filesystem else { continue };
            let n = i + 1;
            let var = format!("D{n}");
            let key = node(&d.path);
            let mut text = format!("\nstep \"{} on $DISK{n}\"\n{var}=$DISK{n}\n", shown(&fs.kind));
            let (name, makes) = made_by(&key, fs);
            mkfs_commands(fs, &format!("${var}"), &name, &mut text);
            let needs = if derived(d) { vec![key] } else { vec![] };
            actions.push(Action {
                what: format!("{} on {}", fs.kind, d.path.display()),
                disk: Some(n),
                needs,
                makes,
                text,
                filesystem: Some((var, fs)),
            });
        }
        Ok(Plan { m, names, actions })
    }

    /// The steps into `out`, each as soon as what it needs is made (in the order above where
    /// several could go); the filesystems made, by the variable naming their device. A step
    /// whose devices nothing makes (a device-mapper target the description cannot rebuild)
    /// is named, not run.
    fn emit(self, out: &mut String) -> Vec<(String, &'a Filesystem)> {
        let mut have: std::collections::BTreeSet<String> = self
            .m
            .disks
            .iter()
            .filter(|d| !derived(d))
            .map(|d| self.m.node(&d.path.to_string_lossy()).to_string())
            .collect();
        let mut left = self.actions;
        let mut made = vec![];
        while let Some(i) = left.iter().position(|a| a.needs.iter().all(|n| have.contains(n))) {
            let a = left.remove(i);
            out.push_str(&a.text);
            have.extend(a.makes);
            made.extend(a.filesystem);
        }
        for a in left {
            let missing: Vec<&String> = a.needs.iter().filter(|n| !have.contains(*n)).collect();
            let disk = a.disk.map(|n| format!(" \"(DISK{n}=$DISK{n})\"")).unwrap_or_default();
            let _ = writeln!(
                out,
                "\necho {}{disk}",
                quote(&format!(
                    "not made: {}: nothing in the description makes {} (recreate it and what is on it by hand)",
                    comment(&a.what),
                    comment(&missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))
                ))
            );
        }
        made
    }
}

/// `text` as a here-document into `file`: a terminator that is no line of the text, and a final
/// line break (without it the terminator would be taken as text).
fn heredoc(out: &mut String, file: &str, text: &str, base: &str) {
    let mut end = base.to_string();
    while text.lines().any(|l| l == end) {
        end.push('_');
    }
    let _ = writeln!(out, "cat > {file} <<'{end}'");
    out.push_str(text);
    if !text.ends_with('\n') {
        out.push('\n');
    }
    let _ = writeln!(out, "{end}");
}

/// A device the script makes on the way (a RAID array, a logical volume, an opened LUKS
/// container), not a disk it is given: never in the list of what it destroys or checks.
fn derived(d: &Disk) -> bool {
    let s = d.path.to_string_lossy();
    !d.slaves.is_empty() || s.starts_with("/dev/mapper/") || s.starts_with("/dev/md") || s.starts_with("/dev/dm-")
}

/// Text from the description inside a double-quoted sh word: nothing sh would expand
/// (`$`, backquotes, `"`, `\`) and no control characters.
fn shown(s: &str) -> String {
    comment(s).chars().map(|c| if "$`\"\\".contains(c) { '?' } else { c }).collect()
}

/// Text for a comment line: no line breaks or other control characters.
fn comment(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// The script for `m`; an error if the description names a device the script could not tell
/// apart from the disks it was given (it must never write where it did not say it would).
pub fn script(m: &Machine, opts: &ScriptOptions) -> Result<String, String> {
    let map = |p: &Path| opts.map.get(p).cloned().unwrap_or_else(|| p.to_path_buf());
    // Names from the description are single-quoted on purpose: nothing in them expands.
    let mut s = String::from("#!/bin/sh\n# shellcheck disable=SC2016\n");
    let _ = writeln!(
        s,
        "# arca bare-metal recovery of {}, from system snapshot {}.",
        comment(&m.hostname),
        opts.system_snapshot
    );
    s.push_str("#\n# THIS DESTROYS EVERYTHING ON THESE DISKS:\n");
    for (i, d) in m.disks.iter().enumerate().filter(|(_, d)| !derived(d)) {
        let ident: String =
            [&d.model, &d.serial].iter().filter_map(|v| v.as_deref()).map(|v| format!(", {v}")).collect();
        let _ = writeln!(
            s,
            "#   DISK{}={} (the machine's {}{}: {} bytes, {} table, {} partitions)",
            i + 1,
            comment(&map(&d.path).to_string_lossy()),
            comment(&d.path.to_string_lossy()),
            comment(&ident),
            d.size,
            d.label.as_deref().unwrap_or("no"),
            d.partitions.len()
        );
    }
    s.push_str(
        "#\n# It writes their partition tables, makes each filesystem again with its UUID, label and\n\
         # parameters, mounts them under $ARCA_TARGET (default /mnt/arca-target), restores the files\n",
    );
    let _ = writeln!(
        s,
        "# of snapshot {} (its {}) with arca, and reinstalls the bootloader.",
        comment(&opts.files_snapshot),
        comment(&opts.files_root)
    );
    s.push_str(
        "# It needs sfdisk, partx, losetup, mkfs.* and the tools of the filesystems, mount, and arca\n\
         # with ARCA_REPOSITORY and the password (ARCA_PASSWORD_FILE, ...) set.\n#\n\
         # Options: --dry-run (print every command, change nothing), --confirm (ask before each step),\n\
         # --yes (do not ask whether to go ahead). It stops at the first failure, naming the step, and\n\
         # takes down what it had mounted, opened or assembled, so it can be run again from the start.\n\n",
    );
    s.push_str(PRELUDE);
    let plan = Plan::new(m, &map)?;
    for (i, name) in plan.names.iter().enumerate() {
        // A volume or container holding nothing the script makes is not named.
        let d = &m.disks[i];
        if !derived(d) || d.filesystem.is_some() || d.table.is_some() {
            let _ = writeln!(s, "DISK{}={}", i + 1, quote(name));
        }
    }
    s.push_str("\nif [ \"$DRY\" = 0 ] && [ \"$YES\" = 0 ]; then\n  echo \"This destroys everything on:\"\n");
    for (i, _) in m.disks.iter().enumerate().filter(|(_, d)| !derived(d)) {
        let _ = writeln!(s, "  echo \"  $DISK{}\"", i + 1);
    }
    s.push_str("  printf 'Type YES to go ahead: '\n  read -r answer || answer=\"\"\n  [ \"$answer\" = YES ] || { echo \"nothing was done\"; exit 1; }\nfi\n");
    // Before anything is written: each disk exists, is large enough, and nothing uses it.
    s.push_str("\nstep \"check the disks\"\n");
    for (i, d) in m.disks.iter().enumerate().filter(|(_, d)| !derived(d)) {
        let _ = writeln!(s, "check_disk \"$DISK{}\" {}", i + 1, d.size);
    }
    let devs = plan.emit(&mut s);
    // Mounts: parents first.
    let mut mounts: Vec<_> = m.mounts.iter().collect();
    mounts.sort_by_key(|mnt| if mnt.point == "/" { 0 } else { mnt.point.matches('/').count() });
    s.push_str("\nstep \"mount the filesystems under $TARGET\"\n");
    s.push_str("run mkdir -p \"$TARGET\"\n");
    for mnt in &mounts {
        let Some((var, _)) = devs.iter().find(|(_, fs)| fs.uuid.is_some() && fs.uuid == mnt.uuid) else {
            let what =
                format!("{} ({}, {}) is not on the disks described: not mounted", mnt.point, mnt.fstype, mnt.source);
            if mnt.point == "/" {
                // Restoring into the live system's own directory instead: never.
                let _ = writeln!(s, "fail {}", quote(&what));
            } else {
                let _ = writeln!(s, "echo {}", quote(&what));
            }
            continue;
        };
        // "$TARGET" then the quoted point: nothing from the description is expanded by sh.
        let at = if mnt.point == "/" { "\"$TARGET\"".to_string() } else { format!("\"$TARGET\"{}", quote(&mnt.point)) };
        let options = match mnt.fs_root.as_str() {
            "" | "/" => String::new(),
            sub if mnt.fstype == "btrfs" => format!(" -o {}", quote(&format!("subvol={sub}"))),
            _ => String::new(),
        };
        let _ = writeln!(s, "run mkdir -p {at}\nrun mount{options} \"${var}\" {at}\nundo umount {at}");
    }
    let _ = writeln!(
        s,
        "\nstep \"restore the files\"\nif [ \"$DRY\" = 0 ]; then mountpoint -q \"$TARGET\" || fail \"$TARGET is not a mounted filesystem\"; fi\nrun arca restore {} --target \"$TARGET\"",
        quote(&format!("{}:{}", opts.files_snapshot, opts.files_root))
    );
    s.push_str("\nstep \"bootloader\"\n");
    match (&m.boot.grub_cfg, &m.boot.efi_entries) {
        (Some(_), efi) => {
            s.push_str("for d in dev proc sys; do run mount --rbind \"/$d\" \"$TARGET/$d\"; undo umount-tree \"$TARGET/$d\"; done\n");
            if efi.is_some() {
                s.push_str(
                    "case \"$(uname -m)\" in\n  x86_64) EFI=x86_64-efi ;;\n  aarch64) EFI=arm64-efi ;;\n  i?86) EFI=i386-efi ;;\n  riscv64) EFI=riscv64-efi ;;\n  *) fail \"no GRUB EFI target known for $(uname -m)\" ;;\nesac\nrun chroot \"$TARGET\" grub-install --target=\"$EFI\" --recheck\n",
                );
            } else {
                // Every disk GRUB was installed on (both halves of a mirrored /boot), as debconf
                // recorded them; the first disk when nothing was recorded.
                let mut on: Vec<String> = vec![];
                for dev in m.boot.grub_devices.iter().flat_map(|g| grub_devices(g)) {
                    let node = m.node(&dev);
                    if let Some(i) = m.disks.iter().position(|d| m.node(&d.path.to_string_lossy()) == node) {
                        let v = format!("\"$DISK{}\"", i + 1);
                        if !on.contains(&v) {
                            on.push(v);
                        }
                    }
                }
                if on.is_empty() {
                    on.push("\"$DISK1\"".into());
                }
                for d in on {
                    let _ = writeln!(s, "run chroot \"$TARGET\" grub-install {d}");
                }
            }
            s.push_str(
                "if chroot \"$TARGET\" sh -c 'command -v update-grub' >/dev/null 2>&1; then\n  run chroot \"$TARGET\" update-grub\nelse\n  run chroot \"$TARGET\" grub-mkconfig -o /boot/grub/grub.cfg\nfi\nfor d in sys proc dev; do run umount -R \"$TARGET/$d\"; done\n",
            );
        }
        (None, _) => s.push_str("echo \"no GRUB configuration was recorded: no bootloader installed\"\n"),
    }
    s.push_str(
        "\nSTEP=finished\necho \"recovered: the files are in $TARGET (still mounted; unmount before rebooting)\"\n",
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raid_lvm_and_luks_become_commands_on_the_right_devices() {
        use crate::describe::{Disk, Lvm, Partition};
        let part = |n, kind: &str, uuid: &str| Partition {
            number: n,
            start: 2048 * n as u64,
            size: 2048,
            filesystem: Some(Filesystem { kind: kind.into(), uuid: Some(uuid.into()), ..Default::default() }),
        };
        let m = Machine {
            hostname: "h".into(),
            disks: vec![
                Disk { path: "/dev/sda".into(), table: Some("label: gpt\n".into()), partitions: vec![part(1, "linux_raid_member", "r1"), part(2, "LVM2_member", "p2"), part(3, "crypto_LUKS", "c3")], ..Default::default() },
                Disk { path: "/dev/nvme0n1".into(), table: Some("label: gpt\n".into()), partitions: vec![part(1, "linux_raid_member", "r2")], ..Default::default() },
                Disk { path: "/dev/md0".into(), filesystem: Some(Filesystem { kind: "ext4".into(), uuid: Some("f0".into()), ..Default::default() }), ..Default::default() },
            ],
            raid: Some("ARRAY /dev/md0 level=raid1 num-devices=2 metadata=1.2 name=h:0 UUID=aa:bb:cc:dd\n   devices=/dev/sda1,/dev/nvme0n1p1\n".into()),
            lvm: Some(Lvm {
                vgcfgbackup: BTreeMap::from([("vg0".to_string(), "vg0 {\n physical_volumes {\n  pv0 {\n   id = \"AbC-123\"\n   device = \"/dev/sda2\"\t# Hint only\n  }\n }\n logical_volumes {\n }\n}\n".to_string())]),
                ..Default::default()
            }),
            crypttab: Some("cryptdata UUID=c3 none luks\n".into()),
            ..Default::default()
        };
        let opts = ScriptOptions {
            system_snapshot: "s".into(),
            files_snapshot: "f".into(),
            files_root: "/".into(),
            map: BTreeMap::new(),
        };
        let text = script(&m, &opts).unwrap();
        assert!(text.contains("run mdadm --create /dev/md0 --run --level=raid1 --raid-devices=2 --metadata=1.2 --uuid=aa:bb:cc:dd --homehost=any --name=h:0 \"$D1P1\" \"$D2P1\""), "{text}");
        assert!(
            text.contains("run pvcreate --yes -ff --uuid AbC-123 --restorefile \"$WORK\"/vg0.vg \"$D1P2\""),
            "{text}"
        );
        assert!(text.contains("run vgcfgrestore -f \"$WORK\"/vg0.vg vg0\nrun vgchange -ay vg0"), "{text}");
        assert!(
            text.contains("run cryptsetup luksFormat --uuid c3 \"$D1P3\"")
                && text.contains("run cryptsetup open \"$D1P3\" cryptdata"),
            "{text}"
        );
        // The array is made, not destroyed or checked as a disk given.
        assert!(!text.contains("check_disk \"$DISK3\"") && !text.contains("#   DISK3="), "{text}");
        // A member that is no described disk or partition is refused, not written to.
        let mut other = m.clone();
        other.raid = Some("ARRAY /dev/md0 level=raid1 num-devices=2\n   devices=/dev/sda1,/dev/sdz1\n".into());
        assert!(script(&other, &opts).unwrap_err().contains("/dev/sdz1"));
        // Valid POSIX sh (shellcheck is installed by scripts/test).
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), &text).unwrap();
        match std::process::Command::new("shellcheck").args(["-s", "sh"]).arg(f.path()).output() {
            Ok(o) => assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout)),
            Err(_) if std::env::var_os("ARCA_REQUIRE_PARTS").is_none() => eprintln!("NOT RUN: shellcheck is missing"),
            Err(e) => panic!("shellcheck: {e} (scripts/test installs it)"),
        }
        // The array's filesystem is made after the array, the partitions' before.
        let (raid, md_fs) = (text.find("mdadm --create").unwrap(), text.find("run mkfs.ext4 -F -q -U f0").unwrap());
        assert!(raid < md_fs && text.find("luksFormat").unwrap() < raid);
    }

    fn opts() -> ScriptOptions {
        ScriptOptions {
            system_snapshot: "s".into(),
            files_snapshot: "f".into(),
            files_root: "/".into(),
            map: BTreeMap::new(),
        }
    }

    fn shellcheck(text: &str) {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        match std::process::Command::new("shellcheck").args(["-s", "sh"]).arg(f.path()).output() {
            Ok(o) => assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout)),
            Err(_) if std::env::var_os("ARCA_REQUIRE_PARTS").is_none() => eprintln!("NOT RUN: shellcheck is missing"),
            Err(e) => panic!("shellcheck: {e} (scripts/test installs it)"),
        }
    }

    /// `needles` occur in `text` in this order.
    fn in_order(text: &str, needles: &[&str]) {
        let mut at = 0;
        for n in needles {
            let found = text[at..].find(n).unwrap_or_else(|| panic!("{n:?} not after byte {at} in:\n{text}"));
            at += found + n.len();
        }
    }

    fn fs(kind: &str, uuid: &str) -> Option<Filesystem> {
        Some(Filesystem { kind: kind.into(), uuid: Some(uuid.into()), ..Default::default() })
    }

    fn mirrored_disks() -> Vec<Disk> {
        use crate::describe::Partition;
        let member =
            |uuid: &str| Partition { number: 1, start: 2048, size: 4096, filesystem: fs("linux_raid_member", uuid) };
        vec![
            Disk {
                path: "/dev/sda".into(),
                table: Some("label: gpt\n".into()),
                partitions: vec![member("r")],
                ..Default::default()
            },
            Disk {
                path: "/dev/sdb".into(),
                table: Some("label: gpt\n".into()),
                partitions: vec![member("r")],
                ..Default::default()
            },
        ]
    }

    fn vg(name: &str, pv: &str, lv: &str) -> BTreeMap<String, String> {
        let cfg = format!("{name} {{\n\tid = \"x\"\n\tphysical_volumes {{\n\t\tpv0 {{\n\t\t\tid = \"PV-1\"\n\t\t\tdevice = \"{pv}\"\t# Hint only\n\t\t}}\n\t}}\n\tlogical_volumes {{\n\t\t{lv} {{\n\t\t\tsegment1 {{\n\t\t\t}}\n\t\t}}\n\t}}\n}}\n");
        BTreeMap::from([(name.to_string(), cfg)])
    }

    #[test]
    fn luks_on_an_array_with_lvm_inside_is_made_from_the_bottom_up() {
        use crate::describe::Lvm;
        let mut disks = mirrored_disks();
        disks.push(Disk {
            path: "/dev/md127".into(),
            filesystem: fs("crypto_LUKS", "c1"),
            slaves: vec!["/dev/sda1".into(), "/dev/sdb1".into()],
            ..Default::default()
        });
        disks.push(Disk {
            path: "/dev/mapper/cryptlvm".into(),
            filesystem: fs("LVM2_member", "p1"),
            slaves: vec!["/dev/md127".into()],
            ..Default::default()
        });
        disks.push(Disk {
            path: "/dev/mapper/vg0-root".into(),
            filesystem: fs("ext4", "f1"),
            slaves: vec!["/dev/dm-0".into()],
            ..Default::default()
        });
        let m = Machine {
            disks,
            // mdadm calls the array /dev/md/0, the kernel md127; LVM names the opened container.
            raid: Some("ARRAY /dev/md/0 level=raid1 num-devices=2 UUID=aa:bb\n   devices=/dev/sda1,/dev/sdb1\n".into()),
            lvm: Some(Lvm { vgcfgbackup: vg("vg0", "/dev/mapper/cryptlvm", "root"), ..Default::default() }),
            device_nodes: BTreeMap::from([
                ("/dev/md/0".into(), "/dev/md127".into()),
                ("/dev/mapper/cryptlvm".into(), "/dev/dm-0".into()),
                ("/dev/mapper/vg0-root".into(), "/dev/dm-1".into()),
            ]),
            boot: crate::describe::Boot {
                grub_cfg: Some("menuentry".into()),
                grub_devices: Some("* grub-pc/install_devices: /dev/sda, /dev/sdb".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let text = script(&m, &opts()).unwrap();
        shellcheck(&text);
        // The array is made under mdadm's name; what is made is never checked or destroyed.
        assert!(text.contains("DISK3=/dev/md/0\n"), "{text}");
        assert!(!text.contains("check_disk \"$DISK3\"") && !text.contains("#   DISK4="), "{text}");
        in_order(
            &text,
            &[
                "partition table of $DISK1",
                "mdadm --create /dev/md/0 --run --level=raid1 --raid-devices=2 --uuid=aa:bb \"$D1P1\" \"$D2P1\"",
                "undo stop /dev/md/0",
                "run cryptsetup luksFormat --uuid c1 \"$D3\"",
                "run cryptsetup open \"$D3\" cryptlvm\nundo close cryptlvm",
                "run pvcreate --yes -ff --uuid PV-1 --restorefile \"$WORK\"/vg0.vg \"$DISK4\"",
                "run vgchange -ay vg0\nundo deactivate vg0",
                "run mkfs.ext4 -F -q -U f1 \"$D5\"",
                // GRUB on both halves of the mirror.
                "grub-install \"$DISK1\"",
                "grub-install \"$DISK2\"",
            ],
        );
        assert!(!text.contains("not made:"), "{text}");
    }

    #[test]
    fn luks_inside_a_logical_volume_on_an_array_is_made_after_its_volume_group() {
        use crate::describe::Lvm;
        let mut disks = mirrored_disks();
        disks.push(Disk {
            path: "/dev/md0".into(),
            filesystem: fs("LVM2_member", "p1"),
            slaves: vec!["/dev/sda1".into(), "/dev/sdb1".into()],
            ..Default::default()
        });
        disks.push(Disk {
            path: "/dev/mapper/data".into(),
            filesystem: fs("xfs", "x1"),
            slaves: vec!["/dev/dm-0".into()],
            ..Default::default()
        });
        disks.push(Disk {
            path: "/dev/mapper/vg--a-secret".into(),
            filesystem: fs("crypto_LUKS", "c1"),
            slaves: vec!["/dev/md0".into()],
            ..Default::default()
        });
        // A device-mapper device nothing in the description makes (multipath, say).
        disks.push(Disk {
            path: "/dev/mapper/mpatha".into(),
            filesystem: fs("ext4", "e9"),
            slaves: vec!["/dev/sdz".into()],
            ..Default::default()
        });
        let m = Machine {
            disks,
            raid: Some("ARRAY /dev/md0 level=raid1 num-devices=2\n   devices=/dev/sda1,/dev/sdb1\n".into()),
            lvm: Some(Lvm { vgcfgbackup: vg("vg-a", "/dev/md0", "secret"), ..Default::default() }),
            device_nodes: BTreeMap::from([
                ("/dev/mapper/vg--a-secret".into(), "/dev/dm-0".into()),
                ("/dev/mapper/data".into(), "/dev/dm-1".into()),
            ]),
            ..Default::default()
        };
        let text = script(&m, &opts()).unwrap();
        shellcheck(&text);
        in_order(
            &text,
            &[
                "mdadm --create /dev/md0",
                "pvcreate --yes -ff --uuid PV-1 --restorefile \"$WORK\"/vg-a.vg \"$DISK3\"",
                "vgchange -ay vg-a",
                "cryptsetup luksFormat --uuid c1 \"$D5\"",
                "cryptsetup open \"$D5\" data",
                "mkfs.xfs -f -q -m uuid=x1 \"$D4\"",
            ],
        );
        assert!(
            text.contains("not made: ext4 on /dev/mapper/mpatha: nothing in the description makes /dev/mapper/mpatha"),
            "{text}"
        );
        assert!(!text.contains("-U e9"), "{text}");
    }

    #[test]
    fn names_from_the_description_are_never_run_by_sh() {
        let mut disks = mirrored_disks();
        disks[0].partitions[0].filesystem = fs("ext4`reboot`", "u1");
        let m = Machine {
            disks,
            raid: Some("ARRAY /dev/md/a\"$(reboot) level=raid1 num-devices=2\n   devices=/dev/sda1,/dev/sdb1\n".into()),
            ..Default::default()
        };
        let text = script(&m, &opts()).unwrap();
        shellcheck(&text);
        assert!(text.contains("step \"RAID array /dev/md/a??(reboot)\""), "{text}");
        assert!(text.contains("step \"ext4?reboot? on partition 1 of $DISK1\""), "{text}");
        assert!(text.contains("undo stop '/dev/md/a\"$(reboot)'"), "{text}");
    }

    #[test]
    fn volume_groups_list_their_logical_volumes() {
        let cfg = &vg("vg0", "/dev/sda2", "root")["vg0"];
        assert_eq!(logical_volumes(cfg), vec!["root".to_string()]);
        assert_eq!(lv_mapper("vg-a", "my-lv"), "/dev/mapper/vg--a-my--lv");
        assert_eq!(
            grub_devices("* grub-pc/install_devices: /dev/disk/by-id/ata-X, /dev/sdb"),
            vec!["/dev/disk/by-id/ata-X", "/dev/sdb"]
        );
    }

    #[test]
    fn words_are_quoted_for_sh() {
        assert_eq!(quote("/dev/sda"), "/dev/sda");
        assert_eq!(quote("my disk"), "'my disk'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }
}
