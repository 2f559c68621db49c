//! Slowing down token guessing: per peer address, the failures of the recent past
//! and the delay they earn (schedule in `gateway_domain::auth_delay`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gateway_domain::auth_delay::{FORGET_AFTER, delay_after};

/// Above this many remembered peers, the quiet ones are forgotten at once.
const MAX_REMEMBERED_PEERS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failed `connect` attempts by peer address. Loopback peers are included: every
/// local process and every browser page share 127.0.0.1.
#[derive(Debug, Default)]
pub(crate) struct AuthThrottle {
    peers: Mutex<HashMap<IpAddr, Failures>>,
}

impl AuthThrottle {
    /// How long to wait before answering this peer's next attempt.
    pub fn delay_for(&self, peer: IpAddr) -> Duration {
        let now = Instant::now();
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        match peers.get(&peer) {
            Some(f) if now.duration_since(f.last) > FORGET_AFTER => {
                peers.remove(&peer);
                Duration::ZERO
            }
            Some(f) => delay_after(f.count),
            None => Duration::ZERO,
        }
    }

    pub fn record_failure(&self, peer: IpAddr) {
        let now = Instant::now();
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if peers.len() >= MAX_REMEMBERED_PEERS {
            peers.retain(|_, f| now.duration_since(f.last) <= FORGET_AFTER);
        }
        let entry = peers.entry(peer).or_insert(Failures {
            count: 0,
            last: now,
        });
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }

    pub fn record_success(&self, peer: IpAddr) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_escalate_and_success_forgives() {
        let throttle = AuthThrottle::default();
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(throttle.delay_for(peer), Duration::ZERO);
        throttle.record_failure(peer);
        assert_eq!(throttle.delay_for(peer), Duration::from_millis(250));
        throttle.record_failure(peer);
        assert_eq!(throttle.delay_for(peer), Duration::from_millis(500));
        assert_eq!(throttle.delay_for(other), Duration::ZERO);
        throttle.record_success(peer);
        assert_eq!(throttle.delay_for(peer), Duration::ZERO);
    }
}
