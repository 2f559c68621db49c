//! The old process's side of the move (contract section 6; docs/lock.md, "Sessions
//! move with the restart"): each connected session is brought to its quiet point and
//! offered; the offers are passed in batches through the session channel, and a
//! session the successor does not take says its goodbye here.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::PoisonError;

use futures_util::{FutureExt, SinkExt, StreamExt};
use gateway_domain::ports::MoveReport;
use gateway_domain::protocol::{MAX_PAYLOAD, PROTOCOL_VERSION, close};
use gateway_domain::session_move::{
    MOVE_DEADLINE, MoveState, SessionEvent, SessionMover, SessionRecord, Transport, WaitingFor,
};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::adopt::{CarriedBytes, SessionIo};
use super::closing::{refuse, say_restarting};
use super::continuation::Continuation;
use super::frames::{answer, send};
use super::socket::{Socket, session_socket};
use crate::handoff::session_channel::{Delivery, OutgoingSession, SenderSlot, SessionSender};
use crate::server::counted_stream::CountedStream;
use crate::server::state::GatewayState;

/// A session at its quiet point, offered for the move: a copy of its connection's
/// descriptor, its record, and where to say whether the successor took it.
pub(crate) struct MoveOffer {
    /// A copy of the connection's descriptor: the session keeps its own until the
    /// verdict, to say goodbye on it if the successor does not take it.
    fd: OwnedFd,
    /// What the successor needs to go on with the session.
    record: SessionRecord,
    /// `true` once the successor acknowledged the session (it serves it now).
    reply: oneshot::Sender<bool>,
}

/// The old process's side for one session: stop reading new messages, answer those
/// already read, wait (at most [`MOVE_DEADLINE`]) for one still arriving, write
/// everything queued; then offer the connection, and close this process's
/// descriptor only (no close frame, no FIN) once the successor has it. A session
/// that cannot move gets the `gateway restarting` goodbye.
pub(super) async fn move_out(mut socket: Socket, state: &GatewayState, session: &Continuation) {
    socket.get_mut().get_mut().hold();
    // What tungstenite read before the hold: answered first.
    loop {
        match socket.next().now_or_never() {
            None => break,
            Some(Some(Ok(Message::Text(text)))) => {
                if send(&mut socket, answer(text.as_str(), state))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)))) => {}
            Some(Some(Ok(Message::Binary(_)))) => {
                return refuse(&mut socket, &state.metrics, close::BINARY_REFUSED).await;
            }
            Some(Some(Ok(Message::Close(_)) | Err(_)) | None) => return,
        }
    }
    // The domain's mover decides from here; this loop feeds it what the session does.
    let mut mover = SessionMover::new(Transport::Plain);
    mover.on(SessionEvent::ConnectAnswered { accepted: true });
    if socket.get_ref().get_ref().mid_message() {
        mover.on(SessionEvent::MessageStarted);
    }
    let offers = state.mover.get().cloned();
    mover.on(SessionEvent::MoveRequested {
        at: std::time::Instant::now(),
        successor_takes_sessions: offers.is_some(),
    });
    // A message still arriving: the held reader gives tungstenite its rest and nothing
    // past it, so once it is answered tungstenite holds nothing.
    while let MoveState::Waiting {
        until,
        on: WaitingFor::Message,
    } = mover.state()
    {
        match tokio::time::timeout_at(Instant::from_std(until), socket.next()).await {
            Err(_) => {
                mover.on(SessionEvent::DeadlineReached);
                tracing::info!(
                    "a message still incomplete 2 s after the move began: the session does not move"
                );
            }
            Ok(Some(Ok(Message::Text(text)))) => {
                mover.on(SessionEvent::MessageFinished);
                if send(&mut socket, answer(text.as_str(), state))
                    .await
                    .is_err()
                {
                    return;
                }
                mover.on(SessionEvent::RequestAnswered);
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)))) => {}
            Ok(Some(Ok(Message::Binary(_)))) => {
                return refuse(&mut socket, &state.metrics, close::BINARY_REFUSED).await;
            }
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) => return,
        }
    }
    if mover.state() == MoveState::Quiet {
        // Pongs tungstenite queued, and anything else still buffered.
        mover.on(SessionEvent::QueueNonEmpty);
        if !matches!(
            tokio::time::timeout(MOVE_DEADLINE, socket.flush()).await,
            Ok(Ok(()))
        ) {
            return;
        }
        mover.on(SessionEvent::QueueEmpty);
    }
    let (MoveState::Quiet, Some(offers)) = (mover.state(), offers) else {
        return say_restarting(&mut socket, state).await;
    };
    let Some((stream, unparsed)) = socket.get_mut().get_mut().get_mut().take_tcp() else {
        // Not a plain TCP connection (TLS): its keys live in this process.
        return say_restarting(&mut socket, state).await;
    };
    drop(socket);
    // Out of this process's epoll before anything else: it gets no event for a
    // connection it no longer serves.
    let Ok(connection) = stream.into_std() else {
        return;
    };
    let carried = unparsed.clone();
    let record = SessionRecord {
        protocol: PROTOCOL_VERSION,
        // Only a `connect` that passed the token check gets here.
        authenticated: true,
        client: session.client.clone(),
        next_seq: session.last_seq + 1,
        last_tick_unix_ms: session.last_tick_unix_ms,
        fencing_token: session.fencing_token,
        unparsed,
    };
    let taken = match connection.try_clone() {
        Ok(copy) => {
            let (reply, answered) = oneshot::channel();
            let offer = MoveOffer {
                fd: OwnedFd::from(copy),
                record,
                reply,
            };
            offers.send(offer).is_ok() && answered.await.unwrap_or(false)
        }
        Err(_) => false,
    };
    mover.on(if taken {
        SessionEvent::Handed
    } else {
        SessionEvent::HandoverFailed
    });
    if mover.state() == MoveState::Moved {
        // Dropping the descriptor closes it: the connection lives on in the
        // successor's copy, so no FIN leaves.
        drop(connection);
        return;
    }
    // Still this process's: the goodbye, over a fresh stream at the message boundary.
    let Ok(stream) = TcpStream::from_std(connection) else {
        return;
    };
    let io = SessionIo::Adopted(CarriedBytes::new(
        CountedStream::new(stream, state.metrics.byte_counters()),
        carried,
    ));
    let mut socket = session_socket(io, state, MAX_PAYLOAD).await;
    say_restarting(&mut socket, state).await;
}

