//! One WebSocket client, from `connect` to close: the handshake, requests, ticks, and
//! the goodbye when the gateway stops.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::StreamExt;
use gateway_domain::protocol::close::{self, CloseInstruction};
use gateway_domain::protocol::handshake::{ClientInfo, HandshakeOutcome, evaluate_fenced_connect};
use gateway_domain::protocol::{MAX_HANDSHAKE_PAYLOAD, MAX_PAYLOAD, frame};
use gateway_domain::session_move::MOVE_DEADLINE;
use tokio::time::error::Elapsed;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use super::closing::{refuse, refuse_mid_message, say_goodbye, say_lock_lost, say_restarting};
use super::continuation::Continuation;
use super::frames::{answer, send};
use super::handover;
use super::inbound_guard::Violation;
use super::socket::Socket;
use crate::server::metrics::{Handshake, Metrics};
use crate::server::state::GatewayState;
use crate::unix_time::unix_ms;

/// What the next client message turned out to be.
enum Incoming {
    Text(String),
    /// The message breaks a rule: close with this.
    Refuse(CloseInstruction),
    /// A message broke a limit mid-way (size, time, the gateway's budget): the
    /// protocol state is gone, the rest of the message is still on the wire.
    Violated(Violation),
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
    let Some(first) = first_message(&mut socket, &state, &lock_lost).await else {
        return;
    };
    let Some(text) = connect_text(&mut socket, &state.metrics, first).await else {
        return;
    };
    if !state.may_act() || lock_lost.is_cancelled() {
        return say_lock_lost(&mut socket, &state).await;
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
            unauthorized: true,
        } => refuse_wrong_token(&mut socket, &state, peer, response, close).await,
        HandshakeOutcome::Rejected {
            response, close, ..
        } => refuse_connect(&mut socket, &state.metrics, response, close).await,
        HandshakeOutcome::Accepted { hello_ok, client } => {
            let connect = Connect {
                hello_ok,
                client,
                fencing_token,
            };
            accept(socket, &state, peer, &lock_lost, connect).await;
        }
    }
}

/// Waits for the client's first message (its `connect`), within the handshake
/// timeout: `Err` once that passed. `None` once the session ended instead: the
/// gateway stopping, the lock lost, or the sessions moving (one before `connect`
/// moves only if its `connect` is arriving, once answered, within the move's
/// deadline; else the goodbye).
async fn first_message(
    socket: &mut Socket,
    state: &GatewayState,
    lock_lost: &CancellationToken,
) -> Option<Result<Incoming, Elapsed>> {
    let handshake_timeout = state.timings.handshake_timeout;
    let began = Instant::now();
    tokio::select! {
        () = state.websockets.signal.cancelled() => { say_goodbye(socket, state).await; None },
        () = lock_lost.cancelled() => { say_lock_lost(socket, state).await; None },
        () = state.moving.cancelled() => {
            if !socket.get_ref().get_ref().mid_message() {
                say_restarting(socket, state).await;
                return None;
            }
            let deadline = (began + handshake_timeout).min(Instant::now() + MOVE_DEADLINE);
            match tokio::time::timeout_at(deadline, next_text(socket, MAX_HANDSHAKE_PAYLOAD)).await {
                Ok(first) => Some(Ok(first)),
                Err(_) => { say_restarting(socket, state).await; None },
            }
        }
        first = tokio::time::timeout(handshake_timeout, next_text(socket, MAX_HANDSHAKE_PAYLOAD)) => Some(first),
    }
}

/// The text of the client's `connect`, or `None` once the session was refused for
/// a first message that was late, not text, or broke a limit (or the client left).
async fn connect_text(
    socket: &mut Socket,
    metrics: &Metrics,
    first: Result<Incoming, Elapsed>,
) -> Option<String> {
    match first {
        Err(_elapsed) => {
            metrics.handshake(Handshake::Timeout);
            refuse(socket, metrics, close::HANDSHAKE_TIMEOUT).await;
            None
        }
        Ok(Incoming::Refuse(instruction)) => {
            metrics.handshake(Handshake::Invalid);
            refuse(socket, metrics, instruction).await;
            None
        }
        Ok(Incoming::Violated(violation)) => {
            metrics.handshake(Handshake::Invalid);
            refuse_mid_message(socket, metrics, violation).await;
            None
        }
        Ok(Incoming::Gone) => None,
        Ok(Incoming::Text(text)) => Some(text),
    }
}

/// A `connect` with a missing or wrong token: its answer waits its turn among its
/// host's failures (turned away at once when too many wait), then the refusal.
async fn refuse_wrong_token(
    socket: &mut Socket,
    state: &GatewayState,
    peer: SocketAddr,
    response: Option<String>,
    close: CloseInstruction,
) {
    let metrics = &state.metrics;
    metrics.handshake(Handshake::Unauthorized);
    let Some(ticket) = state.auth_throttle.schedule_failure(peer.ip()) else {
        tracing::warn!(%peer, "connect with a wrong token turned away: too many failed attempts waiting");
        return refuse(socket, metrics, close::TRY_AGAIN_LATER).await;
    };
    tracing::warn!(%peer, "connect with a missing or wrong token refused");
    tokio::select! {
        () = state.websockets.signal.cancelled() => return say_goodbye(socket, state).await,
        () = tokio::time::sleep_until(ticket.answer_at) => {}
    }
    if let Some(response) = response {
        let _ = send(socket, response).await;
    }
    drop(ticket);
    refuse(socket, metrics, close).await;
}

