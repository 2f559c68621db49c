//! The port through which the stop sequence (docs/reference.md#stopping) drives a gateway, one
//! step per method. The order lives in the caller; each step is independent.

use async_trait::async_trait;

use crate::protocol::goodbye::Goodbye;

/// What became of the WebSocket sessions at a handoff's move step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoveReport {
    /// Sessions the successor took: they live on in its process.
    pub moved: usize,
    /// Sessions that could not move: each got the `gateway restarting` goodbye.
    pub not_moved: usize,
}

/// A gateway that is serving and can be stopped step by step. Each step ends when its
/// work is done; the caller bounds them all with one deadline, and whatever a step
/// leaves unfinished at the deadline is dropped with the process.
#[async_trait]
pub trait ServingGateway: Send + Sync {
    /// Stop step 1: `/readyz` turns 503 and new requests and upgrades get 503.
    fn stop_accepting_work(&self);

    /// Every WebSocket client gets `goodbye`'s `shutdown` event and close frame;
    /// resolves once the close handshakes are done.
    async fn close_websockets(&self, goodbye: Goodbye);

    /// After a handoff, once the listeners are released: every WebSocket session is
    /// brought to its quiet point and passed to the successor (docs/reference.md#restart,
    /// "Sessions move with the restart"); one that cannot move gets the
    /// `gateway restarting` goodbye. Resolves once no session is left. A gateway
    /// that cannot move sessions moves none.
    async fn move_sessions(&self) -> MoveReport {
        MoveReport::default()
    }

    /// HTTP connections close once their in-flight requests finish.
    async fn close_http(&self);

    /// The listeners are closed (closed, never shut down: a successor holding the same
    /// sockets keeps every queued connection). Without a successor the port is free.
    /// MUST succeed whatever state the other steps left behind.
    async fn release_listeners(&self);

    /// A restart failed and this gateway serves on (counted for `/metrics`).
    fn restart_failed(&self) {}
}
