//! Audits: every file a Debian package installed, checked against the MD5 sum dpkg recorded
//! for it (`/var/lib/dpkg/info/*.md5sums`, what `debsums` checks), on a live system or inside
//! a snapshot; executables in the system's `bin` and `sbin` directories that no package owns;
//! and a live system compared with a snapshot by content (a tripwire).
//!
//! Trust: dpkg's sums live on the machine audited, so an intruder with root can rewrite them.
//! Auditing a snapshot taken before the intrusion, or comparing the live system with one
//! (`against`), does not depend on them. Conffiles (changed by administrators on purpose) are
//! not checked, as `debsums` does not by default.

use crate::{MachineError, MachineResult};
use arca_format::{Node, NodeKind};
use arca_repo::treewalk::{self, Found, Visit};
use arca_repo::Repository;
use md5::{Digest, Md5};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where the files are.
pub enum System<'a> {
    /// A running system (or a mounted one) under this root directory.
    Live(PathBuf),
    /// A snapshot's tree below a path: each entry by its path relative to that root.
    Snapshot { repo: &'a Repository, entries: HashMap<String, Node> },
}

/// The top-level directories a merged-/usr system makes symlinks into `usr/`.
const MERGED: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];
/// Where executables that a package should own live.
const SYSTEM_BIN: &[&str] = &["usr/bin", "usr/sbin", "bin", "sbin"];

impl<'a> System<'a> {
    /// The entries of a snapshot below `root` (a directory in it, `/` for all of it).
    pub fn snapshot(repo: &'a Repository, tree: &arca_format::Id, root: &str) -> MachineResult<System<'a>> {
        let found = treewalk::lookup(repo, tree, root.as_bytes())?
            .ok_or_else(|| MachineError::NotInSnapshot(format!("{root} is not in the snapshot")))?;
        let sub = match found {
            Found::Root(id) => id,
            Found::Node(n) if n.kind == NodeKind::Dir => n
                .subtree
                .ok_or_else(|| MachineError::NotInSnapshot(format!("{root} has no listing in the snapshot")))?,
            Found::Node(_) => return Err(MachineError::NotInSnapshot(format!("{root} is not a directory"))),
        };
        let mut entries = HashMap::new();
        let mut first_error = None;
        treewalk::walk(
            repo,
            &sub,
            &mut |path, node| {
                entries.insert(String::from_utf8_lossy(path).into_owned(), node.clone());
                Ok(Visit::Continue)
            },
            &mut |path, e| {
                first_error.get_or_insert(format!("{}: {e}", String::from_utf8_lossy(path)));
            },
        )?;
        if let Some(e) = first_error {
            return Err(MachineError::NotInSnapshot(format!("part of the snapshot cannot be read: {e}")));
        }
        Ok(System::Snapshot { repo, entries })
    }

    /// The bytes of a small file (a package list), `None` if there is none.
    pub(crate) fn read(&self, rel: &str) -> MachineResult<Option<Vec<u8>>> {
        match self {
            System::Live(root) => match std::fs::read(root.join(rel)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(MachineError::io(&root.join(rel), e)),
            },
            System::Snapshot { repo, entries } => match entries.get(rel).filter(|n| n.kind == NodeKind::File) {
                Some(n) => {
                    let mut b = vec![];
                    arca_fs::restore::dump(repo, n, &mut b)?;
                    Ok(Some(b))
                }
                None => Ok(None),
            },
        }
    }

    /// The names in a directory.
    pub(crate) fn list(&self, rel: &str) -> Vec<String> {
        match self {
            System::Live(root) => std::fs::read_dir(root.join(rel))
                .map(|rd| rd.flatten().filter_map(|e| e.file_name().to_str().map(String::from)).collect())
                .unwrap_or_default(),
            System::Snapshot { entries, .. } => {
                let prefix = format!("{rel}/");
                entries
                    .keys()
                    .filter_map(|k| k.strip_prefix(&prefix).filter(|r| !r.contains('/')).map(String::from))
                    .collect()
            }
        }
    }

    /// The symlink target of a top-level entry, if it is a symlink.
    fn link(&self, rel: &str) -> Option<String> {
        match self {
            System::Live(root) => std::fs::read_link(root.join(rel)).ok().map(|t| t.to_string_lossy().into_owned()),
            System::Snapshot { entries, .. } => entries
                .get(rel)
                .filter(|n| n.kind == NodeKind::Symlink)
                .and_then(|n| n.target.as_ref())
                .map(|t| String::from_utf8_lossy(t).into_owned()),
        }
    }

    /// The digest of a regular file; `None` if it is missing or not a regular file.
    pub(crate) fn digest<D: Digest>(&self, rel: &str) -> Result<Option<Vec<u8>>, String> {
        let mut h = D::new();
        match self {
            System::Live(root) => {
                let path = root.join(rel);
                // A packaged file replaced by a symlink (to a clean copy, or out of --root), a
                // FIFO or a device is not the packaged file: its "digest" is empty, which
                // differs from any sum. Opened without following links or blocking.
                match std::fs::symlink_metadata(&path) {
                    Ok(md) if !md.is_file() => return Ok(Some(vec![])),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e.to_string()),
                }
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc_flags())
                    .open(&path)
                    .map_err(|e| e.to_string())?;
                if !f.metadata().is_ok_and(|m| m.is_file()) {
                    return Ok(Some(vec![]));
                }
                let mut buf = vec![0u8; 256 << 10];
                loop {
                    let n = f.read(&mut buf).map_err(|e| e.to_string())?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            }
            System::Snapshot { repo, entries } => {
                let Some(n) = entries.get(rel).filter(|n| n.kind == NodeKind::File) else { return Ok(None) };
                let mut w = HashWriter(&mut h);
                arca_fs::restore::dump(repo, n, &mut w).map_err(|e| e.to_string())?;
            }
        }
        Ok(Some(h.finalize().to_vec()))
    }

