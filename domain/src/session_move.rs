//! Sessions move with the restart (docs/reference.md#restart): the decisions of the session
//! mover for one WebSocket session once the old process wants to move it, and the
//! record of what moves with the session's connection. Pure: the caller feeds
//! events (what the session did) and the clock's instants; nothing here waits.

use std::time::{Duration, Instant};

use thiserror::Error;

use crate::protocol::goodbye::{self, Goodbye};
use crate::protocol::handshake::ClientInfo;

/// How long a session may take to reach a quiet point once its move starts: a
/// message still arriving, or a `connect` still pending.
pub const MOVE_DEADLINE: Duration = Duration::from_secs(2);

/// How the session's bytes travel: only a plain TCP connection can change process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Plain,
    /// The TLS keys live in this process: the session cannot move.
    Tls,
}

/// Where the session is in its life, as far as moving goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No complete message yet: `connect` has not been read.
    BeforeConnect,
    /// `connect` has been read and not answered yet.
    ConnectPending,
    /// `connect` was accepted: requests, events and ticks.
    Connected,
}

/// What the session mover learns about one session, in the order it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    /// The first frame of a client message arrived (its end has not).
    MessageStarted,
    /// The last frame of that message arrived: it is read, and owed an answer. Before
    /// `connect`, the first complete message is the `connect` (or what stands for
    /// it), answered by [`SessionEvent::ConnectAnswered`]; after, it is a request,
    /// answered by [`SessionEvent::RequestAnswered`].
    MessageFinished,
    /// The answer to a request was queued for the client.
    RequestAnswered,
    /// Frames are queued for the client and not yet written.
    QueueNonEmpty,
    /// Everything queued was written to the socket.
    QueueEmpty,
    /// `connect` was answered: `hello-ok` (accepted), or a refusal (the session ends).
    ConnectAnswered { accepted: bool },
    /// The old process wants the session moved: a successor serves, and takes sessions
    /// of this protocol (`successor_takes_sessions`), or does not.
    MoveRequested {
        at: Instant,
        successor_takes_sessions: bool,
    },
    /// The instant of [`MoveState::Waiting`] has come.
    DeadlineReached,
    /// The successor acknowledged the session: it serves it now.
    Handed,
    /// The successor did not take the session (refused its record, or the channel
    /// broke before its batch was acknowledged).
    HandoverFailed,
}

/// What the session is waiting for before it can move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitingFor {
    /// A message of which some frames (or some bytes) have arrived.
    Message,
    /// The answer to `connect`.
    Connect,
    /// Answers to requests already read.
    Answers,
    /// Frames queued for the client.
    Queue,
}

/// Why a session cannot move: it gets the `shutdown` event with reason
/// `gateway restarting` and close `1012`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotMovable {
    /// A TLS session: its keys live in this process.
    Tls,
    /// The successor cannot take sessions (another protocol, or no session channel).
    SuccessorRefused,
    /// Not past `connect`, with no `connect` read or arriving.
    BeforeConnect,
    /// Its `connect` was refused while it waited: the refusal ends it anyway.
    ConnectRefused,
    /// The successor refused its record, or the channel broke before it said so.
    HandoverFailed,
}

/// The mover's verdict on one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveState {
    /// No move asked for: the session is served as usual.
    Serving,
    /// Not quiet yet; deliver [`SessionEvent::DeadlineReached`] at `until` (2 s after
    /// the move began) unless it becomes quiet first.
    Waiting { until: Instant, on: WaitingFor },
    /// Move it now: nothing read is unanswered, nothing queued, no message arriving.
    Quiet,
    /// The successor has it; this process forgets it (closes its descriptor only).
    Moved,
    /// It cannot move.
    NotMovable(NotMovable),
    /// It did not become quiet within [`MOVE_DEADLINE`].
    TimedOut,
}

impl MoveState {
    /// The goodbye the old process owes the session, if the state is one that ends it.
    pub fn goodbye(self) -> Option<Goodbye> {
        match self {
            Self::NotMovable(_) | Self::TimedOut => Some(goodbye::RESTARTING),
            _ => None,
        }
    }

    /// Whether the mover is done with the session (moved or said goodbye to).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Moved | Self::NotMovable(_) | Self::TimedOut)
    }
}

