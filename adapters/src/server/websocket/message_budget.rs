//! The memory all connections together may hold for messages still arriving
//! (`--max-buffered-mb`): each frame's declared payload is reserved here before
//! tungstenite buffers it, and released when its message ends or its connection does.

use std::sync::atomic::{AtomicUsize, Ordering};

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
}