    /// The regular files with an execute bit directly in a directory.
    fn executables(&self, rel: &str) -> Vec<String> {
        match self {
            System::Live(root) => std::fs::read_dir(root.join(rel))
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| {
                            e.file_type().is_ok_and(|t| t.is_file())
                                && e.metadata().is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
                        })
                        .map(|e| format!("{rel}/{}", String::from_utf8_lossy(e.file_name().as_bytes())))
                        .collect()
                })
                .unwrap_or_default(),
            System::Snapshot { entries, .. } => {
                let prefix = format!("{rel}/");
                entries
                    .iter()
                    .filter(|(k, n)| {
                        k.strip_prefix(&prefix).is_some_and(|r| !r.contains('/'))
                            && n.kind == NodeKind::File
                            && n.mode & 0o111 != 0
                    })
                    .map(|(k, _)| k.clone())
                    .collect()
            }
        }
    }
}

/// `O_NOFOLLOW | O_NONBLOCK`.
fn libc_flags() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_NONBLOCK.bits()
}

/// Feeds what it is given to a digest.
struct HashWriter<'h, D: Digest>(&'h mut D);

impl<D: Digest> std::io::Write for HashWriter<'_, D> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A file the audit has something to say about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub path: String,
    /// The package that installed it.
    pub package: String,
}

/// What a package audit found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PackageAudit {
    pub packages: usize,
    /// Files checked against their sums.
    pub files: usize,
    /// Contents differ from the sum dpkg recorded.
    pub modified: Vec<Finding>,
    /// Listed by a package, not there.
    pub missing: Vec<Finding>,
    /// Executables in bin and sbin directories that no package lists.
    pub unowned: Vec<String>,
    /// Files that could not be read, with why.
    pub unreadable: Vec<(String, String)>,
    /// Packages that could not be checked against the archive, with why (`--archive`).
    #[serde(default)]
    pub unverifiable: Vec<(String, String)>,
}

impl PackageAudit {
    /// Nothing modified, missing, unowned or unreadable.
    pub fn is_clean(&self) -> bool {
        self.modified.is_empty()
            && self.missing.is_empty()
            && self.unowned.is_empty()
            && self.unreadable.is_empty()
            && self.unverifiable.is_empty()
    }
}

/// The package name of a dpkg info file (`coreutils.md5sums`, `libc6:amd64.list`).
fn package_of(file: &str, ext: &str) -> Option<String> {
    let stem = file.strip_suffix(ext)?;
    Some(stem.split(':').next().unwrap_or(stem).to_string())
}

/// The `md5sums` lines: sum and path (relative, as dpkg writes them).
fn parse_md5sums(text: &[u8]) -> Vec<([u8; 16], String)> {
    String::from_utf8_lossy(text)
        .lines()
        .filter_map(|l| {
            let (sum, path) = l.split_once(char::is_whitespace)?;
            let mut out = [0u8; 16];
            hex::decode_to_slice(sum, &mut out).ok()?;
            Some((out, path.trim_start().trim_start_matches('/').to_string()))
        })
        .collect()
}

/// Diversions (`/var/lib/dpkg/diversions`: from, to, package, three lines each): where a
/// diverted path's packaged file went, and the package that diverted it.
pub(crate) fn parse_diversions(text: &[u8]) -> HashMap<String, (String, String)> {
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text.lines().collect();
    lines
        .chunks_exact(3)
        .map(|c| {
            let strip = |p: &str| p.trim_start_matches('/').to_string();
            (strip(c[0]), (strip(c[1]), c[2].to_string()))
        })
        .collect()
}

