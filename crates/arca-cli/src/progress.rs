//! Progress: a bar on a terminal, JSON lines (at most one a second) with `--json`, nothing on
//! a pipe.

use crate::output::Output;
use crate::text::escape;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Progress of one long command.
pub struct Progress {
    phase: &'static str,
    bar: Option<ProgressBar>,
    json: bool,
    started: Instant,
    files: AtomicU64,
    bytes: AtomicU64,
    total: Arc<AtomicU64>,
    /// Files expected in all (0 while unknown), from a scanning thread.
    total_files: Arc<AtomicU64>,
    /// The totals are final (the scan finished, or they were set at once).
    totals_known: Arc<std::sync::atomic::AtomicBool>,
    last_json: Mutex<Instant>,
}

/// How often JSON progress lines come: once a second, or every ARCA_PROGRESS_INTERVAL_MS.
fn json_interval() -> Duration {
    static EVERY: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *EVERY.get_or_init(|| {
        let ms = std::env::var("ARCA_PROGRESS_INTERVAL_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
        Duration::from_millis(ms)
    })
}

/// The bar while the totals are still being counted: no percentage or ETA that would lie.
const SCANNING: &str = "{spinner} [{elapsed_precise}] {bytes}/{total_bytes}+ {bytes_per_sec} {prefix} {wide_msg}";
/// The bar once the totals are known.
const KNOWN: &str =
    "{spinner} [{elapsed_precise}] {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {prefix} {wide_msg}";

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// `path` cut in the middle to `max` characters, so the file name at its end stays visible.
pub fn middle_cut(path: &str, max: usize) -> String {
    let chars: Vec<char> = path.chars().collect();
    if chars.len() <= max || max < 8 {
        return path.to_string();
    }
    let head = max / 3;
    let tail = max - head - 1;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

impl Progress {
    /// Start showing progress of `phase` (e.g. "backup").
    pub fn new(out: &Output, phase: &'static str) -> Progress {
        let bar = out.show_progress.then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
            b.set_style(style(SCANNING));
            b.enable_steady_tick(Duration::from_millis(250));
            b
        });
        Progress {
            phase,
            bar,
            json: out.json,
            started: Instant::now(),
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            total: Arc::new(AtomicU64::new(0)),
            total_files: Arc::new(AtomicU64::new(0)),
            totals_known: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            last_json: Mutex::new(Instant::now()),
        }
    }

    /// Set the expected total bytes (for the ETA).
    pub fn set_total(&self, n: u64) {
        self.total.store(n, Ordering::Relaxed);
        self.totals_known.store(true, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_length(n);
            b.set_style(style(KNOWN));
        }
    }

    /// A handle another thread can use to grow the expected totals.
    pub fn total_handle(&self) -> TotalHandle {
        TotalHandle {
            bar: self.bar.clone(),
            total: self.total.clone(),
            files: self.total_files.clone(),
            known: self.totals_known.clone(),
        }
    }

    /// Count processed bytes.
    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.inc(n);
        }
        self.maybe_json();
    }

    /// Count a finished item.
    pub fn add_file(&self) {
        let f = self.files.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(b) = &self.bar {
            let total = self.total_files.load(Ordering::Relaxed);
            b.set_prefix(if total > 0 { format!("{f}/{total} files") } else { format!("{f} files") });
        }
    }

    /// Show what is being worked on (a path is cut in the middle to fit).
    pub fn message(&self, m: String) {
        if let Some(b) = &self.bar {
            b.set_message(middle_cut(&m, 40));
        }
    }

    /// Print a result line (stdout) without garbling the bar.
    pub fn print_line(&self, out: &Output, msg: String) {
        match &self.bar {
            Some(b) => b.suspend(|| out.line(&msg)),
            None => out.line(&msg),
        }
    }

    /// Print a line without garbling the bar.
    pub fn println(&self, out: &Output, msg: String) {
        match &self.bar {
            Some(b) => b.suspend(|| out.warn(&msg)),
            None => out.warn(&msg),
        }
    }

    /// Print an informational line without garbling the bar.
    pub fn notice(&self, out: &Output, msg: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| out.info(msg)),
            None => out.info(msg),
        }
    }

    fn maybe_json(&self) {
        if !self.json {
            return;
        }
        let mut last = self.last_json.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() < json_interval() {
            return;
        }
        *last = Instant::now();
        let bytes = self.bytes.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { bytes as f64 / secs } else { 0.0 };
        let known = self.totals_known.load(Ordering::Relaxed);
        let mut v = serde_json::json!({
            "type": "progress", "phase": self.phase, "files": self.files.load(Ordering::Relaxed),
            "bytes": bytes, "total_bytes": total, "total_files": self.total_files.load(Ordering::Relaxed),
            "totals_final": known, "elapsed_secs": secs, "bytes_per_sec": rate,
        });
        // Percent and time left only once the totals are final: a growing total would lie.
        if known && total > 0 {
            v["percent_done"] = serde_json::json!((bytes as f64 / total as f64 * 100.0).min(100.0));
            if rate > 0.0 {
                v["seconds_remaining"] = serde_json::json!((total.saturating_sub(bytes)) as f64 / rate);
            }
        }
        // Progress is a side channel: a closed stdout must not stop the work.
        use std::io::Write;
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{v}").and_then(|()| o.flush());
    }

    /// Remove the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Grows the progress totals from a scanning thread.
