//! Snapshot-then-backup: freeze the filesystems holding the source paths (a read-only btrfs
//! snapshot, an LVM snapshot mounted read-only, a ZFS snapshot), back up from the frozen copy,
//! and remove it afterwards, also after a failure; what a killed run left is found by its
//! name ([`crate::owner`]) and removed by the next run that freezes the same filesystem.
//!
//! btrfs goes through [`crate::btrfs`]; LVM and ZFS go through a [`Runner`] that runs their
//! tools (`lvs`, `lvcreate`, `mount`, `umount`, `lvremove`; `zfs`), so their command lines and
//! cleanup can be tested where neither device-mapper nor ZFS exists.

use crate::mounts::{self, Mount};
use crate::{btrfs, owner, FsnapError, FsnapResult};
use arca_fs::backup::Redirect;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The directory in a btrfs subvolume's root that holds arca's snapshots of it.
pub const BTRFS_DIR: &str = ".arca-snapshots";
/// Where LVM snapshots are mounted while a backup reads them.
pub const LVM_MOUNTS: &str = "/run/arca/fs-snapshots";

/// Which kind of snapshot to take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// What the filesystem offers: btrfs, ZFS, or LVM below anything else.
    #[default]
    Auto,
    Btrfs,
    Lvm,
    Zfs,
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Method, String> {
        match s {
            "auto" => Ok(Method::Auto),
            "btrfs" => Ok(Method::Btrfs),
            "lvm" => Ok(Method::Lvm),
            "zfs" => Ok(Method::Zfs),
            _ => Err(format!("{s:?} is not a snapshot method (auto, btrfs, lvm, zfs)")),
        }
    }
}

/// Runs the LVM and ZFS tools: one argument vector, its standard output.
pub trait Runner: Send + Sync {
    fn run(&self, argv: &[String]) -> FsnapResult<String>;
}

/// Runs them for real.
pub struct SystemRunner;

impl Runner for SystemRunner {
    fn run(&self, argv: &[String]) -> FsnapResult<String> {
        let Some((program, args)) = argv.split_first() else {
            return Err(FsnapError::Invalid("an empty command".into()));
        };
        let mut c = std::process::Command::new(program);
        c.args(args);
        Ok(arca_ops::tool::output(c, program, "install the LVM or ZFS tools (Debian: lvm2, zfsutils-linux)")?)
    }
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// One frozen filesystem, and how to thaw it.
#[derive(Debug)]
enum Taken {
    /// A btrfs snapshot `<home>/<name>/<subvolume>`.
    Btrfs { snapshot: PathBuf },
    /// Commands that remove an LVM or ZFS snapshot, in order.
    Commands(Vec<Vec<String>>),
}

/// Frozen copies of the source paths' filesystems, removed when this is released or dropped.
pub struct Frozen {
    runner: Arc<dyn Runner>,
    taken: Vec<Taken>,
    /// This run's hold on its btrfs snapshot directories ([`owner::hold`]).
    held: Vec<std::fs::File>,
    /// Each source path (and each filesystem mounted below one) and where to read it.
    pub redirects: Vec<Redirect>,
    /// What the snapshot records: per frozen filesystem its kind, UUID or name, generation.
    pub metadata: BTreeMap<String, String>,
    /// arca's own directories in the sources (the snapshot directories), never backed up.
    pub own: Vec<PathBuf>,
    /// Leftovers of killed runs that were removed, for the user to see.
    pub removed_leftovers: Vec<String>,
    /// What the user should know: filesystems below a source read live (they cannot be
    /// snapshotted), leftovers that could not be removed.
    pub notes: Vec<String>,
}

impl Frozen {
    fn new(runner: Arc<dyn Runner>) -> Frozen {
        Frozen {
            runner,
            taken: vec![],
            held: vec![],
            redirects: vec![],
            metadata: BTreeMap::new(),
            own: vec![],
            removed_leftovers: vec![],
            notes: vec![],
        }
    }