/// dpkg's `path-exclude=` and `path-include=` options (`/etc/dpkg/dpkg.cfg` and
/// `dpkg.cfg.d/*`): packaged files dpkg did not install on purpose.
pub(crate) struct PathFilter {
    exclude: Option<globset::GlobSet>,
    include: Option<globset::GlobSet>,
}

impl PathFilter {
    pub(crate) fn of(system: &System) -> PathFilter {
        let mut files = vec!["etc/dpkg/dpkg.cfg".to_string()];
        let mut names = system.list("etc/dpkg/dpkg.cfg.d");
        names.sort();
        files.extend(names.into_iter().map(|n| format!("etc/dpkg/dpkg.cfg.d/{n}")));
        let (mut ex, mut inc) = (globset::GlobSetBuilder::new(), globset::GlobSetBuilder::new());
        let (mut any_ex, mut any_inc) = (false, false);
        for f in files {
            let Ok(Some(text)) = system.read(&f) else { continue };
            for line in String::from_utf8_lossy(&text).lines() {
                let line = line.trim();
                let (builder, any, glob) = match (line.strip_prefix("path-exclude"), line.strip_prefix("path-include"))
                {
                    (Some(g), _) => (&mut ex, &mut any_ex, g),
                    (_, Some(g)) => (&mut inc, &mut any_inc, g),
                    _ => continue,
                };
                let glob = glob.trim_start_matches(['=', ' ']).trim().trim_start_matches('/');
                if let Ok(g) = globset::GlobBuilder::new(glob).literal_separator(false).build() {
                    builder.add(g);
                    *any = true;
                }
            }
        }
        PathFilter {
            exclude: any_ex.then(|| ex.build().ok()).flatten(),
            include: any_inc.then(|| inc.build().ok()).flatten(),
        }
    }

    pub(crate) fn excludes(&self, rel: &str) -> bool {
        self.exclude.as_ref().is_some_and(|e| e.is_match(rel))
            && !self.include.as_ref().is_some_and(|i| i.is_match(rel))
    }
}

/// Rewrites paths through a merged /usr (`bin/ls` is `usr/bin/ls` where `bin` links there).
pub(crate) struct Aliases(Vec<(String, String)>);

impl Aliases {
    pub(crate) fn of(system: &System) -> Aliases {
        let mut v = vec![];
        for top in MERGED {
            if let Some(t) = system.link(top) {
                let t = t.trim_start_matches('/').trim_end_matches('/');
                if t == format!("usr/{top}") {
                    v.push((top.to_string(), t.to_string()));
                }
            }
        }
        Aliases(v)
    }

    pub(crate) fn resolve(&self, rel: &str) -> String {
        for (from, to) in &self.0 {
            if let Some(rest) = rel.strip_prefix(from.as_str()).and_then(|r| r.strip_prefix('/')) {
                return format!("{to}/{rest}");
            }
        }
        rel.to_string()
    }
}

