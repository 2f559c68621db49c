//! The gateway's server: HTTP and WebSocket on the held listeners, and the handle
//! through which the stop sequence drains it step by step.

mod auth_throttle;
mod connection;
mod counted_stream;
mod metrics;
mod response;
mod routes;
mod state;
mod status_page;
mod stop_stage;
mod websocket;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use gateway_domain::protocol::{self, goodbye::Goodbye};
use gateway_domain::serving::MoveReport;
use gateway_domain::{Endpoint, GatewayIdentity, ServingGateway};
use std::os::fd::OwnedFd;

use crate::cluster::ClusterGate;
use crate::handoff::session_channel::SenderSlot;
use tokio::net::TcpListener;

pub use self::metrics::RestartHistory;
use self::state::GatewayState;
use self::stop_stage::StopStage;

/// What the server needs to know beyond its listeners.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Who this gateway is, as `/healthz` and `hello-ok` report it.
    pub identity: GatewayIdentity,
    /// The token `connect` must carry, when one is configured.
    pub token: Option<String>,
    /// When the process started, for uptime.
    pub started: Instant,
    /// Origins allowed to open the WebSocket besides loopback pages.
    pub allowed_origins: Vec<String>,
    /// Refuse requests whose `Host` is not a loopback name (set when bound on
    /// loopback: the DNS-rebinding guard).
    pub loopback_hosts_only: bool,
    /// Open connections (HTTP and WebSocket) beyond which new ones get 503.
    pub max_connections: usize,
    /// Bytes all WebSocket messages in progress may hold together
    /// (`--max-buffered-mb`); a message that would exceed it closes 1013.
    pub max_buffered_bytes: usize,
    /// Time a WebSocket message has from its first frame to its last (close 1008
    /// `message timeout` after it).
    pub message_timeout: Duration,
    /// With `--cluster-etcd`: whether this gateway is the active one (only that one
    /// takes WebSocket sessions). `None` on a single host.
    pub cluster: Option<Arc<ClusterGate>>,
    /// The handoffs that led to this process, for `/metrics`.
    pub restarts: RestartHistory,
    /// The protocol's clocks (docs/reference.md#websocket in the daemon; short ones in tests).
    pub timings: ProtocolTimings,
}

/// The protocol's two clocks. The daemon uses the defaults, the protocol's constants
/// (`hello-ok` announces the 30 s tick); tests shorten them to check the behaviour
/// in milliseconds instead of half a minute.
///
/// Kept beside [`ServerSettings`] rather than in it only while `app/src/daemon.rs`
/// builds the settings field by field; they belong in the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolTimings {
    /// Between two `tick` events on a connected session.
    pub tick_interval: Duration,
    /// Time a client has to send `connect`: close 1008 `handshake timeout` after it.
    pub handshake_timeout: Duration,
}

impl Default for ProtocolTimings {
    fn default() -> Self {
        Self {
            tick_interval: Duration::from_millis(protocol::TICK_INTERVAL_MS),
            handshake_timeout: Duration::from_millis(protocol::HANDSHAKE_TIMEOUT_MS),
        }
    }
}

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
