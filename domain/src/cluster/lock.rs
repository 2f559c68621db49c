//! The port to the engine that holds the cluster lock (etcd's v3 API in production):
//! a key bound to a lease, kept alive by its holder, gone when the lease ends.

use serde::{Deserialize, Serialize};

/// Who holds the lock, as recorded in the key's value (JSON), for refusal messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderRecord {
    /// The holder's `ws://HOST:PORT`.
    pub url: String,
    pub pid: u32,
    pub hostname: String,
}

/// The engine's id of a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseId(pub i64);

/// The lock, held: the lease it hangs on and its fencing token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldLock {
    pub lease: LeaseId,
    /// The key's create revision: the engine's revisions only grow, so each new
    /// holder's token is larger than every earlier one.
    pub fencing_token: u64,
}

/// The answer to one attempt at the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquisition {
    /// The key was free and is now ours.
    Acquired(HeldLock),
    /// Someone holds it. `holder` is `None` when its value cannot be read as a
    /// [`HolderRecord`] (written by something else). `revision` is the engine's
    /// revision at which this was seen, for [`ClusterLock::wait_for_release`].
    HeldElsewhere {
        holder: Option<HolderRecord>,
        revision: i64,
    },
}

/// The engine could not be asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockFault {
    /// No answer (refused, timed out, no leader...). `url` names the endpoints as
    /// configured, `reason` the error, for the line in docs/reference.md#cluster.
    #[error("cannot reach the cluster lock at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The engine answered, and refuses this gateway: its credentials (a wrong
    /// password, a role that does not cover the key), its client certificate, or a
    /// server certificate that does not verify. Waiting will not change it. `url`
    /// names the endpoint that refused.
    #[error("cannot use the cluster lock at {url}: {reason}")]
    Unusable { url: String, reason: String },
}