/// The session mover's state for one session: fed every [`SessionEvent`] from the
/// session's start, it knows at any moment whether the session could move.
#[derive(Debug, Clone)]
pub struct SessionMover {
    /// Only plain TCP moves.
    transport: Transport,
    phase: Phase,
    /// Some frames (or bytes) of a client message arrived, its last one has not.
    message_in_progress: bool,
    /// Requests read and not answered yet.
    unanswered: u32,
    /// Frames queued for the client and not written yet.
    queued: bool,
    state: MoveState,
}

impl SessionMover {
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            phase: Phase::BeforeConnect,
            message_in_progress: false,
            unanswered: 0,
            queued: false,
            state: MoveState::Serving,
        }
    }

    pub fn state(&self) -> MoveState {
        self.state
    }

    /// Takes one event into account; the verdict after it. Events after a final
    /// verdict change nothing.
    pub fn on(&mut self, event: SessionEvent) -> MoveState {
        if self.state.is_final() {
            return self.state;
        }
        match event {
            SessionEvent::MessageStarted => self.message_in_progress = true,
            SessionEvent::MessageFinished => {
                self.message_in_progress = false;
                match self.phase {
                    Phase::BeforeConnect => self.phase = Phase::ConnectPending,
                    Phase::ConnectPending => {}
                    Phase::Connected => self.unanswered = self.unanswered.saturating_add(1),
                }
            }
            SessionEvent::RequestAnswered => self.unanswered = self.unanswered.saturating_sub(1),
            SessionEvent::QueueNonEmpty => self.queued = true,
            SessionEvent::QueueEmpty => self.queued = false,
            SessionEvent::ConnectAnswered { accepted: true } => self.phase = Phase::Connected,
            SessionEvent::ConnectAnswered { accepted: false } => {
                if self.state != MoveState::Serving {
                    self.state = MoveState::NotMovable(NotMovable::ConnectRefused);
                }
                return self.state;
            }
            SessionEvent::MoveRequested {
                at,
                successor_takes_sessions,
            } => {
                if self.state == MoveState::Serving {
                    self.state = self.begin(at, successor_takes_sessions);
                }
                return self.state;
            }
            SessionEvent::DeadlineReached => {
                if let MoveState::Waiting { .. } = self.state {
                    self.state = MoveState::TimedOut;
                }
                return self.state;
            }
            SessionEvent::Handed => {
                if self.state == MoveState::Quiet {
                    self.state = MoveState::Moved;
                }
                return self.state;
            }
            SessionEvent::HandoverFailed => {
                if self.state == MoveState::Quiet {
                    self.state = MoveState::NotMovable(NotMovable::HandoverFailed);
                }
                return self.state;
            }
        }
        if let MoveState::Waiting { until, .. } = self.state {
            self.state = self.settle(until);
        }
        self.state
    }

    fn begin(&self, at: Instant, successor_takes_sessions: bool) -> MoveState {
        if self.transport == Transport::Tls {
            return MoveState::NotMovable(NotMovable::Tls);
        }
        if !successor_takes_sessions {
            return MoveState::NotMovable(NotMovable::SuccessorRefused);
        }
        // A `connect` still arriving counts as pending: it is waited for.
        if self.phase == Phase::BeforeConnect && !self.message_in_progress {
            return MoveState::NotMovable(NotMovable::BeforeConnect);
        }
        self.settle(at + MOVE_DEADLINE)
    }

    /// Quiet, or what it still waits for (until `until`).
    fn settle(&self, until: Instant) -> MoveState {
        let on = if self.message_in_progress {
            WaitingFor::Message
        } else if self.phase != Phase::Connected {
            WaitingFor::Connect
        } else if self.unanswered > 0 {
            WaitingFor::Answers
        } else if self.queued {
            WaitingFor::Queue
        } else {
            return MoveState::Quiet;
        };
        MoveState::Waiting { until, on }
    }
}

/// Where the session mover acts on its verdicts (the adapters: the session
/// channel, the WebSocket).
pub trait SessionHandover {
    /// Passes the quiet session to the successor. MUST return `true` only once the
    /// successor has acknowledged it (it serves it from then on), `false` when the
    /// successor refused it or the channel broke before its acknowledgement (the
    /// successor then does not serve it: its copy of the descriptor is closed).
    fn hand_over(&mut self) -> bool;
    /// Ends the session: the `shutdown` event and its close frame.
    fn say_goodbye(&mut self, goodbye: Goodbye);
}

