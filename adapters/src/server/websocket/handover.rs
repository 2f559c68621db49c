//! The old process's side of the move (docs/reference.md#restart; docs/lock.md, "Sessions
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
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::task::TaskTracker;

use super::adopt::{CarriedBytes, SessionIo};
use super::closing::{refuse, say_restarting};
use super::continuation::Continuation;
use super::frames::{answer, send};
use super::socket::{Socket, session_socket};
use crate::handoff::session_channel::{Delivery, OutgoingSession, SenderSlot, SessionSender};
use crate::server::counted_stream::CountedStream;
use crate::server::state::GatewayState;

/// A session that sent a request this recently is busy: it moves first.
const BUSY_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);
/// Sessions passed at a time, so that busy ones need not wait behind every idle one.
const CHUNK: usize = 64;

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
    /// The client sent a request lately: its next ones wait while it moves, so it
    /// goes before idle sessions.
    busy: bool,
}

/// The old process's side for one session: stop reading new messages, answer those
/// already read, wait (at most [`MOVE_DEADLINE`]) for one still arriving, write
/// everything queued; then offer the connection, and close this process's
/// descriptor only (no close frame, no FIN) once the successor has it. A session
/// that cannot move gets the `gateway restarting` goodbye.
pub(super) async fn move_out(mut socket: Socket, state: &GatewayState, session: &Continuation) {
    socket.get_mut().get_mut().hold();
    if answer_read_ahead(&mut socket, state).await.is_err() {
        return;
    }
    // The domain's mover decides from here; these steps feed it what the session does.
    let offers = state.mover.get().cloned();
    let mut mover = begin_move(&socket, offers.is_some());
    if finish_arriving_message(&mut socket, state, &mut mover)
        .await
        .is_err()
        || flush_when_quiet(&mut socket, &mut mover).await.is_err()
    {
        return;
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
    let busy = session
        .last_request
        .is_some_and(|at| at.elapsed() < BUSY_WITHIN);
    let record = session_record(session, unparsed);
    let taken = offer(&connection, record, busy, &offers).await;
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
    say_restarting_on(connection, carried, state).await;
}

/// The session ended during its move (the client left, broke the protocol, or
/// stopped reading): nothing more is said or offered.
struct SessionEnded;

/// Answers what tungstenite read before the hold, without waiting for more.
async fn answer_read_ahead(socket: &mut Socket, state: &GatewayState) -> Result<(), SessionEnded> {
    while let Some(read) = socket.next().now_or_never() {
        answer_read(socket, state, read).await?;
    }
    Ok(())
}

/// Answers one message read during the move: `true` if it was a request (now
/// answered), `false` for a control frame. A binary message is refused.
async fn answer_read(
    socket: &mut Socket,
    state: &GatewayState,
    read: Option<Result<Message, WsError>>,
) -> Result<bool, SessionEnded> {
    match read {
        Some(Ok(Message::Text(text))) => {
            send(socket, answer(text.as_str(), state))
                .await
                .map_err(|_| SessionEnded)?;
            Ok(true)
        }
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Ok(false),
        Some(Ok(Message::Binary(_))) => {
            refuse(socket, &state.metrics, close::BINARY_REFUSED).await;
            Err(SessionEnded)
        }
        Some(Ok(Message::Close(_)) | Err(_)) | None => Err(SessionEnded),
    }
}

/// The mover of a connected session, told the move began (and whether a message
/// is arriving, and whether the successor takes sessions).
fn begin_move(socket: &Socket, successor_takes_sessions: bool) -> SessionMover {
    let mut mover = SessionMover::new(Transport::Plain);
    mover.on(SessionEvent::ConnectAnswered { accepted: true });
    if socket.get_ref().get_ref().mid_message() {
        mover.on(SessionEvent::MessageStarted);
    }
    mover.on(SessionEvent::MoveRequested {
        at: Instant::now().into_std(),
        successor_takes_sessions,
    });
    mover
}

/// Waits for a message still arriving and answers it: the held reader gives
/// tungstenite its rest and nothing past it, so once it is answered tungstenite
/// holds nothing. Past the mover's deadline, the session does not move.
async fn finish_arriving_message(
    socket: &mut Socket,
    state: &GatewayState,
    mover: &mut SessionMover,
) -> Result<(), SessionEnded> {
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
            Ok(read) => {
                if answer_read(socket, state, read).await? {
                    mover.on(SessionEvent::MessageFinished);
                    mover.on(SessionEvent::RequestAnswered);
                }
            }
        }
    }
    Ok(())
}

