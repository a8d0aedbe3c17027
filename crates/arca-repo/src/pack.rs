//! Reading a pack's own header back, without the index (for check and repair).

use crate::{RepoError, RepoResult, Repository};
use arca_format::pack::{PackTrailer, MASTER_DATA_KEY, PACK_TRAILER_LEN};
use arca_format::{decode, Id, PackHeader, PackHeaderEntry};
use arca_storage::ObjectKind;

/// A pack's header: its blobs, and the number of the content key that sealed them.
#[derive(Clone, Debug)]
pub struct Header {
    pub key: u32,
    pub blobs: Vec<PackHeaderEntry>,
}

/// Parse the header of a whole pack held in memory.
pub fn header_from_bytes(repo: &Repository, id: &Id, bytes: &[u8]) -> RepoResult<Header> {
    let what = || format!("pack {id}");
    if bytes.len() < PACK_TRAILER_LEN {
        return Err(RepoError::corrupt(what(), format!("only {} bytes long", bytes.len())));
    }
    let trailer = trailer_of(&bytes[bytes.len() - PACK_TRAILER_LEN..], id, repo.version())?;
    let end = bytes.len() - PACK_TRAILER_LEN;
    let start = end
        .checked_sub(trailer.header_length as usize)
        .ok_or_else(|| RepoError::corrupt(what(), "header length exceeds the pack"))?;
    parse_header(repo, id, trailer.data_key, &bytes[start..end], start as u64)
}

/// Parse a pack's trailer. Format version 1 seals every pack with the master data key (key
/// number 0); another number is a pack version 1 cannot open (a newer arca's, or damage to
/// the unauthenticated trailer), said so rather than failing as a wrong key. Version 2 binds
/// the number and the header length into the header's associated data.
fn trailer_of(bytes: &[u8], id: &Id, version: u32) -> RepoResult<PackTrailer> {
    let what = || format!("pack {id}");
    let t = PackTrailer::from_bytes(bytes)
        .ok_or_else(|| RepoError::corrupt(what(), "no pack trailer (truncated or overwritten)"))?;
    if version < 2 && t.data_key != MASTER_DATA_KEY {
        return Err(RepoError::corrupt(
            what(),
            format!("its trailer names data key {}, which format version 1 does not have (written by a newer arca, or the trailer is damaged)", t.data_key),
        ));
    }
    Ok(t)
}

/// Read just the trailer and header of a stored pack of `size` bytes.
pub fn read_header(repo: &Repository, id: &Id, size: u64) -> RepoResult<Header> {
    let what = || format!("pack {id}");
    let name = id.to_hex();
    if size < PACK_TRAILER_LEN as u64 {
        return Err(RepoError::corrupt(what(), format!("only {size} bytes long")));
    }
    let t =
        repo.storage().get_range(ObjectKind::Pack, &name, size - PACK_TRAILER_LEN as u64, PACK_TRAILER_LEN as u64)?;
    let trailer = trailer_of(&t, id, repo.version())?;
    let end = size - PACK_TRAILER_LEN as u64;
    let start = end
        .checked_sub(trailer.header_length as u64)
        .ok_or_else(|| RepoError::corrupt(what(), "header length exceeds the pack"))?;
    let key = repo.content_key(trailer.data_key, what)?;
    let h = repo.storage().get_range(ObjectKind::Pack, &name, start, trailer.header_length as u64)?;
    parse_header(repo, id, key.number, &h, start)
}

fn parse_header(repo: &Repository, id: &Id, key: u32, sealed: &[u8], header_start: u64) -> RepoResult<Header> {
    let what = || format!("pack {id}");
    let ad = repo.pack_header_ad(key, sealed.len());
    let plain = repo
        .content_key(key, what)?
        .cipher()
        .open(sealed, &ad, "pack header")
        .map_err(|e| RepoError::corrupt(what(), e))?;
    let h: PackHeader = decode("pack header", &plain).map_err(|e| RepoError::corrupt(what(), e))?;
    for b in &h.blobs {
        if b.offset.checked_add(b.length as u64).is_none_or(|end| end > header_start) {
            return Err(RepoError::corrupt(what(), format!("header entry for blob {} points outside the pack", b.id)));
        }
    }
    Ok(Header { key, blobs: h.blobs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailer_naming_another_data_key_is_refused_by_name() {
        let id = Id([7; 32]);
        let ok = PackTrailer { data_key: MASTER_DATA_KEY, header_length: 40 }.to_bytes();
        assert_eq!(trailer_of(&ok, &id, 1).unwrap().header_length, 40);
        let other = PackTrailer { data_key: 3, header_length: 40 }.to_bytes();
        let err = trailer_of(&other, &id, 1).unwrap_err().to_string();
        assert!(err.contains(&format!("pack {id}")) && err.contains("data key 3"), "{err}");
        assert_eq!(trailer_of(&other, &id, 2).unwrap().data_key, 3, "version 2 has numbered keys");
    }
}
