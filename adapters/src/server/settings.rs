//! What a server is started with: who it is, its guards and limits, its clocks.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use gateway_domain::GatewayIdentity;
use gateway_domain::protocol;

use super::metrics::RestartHistory;
use crate::cluster::ClusterGate;
use crate::tls::TlsTermination;

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
    /// With `--tls-cert`/`--tls-key`: every connection is TLS (`https://`, `wss://`);
    /// a client that does not speak it is not served.
    pub tls: Option<TlsTermination>,
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
