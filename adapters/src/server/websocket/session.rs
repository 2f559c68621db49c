//! One WebSocket client, from `connect` to close: the handshake, requests, ticks, and
//! the goodbye when the gateway stops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use gateway_domain::protocol::close::{self, CloseInstruction};
use gateway_domain::protocol::dispatch::{self, Method};
use gateway_domain::protocol::handshake::{HandshakeOutcome, evaluate_fenced_connect};
use gateway_domain::protocol::{
    HANDSHAKE_TIMEOUT_MS, MAX_HANDSHAKE_PAYLOAD, MAX_PAYLOAD, TICK_INTERVAL_MS, frame,
};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use super::read_budget::{ReadBudget, is_budget_exceeded};
use crate::server::state::GatewayState;

type Socket = WebSocketStream<ReadBudget<TokioIo<Upgraded>>>;

/// How long a client may take to accept one frame before it counts as a slow reader.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of an oversized frame read and discarded before the connection is dropped.
const LINGER_MAX_BYTES: usize = 4 * MAX_PAYLOAD;
/// How long a refused client has to answer our close before we drop it.
const REFUSAL_CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What the next client message turned out to be.
enum Incoming {
    Text(String),
    /// The message breaks a rule: close with this.
    Refuse(CloseInstruction),
    /// A frame over the hard size limit, refused from its header: the protocol
    /// state is gone, the rest of the frame is still on the wire.
    Oversized,
    /// The client closed or the connection broke.
    Gone,
}

/// Runs one session to its end. `cluster_term` (clustered gateways only) is the
/// fencing token of the active term the session belongs to, and the signal that
/// the term ended.
pub(crate) async fn run(
    mut socket: Socket,
    peer: SocketAddr,
    state: Arc<GatewayState>,
    cluster_term: Option<(u64, CancellationToken)>,
) {
    let (fencing_token, lock_lost) = match cluster_term {
        Some((token, lost)) => (Some(token), lost),
        None => (None, CancellationToken::new()),
    };
    let shutdown = state.websockets.signal.clone();
    let handshake_timeout = Duration::from_millis(HANDSHAKE_TIMEOUT_MS);
    let first = tokio::select! {
        () = shutdown.cancelled() => return say_goodbye(&mut socket).await,
        () = lock_lost.cancelled() => return say_lock_lost(&mut socket).await,
        first = tokio::time::timeout(handshake_timeout, next_text(&mut socket, MAX_HANDSHAKE_PAYLOAD)) => first,
    };
    let text = match first {
        Err(_elapsed) => return refuse(&mut socket, close::HANDSHAKE_TIMEOUT).await,
        Ok(Incoming::Refuse(instruction)) => return refuse(&mut socket, instruction).await,
        Ok(Incoming::Oversized) => return refuse_oversized(&mut socket).await,
        Ok(Incoming::Gone) => return,
        Ok(Incoming::Text(text)) => text,
    };
    // A peer that recently presented wrong tokens waits before it hears back.
    let delay = state.auth_throttle.delay_for(peer.ip());
    if !delay.is_zero() {
        tokio::select! {
            () = shutdown.cancelled() => return say_goodbye(&mut socket).await,
            () = tokio::time::sleep(delay) => {}
        }
    }
    if !state.may_act() || lock_lost.is_cancelled() {
        return say_lock_lost(&mut socket).await;
    }
    match evaluate_fenced_connect(
        &text,
        state.token.as_deref(),
        &state.identity,
        fencing_token,
    ) {
        HandshakeOutcome::Rejected {
            response,
            close,
            unauthorized,
        } => {
            if unauthorized {
                state.auth_throttle.record_failure(peer.ip());
                tracing::warn!(%peer, "connect with a missing or wrong token refused");
            }
            if let Some(response) = response {
                let _ = send(&mut socket, response).await;
            }
            return refuse(&mut socket, close).await;
        }
        HandshakeOutcome::Accepted { hello_ok, client } => {
            if state.token.is_some() {
                state.auth_throttle.record_success(peer.ip());
            }
            if send(&mut socket, hello_ok).await.is_err() {
                return;
            }
            tracing::debug!(%peer, client = %client.name, version = %client.version, "client connected");
        }
    }
    // Connected: from now on the 1 MiB message limit is the only one.
    socket.get_mut().lift();
    let _counted = state.client_connected();
    serve(&mut socket, &state, &lock_lost).await;
}

