//! How a session ends from the gateway's side: a refusal (close frame, then a
//! bounded wait for the reply, or a hand-written close after a broken message), or a
//! goodbye (`shutdown` event, close frame, reply) for a stop, a lost lock or a
//! restart.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gateway_domain::protocol::MAX_PAYLOAD;
use gateway_domain::protocol::close::CloseInstruction;
use gateway_domain::protocol::goodbye::{self, Goodbye};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::frames::SEND_TIMEOUT;
use super::inbound_guard::Violation;
use super::socket::Socket;
use crate::server::metrics::Metrics;
use crate::server::state::GatewayState;

/// Bytes of a refused message read and discarded before the connection is dropped.
const LINGER_MAX_BYTES: usize = 4 * MAX_PAYLOAD;
/// How long a refused client has to answer our close before we drop it.
const REFUSAL_CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long a session that cannot move has for its goodbye (the event, the close,
/// the client's close reply).
const GOODBYE_GRACE: Duration = Duration::from_secs(2);

/// Closes with `instruction` and waits briefly for the client's close reply.
pub(super) async fn refuse(socket: &mut Socket, metrics: &Metrics, instruction: CloseInstruction) {
    send_close(socket, metrics, instruction).await;
    let _ = tokio::time::timeout(REFUSAL_CLOSE_GRACE, drain(socket)).await;
}

/// Closes after a message broke a limit mid-way (1009 too big, 1008 message
/// timeout, 1013 try again later). The stream is out of step with tungstenite, so
/// the close frame is written by hand, and the rest of the message is read and
/// thrown away (a bounded "lingering close") so the client reads our close instead
/// of a connection reset.
pub(super) async fn refuse_mid_message(
    socket: &mut Socket,
    metrics: &Metrics,
    violation: Violation,
) {
    let instruction = violation.close();
    metrics.close_sent(instruction.code);
    tracing::debug!(reason = instruction.reason, "websocket message refused");
    let reason = instruction.reason.as_bytes();
    let mut frame = Vec::with_capacity(4 + reason.len());
    frame.push(0x88); // FIN + close opcode; server frames are unmasked
    frame.push(u8::try_from(2 + reason.len()).unwrap_or(125));
    frame.extend_from_slice(&instruction.code.to_be_bytes());
    frame.extend_from_slice(reason);
    let raw = socket.get_mut();
    raw.disarm();
    let linger = async {
        if raw.write_all(&frame).await.is_err() || raw.flush().await.is_err() {
            return;
        }
        // On the heap: an array here would sit in every session's future.
        let mut sink = vec![0u8; 16 * 1024];
        let mut discarded = 0usize;
        while discarded < LINGER_MAX_BYTES {
            match raw.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => discarded += n,
            }
        }
    };
    let _ = tokio::time::timeout(REFUSAL_CLOSE_GRACE, linger).await;
}

/// The gateway lets its clients go (a stop, or a restart handed over): the `shutdown`
/// event, the close frame, and the wait for the client's close reply (bounded by the
/// stop sequence's deadline).
pub(super) async fn say_goodbye(socket: &mut Socket, state: &GatewayState) {
    farewell(socket, &state.metrics, state.goodbye()).await;
}

/// This gateway lost the cluster lock: the `shutdown` event with reason
/// `cluster lock lost`, close 1012 (the client may reconnect, to the new active).
pub(super) async fn say_lock_lost(socket: &mut Socket, state: &GatewayState) {
    let _ = tokio::time::timeout(
        REFUSAL_CLOSE_GRACE,
        farewell(socket, &state.metrics, goodbye::CLUSTER_LOCK_LOST),
    )
    .await;
}

/// A `shutdown` event, then a close frame, then the wait for the client's reply.
pub(super) async fn farewell(socket: &mut Socket, metrics: &Metrics, goodbye: Goodbye) {
    // Queue the event without flushing, so it leaves with the close frame in one write.
    let queued =
        tokio::time::timeout(SEND_TIMEOUT, socket.feed(Message::text(goodbye.event()))).await;
    if matches!(queued, Ok(Ok(()))) {
        send_close(socket, metrics, goodbye.close).await;
        drain(socket).await;
    }
}

/// Sends the close frame for `instruction`, counted by its code.
async fn send_close(socket: &mut Socket, metrics: &Metrics, instruction: CloseInstruction) {
    metrics.close_sent(instruction.code);
    let frame = CloseFrame {
        code: CloseCode::from(instruction.code),
        reason: instruction.reason.into(),
    };
    let _ = socket.close(Some(frame)).await;
}

/// Reads until the close handshake completes or the connection ends.
async fn drain(socket: &mut Socket) {
    while let Some(Ok(_)) = socket.next().await {}
}

/// The `gateway restarting` goodbye from a session that does not move.
pub(super) async fn say_restarting(socket: &mut Socket, state: &GatewayState) {
    socket.get_mut().get_mut().release();
    let _ = tokio::time::timeout(
        GOODBYE_GRACE,
        farewell(socket, &state.metrics, goodbye::RESTARTING),
    )
    .await;
}
