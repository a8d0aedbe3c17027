//! Reading a pack's own header back, without the index (for check and repair).

use crate::repository::object_ad;
use crate::{RepoError, RepoResult, Repository};
use arca_format::pack::{PackTrailer, PACK_TRAILER_LEN};
use arca_format::{decode, Id, PackHeader, PackHeaderEntry};
use arca_storage::ObjectKind;

/// Parse the header of a whole pack held in memory.
pub fn header_from_bytes(repo: &Repository, id: &Id, bytes: &[u8]) -> RepoResult<Vec<PackHeaderEntry>> {
    let what = || format!("pack {id}");
    if bytes.len() < PACK_TRAILER_LEN {
        return Err(RepoError::corrupt(what(), format!("only {} bytes long", bytes.len())));
    }
    let trailer = PackTrailer::from_bytes(&bytes[bytes.len() - PACK_TRAILER_LEN..])
        .ok_or_else(|| RepoError::corrupt(what(), "no pack trailer (truncated or overwritten)"))?;
    let end = bytes.len() - PACK_TRAILER_LEN;
    let start = end
        .checked_sub(trailer.header_length as usize)
        .ok_or_else(|| RepoError::corrupt(what(), "header length exceeds the pack"))?;
    parse_header(repo, id, &bytes[start..end], start as u64)
}

/// Read just the trailer and header of a stored pack of `size` bytes.
pub fn read_header(repo: &Repository, id: &Id, size: u64) -> RepoResult<Vec<PackHeaderEntry>> {
    let what = || format!("pack {id}");
    let name = id.to_hex();
    if size < PACK_TRAILER_LEN as u64 {
        return Err(RepoError::corrupt(what(), format!("only {size} bytes long")));
    }
    let t =
        repo.storage().get_range(ObjectKind::Pack, &name, size - PACK_TRAILER_LEN as u64, PACK_TRAILER_LEN as u64)?;
    let trailer = PackTrailer::from_bytes(&t)
        .ok_or_else(|| RepoError::corrupt(what(), "no pack trailer (truncated or overwritten)"))?;
    let end = size - PACK_TRAILER_LEN as u64;
    let start = end
        .checked_sub(trailer.header_length as u64)
        .ok_or_else(|| RepoError::corrupt(what(), "header length exceeds the pack"))?;
    let h = repo.storage().get_range(ObjectKind::Pack, &name, start, trailer.header_length as u64)?;
    parse_header(repo, id, &h, start)
}

fn parse_header(repo: &Repository, id: &Id, sealed: &[u8], header_start: u64) -> RepoResult<Vec<PackHeaderEntry>> {
    let what = || format!("pack {id}");
    let plain = repo
        .cipher()
        .open(sealed, object_ad(ObjectKind::Pack), "pack header")
        .map_err(|e| RepoError::corrupt(what(), e))?;
    let h: PackHeader = decode("pack header", &plain).map_err(|e| RepoError::corrupt(what(), e))?;
    for b in &h.blobs {
        if b.offset.checked_add(b.length as u64).is_none_or(|end| end > header_start) {
            return Err(RepoError::corrupt(what(), format!("header entry for blob {} points outside the pack", b.id)));
        }
    }
    Ok(h.blobs)
}