/// At the quiet point, writes out the pongs tungstenite queued and anything else
/// still buffered (within [`MOVE_DEADLINE`]).
async fn flush_when_quiet(
    socket: &mut Socket,
    mover: &mut SessionMover,
) -> Result<(), SessionEnded> {
    if mover.state() == MoveState::Quiet {
        mover.on(SessionEvent::QueueNonEmpty);
        if !matches!(
            tokio::time::timeout(MOVE_DEADLINE, socket.flush()).await,
            Ok(Ok(()))
        ) {
            return Err(SessionEnded);
        }
        mover.on(SessionEvent::QueueEmpty);
    }
    Ok(())
}

/// What the successor needs to go on with `session`, with the bytes read past the
/// last message (`unparsed`).
fn session_record(session: &Continuation, unparsed: Vec<u8>) -> SessionRecord {
    SessionRecord {
        protocol: PROTOCOL_VERSION,
        // Only a `connect` that passed the token check gets here.
        authenticated: true,
        client: session.client.clone(),
        next_seq: session.last_seq + 1,
        last_tick_unix_ms: session.last_tick_unix_ms,
        fencing_token: session.fencing_token,
        unparsed,
    }
}

/// Offers a copy of `connection` with its record to the move step; `true` once the
/// successor acknowledged it.
async fn offer(
    connection: &std::net::TcpStream,
    record: SessionRecord,
    busy: bool,
    offers: &mpsc::UnboundedSender<MoveOffer>,
) -> bool {
    let Ok(copy) = connection.try_clone() else {
        return false;
    };
    let (reply, answered) = oneshot::channel();
    let offer = MoveOffer {
        fd: OwnedFd::from(copy),
        record,
        reply,
        busy,
    };
    offers.send(offer).is_ok() && answered.await.unwrap_or(false)
}

