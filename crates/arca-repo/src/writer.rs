//! BlobWriter: deduplicate, compress and seal blobs on a worker pool, gather them into packs,
//! upload packs and write index checkpoints — with bounded queues between the stages.
//!
//! ```text
//! add() ──jobs──▶ workers (compress, seal, verify) ──sealed──▶ packer ──packs──▶ uploader
//!                                                                          └─▶ index checkpoints
//! ```
//! A blob is verified (opened, decompressed, re-hashed) right after sealing, so a compressor or
//! memory fault aborts the backup instead of storing bad data.

use crate::blob::{self, Compression};
use crate::keyring::ContentKey;
use crate::{RepoError, RepoResult, Repository};
use arca_format::pack::PackTrailer;
use arca_format::{encode, BlobKind, Id, IndexFile, IndexPack, PackHeader, PackHeaderEntry};
use arca_storage::{ObjectKind, ObjectWriter};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Blobs go to the workers in batches of about this many bytes (or `BATCH_BLOBS` blobs), so
/// small files do not cost two thread wake-ups each.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_BLOBS: usize = 64;

/// Write an index checkpoint after this many packs…
const CHECKPOINT_PACKS: usize = 32;
/// …or after this long, whichever comes first.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);

/// What a writer session added.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct WriteStats {
    pub blobs_added: u64,
    pub bytes_added: u64,
    pub bytes_stored: u64,
    pub dedup_hits: u64,
    pub packs: u64,
    pub index_files: Vec<String>,
    /// With `--compression auto`: the lowest and highest zstd level the session used.
    pub compression_levels: Option<(i32, i32)>,
}

#[derive(Default)]
struct Counters {
    blobs_added: AtomicU64,
    bytes_added: AtomicU64,
    bytes_stored: AtomicU64,
    dedup_hits: AtomicU64,
    packs: AtomicU64,
}

struct Job {
    kind: BlobKind,
    id: Id,
    data: Vec<u8>,
}

struct Sealed {
    kind: BlobKind,
    id: Id,
    raw_length: u32,
    bytes: Vec<u8>,
}

struct PackOut {
    id: Id,
    size: u64,
    key: u32,
    body: PackBody,
    blobs: Vec<PackHeaderEntry>,
}

/// Where a pack's bytes go while it is built: straight to the storage where the backend can
/// stream (a local directory: no pack ever sits whole in memory), else into memory until the
/// pack is complete and can be `put` (and, with parity on, encoded).
enum PackBody {
    Memory(Vec<u8>),
    Stream(Box<dyn ObjectWriter>),
}

/// Shared between stages: the first failure, which stops everything.
#[derive(Default)]
struct Failure(Mutex<Option<RepoError>>);

impl Failure {
    fn set(&self, e: RepoError) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(e);
        }
    }
    fn is_set(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }
    fn take(&self) -> Option<RepoError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
    /// The failure's message, leaving it in place for [`BlobWriter::finish`] to return.
    fn describe(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|e| e.to_string())
    }
}

/// Options for one writer session.
#[derive(Clone, Copy, Debug)]
pub struct WriterOptions {
    pub compression: Compression,
    pub threads: usize,
    /// Confirm every deduplication hit byte for byte.
    pub paranoid_dedup: bool,
    /// Compute everything but store nothing.
    pub dry_run: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            compression: Compression::Auto,
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            paranoid_dedup: false,
            dry_run: false,
        }
    }
}

/// A session that adds blobs to a repository. Call [`BlobWriter::finish`] to flush.
pub struct BlobWriter {
    repo: Arc<Repository>,
    /// What seals this session's blobs and makes their ids: the class's writing key.
    key: Arc<ContentKey>,
    queued: Mutex<HashSet<Id>>,
    /// With paranoid dedup: bytes of blobs queued but not yet uploaded.
    in_flight: Arc<Mutex<HashMap<Id, Vec<u8>>>>,
    jobs: Option<Sender<Vec<Job>>>,
    /// Blobs waiting to be sent to the workers, and their bytes.
    batch: Mutex<(Vec<Job>, usize)>,
    /// Seal workers and the packer, by stage name (for the error if one panics).
    threads: Vec<(&'static str, JoinHandle<()>)>,
    uploader: Option<JoinHandle<Vec<String>>>,
    failure: Arc<Failure>,
    counters: Arc<Counters>,
    opts: WriterOptions,
    /// The zstd level of `--compression auto`.
    control: Arc<crate::adaptive::LevelControl>,
}

impl BlobWriter {
    /// Start a writer for a session that holds `lock` (shared or exclusive), taken before the
    /// index was loaded: a prune then never deletes what this writer deduplicates against, and
    /// if the lock lapses the writer refuses to index packs a prune took meanwhile.
    pub fn new(repo: Arc<Repository>, lock: &crate::lock::SessionLock, opts: WriterOptions) -> BlobWriter {
        let key = repo.default_key();
        BlobWriter::start(repo, key, Some(lock.guard()), opts)
    }

