//! The session channel of a handoff: a Unix `SOCK_SEQPACKET` socketpair over which
//! the old process passes its quiet WebSocket sessions to the new one, each as the
//! descriptor of its TCP connection (`SCM_RIGHTS`) and its [`SessionRecord`].
//!
//! `SOCK_SEQPACKET`, not `SOCK_STREAM`: one `sendmsg` is one message, delivered whole
//! with its descriptors or not at all, so a batch's descriptors and records can never
//! come apart or merge with the next batch's, a cut message is seen (`MSG_TRUNC`),
//! and the end of the peer is a read of 0 bytes. The price is a bound on a message's
//! size (the socket's send buffer): batches are kept under [`MAX_BATCH_BYTES`].
//!
//! Messages (big-endian integers):
//! - batch, old to new: `b'B'`, batch number `u32`, count `u16`, then `count`
//!   length-prefixed records; `count` descriptors ride along, in the same order.
//! - acknowledgement, new to old: `b'A'`, batch number `u32`, count `u16`, refused
//!   count `u16`, then each refused position `u16`. Sent once the new process owns
//!   the batch's descriptors and before it serves any of them: the old process
//!   forgets exactly the sessions of acknowledged batches that were not refused.
//! - end, old to new: `b'E'`, batches sent `u32`.
//!
//! Besides `inherit.rs`, the one module with `unsafe`, in two functions with their
//! `SAFETY` notes: owning the descriptors the kernel installed on receipt
//! ([`own_received`]), and registering the channel with tokio ([`register_owned`]).

use std::io::{self, IoSlice, IoSliceMut};
#[cfg(test)]
use std::os::fd::AsFd;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use gateway_domain::session_move::{RecordError, SessionRecord, split_record};
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use thiserror::Error;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Most descriptors one `SCM_RIGHTS` message carries (Linux's `SCM_MAX_FD`).
pub const MAX_FDS_PER_BATCH: usize = 253;
/// Largest batch message: well under the default send buffer of a Unix socket
/// (`net.core.wmem_default`, 208 KiB), which bounds a `SOCK_SEQPACKET` message.
pub const MAX_BATCH_BYTES: usize = 128 * 1024;

const BATCH: u8 = b'B';
const ACK: u8 = b'A';
const END: u8 = b'E';
/// Kind, batch number, count.
const BATCH_HEADER: usize = 1 + 4 + 2;

/// Why the channel failed. The sessions not acknowledged stay with the old process.
#[derive(Debug, Error)]
pub enum ChannelError {
    #[error("session channel: {0}")]
    Io(#[from] io::Error),
    #[error("session channel closed by the other process before the handoff ended")]
    Closed,
    #[error("session channel: malformed message: {0}")]
    Malformed(&'static str),
}

impl From<nix::Error> for ChannelError {
    fn from(errno: nix::Error) -> Self {
        Self::Io(io::Error::from(errno))
    }
}

/// The two ends of a new channel, both close-on-exec: the old process keeps the
/// first for a [`SessionSender`], and passes the second to the new process (which
/// makes it a [`SessionReceiver`]).
pub fn channel_pair() -> Result<(OwnedFd, OwnedFd), ChannelError> {
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )?)
}

/// Where the old process keeps its end of the channel it made for its latest
/// successor: the launcher puts it there at each launch, the server takes it when
/// it moves its sessions.
pub type SenderSlot = std::sync::Arc<std::sync::Mutex<Option<OwnedFd>>>;

/// Both ends in this process (tests, and a handoff without `exec`).
pub fn session_channel() -> Result<(SessionSender, SessionReceiver), ChannelError> {
    let (old, new) = channel_pair()?;
    Ok((SessionSender::new(old)?, SessionReceiver::new(new)?))
}

/// One session to pass: its connection (still open in this process, closed by the
/// caller once the session is acknowledged) and its record.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingSession<'a> {
    pub fd: BorrowedFd<'a>,
    pub record: &'a SessionRecord,
}

