//! When an active gateway must stop acting: the lease policy, pure.
//!
//! The engine expires a lease TTL after the last keep-alive *it received*. A
//! keep-alive received was sent earlier, so counting from the moment of sending
//! is conservative. The holder steps down once half the TTL has passed since the
//! last keep-alive that was acknowledged: it stops acting while the server still
//! holds its lease for the other half, which absorbs clock-rate drift and the time
//! the step-down itself takes. A standby can only take the key after the lease
//! expires or is revoked, so two actives never overlap.
//!
//! The time is read on a clock that counts suspended time. When that clock moved
//! further than the monotonic one since the last look, the machine was asleep:
//! even if the lease has not lapsed by the count, the holder does not act again
//! until the server confirmed it still holds the key.

use std::time::Duration;

use super::clock::Reading;

/// A gap between the two clocks larger than this since the last look is a freeze.
pub const SUSPEND_TOLERANCE: Duration = Duration::from_millis(250);

/// What the holder of a lease may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Act: the lease is certainly alive on the server.
    Held,
    /// Do not act until the server confirms the lock (the machine was suspended).
    Unconfirmed,
    /// Step down: the lease may expire on the server any moment.
    Lapsed,
}

/// The account of one held lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseWatch {
    /// The lease's TTL as asked for (the server may grant more, never less).
    ttl: Duration,
    /// Boot-clock time at which the last acknowledged keep-alive (or the
    /// acquisition) was sent.
    last_ack_sent: Duration,
    /// The previous look at the clocks, to notice a suspend.
    last_seen: Reading,
    /// Boot-clock time from which a confirmation is needed, after a suspend.
    unconfirmed_since: Option<Duration>,
}

impl LeaseWatch {
    /// A lease just granted in answer to a request sent at `requested_at`.
    pub fn granted(ttl: Duration, requested_at: Reading) -> Self {
        Self {
            ttl,
            last_ack_sent: requested_at.boot,
            last_seen: requested_at,
            unconfirmed_since: None,
        }
    }

    /// How often to send keep-alives: three tries fit before the step-down.
    pub fn keep_alive_interval(ttl: Duration) -> Duration {
        ttl / 8
    }

    /// How long an active holder may go without an acknowledged keep-alive.
    pub fn grace(&self) -> Duration {
        self.ttl / 2
    }

    /// Boot-clock time at which the holder must have stepped down.
    pub fn step_down_at(&self) -> Duration {
        self.last_ack_sent + self.grace()
    }

    /// The engine acknowledged a keep-alive sent at `sent_at`, the lease alive.
    pub fn acknowledged(&mut self, sent_at: Reading) {
        self.last_ack_sent = self.last_ack_sent.max(sent_at.boot);
    }

    /// The engine confirmed, in answer to a request sent at `sent_at`, that the key is
    /// still ours. Clears a suspend only when asked after it was noticed.
    pub fn confirmed(&mut self, sent_at: Reading) {
        self.acknowledged(sent_at);
        if self
            .unconfirmed_since
            .is_some_and(|since| sent_at.boot >= since)
        {
            self.unconfirmed_since = None;
        }
    }

    /// Looks at the clocks: may the holder act at `now`?
    pub fn observe(&mut self, now: Reading) -> Standing {
        let boot_step = now.boot.saturating_sub(self.last_seen.boot);
        let monotonic_step = now.monotonic.saturating_sub(self.last_seen.monotonic);
        if boot_step.saturating_sub(monotonic_step) > SUSPEND_TOLERANCE
            && self.unconfirmed_since.is_none()
        {
            self.unconfirmed_since = Some(now.boot);
        }
        self.last_seen = now;
        self.standing_at(now.boot)
    }

