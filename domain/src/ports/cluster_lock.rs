//! The port to the engine that holds the cluster lock (etcd's v3 API in production).

use std::time::Duration;

use async_trait::async_trait;

use crate::cluster::{Acquisition, ClusterKey, HeldLock, HolderRecord, LeaseId, LockFault};

/// A lock on one key of a shared engine, bound to a lease with a TTL.
///
/// Safety rests on the engine: only one lease can own the key at a time, and the key
/// disappears when its lease is revoked or expires (TTL after the last keep-alive
/// the engine received).
///
/// Every method MUST tell a failure that waiting may cure ([`LockFault::Unreachable`]:
/// no connection, no answer, no leader) from the engine refusing this client
/// ([`LockFault::Unusable`]: credentials, permissions on the key, a certificate that
/// does not verify or is not accepted), which the caller treats as a configuration
/// error (exit 78 at start, a step-down once active).
#[async_trait]
pub trait ClusterLock: Send + Sync {
    /// Tries once to take `key` for `holder` under a new lease of `ttl`.
    ///
    /// MUST create the key only if it does not exist, atomically with the check (no
    /// window in which two callers both see it free). MUST bind it to a fresh lease of
    /// TTL at least `ttl`, and return [`Acquisition::Acquired`] whose fencing token is
    /// the key's create revision. MUST return [`Acquisition::HeldElsewhere`] when the
    /// key exists, and then MUST NOT leave the fresh lease behind. MUST return
    /// [`LockFault::Unreachable`] when the engine does not answer in bounded time.
    async fn try_acquire(
        &self,
        key: &ClusterKey,
        ttl: Duration,
        holder: &HolderRecord,
    ) -> Result<Acquisition, LockFault>;

    /// Resolves once `key` may have come free after `revision` (it was deleted), or
    /// after `patience` at the latest; the caller then tries again. MUST resolve
    /// within a few milliseconds of the deletion when the engine is reachable.
    async fn wait_for_release(
        &self,
        key: &ClusterKey,
        revision: i64,
        patience: Duration,
    ) -> Result<(), LockFault>;

    /// One keep-alive round trip for `lease`.
    ///
    /// MUST return `Ok(true)` only when the engine acknowledged it and says the lease
    /// still lives; `Ok(false)` when the engine says the lease is gone (expired or
    /// revoked: the lock is lost); [`LockFault::Unreachable`] when no answer came
    /// within `patience`.
    async fn keep_alive(&self, lease: LeaseId, patience: Duration) -> Result<bool, LockFault>;

    /// Asks the engine whether `key` still exists under `held` (same lease, same
    /// create revision). MUST NOT answer from a cache.
    async fn confirm(
        &self,
        key: &ClusterKey,
        held: HeldLock,
        patience: Duration,
    ) -> Result<bool, LockFault>;

    /// Revokes the lease: the key is deleted at once and a waiting standby can take
    /// it. Revoking a lease that is already gone MUST succeed.
    async fn release(&self, held: HeldLock, patience: Duration) -> Result<(), LockFault>;
}