/// What became of one outgoing session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The new process has it and serves it: close this process's descriptor, and
    /// nothing else (no close frame, no `shutdown()`).
    Taken,
    /// Its record could not be encoded: it was not sent.
    Unencodable(RecordError),
    /// The new process refused its record (e.g. a version it does not know).
    Refused,
    /// Its batch was not acknowledged: the channel broke first.
    NotDelivered,
}

/// The outcome of [`SessionSender::send_all`]: one [`Delivery`] per session, in the
/// order given. Every session not [`Delivery::Taken`] is still this process's to
/// close with the `gateway restarting` goodbye.
#[derive(Debug)]
pub struct SendReport {
    pub deliveries: Vec<Delivery>,
    /// Messages sent (each acknowledged).
    pub batches: u32,
    /// Why sending stopped early, if it did.
    pub broken: Option<ChannelError>,
}

/// The old process's end.
#[derive(Debug)]
pub struct SessionSender {
    socket: AsyncFd<OwnedFd>,
    /// Number of the next batch (acknowledgements name theirs).
    next_batch: u32,
}

/// The new process's end.
#[derive(Debug)]
pub struct SessionReceiver {
    socket: AsyncFd<OwnedFd>,
    /// Number of the batch expected next.
    next_batch: u32,
    /// Space for one message: reused from batch to batch.
    buffer: Vec<u8>,
}

/// A session that arrived: its connection, owned by this process now, and its record.
#[derive(Debug)]
pub struct Arrival {
    pub fd: OwnedFd,
    pub record: SessionRecord,
}

/// Checks that `fd` is a Unix `SOCK_SEQPACKET` socket (it may have been inherited
/// by number), non-blocking, and registers it with the runtime.
fn register(fd: OwnedFd) -> Result<AsyncFd<OwnedFd>, ChannelError> {
    let socket = socket2::Socket::from(fd);
    let is_channel = socket.domain().is_ok_and(|d| d == socket2::Domain::UNIX)
        && socket.r#type().is_ok_and(|t| t == socket2::Type::SEQPACKET);
    if !is_channel {
        return Err(ChannelError::Malformed(
            "the session channel is not a Unix seqpacket socket",
        ));
    }
    socket.set_nonblocking(true)?;
    register_owned(OwnedFd::from(socket))
}

#[allow(unsafe_code)]
fn register_owned(fd: OwnedFd) -> Result<AsyncFd<OwnedFd>, ChannelError> {
    // SAFETY: an `OwnedFd` is an open descriptor that stays open, under the same
    // number and open file description, until it is dropped, which happens only
    // when the `AsyncFd` that owns it is.
    let registered = unsafe { AsyncFd::register(fd) };
    registered.map_err(|error| ChannelError::Io(error.into()))
}

impl SessionSender {
    pub fn new(fd: OwnedFd) -> Result<Self, ChannelError> {
        Ok(Self {
            socket: register(fd)?,
            next_batch: 0,
        })
    }

