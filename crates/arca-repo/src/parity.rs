//! Reed-Solomon parity for packs (`arca init --parity PERCENT`, `arca repair packs`).
//!
//! A pack is cut into at most 64 original shards; `percent` of them plus one are added as
//! recovery shards (the extra one covers a damaged region that straddles a shard boundary), so
//! any contiguous damage up to `percent` of the pack — bit rot, a zeroed or overwritten region,
//! a cut-off tail — is repaired byte-exact. The per-shard BLAKE3 hashes in the parity object
//! say which shards are damaged, so they are erasures, which is what Reed-Solomon repairs best.

use crate::{RepoError, RepoResult, Repository};
use arca_format::{Id, ParityFile};
use arca_storage::ObjectKind;
use serde::Serialize;

/// Original shards per pack, at most.
const MAX_SHARDS: usize = 64;

fn shard(pack: &[u8], i: usize, shard_bytes: usize) -> Vec<u8> {
    let mut s = vec![0u8; shard_bytes];
    let start = (i * shard_bytes).min(pack.len());
    let end = ((i + 1) * shard_bytes).min(pack.len());
    s[..end - start].copy_from_slice(&pack[start..end]);
    s
}

/// Compute the parity object of a pack.
pub fn encode(pack: &[u8], percent: u32) -> RepoResult<ParityFile> {
    let len = pack.len().max(1);
    // Shards are a multiple of 64 bytes (the coder needs an even size; 64 suits its SIMD).
    let shard_bytes = len.div_ceil(MAX_SHARDS).div_ceil(64) * 64;
    let original_count = len.div_ceil(shard_bytes);
    let recovery_count = (original_count * percent as usize).div_ceil(100) + 1;
    let shards: Vec<Vec<u8>> = (0..original_count).map(|i| shard(pack, i, shard_bytes)).collect();
    let recovery = reed_solomon_simd::encode(original_count, recovery_count, &shards)
        .map_err(|e| RepoError::Parity(e.to_string()))?;
    Ok(ParityFile {
        shard_bytes: shard_bytes as u32,
        original_count: original_count as u32,
        recovery_count: recovery_count as u32,
        pack_length: pack.len() as u64,
        shard_hashes: shards.iter().map(|s| *blake3::hash(s).as_bytes()).collect(),
        recovery,
    })
}

/// Store the parity object of pack `id` if the repository asks for parity.
pub fn store_for(repo: &Repository, id: &Id, pack: &[u8]) -> RepoResult<()> {
    let percent = repo.config().parity_percent;
    if percent == 0 {
        return Ok(());
    }
    let p = encode(pack, percent)?;
    repo.storage().put(ObjectKind::Parity, &id.to_hex(), &p.to_bytes())?;
    Ok(())
}

/// Check a parity object against its intact pack: its own checksum, its sizes, and the hash of
/// every original shard. (The recovery shards are covered by the checksum.)
pub fn verify(pack: &[u8], parity: &[u8]) -> Result<(), String> {
    let p = ParityFile::from_bytes(parity).map_err(|e| e.to_string())?;
    if p.pack_length != pack.len() as u64 {
        return Err(format!("it is for a pack of {} bytes, this one has {}", p.pack_length, pack.len()));
    }
    let sb = p.shard_bytes as usize;
    if sb == 0 || p.original_count as usize != pack.len().max(1).div_ceil(sb) {
        return Err("its shard layout does not fit the pack".into());
    }
    for (i, h) in p.shard_hashes.iter().enumerate() {
        if blake3::hash(&shard(pack, i, sb)).as_bytes() != h {
            return Err(format!("the hash of original shard {i} does not match the pack"));
        }
    }
    Ok(())
}

/// Rebuild a pack from what is left of it (`damaged`, possibly short or long) and its parity.
/// The result is verified against the pack id.
pub fn recover(id: &Id, damaged: &[u8], p: &ParityFile) -> Result<Vec<u8>, String> {
    let sb = p.shard_bytes as usize;
    let (k, m) = (p.original_count as usize, p.recovery_count as usize);
    let good: Vec<(usize, Vec<u8>)> = (0..k)
        .map(|i| (i, shard(damaged, i, sb)))
        .filter(|(i, s)| p.shard_hashes.get(*i).is_some_and(|h| blake3::hash(s).as_bytes() == h))
        .collect();
    let lost = k - good.len();
    if lost == 0 {
        let out = damaged.get(..p.pack_length as usize).map(<[u8]>::to_vec).ok_or("pack is short")?;
        return if Id::of_bytes(&out) == *id { Ok(out) } else { Err("shards match but the pack id does not".into()) };
    }
    if lost > m {
        return Err(format!("{lost} of {k} shards are damaged; parity can restore {m}"));
    }
    let restored = reed_solomon_simd::decode(k, m, good.iter().map(|(i, s)| (*i, s)), p.recovery.iter().enumerate())
        .map_err(|e| format!("parity decoding failed: {e}"))?;
    let mut out = Vec::with_capacity(k * sb);
    for i in 0..k {
        match good.iter().find(|(j, _)| *j == i) {
            Some((_, s)) => out.extend_from_slice(s),
            None => out.extend_from_slice(restored.get(&i).ok_or("parity decoding left a shard out")?),
        }
    }
    out.truncate(p.pack_length as usize);
    if Id::of_bytes(&out) != *id {
        return Err("the rebuilt pack does not match its id (damaged parity?)".into());
    }
    Ok(out)
}