/// Acts on the mover's verdict: hands a quiet session over, says goodbye to one
/// that cannot move (or could not be handed over), leaves a waiting one alone. The
/// verdict after acting.
pub fn act(mover: &mut SessionMover, handover: &mut impl SessionHandover) -> MoveState {
    if mover.state() == MoveState::Quiet {
        let handed = handover.hand_over();
        mover.on(if handed {
            SessionEvent::Handed
        } else {
            SessionEvent::HandoverFailed
        });
    }
    let state = mover.state();
    if let Some(goodbye) = state.goodbye() {
        handover.say_goodbye(goodbye);
    }
    state
}

/// The version of [`SessionRecord`]'s encoding written by this build.
pub const RECORD_VERSION: u16 = 1;
/// Most bytes read but not parsed that a record carries. A session with more does
/// not move (its record cannot be encoded).
pub const MAX_CARRIED_BYTES: usize = 64 * 1024;
/// Longest client name or version a record carries.
pub const MAX_CLIENT_FIELD: usize = 1024;
/// Size of the length prefix in front of every record.
const LENGTH_PREFIX: usize = 4;

/// What moves with a session's connection: everything the new process needs to go
/// on as if nothing happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The protocol version the session speaks.
    pub protocol: u64,
    /// Whether `connect` passed the token check (a gateway without a token
    /// authenticates every accepted `connect`).
    pub authenticated: bool,
    /// The client's self-description from `connect`.
    pub client: ClientInfo,
    /// The `seq` of the next event sent to this session.
    pub next_seq: u64,
    /// When the last tick was sent (or `hello-ok`, before the first tick), unix ms:
    /// both processes read the same wall clock, and an instant does not age while
    /// the record is in the channel.
    pub last_tick_unix_ms: u64,
    /// The cluster fencing token of the term the session belongs to.
    pub fencing_token: Option<u64>,
    /// Bytes read from the socket and not parsed yet, to be parsed first.
    pub unparsed: Vec<u8>,
}

/// Why a record could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("session record version {0} is not known to this gateway (it knows {RECORD_VERSION})")]
    UnknownVersion(u16),
    #[error("session record truncated")]
    Truncated,
    #[error("session record has {0} bytes after its last field")]
    TrailingBytes(usize),
    #[error("session record client field is not UTF-8")]
    NotUtf8,
    #[error("session record too large: {0}")]
    TooLarge(&'static str),
}

impl SessionRecord {
    /// The encoding: a big-endian `u32` length of what follows, then a `u16` version
    /// (so that a reader can refuse a version it does not know and skip to the next
    /// record), then, in version 1: protocol `u64`, flags `u8` (bit 0 authenticated,
    /// bit 1 fencing token present), next seq `u64`, last tick `u64`, fencing token
    /// `u64` (only when present), client name and version (`u16` length + UTF-8 each),
    /// unparsed bytes (`u32` length + bytes).
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        if self.unparsed.len() > MAX_CARRIED_BYTES {
            return Err(RecordError::TooLarge("unparsed bytes"));
        }
        if self.client.name.len() > MAX_CLIENT_FIELD || self.client.version.len() > MAX_CLIENT_FIELD
        {
            return Err(RecordError::TooLarge("client field"));
        }
        let mut out = vec![0u8; LENGTH_PREFIX];
        out.extend_from_slice(&RECORD_VERSION.to_be_bytes());
        out.extend_from_slice(&self.protocol.to_be_bytes());
        let flags = u8::from(self.authenticated) | (u8::from(self.fencing_token.is_some()) << 1);
        out.push(flags);
        out.extend_from_slice(&self.next_seq.to_be_bytes());
        out.extend_from_slice(&self.last_tick_unix_ms.to_be_bytes());
        if let Some(token) = self.fencing_token {
            out.extend_from_slice(&token.to_be_bytes());
        }
        for field in [&self.client.name, &self.client.version] {
            // Bounded by MAX_CLIENT_FIELD above.
            out.extend_from_slice(&(field.len() as u16).to_be_bytes());
            out.extend_from_slice(field.as_bytes());
        }
        out.extend_from_slice(&(self.unparsed.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.unparsed);
        let length = (out.len() - LENGTH_PREFIX) as u32;
        out[..LENGTH_PREFIX].copy_from_slice(&length.to_be_bytes());
        Ok(out)
    }

