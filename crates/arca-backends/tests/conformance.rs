//! The local backend, bare and under the retry decorator, meets the storage contract (the
//! remote backends run the same check against real servers in arca-cli's tests).

use arca_backends::LocalStorage;
use arca_storage::{conformance, Retry, RetryPolicy, Storage};
use std::sync::Arc;

#[test]
fn local_storage_conforms() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    conformance::check(&LocalStorage::new(dir.path().join("repo")), "local").unwrap();
}

#[test]
fn local_storage_under_retry_conforms() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let inner: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path().join("repo")));
    conformance::check(&Retry::new(inner, RetryPolicy::default()), "local+retry").unwrap();
}