    /// A writer into the class of `key` (see [`Repository::create_class`]): its blobs are
    /// sealed with that key and deduplicated only against blobs of the class.
    pub fn with_key(
        repo: Arc<Repository>,
        key: Arc<ContentKey>,
        lock: &crate::lock::SessionLock,
        opts: WriterOptions,
    ) -> BlobWriter {
        BlobWriter::start(repo, key, Some(lock.guard()), opts)
    }

    /// A writer that stores nothing (a dry run: every count, no write); it needs no lock.
    pub fn dry_run(repo: Arc<Repository>, key: Option<Arc<ContentKey>>, opts: WriterOptions) -> BlobWriter {
        let key = key.unwrap_or_else(|| repo.default_key());
        BlobWriter::start(repo, key, None, WriterOptions { dry_run: true, ..opts })
    }

    /// Start the worker, packer and uploader threads.
    fn start(
        repo: Arc<Repository>,
        key: Arc<ContentKey>,
        guard: Option<crate::lock::LockGuard>,
        opts: WriterOptions,
    ) -> BlobWriter {
        let threads_n = opts.threads.max(1);
        // Small queues: each slot can hold a max-size chunk (8 MiB) or a whole pack, and the
        // peak RSS of a backup is mostly what sits in them. (A rendezvous job queue was
        // measured: peak RSS rose by 4 MB, as the sender then holds its copied batch longer.)
        let (job_tx, job_rx) = bounded::<Vec<Job>>(1);
        let (sealed_tx, sealed_rx) = bounded::<Vec<Sealed>>(1);
        let (pack_tx, pack_rx) = bounded::<PackOut>(0);
        let failure = Arc::new(Failure::default());
        let counters = Arc::new(Counters::default());
        let in_flight = Arc::new(Mutex::new(HashMap::new()));
        let control = Arc::new(crate::adaptive::LevelControl::default());
        let mut threads = vec![];
        for _ in 0..threads_n {
            let (rx, tx, key, failure) = (job_rx.clone(), sealed_tx.clone(), key.clone(), failure.clone());
            let (compression, control) = (opts.compression, control.clone());
            threads.push((
                "seal worker",
                std::thread::spawn(move || seal_worker(&key, compression, &control, rx, tx, &failure)),
            ));
        }
        drop(sealed_tx);
        {
            let (repo, key, failure, counters) = (repo.clone(), key.clone(), failure.clone(), counters.clone());
            threads.push((
                "packer",
                std::thread::spawn(move || packer(&repo, &key, sealed_rx, pack_tx, &failure, &counters)),
            ));
        }
        let uploader = {
            let (repo, failure, in_flight) = (repo.clone(), failure.clone(), in_flight.clone());
            std::thread::spawn(move || uploader(&repo, guard.as_ref(), pack_rx, &failure, &in_flight))
        };
        BlobWriter {
            repo,
            key,
            queued: Mutex::new(HashSet::new()),
            in_flight,
            jobs: Some(job_tx),
            batch: Mutex::new((Vec::new(), 0)),
            threads,
            uploader: Some(uploader),
            failure,
            counters,
            opts,
            control,
        }
    }

    /// The repository this writer adds to.
    pub fn repository(&self) -> &Arc<Repository> {
        &self.repo
    }

    /// The content key this writer seals with (its class's).
    pub fn key(&self) -> &Arc<ContentKey> {
        &self.key
    }

