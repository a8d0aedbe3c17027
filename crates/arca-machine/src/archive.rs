//! Package files checked against the distribution's signed archive instead of the machine's
//! own records: each installed package's `.deb`, fetched by `apt-get download` (which checks
//! it against the SHA-256 in the `Packages` index that the archive's signed `Release` vouches
//! for), unpacked in memory, and every regular file in it compared by SHA-256 with the file on
//! the system. An intruder who rewrote a binary and dpkg's MD5 list for it is found; one who
//! also replaced apt's keyring is not (audit a snapshot from before, on another machine).

use crate::audit::{Aliases, Finding, PackageAudit, System};
use crate::{MachineError, MachineResult};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Where to keep downloaded packages, and which to check.
#[derive(Clone, Debug)]
pub struct ArchiveOptions {
    pub cache: PathBuf,
    /// Only these packages (empty: every installed one).
    pub packages: Vec<String>,
}

/// An installed package, from dpkg's `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub arch: String,
}

/// The installed packages in a dpkg `status` file.
pub fn installed(status: &str) -> Vec<Installed> {
    status
        .split("\n\n")
        .filter_map(|para| {
            let field = |k: &str| {
                para.lines()
                    .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(':')).map(|v| v.trim().to_string()))
            };
            let state = field("Status")?;
            if !state.ends_with(" installed") {
                return None;
            }
            Some(Installed { name: field("Package")?, version: field("Version")?, arch: field("Architecture")? })
        })
        .collect()
}

/// The SHA-256 the archive's signed index gives for `p`'s `.deb`.
fn index_sha256(p: &Installed) -> Result<String, String> {
    let mut c = std::process::Command::new("apt-cache");
    c.args(["show", "--no-all-versions", &format!("{}:{}={}", p.name, p.arch, p.version)]);
    let out = arca_ops::tool::output(c, "apt-cache show", "install apt").map_err(|e| e.to_string())?;
    out.lines().find_map(|l| l.strip_prefix("SHA256:").map(|v| v.trim().to_lowercase())).ok_or_else(|| {
        format!(
            "{} {} is not (or no longer) in the archive's index (apt-cache show), so its .deb cannot be verified",
            p.name, p.version
        )
    })
}

/// SHA-256 of a file, read in pieces.
fn sha256_of(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let (mut h, mut buf) = (Sha256::new(), vec![0u8; 1 << 16]);
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(hex::encode(h.finalize())),
            n => h.update(&buf[..n]),
        }
    }
}

