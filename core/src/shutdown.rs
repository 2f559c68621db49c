//! The stop sequence (docs/reference.md#stopping), in its order, under one deadline;
//! and the letting go after a handoff (docs/reference.md#restart).

use gateway_domain::ports::{ServiceNotifier, ServingGateway};
use std::time::Duration;

use gateway_domain::protocol::goodbye::{self, Goodbye};

use tokio::time::Instant;

use crate::membership::Membership;

/// How a graceful stop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// Every step finished in time.
    Clean,
    /// The deadline passed; what was left was dropped.
    TimedOut,
}

/// Runs the stop steps in order within `deadline`.
#[derive(Debug, Clone, Copy)]
pub struct ShutdownSequence {
    /// The `--shutdown-timeout`: the whole stop, all steps together.
    pub deadline: Duration,
}

impl ShutdownSequence {
    /// A stop: readiness off and `STOPPING=1`, then `goodbye` to the WebSocket
    /// clients, then the cluster lease revoked (a standby takes over at once), then
    /// the HTTP connections, then the listeners. The lease and the listeners are
    /// released even when the deadline passed, so the port is always free and the key
    /// never outlives the stop when this returns.
    pub async fn run(
        &self,
        gateway: &dyn ServingGateway,
        notifier: &dyn ServiceNotifier,
        membership: &dyn Membership,
        goodbye: Goodbye,
    ) -> StopOutcome {
        let began = Instant::now();
        let drain = async {
            gateway.stop_accepting_work();
            notifier.stopping();
            gateway.close_websockets(goodbye).await;
            tracing::debug!(elapsed = ?began.elapsed(), "websocket clients closed");
            membership.release().await;
            gateway.close_http().await;
            tracing::debug!(elapsed = ?began.elapsed(), "http connections closed");
        };
        let finished = tokio::time::timeout(self.deadline, drain).await.is_ok();
        // Both idempotent: done already when the drain finished in time.
        membership.release().await;
        gateway.release_listeners().await;
        self.report(finished, began, "gateway stopped; port released")
    }

    /// Letting go after a handoff: the successor already serves on the same sockets,
    /// so the listeners close *first* (a queued connection stays queued for the
    /// successor), then the WebSocket sessions move to the successor (contract
    /// section 6, "Sessions move with the restart"), then those left hear `gateway restarting` and close
    /// 1012, then the HTTP connections finish. Readiness never turns off, nothing is
    /// said to the service manager, and the cluster lease is not touched: the
    /// successor is the service now, and the lease is its own.
    pub async fn hand_over(&self, gateway: &dyn ServingGateway) -> StopOutcome {
        let began = Instant::now();
        gateway.release_listeners().await;
        let drain = async {
            let moved = gateway.move_sessions().await;
            tracing::debug!(elapsed = ?began.elapsed(), moved = moved.moved, not_moved = moved.not_moved, "websocket sessions moved");
            gateway.close_websockets(goodbye::RESTARTING).await;
            gateway.close_http().await;
            // An upgrade whose request arrived while HTTP was closing (on a connection
            // accepted just before the listeners closed) became a session after the
            // first goodbyes: it hears its own, and is waited for too.
            gateway.close_websockets(goodbye::RESTARTING).await;
        };
        let finished = tokio::time::timeout(self.deadline, drain).await.is_ok();
        self.report(finished, began, "handed over; clients let go")
    }

