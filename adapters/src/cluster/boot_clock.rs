//! The domain's `Clock` on Linux: `CLOCK_MONOTONIC` beside `CLOCK_BOOTTIME`, which
//! keeps counting while the machine is suspended.

use gateway_domain::ports::Clock;
use std::time::Duration;

use gateway_domain::cluster::Reading;
use nix::time::{ClockId, clock_gettime};

/// Reads both clocks. Where `CLOCK_BOOTTIME` is missing (not Linux), the monotonic
/// clock stands in for it and a suspend goes unnoticed until the next keep-alive
/// fails: documented in `docs/cluster.md`.
#[derive(Debug, Default, Clone, Copy)]
pub struct BootClock;

impl Clock for BootClock {
    fn read(&self) -> Reading {
        let monotonic = read(ClockId::CLOCK_MONOTONIC);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let boot = read(ClockId::CLOCK_BOOTTIME).max(monotonic);
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let boot = monotonic;
        Reading { monotonic, boot }
    }
}

fn read(clock: ClockId) -> Duration {
    // These clocks exist on every supported kernel; zero would only make the
    // lease look older, never younger.
    clock_gettime(clock).map(Duration::from).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_clock_is_never_behind_the_monotonic_one() {
        let reading = BootClock.read();
        assert!(reading.boot >= reading.monotonic);
        assert!(reading.monotonic > Duration::ZERO);
    }
}
