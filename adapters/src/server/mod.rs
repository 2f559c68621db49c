//! The gateway's server: HTTP and WebSocket on the held listeners, and the handle
//! through which the stop sequence drains it step by step.

mod auth_throttle;
mod connection;
mod counted_stream;
#[cfg(test)]
mod in_process_tests;
mod metrics;
mod response;
mod routes;
mod settings;
mod state;
mod status_page;
mod stop_stage;
mod websocket;

use gateway_domain::ports::ServingGateway;
use std::sync::Arc;

use async_trait::async_trait;
use gateway_domain::Endpoint;
use gateway_domain::ports::MoveReport;
use gateway_domain::protocol::goodbye::Goodbye;
use std::os::fd::OwnedFd;

use crate::handoff::session_channel::SenderSlot;
use tokio::net::TcpListener;

pub use self::metrics::RestartHistory;
pub use self::settings::{ProtocolTimings, ServerSettings};
use self::state::GatewayState;
use self::stop_stage::StopStage;

/// A serving gateway. Implements the domain's [`ServingGateway`] so the app's stop
/// sequence can drain it in the order of docs/reference.md#stopping.
pub struct GatewayServer {
    /// Shared with every connection: identity, counters, the draining flag.
    state: Arc<GatewayState>,
    /// The accept loops (step 4): when they have all ended, their listeners are
    /// dropped and the port is free.
    accept_loops: StopStage,
    /// Where the launcher keeps this process's end of its successor's session
    /// channel; `None`: sessions never move.
    session_channel: Option<SenderSlot>,
}

impl GatewayServer {
    /// Starts serving on `listeners` (already bound: they are the lock).
    pub fn serve(listeners: Vec<(Endpoint, TcpListener)>, settings: ServerSettings) -> Self {
        let state = Arc::new(GatewayState::new(settings));
        let accept_loops = StopStage::default();
        for (endpoint, listener) in listeners {
            accept_loops.tasks.spawn(connection::accept_loop(
                endpoint,
                listener,
                Arc::clone(&state),
                accept_loops.signal.clone(),
            ));
        }
        Self {
            state,
            accept_loops,
            session_channel: None,
        }
    }

    /// At a handoff, moves the WebSocket sessions through the channel the launcher
    /// leaves in `slot` (see [`ServingGateway::move_sessions`]).
    pub fn move_sessions_through(mut self, slot: SenderSlot) -> Self {
        self.session_channel = Some(slot);
        self
    }

    /// Takes the predecessor's sessions from the session channel `fd` (the
    /// predecessor is `previous_pid`) and serves them, each told `restarted` first.
    pub fn take_sessions(&self, fd: OwnedFd, previous_pid: u32) {
        websocket::receive_sessions(Arc::clone(&self.state), fd, previous_pid);
    }
}

#[async_trait]
impl ServingGateway for GatewayServer {
    fn stop_accepting_work(&self) {
        self.state.begin_draining();
    }

    async fn close_websockets(&self, goodbye: Goodbye) {
        self.state.set_goodbye(goodbye);
        self.state.websockets.run_to_end().await;
    }

    async fn move_sessions(&self) -> MoveReport {
        match &self.session_channel {
            Some(slot) => websocket::move_sessions(&self.state, slot).await,
            None => MoveReport::default(),
        }
    }

    async fn close_http(&self) {
        self.state.http.run_to_end().await;
    }

    async fn release_listeners(&self) {
        self.accept_loops.run_to_end().await;
    }

    /// Counts a handoff this process survived (the successor failed), for `/metrics`.
    fn restart_failed(&self) {
        self.state.metrics.restart_failed();
    }
}
