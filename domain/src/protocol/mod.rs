//! The WebSocket control protocol: JSON text frames, the `connect` handshake, and the
//! methods a connected client may call. Pure functions from text to text.

pub mod close;
pub mod dispatch;
pub mod frame;
pub mod goodbye;
pub mod handshake;

/// The only protocol version this gateway speaks.
pub const PROTOCOL_VERSION: u64 = 1;
/// Interval between `tick` events, announced in `hello-ok`.
pub const TICK_INTERVAL_MS: u64 = 30_000;
/// Largest message before `connect` succeeds.
pub const MAX_HANDSHAKE_PAYLOAD: usize = 64 * 1024;
/// Largest message after `connect`, announced in `hello-ok`.
pub const MAX_PAYLOAD: usize = 1024 * 1024;
/// Time a client has to send `connect`.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Time a message has from its first frame to its last.
pub const MESSAGE_TIMEOUT_MS: u64 = 10_000;
/// Default of `--max-buffered-mb`: MiB all messages in progress may hold together.
pub const DEFAULT_MAX_BUFFERED_MB: usize = 64;
/// Methods a connected client may call.
pub const METHODS: [&str; 2] = ["health", "status"];
/// Events the gateway may send.
pub const EVENTS: [&str; 3] = ["tick", "shutdown", "restarted"];
