//! The limits on what a client sends, enforced on the bytes before tungstenite
//! buffers them: a message's payload (however fragmented) within the current
//! limit (64 KiB before `connect`, 1 MiB after), complete within the message
//! timeout of its first frame, and, past 64 KiB, reserved in the gateway-wide
//! [`MessageBudget`].
//! tokio-tungstenite 0.30 fixes its message limit when the socket is built (no
//! `set_config`), and hides a message in progress; following the frames here gives
//! both the per-phase limit and the timing. A frame that breaks a limit is refused
//! from its header, before its payload is read: the cheap early cut-off.

use super::write_through::write_through;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use gateway_domain::protocol::close::{self, CloseInstruction};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::frame_meter::{FrameEvent, FrameMeter};
use super::message_budget::MessageBudget;

/// Largest payload of a control frame (RFC 6455 section 5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// A limit a client broke. Reads fail with it (wrapped in an `io::Error`) from then
/// on: the stream is no longer in step with tungstenite, only a close can follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    /// A message (or a control frame) over the size limit.
    TooBig,
    /// A message not complete within the message timeout.
    Timeout,
    /// The message would take the gateway over `--max-buffered-mb`.
    OverBudget,
}

impl Violation {
    /// The close the client gets for it.
    pub fn close(self) -> CloseInstruction {
        match self {
            Self::TooBig => close::MESSAGE_TOO_BIG,
            Self::Timeout => close::MESSAGE_TIMEOUT,
            Self::OverBudget => close::TRY_AGAIN_LATER,
        }
    }

    /// The violation an I/O error from [`InboundGuard`] carries, if any.
    pub fn of(error: &io::Error) -> Option<Self> {
        error.get_ref()?.downcast_ref::<Self>().copied()
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.close().reason)
    }
}

impl std::error::Error for Violation {}

impl From<Violation> for io::Error {
    fn from(violation: Violation) -> Self {
        io::Error::other(violation)
    }
}

/// Wraps the upgraded connection of one WebSocket session.
pub(crate) struct InboundGuard<S> {
    /// The upgraded connection.
    inner: S,
    /// Where the client's byte stream is, frame by frame.
    meter: FrameMeter,
    /// Largest message payload allowed now.
    message_limit: u64,
    /// Payload declared so far by the message in progress.
    message_payload: u64,
    /// Shared by every connection: what all messages in progress may hold.
    budget: Arc<MessageBudget>,
    /// This connection's share of `budget`, given back when its message ends.
    reserved: usize,
    /// How long a message may take from its first frame to its last.
    message_timeout: Duration,
    /// The message in progress's deadline; kept (and reset) between messages so a
    /// session allocates its timer once.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Whether `deadline` applies (a message is in progress).
    deadline_active: bool,
    /// Off once the session is closing: then bytes are only read to be discarded.
    armed: bool,
    /// The limit broken, once one was.
    violation: Option<Violation>,
}

