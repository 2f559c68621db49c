//! One WebSocket client, from `connect` to close: the handshake, requests, ticks, and
//! the goodbye when the gateway stops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use gateway_domain::protocol::close::{self, CloseInstruction};
use gateway_domain::protocol::dispatch::{self, Method};
use gateway_domain::protocol::handshake::{HandshakeOutcome, evaluate_connect};
use gateway_domain::protocol::{
    HANDSHAKE_TIMEOUT_MS, MAX_HANDSHAKE_PAYLOAD, MAX_PAYLOAD, TICK_INTERVAL_MS, frame,
};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::server::state::GatewayState;

type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// How long a refused client has to answer our close before we drop it.
const REFUSAL_CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What the next client message turned out to be.
enum Incoming {
    Text(String),
    /// The message breaks a rule: close with this.
    Refuse(CloseInstruction),
    /// The client closed or the connection broke.
    Gone,
}

/// Runs one session to its end.
pub(crate) async fn run(mut socket: Socket, peer: SocketAddr, state: Arc<GatewayState>) {
    let shutdown = state.stop.close_websockets.clone();
    let handshake_timeout = Duration::from_millis(HANDSHAKE_TIMEOUT_MS);
    let first = tokio::select! {
        () = shutdown.cancelled() => return say_goodbye(&mut socket).await,
        first = tokio::time::timeout(handshake_timeout, next_text(&mut socket, MAX_HANDSHAKE_PAYLOAD)) => first,
    };
    let text = match first {
        Err(_elapsed) => return refuse(&mut socket, close::HANDSHAKE_TIMEOUT).await,
        Ok(Incoming::Refuse(instruction)) => return refuse(&mut socket, instruction).await,
        Ok(Incoming::Gone) => return,
        Ok(Incoming::Text(text)) => text,
    };
    match evaluate_connect(&text, state.token.as_deref(), &state.identity) {
        HandshakeOutcome::Rejected {
            response, close, ..
        } => {
            if let Some(response) = response {
                let _ = socket.send(Message::text(response)).await;
            }
            return refuse(&mut socket, close).await;
        }
        HandshakeOutcome::Accepted { hello_ok, client } => {
            if socket.send(Message::text(hello_ok)).await.is_err() {
                return;
            }
            tracing::debug!(%peer, client = %client.name, version = %client.version, "client connected");
        }
    }
    let _counted = state.client_connected();
    serve(&mut socket, &state).await;
}

/// The connected phase: answer requests, send ticks, until either side ends it.
async fn serve(socket: &mut Socket, state: &GatewayState) {
    let shutdown = state.stop.close_websockets.clone();
    let period = Duration::from_millis(TICK_INTERVAL_MS);
    let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return say_goodbye(socket).await,
            _ = ticks.tick() => {
                seq += 1;
                if socket.send(Message::text(frame::tick_event(unix_ms(), seq))).await.is_err() {
                    return;
                }
            }
            incoming = next_text(socket, MAX_PAYLOAD) => match incoming {
                Incoming::Text(text) => {
                    if socket.send(Message::text(answer(&text, state))).await.is_err() {
                        return;
                    }
                }
                Incoming::Refuse(instruction) => return refuse(socket, instruction).await,
                Incoming::Gone => return,
            },
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
            Some(Err(WsError::Capacity(_))) => return Incoming::Refuse(close::MESSAGE_TOO_BIG),
            Some(Err(_)) | None => return Incoming::Gone,
        }
    }
}

/// Closes with `instruction` and waits briefly for the client's close reply.
async fn refuse(socket: &mut Socket, instruction: CloseInstruction) {
    send_close(socket, instruction).await;
    let _ = tokio::time::timeout(REFUSAL_CLOSE_GRACE, drain(socket)).await;
}

/// The gateway is stopping: the `shutdown` event, close 1001, and the wait for the
/// client's close reply (bounded by the stop sequence's deadline).
async fn say_goodbye(socket: &mut Socket) {
    if socket
        .send(Message::text(frame::shutdown_event()))
        .await
        .is_ok()
    {
        send_close(socket, close::GOING_AWAY).await;
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
