//! Export a snapshot (or part of one) as an archive that ordinary tools restore without arca:
//! a POSIX pax tar stream (ownership, nanosecond times, xattrs and ACLs in the records GNU tar
//! reads, hardlinks as links, sparse files in GNU sparse format 1.0), or a zip file.
//!
//! The tar is written straight to any `Write` (a pipe, a tape): no temporary files. Output is
//! deterministic for a given snapshot, so `--verify` can compare a written archive with a
//! fresh rendering of the snapshot.

use crate::{FsError, FsResult};
use arca_format::{BlobKind, Id, Node, NodeKind};
use arca_repo::treewalk::Found;
use arca_repo::Repository;
use serde::Serialize;
use std::collections::HashMap;
use std::io::{self, Read, Seek, Write};

/// What an export wrote.
#[derive(Debug, Default, Serialize)]
pub struct ExportReport {
    pub entries: u64,
    pub data_bytes: u64,
    /// Entries the format cannot hold (e.g. sockets), with why.
    pub skipped: Vec<String>,
}

/// Reads the data blobs of one file back to back, optionally after a prefix (a sparse map).
pub struct BlobReader<'a> {
    repo: &'a Repository,
    blobs: std::slice::Iter<'a, Id>,
    buf: Vec<u8>,
    pos: usize,
}

impl<'a> BlobReader<'a> {
    /// The contents of a file without holes (a stream), read as they are needed.
    pub fn of(repo: &'a Repository, blobs: &'a [Id]) -> Self {
        BlobReader::new(repo, blobs, vec![])
    }

    fn new(repo: &'a Repository, blobs: &'a [Id], prefix: Vec<u8>) -> Self {
        BlobReader { repo, blobs: blobs.iter(), buf: prefix, pos: 0 }
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            let Some(id) = self.blobs.next() else { return Ok(0) };
            self.buf = self.repo.read_blob(BlobKind::Data, id).map_err(io::Error::other)?;
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The data regions of a file: the complement of its holes. A trailing hole is marked by a
/// zero-length region at the end, as GNU tar expects.
fn data_regions(n: &Node) -> Vec<(u64, u64)> {
    let mut out = vec![];
    let mut pos = 0;
    for &(off, len) in &n.holes {
        if off > pos {
            out.push((pos, off - pos));
        }
        pos = off + len;
    }
    // Trailing data, or the zero-length marker of a trailing hole.
    out.push((pos.min(n.size), n.size.saturating_sub(pos)));
    out
}

/// GNU sparse 1.0 map: count, then offset/length pairs, one number per line, NUL-padded to a
/// 512-byte block.
fn sparse_map(regions: &[(u64, u64)]) -> Vec<u8> {
    let mut m = format!("{}\n", regions.len()).into_bytes();
    for (off, len) in regions {
        m.extend_from_slice(format!("{off}\n{len}\n").as_bytes());
    }
    m.resize(m.len().div_ceil(512) * 512, 0);
    m
}

/// The text form of a POSIX ACL xattr (`system.posix_acl_*`), as GNU tar stores it in
/// `SCHILY.acl.*` records. `None` if the value is not a valid ACL.
pub fn acl_text(value: &[u8]) -> Option<String> {
    // Linux xattr ACL format: u32 version (2), then entries of u16 tag, u16 perm, u32 id.
    if value.len() < 4 || u32::from_le_bytes(value[..4].try_into().ok()?) != 2 || !(value.len() - 4).is_multiple_of(8) {
        return None;
    }
    let mut parts = vec![];
    for e in value[4..].chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let p = format!(
            "{}{}{}",
            if perm & 4 != 0 { 'r' } else { '-' },
            if perm & 2 != 0 { 'w' } else { '-' },
            if perm & 1 != 0 { 'x' } else { '-' }
        );
        parts.push(match tag {
            0x01 => format!("user::{p}"),
            0x02 => format!("user:{id}:{p}"),
            0x04 => format!("group::{p}"),
            0x08 => format!("group:{id}:{p}"),
            0x10 => format!("mask::{p}"),
            0x20 => format!("other::{p}"),
            _ => return None,
        });
    }
    Some(parts.join(","))
}

fn major_minor(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff);
    let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff);
    (major as u32, minor as u32)
}

