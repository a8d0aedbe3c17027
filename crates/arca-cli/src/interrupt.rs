//! Ctrl-C and SIGTERM: the first asks the running operation to stop at its next safe point
//! (the lock is then removed and what was stored stays for the next run to reuse); a second
//! one ends the process at once, with the same exit code.

use anyhow::{Context, Result};
use arca_repo::Cancel;

/// A cancel token that SIGINT, SIGTERM and SIGHUP set.
pub fn on_signals() -> Result<Cancel> {
    let cancel = Cancel::new();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        // Registered first, so it sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(sig, crate::exit::INTERRUPTED, cancel.flag())
            .context("cannot install the signal handler")?;
        signal_hook::flag::register(sig, cancel.flag()).context("cannot install the signal handler")?;
    }
    Ok(cancel)
}
