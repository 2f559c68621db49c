//! A session's WebSocket: the stream type every session step works on, and how one is
//! made over a connection past the handshake (a fresh upgrade or a moved session).

use std::sync::Arc;

use gateway_domain::protocol::MAX_PAYLOAD;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::adopt::{QuietReader, SessionIo};
use super::inbound_guard::InboundGuard;
use crate::server::state::GatewayState;

/// A session's WebSocket: tungstenite over the inbound guard over the quiet reader.
pub(crate) type Socket = WebSocketStream<InboundGuard<QuietReader<SessionIo>>>;

/// Read buffer per connection, allocated up front: small, since most clients are idle
/// most of the time (a larger message is read in several chunks).
const READ_BUFFER: usize = 1024;
/// Bytes queued before tungstenite writes without a flush: lets the shutdown event
/// and the close frame leave in one write.
const WRITE_BUFFER: usize = 4 * 1024;
/// Outgoing bytes a session may have queued before it is dropped as a slow reader.
const MAX_WRITE_BUFFER: usize = 4 * MAX_PAYLOAD;

/// A session's WebSocket over `io`, past the handshake, with messages limited to
/// `message_limit` by its guard (a moved session's reader can be held at a message
/// boundary for the next move).
pub(crate) async fn session_socket(
    io: SessionIo,
    state: &GatewayState,
    message_limit: usize,
) -> Socket {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(Some(MAX_PAYLOAD))
        .max_frame_size(Some(MAX_PAYLOAD));
    let io = InboundGuard::new(
        QuietReader::new(io),
        message_limit,
        Arc::clone(&state.message_budget),
        state.message_timeout,
    );
    WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await
}