impl<S> InboundGuard<S> {
    pub fn new(
        inner: S,
        message_limit: usize,
        budget: Arc<MessageBudget>,
        message_timeout: Duration,
    ) -> Self {
        Self {
            inner,
            meter: FrameMeter::default(),
            message_limit: message_limit as u64,
            message_payload: 0,
            budget,
            reserved: 0,
            message_timeout,
            deadline: None,
            deadline_active: false,
            armed: true,
            violation: None,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Changes the message limit (raised once `connect` succeeds).
    pub fn set_message_limit(&mut self, limit: usize) {
        self.message_limit = limit as u64;
    }

    /// Stops enforcing and gives back this connection's reservation: what is left
    /// on the wire is read only to be thrown away before the close.
    pub fn disarm(&mut self) {
        self.armed = false;
        self.deadline_active = false;
        self.release();
    }

    fn release(&mut self) {
        self.budget.release(std::mem::take(&mut self.reserved));
    }

    /// Follows newly read bytes; the first limit they break, if any.
    fn observe(&mut self, bytes: &[u8]) -> Result<(), Violation> {
        let Self {
            meter,
            message_limit,
            message_payload,
            budget,
            reserved,
            message_timeout,
            deadline,
            deadline_active,
            ..
        } = self;
        meter.feed(bytes, |event| match event {
            FrameEvent::DataFrame {
                payload,
                starts_message,
            } => {
                if starts_message {
                    *message_payload = 0;
                    let at = Instant::now() + *message_timeout;
                    match deadline {
                        Some(sleep) => sleep.as_mut().reset(at),
                        None => *deadline = Some(Box::pin(tokio::time::sleep_until(at))),
                    }
                    *deadline_active = true;
                }
                let so_far = *message_payload;
                *message_payload = message_payload.saturating_add(payload);
                if *message_payload > *message_limit {
                    return Err(Violation::TooBig);
                }
                // Small messages (every `connect`) cost the budget nothing.
                let bytes = budget
                    .try_grow(so_far, *message_payload)
                    .ok_or(Violation::OverBudget)?;
                *reserved += bytes;
                Ok(())
            }
            FrameEvent::ControlFrame { payload } if payload > MAX_CONTROL_PAYLOAD => {
                Err(Violation::TooBig)
            }
            FrameEvent::ControlFrame { .. } => Ok(()),
            FrameEvent::MessageEnd => {
                budget.release(std::mem::take(reserved));
                *message_payload = 0;
                *deadline_active = false;
                Ok(())
            }
        })
    }

    /// Whether the message in progress has run out of time (registers the timer
    /// with `cx` otherwise, so a client that stalls is still woken for).
    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        match (&mut self.deadline, self.deadline_active) {
            (Some(sleep), true) => sleep.as_mut().poll(cx).is_ready(),
            _ => false,
        }
    }

    fn fail(&mut self, violation: Violation) -> Poll<io::Result<()>> {
        self.violation = Some(violation);
        Poll::Ready(Err(violation.into()))
    }
}

impl<S> Drop for InboundGuard<S> {
    fn drop(&mut self) {
        self.release();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for InboundGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.armed {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if let Some(violation) = this.violation {
            return Poll::Ready(Err(violation.into()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if let Err(violation) = this.observe(&buf.filled()[before..]) {
                    // Nothing of the offending frame reaches tungstenite.
                    buf.set_filled(before);
                    return this.fail(violation);
                }
                if this.timed_out(cx) {
                    buf.set_filled(before);
                    return this.fail(Violation::Timeout);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.timed_out(cx) => this.fail(Violation::Timeout),
            other => other,
        }
    }
}

write_through!(InboundGuard);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const SECOND: Duration = Duration::from_secs(1);

    use super::super::frame_meter::tests::frame;

    fn guarded(
        limit: usize,
        budget: &Arc<MessageBudget>,
    ) -> (DuplexStream, InboundGuard<DuplexStream>) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let guard = InboundGuard::new(server, limit, Arc::clone(budget), 10 * SECOND);
        (client, guard)
    }

    /// Reads until the guard fails or the client side ends; the bytes read and the
    /// violation, if any.
    async fn read_all(guard: &mut InboundGuard<DuplexStream>) -> (usize, Option<Violation>) {
        let mut total = 0;
        let mut chunk = [0u8; 4096];
        loop {
            match guard.read(&mut chunk).await {
                Ok(0) => return (total, None),
                Ok(n) => total += n,
                Err(e) => return (total, Violation::of(&e)),
            }
        }
    }

    #[tokio::test]
    async fn a_message_in_1_byte_fragments_counts_its_payload_not_its_wire_bytes() {
        let budget = Arc::new(MessageBudget::new(1 << 20));
        let (mut client, mut guard) = guarded(64 * 1024, &budget);
        let mut stream = frame(false, 0x1, b"x");
        for _ in 0..20 * 1024 - 2 {
            stream.extend(frame(false, 0x0, b"x"));
        }
        stream.extend(frame(true, 0x0, b"x"));
        assert!(
            stream.len() > 64 * 1024 * 2,
            "far more wire bytes than the limit"
        );
        client.write_all(&stream).await.unwrap();
        drop(client);
        assert_eq!(read_all(&mut guard).await, (stream.len(), None));
        assert_eq!(
            budget.used(),
            0,
            "the finished message gave its reservation back"
        );
    }

    #[tokio::test]
    async fn fragments_adding_up_over_the_limit_are_too_big() {
        let budget = Arc::new(MessageBudget::new(1 << 20));
        let (mut client, mut guard) = guarded(1000, &budget);
        let stream = [
            frame(false, 0x1, &[b'a'; 600]),
            frame(true, 0x0, &[b'b'; 401]),
        ]
        .concat();
        client.write_all(&stream).await.unwrap();
        drop(client);
        let (_, violation) = read_all(&mut guard).await;
        assert_eq!(violation, Some(Violation::TooBig));
    }

    #[tokio::test]
    async fn a_huge_frame_is_refused_from_its_header() {
        let budget = Arc::new(MessageBudget::new(usize::MAX));
        let (mut client, mut guard) = guarded(64 * 1024, &budget);
        let header = &frame(true, 0x1, &vec![0u8; 900 * 1024])[..14];
        client.write_all(header).await.unwrap();
        let (read, violation) = read_all(&mut guard).await;
        assert_eq!(violation, Some(Violation::TooBig));
        assert_eq!(read, 0, "the header never reached the reader");
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_not_finished_within_the_timeout_fails() {
        let budget = Arc::new(MessageBudget::new(1 << 20));
        let (mut client, mut guard) = guarded(1 << 20, &budget);
        let whole = frame(true, 0x1, &[b'z'; 1000]);
        client.write_all(&whole[..whole.len() - 1]).await.unwrap();
        let started = Instant::now();
        let (_, violation) = read_all(&mut guard).await;
        assert_eq!(violation, Some(Violation::Timeout));
        assert!(started.elapsed() >= 10 * SECOND);
        guard.disarm();
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_timeout_runs_from_the_first_frame_not_the_connection() {
        let budget = Arc::new(MessageBudget::new(1 << 20));
        let (mut client, mut guard) = guarded(1 << 20, &budget);
        let done = frame(true, 0x1, b"one");
        client.write_all(&done).await.unwrap();
        let mut buf = vec![0u8; done.len()];
        guard.read_exact(&mut buf).await.unwrap();
        // Idle between messages is not limited here (the session's own rules apply).
        tokio::time::sleep(60 * SECOND).await;
        let first = frame(false, 0x1, b"a");
        client.write_all(&first).await.unwrap();
        let mut buf = vec![0u8; first.len()];
        guard.read_exact(&mut buf).await.unwrap();
        let started = Instant::now();
        let (_, violation) = read_all(&mut guard).await;
        assert_eq!(violation, Some(Violation::Timeout));
        let waited = started.elapsed();
        assert!(waited >= 10 * SECOND && waited < 11 * SECOND, "{waited:?}");
    }

    #[tokio::test]
    async fn a_small_message_passes_while_big_ones_hold_the_whole_budget() {
        let budget = Arc::new(MessageBudget::new(100 * 1024));
        let (mut big_client, mut big) = guarded(1 << 20, &budget);
        let stalled = frame(true, 0x1, &[b'q'; 100 * 1024]);
        big_client.write_all(&stalled[..100]).await.unwrap();
        let mut buf = [0u8; 100];
        big.read_exact(&mut buf).await.unwrap();
        assert_eq!(budget.used(), 100 * 1024, "the budget is full");
        let (mut small_client, mut small) = guarded(64 * 1024, &budget);
        let connect = frame(true, 0x1, &[b'c'; 64 * 1024]);
        small_client.write_all(&connect).await.unwrap();
        drop(small_client);
        assert_eq!(read_all(&mut small).await, (connect.len(), None));
        assert_eq!(budget.used(), 100 * 1024);
    }

    #[tokio::test]
    async fn messages_in_progress_share_the_gateway_budget() {
        let budget = Arc::new(MessageBudget::new(150 * 1024));
        let (mut first_client, mut first) = guarded(1 << 20, &budget);
        let (mut second_client, mut second) = guarded(1 << 20, &budget);
        let big = frame(true, 0x1, &[b'q'; 100 * 1024]);
        first_client.write_all(&big[..100]).await.unwrap();
        let mut buf = [0u8; 100];
        first.read_exact(&mut buf).await.unwrap();
        assert_eq!(budget.used(), 100 * 1024);
        second_client.write_all(&big).await.unwrap();
        drop(second_client);
        assert_eq!(read_all(&mut second).await.1, Some(Violation::OverBudget));
        drop(second);
        drop(first);
        assert_eq!(
            budget.used(),
            0,
            "a dropped connection gives its share back"
        );
    }
}