/// The old process's move step: takes the channel made for the successor from
/// `slot`, tells every session to move, and passes those that reach their quiet
/// point in batches, until no session is left. Without a channel, nothing moves.
pub(crate) async fn move_sessions(state: &GatewayState, slot: &SenderSlot) -> MoveReport {
    let taken = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    let Some(fd) = taken else {
        return MoveReport::default();
    };
    let mut sender = match SessionSender::new(fd) {
        Ok(sender) => sender,
        Err(error) => {
            tracing::warn!(%error, "the session channel is unusable; sessions do not move");
            return MoveReport::default();
        }
    };
    let (offers, mut incoming) = mpsc::unbounded_channel();
    if state.mover.set(offers).is_err() {
        return MoveReport::default();
    }
    state.moving.cancel();
    let tasks = &state.websockets.tasks;
    tasks.close();
    let mut report = MoveReport::default();
    let mut broken = false;
    loop {
        let first = tokio::select! {
            biased;
            offer = incoming.recv() => match offer {
                Some(offer) => offer,
                None => break,
            },
            () = tasks.wait() => break,
        };
        // Sessions reach their quiet points together: one batch for all that did.
        let mut batch = vec![first];
        tokio::task::yield_now().await;
        while let Ok(offer) = incoming.try_recv() {
            batch.push(offer);
        }
        let taken = if broken {
            vec![false; batch.len()]
        } else {
            let outgoing: Vec<OutgoingSession<'_>> = batch
                .iter()
                .map(|offer| OutgoingSession {
                    fd: offer.fd.as_fd(),
                    record: &offer.record,
                })
                .collect();
            match tokio::time::timeout(MOVE_DEADLINE, sender.send_all(&outgoing)).await {
                Ok(sent) => {
                    if let Some(error) = &sent.broken {
                        tracing::warn!(%error, "the session channel broke; the sessions left do not move");
                        broken = true;
                    }
                    sent.deliveries
                        .iter()
                        .map(|delivery| *delivery == Delivery::Taken)
                        .collect()
                }
                Err(_) => {
                    tracing::warn!(
                        "the successor did not acknowledge sessions within 2 s; the sessions left do not move"
                    );
                    broken = true;
                    vec![false; batch.len()]
                }
            }
        };
        for (offer, taken) in batch.into_iter().zip(taken) {
            if taken {
                report.moved += 1;
            } else {
                report.not_moved += 1;
            }
            let _ = offer.reply.send(taken);
        }
    }
    if !broken {
        let _ = sender.finish().await;
    }
    tracing::info!(
        moved = report.moved,
        not_moved = report.not_moved,
        "websocket sessions moved to the new process"
    );
    report
}
