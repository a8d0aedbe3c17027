//! Whole machines: package-checksum audits (`audit`), on a live system or inside a snapshot,
//! and a live system compared with a snapshot by content.

pub mod audit;
pub mod describe;
mod error;
pub mod script;
pub mod source;

pub use error::{MachineError, MachineResult};