    /// Add a blob unless the repository or this session already has it. Returns its id and
    /// whether it was new.
    pub fn add(&self, kind: BlobKind, data: &[u8]) -> RepoResult<(Id, bool)> {
        let id = self.key.blob_id(data);
        if let (BlobKind::Tree, Some(log)) = (kind, self.repo.send_log()) {
            log.record(id, data);
        }
        if self.repo.index().has_live(&id) {
            self.dedup_hit(kind, &id, data)?;
            return Ok((id, false));
        }
        {
            let mut q = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            if !q.insert(id) {
                drop(q);
                self.dedup_hit(kind, &id, data)?;
                return Ok((id, false));
            }
        }
        self.counters.blobs_added.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_added.fetch_add(data.len() as u64, Ordering::Relaxed);
        if self.opts.dry_run {
            return Ok((id, true));
        }
        if self.opts.paranoid_dedup {
            self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(id, data.to_vec());
        }
        // The batch is sent while its lock is held, so however many walker threads add blobs,
        // at most one full batch waits outside the queue (memory stays bounded).
        let mut b = self.batch.lock().unwrap_or_else(|p| p.into_inner());
        b.0.push(Job { kind, id, data: data.to_vec() });
        b.1 += data.len();
        if b.1 >= BATCH_BYTES || b.0.len() >= BATCH_BLOBS {
            let batch = std::mem::take(&mut *b).0;
            self.send(batch)?;
        }
        Ok((id, true))
    }

    /// Hand a batch to the workers. If the pipeline has stopped, the error says why; the
    /// failure itself stays recorded, so `finish` fails too even if a caller carries on.
    fn send(&self, batch: Vec<Job>) -> RepoResult<()> {
        let sent = self.jobs.as_ref().map(|tx| tx.send(batch).is_ok()).unwrap_or(false);
        if !sent {
            let why = self.failure.describe().unwrap_or_else(|| "a pipeline thread ended early".into());
            self.failure.set(RepoError::WriterStopped(why.clone()));
            return Err(RepoError::WriterStopped(why));
        }
        Ok(())
    }

    /// Send what is batched and stop the workers.
    fn close(&mut self) {
        let rest = std::mem::take(&mut *self.batch.lock().unwrap_or_else(|p| p.into_inner())).0;
        if !rest.is_empty() {
            // A failure is recorded by `send` and returned by `finish`.
            let _ = self.send(rest);
        }
        self.jobs.take();
        for (stage, t) in self.threads.drain(..) {
            // A panicked stage may have taken blobs with it: the session must fail, or a
            // snapshot could name blobs that were never stored.
            if let Err(p) = t.join() {
                self.failure.set(RepoError::WorkerPanicked { stage, message: panic_message(&p) });
            }
        }
    }

    fn dedup_hit(&self, kind: BlobKind, id: &Id, data: &[u8]) -> RepoResult<()> {
        self.counters.dedup_hits.fetch_add(1, Ordering::Relaxed);
        if !self.opts.paranoid_dedup {
            return Ok(());
        }
        let pending = self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).get(id).map(|d| d == data);
        let same = match pending {
            Some(same) => same,
            None => self.repo.read_blob(kind, id)? == data,
        };
        if same {
            Ok(())
        } else {
            Err(RepoError::DedupCollision(*id))
        }
    }

    /// Flush everything, write the final index, and report.
    pub fn finish(mut self) -> RepoResult<WriteStats> {
        self.close();
        let index_files = match self.uploader.take().map(|u| u.join()) {
            Some(Ok(files)) => files,
            Some(Err(p)) => {
                self.failure.set(RepoError::WorkerPanicked { stage: "uploader", message: panic_message(&p) });
                vec![]
            }
            None => vec![],
        };
        if let Some(e) = self.failure.take() {
            return Err(e);
        }
        let c = &self.counters;
        Ok(WriteStats {
            blobs_added: c.blobs_added.load(Ordering::Relaxed),
            bytes_added: c.bytes_added.load(Ordering::Relaxed),
            bytes_stored: c.bytes_stored.load(Ordering::Relaxed),
            dedup_hits: c.dedup_hits.load(Ordering::Relaxed),
            packs: c.packs.load(Ordering::Relaxed),
            index_files,
            compression_levels: (self.opts.compression == Compression::Auto).then(|| self.control.range()),
        })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        self.close();
        if let Some(u) = self.uploader.take() {
            let _ = u.join();
        }
    }
}

/// The text a panic carried, if it was a string.
fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

