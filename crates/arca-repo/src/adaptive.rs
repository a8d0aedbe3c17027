//! Adaptive compression (`--compression auto`): the zstd level follows the bottleneck, as the
//! original wish list asks ("determine if compression is or isn't the bottleneck, and
//! accordingly use higher, lower or no compression"). The seal workers say, after each
//! batch, how long they waited for work, how long they worked and how long they waited to
//! hand sealed blobs on; every quarter second of wall time the level moves one step:
//!
//! - up when the workers wait to hand blobs on (the upload is the bottleneck: CPU spent on
//!   compression sends fewer bytes and costs no time), two steps when they wait more than
//!   they work;
//! - down when the process uses nearly all cores (the CPU is the bottleneck: each level
//!   costs time);
//! - up when the CPU has room and the workers wait for work (reading is the bottleneck);
//! - otherwise it stays.
//!
//! Incompressible data is still skipped by the probe in `blob.rs`. Levels are between
//! [`MIN_LEVEL`] and [`MAX_LEVEL`]; the session starts at [`START_LEVEL`]. The level changes
//! only how blobs are stored, never their ids: deduplication is unaffected.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The level a session starts at (zstd's default).
pub const START_LEVEL: i32 = 3;
/// The lowest level used.
pub const MIN_LEVEL: i32 = 1;
/// The highest level used: above it zstd needs much more memory and CPU for a few percent
/// (the `real` set: 104.5 MB at level 3, 97.2 MB at 9).
pub const MAX_LEVEL: i32 = 9;
/// Wall time between decisions.
const DECIDE_EVERY: Duration = Duration::from_millis(250);

/// What the workers did during one window, as fractions of their time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// Waiting for blobs to seal.
    pub waiting_for_work: f64,
    /// Waiting to hand sealed blobs on (packing, uploading).
    pub waiting_to_hand_on: f64,
    /// The process's CPU time over the window's wall time and the cores.
    pub cpu_use: f64,
}

/// The next level after `w`, from `level`.
pub fn decide(level: i32, w: Window) -> i32 {
    let next = if w.waiting_to_hand_on >= 0.5 {
        level + 2
    } else if w.waiting_to_hand_on >= 0.2 {
        level + 1
    } else if w.cpu_use >= 0.8 {
        level - 1
    } else if w.cpu_use < 0.6 && w.waiting_for_work >= 0.3 {
        level + 1
    } else {
        level
    };
    next.clamp(MIN_LEVEL, MAX_LEVEL)
}

/// One write session's level, moved by what its workers report.
pub struct LevelControl {
    level: AtomicI32,
    lowest: AtomicI32,
    highest: AtomicI32,
    /// Nanoseconds summed over the workers since the last decision.
    waited_in: AtomicU64,
    worked: AtomicU64,
    waited_out: AtomicU64,
    /// When the window began, and the process's CPU time then.
    began: Mutex<(Instant, Duration)>,
    cores: f64,
}

impl Default for LevelControl {
    fn default() -> Self {
        LevelControl {
            level: AtomicI32::new(START_LEVEL),
            lowest: AtomicI32::new(START_LEVEL),
            highest: AtomicI32::new(START_LEVEL),
            waited_in: AtomicU64::new(0),
            worked: AtomicU64::new(0),
            waited_out: AtomicU64::new(0),
            began: Mutex::new((Instant::now(), process_cpu())),
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64,
        }
    }
}

impl LevelControl {
    /// The level to compress the next blobs at.
    pub fn level(&self) -> i32 {
        self.level.load(Ordering::Relaxed)
    }

    /// The lowest and highest levels this session used.
    pub fn range(&self) -> (i32, i32) {
        (self.lowest.load(Ordering::Relaxed), self.highest.load(Ordering::Relaxed))
    }

