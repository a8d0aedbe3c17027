//! `arca mount`: the read-only FUSE view, until Ctrl-C, SIGTERM or an external unmount.

use crate::cli::{Cli, MountArgs};
use crate::context;
use crate::output::Output;
use anyhow::{bail, Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub fn run(cli: &Cli, out: &Output, a: &MountArgs) -> Result<i32> {
    let md = std::fs::metadata(&a.mountpoint).with_context(|| format!("cannot mount on {}", a.mountpoint.display()))?;
    if !md.is_dir() {
        bail!("{} is not a directory", a.mountpoint.display());
    }
    // Mounting over a directory with contents hides them until the unmount: likely a mistake
    // (the source directory itself, say).
    if std::fs::read_dir(&a.mountpoint).is_ok_and(|mut d| d.next().is_some()) {
        bail!("{} is not empty: mount on an empty directory (mkdir /mnt/arca)", a.mountpoint.display());
    }
    let (repo, _lock) = context::open_session(cli, out, context::Session::Read("mount"))?;
    let filter = a.filter.filter();
    let snaps: Vec<_> = super::all_snapshots(&repo, out)?.into_iter().filter(|e| filter.matches(&e.snapshot)).collect();
    let fs = arca_mount::SnapshotFs::new(repo.clone(), &snaps);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(sig, stop.clone()).context("cannot install the signal handler")?;
    }
    let session = fuser::spawn_mount(fs, &a.mountpoint, &arca_mount::config(a.allow_other)).with_context(|| {
        format!("cannot mount on {} (is FUSE available, and the directory empty?)", a.mountpoint.display())
    })?;
    let shown = a.mountpoint.display();
    if out.json {
        out.json_line(
            &serde_json::json!({"type": "mounted", "mountpoint": shown.to_string(), "snapshots": snaps.len()}),
        );
    } else {
        out.info(format!(
            "{} mounted at {shown}; Ctrl-C or `fusermount3 -u {shown}` unmounts",
            crate::text::count(snaps.len() as u64, "snapshot", "snapshots")
        ));
    }
    while !stop.load(Ordering::Relaxed) && !session.guard.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    if session.guard.is_finished() {
        session.join().context("the filesystem stopped with an error")?;
    } else {
        session.umount_and_join().with_context(|| format!("cannot unmount {shown}"))?;
    }
    out.info(format!("unmounted {shown}"));
    Ok(crate::exit::OK)
}
