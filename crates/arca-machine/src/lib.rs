//! Whole machines: descriptions (`describe`, `source`), bare-metal recovery scripts
//! (`script`), package-checksum audits (`audit`, and against the signed archive: `archive`)
//! on a live system or inside a snapshot, and a live system compared with a snapshot by
//! content.

pub mod archive;
pub mod audit;
pub mod describe;
mod error;
pub mod script;
pub mod source;

pub use error::{MachineError, MachineResult};
