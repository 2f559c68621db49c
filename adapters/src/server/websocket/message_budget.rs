//! The memory all connections together may hold for messages still arriving
//! (`--max-buffered-mb`): each frame's declared payload is reserved here before
//! tungstenite buffers it, and released when its message ends or its connection does.
//! Messages of at most [`UNCOUNTED_MESSAGE`] bytes (every `connect` among them) are
//! not counted: the connection cap bounds them, and clients holding the budget with
//! big messages must not keep anyone from connecting or from sending small requests.

use std::sync::atomic::{AtomicUsize, Ordering};

use gateway_domain::protocol::MAX_HANDSHAKE_PAYLOAD;

/// Largest message that never counts against the budget: the size of a `connect`.
pub(crate) const UNCOUNTED_MESSAGE: u64 = MAX_HANDSHAKE_PAYLOAD as u64;

/// What a message whose payload so far is `payload` bytes counts against the budget:
/// nothing while it could still be a small message, all of it once it is bigger.
pub(crate) fn counted(payload: u64) -> u64 {
    if payload <= UNCOUNTED_MESSAGE {
        0
    } else {
        payload
    }
}

/// Bytes reserved by messages in progress, against a fixed capacity.
#[derive(Debug)]
pub(crate) struct MessageBudget {
    /// Most bytes all messages in progress may reserve together.
    capacity: usize,
    /// Bytes reserved now.
    used: AtomicUsize,
}

impl MessageBudget {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            used: AtomicUsize::new(0),
        }
    }

    /// Reserves `bytes`, or returns `false` (reserving nothing) when that would
    /// take the total over the capacity.
    pub fn try_reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|total| *total <= self.capacity)
            })
            .is_ok()
    }

    /// Reserves what a message growing from `from` to `to` bytes of payload newly
    /// counts (see [`counted`]): the bytes reserved (`Some(0)` for a small message),
    /// or `None` (reserving nothing) when that would take the total over the capacity.
    pub fn try_grow(&self, from: u64, to: u64) -> Option<usize> {
        let more = usize::try_from(counted(to) - counted(from)).ok()?;
        (more == 0 || self.try_reserve(more)).then_some(more)
    }

    /// Gives back `bytes` reserved earlier.
    pub fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Bytes reserved now.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_capacity_and_come_back_on_release() {
        let budget = MessageBudget::new(10);
        assert!(budget.try_reserve(6));
        assert!(!budget.try_reserve(5));
        assert!(budget.try_reserve(4));
        assert!(!budget.try_reserve(1));
        assert!(!budget.try_reserve(usize::MAX));
        budget.release(6);
        assert_eq!(budget.used(), 4);
        assert!(budget.try_reserve(5));
    }

    #[test]
    fn a_message_of_at_most_64_kib_never_counts() {
        assert_eq!(counted(0), 0);
        assert_eq!(counted(64 * 1024), 0);
        assert_eq!(counted(64 * 1024 + 1), 64 * 1024 + 1);
        assert_eq!(counted(1 << 20), 1 << 20);
    }

    #[test]
    fn a_full_budget_still_lets_small_messages_through() {
        let budget = MessageBudget::new(1 << 20);
        assert_eq!(budget.try_grow(0, 1 << 20), Some(1 << 20));
        for step in 0..64 {
            let from = step * 1024;
            assert_eq!(budget.try_grow(from, from + 1024), Some(0));
        }
        assert_eq!(budget.used(), 1 << 20);
        // ...but the byte past 64 KiB makes it a big message, counted whole.
        assert_eq!(budget.try_grow(64 * 1024, 64 * 1024 + 1), None);
    }

    #[test]
    fn a_message_growing_past_64_kib_reserves_all_of_it_at_once() {
        let budget = MessageBudget::new(1 << 20);
        assert_eq!(budget.try_grow(0, 60 * 1024), Some(0));
        assert_eq!(budget.try_grow(60 * 1024, 70 * 1024), Some(70 * 1024));
        assert_eq!(budget.try_grow(70 * 1024, 80 * 1024), Some(10 * 1024));
        assert_eq!(budget.used(), 80 * 1024);
    }
}