/// The connected phase: answer requests, send ticks, until either side ends it.
async fn serve(socket: &mut Socket, state: &GatewayState, lock_lost: &CancellationToken) {
    // One registration with the stop token for the whole session, not one per message.
    let shutdown = state.websockets.signal.clone();
    let stopping = shutdown.cancelled();
    tokio::pin!(stopping);
    let lost = lock_lost.cancelled();
    tokio::pin!(lost);
    let period = Duration::from_millis(TICK_INTERVAL_MS);
    let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            biased;
            // A lost lock is said first: the stop that follows it must not hide why.
            () = &mut lost => return say_lock_lost(socket).await,
            () = &mut stopping => return say_goodbye(socket).await,
            incoming = next_text(socket, MAX_PAYLOAD) => match incoming {
                // Asked at the moment of acting: a holder that just woke from a
                // freeze has lost its lease before its keep-alive task knows it.
                Incoming::Text(_) if !state.may_act() => return say_lock_lost(socket).await,
                Incoming::Text(text) => {
                    if send(socket, answer(&text, state)).await.is_err() {
                        return;
                    }
                }
                Incoming::Refuse(instruction) => return refuse(socket, instruction).await,
                Incoming::Oversized => return refuse_oversized(socket).await,
                Incoming::Gone => return,
            },
            _ = ticks.tick() => {
                if !state.may_act() {
                    return say_lock_lost(socket).await;
                }
                seq += 1;
                if send(socket, frame::tick_event(unix_ms(), seq)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Why a frame was not delivered.
struct NotSent;

/// Sends one text frame. A client that does not take it within [`SEND_TIMEOUT`] is a
/// slow reader: it is dropped rather than buffered for.
async fn send(socket: &mut Socket, text: String) -> Result<(), NotSent> {
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
fn answer(text: &str, state: &GatewayState) -> String {
    match dispatch::route(text) {
        Ok(call) => match call.method {
            Method::Health => frame::ok_response(&call.id, &state.health()),
            Method::Status => frame::ok_response(&call.id, &state.status()),
        },
        Err(error_frame) => error_frame,
    }
}

/// Reads until a text message, skipping control frames (tungstenite answers pings).
async fn next_text(socket: &mut Socket, limit: usize) -> Incoming {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.len() > limit => {
                return Incoming::Refuse(close::MESSAGE_TOO_BIG);
            }
            Some(Ok(Message::Text(text))) => return Incoming::Text(text.as_str().to_owned()),
            Some(Ok(Message::Binary(_))) => return Incoming::Refuse(close::BINARY_REFUSED),
            Some(Ok(Message::Close(_))) => {
                // Let tungstenite send its close reply, then end.
                while let Some(Ok(_)) = socket.next().await {}
                return Incoming::Gone;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Err(WsError::Capacity(_))) => return Incoming::Oversized,
            Some(Err(WsError::Io(error))) if is_budget_exceeded(&error) => {
                return Incoming::Oversized;
            }
            Some(Err(_)) | None => return Incoming::Gone,
        }
    }
}

/// Closes with `instruction` and waits briefly for the client's close reply.
async fn refuse(socket: &mut Socket, instruction: CloseInstruction) {
    send_close(socket, instruction).await;
    let _ = tokio::time::timeout(REFUSAL_CLOSE_GRACE, drain(socket)).await;
}

/// Closes 1009 after an oversized frame. tungstenite refused it from its header, so
/// the close frame is written by hand, and the rest of the frame is read and thrown
/// away (a bounded "lingering close") so the client reads our close instead of a
/// connection reset.
async fn refuse_oversized(socket: &mut Socket) {
    let instruction = close::MESSAGE_TOO_BIG;
    let reason = instruction.reason.as_bytes();
    let mut frame = Vec::with_capacity(4 + reason.len());
    frame.push(0x88); // FIN + close opcode; server frames are unmasked
    frame.push(u8::try_from(2 + reason.len()).unwrap_or(125));
    frame.extend_from_slice(&instruction.code.to_be_bytes());
    frame.extend_from_slice(reason);
    let raw = socket.get_mut();
    raw.lift();
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

/// The gateway is stopping: the `shutdown` event, close 1001, and the wait for the
/// client's close reply (bounded by the stop sequence's deadline).
async fn say_goodbye(socket: &mut Socket) {
    farewell(socket, frame::shutdown_event(), close::GOING_AWAY).await;
}

/// This gateway lost the cluster lock: the `shutdown` event with reason
/// `cluster lock lost`, close 1012 (the client may reconnect, to the new active).
async fn say_lock_lost(socket: &mut Socket) {
    let event = frame::shutdown_event_because(close::CLUSTER_LOCK_LOST.reason);
    let _ = tokio::time::timeout(
        REFUSAL_CLOSE_GRACE,
        farewell(socket, event, close::CLUSTER_LOCK_LOST),
    )
    .await;
}

/// A `shutdown` event, then a close frame, then the wait for the client's reply.
async fn farewell(socket: &mut Socket, event: String, instruction: CloseInstruction) {
    // Queue the event without flushing, so it leaves with the close frame in one write.
    let queued = tokio::time::timeout(SEND_TIMEOUT, socket.feed(Message::text(event))).await;
    if matches!(queued, Ok(Ok(()))) {
        send_close(socket, instruction).await;
        drain(socket).await;
    }
}

async fn send_close(socket: &mut Socket, instruction: CloseInstruction) {
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

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
