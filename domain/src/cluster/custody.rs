//! Who may act on the cluster lease (docs/reference.md#cluster): this process, the successor
//! it lent the lease to during a restart, or nobody here any more. A lease moves with
//! a handoff, it is never shared: once lent, this process may keep it alive (harmless,
//! and needed if the successor fails) but never revokes it; once handed over, it has
//! nothing left that can touch the lease or the key, and it never becomes active again.

use super::lock::HeldLock;

/// The custody of the cluster lease in one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeaseCustody {
    /// Nothing held (a standby, or after a loss).
    #[default]
    Free,
    /// Held by this process, active.
    Held(HeldLock),
    /// Passed to a successor that has not yet said it serves: this process may still
    /// be the active one, but revoking would pull the lease from under the successor.
    Lent(HeldLock),
    /// A successor serves with the lease: this process is done with the cluster.
    HandedOver,
}

impl LeaseCustody {
    /// A lock was taken (or taken over). Refused once handed over: a process that
    /// let go never acts as active again. Returns whether it may act on it.
    pub fn acquired(&mut self, held: HeldLock) -> bool {
        if *self == Self::HandedOver {
            return false;
        }
        *self = Self::Held(held);
        true
    }

    /// The lease a restart passes to its successor, if this process holds one; it
    /// is then lent until [`Self::reclaim`] or [`Self::handed_over`].
    pub fn lend(&mut self) -> Option<HeldLock> {
        match *self {
            Self::Held(held) => {
                *self = Self::Lent(held);
                Some(held)
            }
            _ => None,
        }
    }

    /// The successor failed and is gone: the lease is this process's again.
    pub fn reclaim(&mut self) {
        if let Self::Lent(held) = *self {
            *self = Self::Held(held);
        }
    }

    /// The successor serves: the lease is its alone.
    pub fn handed_over(&mut self) {
        *self = Self::HandedOver;
    }

    /// The lock was lost (lapsed, expired, not confirmed): the lease to give back,
    /// only if it is still this process's own. A lent lease is left alone: the
    /// successor may be keeping it.
    pub fn lost(&mut self) -> Option<HeldLock> {
        let to_release = match *self {
            Self::Held(held) => Some(held),
            _ => None,
        };
        if *self != Self::HandedOver {
            *self = Self::Free;
        }
        to_release
    }

    /// The lease a stop revokes: only one that is this process's own.
    pub fn release(&mut self) -> Option<HeldLock> {
        self.lost()
    }

    /// The lock this process acts on as the active gateway, if any (held or lent:
    /// until the successor serves, this process is still the active one).
    pub fn active(&self) -> Option<HeldLock> {
        match *self {
            Self::Held(held) | Self::Lent(held) => Some(held),
            Self::Free | Self::HandedOver => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::LeaseId;
    use proptest::prelude::*;

    const HELD: HeldLock = HeldLock {
        lease: LeaseId(7),
        fencing_token: 27,
    };

    #[test]
    fn a_held_lease_is_released_by_a_stop() {
        let mut custody = LeaseCustody::default();
        assert!(custody.acquired(HELD));
        assert_eq!(custody.release(), Some(HELD));
        assert_eq!(custody, LeaseCustody::Free);
    }

    #[test]
    fn a_lent_lease_is_never_released_by_a_step_down_or_a_stop() {
        let mut custody = LeaseCustody::Held(HELD);
        assert_eq!(custody.lend(), Some(HELD));
        assert_eq!(custody.lost(), None, "the successor may be keeping it");
        let mut stopping = LeaseCustody::Lent(HELD);
        assert_eq!(stopping.release(), None);
    }

    #[test]
    fn a_failed_handoff_gives_the_lease_back() {
        let mut custody = LeaseCustody::Held(HELD);
        custody.lend();
        custody.reclaim();
        assert_eq!(custody.release(), Some(HELD));
    }

    #[test]
    fn once_handed_over_nothing_touches_the_lease_and_it_is_never_active_again() {
        let mut custody = LeaseCustody::Held(HELD);
        custody.lend();
        custody.handed_over();
        assert_eq!(custody.lost(), None);
        assert_eq!(custody.release(), None);
        custody.reclaim();
        assert_eq!(custody.active(), None);
        assert!(!custody.acquired(HELD));
        assert_eq!(custody, LeaseCustody::HandedOver);
    }

    #[test]
    fn a_standby_has_nothing_to_lend() {
        let mut custody = LeaseCustody::Free;
        assert_eq!(custody.lend(), None);
        assert_eq!(custody.release(), None);
    }

    #[derive(Debug, Clone, Copy)]
    enum Step {
        Acquire,
        Lend,
        Reclaim,
        HandOver,
        Lose,
        Release,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            Just(Step::Acquire),
            Just(Step::Lend),
            Just(Step::Reclaim),
            Just(Step::HandOver),
            Just(Step::Lose),
            Just(Step::Release),
        ]
    }

    proptest! {
        /// Whatever happens after a handoff completes (a frozen process waking, a
        /// stop, a step-down, a new attempt), the lease is never given back by this
        /// process and it never acts as active.
        #[test]
        fn after_a_handover_no_sequence_touches_the_lease(
            before in proptest::collection::vec(step(), 0..8),
            after in proptest::collection::vec(step(), 0..16),
        ) {
            let mut custody = LeaseCustody::default();
            for step in before {
                apply(&mut custody, step);
            }
            custody.handed_over();
            for step in after {
                let released = apply(&mut custody, step);
                prop_assert_eq!(released, None);
                prop_assert_eq!(custody.active(), None);
            }
        }

        /// A lease lent and not reclaimed is never released, whatever else happens
        /// short of acquiring a new one.
        #[test]
        fn a_lent_lease_is_never_released(
            steps in proptest::collection::vec(
                prop_oneof![Just(Step::Lose), Just(Step::Release), Just(Step::Lend)], 0..8),
        ) {
            let mut custody = LeaseCustody::Held(HELD);
            custody.lend();
            for step in steps {
                prop_assert_eq!(apply(&mut custody, step), None);
            }
        }
    }

    fn apply(custody: &mut LeaseCustody, step: Step) -> Option<HeldLock> {
        match step {
            Step::Acquire => {
                custody.acquired(HELD);
                None
            }
            Step::Lend => {
                custody.lend();
                None
            }
            Step::Reclaim => {
                custody.reclaim();
                None
            }
            Step::HandOver => {
                custody.handed_over();
                None
            }
            Step::Lose => custody.lost(),
            Step::Release => custody.release(),
        }
    }
}
