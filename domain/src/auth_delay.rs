//! The token-failure policy: which host an attempt comes from, and when the answer to
//! a failed `connect` may be sent. The answer to a failure is delayed (250 ms after a
//! host's first failure, doubling, capped at 5 s) and a host's failures are answered
//! one at a time, so however many connections or loopback addresses a guesser uses,
//! its `unauthorized` answers come at most every 4 s once it has failed 5 times.
//! A right token is never delayed: this policy is only consulted after a failure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The first delay.
pub const FIRST_DELAY: Duration = Duration::from_millis(250);
/// The longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(5);
/// A host whose last failure was answered this long ago starts again from zero.
pub const FORGET_AFTER: Duration = Duration::from_secs(60);
/// Hosts remembered at once. Beyond it, new hosts share one [`Host::Overflow`]
/// record, so memory stays bounded however many addresses an attacker has.
pub const MAX_REMEMBERED_HOSTS: usize = 4096;
/// Failed attempts that may wait for their answer at once, over all hosts. Each
/// holds a connection; the cap keeps guessers from taking every connection slot.
pub const MAX_WAITING_ANSWERS: usize = 64;

/// The delay that the answer to a host's `failures`-th recent failure earns.
pub fn delay_after(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => FIRST_DELAY
            .saturating_mul(1u32 << (n - 1).min(8))
            .min(MAX_DELAY),
    }
}

/// Where attempts come from, as far as the delay is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host {
    /// Every address of 127.0.0.0/8 and `::1` (also as `::ffff:127.x.y.z`): one
    /// machine, whatever address a local process picks.
    Loopback,
    /// A remote IPv4 address.
    V4(u32),
    /// A remote IPv6 /64: one host (or one site) normally owns a whole /64, so
    /// rotating through it does not escape the delay.
    V6Prefix(u64),
    /// Hosts past [`MAX_REMEMBERED_HOSTS`], sharing one record.
    Overflow,
}

impl Host {
    /// The host an address belongs to.
    pub fn of(ip: IpAddr) -> Self {
        let ip = ip.to_canonical();
        if ip.is_loopback() {
            return Self::Loopback;
        }
        match ip {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => Self::V6Prefix((u128::from(v6) >> 64) as u64),
        }
    }
}

/// One host's recent failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFailures {
    /// Failures since the host was last forgotten.
    count: u32,
    /// When the answer to its latest failure is (or was) sent: the next failure's
    /// answer comes after it, which is what "one at a time" means.
    last_answer: Instant,
}

impl HostFailures {
    /// Whether the host has been quiet long enough to start again from zero: a
    /// minute since its last failure was answered. Someone else's success does not
    /// count; only time does.
    pub fn is_forgotten(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_answer) >= FORGET_AFTER
    }

    /// Recent failures.
    pub fn count(&self) -> u32 {
        self.count
    }
}

/// The failures of every host seen lately. Pure bookkeeping: the caller supplies
/// the time and does the waiting.
#[derive(Debug, Default)]
pub struct FailureBook {
    hosts: HashMap<Host, HostFailures>,
}

