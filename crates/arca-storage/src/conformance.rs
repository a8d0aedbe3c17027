//! The behaviour every `Storage` must have, as one check that every backend's tests run
//! (memory, local, ssh://, sftp://, s3:// against real servers, and the decorators).
//!
//! It needs an empty storage that allows writes and deletes, and leaves objects behind.

use crate::{ObjectKind, Storage, StorageError};

/// A 64-hex-digit name from `n` (names of content objects look like this; packs fan out by
/// their first two digits).
fn name(n: u64) -> String {
    format!("{:016x}{:016x}{:016x}{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15), n, !n, n ^ 0x5555)
}

/// `len` bytes that differ with `seed`.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

macro_rules! ensure {
    ($cond:expr, $label:expr, $($what:tt)+) => {
        if !$cond {
            return Err(format!("{}: {}", $label, format!($($what)+)));
        }
    };
}

/// Check `s` (empty, writable) against the contract of [`Storage`]; the error names the
/// first violation, prefixed with `label`.
pub fn check(s: &dyn Storage, label: &str) -> Result<(), String> {
    let e = |what: &str, err: StorageError| format!("{label}: {what}: {err}");
    let one = name(1);
    ensure!(
        !s.exists(ObjectKind::Snapshot, &one).map_err(|x| e("exists", x))?,
        label,
        "an object exists before it was stored"
    );
    ensure!(
        matches!(s.get(ObjectKind::Snapshot, &one), Err(StorageError::NotFound { .. })),
        label,
        "reading a missing object must be NotFound"
    );
    s.put(ObjectKind::Snapshot, &one, b"one").map_err(|x| e("put", x))?;
    ensure!(s.exists(ObjectKind::Snapshot, &one).map_err(|x| e("exists", x))?, label, "a stored object does not exist");
    ensure!(s.get(ObjectKind::Snapshot, &one).map_err(|x| e("get", x))? == b"one", label, "read back other bytes");
    let listed = s.list(ObjectKind::Snapshot).map_err(|x| e("list", x))?;
    ensure!(listed == vec![(one.clone(), 3)], label, "listing after one write: {listed:?}");
    ensure!(s.list(ObjectKind::Index).map_err(|x| e("list", x))?.is_empty(), label, "kinds must not share objects");

    // Large objects and ranges.
    let big = bytes(20 << 20, 5);
    let big_name = name(2);
    s.put(ObjectKind::Pack, &big_name, &big).map_err(|x| e("put a large object", x))?;
    ensure!(
        s.get(ObjectKind::Pack, &big_name).map_err(|x| e("get", x))? == big,
        label,
        "a large object came back different"
    );
    let range = s.get_range(ObjectKind::Pack, &big_name, 1000, 5000).map_err(|x| e("get_range", x))?;
    ensure!(range == big[1000..6000], label, "a range came back different");
    ensure!(
        s.get_range(ObjectKind::Pack, &big_name, big.len() as u64 - 10, 20).is_err(),
        label,
        "a range past the end must be an error, not short data"
    );
    let packs = s.list(ObjectKind::Pack).map_err(|x| e("list", x))?;
    ensure!(packs.contains(&(big_name.clone(), big.len() as u64)), label, "the pack listing lacks the large object");

    // Objects written piece by piece, where the backend streams.
    if let Some(mut w) = s.create(ObjectKind::Pack).map_err(|x| e("create", x))? {
        let streamed = bytes(3 << 20, 9);
        for piece in streamed.chunks(700_000) {
            w.write(piece).map_err(|x| e("stream", x))?;
        }
        let n = name(3);
        w.finish(&n).map_err(|x| e("finish a streamed object", x))?;
        ensure!(
            s.get(ObjectKind::Pack, &n).map_err(|x| e("get", x))? == streamed,
            label,
            "a streamed object came back different"
        );
    }

    // Owned objects (locks): replaced and removed by whoever shows the proof.
    let proof = b"the owner's secret";
    let lock = name(4);
    s.put_owned(ObjectKind::Lock, &lock, b"v1", proof).map_err(|x| e("put_owned", x))?;
    s.put_owned(ObjectKind::Lock, &lock, b"v2", proof).map_err(|x| e("replace an owned object", x))?;
    ensure!(
        s.get(ObjectKind::Lock, &lock).map_err(|x| e("get", x))? == b"v2",
        label,
        "an owned object was not replaced"
    );
    s.delete_owned(ObjectKind::Lock, &lock, proof).map_err(|x| e("delete_owned", x))?;
    ensure!(
        !s.exists(ObjectKind::Lock, &lock).map_err(|x| e("exists", x))?,
        label,
        "an owned object survived its delete"
    );

    // Concurrent writers.
    let failures = std::sync::Mutex::new(vec![]);
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let failures = &failures;
            scope.spawn(move || {
                for i in 0..10u64 {
                    let d = bytes(1000, t * 100 + i);
                    if let Err(x) = s.put(ObjectKind::Index, &name(1000 + t * 100 + i), &d) {
                        failures.lock().unwrap_or_else(|p| p.into_inner()).push(x.to_string());
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    ensure!(failures.is_empty(), label, "concurrent writers failed: {failures:?}");
    let n = s.list(ObjectKind::Index).map_err(|x| e("list", x))?.len();
    ensure!(n == 40, label, "concurrent writers: {n} of 40 objects listed");

    // Deleting is idempotent.
    s.delete(ObjectKind::Snapshot, &one).map_err(|x| e("delete", x))?;
    s.delete(ObjectKind::Snapshot, &one).map_err(|x| e("delete a missing object", x))?;
    ensure!(!s.exists(ObjectKind::Snapshot, &one).map_err(|x| e("exists", x))?, label, "a deleted object exists");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_storage_conforms() {
        super::check(&crate::MemoryStorage::default(), "memory").unwrap();
    }

    #[test]
    fn fail_after_conforms_until_it_fails() {
        let s = crate::FailAfter::new(std::sync::Arc::new(crate::MemoryStorage::default()), u64::MAX);
        super::check(&s, "fail-after").unwrap();
    }
}