/// What `repair packs` found and did.
#[derive(Debug, Default, Serialize)]
pub struct RepairPacksReport {
    pub packs_checked: usize,
    pub repaired: Vec<String>,
    /// Damaged packs that could not be repaired, with why.
    pub unrepairable: Vec<String>,
    pub without_parity: usize,
    /// Intact packs whose parity object was damaged or missing and was written anew.
    pub parity_rebuilt: Vec<String>,
}

/// Verify every pack (or the named ones) and rebuild damaged ones from parity. A rebuilt pack
/// replaces the damaged one only after it matches its id. It replaces packs, so it runs under
/// a session lock (`_session`), as every writer does.
pub fn repair_packs(
    repo: &Repository,
    _session: &crate::lock::SessionLock,
    only: &[Id],
    events: &dyn crate::events::Events,
) -> RepoResult<RepairPacksReport> {
    let mut report = RepairPacksReport::default();
    let stored: std::collections::HashMap<String, u64> = repo.storage().list(ObjectKind::Pack)?.into_iter().collect();
    let mut packs: Vec<Id> = repo.index().packs().into_iter().map(|p| p.0).collect();
    packs.extend(stored.keys().filter_map(|n| Id::from_hex(n)));
    packs.sort();
    packs.dedup();
    if !only.is_empty() {
        packs.retain(|p| only.contains(p));
    }
    for (i, id) in packs.iter().enumerate() {
        events.phase("reading packs", i as u64, packs.len() as u64);
        report.packs_checked += 1;
        let name = id.to_hex();
        let bytes = match repo.storage().get(ObjectKind::Pack, &name) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => vec![],
            Err(e) => return Err(e.into()),
        };
        if !bytes.is_empty() && Id::of_bytes(&bytes) == *id {
            // An intact pack: make sure its parity would work when it is needed.
            let percent = repo.config().parity_percent;
            if percent > 0 {
                let ok = match repo.storage().get(ObjectKind::Parity, &name) {
                    Ok(p) => verify(&bytes, &p).is_ok(),
                    Err(e) if e.is_not_found() => false,
                    Err(e) => return Err(e.into()),
                };
                if !ok {
                    // Parity is derived from the pack: replacing it loses nothing.
                    repo.storage().delete(ObjectKind::Parity, &name)?;
                    repo.storage().put(ObjectKind::Parity, &name, &encode(&bytes, percent)?.to_bytes())?;
                    report.parity_rebuilt.push(name);
                }
            }
            continue;
        }
        let parity = match repo.storage().get(ObjectKind::Parity, &name) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                report.without_parity += 1;
                report.unrepairable.push(format!("pack {name}: damaged and has no parity"));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let p = match ParityFile::from_bytes(&parity) {
            Ok(p) => p,
            Err(e) => {
                report.unrepairable.push(format!("pack {name}: its parity is damaged too ({e})"));
                continue;
            }
        };
        match recover(id, &bytes, &p) {
            Ok(fixed) => {
                repo.storage().put(ObjectKind::Pack, &name, &fixed)?;
                report.repaired.push(name);
            }
            Err(why) => report.unrepairable.push(format!("pack {name}: {why}")),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// 100 random contiguous damaged regions within a 10% budget: all repaired byte-exact;
    /// one beyond it is refused, never "repaired" wrongly.
    #[test]
    fn contiguous_damage_within_the_budget_is_repaired() {
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut repaired = 0;
        for round in 0..100u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 1000 + (x % 3_000_000) as usize;
            let original = pack(len, round + 1);
            let id = Id::of_bytes(&original);
            let p = encode(&original, 10).unwrap();
            let damage = ((x >> 20) as usize % (len / 10)).max(1);
            let at = (x >> 40) as usize % (len - damage);
            let mut bad = original.clone();
            match round % 3 {
                0 => bad[at..at + damage].iter_mut().for_each(|b| *b ^= 0x5a),
                1 => bad[at..at + damage].iter_mut().for_each(|b| *b = 0),
                _ => bad.truncate(len - damage),
            }
            assert_eq!(recover(&id, &bad, &p).unwrap(), original, "round {round}: {damage} bytes at {at} of {len}");
            repaired += 1;
        }
        println!("parity: {repaired}/100 repaired");
        let original = pack(100_000, 7);
        let p = encode(&original, 10).unwrap();
        let mut bad = original.clone();
        bad[10_000..40_000].iter_mut().for_each(|b| *b ^= 1);
        assert!(recover(&Id::of_bytes(&original), &bad, &p).unwrap_err().contains("parity can restore"));
    }
}
