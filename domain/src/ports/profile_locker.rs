//! The port to the profile's lock file.

use std::path::Path;

use crate::profile::{LockRecord, ProfileLockFailure};

/// Takes a profile's lock.
pub trait ProfileLocker: Send + Sync {
    /// Proof of holding the lock; dropping it releases the lock.
    type Guard: Send;

    /// Creates `dir` (mode 0700) if needed, takes an exclusive advisory lock on
    /// `dir/gateway.lock` without waiting, and writes `record` into it.
    ///
    /// MUST return [`ProfileLockFailure::Held`] when another open file holds the lock,
    /// with the holder's record if it can be read, and MUST NOT wait for it.
    ///
    /// MUST return [`ProfileLockFailure::Unavailable`], having written nothing, when an
    /// existing `dir` is not owned by the effective user ([`crate::profile::StateDirProblem::NotOwned`]),
    /// is writable by group or others ([`crate::profile::StateDirProblem::WritableByOthers`]), or when
    /// `gateway.lock` is a symbolic link ([`crate::profile::StateDirProblem::LockFileIsSymlink`]): it
    /// MUST NOT follow a symbolic link there.
    fn acquire(&self, dir: &Path, record: &LockRecord) -> Result<Self::Guard, ProfileLockFailure>;

    /// The record of the gateway holding `dir`'s lock right now, for `status`, `stop`
    /// and `restart --profile NAME`.
    ///
    /// MUST return `None` when the lock is free (a record left behind by a gateway that
    /// exited describes nobody) or cannot be checked, and MUST NOT take the lock, not
    /// even briefly: a gateway starting at that moment would be refused. MUST NOT follow
    /// a symbolic link named `gateway.lock`, nor wait on anything that is not a file.
    fn current_holder(&self, dir: &Path) -> Option<LockRecord>;
}