/// Writes tar entries for a snapshot walk.
struct TarExport<'a, W: Write> {
    repo: &'a Repository,
    out: tar::Builder<W>,
    /// First archived name and node of each hardlink group.
    links: HashMap<(u64, u64), (Vec<u8>, Node)>,
    report: ExportReport,
}

/// Put raw name bytes in a ustar field if they fit, else return false.
fn set_raw(field: &mut [u8], value: &[u8]) -> bool {
    if value.len() > field.len() {
        return false;
    }
    field.fill(0);
    field[..value.len()].copy_from_slice(value);
    true
}

impl<W: Write> TarExport<'_, W> {
    fn err(e: io::Error) -> FsError {
        FsError::Io { path: "<archive>".into(), source: e }
    }

    fn walk(&mut self, tree: &Id, prefix: &[u8]) -> FsResult<()> {
        let t = self.repo.read_tree(tree)?;
        for n in &t.nodes {
            let rel = [prefix, b"/", &n.name].concat();
            self.entry(&rel, n)?;
            if let (NodeKind::Dir, Some(sub)) = (n.kind, &n.subtree) {
                self.walk(sub, &rel)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, rel: &[u8], n: &Node) -> FsResult<()> {
        let mut pax: Vec<(String, Vec<u8>)> = vec![];
        let mut h = tar::Header::new_ustar();
        let name: Vec<u8> =
            if n.kind == NodeKind::Dir && !rel.ends_with(b"/") { [rel, b"/"].concat() } else { rel.to_vec() };
        let regions = if n.kind == NodeKind::File && !n.holes.is_empty() { Some(data_regions(n)) } else { None };
        let header_name: Vec<u8> = if regions.is_some() { b"./GNUSparseFile.0/sparse".to_vec() } else { name.clone() };
        let fits = h.as_ustar_mut().is_some_and(|u| set_raw(&mut u.name, &header_name));
        if !fits || std::str::from_utf8(&header_name).is_err() {
            if !fits {
                if let Some(u) = h.as_ustar_mut() {
                    set_raw(&mut u.name, b"./arca-long-name");
                }
            }
            if std::str::from_utf8(&name).is_err() {
                pax.push(("hdrcharset".into(), b"BINARY".to_vec()));
            }
            if regions.is_none() {
                pax.push(("path".into(), name.clone()));
            }
        }
        h.set_mode(n.mode & 0o7777);
        if n.uid <= 0o7777777 && n.gid <= 0o7777777 {
            h.set_uid(n.uid as u64);
            h.set_gid(n.gid as u64);
        } else {
            pax.push(("uid".into(), n.uid.to_string().into_bytes()));
            pax.push(("gid".into(), n.gid.to_string().into_bytes()));
        }
        if let Some(u) = &n.user {
            let _ = h.set_username(u);
        }
        if let Some(g) = &n.group {
            let _ = h.set_groupname(g);
        }
        h.set_mtime(n.mtime_ns.div_euclid(1_000_000_000).max(0) as u64);
        pax.push(("mtime".into(), pax_time(n.mtime_ns).into_bytes()));
        for x in &n.xattrs {
            let Ok(key) = std::str::from_utf8(&x.name) else {
                self.report.skipped.push(format!("{}: xattr with a non-UTF-8 name", String::from_utf8_lossy(rel)));
                continue;
            };
            match key {
                "system.posix_acl_access" | "system.posix_acl_default" => match acl_text(&x.value) {
                    Some(t) => {
                        let k = if key.ends_with("access") { "SCHILY.acl.access" } else { "SCHILY.acl.default" };
                        pax.push((k.into(), t.into_bytes()));
                    }
                    None => self.report.skipped.push(format!("{}: unreadable ACL", String::from_utf8_lossy(rel))),
                },
                _ => pax.push((format!("SCHILY.xattr.{key}"), x.value.to_vec())),
            }
        }
        let mut body: Option<BlobReader> = None;
        if n.is_hardlinked() {
            if let Some((first, first_node)) = self.links.get(&(n.device, n.inode)) {
                if let Some(refused) = n.link_mismatch(first_node) {
                    self.report.skipped.push(format!("{}: {refused}", String::from_utf8_lossy(rel)));
                    return Ok(());
                }
                h.set_entry_type(tar::EntryType::Link);
                if !h.as_ustar_mut().is_some_and(|u| set_raw(&mut u.linkname, first)) {
                    pax.push(("linkpath".into(), first.clone()));
                }
                h.set_size(0);
                return self.write(h, pax, None, 0);
            }
            self.links.insert((n.device, n.inode), (name.clone(), n.clone()));
        }
        let mut size = 0;
        match n.kind {
            NodeKind::Dir => h.set_entry_type(tar::EntryType::Directory),
            NodeKind::Symlink => {
                h.set_entry_type(tar::EntryType::Symlink);
                let target: &[u8] = n.target.as_ref().map(|t| t.as_slice()).unwrap_or_default();
                if !h.as_ustar_mut().is_some_and(|u| set_raw(&mut u.linkname, target)) {
                    pax.push(("linkpath".into(), target.to_vec()));
                }
            }
            NodeKind::CharDevice | NodeKind::BlockDevice => {
                h.set_entry_type(if n.kind == NodeKind::CharDevice {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                let (ma, mi) = major_minor(n.rdev);
                h.set_device_major(ma).map_err(Self::err)?;
                h.set_device_minor(mi).map_err(Self::err)?;
            }
            NodeKind::Fifo => h.set_entry_type(tar::EntryType::Fifo),
            NodeKind::Socket => {
                self.report.skipped.push(format!("{}: sockets cannot be stored in tar", String::from_utf8_lossy(rel)));
                return Ok(());
            }
            NodeKind::Unknown => {
                self.report.skipped.push(format!(
                    "{}: an entry of a type this arca does not know (written by a newer version)",
                    String::from_utf8_lossy(rel)
                ));
                return Ok(());
            }
            NodeKind::File => {
                h.set_entry_type(tar::EntryType::Regular);
                match &regions {
                    Some(regions) => {
                        let map = sparse_map(regions);
                        size = map.len() as u64 + n.content_len();
                        pax.push(("GNU.sparse.major".into(), b"1".to_vec()));
                        pax.push(("GNU.sparse.minor".into(), b"0".to_vec()));
                        pax.push(("GNU.sparse.name".into(), name.clone()));
                        pax.push(("GNU.sparse.realsize".into(), n.size.to_string().into_bytes()));
                        body = Some(BlobReader::new(self.repo, &n.content, map));
                    }
                    None => {
                        size = n.size;
                        body = Some(BlobReader::new(self.repo, &n.content, vec![]));
                    }
                }
            }
        }
        if size > 0o77777777777 {
            pax.push(("size".into(), size.to_string().into_bytes()));
        }
        h.set_size(size);
        self.report.data_bytes += n.content_len().min(size);
        self.write(h, pax, body, size)
    }

    fn write(
        &mut self,
        mut h: tar::Header,
        pax: Vec<(String, Vec<u8>)>,
        body: Option<BlobReader>,
        size: u64,
    ) -> FsResult<()> {
        if !pax.is_empty() {
            self.out.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice()))).map_err(Self::err)?;
        }
        h.set_cksum();
        // A file shorter than its recorded size (never for a healthy snapshot) must not
        // produce a misaligned archive: the tar crate pads what it copies.
        let reader: Box<dyn Read> = match body {
            Some(b) => Box::new(b.take(size)),
            None => Box::new(io::empty()),
        };
        self.out.append(&h, reader).map_err(|e| {
            match e.get_ref().and_then(|i| i.downcast_ref::<arca_repo::RepoError>()) {
                Some(_) => FsError::Export(e.to_string()),
                None => Self::err(e),
            }
        })?;
        self.report.entries += 1;
        Ok(())
    }
}