    /// The standing at boot-clock time `boot`, without noting a look (for readers
    /// that only ask, such as `/healthz`).
    pub fn standing_at(&self, boot: Duration) -> Standing {
        if boot >= self.step_down_at() {
            Standing::Lapsed
        } else if self.unconfirmed_since.is_some() {
            Standing::Unconfirmed
        } else {
            Standing::Held
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{Clock, MockClock};
    use mockall::Sequence;

    const TTL: Duration = Duration::from_secs(10);

    fn at(monotonic_ms: u64, boot_ms: u64) -> Reading {
        Reading {
            monotonic: Duration::from_millis(monotonic_ms),
            boot: Duration::from_millis(boot_ms),
        }
    }

    /// A clock that returns `readings` in order, once each.
    fn clock(readings: &[Reading]) -> MockClock {
        let mut clock = MockClock::new();
        let mut order = Sequence::new();
        for reading in readings.iter().copied() {
            clock
                .expect_read()
                .once()
                .in_sequence(&mut order)
                .return_const(reading);
        }
        clock
    }

    #[test]
    fn acknowledged_keep_alives_keep_the_holder_acting() {
        let clock = clock(&[
            at(0, 0),
            at(4_000, 4_000),
            at(8_000, 8_000),
            at(12_000, 12_000),
        ]);
        let mut watch = LeaseWatch::granted(TTL, clock.read());
        for _ in 0..3 {
            let sent = clock.read();
            assert_eq!(watch.observe(sent), Standing::Held);
            watch.acknowledged(sent);
        }
        assert_eq!(watch.step_down_at(), Duration::from_millis(12_000 + 5_000));
    }

    #[test]
    fn half_the_ttl_without_an_acknowledgement_steps_down_before_the_server_expires() {
        let clock = clock(&[at(0, 0), at(4_999, 4_999), at(5_000, 5_000)]);
        let mut watch = LeaseWatch::granted(TTL, clock.read());
        assert_eq!(watch.observe(clock.read()), Standing::Held);
        assert_eq!(watch.observe(clock.read()), Standing::Lapsed);
        // The server cannot expire the lease before TTL after the request was sent.
        assert!(watch.step_down_at() < TTL);
    }

    #[test]
    fn an_acknowledgement_counts_from_when_the_keep_alive_was_sent() {
        let clock = clock(&[
            at(0, 0),
            at(1_000, 1_000),
            at(5_900, 5_900),
            at(6_000, 6_000),
        ]);
        let mut watch = LeaseWatch::granted(TTL, clock.read());
        let sent = clock.read();
        // The answer took almost five seconds to come back.
        assert_eq!(watch.observe(clock.read()), Standing::Lapsed);
        watch.acknowledged(sent);
        // It only buys half a TTL from the sending: 1 s + 5 s.
        assert_eq!(watch.observe(clock.read()), Standing::Lapsed);
    }

    #[test]
    fn a_suspend_shorter_than_the_grace_needs_the_servers_confirmation() {
        // Laptop asleep for 3 s: the boot clock jumps, the monotonic clock does not.
        let clock = clock(&[
            at(0, 0),
            at(1_000, 1_000),
            at(1_100, 4_100),
            at(1_200, 4_200),
        ]);
        let mut watch = LeaseWatch::granted(TTL, clock.read());
        let before = clock.read();
        assert_eq!(watch.observe(before), Standing::Held);
        watch.acknowledged(before);
        let woke = clock.read();
        assert_eq!(watch.observe(woke), Standing::Unconfirmed);
        // An acknowledgement is not a confirmation, nor is an answer asked for
        // before the suspend was noticed.
        watch.acknowledged(woke);
        watch.confirmed(before);
        assert_eq!(watch.standing_at(woke.boot), Standing::Unconfirmed);
        let asked = clock.read();
        watch.confirmed(asked);
        assert_eq!(watch.observe(asked), Standing::Held);
    }

    #[test]
    fn a_suspend_longer_than_the_grace_is_a_lapse_whatever_instant_says() {
        // Instant saw 200 ms pass; the machine slept for an hour.
        let clock = clock(&[at(0, 0), at(200, 3_600_000)]);
        let mut watch = LeaseWatch::granted(TTL, clock.read());
        let woke = clock.read();
        assert_eq!(watch.observe(woke), Standing::Lapsed);
        // A late confirmation sent before the freeze cannot revive it either.
        watch.confirmed(at(0, 0));
        assert_eq!(watch.standing_at(woke.boot), Standing::Lapsed);
    }

    #[test]
    fn a_stopped_process_sees_both_clocks_jump_and_lapses() {
        // SIGSTOP: both clocks run while the process does not.
        let clock = clock(&[at(0, 0), at(30_000, 30_000)]);
        let mut watch = LeaseWatch::granted(TTL, clock.read());
        assert_eq!(watch.observe(clock.read()), Standing::Lapsed);
    }

    #[test]
    fn keep_alives_are_sent_three_times_per_grace() {
        let watch = LeaseWatch::granted(TTL, at(0, 0));
        let interval = LeaseWatch::keep_alive_interval(TTL);
        assert!(interval * 3 < watch.grace() && interval * 4 >= watch.grace());
    }
}
