//! arca's jobs: what to back up, where, for how long, and what to do around it, written down
//! once in a TOML file of named repositories and jobs. This crate reads and checks that file
//! (every value uses the engine's own option types: retention policies, sizes, intervals,
//! compression, read-data subsets, so a job file and a command-line flag mean the same thing
//! and fail the same way), plans a job as `arca` command lines, turns its schedule into
//! systemd units or a cron line, keeps the run history, and derives the status that
//! `arca status`, the Prometheus textfile, health pings and SNMP report.

pub mod calendar;
pub mod config;
pub mod history;
pub mod ping;
pub mod plan;
pub mod schedule;
pub mod snmp;
pub mod status;

pub use config::{Config, ConfigError, Job, RepositoryConfig};
pub use plan::{plan, Phase, PlanError, Step};
