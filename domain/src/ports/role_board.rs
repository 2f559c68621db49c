//! The port through which the cluster membership tells the server its role: the
//! server asks it on every request, the membership writes it.

use std::time::Duration;

use crate::cluster::LeaseWatch;

/// Where a clustered gateway's role is written for the server to read.
pub trait RoleBoard: Send + Sync {
    /// The lock is held under `fencing_token`, with the lease accounted by `watch`.
    /// MUST make the server act as active only while `watch` says the lease is held,
    /// judged at the moment of each request (a process that wakes from a freeze answers
    /// standby before anyone writes here again).
    fn hold(&self, fencing_token: u64, watch: LeaseWatch);

    /// The lock is lost or given up: MUST end every session of the term (they hear
    /// `cluster lock lost`) and answer standby from now on.
    fn step_down(&self);

    /// How long until the held lease must be given up; `None` when nothing is held.
    fn time_to_step_down(&self) -> Option<Duration>;
}