    /// Remove every frozen copy; the problems, one line each (the copies a problem leaves are
    /// found and removed by the next run).
    pub fn release(mut self) -> Vec<String> {
        self.thaw()
    }

    fn thaw(&mut self) -> Vec<String> {
        let mut problems = vec![];
        for t in self.taken.drain(..).rev() {
            match t {
                Taken::Btrfs { snapshot } => {
                    if let Err(e) = remove_btrfs(&snapshot) {
                        problems.push(format!("cannot remove the snapshot {}: {e}", snapshot.display()));
                    }
                }
                Taken::Commands(cmds) => {
                    for c in cmds {
                        if let Err(e) = self.runner.run(&c) {
                            problems.push(format!("{}: {e}", c.join(" ")));
                        }
                    }
                }
            }
        }
        self.held.clear();
        problems
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for p in self.thaw() {
            tracing::warn!("{p}");
        }
    }
}

/// Delete a btrfs snapshot arca took, the directory it is in, and the `.arca-snapshots`
/// directory above if nothing else is in it.
fn remove_btrfs(snapshot: &Path) -> FsnapResult<()> {
    if btrfs::is_subvolume(snapshot) {
        btrfs::delete(snapshot)?;
    }
    if let Some(dir) = snapshot.parent() {
        std::fs::remove_dir(dir)
            .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
            .map_err(|e| FsnapError::io(dir, e))?;
        if let Some(home) = dir.parent() {
            // Another run's snapshots may be in it: then it stays.
            let _ = std::fs::remove_dir(home);
        }
    }
    Ok(())
}

/// The filesystems to freeze: each with the source paths on it.
#[derive(Debug, PartialEq, Eq)]
enum Volume {
    Btrfs {
        root: PathBuf,
    },
    /// `mount`: where it is mounted; `fs_root`: the directory of the filesystem mounted there.
    Lvm {
        vg: String,
        lv: String,
        mount: PathBuf,
        fs_root: PathBuf,
        fstype: String,
    },
    Zfs {
        dataset: String,
        mount: PathBuf,
        fs_root: PathBuf,
    },
}

impl Volume {
    /// The directory the source paths are relative to.
    fn root(&self) -> &Path {
        match self {
            Volume::Btrfs { root } => root,
            Volume::Lvm { mount, .. } | Volume::Zfs { mount, .. } => mount,
        }
    }

    /// Where, in a frozen copy of the whole filesystem at `copy`, the directory [`Volume::root`]
    /// shows is (a bind mount shows a part of its filesystem).
    fn in_copy(&self, copy: &Path) -> PathBuf {
        match self {
            Volume::Btrfs { .. } => copy.to_path_buf(),
            Volume::Lvm { fs_root, .. } | Volume::Zfs { fs_root, .. } => {
                copy.join(fs_root.strip_prefix("/").unwrap_or(fs_root))
            }
        }
    }
}

/// Which filesystem `path` (canonical) is on, and what snapshots it.
fn volume_of(path: &Path, method: Method, mounts: &[Mount], runner: &dyn Runner) -> FsnapResult<Volume> {
    let on = mounts::mount_of(mounts, path);
    let zfs = || -> FsnapResult<Volume> {
        match on.filter(|m| m.fstype == "zfs") {
            Some(m) => Ok(Volume::Zfs { dataset: m.source.clone(), mount: m.point.clone(), fs_root: m.root.clone() }),
            None => Err(FsnapError::Unsupported { path: path.into(), why: "is not on a ZFS dataset".into() }),
        }
    };
    let lvm = || -> FsnapResult<Volume> {
        let Some(m) = on else {
            return Err(FsnapError::Unsupported { path: path.into(), why: "its mount is not listed".into() });
        };
        let out = runner.run(&argv(&["lvs", "--noheadings", "--separator", "/", "-o", "vg_name,lv_name", &m.source]));
        match out.ok().as_deref().map(str::trim).and_then(|s| s.split_once('/')) {
            Some((vg, lv)) if !vg.is_empty() && !lv.is_empty() => Ok(Volume::Lvm {
                vg: vg.into(),
                lv: lv.into(),
                mount: m.point.clone(),
                fs_root: m.root.clone(),
                fstype: m.fstype.clone(),
            }),
            _ => Err(FsnapError::Unsupported {
                path: path.into(),
                why: format!("is on {} ({}), which is not an LVM logical volume", m.source, m.fstype),
            }),
        }
    };
    match method {
        Method::Btrfs => Ok(Volume::Btrfs { root: btrfs::subvolume_root(path)? }),
        Method::Zfs => zfs(),
        Method::Lvm => lvm(),
        Method::Auto if btrfs::is_btrfs(path) => Ok(Volume::Btrfs { root: btrfs::subvolume_root(path)? }),
        Method::Auto if is_zfs(path) || on.is_some_and(|m| m.fstype == "zfs") => zfs(),
        Method::Auto => lvm().map_err(|e| match e {
            FsnapError::Unsupported { path, why } => FsnapError::Unsupported {
                path,
                why: format!("cannot be snapshotted: it is not on btrfs or ZFS, and {why}"),
            },
            e => e,
        }),
    }
}

fn is_zfs(path: &Path) -> bool {
    // ZFS's statfs type, which nix has no constant for.
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::FsType(0x2fc1_2fc1))
}