/// A `connect` refused for another reason (protocol mismatch, invalid, fenced): the
/// error response if any, then the close.
async fn refuse_connect(
    socket: &mut Socket,
    metrics: &Metrics,
    response: Option<String>,
    close: CloseInstruction,
) {
    metrics.handshake(if close.code == close::PROTOCOL_MISMATCH.code {
        Handshake::ProtocolMismatch
    } else {
        Handshake::Invalid
    });
    if let Some(response) = response {
        let _ = send(socket, response).await;
    }
    refuse(socket, metrics, close).await;
}

/// An accepted `connect`, as [`accept`] needs it.
struct Connect {
    /// The `hello-ok` response to send.
    hello_ok: String,
    /// The client's self-description.
    client: ClientInfo,
    /// The cluster fencing token of the term the session belongs to.
    fencing_token: Option<u64>,
}

/// An accepted `connect`: `hello-ok` at once (whatever others are failing), then the
/// connected session, counted as a client, with messages up to 1 MiB.
async fn accept(
    mut socket: Socket,
    state: &GatewayState,
    peer: SocketAddr,
    lock_lost: &CancellationToken,
    connect: Connect,
) {
    let Connect {
        hello_ok,
        client,
        fencing_token,
    } = connect;
    state.metrics.handshake(Handshake::Ok);
    if send(&mut socket, hello_ok).await.is_err() {
        return;
    }
    tracing::debug!(%peer, client = %client.name, version = %client.version, "client connected");
    // Connected: from now on messages may be up to 1 MiB.
    socket.get_mut().set_message_limit(MAX_PAYLOAD);
    let _counted = state.client_connected();
    let period = state.timings.tick_interval;
    let mut session = Continuation {
        client,
        fencing_token,
        last_seq: 0,
        last_tick_unix_ms: unix_ms(),
        next_tick: Instant::now() + period,
        last_request: None,
    };
    connected(socket, state, lock_lost, &mut session).await;
}

/// A session moved here from the old process at a restart: `restarted` first, then
/// on as if it had connected here.
pub(crate) async fn resume(
    mut socket: Socket,
    state: Arc<GatewayState>,
    mut session: Continuation,
    previous_pid: u32,
) {
    let lock_lost = match state.cluster.as_ref().map(|gate| gate.session_signal()) {
        None => CancellationToken::new(),
        Some(Some((token, lost))) => {
            session.fencing_token = Some(token);
            lost
        }
        Some(None) => return say_lock_lost(&mut socket, &state).await,
    };
    let _counted = state.client_connected();
    session.last_seq += 1;
    let restarted = frame::restarted_event(
        state.identity.pid,
        previous_pid,
        &state.identity.version,
        session.last_seq,
    );
    if send(&mut socket, restarted).await.is_err() {
        return;
    }
    connected(socket, &state, &lock_lost, &mut session).await;
}

/// A connected session until it ends, or moves to the successor.
async fn connected(
    mut socket: Socket,
    state: &GatewayState,
    lock_lost: &CancellationToken,
    session: &mut Continuation,
) {
    if let Served::Move = serve(&mut socket, state, lock_lost, session).await {
        handover::move_out(socket, state, session).await;
    }
}

/// How [`serve`] ended.
enum Served {
    /// The session is over.
    Ended,
    /// The sessions move to a successor: this one goes to its quiet point.
    Move,
}

/// The connected phase: answer requests, send ticks, until either side ends it.
async fn serve(
    socket: &mut Socket,
    state: &GatewayState,
    lock_lost: &CancellationToken,
    session: &mut Continuation,
) -> Served {
    // One registration with the stop token for the whole session, not one per message.
    let shutdown = state.websockets.signal.clone();
    let stopping = shutdown.cancelled();
    tokio::pin!(stopping);
    let lost = lock_lost.cancelled();
    tokio::pin!(lost);
    let moving = state.moving.cancelled();
    tokio::pin!(moving);
    let period = state.timings.tick_interval;
    let mut ticks = tokio::time::interval_at(session.next_tick, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            // A lost lock is said first: the stop that follows it must not hide why.
            () = &mut lost => { say_lock_lost(socket, state).await; return Served::Ended; },
            () = &mut stopping => { say_goodbye(socket, state).await; return Served::Ended; },
            () = &mut moving => return Served::Move,
            incoming = next_text(socket, MAX_PAYLOAD) => match incoming {
                // Asked at the moment of acting: a holder that just woke from a
                // freeze has lost its lease before its keep-alive task knows it.
                Incoming::Text(_) if !state.may_act() => { say_lock_lost(socket, state).await; return Served::Ended; },
                Incoming::Text(text) => {
                    session.last_request = Some(Instant::now());
                    if send(socket, answer(&text, state)).await.is_err() {
                        return Served::Ended;
                    }
                }
                Incoming::Refuse(instruction) => { refuse(socket, &state.metrics, instruction).await; return Served::Ended; },
                Incoming::Violated(violation) => { refuse_mid_message(socket, &state.metrics, violation).await; return Served::Ended; },
                Incoming::Gone => return Served::Ended,
            },
            _ = ticks.tick() => {
                if !state.may_act() {
                    { say_lock_lost(socket, state).await; return Served::Ended; };
                }
                session.last_seq += 1;
                session.last_tick_unix_ms = unix_ms();
                if send(socket, frame::tick_event(session.last_tick_unix_ms, session.last_seq)).await.is_err() {
                    return Served::Ended;
                }
            }
        }
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
            Some(Err(WsError::Capacity(_))) => return Incoming::Violated(Violation::TooBig),
            Some(Err(WsError::Io(error))) => {
                return Violation::of(&error).map_or(Incoming::Gone, Incoming::Violated);
            }
            Some(Err(_)) | None => return Incoming::Gone,
        }
    }
}
