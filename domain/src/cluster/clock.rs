//! The port to the time a lease is judged by.
//!
//! A lease expires on the server's clock, which keeps running while this machine
//! sleeps. `std::time::Instant` does not count suspended time on Linux, so a laptop
//! waking from sleep would believe its lease still fresh. The policy therefore reads
//! two clocks and treats a gap between them as a freeze.

use std::time::Duration;

/// Two readings taken together, each from an arbitrary fixed origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Time that stops while the machine is suspended (`CLOCK_MONOTONIC`, `Instant`).
    pub monotonic: Duration,
    /// Time that keeps counting through a suspend (`CLOCK_BOOTTIME`).
    pub boot: Duration,
}
