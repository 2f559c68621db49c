//! The port to the time a lease is judged by.

use crate::cluster::Reading;

/// Where the lease policy reads the time.
#[cfg_attr(test, mockall::automock)]
pub trait Clock: Send + Sync {
    /// Both clocks, now. MUST never go backwards on either clock. `boot` MUST count
    /// the time the machine spent suspended; where the OS has no such clock, an
    /// adapter MUST say so in its docs, since a suspend then goes unnoticed.
    fn read(&self) -> Reading;
}
