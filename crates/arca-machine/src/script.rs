//! The bare-metal recovery script: a POSIX `sh` program, generated from a machine's
//! description, that recreates its partition tables and filesystems (same UUIDs, labels and
//! parameters) on the disks it is given, mounts them, restores the files with arca and
//! reinstalls the bootloader. It runs under dash and busybox sh from any live system with
//! the filesystems' tools and arca on its PATH; it stops at the first failure naming the
//! step, echoes every command with `--dry-run`, asks before each step with `--confirm`, and
//! says in plain words what it will destroy before touching anything.

use crate::describe::{Filesystem, Machine};
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
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "arca recovery: step \"$STEP\" failed: $*" >&2
  echo "arca recovery: nothing after it was done; fix the cause and run the script again (it starts over)" >&2
  exit 1
}
step() {
  STEP=$1
  echo "== $1"
  if [ "$CONFIRM" = 1 ] && [ "$DRY" = 0 ]; then
    printf 'run this step? [y/N] '
    read -r answer || answer=""
    case "$answer" in y|Y|yes) ;; *) echo "stopped before: $1"; exit 1 ;; esac
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
# part DISK N START SIZE: the device of partition N (sectors of 512 bytes): the kernel's node
# for a block device, a loop device over those sectors for an image file.
part() {
  if [ -b "$1" ]; then
    case "$1" in *[0-9]) p="${1}p$2" ;; *) p="$1$2" ;; esac
    if [ "$DRY" = 0 ]; then
      partx -u "$1" 2>/dev/null
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

/// Features mke2fs refuses or that describe a state, not a choice.
const EXT_STATE_FEATURES: &[&str] = &["needs_recovery", "orphan_present", "journal_dev", "snapshot_bitmap"];

fn mkfs_commands(fs: &Filesystem, dev: &str, out: &mut String) {
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
            if let Some(u) = &uuid {
                let _ = write!(cmd, " --uuid {u}");
            }
            if let Some(l) = &label {
                let _ = write!(cmd, " --label {l}");
            }
            let _ = writeln!(out, "echo \"LUKS on {dev}: cryptsetup asks for the new passphrase\"\n{cmd} \"{dev}\"");
            let safe: String =
                fs.uuid.as_deref().unwrap_or("").chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
            let name = format!("luks-{safe}");
            let _ = writeln!(out, "run cryptsetup open \"{dev}\" {}", quote(&name));
            let _ = writeln!(
                out,
                "echo \"the contents of {dev} (now /dev/mapper/{name}) are not described: recreate them by hand from the description, then restore the files\""
            );
        }
        other => {
            let _ = writeln!(
                out,
                "echo \"{dev} held\" {} \"(not recreated by this script; the description has what is known of it)\"",
                quote(other)
            );
        }
    }
}