    /// Passes `sessions` in batches of at most [`MAX_FDS_PER_BATCH`] descriptors
    /// (and [`MAX_BATCH_BYTES`]), waiting for each batch's acknowledgement before the
    /// next. Stops at the first channel failure: that batch and the rest are
    /// [`Delivery::NotDelivered`]. Never closes a session's descriptor.
    pub async fn send_all(&mut self, sessions: &[OutgoingSession<'_>]) -> SendReport {
        let mut deliveries = vec![Delivery::NotDelivered; sessions.len()];
        let mut batches = 0;
        let mut batch: Vec<(usize, RawFd, Vec<u8>)> = Vec::new();
        let mut bytes = BATCH_HEADER;
        let mut pending = sessions.iter().enumerate().peekable();
        loop {
            // Fill one batch.
            while let Some((index, session)) = pending.peek() {
                let encoded = match session.record.encode() {
                    Ok(encoded) => encoded,
                    Err(error) => {
                        deliveries[*index] = Delivery::Unencodable(error);
                        pending.next();
                        continue;
                    }
                };
                let full = batch.len() == MAX_FDS_PER_BATCH
                    || (!batch.is_empty() && bytes + encoded.len() > MAX_BATCH_BYTES);
                if full {
                    break;
                }
                bytes += encoded.len();
                batch.push((*index, session.fd.as_raw_fd(), encoded));
                pending.next();
            }
            if batch.is_empty() {
                return SendReport {
                    deliveries,
                    batches,
                    broken: None,
                };
            }
            let fds: Vec<RawFd> = batch.iter().map(|(_, fd, _)| *fd).collect();
            let records: Vec<&[u8]> = batch.iter().map(|(_, _, r)| r.as_slice()).collect();
            match self.send_batch(&fds, &records).await {
                Ok(refused) => {
                    batches += 1;
                    for (position, (index, _, _)) in batch.iter().enumerate() {
                        deliveries[*index] = if refused.contains(&position) {
                            Delivery::Refused
                        } else {
                            Delivery::Taken
                        };
                    }
                }
                Err(error) => {
                    return SendReport {
                        deliveries,
                        batches,
                        broken: Some(error),
                    };
                }
            }
            batch.clear();
            bytes = BATCH_HEADER;
        }
    }

    /// Says that no more sessions come; the receiver's next batch is `None`.
    pub async fn finish(mut self) -> Result<(), ChannelError> {
        let mut message = vec![END];
        message.extend_from_slice(&self.next_batch.to_be_bytes());
        self.send_message(&message, &[]).await
    }

    /// Sends one batch of already encoded records and waits for its
    /// acknowledgement; the positions the receiver refused.
    async fn send_batch(
        &mut self,
        fds: &[RawFd],
        records: &[&[u8]],
    ) -> Result<Vec<usize>, ChannelError> {
        let number = self.next_batch;
        self.next_batch += 1;
        let count = u16::try_from(fds.len()).map_err(|_| ChannelError::Malformed("batch size"))?;
        let mut message = Vec::with_capacity(MAX_BATCH_BYTES);
        message.push(BATCH);
        message.extend_from_slice(&number.to_be_bytes());
        message.extend_from_slice(&count.to_be_bytes());
        for record in records {
            message.extend_from_slice(record);
        }
        self.send_message(&message, fds).await?;
        self.read_ack(number, fds.len()).await
    }

    async fn send_message(&mut self, message: &[u8], fds: &[RawFd]) -> Result<(), ChannelError> {
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
        let sent = self
            .socket
            .async_io(Interest::WRITABLE, |socket| {
                sendmsg::<()>(
                    socket.as_raw_fd(),
                    &[IoSlice::new(message)],
                    cmsgs,
                    // A vanished receiver is an error here, never a signal.
                    MsgFlags::MSG_NOSIGNAL,
                    None,
                )
                .map_err(io::Error::from)
            })
            .await;
        match sent {
            Ok(n) if n == message.len() => Ok(()),
            Ok(_) => Err(ChannelError::Malformed("message sent in part")),
            Err(error) if error.raw_os_error() == Some(libc::EPIPE) => Err(ChannelError::Closed),
            Err(error) => Err(error.into()),
        }
    }

    async fn read_ack(&mut self, number: u32, count: usize) -> Result<Vec<usize>, ChannelError> {
        // Kind, number, count, refused count, and at most every position.
        let mut buffer = vec![0u8; 1 + 4 + 2 + 2 + 2 * MAX_FDS_PER_BATCH];
        let read = self
            .socket
            .async_io(Interest::READABLE, |socket| {
                nix::sys::socket::recv(socket.as_raw_fd(), &mut buffer, MsgFlags::empty())
                    .map_err(io::Error::from)
            })
            .await?;
        if read == 0 {
            return Err(ChannelError::Closed);
        }
        let ack = &buffer[..read];
        let field = |at: usize| -> Result<u16, ChannelError> {
            ack.get(at..at + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or(ChannelError::Malformed("acknowledgement truncated"))
        };
        if ack.first() != Some(&ACK) || ack.len() < 9 {
            return Err(ChannelError::Malformed("expected an acknowledgement"));
        }
        let acked = u32::from_be_bytes([ack[1], ack[2], ack[3], ack[4]]);
        if acked != number || usize::from(field(5)?) != count {
            return Err(ChannelError::Malformed("acknowledgement of another batch"));
        }
        let refused = usize::from(field(7)?);
        (0..refused)
            .map(|i| field(9 + 2 * i).map(usize::from))
            .collect()
    }
}

impl SessionReceiver {
    pub fn new(fd: OwnedFd) -> Result<Self, ChannelError> {
        Ok(Self {
            socket: register(fd)?,
            next_batch: 0,
            buffer: vec![0u8; MAX_BATCH_BYTES],
        })
    }

    /// The next batch's sessions, in the order sent, once this process owns their
    /// descriptors and has acknowledged the batch; `None` once the sender said it
    /// has finished. Sessions whose record it refuses (an unknown version, a
    /// malformed record) are acknowledged as refused and their descriptors closed
    /// here: the old process still holds its own and says goodbye. Any error ends the
    /// channel: drop the receiver (the old process then sees it closed).
    pub async fn next_batch(&mut self) -> Result<Option<Vec<Arrival>>, ChannelError> {
        let (read, fds) = self.receive().await?;
        let message = &self.buffer[..read];
        match message.first() {
            None => return Err(ChannelError::Closed),
            Some(&END) if fds.is_empty() => return Ok(None),
            Some(&BATCH) if message.len() >= BATCH_HEADER => {}
            Some(_) => return Err(ChannelError::Malformed("expected a batch")),
        }
        let number = u32::from_be_bytes([message[1], message[2], message[3], message[4]]);
        let count = usize::from(u16::from_be_bytes([message[5], message[6]]));
        if number != self.next_batch {
            return Err(ChannelError::Malformed("batch out of order"));
        }
        if count != fds.len() {
            return Err(ChannelError::Malformed(
                "batch descriptors do not match its records",
            ));
        }
        self.next_batch += 1;
        let mut rest = &message[BATCH_HEADER..];
        let mut arrivals = Vec::with_capacity(count);
        let mut refused = Vec::new();
        for (position, fd) in fds.into_iter().enumerate() {
            let (_, next) = split_record(rest)
                .map_err(|_| ChannelError::Malformed("batch records truncated"))?;
            let decoded = SessionRecord::decode(rest);
            rest = next;
            match decoded {
                Ok((record, _)) => arrivals.push(Arrival { fd, record }),
                Err(error) => {
                    tracing::warn!(%error, "a moved session refused");
                    refused.push(position);
                    drop(fd);
                }
            }
        }
        if !rest.is_empty() {
            return Err(ChannelError::Malformed("bytes after the batch's records"));
        }
        self.acknowledge(number, count, &refused).await?;
        Ok(Some(arrivals))
    }

    async fn acknowledge(
        &mut self,
        number: u32,
        count: usize,
        refused: &[usize],
    ) -> Result<(), ChannelError> {
        let mut ack = vec![ACK];
        ack.extend_from_slice(&number.to_be_bytes());
        for value in std::iter::once(count)
            .chain(std::iter::once(refused.len()))
            .chain(refused.iter().copied())
        {
            // Every value is at most MAX_FDS_PER_BATCH.
            ack.extend_from_slice(&(value as u16).to_be_bytes());
        }
        let sent = self
            .socket
            .async_io(Interest::WRITABLE, |socket| {
                nix::sys::socket::send(socket.as_raw_fd(), &ack, MsgFlags::MSG_NOSIGNAL)
                    .map_err(io::Error::from)
            })
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(error) if error.raw_os_error() == Some(libc::EPIPE) => Err(ChannelError::Closed),
            Err(error) => Err(error.into()),
        }
    }

    /// One message and the descriptors that came with it (owned from the start, so
    /// that each is closed whatever fails after).
    async fn receive(&mut self) -> Result<(usize, Vec<OwnedFd>), ChannelError> {
        let mut space = nix::cmsg_space!([RawFd; MAX_FDS_PER_BATCH]);
        let buffer = &mut self.buffer;
        let (read, truncated, fds) = self
            .socket
            .async_io(Interest::READABLE, |socket| {
                let mut iov = [IoSliceMut::new(buffer)];
                let message = recvmsg::<()>(
                    socket.as_raw_fd(),
                    &mut iov,
                    Some(&mut space),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                )
                .map_err(io::Error::from)?;
                let mut raw = Vec::new();
                // With room for MAX_FDS_PER_BATCH the control data is never cut
                // (a sender of more is not ours): `cmsgs` refuses a cut one.
                for cmsg in message.cmsgs().map_err(io::Error::from)? {
                    if let ControlMessageOwned::ScmRights(fds) = cmsg {
                        raw.extend(fds);
                    }
                }
                let truncated = message.flags.contains(MsgFlags::MSG_TRUNC);
                Ok((message.bytes, truncated, own_received(raw)))
            })
            .await?;
        if truncated {
            return Err(ChannelError::Malformed("message larger than a batch"));
        }
        if read == 0 && fds.is_empty() {
            return Err(ChannelError::Closed);
        }
        Ok((read, fds))
    }
}

/// Owns the descriptors an `SCM_RIGHTS` message just installed in this process.
#[allow(unsafe_code)]
fn own_received(fds: Vec<RawFd>) -> Vec<OwnedFd> {
    fds.into_iter()
        // SAFETY: the kernel installed each of these descriptors in this process's
        // table during the `recvmsg` that returned them; nothing else knows their
        // numbers yet, so each is owned exactly once, here.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_domain::protocol::handshake::ClientInfo;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    /// Bound on every wait in these tests: a hang fails instead of blocking.
    const PATIENCE: Duration = Duration::from_secs(10);

    fn record(n: u64) -> SessionRecord {
        SessionRecord {
            protocol: 1,
            authenticated: true,
            client: ClientInfo {
                name: format!("client-{n}"),
                version: "1.0.0".into(),
            },
            next_seq: n,
            last_tick_unix_ms: 1_700_000_000_000 + n,
            fencing_token: None,
            unparsed: n.to_be_bytes().to_vec(),
        }
    }

    /// `n` loopback connections: (client side, server side), in order.
    fn connections(n: usize) -> Vec<(TcpStream, TcpStream)> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        (0..n)
            .map(|_| {
                let client = TcpStream::connect(address).unwrap();
                let (server, _) = listener.accept().unwrap();
                (client, server)
            })
            .collect()
    }

