//! The gateway's life over the domain's ports (docs/architecture.md#the-lifecycle):
//! the [`Supervisor`] that serves, restarts by handoff and ends; the stop sequence;
//! the cluster membership. It knows no socket, file, process or signal: the binary
//! wires real adapters in, and the tests drive it on paused time with doubles.
#![forbid(unsafe_code)]

#[cfg(test)]
mod doubles;
pub mod membership;
pub mod shutdown;
pub mod supervisor;

pub use membership::{ClusterSettings, LockMember, Membership, SingleHost};
pub use shutdown::{ShutdownSequence, StopOutcome};
pub use supervisor::{Ending, Serving, Supervisor, finish};
