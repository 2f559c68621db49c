//! Holding back the answer to a failed `connect` until the policy allows it
//! (`gateway_domain::auth_delay`): the book of failures behind a lock, and a cap on
//! how many failed attempts may wait at once, so waiting stays cheap and bounded.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

use gateway_domain::auth_delay::FailureBook;

/// Failed `connect` attempts by host, and the answers still waiting.
#[derive(Debug)]
pub(crate) struct AuthThrottle {
    /// Every host's recent failures.
    book: Mutex<FailureBook>,
    /// Failed attempts waiting for their answer now, shared with their tickets.
    waiting: Arc<AtomicUsize>,
    /// Most attempts that may wait at once; past it an attempt is not queued.
    max_waiting: usize,
}

/// A failed attempt's place in its host's queue: answer it at `answer_at`. It counts
/// against the waiting cap until dropped.
#[derive(Debug)]
pub(crate) struct AnswerTicket {
    pub answer_at: Instant,
    waiting: Arc<AtomicUsize>,
}

impl Drop for AnswerTicket {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AuthThrottle {
    pub fn new(max_waiting: usize) -> Self {
        Self {
            book: Mutex::new(FailureBook::default()),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
        }
    }

    /// Records a failed attempt from `peer` and says when to answer it, or `None`
    /// when too many failed attempts already wait: that one is turned away without
    /// an answer and without entering its host's queue.
    pub fn schedule_failure(&self, peer: IpAddr) -> Option<AnswerTicket> {
        let taken = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_waiting).then_some(n + 1)
            });
        if taken.is_err() {
            return None;
        }
        // The domain's book keeps std's clock; tokio's (paused in tests) is read and
        // waited on here.
        let answer_at = self
            .book
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .schedule_answer(peer, Instant::now().into_std());
        Some(AnswerTicket {
            answer_at: Instant::from_std(answer_at),
            waiting: Arc::clone(&self.waiting),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn failures_from_any_loopback_address_queue_behind_each_other() {
        let throttle = AuthThrottle::new(8);
        let start = Instant::now();
        let first = throttle
            .schedule_failure("127.0.0.1".parse().unwrap())
            .unwrap();
        let second = throttle
            .schedule_failure("127.0.0.7".parse().unwrap())
            .unwrap();
        assert!(first.answer_at >= start + Duration::from_millis(250));
        assert!(second.answer_at >= first.answer_at + Duration::from_millis(500));
    }

    #[test]
    fn past_the_waiting_cap_an_attempt_is_turned_away_until_one_is_answered() {
        let throttle = AuthThrottle::new(2);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let first = throttle.schedule_failure(peer).unwrap();
        let _second = throttle.schedule_failure(peer).unwrap();
        assert!(throttle.schedule_failure(peer).is_none());
        drop(first);
        assert!(throttle.schedule_failure(peer).is_some());
    }
}
