//! What a session writes: one text frame (bounded by the slow-reader timeout), and
//! the answer to one request of a connected client.

use std::time::Duration;

use futures_util::SinkExt;
use gateway_domain::protocol::dispatch::{self, Method};
use gateway_domain::protocol::frame;
use tokio_tungstenite::tungstenite::Message;

use super::socket::Socket;
use crate::server::metrics::Request;
use crate::server::state::GatewayState;

/// How long a client may take to accept one frame before it counts as a slow reader.
pub(super) const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a frame was not delivered.
pub(super) struct NotSent;

/// Sends one text frame. A client that does not take it within [`SEND_TIMEOUT`] is a
/// slow reader: it is dropped rather than buffered for.
pub(super) async fn send(socket: &mut Socket, text: String) -> Result<(), NotSent> {
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::text(text))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(NotSent),
        Err(_elapsed) => {
            tracing::warn!("websocket client is not reading; disconnecting it");
            Err(NotSent)
        }
    }
}

/// The response to one request of a connected client.
pub(super) fn answer(text: &str, state: &GatewayState) -> String {
    match dispatch::route(text) {
        Ok(call) => match call.method {
            Method::Health => {
                state.metrics.request(Request::Health);
                frame::ok_response(&call.id, &state.health())
            }
            Method::Status => {
                state.metrics.request(Request::Status);
                frame::ok_response(&call.id, &state.status())
            }
        },
        Err(error_frame) => {
            state.metrics.request(Request::Other);
            error_frame
        }
    }
}