/// Check every packaged file of `system` against dpkg's sums, and look for unowned
/// executables. Files are hashed in parallel.
pub fn audit_packages(system: &System) -> MachineResult<PackageAudit> {
    const INFO: &str = "var/lib/dpkg/info";
    let names = system.list(INFO);
    if names.is_empty() {
        return Err(MachineError::NoPackageDatabase(
            "no dpkg database (var/lib/dpkg/info) here: only Debian-style systems can be audited so far".into(),
        ));
    }
    let aliases = Aliases::of(system);
    let diversions = system.read("var/lib/dpkg/diversions")?.map(|b| parse_diversions(&b)).unwrap_or_default();
    // Diverted paths as the system has them (through a merged /usr).
    let diversions: HashMap<String, (String, String)> =
        diversions.into_iter().map(|(from, (to, by))| (aliases.resolve(&from), (aliases.resolve(&to), by))).collect();
    let mut checks: Vec<(String, String, [u8; 16])> = vec![];
    let mut owned: HashSet<String> = HashSet::new();
    let mut packages: HashSet<String> = HashSet::new();
    for name in &names {
        if let Some(pkg) = package_of(name, ".md5sums") {
            let Some(text) = system.read(&format!("{INFO}/{name}"))? else { continue };
            for (sum, path) in parse_md5sums(&text) {
                let path = aliases.resolve(&path);
                let at = match diversions.get(&path) {
                    Some((to, by)) if *by != pkg => to.clone(),
                    _ => path,
                };
                checks.push((aliases.resolve(&at), pkg.clone(), sum));
            }
            packages.insert(pkg);
        } else if let Some(pkg) = package_of(name, ".list") {
            let Some(text) = system.read(&format!("{INFO}/{name}"))? else { continue };
            for line in String::from_utf8_lossy(&text).lines() {
                let rel = line.trim_start_matches('/');
                owned.insert(aliases.resolve(rel));
                if let Some((to, _)) = diversions.get(rel) {
                    owned.insert(aliases.resolve(to));
                }
            }
            packages.insert(pkg);
        }
    }
    // Alternatives and diversions also put files into bin directories on the packages' behalf.
    for (to, _) in diversions.values() {
        owned.insert(aliases.resolve(to));
    }
    // (par_iter keeps the order: each result stands beside its check.)
    let sums: Vec<Result<Option<Vec<u8>>, String>> =
        checks.par_iter().map(|(path, _, _)| system.digest::<Md5>(path)).collect();
    let mut report = PackageAudit { packages: packages.len(), files: checks.len(), ..Default::default() };
    let excluded = PathFilter::of(system);
    for ((path, pkg, want), got) in checks.iter().zip(sums) {
        let finding = || Finding { path: format!("/{path}"), package: pkg.clone() };
        match got {
            Ok(Some(got)) if got[..] == want[..] => {}
            Ok(Some(_)) => report.modified.push(finding()),
            // dpkg left it out on purpose (path-exclude, as minimal images and containers do).
            Ok(None) if excluded.excludes(path) => {}
            Ok(None) => report.missing.push(finding()),
            Err(why) => report.unreadable.push((format!("/{path}"), why)),
        }
    }
    let mut seen = HashSet::new();
    for dir in SYSTEM_BIN {
        // A bin that links into usr is the same directory as its target.
        if aliases.0.iter().any(|(from, _)| from == dir) {
            continue;
        }
        for exe in system.executables(dir) {
            let rel = aliases.resolve(&exe);
            if !owned.contains(&rel) && seen.insert(rel.clone()) {
                report.unowned.push(format!("/{rel}"));
            }
        }
    }
    report.modified.sort_by(|a, b| a.path.cmp(&b.path));
    report.missing.sort_by(|a, b| a.path.cmp(&b.path));
    report.unowned.sort();
    report.unreadable.sort();
    Ok(report)
}

/// How a live path differs from the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Difference {
    /// Its contents differ.
    Modified,
    /// The snapshot has it; the live system does not.
    Missing,
    /// The live system has it; the snapshot does not.
    Added,
    /// A file became a directory, a symlink another target, and so on.
    Changed,
}

/// What a comparison of a live system with a snapshot found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Comparison {
    /// Files compared by content.
    pub files: usize,
    pub differences: BTreeMap<String, Difference>,
}

