//! The stop sequence of the contract (section 4), in its order, under one deadline.

use std::time::Duration;

use gateway_domain::protocol::goodbye::{self, Goodbye};
use gateway_domain::{ServiceNotifier, ServingGateway};

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
    /// A stop (contract section 4): readiness off and `STOPPING=1`, then `goodbye` to
    /// the WebSocket clients, then the HTTP connections, then the listeners. The
    /// listeners are released even when the deadline passed, so the port is always
    /// free when this returns.
    pub async fn run(
        &self,
        gateway: &dyn ServingGateway,
        notifier: &dyn ServiceNotifier,
        goodbye: Goodbye,
    ) -> StopOutcome {
        let began = std::time::Instant::now();
        let drain = async {
            gateway.stop_accepting_work();
            notifier.stopping();
            gateway.close_websockets(goodbye).await;
            tracing::debug!(elapsed = ?began.elapsed(), "websocket clients closed");
            gateway.close_http().await;
            tracing::debug!(elapsed = ?began.elapsed(), "http connections closed");
        };
        let finished = tokio::time::timeout(self.deadline, drain).await.is_ok();
        gateway.release_listeners().await;
        self.report(finished, began, "gateway stopped; port released")
    }

    /// Letting go after a handoff (contract section 6): the successor already serves
    /// on the same sockets, so the listeners close *first* (a queued connection stays
    /// queued for the successor), then the WebSocket clients hear `gateway restarting`
    /// and close 1012, then the HTTP connections finish. Readiness never turns off and
    /// nothing is said to the service manager: the successor is the service now.
    pub async fn hand_over(&self, gateway: &dyn ServingGateway) -> StopOutcome {
        let began = std::time::Instant::now();
        gateway.release_listeners().await;
        let drain = async {
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

    fn report(&self, finished: bool, began: std::time::Instant, done: &str) -> StopOutcome {
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
    use async_trait::async_trait;
    use mockall::{Sequence, mock};

    mock! {
        Gateway {}
        #[async_trait]
        impl ServingGateway for Gateway {
            fn stop_accepting_work(&self);
            async fn close_websockets(&self, goodbye: Goodbye);
            async fn close_http(&self);
            async fn release_listeners(&self);
        }
    }

    mock! {
        Notifier {}
        impl ServiceNotifier for Notifier {
            fn ready(&self);
            fn stopping(&self);
            fn reloading(&self);
            fn handed_over(&self, new_pid: u32);
        }
    }

    fn sequence() -> ShutdownSequence {
        ShutdownSequence {
            deadline: Duration::from_secs(10),
        }
    }

    #[tokio::test]
    async fn a_stop_runs_its_steps_in_the_contract_order() {
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
        gateway
            .expect_close_http()
            .once()
            .in_sequence(&mut order)
            .return_const(());
        gateway
            .expect_release_listeners()
            .once()
            .in_sequence(&mut order)
            .return_const(());
        assert_eq!(
            sequence().run(&gateway, &notifier, goodbye::STOPPING).await,
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
        let outcome = sequence()
            .run(&StuckClients(inner), &notifier, goodbye::STOPPING)
            .await;
        assert_eq!(outcome, StopOutcome::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_handover_past_its_deadline_times_out() {
        let mut inner = MockGateway::new();
        inner.expect_release_listeners().once().return_const(());
        inner.expect_close_websockets().once().return_const(());
        inner.expect_close_http().never();
        let outcome = sequence().hand_over(&StuckClients(inner)).await;
        assert_eq!(outcome, StopOutcome::TimedOut);
    }
}
