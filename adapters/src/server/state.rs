//! What every connection of one gateway shares.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use gateway_domain::GatewayIdentity;
use gateway_domain::auth_delay::MAX_WAITING_ANSWERS;
use gateway_domain::cluster::Role;
use gateway_domain::identity::HealthView;
use gateway_domain::protocol::dispatch::StatusReport;
use gateway_domain::protocol::goodbye::{self, Goodbye};

use super::auth_throttle::AuthThrottle;
use super::metrics::{Metrics, TextFormat};
use super::settings::{ProtocolTimings, ServerSettings};
use super::stop_stage::StopStage;
use super::websocket::{MessageBudget, MoveOffer};
use crate::cluster::{ClusterGate, Seat};
use crate::tls::TlsTermination;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Shared state of one gateway.
pub(crate) struct GatewayState {
    /// Who we are.
    pub identity: GatewayIdentity,
    /// The token `connect` must carry, if any.
    pub token: Option<String>,
    /// Origins allowed besides loopback pages.
    pub allowed_origins: Vec<String>,
    /// Whether the `Host` guard is on.
    pub loopback_hosts_only: bool,
    /// The connection cap.
    max_connections: usize,
    /// Open TCP connections, shared with every [`ConnectionSlot`].
    open_connections: Arc<AtomicUsize>,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Delays the answers to wrong tokens.
    pub auth_throttle: AuthThrottle,
    /// What all WebSocket messages in progress may hold together.
    pub message_budget: Arc<MessageBudget>,
    /// How long a WebSocket message may take from its first frame to its last.
    pub message_timeout: Duration,
    /// The time between two `tick` events, and the time a client has for `connect`.
    pub timings: ProtocolTimings,
    /// Process start, for uptime.
    started: Instant,
    /// Set at step 1 of the stop: readiness off, new work refused.
    draining: AtomicBool,
    /// Connected (post-`connect`) WebSocket clients, for `status`.
    websocket_clients: AtomicUsize,
    /// What sessions say when they are let go; set once, before `websockets` fires.
    goodbye: OnceLock<Goodbye>,
    /// Step 2: every WebSocket session, told to say goodbye (`goodbye`) and close.
    pub websockets: StopStage,
    /// Step 3: every HTTP connection task (one ends when its connection upgrades),
    /// told to finish in-flight requests and close.
    pub http: StopStage,
    /// With `--cluster-etcd`: the role, asked at each request.
    pub cluster: Option<Arc<ClusterGate>>,
    /// With TLS: the handshake every accepted connection goes through first.
    pub tls: Option<TlsTermination>,
    /// Fired when the sessions move to a successor: each goes to its quiet point.
    pub moving: CancellationToken,
    /// Where a session at its quiet point offers itself for the move; set once,
    /// before `moving` fires.
    pub mover: OnceLock<mpsc::UnboundedSender<MoveOffer>>,
}

impl GatewayState {
    pub fn new(settings: ServerSettings) -> Self {
        let timings = settings.timings;
        Self {
            metrics: Metrics::new(
                &settings.identity.version,
                settings.restarts,
                settings.cluster.is_some(),
            ),
            identity: settings.identity,
            token: settings.token,
            allowed_origins: settings.allowed_origins,
            loopback_hosts_only: settings.loopback_hosts_only,
            max_connections: settings.max_connections,
            open_connections: Arc::new(AtomicUsize::new(0)),
            auth_throttle: AuthThrottle::new(waiting_answers_cap(settings.max_connections)),
            message_budget: Arc::new(MessageBudget::new(settings.max_buffered_bytes)),
            message_timeout: settings.message_timeout,
            timings,
            started: settings.started,
            draining: AtomicBool::new(false),
            websocket_clients: AtomicUsize::new(0),
            goodbye: OnceLock::new(),
            websockets: StopStage::default(),
            http: StopStage::default(),
            cluster: settings.cluster,
            tls: settings.tls,
            moving: CancellationToken::new(),
            mover: OnceLock::new(),
        }
    }

