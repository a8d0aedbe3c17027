//! `arca ls`: list a snapshot's files.

use crate::cli::{Cli, LsArgs};
use crate::context;
use crate::output::Output;
use crate::text::escape;
use anyhow::Result;
use arca_format::{Node, NodeKind};
use arca_repo::treewalk::{lookup, walk, Found, Visit};

fn kind_char(k: NodeKind) -> char {
    match k {
        NodeKind::File => '-',
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::BlockDevice => 'b',
        NodeKind::CharDevice => 'c',
        NodeKind::Fifo => 'p',
        NodeKind::Socket => 's',
        NodeKind::Unknown => '?',
    }
}

/// `rwxr-xr-x` with setuid/setgid/sticky shown as ls does.
fn mode_string(n: &Node) -> String {
    let m = n.mode;
    let mut s: Vec<char> =
        "rwxrwxrwx".chars().enumerate().map(|(i, c)| if m & (1 << (8 - i)) != 0 { c } else { '-' }).collect();
    for (bit, pos, set, unset) in [(0o4000, 2, 's', 'S'), (0o2000, 5, 's', 'S'), (0o1000, 8, 't', 'T')] {
        if m & bit != 0 {
            s[pos] = if s[pos] == 'x' { set } else { unset };
        }
    }
    std::iter::once(kind_char(n.kind)).chain(s).collect()
}

fn node_json(path: &[u8], n: &Node) -> serde_json::Value {
    serde_json::json!({
        "path": format!("/{}", String::from_utf8_lossy(path)),
        "path_escaped": format!("/{}", escape(path)),
        "type": n.kind, "mode": n.mode, "uid": n.uid, "gid": n.gid, "user": n.user, "group": n.group,
        "size": n.size, "mtime_ns": n.mtime_ns,
        "target": n.target.as_ref().map(|t| String::from_utf8_lossy(t).into_owned()),
    })
}

pub fn run(cli: &Cli, out: &Output, a: &LsArgs) -> Result<i32> {
    let repo = context::open(cli, out)?;
    let snap = super::find_snapshot(&repo, out, &a.snapshot, &a.filter)?;
    let base = a.path.clone().unwrap_or_default();
    let base_bytes = base.trim_end_matches('/').as_bytes().to_vec();
    let found = lookup(&repo, &snap.snapshot.tree, &base_bytes)?;
    let mut rows = vec![];
    let mut emit = |path: &[u8], n: &Node| {
        if out.json {
            rows.push(node_json(path, n));
        } else if a.long {
            let owner = n.user.clone().unwrap_or_else(|| n.uid.to_string());
            let group = n.group.clone().unwrap_or_else(|| n.gid.to_string());
            let t = chrono::DateTime::from_timestamp(n.mtime_ns.div_euclid(1_000_000_000), 0)
                .map(|t| t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            let link = n.target.as_ref().map(|t| format!(" -> {}", escape(t))).unwrap_or_default();
            out.line(format!(
                "{} {:>8} {:>8} {:>12} {t} /{}{link}",
                mode_string(n),
                owner,
                group,
                n.size,
                escape(path)
            ));
        } else {
            out.line(format!("/{}", escape(path)));
        }
    };
    let prefix: Vec<u8> = base_bytes.iter().copied().skip_while(|b| *b == b'/').collect();
    let join = |p: &[u8]| if prefix.is_empty() { p.to_vec() } else { [prefix.as_slice(), b"/", p].concat() };
    let subtree = match found {
        None => return Err(super::not_in_snapshot(&base, &snap)),
        Some(Found::Node(n)) => {
            emit(&prefix, &n);
            n.subtree.filter(|_| n.kind == NodeKind::Dir)
        }
        Some(Found::Root(t)) => Some(t),
    };
    let mut unreadable = 0u64;
    if let Some(t) = subtree {
        let mut visit = |p: &[u8], n: &Node| {
            emit(&join(p), n);
            Ok(Visit::Continue)
        };
        walk(&repo, &t, &mut visit, &mut |p, e| {
            unreadable += 1;
            out.warn(format!("/{}: {e}", escape(&join(p))))
        })?;
    }
    if out.json {
        out.json_doc(&rows);
    }
    if unreadable > 0 {
        // A listing with holes in it is not a success (a script would take it for whole).
        out.warn(format!(
            "{} could not be read: the listing is incomplete",
            crate::text::count(unreadable, "directory", "directories")
        ));
        return Ok(crate::exit::ERROR);
    }
    Ok(crate::exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_render_like_ls() {
        let mut n = Node::new(b"x", NodeKind::File);
        n.mode = 0o4755;
        assert_eq!(mode_string(&n), "-rwsr-xr-x");
        n.mode = 0o1000;
        n.kind = NodeKind::Dir;
        assert_eq!(mode_string(&n), "d--------T");
    }
}