fn seal_worker(
    key: &ContentKey,
    compression: Compression,
    control: &crate::adaptive::LevelControl,
    rx: Receiver<Vec<Job>>,
    tx: Sender<Vec<Sealed>>,
    failure: &Failure,
) {
    let adaptive = compression == Compression::Auto;
    loop {
        let asked = Instant::now();
        let Ok(batch) = rx.recv() else { return };
        let got = Instant::now();
        crate::failpoint::hit("seal-batch");
        let compression = match compression {
            Compression::Auto => Compression::AutoAt(control.level()),
            c => c,
        };
        let mut out = Vec::with_capacity(batch.len());
        for Job { kind, id, data } in batch {
            let Some(cipher) = key.blob_cipher(kind) else {
                failure.set(RepoError::Internal("a writer without its key"));
                return;
            };
            let mut bytes = blob::encode(cipher, kind, &id, &data, compression);
            crate::failpoint::corrupt("sealed-blob", &mut bytes);
            let raw_length = data.len() as u32;
            // Verification needs only the id and length: free the plaintext (up to a max-size
            // chunk) before it rather than after.
            drop(data);
            if let Err(e) = blob::verify(key.key(), cipher, kind, &id, &bytes, raw_length) {
                failure.set(RepoError::corrupt(
                    format!("new blob {id}"),
                    format!(
                        "failed verification right after sealing ({e}); memory or compressor fault, nothing stored"
                    ),
                ));
                return;
            }
            out.push(Sealed { kind, id, raw_length, bytes });
        }
        let sealed = Instant::now();
        if !adaptive {
            if tx.send(out).is_err() {
                return;
            }
            continue;
        }
        control.account(got - asked, sealed - got, Duration::ZERO);
        // A long wait to hand on is reported as it goes, so the level moves while the
        // upload holds the pipeline, not only after.
        loop {
            let since = Instant::now();
            match tx.send_timeout(out, Duration::from_millis(100)) {
                Ok(()) => {
                    control.account(Duration::ZERO, Duration::ZERO, since.elapsed());
                    break;
                }
                Err(crossbeam_channel::SendTimeoutError::Timeout(back)) => {
                    control.account(Duration::ZERO, Duration::ZERO, since.elapsed());
                    out = back;
                }
                Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return,
            }
        }
    }
}

/// Pack builder for one blob kind.
#[derive(Default)]
struct OpenPack {
    body: Option<PackBody>,
    len: u64,
    hasher: blake3::Hasher,
    blobs: Vec<PackHeaderEntry>,
}

impl OpenPack {
    /// Add a sealed blob. Data packs stream where the storage can; tree packs are small and
    /// stay in memory (so a pack writer's buffer is not spent on them).
    fn push(&mut self, repo: &Repository, s: Sealed, target: usize) -> RepoResult<()> {
        if self.body.is_none() {
            let stream = s.kind == BlobKind::Data && repo.config().parity_percent == 0;
            let stream = if stream { repo.storage().create(ObjectKind::Pack)? } else { None };
            self.body = Some(match stream {
                Some(w) => PackBody::Stream(w),
                // One allocation for the whole pack: doubling would reach twice the target.
                None => PackBody::Memory(Vec::with_capacity(target + s.bytes.len().max(1 << 20) + 64 * 1024)),
            });
        }
        self.blobs.push(PackHeaderEntry {
            kind: s.kind,
            id: s.id,
            offset: self.len,
            length: s.bytes.len() as u32,
            raw_length: s.raw_length,
        });
        self.append(&s.bytes)
    }

    fn append(&mut self, bytes: &[u8]) -> RepoResult<()> {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        match &mut self.body {
            Some(PackBody::Memory(v)) => v.extend_from_slice(bytes),
            Some(PackBody::Stream(w)) => w.write(bytes)?,
            None => return Err(RepoError::Internal("pack bytes before the pack was opened")),
        }
        Ok(())
    }

    fn seal(mut self, repo: &Repository, key: &ContentKey) -> RepoResult<PackOut> {
        let header = encode("pack header", &PackHeader { blobs: self.blobs.clone() })?;
        let ad = repo.pack_header_ad(key.number, header.len() + key.cipher().overhead());
        let mut sealed = key.cipher().seal(&header, &ad);
        crate::failpoint::corrupt("sealed-header", &mut sealed);
        // The header is what makes a pack re-indexable: open it again before it goes out.
        if key.cipher().open(&sealed, &ad, "pack header").ok().as_deref() != Some(&header[..]) {
            return Err(RepoError::corrupt(
                "new pack header",
                "failed verification right after sealing; memory or encryption fault, nothing stored",
            ));
        }
        self.append(&sealed)?;
        let trailer = PackTrailer { data_key: key.number, header_length: sealed.len() as u32 };
        self.append(&trailer.to_bytes())?;
        let body = self.body.ok_or(RepoError::Internal("sealing a pack that was never opened"))?;
        Ok(PackOut {
            id: Id(*self.hasher.finalize().as_bytes()),
            size: self.len,
            key: key.number,
            body,
            blobs: self.blobs,
        })
    }
}

