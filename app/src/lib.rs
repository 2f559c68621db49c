//! The `gateway` application: the command line, and the wiring of real adapters into
//! the lifecycle of `gateway-core` (docs/architecture.md). `main.rs` only calls
//! [`entry::run`]; tests can run the daemon in-process through [`daemon::run_with`].

pub mod cli;
pub mod cluster;
pub mod cluster_access;
pub mod completions;
pub mod daemon;
#[cfg(test)]
mod dist_files;
pub mod entry;
pub mod exposure;
pub mod force;
pub mod logging;
#[cfg(test)]
mod man_page;
pub mod restart;
pub mod start;
pub mod status;
pub mod stop;
