//! How long a peer that presented a wrong token waits before its next attempt is
//! answered: 250 ms after the first failure, doubling, capped at 5 s.

use std::time::Duration;

/// The first delay.
pub const FIRST_DELAY: Duration = Duration::from_millis(250);
/// The longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(5);
/// A peer with no failure for this long is forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(60);

/// The wait before answering a peer with `failures` recent failed attempts.
pub fn delay_after(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => FIRST_DELAY
            .saturating_mul(1u32 << (n - 1).min(8))
            .min(MAX_DELAY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_escalates_from_250ms_to_5s() {
        let ms: Vec<u128> = (0..9).map(|n| delay_after(n).as_millis()).collect();
        assert_eq!(ms, [0, 250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(delay_after(u32::MAX), MAX_DELAY);
    }
}