/// Write a pax tar of what `found` names to `w`. A directory's contents are stored under
/// `./`; a single entry under its name.
pub fn export_tar<W: Write>(repo: &Repository, found: &Found, w: W) -> FsResult<(ExportReport, W)> {
    arca_repo::limits::measure_found(repo, found)?;
    let mut t = TarExport { repo, out: tar::Builder::new(w), links: HashMap::new(), report: ExportReport::default() };
    match found {
        Found::Root(id) => t.walk(id, b".")?,
        Found::Node(n) if n.kind == NodeKind::Dir => {
            t.entry(b"./", n)?;
            if let Some(sub) = &n.subtree {
                t.walk(sub, b".")?;
            }
        }
        Found::Node(n) => t.entry(&n.name, n)?,
    }
    let w = t.out.into_inner().map_err(TarExport::<W>::err)?;
    Ok((t.report, w))
}

/// Write a zip of what `found` names (regular files, directories, symlinks; zip has no place
/// for owners, xattrs, devices or holes, which are listed as skipped).
pub fn export_zip<W: Write + Seek>(repo: &Repository, found: &Found, w: W) -> FsResult<(ExportReport, W)> {
    arca_repo::limits::measure_found(repo, found)?;
    use zip::write::SimpleFileOptions;
    let zerr = |e: zip::result::ZipError| FsError::Zip(e.to_string());
    let mut z = zip::ZipWriter::new(w);
    let mut report = ExportReport::default();
    let mut stack: Vec<(Id, String)> = vec![];
    let opts = |n: &Node| {
        let secs = n.mtime_ns.div_euclid(1_000_000_000);
        let mut o =
            SimpleFileOptions::default().unix_permissions(n.mode & 0o7777).large_file(n.size >= u32::MAX as u64);
        if let Some(t) = chrono::DateTime::from_timestamp(secs, 0) {
            use chrono::{Datelike, Timelike};
            let dt = zip::DateTime::from_date_and_time(
                t.year().clamp(1980, 2107) as u16,
                t.month() as u8,
                t.day() as u8,
                t.hour() as u8,
                t.minute() as u8,
                t.second() as u8,
            );
            if let Ok(dt) = dt {
                o = o.last_modified_time(dt);
            }
        }
        o
    };
    match found {
        Found::Root(id) => stack.push((*id, String::new())),
        Found::Node(n) => match (n.kind, n.subtree) {
            (NodeKind::Dir, Some(sub)) => stack.push((sub, String::new())),
            _ => {
                let root = arca_format::Tree { nodes: vec![(**n).clone()] };
                return zip_nodes(repo, &root, String::new(), &mut z, &mut report, &opts, &mut vec![])
                    .and_then(|_| z.finish().map_err(zerr))
                    .map(|w| (report, w));
            }
        },
    }
    while let Some((tree, prefix)) = stack.pop() {
        let t = repo.read_tree(&tree)?;
        let mut subdirs = vec![];
        zip_nodes(repo, &t, prefix, &mut z, &mut report, &opts, &mut subdirs)?;
        stack.extend(subdirs.into_iter().rev());
    }
    let w = z.finish().map_err(zerr)?;
    Ok((report, w))
}

