//! What the server asks before acting: is this gateway the active one, right now?
//!
//! The cluster membership (gateway-core) writes the role and the lease's step-down deadline; the
//! server reads them on every `/healthz`, `/readyz`, upgrade and WebSocket request.
//! The deadline is checked against the clock at the moment of asking, so a process
//! that wakes from SIGSTOP or a suspend answers "standby" from its first request on,
//! before its own keep-alive task has even run.

use gateway_domain::ports::Clock;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gateway_domain::cluster::{ClusterView, LeaseWatch, Role, Standing};
use gateway_domain::ports::RoleBoard;
use tokio_util::sync::CancellationToken;

/// The role of a clustered gateway, shared by the cluster task and the server.
pub struct ClusterGate {
    /// `--cluster-key`, for `/healthz`.
    key: String,
    /// The clock the lease is judged by.
    clock: Arc<dyn Clock>,
    /// The current term: written by the cluster task, read by every request.
    term: Mutex<Term>,
}

impl std::fmt::Debug for ClusterGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterGate")
            .field("key", &self.key)
            .field("seat", &self.seat())
            .finish_non_exhaustive()
    }
}

/// One stretch of being active (or the standby between them).
struct Term {
    /// `Some` while this gateway holds the lock: the token and the lease account.
    held: Option<(u64, LeaseWatch)>,
    /// Fired when the term ends: every WebSocket session of the term says goodbye.
    lost: CancellationToken,
}

/// The answer to "may I act?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seat {
    pub role: Role,
    /// The fencing token while active.
    pub fencing_token: Option<u64>,
}

impl ClusterGate {
    /// A gate in standby: nothing is held yet.
    pub fn new(key: String, clock: Arc<dyn Clock>) -> Self {
        Self {
            key,
            clock,
            term: Mutex::new(Term {
                held: None,
                lost: CancellationToken::new(),
            }),
        }
    }

    fn term(&self) -> MutexGuard<'_, Term> {
        // A panic while holding this short lock leaves plain data behind: keep going.
        self.term
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The role at this instant: active only while the lease is certainly held.
    pub fn seat(&self) -> Seat {
        let now = self.clock.read();
        match &self.term().held {
            Some((token, watch)) if watch.standing_at(now.boot) == Standing::Held => Seat {
                role: Role::Active,
                fencing_token: Some(*token),
            },
            _ => Seat {
                role: Role::Standby,
                fencing_token: None,
            },
        }
    }

    /// The `cluster` object of `/healthz`, for `seat`.
    pub fn view(&self, seat: Seat) -> ClusterView<'_> {
        ClusterView::new(&self.key, seat.role, seat.fencing_token)
    }

    /// The signal a new WebSocket session watches, when this gateway is active; `None`
    /// (refuse the session) otherwise.
    pub fn session_signal(&self) -> Option<(u64, CancellationToken)> {
        let now = self.clock.read();
        let term = self.term();
        match &term.held {
            Some((token, watch)) if watch.standing_at(now.boot) == Standing::Held => {
                Some((*token, term.lost.clone()))
            }
            _ => None,
        }
    }

    /// The cluster task took the lock, or renewed its account of the lease.
    pub fn hold(&self, fencing_token: u64, watch: LeaseWatch) {
        self.term().held = Some((fencing_token, watch));
    }

    /// The lock is lost (or given up): sessions of the ending term say goodbye with
    /// `cluster lock lost`, and a new standby term begins.
    pub fn step_down(&self) {
        let mut term = self.term();
        term.held = None;
        let ended = std::mem::take(&mut term.lost);
        drop(term);
        ended.cancel();
    }

    /// The time left before the held lease must be given up, if one is held.
    pub fn time_to_step_down(&self) -> Option<Duration> {
        let now = self.clock.read();
        self.term()
            .held
            .as_ref()
            .map(|(_, watch)| watch.step_down_at().saturating_sub(now.boot))
    }
}

/// The membership writes the role here (the domain's port); the server reads it.
impl RoleBoard for ClusterGate {
    fn hold(&self, fencing_token: u64, watch: LeaseWatch) {
        ClusterGate::hold(self, fencing_token, watch);
    }
    fn step_down(&self) {
        ClusterGate::step_down(self);
    }
    fn time_to_step_down(&self) -> Option<Duration> {
        ClusterGate::time_to_step_down(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_domain::cluster::Reading;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A clock moved by hand: both clocks together, as a stopped process sees them.
    #[derive(Default)]
    struct HandClock(AtomicU64);

    impl Clock for HandClock {
        fn read(&self) -> Reading {
            let now = Duration::from_millis(self.0.load(Ordering::SeqCst));
            Reading {
                monotonic: now,
                boot: now,
            }
        }
    }

    #[test]
    fn a_holder_past_its_grace_is_standby_before_anyone_tells_it() {
        let clock = Arc::new(HandClock::default());
        let gate = ClusterGate::new("k".into(), clock.clone());
        assert_eq!(gate.seat().role, Role::Standby);
        gate.hold(7, LeaseWatch::granted(Duration::from_secs(2), clock.read()));
        assert_eq!(gate.seat().fencing_token, Some(7));
        assert!(gate.session_signal().is_some());
        clock.0.store(1_000, Ordering::SeqCst); // half the TTL, frozen
        assert_eq!(gate.seat().role, Role::Standby);
        assert!(gate.session_signal().is_none());
    }

    #[test]
    fn stepping_down_ends_the_sessions_of_the_term_only() {
        let clock = Arc::new(HandClock::default());
        let gate = ClusterGate::new("k".into(), clock.clone());
        gate.hold(
            1,
            LeaseWatch::granted(Duration::from_secs(10), clock.read()),
        );
        let (_, first) = gate.session_signal().unwrap();
        gate.step_down();
        assert!(first.is_cancelled());
        gate.hold(
            2,
            LeaseWatch::granted(Duration::from_secs(10), clock.read()),
        );
        let (token, second) = gate.session_signal().unwrap();
        assert_eq!(token, 2);
        assert!(!second.is_cancelled());
    }
}