/// The goodbye of a session the successor did not take, still this process's: over
/// a fresh stream at the message boundary, the `carried` bytes read first.
async fn say_restarting_on(
    connection: std::net::TcpStream,
    carried: Vec<u8>,
    state: &GatewayState,
) {
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
    let Some(mut sender) = take_sender(slot) else {
        return MoveReport::default();
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
    let mut waiting: Vec<MoveOffer> = Vec::new();
    while let Some(batch) = next_chunk(&mut waiting, &mut incoming, tasks).await {
        let taken = if broken {
            vec![false; batch.len()]
        } else {
            let (taken, broke) = pass_batch(&mut sender, &batch).await;
            broken = broke;
            taken
        };
        settle(batch, taken, &mut report);
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

/// The sending end of the session channel made for the successor, taken from
/// `slot`; `None` if there is none or it is unusable.
fn take_sender(slot: &SenderSlot) -> Option<SessionSender> {
    let fd = slot.lock().unwrap_or_else(PoisonError::into_inner).take()?;
    match SessionSender::new(fd) {
        Ok(sender) => Some(sender),
        Err(error) => {
            tracing::warn!(%error, "the session channel is unusable; sessions do not move");
            None
        }
    }
}

/// The next offers to pass, busy sessions first: at most [`CHUNK`] at a time, so that
/// a busy session that reaches its quiet point while idle ones are passed goes ahead
/// of those still waiting. `None` once no session is left.
async fn next_chunk(
    waiting: &mut Vec<MoveOffer>,
    incoming: &mut mpsc::UnboundedReceiver<MoveOffer>,
    tasks: &TaskTracker,
) -> Option<Vec<MoveOffer>> {
    if waiting.is_empty() {
        waiting.extend(next_batch(incoming, tasks).await?);
    } else {
        while let Ok(offer) = incoming.try_recv() {
            waiting.push(offer);
        }
    }
    // Stable: busy ones first, each group in the order it came.
    waiting.sort_by_key(|offer| !offer.busy);
    let take = waiting.len().min(CHUNK);
    Some(waiting.drain(..take).collect())
}

/// The next offers to pass: all the sessions that reached their quiet point together
/// (they do: one batch for all that did). `None` once no session is left.
async fn next_batch(
    incoming: &mut mpsc::UnboundedReceiver<MoveOffer>,
    tasks: &TaskTracker,
) -> Option<Vec<MoveOffer>> {
    let first = tokio::select! {
        biased;
        offer = incoming.recv() => offer?,
        () = tasks.wait() => return None,
    };
    let mut batch = vec![first];
    tokio::task::yield_now().await;
    while let Ok(offer) = incoming.try_recv() {
        batch.push(offer);
    }
    Some(batch)
}

/// Passes one batch through the channel (within [`MOVE_DEADLINE`]): whether the
/// successor took each offer, and whether the channel broke (the sessions left then
/// do not move).
async fn pass_batch(sender: &mut SessionSender, batch: &[MoveOffer]) -> (Vec<bool>, bool) {
    let outgoing: Vec<OutgoingSession<'_>> = batch
        .iter()
        .map(|offer| OutgoingSession {
            fd: offer.fd.as_fd(),
            record: &offer.record,
        })
        .collect();
    match tokio::time::timeout(MOVE_DEADLINE, sender.send_all(&outgoing)).await {
        Ok(sent) => {
            let broken = if let Some(error) = &sent.broken {
                tracing::warn!(%error, "the session channel broke; the sessions left do not move");
                true
            } else {
                false
            };
            let taken = sent
                .deliveries
                .iter()
                .map(|delivery| *delivery == Delivery::Taken)
                .collect();
            (taken, broken)
        }
        Err(_) => {
            tracing::warn!(
                "the successor did not acknowledge sessions within 2 s; the sessions left do not move"
            );
            (vec![false; batch.len()], true)
        }
    }
}

/// Tells each session of `batch` whether the successor took it, and counts it.
fn settle(batch: Vec<MoveOffer>, taken: Vec<bool>, report: &mut MoveReport) {
    for (offer, taken) in batch.into_iter().zip(taken) {
        if taken {
            report.moved += 1;
        } else {
            report.not_moved += 1;
        }
        let _ = offer.reply.send(taken);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_domain::protocol::handshake::ClientInfo;

    /// An offer whose record names it `name`, busy or not.
    fn offer(name: &str, busy: bool) -> MoveOffer {
        let (reply, _) = oneshot::channel();
        let fd = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        MoveOffer {
            fd,
            record: SessionRecord {
                protocol: 1,
                authenticated: true,
                client: ClientInfo {
                    name: name.to_owned(),
                    version: "1".to_owned(),
                },
                next_seq: 1,
                last_tick_unix_ms: 0,
                fencing_token: None,
                unparsed: Vec::new(),
            },
            reply,
            busy,
        }
    }

    fn names(chunk: &[MoveOffer]) -> Vec<&str> {
        chunk
            .iter()
            .map(|o| o.record.client.name.as_str())
            .collect()
    }

    #[tokio::test]
    async fn busy_sessions_go_first_and_a_late_busy_one_jumps_the_queue_of_idle_ones() {
        let (offers, mut incoming) = mpsc::unbounded_channel();
        let tasks = TaskTracker::new();
        for n in 0..CHUNK + 10 {
            offers.send(offer(&format!("idle{n}"), false)).unwrap();
        }
        offers.send(offer("busy-early", true)).unwrap();
        let mut waiting = Vec::new();

        let first = next_chunk(&mut waiting, &mut incoming, &tasks)
            .await
            .unwrap();
        assert_eq!(first.len(), CHUNK);
        assert_eq!(names(&first)[..2], ["busy-early", "idle0"]);

        // A busy session that reaches its quiet point now goes before the idle ones
        // still waiting.
        offers.send(offer("busy-late", true)).unwrap();
        let second = next_chunk(&mut waiting, &mut incoming, &tasks)
            .await
            .unwrap();
        assert_eq!(names(&second)[0], "busy-late");
        assert_eq!(second.len(), 12);
    }
}