fn packer(
    repo: &Repository,
    key: &ContentKey,
    rx: Receiver<Vec<Sealed>>,
    tx: Sender<PackOut>,
    failure: &Failure,
    counters: &Counters,
) {
    let target = repo.config().pack_size.max(1024) as usize;
    let mut open: [OpenPack; 2] = Default::default();
    let slot = |k: BlobKind| if k == BlobKind::Data { 0 } else { 1 };
    let emit = |p: OpenPack| -> bool {
        match p.seal(repo, key) {
            Ok(out) => {
                counters.bytes_stored.fetch_add(out.size, Ordering::Relaxed);
                counters.packs.fetch_add(1, Ordering::Relaxed);
                tx.send(out).is_ok()
            }
            Err(e) => {
                failure.set(e);
                false
            }
        }
    };
    for s in rx.into_iter().flatten() {
        let i = slot(s.kind);
        if let Err(e) = open[i].push(repo, s, if i == 0 { target } else { 1 << 20 }) {
            failure.set(e);
            return;
        }
        if open[i].len >= target as u64 && !emit(std::mem::take(&mut open[i])) {
            return;
        }
    }
    for p in open {
        if !p.blobs.is_empty() && !emit(p) {
            return;
        }
    }
}

fn uploader(
    repo: &Repository,
    guard: Option<&crate::lock::LockGuard>,
    rx: Receiver<PackOut>,
    failure: &Failure,
    in_flight: &Mutex<HashMap<Id, Vec<u8>>>,
) -> Vec<String> {
    let mut pending: Vec<IndexPack> = vec![];
    let mut written = vec![];
    let mut last = Instant::now();
    let mut checkpoint = |pending: &mut Vec<IndexPack>| -> bool {
        if pending.is_empty() {
            return true;
        }
        let file = IndexFile { packs: std::mem::take(pending), supersedes: vec![] };
        let ids: Vec<Id> = file.packs.iter().map(|p| p.id).collect();
        // An index object naming a pack a prune deleted during a lapse would break the index.
        match guard
            .map_or(Ok(()), |g| g.confirm_packs(repo, &ids))
            .and_then(|()| repo.save_object(ObjectKind::Index, &file))
        {
            Ok(id) => {
                written.push(id.to_hex());
                true
            }
            Err(e) => {
                failure.set(e);
                false
            }
        }
    };
    let mut record = |ip: IndexPack| -> bool {
        repo.index_mut().add_pack(&ip);
        {
            let mut f = in_flight.lock().unwrap_or_else(|p| p.into_inner());
            if !f.is_empty() {
                for b in &ip.blobs {
                    f.remove(&b.id);
                }
            }
        }
        pending.push(ip);
        if (pending.len() >= CHECKPOINT_PACKS || last.elapsed() >= CHECKPOINT_EVERY) && !checkpoint(&mut pending) {
            return false;
        }
        if pending.is_empty() {
            last = Instant::now();
        }
        true
    };
    // Packs are stored by as many threads as the storage serves requests at once; each
    // holds the pack it stores (a remote pack is in memory: `transfers` × the pack size).
    // Only stored packs reach the index, in the order they finish.
    let transfers = repo.storage().transfers().max(1);
    let (stored_tx, stored_rx) = bounded::<IndexPack>(transfers);
    let all_recorded = std::thread::scope(|s| {
        for _ in 0..transfers {
            let (rx, stored_tx) = (rx.clone(), stored_tx.clone());
            s.spawn(move || {
                for p in rx {
                    if failure.is_set() {
                        // Something failed (maybe a blob that did not verify): store nothing more.
                        return;
                    }
                    match store_pack(repo, p) {
                        Ok(ip) => {
                            if stored_tx.send(ip).is_err() {
                                return;
                            }
                        }
                        Err(e) => return failure.set(e),
                    }
                }
            });
        }
        // The storing threads hold the only receivers now: when they all stop, the packer's
        // next hand-over fails and it stops too.
        drop((rx, stored_tx));
        let recorded = stored_rx.iter().all(&mut record);
        // A failed checkpoint stops the recording: storers still holding a stored pack must
        // not wait for ever to hand it on (their send fails, and they stop).
        drop(stored_rx);
        recorded
    });
    if all_recorded && !failure.is_set() {
        checkpoint(&mut pending);
    }
    written
}