    /// A worker's account of one batch; every [`DECIDE_EVERY`] the level moves.
    pub fn account(&self, waited_in: Duration, worked: Duration, waited_out: Duration) {
        let ns = |d: Duration| d.as_nanos().min(u64::MAX as u128) as u64;
        self.waited_in.fetch_add(ns(waited_in), Ordering::Relaxed);
        self.worked.fetch_add(ns(worked), Ordering::Relaxed);
        self.waited_out.fetch_add(ns(waited_out), Ordering::Relaxed);
        // One worker decides; the others, finding the window taken, go on.
        let mut began = match self.began.try_lock() {
            Ok(b) => b,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        let wall = began.0.elapsed();
        if wall >= DECIDE_EVERY {
            let cpu = process_cpu();
            let (i, w, o) = (
                self.waited_in.swap(0, Ordering::Relaxed) as f64,
                self.worked.swap(0, Ordering::Relaxed) as f64,
                self.waited_out.swap(0, Ordering::Relaxed) as f64,
            );
            let total = (i + w + o).max(1.0);
            let window = Window {
                waiting_for_work: i / total,
                waiting_to_hand_on: o / total,
                cpu_use: cpu.saturating_sub(began.1).as_secs_f64() / (wall.as_secs_f64() * self.cores),
            };
            let level = decide(self.level(), window);
            tracing::debug!(?window, level, "compression level");
            self.level.store(level, Ordering::Relaxed);
            self.lowest.fetch_min(level, Ordering::Relaxed);
            self.highest.fetch_max(level, Ordering::Relaxed);
            *began = (Instant::now(), cpu);
        }
    }
}

/// The CPU time this process has used (user and system), from getrusage(2).
fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let t = |v: libc::timeval| Duration::new(v.tv_sec.max(0) as u64, (v.tv_usec.max(0) as u32) * 1000);
    t(u.ru_utime) + t(u.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(waiting_for_work: f64, waiting_to_hand_on: f64, cpu_use: f64) -> Window {
        Window { waiting_for_work, waiting_to_hand_on, cpu_use }
    }

    #[test]
    fn the_level_follows_the_bottleneck() {
        // The upload waits: compress harder, even with the CPU busy; faster when it waits more.
        assert_eq!(decide(3, w(0.0, 0.3, 0.95)), 4);
        assert_eq!(decide(3, w(0.0, 0.7, 0.4)), 5);
        // The CPU is the bottleneck: cheaper.
        assert_eq!(decide(3, w(0.05, 0.0, 0.95)), 2);
        // Reading is the bottleneck and the CPU has room: harder.
        assert_eq!(decide(3, w(0.6, 0.0, 0.3)), 4);
        // Workers wait for work but the CPU is busy (the readers' chunking and hashing use
        // it): no higher, or the readers slow down.
        assert_eq!(decide(3, w(0.6, 0.0, 0.9)), 2);
        // Balanced: stays.
        assert_eq!(decide(3, w(0.1, 0.1, 0.7)), 3);
        // Within bounds.
        assert_eq!(decide(MIN_LEVEL, w(0.0, 0.0, 1.0)), MIN_LEVEL);
        assert_eq!(decide(MAX_LEVEL, w(0.0, 0.9, 0.2)), MAX_LEVEL);
    }

    #[test]
    fn a_control_moves_once_per_window_and_remembers_its_range() {
        let c = LevelControl::default();
        // Workers that only wait to hand on: the upload is the bottleneck.
        for _ in 0..3 {
            *c.began.lock().unwrap() = (Instant::now() - DECIDE_EVERY, process_cpu());
            c.account(Duration::ZERO, Duration::from_millis(10), Duration::from_millis(400));
        }
        assert_eq!(c.level(), START_LEVEL + 6);
        assert_eq!(c.range(), (START_LEVEL, START_LEVEL + 6));
        // Within a window nothing moves.
        c.account(Duration::ZERO, Duration::from_millis(10), Duration::from_millis(400));
        assert_eq!(c.level(), START_LEVEL + 6);
    }
}
