//! Trees kept after they were read from a remote repository. A restore reads every tree
//! twice (once to measure and refuse what would expand past the readers' limits, once to
//! walk), and over a network each read is a round trip: the second pass is served from
//! here. Trees are named by their contents, so a kept tree is never stale. Bounded by an
//! estimate of their size in memory; the oldest go first. A local repository keeps none:
//! the disk answers at once and the memory is better spent elsewhere.

use arca_format::{Id, Tree};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Most bytes of trees kept (estimated; a directory of ten files is about 3 KiB).
pub const MAX_BYTES: usize = 32 << 20;

/// A bounded map of trees by id.
#[derive(Default)]
pub struct TreeCache {
    inner: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    trees: HashMap<Id, (Tree, usize)>,
    order: VecDeque<Id>,
    bytes: usize,
}

/// About how much memory `tree` takes.
fn weight(tree: &Tree) -> usize {
    tree.nodes
        .iter()
        .map(|n| {
            let xattrs: usize = n.xattrs.iter().map(|x| x.name.len() + x.value.len() + 48).sum();
            256 + n.name.len() + n.content.len() * 32 + n.holes.len() * 16 + xattrs
        })
        .sum::<usize>()
        + 64
}

impl TreeCache {
    /// Tree `id`, if kept.
    pub fn get(&self, id: &Id) -> Option<Tree> {
        let kept = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        kept.trees.get(id).map(|(t, _)| t.clone())
    }

    /// Keep `tree` (read as `id`), letting the oldest go past [`MAX_BYTES`].
    pub fn put(&self, id: Id, tree: &Tree) {
        let w = weight(tree);
        if w > MAX_BYTES / 4 {
            return;
        }
        let mut kept = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if kept.trees.contains_key(&id) {
            return;
        }
        while kept.bytes + w > MAX_BYTES {
            let Some(old) = kept.order.pop_front() else { break };
            if let Some((_, ow)) = kept.trees.remove(&old) {
                kept.bytes -= ow;
            }
        }
        kept.trees.insert(id, (tree.clone(), w));
        kept.order.push_back(id);
        kept.bytes += w;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_format::{Node, NodeKind};

    fn tree(files: usize, tag: u8) -> Tree {
        let nodes = (0..files)
            .map(|i| {
                let mut n = Node::new(format!("f{tag}-{i}").as_bytes(), NodeKind::File);
                n.content = vec![Id([tag; 32]); 1000];
                n
            })
            .collect();
        Tree { nodes }
    }

    #[test]
    fn keeps_trees_and_lets_the_oldest_go_past_the_bound() {
        let c = TreeCache::default();
        let one = tree(2, 1);
        c.put(Id([1; 32]), &one);
        assert_eq!(c.get(&Id([1; 32])), Some(one));
        assert_eq!(c.get(&Id([2; 32])), None);
        // Each about 64 KiB: the bound holds about 512 of them.
        for i in 0..2000u32 {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            id[31] = 7;
            c.put(Id(id), &tree(2, 2));
        }
        let kept = c.inner.lock().unwrap();
        assert!(kept.bytes <= MAX_BYTES && kept.trees.len() == kept.order.len(), "{}", kept.bytes);
        assert!(!kept.trees.contains_key(&Id([1; 32])), "the oldest went first");
        assert!(kept.trees.len() > 400, "{}", kept.trees.len());
    }
}