impl FailureBook {
    /// Records a failed attempt from `ip` at `now`; returns when its answer may be
    /// sent: after the host's previous answer, plus the delay this failure earns.
    pub fn schedule_answer(&mut self, ip: IpAddr, now: Instant) -> Instant {
        let host = self.record_for(Host::of(ip), now);
        let entry = self.hosts.entry(host).or_insert(HostFailures {
            count: 0,
            last_answer: now,
        });
        if entry.is_forgotten(now) {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        let after = entry.last_answer.max(now);
        entry.last_answer = after + delay_after(entry.count);
        entry.last_answer
    }

    /// The host's record right now, if it has failed lately.
    pub fn failures_of(&self, ip: IpAddr, now: Instant) -> Option<HostFailures> {
        let host = Host::of(ip);
        let host = if self.hosts.contains_key(&host) {
            host
        } else {
            Host::Overflow
        };
        self.hosts
            .get(&host)
            .filter(|f| !f.is_forgotten(now))
            .copied()
    }

    /// Hosts remembered (forgotten ones included until the next clean-up).
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The record `host` is kept under: its own, or the shared overflow record when
    /// the book is full even after forgetting the quiet hosts.
    fn record_for(&mut self, host: Host, now: Instant) -> Host {
        if self.hosts.contains_key(&host) || self.hosts.len() < MAX_REMEMBERED_HOSTS {
            return host;
        }
        self.hosts.retain(|_, f| !f.is_forgotten(now));
        if self.hosts.len() < MAX_REMEMBERED_HOSTS {
            host
        } else {
            Host::Overflow
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_schedule_escalates_from_250ms_to_5s() {
        let ms: Vec<u128> = (0..9).map(|n| delay_after(n).as_millis()).collect();
        assert_eq!(ms, [0, 250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(delay_after(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn every_loopback_address_is_one_host() {
        for text in [
            "127.0.0.1",
            "127.0.0.2",
            "127.255.0.9",
            "::1",
            "::ffff:127.0.0.3",
        ] {
            assert_eq!(Host::of(ip(text)), Host::Loopback, "{text}");
        }
        assert_eq!(Host::of(ip("10.0.0.1")), Host::V4(0x0a00_0001));
        assert_ne!(Host::of(ip("10.0.0.1")), Host::of(ip("10.0.0.2")));
        assert_eq!(
            Host::of(ip("2001:db8::1")),
            Host::of(ip("2001:db8::ffff:1")),
            "one /64 is one host"
        );
        assert_ne!(Host::of(ip("2001:db8::1")), Host::of(ip("2001:db8:0:1::1")));
    }

    #[test]
    fn a_first_failure_is_answered_after_250ms_and_they_escalate() {
        let mut book = FailureBook::default();
        let t0 = Instant::now();
        let first = book.schedule_answer(ip("127.0.0.1"), t0);
        assert_eq!(first - t0, Duration::from_millis(250));
        // Sent after the first answer: waits for its own, longer delay.
        let second = book.schedule_answer(ip("127.0.0.1"), first);
        assert_eq!(second - first, Duration::from_millis(500));
    }

    #[test]
    fn simultaneous_failures_are_answered_one_at_a_time_across_loopback_addresses() {
        let mut book = FailureBook::default();
        let t0 = Instant::now();
        let answers: Vec<Duration> = ["127.0.0.2", "::1", "127.0.0.9", "127.0.0.1"]
            .into_iter()
            .map(|a| book.schedule_answer(ip(a), t0) - t0)
            .collect();
        let ms: Vec<u128> = answers.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [250, 750, 1750, 3750]);
    }

    #[test]
    fn the_count_decays_only_after_a_quiet_minute() {
        let mut book = FailureBook::default();
        let t0 = Instant::now();
        let mut last = t0;
        for _ in 0..6 {
            last = book.schedule_answer(ip("127.0.0.1"), last);
        }
        assert_eq!(book.failures_of(ip("127.0.0.5"), last).unwrap().count(), 6);
        let almost = last + FORGET_AFTER - Duration::from_millis(1);
        assert!(book.failures_of(ip("127.0.0.1"), almost).is_some());
        let quiet = last + FORGET_AFTER;
        assert!(book.failures_of(ip("127.0.0.1"), quiet).is_none());
        let fresh = book.schedule_answer(ip("127.0.0.1"), quiet);
        assert_eq!(fresh - quiet, FIRST_DELAY);
    }

    #[test]
    fn other_hosts_are_not_delayed_by_a_guesser() {
        let mut book = FailureBook::default();
        let t0 = Instant::now();
        for _ in 0..10 {
            book.schedule_answer(ip("127.0.0.1"), t0);
        }
        assert_eq!(book.schedule_answer(ip("192.0.2.7"), t0) - t0, FIRST_DELAY);
    }

    #[test]
    fn past_the_cap_new_hosts_share_one_record() {
        let mut book = FailureBook::default();
        let t0 = Instant::now();
        for n in 0..MAX_REMEMBERED_HOSTS as u32 + 10 {
            book.schedule_answer(IpAddr::from((0x0a00_0000 + n).to_be_bytes()), t0);
        }
        assert_eq!(book.len(), MAX_REMEMBERED_HOSTS + 1);
        let overflow = book
            .failures_of(IpAddr::from(0x0b00_0000u32.to_be_bytes()), t0)
            .unwrap();
        assert_eq!(overflow.count(), 10);
        // Once the known hosts are quiet, new hosts get their own record again.
        let later = t0 + MAX_DELAY * 20 + FORGET_AFTER;
        book.schedule_answer(ip("192.0.2.1"), later);
        assert!(book.len() <= 2);
    }

    proptest! {
        /// However failures arrive, once a host has failed 5 times it gets at most
        /// 20 answers in any minute.
        #[test]
        fn at_most_20_answers_a_minute_after_5_failures(
            gaps_ms in proptest::collection::vec(0u64..3000, 1..80),
            addresses in proptest::collection::vec(1u8..=255, 1..80),
        ) {
            let mut book = FailureBook::default();
            let t0 = Instant::now();
            let mut now = t0;
            let mut answers = Vec::new();
            for (gap, last_octet) in gaps_ms.iter().zip(addresses.iter().cycle()) {
                now += Duration::from_millis(*gap);
                answers.push(book.schedule_answer(IpAddr::from([127, 0, 0, *last_octet]), now));
            }
            answers.sort();
            let after_fifth: Vec<Instant> = answers.iter().skip(5).copied().collect();
            for (i, start) in after_fifth.iter().enumerate() {
                let in_window = after_fifth[i..]
                    .iter()
                    .take_while(|t| t.duration_since(*start) < Duration::from_secs(60))
                    .count();
                prop_assert!(in_window <= 20, "{in_window} answers within a minute");
            }
            // Answers never overlap: each comes at least the first delay after the last.
            for pair in answers.windows(2) {
                prop_assert!(pair[1].duration_since(pair[0]) >= FIRST_DELAY);
            }
        }
    }
}