/// A path to read from a frozen copy: as given, canonical, and whether it is a mount point
/// below a source (read live when its filesystem cannot be frozen, rather than lost).
struct Wanted {
    given: PathBuf,
    canonical: PathBuf,
    below_source: bool,
}

/// Freeze the filesystems holding `paths` (absolute; those that do not exist are left to the
/// backup to report), and, unless `one_file_system`, those mounted below them, which a backup
/// crosses into (a snapshot of the filesystem above shows their mount points empty). Each
/// filesystem is frozen once, however many paths it holds. A filesystem mounted below a
/// source that cannot be frozen (tmpfs, ext4 outside LVM, ...) is read live, and said so.
pub fn freeze(
    paths: &[PathBuf],
    method: Method,
    one_file_system: bool,
    runner: Arc<dyn Runner>,
) -> FsnapResult<Frozen> {
    let mounts = mounts::current().map_err(|e| FsnapError::io(Path::new("/proc/self/mountinfo"), e))?;
    let mut wanted = vec![];
    for p in paths {
        let Ok(canonical) = std::fs::canonicalize(p) else { continue };
        if !one_file_system && std::fs::metadata(&canonical).is_ok_and(|m| m.is_dir()) {
            for m in mounts::below(&mounts, &canonical) {
                if paths.iter().any(|q| q == &m.point) || wanted.iter().any(|w: &Wanted| w.canonical == m.point) {
                    continue;
                }
                let shown = p.join(m.point.strip_prefix(&canonical).unwrap_or(&m.point));
                wanted.push(Wanted { given: shown, canonical: m.point.clone(), below_source: true });
            }
        }
        wanted.push(Wanted { given: p.clone(), canonical, below_source: false });
    }
    let mut frozen = Frozen::new(runner.clone());
    frozen.own.push(PathBuf::from(LVM_MOUNTS));
    let mut volumes: Vec<(Volume, Vec<&Wanted>)> = vec![];
    for w in &wanted {
        let v =
            match volume_of(&w.canonical, if w.below_source { Method::Auto } else { method }, &mounts, runner.as_ref())
            {
                Ok(v) => v,
                Err(FsnapError::Unsupported { why, .. }) if w.below_source => {
                    frozen.notes.push(format!("{} is read live, not from a snapshot: it {why}", w.given.display()));
                    frozen.redirects.push(Redirect { path: w.given.clone(), read_from: w.canonical.clone() });
                    continue;
                }
                Err(e) => return Err(e),
            };
        match volumes.iter_mut().find(|(x, _)| *x == v) {
            Some((_, ws)) => ws.push(w),
            None => volumes.push((v, vec![w])),
        }
    }
    let name = owner::mine();
    for (i, (volume, ws)) in volumes.iter().enumerate() {
        let copy = match volume {
            Volume::Btrfs { root } => freeze_btrfs(&mut frozen, root, &format!("{name}-{i}"))?,
            Volume::Lvm { vg, lv, fstype, .. } => {
                freeze_lvm(&mut frozen, runner.as_ref(), vg, lv, fstype, &format!("{name}-{i}"))?
            }
            Volume::Zfs { dataset, mount, .. } => freeze_zfs(&mut frozen, runner.as_ref(), dataset, mount, &name)?,
        };
        let shown_root = volume.in_copy(&copy);
        for w in ws {
            let rest = w.canonical.strip_prefix(volume.root()).unwrap_or(Path::new(""));
            let read_from = if rest.as_os_str().is_empty() { shown_root.clone() } else { shown_root.join(rest) };
            match same_inode(&w.canonical, &read_from) {
                Ok(()) => frozen.redirects.push(Redirect { path: w.given.clone(), read_from }),
                // A bind mount below a source: its snapshot is elsewhere, so it is read live.
                Err(FsnapError::Unsupported { why, .. }) if w.below_source => {
                    frozen.notes.push(format!("{} is read live, not from a snapshot: {why}", w.given.display()));
                    frozen.redirects.push(Redirect { path: w.given.clone(), read_from: w.canonical.clone() });
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(frozen)
}

/// A snapshot keeps inode numbers (btrfs, ext4 and XFS on LVM, ZFS): a copy path that shows
/// another file (a bind mount not seen through, a mount in the way) is refused rather than
/// backed up as if it were the original.
fn same_inode(original: &Path, copy: &Path) -> FsnapResult<()> {
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &Path| std::fs::metadata(p).map(|m| m.ino()).map_err(|e| FsnapError::io(p, e));
    if ino(original)? != ino(copy)? {
        return Err(FsnapError::Unsupported {
            path: original.to_path_buf(),
            why: format!("its snapshot at {} shows another file (a bind mount?)", copy.display()),
        });
    }
    Ok(())
}

/// Where snapshots of the subvolume `root` go: beside it (`<parent>/.arca-snapshots`) when its
/// parent directory is on the same mount, so nothing of arca's appears in the subvolume or its
/// send streams; inside it when it is the root of its mount (a backup leaves that directory
/// out; a send stream of such a subvolume holds it, empty).
pub fn btrfs_home(root: &Path) -> PathBuf {
    let same_mount = match (root.parent(), mounts::current()) {
        (Some(parent), Ok(ms)) => mounts::mount_of(&ms, parent) == mounts::mount_of(&ms, root),
        _ => false,
    };
    match root.parent() {
        Some(parent) if same_mount && btrfs::is_btrfs(parent) => parent.join(BTRFS_DIR),
        _ => root.join(BTRFS_DIR),
    }
}

/// A read-only snapshot of the subvolume `root` in `<home>/<name>/` ([`btrfs_home`]), held by
/// this run, named as the subvolume is (so a send stream of it receives under that name).
fn freeze_btrfs(frozen: &mut Frozen, root: &Path, name: &str) -> FsnapResult<PathBuf> {
    let home = btrfs_home(root);
    let (removed, problems) = remove_btrfs_leftovers(&home);
    frozen.removed_leftovers.extend(removed);
    frozen.notes.extend(problems);
    let mine = home.join(name);
    std::fs::create_dir_all(&mine).map_err(|e| FsnapError::io(&mine, e))?;
    frozen.own.push(home.clone());
    frozen.held.push(owner::hold(&mine).map_err(|e| FsnapError::io(&mine, e))?);
    let base = root.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "root".into());
    let snapshot = mine.join(base);
    if let Err(e) = btrfs::snapshot(root, &snapshot, true) {
        let _ = std::fs::remove_dir(&mine);
        return Err(e);
    }
    frozen.taken.push(Taken::Btrfs { snapshot: snapshot.clone() });
    let source = btrfs::subvolume_info(root)?;
    let copy = btrfs::subvolume_info(&snapshot)?;
    let key = |k: &str| format!("fs-snapshot:{}.{k}", root.display());
    frozen.metadata.insert(key("kind"), "btrfs".into());
    frozen.metadata.insert(key("uuid"), source.uuid);
    // The snapshot's last change is the source's state it froze.
    frozen.metadata.insert(key("generation"), copy.ctransid.to_string());
    Ok(snapshot)
}

/// Remove the snapshot directories in `home` (a `.arca-snapshots`) that no running arca holds:
/// what was removed, and what could not be (which does not stop a backup).
pub fn remove_btrfs_leftovers(home: &Path) -> (Vec<String>, Vec<String>) {
    let (mut removed, mut problems) = (vec![], vec![]);
    let Ok(rd) = std::fs::read_dir(home) else { return (removed, problems) };
    for e in rd.flatten() {
        let dir = e.path();
        let ours = e.file_name().to_str().is_some_and(|n| n.starts_with(owner::PREFIX));
        if !ours || !e.file_type().is_ok_and(|t| t.is_dir()) || !owner::is_abandoned(&dir) {
            continue;
        }
        let mut emptied = true;
        for s in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if btrfs::is_subvolume(&s.path()) {
                if let Err(e) = btrfs::delete(&s.path()) {
                    problems
                        .push(format!("cannot remove {}, left by a run that did not finish: {e}", s.path().display()));
                    emptied = false;
                }
            }
        }
        if emptied && std::fs::remove_dir(&dir).is_ok() {
            removed.push(dir.display().to_string());
        }
    }
    (removed, problems)
}

/// The tag arca's LVM snapshots carry, and the ZFS user property its snapshots have.
pub const LVM_TAG: &str = "arca-fsnap";
pub const ZFS_PROPERTY: &str = "arca:fsnap";

/// The commands that take an LVM snapshot of `vg/lv` named `name` and mount it read-only at
/// `at` (XFS refuses a second mount of the same UUID without `nouuid`).
pub fn lvm_take_commands(vg: &str, lv: &str, fstype: &str, name: &str, at: &Path) -> Vec<Vec<String>> {
    let options = if fstype == "xfs" { "ro,nouuid" } else { "ro" };
    vec![
        argv(&[
            "lvcreate",
            "--snapshot",
            "--extents",
            "10%ORIGIN",
            "--addtag",
            LVM_TAG,
            "--name",
            name,
            &format!("{vg}/{lv}"),
        ]),
        argv(&["mount", "-o", options, &format!("/dev/{vg}/{name}"), &at.display().to_string()]),
    ]
}

/// The commands that remove what [`lvm_take_commands`] made.
pub fn lvm_remove_commands(vg: &str, name: &str, at: &Path) -> Vec<Vec<String>> {
    vec![argv(&["umount", &at.display().to_string()]), argv(&["lvremove", "--yes", &format!("{vg}/{name}")])]
}

fn freeze_lvm(
    frozen: &mut Frozen,
    runner: &dyn Runner,
    vg: &str,
    lv: &str,
    fstype: &str,
    name: &str,
) -> FsnapResult<PathBuf> {
    let (removed, problems) = remove_lvm_leftovers(runner, vg, lv);
    frozen.removed_leftovers.extend(removed);
    frozen.notes.extend(problems);
    let at = Path::new(LVM_MOUNTS).join(name);
    std::fs::create_dir_all(&at).map_err(|e| FsnapError::io(&at, e))?;
    let [create, mount] = <[Vec<String>; 2]>::try_from(lvm_take_commands(vg, lv, fstype, name, &at))
        .map_err(|_| FsnapError::Invalid("LVM commands".into()))?;
    if let Err(e) = runner.run(&create) {
        let _ = std::fs::remove_dir(&at);
        return Err(e);
    }
    let mut undo = lvm_remove_commands(vg, name, &at);
    if let Err(e) = runner.run(&mount) {
        let _ = runner.run(&undo[1]);
        let _ = std::fs::remove_dir(&at);
        return Err(e);
    }
    undo.push(argv(&["rmdir", &at.display().to_string()]));
    frozen.taken.push(Taken::Commands(undo));
    let key = |k: &str| format!("fs-snapshot:{vg}/{lv}.{k}");
    frozen.metadata.insert(key("kind"), "lvm".into());
    frozen.metadata.insert(key("snapshot"), format!("{vg}/{name}"));
    Ok(at)
}

/// Remove LVM snapshots of `vg/lv` that carry arca's tag and whose process no longer runs
/// (unmounting them first): what was removed, and what could not be.
pub fn remove_lvm_leftovers(runner: &dyn Runner, vg: &str, lv: &str) -> (Vec<String>, Vec<String>) {
    let (mut removed, mut problems) = (vec![], vec![]);
    let listed = runner.run(&argv(&["lvs", "--noheadings", "--separator", "/", "-o", "lv_name,origin,lv_tags", vg]));
    let listed = match listed {
        Ok(l) => l,
        Err(e) => {
            problems.push(format!("cannot look for snapshots a killed run left in {vg}: {e}"));
            return (removed, problems);
        }
    };
    for line in listed.lines() {
        let mut f = line.trim().split('/');
        let (Some(name), Some(origin), tags) = (f.next(), f.next(), f.next().unwrap_or("")) else { continue };
        if origin != lv || !tags.split(',').any(|t| t == LVM_TAG) || !owner::is_leftover(name) {
            continue;
        }
        let at = Path::new(LVM_MOUNTS).join(name);
        let mounted = mounts::current().is_ok_and(|ms| ms.iter().any(|m| m.point == at));
        let cmds = lvm_remove_commands(vg, name, &at);
        let result = cmds.iter().skip(usize::from(!mounted)).try_for_each(|c| runner.run(c).map(drop));
        match result {
            Ok(()) => {
                let _ = std::fs::remove_dir(&at);
                removed.push(format!("{vg}/{name}"));
            }
            Err(e) => problems.push(format!("cannot remove {vg}/{name}, left by a run that did not finish: {e}")),
        }
    }
    (removed, problems)
}

fn freeze_zfs(
    frozen: &mut Frozen,
    runner: &dyn Runner,
    dataset: &str,
    mount: &Path,
    name: &str,
) -> FsnapResult<PathBuf> {
    let (removed, problems) = remove_zfs_leftovers(runner, dataset);
    frozen.removed_leftovers.extend(removed);
    frozen.notes.extend(problems);
    let snap = format!("{dataset}@{name}");
    runner.run(&argv(&["zfs", "snapshot", "-o", &format!("{ZFS_PROPERTY}=on"), &snap]))?;
    frozen.taken.push(Taken::Commands(vec![argv(&["zfs", "destroy", &snap])]));
    let key = |k: &str| format!("fs-snapshot:{dataset}.{k}");
    frozen.metadata.insert(key("kind"), "zfs".into());
    frozen.metadata.insert(key("snapshot"), snap);
    if let Ok(guid) = runner.run(&argv(&["zfs", "get", "-H", "-p", "-o", "value", "guid", dataset])) {
        frozen.metadata.insert(key("guid"), guid.trim().to_string());
    }
    let copy = mount.join(".zfs").join("snapshot").join(name);
    // A snapshot directory is mounted on first access; stat alone does not reach it.
    let _ = std::fs::read_dir(&copy);
    Ok(copy)
}

/// Destroy the ZFS snapshots of `dataset` that carry arca's property and whose process no
/// longer runs: what was destroyed, and what could not be.
pub fn remove_zfs_leftovers(runner: &dyn Runner, dataset: &str) -> (Vec<String>, Vec<String>) {
    let (mut removed, mut problems) = (vec![], vec![]);
    let cmd = argv(&["zfs", "list", "-H", "-t", "snapshot", "-o", &format!("name,{ZFS_PROPERTY}"), "-d", "1", dataset]);
    let listed = match runner.run(&cmd) {
        Ok(l) => l,
        Err(e) => {
            problems.push(format!("cannot look for snapshots a killed run left of {dataset}: {e}"));
            return (removed, problems);
        }
    };
    for line in listed.lines() {
        let Some((full, mark)) = line.trim().split_once('\t') else { continue };
        let Some((ds, name)) = full.split_once('@') else { continue };
        if ds != dataset || mark != "on" || !owner::is_leftover(name) {
            continue;
        }
        match runner.run(&argv(&["zfs", "destroy", full])) {
            Ok(_) => removed.push(full.to_string()),
            Err(e) => problems.push(format!("cannot destroy {full}, left by a run that did not finish: {e}")),
        }
    }
    (removed, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records each command; answers from a table of (first words, output).
    struct Fake {
        ran: Mutex<Vec<String>>,
        answers: Vec<(&'static str, Result<String, ()>)>,
    }

    impl Runner for Fake {
        fn run(&self, argv: &[String]) -> FsnapResult<String> {
            let line = argv.join(" ");
            self.ran.lock().unwrap().push(line.clone());
            match self.answers.iter().find(|(prefix, _)| line.starts_with(prefix)) {
                Some((_, Ok(out))) => Ok(out.clone()),
                Some((_, Err(()))) => Err(FsnapError::Invalid(format!("{line}: refused"))),
                None => Ok(String::new()),
            }
        }
    }

    fn fake(answers: Vec<(&'static str, Result<String, ()>)>) -> Arc<Fake> {
        Arc::new(Fake { ran: Mutex::new(vec![]), answers })
    }

    #[test]
    fn lvm_is_found_by_the_mount_source_and_refused_elsewhere() {
        let mounts = mounts::parse(
            "30 22 253:0 / /home rw - xfs /dev/mapper/vg0-home rw\n22 1 8:1 / / rw - ext4 /dev/sda1 rw\n",
        );
        let f = fake(vec![
            ("lvs --noheadings --separator / -o vg_name,lv_name /dev/mapper/vg0-home", Ok("  vg0/home\n".into())),
            ("lvs", Err(())),
        ]);
        let v = volume_of(Path::new("/home/a"), Method::Lvm, &mounts, f.as_ref()).unwrap();
        assert_eq!(
            v,
            Volume::Lvm {
                vg: "vg0".into(),
                lv: "home".into(),
                mount: "/home".into(),
                fs_root: "/".into(),
                fstype: "xfs".into()
            }
        );
        // A bind mount of a part of a filesystem: its files are there in the whole copy.
        let bind = Volume::Zfs { dataset: "tank/data".into(), mount: "/srv".into(), fs_root: "/www".into() };
        assert_eq!(bind.in_copy(Path::new("/srv/.zfs/snapshot/s")), Path::new("/srv/.zfs/snapshot/s/www"));
        let e = volume_of(Path::new("/etc"), Method::Lvm, &mounts, f.as_ref()).unwrap_err().to_string();
        assert!(e.contains("/dev/sda1 (ext4), which is not an LVM logical volume"), "{e}");
        let e = volume_of(Path::new("/etc"), Method::Zfs, &mounts, f.as_ref()).unwrap_err().to_string();
        assert!(e.contains("not on a ZFS dataset"), "{e}");
    }

    #[test]
    fn lvm_commands_mount_read_only_and_undo_in_order() {
        let at = Path::new("/run/arca/fs-snapshots/arca-1-2-0");
        let take = lvm_take_commands("vg0", "home", "xfs", "arca-1-2-0", at);
        assert_eq!(
            take[0].join(" "),
            "lvcreate --snapshot --extents 10%ORIGIN --addtag arca-fsnap --name arca-1-2-0 vg0/home"
        );
        assert_eq!(take[1].join(" "), "mount -o ro,nouuid /dev/vg0/arca-1-2-0 /run/arca/fs-snapshots/arca-1-2-0");
        assert_eq!(lvm_take_commands("vg0", "home", "ext4", "n", at)[1][2], "ro");
        let undo = lvm_remove_commands("vg0", "arca-1-2-0", at);
        assert_eq!(undo[0].join(" "), "umount /run/arca/fs-snapshots/arca-1-2-0");
        assert_eq!(undo[1].join(" "), "lvremove --yes vg0/arca-1-2-0");
    }

    #[test]
    fn lvm_leftovers_of_dead_processes_are_removed_and_others_kept() {
        let me = owner::mine();
        let dead = format!("{}{}-7-0", owner::PREFIX, u32::MAX);
        let listing = format!(
            "  home//\n  {dead}/home/arca-fsnap\n  {me}-0/home/arca-fsnap\n  {dead}/var/arca-fsnap\n  {}{}-8-0/home/\n  arca-2024-06-01/home/arca-fsnap\n  nightly/home/\n",
            owner::PREFIX,
            u32::MAX
        );
        let f = fake(vec![("lvs", Ok(listing))]);
        let (removed, problems) = remove_lvm_leftovers(f.as_ref(), "vg0", "home");
        assert_eq!(removed, vec![format!("vg0/{dead}")]);
        assert!(problems.is_empty());
        let ran = f.ran.lock().unwrap().clone();
        // Not mounted here: only the lvremove. Untagged, alive, other origins, users' names: kept.
        assert_eq!(ran[1..], [format!("lvremove --yes vg0/{dead}")]);
        // One that cannot be removed is reported, not fatal.
        let f = fake(vec![("lvs", Ok(format!("  {dead}/home/arca-fsnap\n"))), ("lvremove", Err(()))]);
        let (removed, problems) = remove_lvm_leftovers(f.as_ref(), "vg0", "home");
        assert!(removed.is_empty() && problems.len() == 1, "{problems:?}");
    }

    #[test]
    fn zfs_snapshot_is_destroyed_on_release_and_leftovers_first() {
        let dead = format!("tank/data@{}{}-9", owner::PREFIX, u32::MAX);
        let f = fake(vec![
            (
                "zfs list",
                Ok(format!(
                    "tank/data@daily\t-\n{dead}\ton\ntank/data/sub@{}{}-9\ton\ntank/data@arca-2024-06\ton\ntank/data@{}{}-8\t-\n",
                    owner::PREFIX,
                    u32::MAX,
                    owner::PREFIX,
                    u32::MAX
                )),
            ),
            ("zfs get", Ok("1234567\n".into())),
        ]);
        let mut frozen = Frozen::new(f.clone());
        let copy = freeze_zfs(&mut frozen, f.as_ref(), "tank/data", Path::new("/srv/data"), "arca-fsnap-5-6").unwrap();
        assert_eq!(copy, Path::new("/srv/data/.zfs/snapshot/arca-fsnap-5-6"));
        assert_eq!(frozen.removed_leftovers, vec![dead.clone()]);
        assert_eq!(frozen.metadata["fs-snapshot:tank/data.guid"], "1234567");
        assert!(frozen.release().is_empty());
        let ran = f.ran.lock().unwrap().clone();
        let expect = [
            "zfs list -H -t snapshot -o name,arca:fsnap -d 1 tank/data".to_string(),
            format!("zfs destroy {dead}"),
            "zfs snapshot -o arca:fsnap=on tank/data@arca-fsnap-5-6".into(),
            "zfs get -H -p -o value guid tank/data".into(),
            "zfs destroy tank/data@arca-fsnap-5-6".into(),
        ];
        assert_eq!(ran, expect);
    }

    #[test]
    fn a_failed_mount_removes_the_new_lvm_snapshot() {
        let f = fake(vec![("lvs", Ok(String::new())), ("mount", Err(()))]);
        let mut frozen = Frozen::new(f.clone());
        let e = freeze_lvm(&mut frozen, f.as_ref(), "vg0", "home", "ext4", "arca-1-2-0");
        assert!(e.is_err());
        let ran = f.ran.lock().unwrap().clone();
        assert_eq!(ran.last().unwrap(), "lvremove --yes vg0/arca-1-2-0");
        assert!(frozen.taken.is_empty());
    }
}