    async fn receive_all(mut receiver: SessionReceiver) -> (Vec<Arrival>, usize) {
        let mut arrivals = Vec::new();
        let mut batches = 0;
        while let Some(batch) = receiver.next_batch().await.unwrap() {
            batches += 1;
            arrivals.extend(batch);
        }
        (arrivals, batches)
    }

    #[tokio::test]
    async fn six_hundred_connections_cross_in_three_batches_in_order_and_stay_connected() {
        let pairs = connections(600);
        let records: Vec<SessionRecord> = (0..600).map(record).collect();
        let (mut sender, receiver) = session_channel().unwrap();
        let receiving = tokio::spawn(receive_all(receiver));
        let outgoing: Vec<OutgoingSession<'_>> = pairs
            .iter()
            .zip(&records)
            .map(|((_, server), record)| OutgoingSession {
                fd: server.as_fd(),
                record,
            })
            .collect();
        let report = tokio::time::timeout(PATIENCE, sender.send_all(&outgoing))
            .await
            .unwrap();
        assert!(report.broken.is_none(), "{:?}", report.broken);
        assert_eq!(report.batches, 3, "253 + 253 + 94");
        assert!(report.deliveries.iter().all(|d| *d == Delivery::Taken));
        tokio::time::timeout(PATIENCE, sender.finish())
            .await
            .unwrap()
            .unwrap();
        let (arrivals, batches) = tokio::time::timeout(PATIENCE, receiving)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(batches, 3);
        assert_eq!(arrivals.len(), 600);
        // The old process forgets its copies: only the descriptor closes.
        let clients: Vec<TcpStream> = pairs.into_iter().map(|(client, _)| client).collect();
        let moved: Vec<TcpStream> = arrivals
            .into_iter()
            .enumerate()
            .map(|(i, arrival)| {
                assert_eq!(arrival.record, record(i as u64), "in order");
                TcpStream::from(arrival.fd)
            })
            .collect();
        for (i, (client, mut stream)) in clients.iter().zip(&moved).enumerate() {
            assert_eq!(
                stream.peer_addr().unwrap(),
                client.local_addr().unwrap(),
                "session {i} is on its own connection"
            );
            stream.set_nonblocking(false).unwrap();
            stream.write_all(format!("hello {i}\n").as_bytes()).unwrap();
        }
        for (i, mut client) in clients.iter().enumerate() {
            client.set_read_timeout(Some(PATIENCE)).unwrap();
            let expected = format!("hello {i}\n");
            let mut got = vec![0u8; expected.len()];
            client.read_exact(&mut got).unwrap();
            assert_eq!(got, expected.as_bytes());
        }
        // Closing the moved descriptors ends each connection: no other copy is open.
        drop(moved);
        for mut client in clients {
            let mut rest = [0u8; 1];
            assert_eq!(client.read(&mut rest).unwrap(), 0, "end of stream");
        }
    }

