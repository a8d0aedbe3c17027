//! A bandwidth limit for backends that move bytes themselves (`ssh://`; `s3://` uses OpenDAL's
//! throttle layer): a GCRA rate limiter from `governor`, waited on in blocking code.

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;

/// Bytes per second in 1 KiB cells.
pub struct Limit {
    limiter: RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, DefaultClock>,
    burst: u32,
}

const CELL: usize = 1024;

impl Limit {
    /// A limit of `bytes_per_second` (at least 1 KiB/s), with a one-second burst.
    pub fn new(bytes_per_second: u32) -> Limit {
        let kib = NonZeroU32::new((bytes_per_second as usize / CELL).max(1) as u32).unwrap_or(NonZeroU32::MIN);
        Limit { limiter: RateLimiter::direct(Quota::per_second(kib).allow_burst(kib)), burst: kib.get() }
    }

    /// Wait until `bytes` may pass.
    pub fn wait(&self, bytes: usize) {
        let clock = DefaultClock::default();
        let mut cells = bytes.div_ceil(CELL) as u64;
        while cells > 0 {
            let n = cells.min(self.burst as u64) as u32;
            let Some(nz) = NonZeroU32::new(n) else { return };
            loop {
                match self.limiter.check_n(nz) {
                    Ok(Ok(())) => break,
                    Ok(Err(not_until)) => std::thread::sleep(not_until.wait_time_from(clock.now())),
                    Err(_) => break, // cannot happen: n is at most the burst
                }
            }
            cells -= n as u64;
        }
    }
}