fn zip_nodes<W: Write + Seek>(
    repo: &Repository,
    t: &arca_format::Tree,
    prefix: String,
    z: &mut zip::ZipWriter<W>,
    report: &mut ExportReport,
    opts: &dyn Fn(&Node) -> zip::write::SimpleFileOptions,
    subdirs: &mut Vec<(Id, String)>,
) -> FsResult<()> {
    let zerr = |e: zip::result::ZipError| FsError::Zip(e.to_string());
    for n in &t.nodes {
        let name = format!("{prefix}{}", String::from_utf8_lossy(&n.name));
        match n.kind {
            NodeKind::Dir => {
                z.add_directory(format!("{name}/"), opts(n)).map_err(zerr)?;
                if let Some(sub) = n.subtree {
                    subdirs.push((sub, format!("{name}/")));
                }
            }
            NodeKind::Symlink => {
                let target =
                    String::from_utf8_lossy(n.target.as_ref().map(|t| t.as_slice()).unwrap_or_default()).into_owned();
                z.add_symlink(name, target, opts(n)).map_err(zerr)?;
            }
            NodeKind::File => {
                z.start_file(name.as_str(), opts(n)).map_err(zerr)?;
                let mut pos = 0u64;
                let mut holes = n.holes.iter().peekable();
                let zeros = vec![0u8; 1 << 16];
                let write_zeros = |z: &mut zip::ZipWriter<W>, mut k: u64| -> FsResult<()> {
                    while k > 0 {
                        let m = k.min(zeros.len() as u64) as usize;
                        z.write_all(&zeros[..m]).map_err(|e| FsError::Zip(e.to_string()))?;
                        k -= m as u64;
                    }
                    Ok(())
                };
                let mut data = BlobReader::new(repo, &n.content, vec![]);
                let mut buf = vec![0u8; 1 << 16];
                while pos < n.size {
                    if let Some(&&(hs, hl)) = holes.peek() {
                        if hs <= pos {
                            write_zeros(z, hl)?;
                            pos = hs + hl;
                            holes.next();
                            continue;
                        }
                    }
                    let until = holes.peek().map(|h| h.0).unwrap_or(n.size);
                    let want = ((until - pos) as usize).min(buf.len());
                    let k = data.read(&mut buf[..want]).map_err(|e| FsError::Export(e.to_string()))?;
                    if k == 0 {
                        return Err(FsError::ShortData(name.to_string()));
                    }
                    z.write_all(&buf[..k]).map_err(|e| FsError::Zip(e.to_string()))?;
                    pos += k as u64;
                }
                report.data_bytes += n.size;
            }
            _ => {
                report.skipped.push(format!("{name}: zip cannot store a {:?}", n.kind));
                continue;
            }
        }
        report.entries += 1;
    }
    Ok(())
}