pub struct TotalHandle {
    bar: Option<ProgressBar>,
    total: Arc<AtomicU64>,
    files: Arc<AtomicU64>,
    known: Arc<std::sync::atomic::AtomicBool>,
}

impl TotalHandle {
    /// Add a file of `n` bytes to the expected totals.
    pub fn add(&self, n: u64) {
        let t = self.total.fetch_add(n, Ordering::Relaxed) + n;
        self.files.fetch_add(1, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_length(t);
        }
    }

    /// The scan is complete: the bar shows a percentage and an ETA from now on.
    pub fn done(&self) {
        self.known.store(true, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_style(style(KNOWN));
        }
    }
}

/// Progress plus the printer, so warnings can be shown as they happen.
pub struct Reporter<'a> {
    pub progress: Progress,
    pub out: &'a Output,
    /// Which files a backup lists as it classifies them: 0 none, 1 new and modified, 2 all.
    pub list: u8,
}

impl<'a> Reporter<'a> {
    /// A reporter that lists no files (prune, check, repairs).
    pub fn new(out: &'a Output, phase: &'static str) -> Reporter<'a> {
        Reporter { progress: Progress::new(out, phase), out, list: 0 }
    }
}

impl arca_repo::Events for Reporter<'_> {
    fn wants_totals(&self) -> bool {
        self.out.show_progress || self.out.json
    }

    fn emit(&self, event: arca_repo::Event<'_>) {
        use arca_repo::events::Change;
        use arca_repo::Event;
        let shown = |p: &Path| escape(p.as_os_str().as_bytes());
        match event {
            Event::Phase { name, done, total } => self.progress.message(format!("{name} {done}/{total}")),
            Event::Total { bytes } => self.progress.set_total(bytes),
            Event::Change { path, change } => {
                if self.list == 0 || (self.list == 1 && change == Change::Unchanged) {
                    return;
                }
                if self.out.json {
                    self.out.json_line(&serde_json::json!({"type": "file", "change": change, "path": shown(path)}));
                    return;
                }
                let word = match change {
                    Change::New => "new",
                    Change::Modified => "modified",
                    Change::Unchanged => "unchanged",
                };
                self.progress.print_line(self.out, format!("{word:<9} {}", shown(path)));
            }
            Event::File { path, .. } => self.progress.message(shown(path)),
            Event::Bytes(n) => self.progress.add_bytes(n),
            Event::Skipped(size) => {
                self.progress.add_file();
                self.progress.add_bytes(size);
            }
            Event::FileDone => self.progress.add_file(),
            Event::Warning { path, message } => self.progress.println(self.out, format!("{}: {message}", shown(path))),
            Event::Deleted { path, entries } => {
                if self.out.json {
                    let v = serde_json::json!({"type": "deleted", "path": shown(path), "entries": entries, "dry_run": self.list > 0});
                    self.out.json_line(&v);
                    return;
                }
                let word = if self.list > 0 { "would delete" } else { "deleted" };
                let inside = if entries > 1 {
                    format!(" ({} in all)", crate::text::count(entries, "entry", "entries"))
                } else {
                    String::new()
                };
                self.progress.print_line(self.out, format!("{word} {}{inside}", shown(path)));
            }
            Event::Notice(text) => self.progress.notice(self.out, text),
            Event::Caution(text) => self.progress.println(self.out, text.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::middle_cut;

    #[test]
    fn long_paths_are_cut_in_the_middle() {
        let p = "/var/tmp/a-rather-long-directory/with/many/levels/f39.bin";
        let c = middle_cut(p, 30);
        assert_eq!(c.chars().count(), 30);
        assert!(c.starts_with("/var/tmp/") && c.ends_with("levels/f39.bin"), "{c}");
        assert_eq!(middle_cut("/short", 30), "/short");
    }
}
