//! The wall clock as the gateway writes it: milliseconds since the Unix epoch, in
//! the profile lock file (`started_unix_ms`) and in `tick` events (`ts`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now. A clock set before 1970 reads 0 and one
/// beyond `u64::MAX` ms reads `u64::MAX`: neither is worth failing over.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_time_after_this_code_was_written() {
        // 2024-01-01T00:00:00Z
        assert!(unix_ms() > 1_704_067_200_000);
    }
}
