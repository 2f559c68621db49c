//! Cluster membership (docs/reference.md#cluster): take the lock (or wait for it as
//! a standby), keep it alive, step down when it cannot be kept, lend the lease to a
//! restart's successor, and give it back when the gateway stops. The lifecycle sees
//! any of this only through [`Membership`]; a gateway on its own is [`SingleHost`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use gateway_domain::cluster::{
    Acquisition, AfterLoss, ClusterKey, ClusterLockError, HeldLock, HolderRecord, LeaseCustody,
    LeaseId, LeaseWatch, LockFault, Standing,
};
use gateway_domain::handoff::InheritedLease;
use gateway_domain::ports::{Clock, ClusterLock, RoleBoard};
use tokio::task::AbortHandle;

/// How long a standby waits before asking an unreachable engine again.
const RETRY_UNREACHABLE: Duration = Duration::from_millis(500);
/// How long the stop may spend revoking the lease (it expires anyway).
const RELEASE_PATIENCE: Duration = Duration::from_secs(2);
/// How long a step-down may spend giving back a lease that has lapsed: the engine is
/// probably unreachable, and the exit (or the next attempt) should not wait on it.
const LOST_RELEASE_PATIENCE: Duration = Duration::from_millis(500);

/// The cluster as the lifecycle sees it.
#[async_trait]
pub trait Membership: Send + Sync {
    /// Keeps the lock (and, as a standby, waits for it) until it is lost for good:
    /// resolves only when the gateway must stop (lost, without `--standby`). A
    /// gateway on its own never resolves.
    async fn until_lost(&self);

    /// The lease a restart passes to its successor, if active: lent from now on,
    /// until [`Membership::handoff_settled`].
    fn lend(&self) -> Option<InheritedLease>;

    /// A handoff's outcome: a successor that serves has the lease alone (this process
    /// never touches it again); one that failed, and is gone, gives it back.
    fn handoff_settled(&self, handed_over: bool);

    /// The stop's own step: stops keeping the lock and revokes the lease, so a standby
    /// takes over at once. Does nothing when nothing of this process's own is held
    /// (a lent or handed-over lease included). Idempotent.
    async fn release(&self);
}

/// A gateway without `--cluster-etcd`: always active, nothing to keep.
#[derive(Debug, Default, Clone, Copy)]
pub struct SingleHost;

#[async_trait]
impl Membership for SingleHost {
    async fn until_lost(&self) {
        std::future::pending().await
    }
    fn lend(&self) -> Option<InheritedLease> {
        None
    }
    fn handoff_settled(&self, _handed_over: bool) {}
    async fn release(&self) {}
}

/// What `--cluster-*` asked for.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// The name competed for.
    pub key: ClusterKey,
    /// The lease's TTL.
    pub ttl: Duration,
    /// Wait as a standby instead of refusing (and after losing the lock).
    pub standby: bool,
}

/// A member's lease, and how its keep-alives stand.
#[derive(Default)]
struct MemberState {
    /// The lease moves with a handoff; it is never shared (see `LeaseCustody`).
    custody: LeaseCustody,
    /// The keep-alive account of the term that began with the last acquisition.
    watch: Option<LeaseWatch>,
}

/// Why an active term ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Loss {
    /// No acknowledged keep-alive for half the TTL.
    Lapsed,
    /// The engine says the lease is gone.
    Expired,
    /// The engine no longer shows the key under our lease (deleted by hand, or
    /// found so after a suspend).
    NotConfirmed,
    /// The engine refuses this gateway now (its user deleted, its role changed, its
    /// certificate revoked): it can no longer vouch for the key, so it stops acting.
    Refused(String),
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Lapsed => "no keep-alive acknowledged for half the lease TTL",
            Self::Expired => "etcd says the lease has expired",
            Self::NotConfirmed => "etcd no longer shows the lock key under this lease",
            Self::Refused(fault) => fault,
        })
    }
}

#[async_trait]
impl Membership for Arc<LockMember> {
    async fn until_lost(&self) {
        let task = tokio::spawn(Arc::clone(self).keep());
        self.remember_task(task.abort_handle());
        // A task that ended by panicking counts as lost: never act unsure.
        let _ = task.await;
    }

    fn lend(&self) -> Option<InheritedLease> {
        self.lend_lease().map(|held| InheritedLease {
            id: held.lease.0,
            fencing_token: held.fencing_token,
        })
    }