/// Store one pack (and its parity); what the index then records of it.
fn store_pack(repo: &Repository, p: PackOut) -> RepoResult<IndexPack> {
    match p.body {
        PackBody::Memory(bytes) => {
            // Handed on uncopied where the backend can take it (S3: the client's buffer).
            let bytes = bytes::Bytes::from(bytes);
            repo.storage().put_bytes(ObjectKind::Pack, &p.id.to_hex(), bytes.clone())?;
            crate::parity::store_for(repo, &p.id, &bytes)?;
            // A remote repository's tree packs are kept locally as they go up: the next
            // backup and a restore read their trees from disk (`treepacks.rs`).
            if let Some(cache) = repo.kept_tree_packs().filter(|_| p.blobs.iter().all(|b| b.kind == BlobKind::Tree)) {
                if let Err(e) = crate::treepacks::keep(cache, &p.id, &bytes) {
                    tracing::debug!(pack = %p.id, error = %e, "could not keep a tree pack in the cache");
                }
            }
        }
        PackBody::Stream(w) => w.finish(&p.id.to_hex())?,
    }
    crate::failpoint::hit("writer-after-pack");
    Ok(IndexPack { id: p.id, size: p.size, key: p.key, blobs: p.blobs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::tests::cheap_opts;
    use arca_storage::{MemoryStorage, Storage};

    /// A storage scripted for the writer's tests, over a memory storage. Pack uploads take
    /// `pack_delay` plus their size at `rate` bytes per second (if set), `transfers` at once;
    /// every `fail_every`-th pack is refused as a full disk would refuse it; index writes are
    /// refused (slowly, as a retried write would fail) if `refuse_index`. It counts the pack
    /// uploads and the most that overlapped.
    #[derive(Default)]
    struct Scripted {
        inner: MemoryStorage,
        remote: bool,
        transfers: usize,
        rate: Option<f64>,
        pack_delay: Duration,
        fail_every: u64,
        refuse_index: bool,
        now: AtomicU64,
        most: AtomicU64,
        puts: AtomicU64,
    }

    impl Scripted {
        /// A remote storage serving four uploads at once, 50 ms each.
        fn parallel() -> Scripted {
            Scripted { remote: true, transfers: 4, pack_delay: Duration::from_millis(50), ..Default::default() }
        }
    }

    impl Storage for Scripted {
        fn location(&self) -> String {
            if self.remote { "scripted://test" } else { "scripted" }.into()
        }
        fn transfers(&self) -> usize {
            self.transfers.max(1)
        }
        fn put(&self, kind: ObjectKind, name: &str, data: &[u8]) -> arca_storage::StorageResult<()> {
            if kind == ObjectKind::Index && self.refuse_index {
                std::thread::sleep(Duration::from_millis(500));
                return Err(arca_storage::StorageError::PermissionDenied { path: format!("index/{name}") });
            }
            if kind != ObjectKind::Pack {
                return self.inner.put(kind, name, data);
            }
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(n, Ordering::SeqCst);
            let by_rate = self.rate.map_or(Duration::ZERO, |r| Duration::from_secs_f64(data.len() as f64 / r));
            std::thread::sleep(self.pack_delay + by_rate);
            self.now.fetch_sub(1, Ordering::SeqCst);
            let i = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
            if self.fail_every > 0 && i.is_multiple_of(self.fail_every) {
                return Err(arca_storage::StorageError::NoSpace { path: format!("data/{name}") });
            }
            self.inner.put(kind, name, data)
        }
        fn get(&self, kind: ObjectKind, name: &str) -> arca_storage::StorageResult<Vec<u8>> {
            self.inner.get(kind, name)
        }
        fn get_range(&self, kind: ObjectKind, name: &str, o: u64, l: u64) -> arca_storage::StorageResult<Vec<u8>> {
            self.inner.get_range(kind, name, o, l)
        }
        fn list(&self, kind: ObjectKind) -> arca_storage::StorageResult<Vec<(String, u64)>> {
            self.inner.list(kind)
        }
        fn delete(&self, kind: ObjectKind, name: &str) -> arca_storage::StorageResult<()> {
            self.inner.delete(kind, name)
        }
    }

    /// Text-like data that zstd compresses better at higher levels.
    fn compressible(len: usize, seed: u64) -> Vec<u8> {
        let words = ["backup", "arca", "restore", "snapshot", "pack", "index", "tree", "blob", "key", "data"];
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(words[(x % 10) as usize].as_bytes());
            out.push(if x.is_multiple_of(7) { b'\n' } else { b' ' });
            out.extend_from_slice(format!("{}", x % 1000).as_bytes());
        }
        out.truncate(len);
        out
    }

    /// `--compression auto` behind a slow upload raises the level and stores less than zstd
    /// level 3 does; a fixed level stays where it is.
    #[test]
    fn auto_compression_rises_when_the_upload_is_the_bottleneck() {
        let stored = |compression: Compression| {
            // An upload slow enough that the seal workers wait for it even on a machine busy
            // with other tests (at 4 MB/s, once, they did not, and the level rose too late).
            let s: Arc<dyn Storage> = Arc::new(Scripted { rate: Some(1.5e6), ..Default::default() });
            let opts = crate::repository::InitOptions { pack_size: 256 << 10, ..cheap_opts() };
            let repo = Arc::new(Repository::init(s, b"pw", &opts).unwrap());
            let lock = crate::lock::SessionLock::acquire(&repo, "test", false).unwrap();
            let w = BlobWriter::new(repo, &lock, WriterOptions { compression, ..Default::default() });
            for i in 0..64 {
                w.add(BlobKind::Data, &compressible(256 << 10, i + 1)).unwrap();
            }
            w.finish().unwrap()
        };
        let auto = stored(Compression::Auto);
        let three = stored(Compression::Level(3));
        let (_, highest) = auto.compression_levels.unwrap();
        assert!(highest > 3, "the level rose: {:?}", auto.compression_levels);
        assert!(auto.bytes_stored < three.bytes_stored, "auto {} vs level 3 {}", auto.bytes_stored, three.bytes_stored);
        assert_eq!(three.compression_levels, None);
    }

    /// A storage that serves several requests at once gets that many pack uploads in flight,
    /// and every blob is indexed in a pack that was stored.
    #[test]
    fn packs_upload_in_parallel_up_to_the_storage_transfers() {
        let s = Arc::new(Scripted::parallel());
        let opts = crate::repository::InitOptions { pack_size: 64 << 10, ..cheap_opts() };
        let repo = Arc::new(Repository::init(s.clone(), b"pw", &opts).unwrap());
        let lock = crate::lock::SessionLock::acquire(&repo, "test", false).unwrap();
        let w = BlobWriter::new(repo, &lock, WriterOptions { compression: Compression::Off, ..Default::default() });
        let blobs: Vec<Vec<u8>> = (0..48u64).map(|i| compressible(48 << 10, i + 1)).collect();
        let ids: Vec<Id> = blobs.iter().map(|b| w.add(BlobKind::Data, b).unwrap().0).collect();
        let st = w.finish().unwrap();
        let most = s.most.load(Ordering::SeqCst);
        assert!((2..=4).contains(&most), "{most} uploads overlapped");
        assert!(st.packs >= 8, "{} packs", st.packs);
        let reopened = Repository::open(s.clone(), b"pw").unwrap();
        reopened.load_index().unwrap();
        for (id, b) in ids.iter().zip(&blobs) {
            assert_eq!(&reopened.read_blob(BlobKind::Data, id).unwrap(), b);
        }
    }

    /// One refused upload among parallel ones fails the session, and no index names a pack
    /// that was not stored.
    #[test]
    fn a_refused_parallel_upload_fails_the_session_and_indexes_only_stored_packs() {
        let s = Arc::new(Scripted { fail_every: 5, ..Scripted::parallel() });
        let opts = crate::repository::InitOptions { pack_size: 64 << 10, ..cheap_opts() };
        let repo = Arc::new(Repository::init(s.clone(), b"pw", &opts).unwrap());
        let lock = crate::lock::SessionLock::acquire(&repo, "test", false).unwrap();
        let w = BlobWriter::new(repo, &lock, WriterOptions { compression: Compression::Off, ..Default::default() });
        for i in 0..48u64 {
            if w.add(BlobKind::Data, &compressible(48 << 10, i + 1)).is_err() {
                break;
            }
        }
        let err = w.finish().unwrap_err().to_string();
        assert!(err.contains("no space"), "{err}");
        let reopened = Repository::open(s.clone(), b"pw").unwrap();
        reopened.load_index().unwrap();
        let stored: HashSet<String> = s.inner.list(ObjectKind::Pack).unwrap().into_iter().map(|(n, _)| n).collect();
        for (p, _) in reopened.index().packs() {
            assert!(stored.contains(&p.to_hex()), "index names pack {p} that was not stored");
        }
    }

    /// An index checkpoint that fails while packs are still being stored in parallel ends
    /// the session with that error; no storer waits for ever to hand on its pack.
    #[test]
    fn a_failed_checkpoint_during_parallel_uploads_ends_the_session() {
        let s = Arc::new(Scripted { refuse_index: true, ..Scripted::parallel() });
        let opts = crate::repository::InitOptions { pack_size: 64 << 10, ..cheap_opts() };
        let repo = Arc::new(Repository::init(s.clone(), b"pw", &opts).unwrap());
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let lock = crate::lock::SessionLock::acquire(&repo, "test", false).unwrap();
            let w = BlobWriter::new(repo, &lock, WriterOptions { compression: Compression::Off, ..Default::default() });
            for i in 0..400u64 {
                if w.add(BlobKind::Data, &compressible(40 << 10, i + 1)).is_err() {
                    break;
                }
            }
            let _ = done_tx.send(w.finish().map(|_| ()).map_err(|e| e.to_string()));
        });
        let ended = done_rx.recv_timeout(Duration::from_secs(20)).expect("the writer ended");
        let err = ended.unwrap_err();
        assert!(err.contains("permission denied"), "{err}");
        let puts = s.puts.load(Ordering::SeqCst);
        assert!(puts >= CHECKPOINT_PACKS as u64, "a checkpoint came due mid-way: {puts} packs");
    }

    #[test]
    fn writes_dedups_and_reads_back() {
        let s: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
        let repo = Arc::new(Repository::init(s.clone(), b"pw", &cheap_opts()).unwrap());
        let lock = crate::lock::SessionLock::acquire(&repo, "test", false).unwrap();
        let w = BlobWriter::new(repo.clone(), &lock, WriterOptions { paranoid_dedup: true, ..Default::default() });
        let (a, new_a) = w.add(BlobKind::Data, b"hello").unwrap();
        let (b, new_b) = w.add(BlobKind::Data, b"hello").unwrap();
        let (t, _) = w.add(BlobKind::Tree, b"tree bytes").unwrap();
        assert_eq!(a, b);
        assert!(new_a && !new_b);
        let st = w.finish().unwrap();
        assert_eq!(st.blobs_added, 2);
        assert_eq!(st.packs, 2, "data and trees go to separate packs");
        let reopened = Repository::open(s.clone(), b"pw").unwrap();
        reopened.load_index().unwrap();
        assert_eq!(reopened.read_blob(BlobKind::Data, &a).unwrap(), b"hello");
        assert_eq!(reopened.read_blob(BlobKind::Tree, &t).unwrap(), b"tree bytes");
        // dedup against the repository in a new session
        let repo = Arc::new(reopened);
        let lock = crate::lock::SessionLock::acquire(&repo, "test", false).unwrap();
        let w = BlobWriter::new(repo.clone(), &lock, WriterOptions { paranoid_dedup: true, ..Default::default() });
        assert!(!w.add(BlobKind::Data, b"hello").unwrap().1);
        assert_eq!(w.finish().unwrap().blobs_added, 0);
    }

    #[test]
    fn a_storage_failure_fails_finish_even_after_add_reported_it() {
        let s: Arc<dyn Storage> = Arc::new(Scripted { fail_every: 1, ..Default::default() });
        let mut o = cheap_opts();
        o.pack_size = 4096;
        let repo = Arc::new(Repository::init(s, b"pw", &o).unwrap());
        let lock = crate::lock::SessionLock::acquire(&repo, "test", false).unwrap();
        let w = BlobWriter::new(repo, &lock, WriterOptions::default());
        let mut add_failed = None;
        // The queues are bounded, so the failure reaches `add` within a few batches.
        for i in 0..100_000u32 {
            let mut blob: Vec<u8> = (0..3000u32).map(|j| (j.wrapping_mul(7919) >> 3) as u8).collect();
            blob[..4].copy_from_slice(&i.to_le_bytes());
            if let Err(e) = w.add(BlobKind::Data, &blob) {
                add_failed = Some(e.to_string());
                break;
            }
        }
        let add_failed = add_failed.expect("adding must fail once packs cannot be stored");
        assert!(add_failed.contains("no space left"), "{add_failed}");
        // A caller that carries on (or ignores that error) still cannot finish successfully.
        let _ = w.add(BlobKind::Tree, b"a tree after the failure");
        let e = w.finish().expect_err("finish must report the failure").to_string();
        assert!(e.contains("no space left"), "{e}");
    }
}
