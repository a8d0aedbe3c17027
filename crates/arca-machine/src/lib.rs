//! Whole machines: package-checksum audits (`audit`), on a live system or inside a snapshot,
//! and a live system compared with a snapshot by content.

pub mod audit;
mod error;

pub use error::{MachineError, MachineResult};
