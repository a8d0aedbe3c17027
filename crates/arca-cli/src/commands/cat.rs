//! `arca cat`: decoded objects as JSON, for debugging and second readers.

use crate::cli::{CatArgs, CatKind, Cli};
use crate::context;
use crate::output::Output;
use anyhow::{Context, Result};
use arca_format::{Id, IndexFile, Node};
use arca_storage::ObjectKind;

fn node_json(n: &Node) -> serde_json::Value {
    let mut v = serde_json::to_value(n).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("name".into(), String::from_utf8_lossy(&n.name).into());
        o.insert("name_hex".into(), hex::encode(&n.name).into());
        if let Some(t) = &n.target {
            o.insert("target".into(), String::from_utf8_lossy(t).into());
        }
        o.insert("content".into(), n.content.iter().map(|c| c.to_hex()).collect::<Vec<_>>().into());
        o.insert("subtree".into(), n.subtree.map(|s| s.to_hex()).into());
        let xattrs: Vec<serde_json::Value> = n
            .xattrs
            .iter()
            .map(|x| serde_json::json!({"name": String::from_utf8_lossy(&x.name), "value_hex": hex::encode(&x.value)}))
            .collect();
        o.insert("xattrs".into(), xattrs.into());
    }
    v
}

fn id_arg(a: &CatArgs) -> Result<Id> {
    let s = a.id.as_deref().context("this object needs an id")?;
    Id::from_hex(s).with_context(|| format!("{s:?} is not a full 64-digit id"))
}

pub fn run(cli: &Cli, out: &Output, a: &CatArgs) -> Result<i32> {
    let repo = context::open(cli, out)?;
    let v = match a.kind {
        CatKind::Config => serde_json::json!({
            "version": repo.config().version, "id": repo.config().repo_id.to_hex(),
            "chunker": repo.config().chunker, "encryption": repo.config().encryption,
            "compression_level": repo.config().compression_level, "pack_size": repo.config().pack_size,
            "parity_percent": repo.config().parity_percent,
        }),
        CatKind::Snapshot => {
            let spec = a.id.as_deref().context("which snapshot? give an id prefix or `latest`")?;
            super::snapshots::to_json(&super::find_snapshot(&repo, out, spec, &Default::default())?)
        }
        CatKind::Tree => {
            let t = repo.read_tree(&id_arg(a)?)?;
            serde_json::json!({"nodes": t.nodes.iter().map(node_json).collect::<Vec<_>>()})
        }
        CatKind::Index => {
            let id = id_arg(a)?;
            let f: IndexFile = repo.load_object(ObjectKind::Index, &id.to_hex())?;
            index_json(&f)
        }
        CatKind::Pack => {
            let id = id_arg(a)?;
            let size = repo
                .storage()
                .list(ObjectKind::Pack)?
                .into_iter()
                .find(|(n, _)| *n == id.to_hex())
                .map(|(_, s)| s)
                .with_context(|| format!("pack {id} not found"))?;
            let header = arca_repo::pack::read_header(&repo, &id, size)?;
            serde_json::json!({"id": id.to_hex(), "size": size, "key": header.key, "blobs": header.blobs.iter().map(|b| serde_json::json!({
                "kind": b.kind, "id": b.id.to_hex(), "offset": b.offset, "length": b.length, "raw_length": b.raw_length,
            })).collect::<Vec<_>>()})
        }
    };
    out.json_doc(&v);
    Ok(crate::exit::OK)
}

fn index_json(f: &IndexFile) -> serde_json::Value {
    serde_json::json!({
        "supersedes": f.supersedes.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
        "packs": f.packs.iter().map(|p| serde_json::json!({
            "id": p.id.to_hex(), "size": p.size,
            "blobs": p.blobs.iter().map(|b| serde_json::json!({
                "kind": b.kind, "id": b.id.to_hex(), "offset": b.offset, "length": b.length, "raw_length": b.raw_length,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
