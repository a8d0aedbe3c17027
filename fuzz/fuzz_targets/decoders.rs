//! Every stored-object decoder on arbitrary bytes: config envelope, key slot, pack trailer and
//! header, index, tree (with its name rules), snapshot, mark, lock, parity. None may panic,
//! hang, or allocate without bound; the first byte picks the decoder.
#![no_main]
use arca_format::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = data.split_first() else { return };
    match which % 10 {
        0 => drop(ConfigFile::from_bytes(body)),
        1 => drop(decode::<KeySlot>("key slot", body)),
        2 => drop(pack::PackTrailer::from_bytes(body)),
        3 => drop(decode::<PackHeader>("pack header", body)),
        4 => drop(decode::<IndexFile>("index", body)),
        5 => {
            if let Ok(t) = decode::<Tree>("tree", body) {
                let _ = t.validate();
            }
        }
        6 => drop(decode::<Snapshot>("snapshot", body)),
        7 => drop(decode::<MarkFile>("mark", body)),
        8 => drop(decode::<LockFile>("lock", body)),
        _ => drop(ParityFile::from_bytes(body)),
    }
});