/// A pax time: decimal seconds, signed as a whole (pax reads "-1.5" as 1.5 s before the
/// epoch, so the fraction of a negative time is not the Euclidean remainder).
fn pax_time(ns: i64) -> String {
    let abs = ns.unsigned_abs();
    let sign = if ns < 0 { "-" } else { "" };
    format!("{sign}{}.{:09}", abs / 1_000_000_000, abs % 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 17: 1960-01-01 00:00:00.5 was written as -315619200.500000000 (GNU tar read
    /// 1959-12-31 23:59:59.5).
    #[test]
    fn pax_times_before_1970_sign_the_whole_value() {
        assert_eq!(pax_time(-315_619_199_500_000_000), "-315619199.500000000");
        assert_eq!(pax_time(1_500_000_000), "1.500000000");
        assert_eq!(pax_time(-1), "-0.000000001");
        assert_eq!(pax_time(0), "0.000000000");
        assert!(pax_time(i64::MIN).starts_with("-9223372036."));
    }

    #[test]
    fn acl_text_matches_getfacl_order() {
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in
            [(1u16, 6u16, u32::MAX), (2, 7, 1234), (4, 4, u32::MAX), (16, 7, u32::MAX), (32, 4, u32::MAX)]
        {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        assert_eq!(acl_text(&v).unwrap(), "user::rw-,user:1234:rwx,group::r--,mask::rwx,other::r--");
        assert!(acl_text(b"junk").is_none());
    }

    #[test]
    fn sparse_regions_and_map() {
        let mut n = Node::new(b"s", NodeKind::File);
        n.size = 100;
        n.holes = vec![(0, 10), (20, 80)];
        assert_eq!(data_regions(&n), vec![(10, 10), (100, 0)]);
        let m = sparse_map(&data_regions(&n));
        assert_eq!(m.len(), 512);
        assert!(m.starts_with(b"2\n10\n10\n100\n0\n"));
        assert_eq!(major_minor(nix_makedev(7, 200)), (7, 200));
    }

    fn nix_makedev(ma: u64, mi: u64) -> u64 {
        ((ma & 0xffff_f000) << 32) | ((ma & 0xfff) << 8) | ((mi & 0xffff_ff00) << 12) | (mi & 0xff)
    }
}
