//! The local record of job runs (`$XDG_STATE_HOME/arca/jobs/`, `/var/lib/arca/jobs/` for
//! root, or `$ARCA_STATE_DIR/jobs/`): one JSON line per finished run in `JOB.jsonl` (start,
//! end, result, every step's command line and exit code), a `JOB.running` marker while a run
//! is under way (a marker whose process is gone is a run that was killed), and the figures
//! last read from each repository (`repositories.json`) so that monitoring answers without
//! opening a repository.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunResult {
    Ok,
    /// The snapshot was saved, but some files could not be read (exit 3).
    Partial,
    Failed,
}

impl RunResult {
    pub fn name(self) -> &'static str {
        match self {
            RunResult::Ok => "ok",
            RunResult::Partial => "partial",
            RunResult::Failed => "failed",
        }
    }
}

/// One step as it ran.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepRecord {
    pub phase: String,
    pub command: String,
    pub exit: i32,
    pub seconds: f64,
    /// Why it did not finish, when that is not the command's own exit (a timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One finished run of a job.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    pub job: String,
    /// RFC 3339.
    pub start: String,
    pub end: String,
    pub result: RunResult,
    pub exit: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The id of the snapshot the backup saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Whether the run's check ran and passed (None: it did not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_ok: Option<bool>,
    #[serde(default)]
    pub steps: Vec<StepRecord>,
}

/// What was last read from a repository.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RepositoryFacts {
    /// RFC 3339: when these were read.
    pub read_at: String,
    pub reachable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub snapshots: u64,
    /// Bytes stored in packs.
    pub bytes: u64,
    /// Bytes of file data the snapshots hold, before deduplication and compression.
    pub logical_bytes: u64,
    /// `logical_bytes` per stored byte: what deduplication and compression save.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_ratio: Option<f64>,
    pub stale_locks: u64,
    /// Free bytes on the file system of a local repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
    /// The newest snapshot of each job, by job name (RFC 3339).
    #[serde(default)]
    pub last_snapshot: BTreeMap<String, String>,
}

/// Why the history cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot write the run history in {dir}: {source}")]
    Write { dir: PathBuf, source: std::io::Error },
    #[error("cannot read the run history {file}: {source}")]
    Read { file: PathBuf, source: std::io::Error },
}

/// The history directory.
#[derive(Clone, Debug)]
pub struct History {
    dir: PathBuf,
}

/// A file of this many bytes keeps its newer half when the next run is added.
const MAX_LOG: u64 = 4 << 20;

/// The default state directory: `$ARCA_STATE_DIR`, else `/var/lib/arca` for root, else
/// `$XDG_STATE_HOME/arca` (`~/.local/state/arca`).
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ARCA_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if crate::config::is_root() {
        return PathBuf::from("/var/lib/arca");
    }
    crate::config::xdg_dir("XDG_STATE_HOME", ".local/state").join("arca")
}

/// Whether process `pid` is alive (on Linux: it has a /proc entry).
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A run under way: its marker is removed when this is dropped.
pub struct Running {
    file: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// The marker of a run under way (or of one that was killed).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunningMarker {
    pub pid: u32,
    pub start: String,
    /// False when the process is gone: the run was killed or the machine went down.
    #[serde(skip)]
    pub alive: bool,
}

impl History {
    pub fn new(dir: PathBuf) -> History {
        History { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn jobs(&self) -> PathBuf {
        self.dir.join("jobs")
    }

    fn log(&self, job: &str) -> PathBuf {
        self.jobs().join(format!("{job}.jsonl"))
    }

    fn write_err(&self, source: std::io::Error) -> HistoryError {
        HistoryError::Write { dir: self.dir.clone(), source }
    }

    /// Mark job `job` as running (by this process, since `start`).
    pub fn start(&self, job: &str, start: &str) -> Result<Running, HistoryError> {
        std::fs::create_dir_all(self.jobs()).map_err(|e| self.write_err(e))?;
        let file = self.jobs().join(format!("{job}.running"));
        let m = RunningMarker { pid: std::process::id(), start: start.into(), alive: true };
        let text = serde_json::to_string(&m).unwrap_or_default();
        std::fs::write(&file, text).map_err(|e| self.write_err(e))?;
        Ok(Running { file })
    }

    /// The marker of job `job`, if one is there.
    pub fn running(&self, job: &str) -> Option<RunningMarker> {
        let text = std::fs::read_to_string(self.jobs().join(format!("{job}.running"))).ok()?;
        let mut m: RunningMarker = serde_json::from_str(&text).ok()?;
        m.alive = alive(m.pid);
        Some(m)
    }

    /// Remove the marker of a run whose process is gone.
    pub fn clear_dead_marker(&self, job: &str) {
        if self.running(job).is_some_and(|m| !m.alive) {
            let _ = std::fs::remove_file(self.jobs().join(format!("{job}.running")));
        }
    }

    /// Add a finished run.
    pub fn append(&self, r: &RunRecord) -> Result<(), HistoryError> {
        std::fs::create_dir_all(self.jobs()).map_err(|e| self.write_err(e))?;
        let file = self.log(&r.job);
        if std::fs::metadata(&file).is_ok_and(|m| m.len() > MAX_LOG) {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let lines: Vec<&str> = text.lines().collect();
                let keep = lines[lines.len() / 2..].join("\n") + "\n";
                let tmp = file.with_extension("jsonl.tmp");
                std::fs::write(&tmp, keep).and_then(|_| std::fs::rename(&tmp, &file)).map_err(|e| self.write_err(e))?;
            }
        }
        let mut line = serde_json::to_string(r).map_err(|e| self.write_err(std::io::Error::other(e)))?;
        line.push('\n');
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&file).map_err(|e| self.write_err(e))?;
        // One write of a whole line: a crash leaves at most a torn last line, which reading skips.
        f.write_all(line.as_bytes()).and_then(|_| f.sync_data()).map_err(|e| self.write_err(e))
    }

    /// The runs of job `job`, oldest first (lines that do not parse, such as a line torn by a
    /// crash, are passed over).
    pub fn runs(&self, job: &str) -> Result<Vec<RunRecord>, HistoryError> {
        let file = self.log(job);
        match std::fs::read_to_string(&file) {
            Ok(text) => Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
            Err(source) => Err(HistoryError::Read { file, source }),
        }
    }

    fn facts_file(&self) -> PathBuf {
        self.dir.join("repositories.json")
    }

    /// The figures last read from each repository, by repository name.
    pub fn facts(&self) -> BTreeMap<String, RepositoryFacts> {
        std::fs::read_to_string(self.facts_file()).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
    }

    /// Store the figures of some repositories (the others keep theirs).
    pub fn store_facts(&self, new: BTreeMap<String, RepositoryFacts>) -> Result<(), HistoryError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.write_err(e))?;
        let mut all = self.facts();
        all.extend(new);
        let text = serde_json::to_string_pretty(&all).map_err(|e| self.write_err(std::io::Error::other(e)))?;
        write_atomically(&self.facts_file(), text.as_bytes()).map_err(|e| self.write_err(e))
    }
}

/// Write `file` through a temporary file and a rename, so a reader (node exporter, snmpd)
/// never sees half of it.
pub fn write_atomically(file: &Path, data: &[u8]) -> std::io::Result<()> {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = file.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, file).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
