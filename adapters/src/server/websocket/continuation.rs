//! What a connected session carries from message to message, and to the successor
//! when the sessions move with a restart.

use gateway_domain::protocol::handshake::ClientInfo;
use tokio::time::Instant;

/// What a connected session carries from message to message, and to the successor.
pub(crate) struct Continuation {
    /// The client's self-description from `connect`.
    pub client: ClientInfo,
    /// The cluster fencing token of the term the session belongs to.
    pub fencing_token: Option<u64>,
    /// The `seq` of the last event sent (0: none yet).
    pub last_seq: u64,
    /// When the last tick (or `hello-ok`) was sent, unix ms.
    pub last_tick_unix_ms: u64,
    /// When the next tick is due.
    pub next_tick: Instant,
    /// When the client last sent a request: a session busy at a restart moves first,
    /// since its requests wait while it moves.
    pub last_request: Option<Instant>,
}
