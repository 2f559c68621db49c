//! The port through which the stop sequence drives a serving gateway, one contract
//! step per method. The order lives in the caller; each step is independent.

use async_trait::async_trait;

/// A stop step that could not finish cleanly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{step}: {reason}")]
pub struct StopStepError {
    pub step: &'static str,
    pub reason: String,
}

/// A gateway that is serving and can be stopped step by step.
#[async_trait]
pub trait ServingGateway: Send + Sync {
    /// Step 1: `/readyz` turns 503 and new requests and upgrades get 503.
    fn stop_accepting_work(&self);

    /// Step 2: every WebSocket client gets the `shutdown` event and a 1001 close;
    /// resolves once the close handshakes are done.
    async fn close_websockets(&self) -> Result<(), StopStepError>;

    /// Step 3: HTTP connections close once their in-flight requests finish.
    async fn close_http(&self) -> Result<(), StopStepError>;

    /// Step 4: the listeners are closed and the port is free. MUST succeed whatever
    /// state the earlier steps left behind.
    async fn release_listeners(&self);
}