    /// Reads one record from the front of `bytes`: the record, and what follows it.
    /// A record of an unknown version is refused with
    /// [`RecordError::UnknownVersion`]; [`split_record`] skips it.
    pub fn decode(bytes: &[u8]) -> Result<(Self, &[u8]), RecordError> {
        let (body, rest) = split_record(bytes)?;
        let mut reader = Reader(body);
        let version = reader.u16()?;
        if version != RECORD_VERSION {
            return Err(RecordError::UnknownVersion(version));
        }
        let protocol = reader.u64()?;
        let flags = reader.u8()?;
        let next_seq = reader.u64()?;
        let last_tick_unix_ms = reader.u64()?;
        let fencing_token = if flags & 0b10 != 0 {
            Some(reader.u64()?)
        } else {
            None
        };
        let name = reader.text()?;
        let version = reader.text()?;
        let unparsed_len = reader.u32()? as usize;
        let unparsed = reader.take(unparsed_len)?.to_vec();
        if !reader.0.is_empty() {
            return Err(RecordError::TrailingBytes(reader.0.len()));
        }
        let record = Self {
            protocol,
            authenticated: flags & 0b1 != 0,
            client: ClientInfo { name, version },
            next_seq,
            last_tick_unix_ms,
            fencing_token,
            unparsed,
        };
        Ok((record, rest))
    }
}

/// The first record of `bytes` (without its length prefix, version first) and what
/// follows it, whatever its version.
pub fn split_record(bytes: &[u8]) -> Result<(&[u8], &[u8]), RecordError> {
    let mut reader = Reader(bytes);
    let length = reader.u32()? as usize;
    let body = reader.take(length)?;
    Ok((body, reader.0))
}

