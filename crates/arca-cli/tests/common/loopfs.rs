//! Filesystems on loop devices for the tests that need btrfs or XFS: an image file in a
//! scratch directory, made and mounted on creation, unmounted and removed on drop (and by a
//! watchdog if the test process dies first).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct LoopFs {
    dir: tempfile::TempDir,
    pub mount: PathBuf,
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let o = Command::new(cmd).args(args).output().map_err(|e| format!("{cmd}: {e}"))?;
    if !o.status.success() {
        return Err(format!("{cmd} {args:?}: {}", String::from_utf8_lossy(&o.stderr)));
    }
    Ok(())
}

impl LoopFs {
    /// A new filesystem of `kind` ("btrfs" or "xfs", with reflinks) of `mib` MiB, or why not.
    pub fn new(kind: &str, mib: u64) -> Result<LoopFs, String> {
        let dir = tempfile::Builder::new().prefix("arca-loop-").tempdir_in("/var/tmp").map_err(|e| e.to_string())?;
        let image = dir.path().join("image");
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).map_err(|e| e.to_string())?;
        let f = std::fs::File::create(&image).map_err(|e| e.to_string())?;
        f.set_len(mib << 20).map_err(|e| e.to_string())?;
        let image_s = image.to_str().ok_or("path")?;
        match kind {
            "btrfs" => run("mkfs.btrfs", &["-q", "-f", image_s])?,
            "xfs" => run("mkfs.xfs", &["-q", "-f", "-m", "reflink=1", image_s])?,
            other => return Err(format!("no recipe for {other}")),
        }
        let mount_s = mount.to_str().ok_or("path")?;
        run("mount", &["-o", "loop", image_s, mount_s])?;
        super::dbs::watchdog(&format!("umount -l '{mount_s}' 2>/dev/null; rm -rf '{}'", dir.path().display()));
        Ok(LoopFs { dir, mount })
    }

    /// A path inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mount.join(rel)
    }

    /// `btrfs filesystem du -s --raw` of `paths`: (total, exclusive, set shared) of each.
    pub fn du(paths: &[&Path]) -> Vec<(u64, u64, u64)> {
        let o = Command::new("btrfs")
            .args(["filesystem", "du", "-s", "--raw"])
            .args(paths)
            .output()
            .expect("btrfs filesystem du");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .skip(1)
            .map(|l| {
                let w: Vec<u64> = l.split_whitespace().take(3).map(|x| x.parse().expect("number")).collect();
                (w[0], w[1], w[2])
            })
            .collect()
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        // Lazily: a subvolume still open by a dying process must not keep the image busy.
        let _ = run("umount", &["-l", &self.mount.display().to_string()]);
        let _ = &self.dir;
    }
}

/// A btrfs filesystem, or (outside scripts/test, without root or btrfs-progs) `None` after
/// saying why the test did not run.
pub fn btrfs(mib: u64) -> Option<LoopFs> {
    fs("btrfs", mib)
}

/// An XFS filesystem with reflinks, as [`btrfs`].
pub fn xfs(mib: u64) -> Option<LoopFs> {
    fs("xfs", mib)
}

fn fs(kind: &str, mib: u64) -> Option<LoopFs> {
    if !super::have("root (loop devices)", super::is_root()) {
        return None;
    }
    match LoopFs::new(kind, mib) {
        Ok(f) => Some(f),
        Err(e) => {
            super::have(&format!("a {kind} filesystem on a loop device ({e})"), false);
            None
        }
    }
}