/// Text for a comment line: no line breaks or other control characters.
fn comment(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// The script for `m`.
pub fn script(m: &Machine, opts: &ScriptOptions) -> String {
    let map = |p: &Path| opts.map.get(p).cloned().unwrap_or_else(|| p.to_path_buf());
    let mut s = String::from("#!/bin/sh\n");
    let _ = writeln!(
        s,
        "# arca bare-metal recovery of {}, from system snapshot {}.",
        comment(&m.hostname),
        opts.system_snapshot
    );
    s.push_str("#\n# THIS DESTROYS EVERYTHING ON THESE DISKS:\n");
    for (i, d) in m.disks.iter().enumerate() {
        let _ = writeln!(
            s,
            "#   DISK{}={} (the machine's {}: {} bytes, {} table, {} partitions)",
            i + 1,
            comment(&map(&d.path).to_string_lossy()),
            comment(&d.path.to_string_lossy()),
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
         # --yes (do not ask whether to go ahead). It stops at the first failure, naming the step.\n\n",
    );
    s.push_str(PRELUDE);
    for (i, d) in m.disks.iter().enumerate() {
        let _ = writeln!(s, "DISK{}={}", i + 1, quote(&map(&d.path).to_string_lossy()));
    }
    s.push_str("\nif [ \"$DRY\" = 0 ] && [ \"$YES\" = 0 ]; then\n  echo \"This destroys everything on:\"\n");
    for i in 0..m.disks.len() {
        let _ = writeln!(s, "  echo \"  $DISK{}\"", i + 1);
    }
    s.push_str("  printf 'Type YES to go ahead: '\n  read -r answer || answer=\"\"\n  [ \"$answer\" = YES ] || { echo \"nothing was done\"; exit 1; }\nfi\n");
    if let Some(raid) = &m.raid {
        s.push_str("\nstep \"RAID\"\n");
        for l in raid.lines() {
            let _ = writeln!(s, "# {}", comment(l));
        }
        s.push_str("fail \"the machine had md RAID arrays (above): create them with mdadm --create from that, then run this script with --yes on the arrays' disks\"\n");
    }
    // Partition tables.
    for (i, d) in m.disks.iter().enumerate() {
        let Some(table) = &d.table else { continue };
        let n = i + 1;
        let _ = writeln!(s, "\nstep \"partition table of $DISK{n}\"");
        let _ = writeln!(s, "cat > \"$WORK/disk{n}.sfdisk\" <<'ARCA_TABLE'");
        for l in table.lines().filter(|l| !l.starts_with("device:")) {
            s.push_str(l);
            s.push('\n');
        }
        s.push_str("ARCA_TABLE\n");
        let _ = writeln!(s, "run_from \"$WORK/disk{n}.sfdisk\" sfdisk --quiet --no-reread --wipe always --wipe-partitions always \"$DISK{n}\"");
    }
    // Partition devices and filesystems.
    let mut devs: Vec<(String, &Filesystem)> = vec![];
    for (i, d) in m.disks.iter().enumerate() {
        let n = i + 1;
        for p in &d.partitions {
            let Some(fs) = &p.filesystem else { continue };
            let var = format!("D{n}P{}", p.number);
            let _ = writeln!(s, "\nstep \"{} on partition {} of $DISK{n}\"", fs.kind, p.number);
            let _ = writeln!(s, "{var}=$(part \"$DISK{n}\" {} {} {}) || exit 1", p.number, p.start, p.size);
            let _ = writeln!(s, "case \"${var}\" in /dev/loop*) LOOPS=\"$LOOPS ${var}\" ;; esac");
            mkfs_commands(fs, &format!("${var}"), &mut s);
            devs.push((var, fs));
        }
        if let Some(fs) = &d.filesystem {
            let var = format!("D{n}");
            let _ = writeln!(s, "\nstep \"{} on $DISK{n}\"\n{var}=$DISK{n}", fs.kind);
            mkfs_commands(fs, &format!("${var}"), &mut s);
            devs.push((var, fs));
        }
    }
    if let Some(lvm) = &m.lvm {
        s.push_str("\nstep \"LVM\"\n");
        for (vg, cfg) in &lvm.vgcfgbackup {
            let _ = writeln!(s, "cat > \"$WORK/{vg}.vg\" <<'ARCA_VG'\n{cfg}ARCA_VG");
            let _ = writeln!(s, "echo \"volume group {vg}: pvcreate --uuid ... --restorefile $WORK/{vg}.vg on its disks, then vgcfgrestore -f $WORK/{vg}.vg {vg}\"");
        }
        s.push_str("fail \"the machine had LVM volume groups (their vgcfgbackup files are written above): restore them, then continue by hand\"\n");
    }
    // Mounts: parents first.
    let mut mounts: Vec<_> = m.mounts.iter().collect();
    mounts.sort_by_key(|mnt| if mnt.point == "/" { 0 } else { mnt.point.matches('/').count() });
    s.push_str("\nstep \"mount the filesystems under $TARGET\"\n");
    s.push_str("run mkdir -p \"$TARGET\"\n");
    for mnt in &mounts {
        let Some((var, fs)) = devs.iter().find(|(_, fs)| fs.uuid.is_some() && fs.uuid == mnt.uuid) else {
            let what =
                format!("{} ({}, {}) is not on the disks described: not mounted", mnt.point, mnt.fstype, mnt.source);
            let _ = writeln!(s, "echo {}", quote(&what));
            continue;
        };
        // "$TARGET" then the quoted point: nothing from the description is expanded by sh.
        let at = if mnt.point == "/" { "\"$TARGET\"".to_string() } else { format!("\"$TARGET\"{}", quote(&mnt.point)) };
        let _ = writeln!(s, "run mkdir -p {at}\nrun mount \"${var}\" {at}");
        for sub in &fs.subvolumes {
            let _ = writeln!(s, "run btrfs subvolume create {at}/{}", quote(sub));
        }
    }
    let _ = writeln!(
        s,
        "\nstep \"restore the files\"\nrun arca restore {} --target \"$TARGET\"",
        quote(&format!("{}:{}", opts.files_snapshot, opts.files_root))
    );
    s.push_str("\nstep \"bootloader\"\n");
    match (&m.boot.grub_cfg, &m.boot.efi_entries) {
        (Some(_), efi) => {
            s.push_str("for d in dev proc sys; do run mount --bind \"/$d\" \"$TARGET/$d\"; done\n");
            if efi.is_some() {
                s.push_str("run chroot \"$TARGET\" grub-install --target=x86_64-efi --recheck\n");
            } else {
                s.push_str("run chroot \"$TARGET\" grub-install \"$DISK1\"\n");
            }
            s.push_str(
                "run chroot \"$TARGET\" update-grub\nfor d in sys proc dev; do run umount \"$TARGET/$d\"; done\n",
            );
        }
        (None, _) => s.push_str("echo \"no GRUB configuration was recorded: no bootloader installed\"\n"),
    }
    s.push_str(
        "\nSTEP=finished\necho \"recovered: the files are in $TARGET (still mounted; unmount before rebooting)\"\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_sh() {
        assert_eq!(quote("/dev/sda"), "/dev/sda");
        assert_eq!(quote("my disk"), "'my disk'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }
}