    fn report(&self, finished: bool, began: Instant, done: &str) -> StopOutcome {
        if finished {
            tracing::info!(elapsed = ?began.elapsed(), "{done}");
            StopOutcome::Clean
        } else {
            tracing::error!(
                "shutdown timed out after {}s; exiting without full cleanup",
                self.deadline.as_secs()
            );
            StopOutcome::TimedOut
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doubles::{MockGateway, MockMembership, MockNotifier};
    use async_trait::async_trait;
    use gateway_domain::ports::MoveReport;
    use mockall::Sequence;

    fn sequence() -> ShutdownSequence {
        ShutdownSequence {
            deadline: Duration::from_secs(10),
        }
    }

    #[tokio::test]
    async fn a_stop_runs_its_steps_in_order_with_the_lease_revoked_between_websockets_and_http() {
        let mut order = Sequence::new();
        let mut gateway = MockGateway::new();
        let mut notifier = MockNotifier::new();
        gateway
            .expect_stop_accepting_work()
            .once()
            .in_sequence(&mut order)
            .return_const(());
        notifier
            .expect_stopping()
            .once()
            .in_sequence(&mut order)
            .return_const(());
        gateway
            .expect_close_websockets()
            .withf(|goodbye| *goodbye == goodbye::STOPPING)
            .once()
            .in_sequence(&mut order)
            .return_const(());
        let mut membership = MockMembership::new();
        membership
            .expect_release()
            .once()
            .in_sequence(&mut order)
            .return_const(());
        gateway
            .expect_close_http()
            .once()
            .in_sequence(&mut order)
            .return_const(());
        // The second release (for a stop cut short by its deadline) does nothing.
        membership.expect_release().return_const(());
        gateway
            .expect_release_listeners()
            .once()
            .in_sequence(&mut order)
            .return_const(());
        assert_eq!(
            sequence()
                .run(&gateway, &notifier, &membership, goodbye::STOPPING)
                .await,
            StopOutcome::Clean
        );
    }

    #[tokio::test]
    async fn a_handover_closes_the_listeners_first_keeps_readiness_and_says_restarting() {
        let mut order = Sequence::new();
        let mut gateway = MockGateway::new();
        gateway.expect_stop_accepting_work().never();
        gateway
            .expect_release_listeners()
            .once()
            .in_sequence(&mut order)
            .return_const(());
        // Sessions move before anyone is told goodbye.
        gateway
            .expect_move_sessions()
            .once()
            .in_sequence(&mut order)
            .return_const(MoveReport {
                moved: 3,
                not_moved: 1,
            });
        gateway
            .expect_close_websockets()
            .withf(|goodbye| *goodbye == goodbye::RESTARTING)
            .once()
            .in_sequence(&mut order)
            .return_const(());
        gateway
            .expect_close_http()
            .once()
            .in_sequence(&mut order)
            .return_const(());
        // Sessions born from upgrades read while HTTP closed are let go too.
        gateway
            .expect_close_websockets()
            .withf(|goodbye| *goodbye == goodbye::RESTARTING)
            .once()
            .in_sequence(&mut order)
            .return_const(());
        assert_eq!(sequence().hand_over(&gateway).await, StopOutcome::Clean);
    }

    /// A gateway whose WebSocket clients never finish closing; every call is still
    /// recorded by the mock it wraps.
    struct StuckClients(MockGateway);

    #[async_trait]
    impl ServingGateway for StuckClients {
        fn stop_accepting_work(&self) {
            self.0.stop_accepting_work();
        }
        async fn close_websockets(&self, goodbye: Goodbye) {
            self.0.close_websockets(goodbye).await;
            std::future::pending().await
        }
        async fn close_http(&self) {
            self.0.close_http().await;
        }
        async fn release_listeners(&self) {
            self.0.release_listeners().await;
        }
        async fn move_sessions(&self) -> MoveReport {
            self.0.move_sessions().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_passed_deadline_still_releases_the_listeners_and_times_out() {
        let mut order = Sequence::new();
        let mut inner = MockGateway::new();
        let mut notifier = MockNotifier::new();
        notifier.expect_stopping().return_const(());
        inner
            .expect_stop_accepting_work()
            .once()
            .in_sequence(&mut order)
            .return_const(());
        inner
            .expect_close_websockets()
            .once()
            .in_sequence(&mut order)
            .return_const(());
        inner.expect_close_http().never();
        inner
            .expect_release_listeners()
            .once()
            .in_sequence(&mut order)
            .return_const(());
        // The lease is still given back when the deadline cut the drain short.
        let mut membership = MockMembership::new();
        membership.expect_release().once().return_const(());
        let outcome = sequence()
            .run(
                &StuckClients(inner),
                &notifier,
                &membership,
                goodbye::STOPPING,
            )
            .await;
        assert_eq!(outcome, StopOutcome::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_handover_past_its_deadline_times_out() {
        let mut inner = MockGateway::new();
        inner.expect_release_listeners().once().return_const(());
        inner
            .expect_move_sessions()
            .once()
            .return_const(MoveReport::default());
        inner.expect_close_websockets().once().return_const(());
        inner.expect_close_http().never();
        let outcome = sequence().hand_over(&StuckClients(inner)).await;
        assert_eq!(outcome, StopOutcome::TimedOut);
    }
}