/// The `.deb` of `p` in `cache`, downloaded if it is not there yet. A cached one is checked
/// against the index again (the cache is a directory anyone with root on this machine could
/// have written), and fetched anew if it differs.
fn fetch(p: &Installed, cache: &Path) -> Result<PathBuf, String> {
    // apt names files with the epoch's colon escaped.
    let file = cache.join(format!("{}_{}_{}.deb", p.name, p.version.replace(':', "%3a"), p.arch));
    if file.exists() {
        let want = index_sha256(p)?;
        let got = sha256_of(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        if got == want {
            return Ok(file);
        }
        std::fs::remove_file(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let mut c = std::process::Command::new("apt-get");
    c.args(["download", "-q", &format!("{}:{}={}", p.name, p.arch, p.version)]).current_dir(cache);
    arca_ops::tool::output(c, "apt-get download", "install apt").map_err(|e| e.to_string())?;
    if file.exists() {
        Ok(file)
    } else {
        Err(format!("apt-get download did not give {}", file.display()))
    }
}

/// SHA-256 of every regular file in a `.deb`'s data, by path relative to `/`.
fn deb_files(deb: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut c = std::process::Command::new("dpkg-deb");
    c.arg("--fsys-tarfile").arg(deb);
    arca_ops::tool::read_output(c, "dpkg-deb", "install dpkg", |out| -> Result<_, arca_ops::tool::ToolError> {
        let mut files = vec![];
        let mut archive = tar::Archive::new(out);
        let io = |e: std::io::Error| arca_ops::tool::ToolError::Output { program: "dpkg-deb".into(), source: e };
        for entry in archive.entries().map_err(io)? {
            let mut entry = entry.map_err(io)?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let path = entry.path().map_err(io)?.to_string_lossy().trim_start_matches("./").to_string();
            let mut h = Sha256::new();
            std::io::copy(&mut entry, &mut HashInto(&mut h)).map_err(io)?;
            files.push((path, h.finalize().to_vec()));
        }
        Ok(files)
    })
    .map_err(|e| e.to_string())
}

struct HashInto<'h>(&'h mut Sha256);

impl std::io::Write for HashInto<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The paths (relative to `/`) of one of dpkg's lists about `p` (`conffiles`), if it has
/// one.
fn info_paths(system: &System, p: &Installed, what: &str) -> Option<HashSet<String>> {
    [format!("{}.{what}", p.name), format!("{}:{}.{what}", p.name, p.arch)]
        .iter()
        .find_map(|f| system.read(&format!("var/lib/dpkg/info/{f}")).ok().flatten())
        .map(|b| String::from_utf8_lossy(&b).lines().map(|l| l.trim_start_matches('/').to_string()).collect())
}

/// Which packages dpkg lists each path (relative to `/`) under, from every `<package>.list`.
fn owners(system: &System) -> std::collections::HashMap<String, Vec<String>> {
    let mut out: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for file in system.list("var/lib/dpkg/info") {
        let Some(stem) = file.strip_suffix(".list") else { continue };
        let package = stem.split(':').next().unwrap_or(stem).to_string();
        let Ok(Some(b)) = system.read(&format!("var/lib/dpkg/info/{file}")) else { continue };
        for line in String::from_utf8_lossy(&b).lines() {
            out.entry(line.trim_start_matches('/').to_string()).or_default().push(package.clone());
        }
    }
    out
}

/// Check the installed packages' files against their `.deb`s from the archive.
pub fn audit_against_archive(system: &System, opts: &ArchiveOptions) -> MachineResult<PackageAudit> {
    let status = system.read("var/lib/dpkg/status")?.ok_or_else(|| {
        MachineError::NoPackageDatabase("no dpkg status (var/lib/dpkg/status) here: only Debian-style systems".into())
    })?;
    let mut packages = installed(&String::from_utf8_lossy(&status));
    if !opts.packages.is_empty() {
        for want in &opts.packages {
            if !packages.iter().any(|p| &p.name == want) {
                return Err(MachineError::NoPackageDatabase(format!("{want} is not installed there")));
            }
        }
        packages.retain(|p| opts.packages.contains(&p.name));
    }
    std::fs::create_dir_all(&opts.cache).map_err(|e| MachineError::io(&opts.cache, e))?;
    let aliases = Aliases::of(system);
    let diversions =
        system.read("var/lib/dpkg/diversions")?.map(|b| crate::audit::parse_diversions(&b)).unwrap_or_default();
    let diversions: std::collections::HashMap<String, (String, String)> =
        diversions.into_iter().map(|(from, (to, by))| (aliases.resolve(&from), (aliases.resolve(&to), by))).collect();
    let owners = owners(system);
    let mut report = PackageAudit { packages: packages.len(), ..Default::default() };
    let excluded = crate::audit::PathFilter::of(system);
    // Downloads one after the other (apt's own pace), checks in parallel.
    let mut debs = vec![];
    for p in &packages {
        match fetch(p, &opts.cache) {
            Ok(deb) => debs.push((p, deb)),
            Err(why) => report.unverifiable.push((p.name.clone(), why)),
        }
    }
    type Checked = (Vec<Finding>, Vec<Finding>, Vec<(String, String)>, usize, Option<(String, String)>);
    let results: Vec<Checked> = debs
        .par_iter()
        .map(|(p, deb)| {
            let mut out: Checked = (vec![], vec![], vec![], 0, None);
            let files = match deb_files(deb) {
                Ok(f) => f,
                Err(why) => {
                    out.4 = Some((p.name.clone(), why));
                    return out;
                }
            };
            let conffiles = info_paths(system, p, "conffiles").unwrap_or_default();
            for (path, want) in files {
                // A file another package took over (`Replaces:`: dpkg lists it as that
                // package's, not this one's) is checked against that package's .deb. One no
                // package lists is checked here: dropping a line from a list hides nothing.
                let taken_over = owners.get(&path).is_some_and(|o| !o.contains(&p.name) && !o.is_empty());
                if conffiles.contains(&path) || taken_over {
                    continue;
                }
                let path = aliases.resolve(&path);
                let at = match diversions.get(&path) {
                    Some((to, by)) if *by != p.name => to.clone(),
                    _ => path,
                };
                let at = aliases.resolve(&at);
                out.3 += 1;
                let finding = || Finding { path: format!("/{at}"), package: p.name.clone() };
                match system.digest::<Sha256>(&at) {
                    Ok(Some(got)) if got == want => {}
                    Ok(Some(_)) => out.0.push(finding()),
                    Ok(None) if excluded.excludes(&at) => {}
                    Ok(None) => out.1.push(finding()),
                    Err(why) => out.2.push((format!("/{at}"), why)),
                }
            }
            out
        })
        .collect();
    for (modified, missing, unreadable, files, unverifiable) in results {
        report.modified.extend(modified);
        report.missing.extend(missing);
        report.unreadable.extend(unreadable);
        report.files += files;
        report.unverifiable.extend(unverifiable);
    }
    report.modified.sort_by(|a, b| a.path.cmp(&b.path));
    report.missing.sort_by(|a, b| a.path.cmp(&b.path));
    report.unreadable.sort();
    report.unverifiable.sort();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_packages_come_from_the_status_file() {
        let status = "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:2.0-1\n\nPackage: b\nStatus: deinstall ok config-files\nArchitecture: all\nVersion: 1\n\nPackage: c\nStatus: install ok installed\nVersion: 3\n";
        assert_eq!(
            installed(status),
            vec![Installed { name: "a".into(), version: "1:2.0-1".into(), arch: "amd64".into() }]
        );
    }
}
