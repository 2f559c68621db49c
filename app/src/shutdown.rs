//! The stop sequence of the contract (section 4), in its order, under one deadline.

use std::time::Duration;

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
    /// Readiness off and `STOPPING=1`, then the WebSocket goodbyes, then the HTTP
    /// connections, then the listeners. The listeners are released even when a step
    /// failed or the deadline passed, so the port is always free when this returns.
    pub async fn run(
        &self,
        gateway: &dyn ServingGateway,
        notifier: &dyn ServiceNotifier,
    ) -> StopOutcome {
        let began = std::time::Instant::now();
        let drain = async {
            gateway.stop_accepting_work();
            notifier.stopping();
            if let Err(error) = gateway.close_websockets().await {
                tracing::warn!(%error, "websocket clients did not all close cleanly");
            }
            tracing::debug!(elapsed = ?began.elapsed(), "websocket clients closed");
            if let Err(error) = gateway.close_http().await {
                tracing::warn!(%error, "http connections did not all close cleanly");
            }
            tracing::debug!(elapsed = ?began.elapsed(), "http connections closed");
        };
        let finished = tokio::time::timeout(self.deadline, drain).await.is_ok();
        gateway.release_listeners().await;
        if finished {
            tracing::info!(elapsed = ?began.elapsed(), "gateway stopped; port released");
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
    use gateway_domain::StopStepError;
    use mockall::{Sequence, mock};

    mock! {
        Gateway {}
        #[async_trait]
        impl ServingGateway for Gateway {
            fn stop_accepting_work(&self);
            async fn close_websockets(&self) -> Result<(), StopStepError>;
            async fn close_http(&self) -> Result<(), StopStepError>;
            async fn release_listeners(&self);
        }
    }

    mock! {
        Notifier {}
        impl ServiceNotifier for Notifier {
            fn ready(&self);
            fn stopping(&self);
        }
    }

    fn sequence() -> ShutdownSequence {
        ShutdownSequence {
            deadline: Duration::from_secs(10),
        }
    }

    fn failure(step: &'static str) -> StopStepError {
        StopStepError {
            step,
            reason: "boom".into(),
        }
    }

    #[tokio::test]
    async fn steps_run_in_the_contract_order() {
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
            .once()
            .in_sequence(&mut order)
            .returning(|| Ok(()));
        gateway
            .expect_close_http()
            .once()
            .in_sequence(&mut order)
            .returning(|| Ok(()));
        gateway
            .expect_release_listeners()
            .once()
            .in_sequence(&mut order)
            .return_const(());
        assert_eq!(
            sequence().run(&gateway, &notifier).await,
            StopOutcome::Clean
        );
    }

    #[tokio::test]
    async fn failing_steps_do_not_stop_the_sequence_or_keep_the_port() {
        let mut gateway = MockGateway::new();
        let mut notifier = MockNotifier::new();
        gateway.expect_stop_accepting_work().return_const(());
        notifier.expect_stopping().return_const(());
        gateway
            .expect_close_websockets()
            .once()
            .returning(|| Err(failure("websockets")));
        gateway
            .expect_close_http()
            .once()
            .returning(|| Err(failure("http")));
        gateway.expect_release_listeners().once().return_const(());
        assert_eq!(
            sequence().run(&gateway, &notifier).await,
            StopOutcome::Clean
        );
    }

    /// A gateway whose WebSocket clients never finish closing; every call is still
    /// recorded by the mock it wraps.
    struct StuckClients(MockGateway);

    #[async_trait]
    impl ServingGateway for StuckClients {
        fn stop_accepting_work(&self) {
            self.0.stop_accepting_work();
        }
        async fn close_websockets(&self) -> Result<(), StopStepError> {
            let _ = self.0.close_websockets().await;
            std::future::pending().await
        }
        async fn close_http(&self) -> Result<(), StopStepError> {
            self.0.close_http().await
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
            .returning(|| Ok(()));
        inner.expect_close_http().never();
        inner
            .expect_release_listeners()
            .once()
            .in_sequence(&mut order)
            .return_const(());
        let outcome = sequence().run(&StuckClients(inner), &notifier).await;
        assert_eq!(outcome, StopOutcome::TimedOut);
    }
}