    fn handoff_settled(&self, handed_over: bool) {
        if handed_over {
            self.state().custody.handed_over();
            if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
                task.abort();
            }
        } else {
            self.state().custody.reclaim();
        }
    }

    async fn release(&self) {
        self.give_back().await;
    }
}

/// One gateway competing for a key: the lock, the clock, and what is held.
pub struct LockMember {
    /// What was asked for.
    settings: ClusterSettings,
    /// What the key's value says about us.
    holder: HolderRecord,
    /// The engine.
    lock: Arc<dyn ClusterLock>,
    /// The time leases are judged by.
    clock: Arc<dyn Clock>,
    /// Shared with the server: the role, asked at each request.
    board: Arc<dyn RoleBoard>,
    /// Who may act on the lease (held, lent to a successor, handed over), and the
    /// account of the current term's keep-alives.
    state: Mutex<MemberState>,
    /// The keeping task, ended before the lease is revoked.
    task: Mutex<Option<AbortHandle>>,
}

impl LockMember {
    /// A member that holds nothing yet; `board` is where the server reads its role.
    pub fn new(
        settings: ClusterSettings,
        holder: HolderRecord,
        lock: Arc<dyn ClusterLock>,
        clock: Arc<dyn Clock>,
        board: Arc<dyn RoleBoard>,
    ) -> Self {
        Self {
            settings,
            holder,
            lock,
            clock,
            board,
            state: Mutex::new(MemberState::default()),
            task: Mutex::new(None),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemberState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lock this process acts on, and its term's keep-alive account.
    fn active(&self) -> Option<(HeldLock, LeaseWatch)> {
        let state = self.state();
        Some((state.custody.active()?, state.watch?))
    }

    /// A restart passes the lease on: lent until the handoff's outcome.
    fn lend_lease(&self) -> Option<HeldLock> {
        self.state().custody.lend()
    }

    fn remember_task(&self, task: AbortHandle) {
        *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// One attempt; the key held elsewhere or an unreachable etcd is a refusal.
    pub async fn acquire_now(&self) -> Result<(), ClusterLockError> {
        let ttl = self.settings.ttl;
        let sent = self.clock.read();
        match self
            .lock
            .try_acquire(&self.settings.key, ttl, &self.holder)
            .await?
        {
            Acquisition::Acquired(held) => {
                self.became_active(held, LeaseWatch::granted(ttl, sent));
                Ok(())
            }
            Acquisition::HeldElsewhere { holder, .. } => Err(ClusterLockError::HeldElsewhere {
                key: self.settings.key.to_string(),
                holder: holder.unwrap_or_else(unknown_holder),
            }),
        }
    }

    /// A standby's start: one attempt, so that a free key is taken at once and a
    /// configuration etcd refuses (credentials, certificates) refuses the start as
    /// it does without `--standby`. A key held elsewhere or an unreachable etcd is
    /// waited for by [`Membership::until_lost`].
    pub async fn stand_by(&self) -> Result<(), ClusterLockError> {
        match self.acquire_now().await {
            Err(refused @ ClusterLockError::Unusable { .. }) => Err(refused),
            Ok(()) | Err(_) => Ok(()),
        }
    }

    /// Takes over the lease a restart's predecessor held: one keep-alive (the lease
    /// is then good for a whole TTL from now) and a check that the key still stands
    /// under it, then active with the same fencing token. Anything else is a refusal:
    /// the predecessor keeps serving, and its lease stays its own.
    pub async fn take_over(&self, lease: InheritedLease) -> Result<(), ClusterLockError> {
        let ttl = self.settings.ttl;
        let held = HeldLock {
            lease: LeaseId(lease.id),
            fencing_token: lease.fencing_token,
        };
        let sent = self.clock.read();
        let alive = self.lock.keep_alive(held.lease, ttl / 2).await?;
        let standing = alive && self.lock.confirm(&self.settings.key, held, ttl / 2).await?;
        if !standing {
            return Err(ClusterLockError::Lost {
                key: self.settings.key.to_string(),
            });
        }
        self.became_active(held, LeaseWatch::granted(ttl, sent));
        Ok(())
    }

    /// As a standby: waits for the key to come free, retrying an unreachable etcd.
    async fn acquire_eventually(&self) {
        let key = &self.settings.key;
        let ttl = self.settings.ttl;
        let mut reported_holder = None;
        loop {
            let sent = self.clock.read();
            match self.lock.try_acquire(key, ttl, &self.holder).await {
                Ok(Acquisition::Acquired(held)) => {
                    return self.became_active(held, LeaseWatch::granted(ttl, sent));
                }
                Ok(Acquisition::HeldElsewhere { holder, revision }) => {
                    if reported_holder != Some(holder.clone()) {
                        let who = holder.clone().unwrap_or_else(unknown_holder);
                        tracing::info!(
                            "standby: \"{key}\" is active on {} (pid {}, host {})",
                            who.url,
                            who.pid,
                            who.hostname
                        );
                        reported_holder = Some(holder);
                    }
                    if let Err(fault) = self.lock.wait_for_release(key, revision, ttl).await {
                        tracing::warn!("{fault}; retrying");
                        tokio::time::sleep(RETRY_UNREACHABLE).await;
                    }
                }
                Err(fault) => {
                    tracing::warn!("{fault}; standing by and retrying");
                    reported_holder = None;
                    tokio::time::sleep(RETRY_UNREACHABLE).await;
                }
            }
        }
    }

    fn became_active(&self, held: HeldLock, watch: LeaseWatch) {
        let mut state = self.state();
        if !state.custody.acquired(held) {
            tracing::warn!("handed over: not acting on a cluster lock again");
            return;
        }
        state.watch = Some(watch);
        drop(state);
        self.board.hold(held.fencing_token, watch);
        tracing::info!(
            "cluster lock \"{}\" acquired: active (fencing token {})",
            self.settings.key,
            held.fencing_token
        );
    }

    /// The member's life: wait (standby), hold, step down; again with `--standby`.
    async fn keep(self: Arc<Self>) {
        loop {
            if self.state().custody == LeaseCustody::HandedOver {
                return std::future::pending().await;
            }
            if self.active().is_none() {
                self.acquire_eventually().await;
            }
            let Some((held, watch)) = self.active() else {
                continue;
            };
            let loss = self.hold(held, watch).await;
            self.step_down(held, &loss).await;
            if AfterLoss::for_standby(self.settings.standby) == AfterLoss::Exit {
                return;
            }
        }
    }

    /// Keeps an acquired lock alive until it is lost.
    async fn hold(&self, held: HeldLock, mut watch: LeaseWatch) -> Loss {
        let interval = LeaseWatch::keep_alive_interval(self.settings.ttl);
        let key = &self.settings.key;
        loop {
            let remaining = self.board.time_to_step_down().unwrap_or_default();
            tokio::time::sleep(interval.min(remaining)).await;
            let now = self.clock.read();
            let remaining = watch.step_down_at().saturating_sub(now.boot);
            match watch.observe(now) {
                Standing::Lapsed => return Loss::Lapsed,
                Standing::Unconfirmed => {
                    tracing::warn!("the machine was suspended; confirming the cluster lock");
                    match self.lock.confirm(key, held, remaining).await {
                        Ok(true) => watch.confirmed(now),
                        Ok(false) => return Loss::NotConfirmed,
                        Err(fault) => tracing::warn!("{fault}"),
                    }
                }
                Standing::Held => {
                    match self
                        .lock
                        .keep_alive(held.lease, interval.min(remaining))
                        .await
                    {
                        Ok(true) => watch.acknowledged(now),
                        Ok(false) => return Loss::Expired,
                        Err(fault @ LockFault::Unusable { .. }) => {
                            return Loss::Refused(fault.to_string());
                        }
                        Err(fault) => tracing::warn!("keep-alive failed: {fault}"),
                    }
                    // A live lease is not a held key: someone may have deleted it.
                    let remaining = watch.step_down_at().saturating_sub(now.boot);
                    match self.lock.confirm(key, held, interval.min(remaining)).await {
                        Ok(true) | Err(LockFault::Unreachable { .. }) => {}
                        Ok(false) => return Loss::NotConfirmed,
                        Err(fault @ LockFault::Unusable { .. }) => {
                            return Loss::Refused(fault.to_string());
                        }
                    }
                }
            }
            self.board.hold(held.fencing_token, watch);
        }
    }

    /// Ends an active term: sessions are told, the lease is given back when etcd
    /// answers (it has lapsed anyway), and the role turns standby.
    async fn step_down(&self, held: HeldLock, loss: &Loss) {
        self.board.step_down();
        let own = self.state().custody.lost();
        tracing::warn!(
            "cluster lock lost ({loss}); fencing token {} is no longer valid",
            held.fencing_token
        );
        // A lease lent to (or handed to) a successor is its business, not ours.
        if let Some(own) = own {
            let _ = self.lock.release(own, LOST_RELEASE_PATIENCE).await;
        }
        if self.settings.standby {
            tracing::info!("back to standby");
        }
    }

    async fn give_back(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
        let Some(held) = self.state().custody.release() else {
            return;
        };
        self.board.step_down();
        match self.lock.release(held, RELEASE_PATIENCE).await {
            Ok(()) => tracing::info!("cluster lock released (lease revoked)"),
            Err(fault) => tracing::warn!("{fault}; the lease will expire after its TTL"),
        }
    }
}

/// A holder whose record cannot be read (the key was written by something else).
fn unknown_holder() -> HolderRecord {
    HolderRecord {
        url: "an unknown address".to_owned(),
        pid: 0,
        hostname: "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_domain::ExitCode;
    use gateway_domain::cluster::{Reading, Role};
    use mockall::mock;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The server's side of the role, as a test sees it: active only while the lease
    /// is certainly held, judged at the moment of asking (as the real gate does).
    struct Board {
        clock: Arc<dyn Clock>,
        held: Mutex<Option<(u64, LeaseWatch)>>,
    }

    impl RoleBoard for Board {
        fn hold(&self, fencing_token: u64, watch: LeaseWatch) {
            *self.held.lock().unwrap() = Some((fencing_token, watch));
        }
        fn step_down(&self) {
            *self.held.lock().unwrap() = None;
        }
        fn time_to_step_down(&self) -> Option<Duration> {
            let now = self.clock.read().boot;
            let held = *self.held.lock().unwrap();
            held.map(|(_, watch)| watch.step_down_at().saturating_sub(now))
        }
    }

    impl Board {
        fn token(&self) -> Option<u64> {
            let now = self.clock.read().boot;
            let held = *self.held.lock().unwrap();
            held.filter(|(_, watch)| watch.standing_at(now) == Standing::Held)
                .map(|(token, _)| token)
        }
        fn role(&self) -> Role {
            match self.token() {
                Some(_) => Role::Active,
                None => Role::Standby,
            }
        }
    }

    /// A member on `lock` with a board the test can read.
    fn member(
        standby: bool,
        lock: MockLock,
        clock: Arc<dyn Clock>,
    ) -> (Arc<LockMember>, Arc<Board>) {
        let board = Arc::new(Board {
            clock: Arc::clone(&clock),
            held: Mutex::new(None),
        });
        let member = LockMember::new(
            settings(standby),
            holder(),
            Arc::new(lock),
            clock,
            board.clone(),
        );
        (Arc::new(member), board)
    }

    mock! {
        Lock {}
        #[async_trait]
        impl ClusterLock for Lock {
            async fn try_acquire(&self, key: &ClusterKey, ttl: Duration, holder: &HolderRecord)
                -> Result<Acquisition, LockFault>;
            async fn wait_for_release(&self, key: &ClusterKey, revision: i64, patience: Duration)
                -> Result<(), LockFault>;
            async fn keep_alive(&self, lease: LeaseId, patience: Duration) -> Result<bool, LockFault>;
            async fn confirm(&self, key: &ClusterKey, held: HeldLock, patience: Duration)
                -> Result<bool, LockFault>;
            async fn release(&self, held: HeldLock, patience: Duration) -> Result<(), LockFault>;
        }
    }

    const TTL: Duration = Duration::from_secs(10);
    const HELD: HeldLock = HeldLock {
        lease: LeaseId(7),
        fencing_token: 41,
    };

    /// Tokio's (paused) time as both clocks, plus a suspend that only the boot
    /// clock sees, set by hand: a laptop lid closed.
    struct PausedClock {
        origin: tokio::time::Instant,
        suspended_ms: AtomicU64,
    }

    impl PausedClock {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                origin: tokio::time::Instant::now(),
                suspended_ms: AtomicU64::new(0),
            })
        }
    }

    impl Clock for PausedClock {
        fn read(&self) -> Reading {
            let monotonic = self.origin.elapsed();
            let suspended = Duration::from_millis(self.suspended_ms.load(Ordering::SeqCst));
            Reading {
                monotonic,
                boot: monotonic + suspended,
            }
        }
    }

    fn settings(standby: bool) -> ClusterSettings {
        ClusterSettings {
            key: ClusterKey::parse("k").unwrap(),
            ttl: TTL,
            standby,
        }
    }

    fn holder() -> HolderRecord {
        HolderRecord {
            url: "ws://127.0.0.1:4000".into(),
            pid: 1,
            hostname: "here".into(),
        }
    }

    fn unreachable() -> LockFault {
        LockFault::Unreachable {
            url: "http://127.0.0.1:1".into(),
            reason: "connection refused".into(),
        }
    }

    fn refusal() -> LockFault {
        LockFault::Unusable {
            url: "https://127.0.0.1:1".into(),
            reason: "etcdserver: permission denied".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_active_member_that_etcd_starts_refusing_steps_down_at_once() {
        let mut lock = MockLock::new();
        lock.expect_keep_alive().returning(|_, _| Ok(true));
        lock.expect_confirm().returning(|_, _, _| Err(refusal()));
        let clock = PausedClock::new();
        let (membership, _board) = holding(lock, clock.clone());
        let watch = membership.active().unwrap().1;

        let loss = membership.hold(HELD, watch).await;

        assert_eq!(loss, Loss::Refused(refusal().to_string()));
        assert!(clock.origin.elapsed() < TTL / 2, "before the lease lapses");
    }

    #[tokio::test(start_paused = true)]
    async fn a_standby_start_is_refused_only_by_a_refusal_not_by_an_unreachable_etcd() {
        let mut refusing = MockLock::new();
        refusing
            .expect_try_acquire()
            .returning(|_, _, _| Err(refusal()));
        let (member_refused, _) = member(true, refusing, PausedClock::new());
        let error = member_refused.stand_by().await.unwrap_err();
        assert_eq!(error.exit_code(), ExitCode::Refused);

        let mut unreachable_lock = MockLock::new();
        unreachable_lock
            .expect_try_acquire()
            .returning(|_, _, _| Err(unreachable()));
        let (member_waiting, board) = member(true, unreachable_lock, PausedClock::new());
        assert!(member_waiting.stand_by().await.is_ok());
        assert_eq!(board.role(), Role::Standby);
    }

    /// A member that holds the lock from now on, and its board.
    fn holding(lock: MockLock, clock: Arc<PausedClock>) -> (Arc<LockMember>, Arc<Board>) {
        let (member, board) = member(false, lock, clock);
        let watch = LeaseWatch::granted(TTL, member.clock.read());
        member.became_active(HELD, watch);
        (member, board)
    }

    #[tokio::test(start_paused = true)]
    async fn unacknowledged_keep_alives_step_down_after_half_the_ttl_not_later() {
        let mut lock = MockLock::new();
        lock.expect_keep_alive()
            .times(3..)
            .returning(|_, _| Err(unreachable()));
        lock.expect_confirm()
            .returning(|_, _, _| Err(unreachable()));
        let clock = PausedClock::new();
        let (membership, board) = holding(lock, clock.clone());
        assert_eq!(board.role(), Role::Active);
        let watch = membership.active().unwrap().1;

        let loss = membership.hold(HELD, watch).await;

        assert_eq!(loss, Loss::Lapsed);
        let elapsed = clock.origin.elapsed();
        assert!(elapsed >= TTL / 2 && elapsed < TTL, "{elapsed:?}");
        assert_eq!(board.role(), Role::Standby);
    }

    #[tokio::test(start_paused = true)]
    async fn acknowledged_keep_alives_keep_it_active_past_the_ttl() {
        let mut lock = MockLock::new();
        let calls = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&calls);
        // Acknowledged for 3 TTLs, then the server says the lease is gone.
        lock.expect_keep_alive().returning(move |lease, _| {
            assert_eq!(lease, HELD.lease);
            Ok(counted.fetch_add(1, Ordering::SeqCst) < 24)
        });
        let clock = PausedClock::new();
        lock.expect_confirm().returning(|_, _, _| Ok(true));
        let (membership, _board) = holding(lock, clock.clone());
        let watch = membership.active().unwrap().1;

        let loss = membership.hold(HELD, watch).await;

        assert_eq!(loss, Loss::Expired);
        assert!(clock.origin.elapsed() >= TTL * 3);
        assert_eq!(calls.load(Ordering::SeqCst), 25);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_suspend_it_asks_the_server_before_acting_again() {
        let clock = PausedClock::new();
        let mut lock = MockLock::new();
        let lid = clock.clone();
        // The first keep-alive is acknowledged, then the machine sleeps 2 s.
        lock.expect_keep_alive().times(1).returning(move |_, _| {
            lid.suspended_ms.store(2_000, Ordering::SeqCst);
            Ok(true)
        });
        // The routine check after the keep-alive finds the key; the one after the
        // suspend does not.
        let confirms = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&confirms);
        lock.expect_confirm().times(2).returning(move |_, held, _| {
            assert_eq!(held, HELD);
            Ok(counted.fetch_add(1, Ordering::SeqCst) == 0)
        });
        let (membership, _board) = holding(lock, clock.clone());
        let watch = membership.active().unwrap().1;

        assert_eq!(membership.hold(HELD, watch).await, Loss::NotConfirmed);
    }

    /// Issue 17's interleaving: the lease is lent to a restart's successor, this
    /// process freezes (no keep-alive acknowledged for half the TTL), the successor
    /// takes over; when this process wakes it steps down without revoking the lease,
    /// and once the handoff is settled it never acts on the lock again.
    #[tokio::test(start_paused = true)]
    async fn a_frozen_process_that_lent_its_lease_never_revokes_it() {
        let mut lock = MockLock::new();
        lock.expect_keep_alive()
            .returning(|_, _| Err(unreachable()));
        lock.expect_confirm()
            .returning(|_, _, _| Err(unreachable()));
        lock.expect_release().times(0);
        lock.expect_try_acquire().times(0);
        let (membership, board) = holding(lock, PausedClock::new());
        assert_eq!(
            Membership::lend(&membership),
            Some(InheritedLease {
                id: HELD.lease.0,
                fencing_token: HELD.fencing_token
            })
        );

        // Frozen: the watch lapses and the member steps down.
        let watch = membership.active().unwrap().1;
        let loss = membership.hold(HELD, watch).await;
        assert_eq!(loss, Loss::Lapsed);
        membership.step_down(HELD, &loss).await;
        // The successor serves; then a stop, or anything else, finds nothing to revoke.
        membership.handoff_settled(true);
        Membership::release(&membership).await;
        assert_eq!(membership.active(), None);
        assert_eq!(board.role(), Role::Standby);
    }

    #[tokio::test(start_paused = true)]
    async fn a_handed_over_process_never_becomes_active_again() {
        let mut lock = MockLock::new();
        lock.expect_release().times(0);
        let (membership, _board) = holding(lock, PausedClock::new());
        let _ = Membership::lend(&membership);
        membership.handoff_settled(true);
        // A late acquisition (a standby loop that was mid-way) is not acted on.
        membership.became_active(HELD, LeaseWatch::granted(TTL, membership.clock.read()));
        assert_eq!(membership.active(), None);
        Membership::release(&membership).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_handoff_gives_the_lease_back_to_the_stop() {
        let mut lock = MockLock::new();
        lock.expect_release()
            .times(1)
            .withf(|held, _| *held == HELD)
            .returning(|_, _| Ok(()));
        let (membership, _board) = holding(lock, PausedClock::new());
        let _ = Membership::lend(&membership);
        membership.handoff_settled(false);
        Membership::release(&membership).await;
    }

    #[tokio::test(start_paused = true)]
    async fn without_standby_a_key_held_elsewhere_is_refused_with_78() {
        let mut lock = MockLock::new();
        lock.expect_try_acquire().times(1).returning(|_, _, _| {
            Ok(Acquisition::HeldElsewhere {
                holder: Some(HolderRecord {
                    url: "ws://127.0.0.1:5000".into(),
                    pid: 9,
                    hostname: "there".into(),
                }),
                revision: 3,
            })
        });
        let (membership, board) = member(false, lock, PausedClock::new());
        let refusal = membership.acquire_now().await.unwrap_err();
        assert_eq!(refusal.exit_code(), ExitCode::Refused);
        assert!(refusal.headline().ends_with("(pid 9, host there)"));
        assert_eq!(board.role(), Role::Standby);
    }

    #[tokio::test(start_paused = true)]
    async fn a_standby_retries_an_unreachable_engine_then_waits_for_the_key() {
        let mut lock = MockLock::new();
        let attempts = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&attempts);
        lock.expect_try_acquire().returning(move |_, _, _| {
            match counted.fetch_add(1, Ordering::SeqCst) {
                0 => Err(unreachable()),
                1 => Ok(Acquisition::HeldElsewhere {
                    holder: None,
                    revision: 5,
                }),
                _ => Ok(Acquisition::Acquired(HELD)),
            }
        });
        lock.expect_wait_for_release()
            .times(1)
            .returning(|_, revision, _| {
                assert_eq!(revision, 5);
                Ok(())
            });
        let (membership, board) = member(true, lock, PausedClock::new());
        membership.acquire_eventually().await;
        assert_eq!(board.token(), Some(41));
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
    }
}