/// Compare the live tree at `live` with the snapshot's entries (`System::Snapshot`) by
/// content: every regular file's bytes against the snapshot's blob ids (the file is read, not
/// chunked; times are ignored), symlink targets, and entries on either side only.
pub fn compare(live: &Path, snapshot: &System) -> MachineResult<Comparison> {
    let System::Snapshot { repo, entries } = snapshot else {
        return Err(MachineError::NotInSnapshot("compare needs a snapshot".into()));
    };
    let mut keys: Vec<&String> = entries.keys().collect();
    keys.sort();
    let results: Vec<(String, Option<Difference>)> = keys
        .par_iter()
        .map(|rel| {
            let n = &entries[*rel];
            let path = live.join(rel);
            let md = match std::fs::symlink_metadata(&path) {
                Ok(md) => md,
                Err(_) => return ((*rel).clone(), Some(Difference::Missing)),
            };
            let kind_matches = match n.kind {
                NodeKind::File => md.is_file(),
                NodeKind::Dir => md.is_dir(),
                NodeKind::Symlink => md.file_type().is_symlink(),
                _ => true,
            };
            let diff = if !kind_matches {
                Some(Difference::Changed)
            } else if n.kind == NodeKind::Symlink {
                let target = std::fs::read_link(&path).ok().map(|t| t.as_os_str().as_bytes().to_vec());
                (target != n.target.as_ref().map(|t| t.to_vec())).then_some(Difference::Changed)
            } else if n.kind == NodeKind::File {
                let same = std::fs::File::open(&path)
                    .ok()
                    .is_some_and(|f| arca_fs::restore::matches_node(repo, n, &f, &path).is_ok());
                (!same).then_some(Difference::Modified)
            } else {
                None
            };
            ((*rel).clone(), diff)
        })
        .collect();
    let mut out =
        Comparison { files: entries.values().filter(|n| n.kind == NodeKind::File).count(), ..Default::default() };
    for (rel, d) in results {
        if let Some(d) = d {
            out.differences.insert(format!("/{rel}"), d);
        }
    }
    // What the live side has beyond the snapshot, in the directories the snapshot has.
    for rel in entries.iter().filter(|(_, n)| n.kind == NodeKind::Dir).map(|(k, _)| k) {
        let Ok(rd) = std::fs::read_dir(live.join(rel)) else { continue };
        for e in rd.flatten() {
            let child = format!("{rel}/{}", String::from_utf8_lossy(e.file_name().as_bytes()));
            if !entries.contains_key(&child) {
                out.differences.insert(format!("/{child}"), Difference::Added);
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(live) {
        for e in rd.flatten() {
            let child = String::from_utf8_lossy(e.file_name().as_bytes()).into_owned();
            if !entries.contains_key(&child) {
                out.differences.insert(format!("/{child}"), Difference::Added);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_files_parse() {
        let sums = parse_md5sums(b"d41d8cd98f00b204e9800998ecf8427e  usr/bin/true\nnot a line\nzz  x\n");
        assert_eq!(sums.len(), 1);
        assert_eq!(sums[0].1, "usr/bin/true");
        assert_eq!(package_of("libc6:amd64.md5sums", ".md5sums").as_deref(), Some("libc6"));
        assert_eq!(package_of("coreutils.list", ".md5sums"), None);
        let d = parse_diversions(b"/usr/bin/a\n/usr/bin/a.real\npkg\n/x\n");
        assert_eq!(d["usr/bin/a"], ("usr/bin/a.real".to_string(), "pkg".to_string()));
        assert_eq!(d.len(), 1);
    }

    fn write(root: &Path, rel: &str, data: &[u8], mode: u32) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_live_tree_with_a_changed_a_missing_and_an_unowned_file() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        let md5 = |b: &[u8]| hex::encode(Md5::digest(b));
        write(root, "usr/bin/good", b"good", 0o755);
        write(root, "usr/bin/evil", b"trojan", 0o755);
        write(root, "usr/bin/dropped", b"#!/bin/sh", 0o755);
        write(root, "usr/bin/diverted.real", b"orig", 0o755);
        write(root, "usr/bin/diverted", b"wrapper", 0o755);
        let sums = format!(
            "{}  bin/good\n{}  usr/bin/evil\n{}  usr/bin/gone\n{}  usr/bin/diverted\n",
            md5(b"good"),
            md5(b"evil"),
            md5(b"x"),
            md5(b"orig")
        );
        write(root, "var/lib/dpkg/info/tools:amd64.md5sums", sums.as_bytes(), 0o644);
        write(
            root,
            "var/lib/dpkg/info/tools:amd64.list",
            b"/bin/good\n/usr/bin/evil\n/usr/bin/gone\n/usr/bin/diverted\n",
            0o644,
        );
        write(root, "var/lib/dpkg/info/wrap.list", b"/usr/bin/diverted\n", 0o644);
        write(root, "var/lib/dpkg/diversions", b"/usr/bin/diverted\n/usr/bin/diverted.real\nwrap\n", 0o644);
        // Documentation left out by dpkg on purpose is not "missing".
        write(
            root,
            "etc/dpkg/dpkg.cfg.d/excludes",
            b"path-exclude=/usr/share/doc/*\npath-include=/usr/share/doc/*/copyright\n",
            0o644,
        );
        let more = format!("{}  usr/share/doc/tools/README\n{}  usr/share/doc/tools/copyright\n", md5(b"r"), md5(b"c"));
        let mut all = std::fs::read(root.join("var/lib/dpkg/info/tools:amd64.md5sums")).unwrap();
        all.extend_from_slice(more.as_bytes());
        std::fs::write(root.join("var/lib/dpkg/info/tools:amd64.md5sums"), all).unwrap();
        let r = audit_packages(&System::Live(root.to_path_buf())).unwrap();
        assert_eq!(r.packages, 2);
        assert_eq!(r.files, 6);
        assert_eq!(r.modified, vec![Finding { path: "/usr/bin/evil".into(), package: "tools".into() }]);
        // The README was excluded; the copyright was included again, and is missing.
        assert_eq!(
            r.missing,
            vec![
                Finding { path: "/usr/bin/gone".into(), package: "tools".into() },
                Finding { path: "/usr/share/doc/tools/copyright".into(), package: "tools".into() },
            ]
        );
        assert_eq!(r.unowned, vec!["/usr/bin/dropped".to_string()]);
        assert!(!r.is_clean());
    }
}
