//! One module per command; each returns the exit code.

mod audit;
pub mod backup;
mod btrfs;
mod cat;
mod check;
mod config;
mod copy;
mod db;
mod debug;
mod diff;
mod docs;
mod export;
mod forget;
mod init;
mod key;
mod ls;
mod mount;
mod prune;
mod repair;
mod restore;
mod rewrite;
mod run;
mod schedule;
mod serve;
mod snapshots;
mod snmp;
mod stats;
mod status;
mod verify;

use crate::cli::{Cli, Command, FilterArgs};
use crate::output::Output;
use anyhow::Result;
use arca_repo::snapshots::{self as snaps, Filter, SnapshotEntry};
use arca_repo::Repository;

/// Run the command line.
pub fn run(cli: &Cli, out: &Output) -> Result<i32> {
    match &cli.command {
        Command::Init(a) => init::run(cli, out, a),
        Command::Backup(a) => backup::run(cli, out, a),
        Command::Snapshots(a) => snapshots::run(cli, out, a),
        Command::Ls(a) => ls::run(cli, out, a),
        Command::Restore(a) => restore::run(cli, out, a),
        Command::Dump(a) => restore::dump(cli, out, a),
        Command::Export(a) => export::run(cli, out, a),
        Command::Mount(a) => mount::run(cli, out, a),
        Command::Forget(a) => forget::run(cli, out, a),
        Command::Diff(a) => diff::run(cli, out, a),
        Command::Find(a) => diff::find(cli, out, a),
        Command::Protect(a) => forget::protect(cli, out, a),
        Command::Tag(a) => rewrite::tag(cli, out, a),
        Command::Rewrite(a) => rewrite::rewrite(cli, out, a),
        Command::Prune(a) => prune::run(cli, out, a),
        Command::Copy(a) => copy::run(cli, out, a),
        Command::Check(a) => check::run(cli, out, a),
        Command::VerifySignature(a) => verify::run(cli, out, a),
        Command::Upgrade { dry_run } => key::upgrade(cli, out, *dry_run),
        Command::Key(k) => key::run(cli, out, k),
        Command::Db(c) => db::run(cli, out, c),
        Command::Btrfs(c) => btrfs::run(cli, out, c),
        Command::Audit(c) => audit::run(cli, out, c),
        Command::RecoveryScript { snapshot, map, files, output, filter } => {
            audit::recovery_script(cli, out, snapshot, map, files.as_deref(), output.as_deref(), filter)
        }
        Command::WalPush { path, system_identifier } => db::wal_push(cli, out, path, system_identifier.as_deref()),
        Command::WalFetch { name, target, system_identifier } => {
            db::wal_fetch(cli, out, name, target, system_identifier.as_deref())
        }
        Command::Stats(a) => stats::run(cli, out, a),
        Command::Cat(a) => cat::run(cli, out, a),
        Command::Repair(r) => repair::run(cli, out, r),
        Command::Serve(a) => serve::run(cli, out, a),
        Command::Debug(d) => debug::run(cli, out, d),
        Command::Run(a) => run::run(cli, out, a),
        Command::Status(a) => status::run(cli, out, a),
        Command::Schedule(c) => schedule::run(cli, out, c),
        Command::Snmp => snmp::run(cli),
        Command::Config(c) => config::run(cli, out, c),
        Command::Cache(a) => docs::cache(cli, out, a),
        Command::Completions { shell } => docs::completions(*shell),
        Command::Man { dir } => docs::man_pages(out, dir),
    }
}

impl FilterArgs {
    /// The engine's filter.
    pub fn filter(&self) -> Filter {
        Filter { hosts: self.hosts.clone(), tags: self.tags.clone(), paths: self.paths.clone() }
    }
}

/// All snapshots, warning about unreadable ones.
pub fn all_snapshots(repo: &Repository, out: &Output) -> Result<Vec<SnapshotEntry>> {
    let warn = |e: arca_repo::Event<'_>| {
        if let arca_repo::Event::Caution(text) = e {
            out.warn(text);
        }
    };
    Ok(arca_ops::readable_snapshots(repo, &warn)?)
}

/// Resolve a snapshot spec (`latest` or an id prefix) among those passing `filter`.
pub fn find_snapshot(repo: &Repository, out: &Output, spec: &str, filter: &FilterArgs) -> Result<SnapshotEntry> {
    let all = all_snapshots(repo, out)?;
    Ok(snaps::resolve(&all, spec, &filter.filter())?)
}

/// "PATH not found in snapshot", with how to pick a snapshot that has it.
pub fn not_in_snapshot(path: &str, snap: &SnapshotEntry) -> anyhow::Error {
    arca_ops::restore::not_in_snapshot(path, snap).into()
}

/// A node kind in words, for messages.
pub fn kind_name(k: arca_format::NodeKind) -> &'static str {
    use arca_format::NodeKind::*;
    match k {
        File => "a file",
        Dir => "a directory",
        Symlink => "a symbolic link",
        BlockDevice => "a block device",
        CharDevice => "a character device",
        Fifo => "a FIFO",
        Socket => "a socket",
        Unknown => "an entry of a type a newer arca wrote",
    }
}