    pub fn uptime_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn begin_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Chooses what sessions are told when they are let go (the first choice stands).
    pub fn set_goodbye(&self, goodbye: Goodbye) {
        let _ = self.goodbye.set(goodbye);
    }

    /// Whether this process is letting go after a handoff (a successor serves).
    pub fn handing_over(&self) -> bool {
        self.goodbye.get() == Some(&goodbye::RESTARTING)
    }

    /// What a session being let go says: a stop's goodbye unless told otherwise.
    pub fn goodbye(&self) -> Goodbye {
        self.goodbye.get().copied().unwrap_or(goodbye::STOPPING)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn health(&self) -> HealthView<'_> {
        match &self.cluster {
            None => self.identity.health(self.uptime_ms()),
            Some(gate) => self
                .identity
                .clustered(self.uptime_ms(), gate.view(gate.seat())),
        }
    }

    /// A clustered gateway's seat right now; `None` on a single host (always acts).
    pub fn cluster_seat(&self) -> Option<Seat> {
        self.cluster.as_ref().map(|gate| gate.seat())
    }

    /// Whether this gateway may serve WebSocket sessions now.
    pub fn may_act(&self) -> bool {
        self.cluster_seat()
            .is_none_or(|seat| seat.role == Role::Active)
    }

    pub fn status(&self) -> StatusReport {
        StatusReport {
            connections: self.websocket_clients.load(Ordering::Relaxed),
            uptime_ms: self.uptime_ms(),
            port: self.identity.port,
            profile: self.identity.profile.clone(),
            version: self.identity.version.clone(),
            draining: self.is_draining(),
        }
    }

    /// The text of one `/metrics` scrape.
    pub fn metrics_text(&self, format: TextFormat) -> String {
        self.metrics.render(
            format,
            self.open_connections.load(Ordering::Relaxed),
            self.websocket_clients.load(Ordering::Relaxed),
            self.cluster_seat().and_then(|seat| seat.fencing_token),
        )
    }

    /// Takes a connection slot, or `None` when the cap is reached.
    pub fn open_connection(&self) -> Option<ConnectionSlot> {
        let previous = self.open_connections.fetch_add(1, Ordering::AcqRel);
        let slot = ConnectionSlot {
            open: Arc::clone(&self.open_connections),
        };
        (previous < self.max_connections).then_some(slot)
    }

    /// Takes a connection slot whatever the cap: for a session moved here, which is
    /// already connected and must not be dropped.
    pub fn count_connection(&self) -> ConnectionSlot {
        self.open_connections.fetch_add(1, Ordering::AcqRel);
        ConnectionSlot {
            open: Arc::clone(&self.open_connections),
        }
    }

    /// Counts a connected client for as long as the guard lives.
    pub fn client_connected(&self) -> ConnectedClient<'_> {
        self.websocket_clients.fetch_add(1, Ordering::Relaxed);
        ConnectedClient { state: self }
    }
}

/// How many failed `connect` attempts may wait for their answer at once: at most
/// [`MAX_WAITING_ANSWERS`], and at most a quarter of the connection cap, so waiting
/// guessers never take the slots a client with the right token needs.
fn waiting_answers_cap(max_connections: usize) -> usize {
    (max_connections / 4).clamp(1, MAX_WAITING_ANSWERS)
}

/// Keeps one WebSocket client counted; uncounts it on drop, however the session ends.
pub(crate) struct ConnectedClient<'a> {
    state: &'a GatewayState,
}

impl Drop for ConnectedClient<'_> {
    fn drop(&mut self) {
        self.state.websocket_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One open TCP connection counted against the cap; shared by the HTTP connection
/// task and, after an upgrade, the WebSocket session. Uncounted on drop.
pub(crate) struct ConnectionSlot {
    open: Arc<AtomicUsize>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}