/// A cursor over a record's bytes that fails with `Truncated` instead of panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, RecordError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, RecordError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn text(&mut self) -> Result<String, RecordError> {
        let len = self.u16()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordError::NotUtf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mockall::mock;
    use proptest::prelude::*;

    mock! {
        Handover {}
        impl SessionHandover for Handover {
            fn hand_over(&mut self) -> bool;
            fn say_goodbye(&mut self, goodbye: Goodbye);
        }
    }

    fn connected() -> SessionMover {
        let mut mover = SessionMover::new(Transport::Plain);
        mover.on(SessionEvent::MessageStarted);
        mover.on(SessionEvent::MessageFinished);
        mover.on(SessionEvent::ConnectAnswered { accepted: true });
        mover
    }

    fn move_at(at: Instant) -> SessionEvent {
        SessionEvent::MoveRequested {
            at,
            successor_takes_sessions: true,
        }
    }

    #[test]
    fn a_connected_idle_session_is_quiet_and_handed_over_without_a_goodbye() {
        let mut mover = connected();
        assert_eq!(mover.on(move_at(Instant::now())), MoveState::Quiet);
        let mut handover = MockHandover::new();
        handover.expect_hand_over().times(1).return_const(true);
        handover.expect_say_goodbye().never();
        assert_eq!(act(&mut mover, &mut handover), MoveState::Moved);
    }

    #[test]
    fn a_session_before_its_move_is_served_as_usual() {
        let mut mover = connected();
        mover.on(SessionEvent::MessageStarted);
        mover.on(SessionEvent::MessageFinished);
        assert_eq!(mover.state(), MoveState::Serving);
        let mut handover = MockHandover::new();
        handover.expect_hand_over().never();
        handover.expect_say_goodbye().never();
        assert_eq!(act(&mut mover, &mut handover), MoveState::Serving);
    }

    #[test]
    fn a_message_arriving_is_waited_for_then_its_answer_then_the_queue_then_it_moves() {
        let start = Instant::now();
        let until = start + MOVE_DEADLINE;
        let mut mover = connected();
        mover.on(SessionEvent::MessageStarted);
        assert_eq!(
            mover.on(move_at(start)),
            MoveState::Waiting {
                until,
                on: WaitingFor::Message
            }
        );
        let mut handover = MockHandover::new();
        handover.expect_hand_over().never();
        handover.expect_say_goodbye().never();
        assert!(matches!(
            act(&mut mover, &mut handover),
            MoveState::Waiting { .. }
        ));
        assert_eq!(
            mover.on(SessionEvent::MessageFinished),
            MoveState::Waiting {
                until,
                on: WaitingFor::Answers
            }
        );
        mover.on(SessionEvent::QueueNonEmpty);
        assert_eq!(
            mover.on(SessionEvent::RequestAnswered),
            MoveState::Waiting {
                until,
                on: WaitingFor::Queue
            }
        );
        assert_eq!(mover.on(SessionEvent::QueueEmpty), MoveState::Quiet);
        let mut handover = MockHandover::new();
        handover.expect_hand_over().times(1).return_const(true);
        handover.expect_say_goodbye().never();
        assert_eq!(act(&mut mover, &mut handover), MoveState::Moved);
        assert_eq!(mover.on(SessionEvent::DeadlineReached), MoveState::Moved);
    }

    #[test]
    fn a_pending_connect_is_waited_for_and_the_session_moves_once_it_is_accepted() {
        let start = Instant::now();
        let mut mover = SessionMover::new(Transport::Plain);
        mover.on(SessionEvent::MessageStarted);
        mover.on(SessionEvent::MessageFinished);
        assert_eq!(
            mover.on(move_at(start)),
            MoveState::Waiting {
                until: start + MOVE_DEADLINE,
                on: WaitingFor::Connect
            }
        );
        assert_eq!(
            mover.on(SessionEvent::ConnectAnswered { accepted: true }),
            MoveState::Quiet
        );
    }

    #[test]
    fn a_connect_still_arriving_is_waited_for() {
        let mut mover = SessionMover::new(Transport::Plain);
        mover.on(SessionEvent::MessageStarted);
        assert!(matches!(
            mover.on(move_at(Instant::now())),
            MoveState::Waiting {
                on: WaitingFor::Message,
                ..
            }
        ));
        assert!(matches!(
            mover.on(SessionEvent::MessageFinished),
            MoveState::Waiting {
                on: WaitingFor::Connect,
                ..
            }
        ));
    }

    #[test]
    fn a_refused_connect_while_waiting_makes_the_session_not_movable() {
        let mut mover = SessionMover::new(Transport::Plain);
        mover.on(SessionEvent::MessageStarted);
        mover.on(SessionEvent::MessageFinished);
        mover.on(move_at(Instant::now()));
        assert_eq!(
            mover.on(SessionEvent::ConnectAnswered { accepted: false }),
            MoveState::NotMovable(NotMovable::ConnectRefused)
        );
    }

    #[test]
    fn sessions_that_cannot_move_get_the_restarting_goodbye_and_are_not_handed_over() {
        let now = Instant::now();
        let tls = {
            let mut mover = SessionMover::new(Transport::Tls);
            mover.on(SessionEvent::MessageStarted);
            mover.on(SessionEvent::MessageFinished);
            mover.on(SessionEvent::ConnectAnswered { accepted: true });
            mover
        };
        let refused_by_successor = connected();
        let before_connect = SessionMover::new(Transport::Plain);
        let cases = [
            (tls, true, NotMovable::Tls),
            (refused_by_successor, false, NotMovable::SuccessorRefused),
            (before_connect, true, NotMovable::BeforeConnect),
        ];
        for (mut mover, successor_takes_sessions, why) in cases {
            let state = mover.on(SessionEvent::MoveRequested {
                at: now,
                successor_takes_sessions,
            });
            assert_eq!(state, MoveState::NotMovable(why));
            let mut handover = MockHandover::new();
            handover.expect_hand_over().never();
            handover
                .expect_say_goodbye()
                .withf(|goodbye| *goodbye == goodbye::RESTARTING && goodbye.close.code == 1012)
                .times(1)
                .return_const(());
            assert_eq!(act(&mut mover, &mut handover), MoveState::NotMovable(why));
        }
    }

    #[test]
    fn a_message_incomplete_at_the_deadline_times_out_with_the_restarting_goodbye() {
        let mut mover = connected();
        mover.on(SessionEvent::MessageStarted);
        mover.on(move_at(Instant::now()));
        assert_eq!(mover.on(SessionEvent::DeadlineReached), MoveState::TimedOut);
        // A message completing after the deadline changes nothing.
        assert_eq!(mover.on(SessionEvent::MessageFinished), MoveState::TimedOut);
        let mut handover = MockHandover::new();
        handover.expect_hand_over().never();
        handover
            .expect_say_goodbye()
            .withf(|goodbye| goodbye.close.code == 1012 && goodbye.reason == "gateway restarting")
            .times(1)
            .return_const(());
        assert_eq!(act(&mut mover, &mut handover), MoveState::TimedOut);
    }

    #[test]
    fn a_quiet_session_the_successor_does_not_acknowledge_gets_the_goodbye() {
        let mut mover = connected();
        mover.on(move_at(Instant::now()));
        let mut handover = MockHandover::new();
        handover.expect_hand_over().times(1).return_const(false);
        handover.expect_say_goodbye().times(1).return_const(());
        assert_eq!(
            act(&mut mover, &mut handover),
            MoveState::NotMovable(NotMovable::HandoverFailed)
        );
    }

    #[test]
    fn a_deadline_for_a_quiet_session_changes_nothing() {
        let mut mover = connected();
        assert_eq!(mover.on(move_at(Instant::now())), MoveState::Quiet);
        assert_eq!(mover.on(SessionEvent::DeadlineReached), MoveState::Quiet);
    }

    #[test]
    fn a_second_move_request_keeps_the_first_deadline() {
        let start = Instant::now();
        let mut mover = connected();
        mover.on(SessionEvent::MessageStarted);
        mover.on(move_at(start));
        let later = mover.on(move_at(start + Duration::from_secs(1)));
        assert_eq!(
            later,
            MoveState::Waiting {
                until: start + MOVE_DEADLINE,
                on: WaitingFor::Message
            }
        );
    }

    fn record() -> SessionRecord {
        SessionRecord {
            protocol: 1,
            authenticated: true,
            client: ClientInfo {
                name: "cli".into(),
                version: "1.2.3".into(),
            },
            next_seq: 42,
            last_tick_unix_ms: 1_700_000_000_000,
            fencing_token: Some(7),
            unparsed: vec![0x81, 0x85, 1, 2],
        }
    }

    #[test]
    fn a_record_of_another_version_is_refused_and_can_be_skipped() {
        let mut bytes = record().encode().unwrap();
        bytes[4..6].copy_from_slice(&2u16.to_be_bytes());
        let next = record().encode().unwrap();
        bytes.extend_from_slice(&next);
        assert_eq!(
            SessionRecord::decode(&bytes),
            Err(RecordError::UnknownVersion(2))
        );
        let (_, rest) = split_record(&bytes).unwrap();
        assert_eq!(SessionRecord::decode(rest), Ok((record(), &[][..])));
    }

    #[test]
    fn a_truncated_record_is_refused() {
        let bytes = record().encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(
                SessionRecord::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_record_carrying_too_many_bytes_is_not_encoded() {
        let mut big = record();
        big.unparsed = vec![0; MAX_CARRIED_BYTES + 1];
        assert_eq!(big.encode(), Err(RecordError::TooLarge("unparsed bytes")));
    }

    proptest! {
        #[test]
        fn any_record_round_trips_and_leaves_what_follows(
            protocol in any::<u64>(),
            authenticated in any::<bool>(),
            name in ".{0,40}",
            version in ".{0,20}",
            next_seq in any::<u64>(),
            last_tick_unix_ms in any::<u64>(),
            fencing_token in proptest::option::of(any::<u64>()),
            unparsed in proptest::collection::vec(any::<u8>(), 0..2048),
            tail in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let record = SessionRecord {
                protocol,
                authenticated,
                client: ClientInfo { name, version },
                next_seq,
                last_tick_unix_ms,
                fencing_token,
                unparsed,
            };
            let mut bytes = record.encode().unwrap();
            bytes.extend_from_slice(&tail);
            let (decoded, rest) = SessionRecord::decode(&bytes).unwrap();
            prop_assert_eq!(decoded, record);
            prop_assert_eq!(rest, &tail[..]);
        }
    }
}