    #[tokio::test]
    async fn a_record_of_an_unknown_version_is_refused_by_the_receiver() {
        let pairs = connections(3);
        let (mut sender, mut receiver) = session_channel().unwrap();
        let mut records: Vec<Vec<u8>> = (0..3).map(|n| record(n).encode().unwrap()).collect();
        records[1][4..6].copy_from_slice(&9u16.to_be_bytes());
        let fds: Vec<RawFd> = pairs.iter().map(|(_, s)| s.as_raw_fd()).collect();
        let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let (refused, arrivals) = tokio::time::timeout(PATIENCE, async {
            tokio::join!(sender.send_batch(&fds, &slices), receiver.next_batch())
        })
        .await
        .unwrap();
        assert_eq!(refused.unwrap(), vec![1]);
        let arrivals = arrivals.unwrap().unwrap();
        let numbers: Vec<u64> = arrivals.iter().map(|a| a.record.next_seq).collect();
        assert_eq!(numbers, [0, 2]);
        // The refused session is still the old process's: it can say goodbye on it.
        let (client, server) = &pairs[1];
        (&*server).write_all(b"goodbye").unwrap();
        let mut got = [0u8; 7];
        client.set_read_timeout(Some(PATIENCE)).unwrap();
        (&*client).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"goodbye");
    }

    #[tokio::test]
    async fn a_receiver_gone_mid_handoff_leaves_the_rest_undelivered_without_a_hang() {
        let pairs = connections(300);
        let records: Vec<SessionRecord> = (0..300).map(record).collect();
        let (old, new) = channel_pair().unwrap();
        let mut sender = SessionSender::new(old).unwrap();
        // The new process reads the first batch, then dies without acknowledging it.
        let dying = tokio::task::spawn_blocking(move || {
            let mut buffer = vec![0u8; MAX_BATCH_BYTES];
            let mut space = nix::cmsg_space!([RawFd; MAX_FDS_PER_BATCH]);
            let started = std::time::Instant::now();
            loop {
                let mut iov = [IoSliceMut::new(&mut buffer)];
                match recvmsg::<()>(
                    new.as_raw_fd(),
                    &mut iov,
                    Some(&mut space),
                    MsgFlags::MSG_CMSG_CLOEXEC,
                ) {
                    Ok(message) => {
                        let fds = message.cmsgs().unwrap().filter_map(|c| match c {
                            ControlMessageOwned::ScmRights(fds) => Some(fds),
                            _ => None,
                        });
                        let received: Vec<OwnedFd> = fds.flat_map(own_received).collect();
                        return received.len();
                    }
                    Err(nix::Error::EAGAIN) if started.elapsed() < PATIENCE => {
                        std::thread::yield_now();
                    }
                    Err(error) => panic!("{error}"),
                }
            }
        });
        let outgoing: Vec<OutgoingSession<'_>> = pairs
            .iter()
            .zip(&records)
            .map(|((_, server), record)| OutgoingSession {
                fd: server.as_fd(),
                record,
            })
            .collect();
        let report = tokio::time::timeout(PATIENCE, sender.send_all(&outgoing))
            .await
            .expect("an error, not a hang");
        assert_eq!(dying.await.unwrap(), MAX_FDS_PER_BATCH);
        assert!(
            matches!(report.broken, Some(ChannelError::Closed)),
            "{:?}",
            report.broken
        );
        assert_eq!(report.batches, 0);
        assert!(
            report
                .deliveries
                .iter()
                .all(|d| *d == Delivery::NotDelivered)
        );
    }

    #[tokio::test]
    async fn a_sender_gone_mid_handoff_is_an_error_for_the_receiver_not_a_hang() {
        let pairs = connections(2);
        let records: Vec<SessionRecord> = (0..2).map(record).collect();
        let (mut sender, mut receiver) = session_channel().unwrap();
        let outgoing: Vec<OutgoingSession<'_>> = pairs
            .iter()
            .zip(&records)
            .map(|((_, server), record)| OutgoingSession {
                fd: server.as_fd(),
                record,
            })
            .collect();
        let (report, first) = tokio::time::timeout(PATIENCE, async {
            tokio::join!(sender.send_all(&outgoing), receiver.next_batch())
        })
        .await
        .unwrap();
        assert!(report.broken.is_none());
        assert_eq!(first.unwrap().unwrap().len(), 2);
        // The old process dies before saying it has finished.
        drop(sender);
        let next = tokio::time::timeout(PATIENCE, receiver.next_batch())
            .await
            .expect("an error, not a hang");
        assert!(matches!(next, Err(ChannelError::Closed)), "{next:?}");
    }

    #[tokio::test]
    async fn a_session_whose_record_cannot_be_encoded_is_not_sent() {
        let pairs = connections(2);
        let mut records: Vec<SessionRecord> = (0..2).map(record).collect();
        records[0].unparsed = vec![0; gateway_domain::session_move::MAX_CARRIED_BYTES + 1];
        let (mut sender, mut receiver) = session_channel().unwrap();
        let outgoing: Vec<OutgoingSession<'_>> = pairs
            .iter()
            .zip(&records)
            .map(|((_, server), record)| OutgoingSession {
                fd: server.as_fd(),
                record,
            })
            .collect();
        let (report, batch) = tokio::time::timeout(PATIENCE, async {
            tokio::join!(sender.send_all(&outgoing), receiver.next_batch())
        })
        .await
        .unwrap();
        assert!(matches!(report.deliveries[0], Delivery::Unencodable(_)));
        assert_eq!(report.deliveries[1], Delivery::Taken);
        assert_eq!(batch.unwrap().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_descriptor_that_is_not_a_seqpacket_socket_is_not_a_channel() {
        let (stream, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        let refused = SessionReceiver::new(OwnedFd::from(stream));
        assert!(matches!(refused, Err(ChannelError::Malformed(_))));
    }
}
