//! Moving a WebSocket session between processes at a quiet point: where the bytes
//! of the client's stream are, how the old process stops at a message boundary
//! with none of them inside tungstenite, and how the new process goes on with the
//! connection, already past the handshake.
//!
//! Where unparsed bytes can be, from the socket up:
//! - the kernel's receive queue: they move with the descriptor;
//! - hyper's read-ahead, when the client sent frames right behind its upgrade
//!   request: `Upgraded` hands them out first, and `Upgraded::downcast` returns what
//!   is left of them as `Parts::read_buf` (with the original I/O in `Parts::io`);
//! - tungstenite's `FrameCodec::in_buffer` (a private `BytesMut` inside
//!   `WebSocketContext`; tungstenite 0.30 reads up to `read_buffer_size` bytes at a
//!   time into it, so a message pipelined behind another is usually there once the
//!   first is returned). No API reaches it: `WebSocketStream::into_inner` drops it,
//!   and a frame header it has parsed is kept apart from it. So the old process
//!   never lets bytes it cannot recover in: once the move begins, [`QuietReader`]
//!   gives tungstenite only the rest of the message in progress, and nothing at a
//!   message boundary. Draining tungstenite then yields the messages it holds (they
//!   are answered by the old process), and when it asks for more at a boundary its
//!   buffer is empty: the quiet point. What moves is hyper's leftover read-ahead.
//!
//! The new process puts those bytes in front of the socket ([`CarriedBytes`]),
//! under its own limits' guard, so that they are metered like any others; tungstenite's
//! own `WebSocketStream::from_partially_read` would skip the guard.

use super::write_through::write_through;
use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{FutureExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::server::counted_stream::CountedStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// Largest frame header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;

/// Where the bytes given to tungstenite so far end, frame by frame (RFC 6455
/// section 5.2): enough to give it the rest of a message and nothing more.
#[derive(Debug, Clone, Copy, Default)]
struct Position {
    /// The bytes of the header being read.
    header: [u8; MAX_HEADER],
    /// How many of them have been read (0 between frames).
    have: usize,
    /// Payload bytes still to come of the current frame, once its header is read.
    remaining: Option<u64>,
    /// The current frame is a data frame with FIN set: its end ends the message.
    ends_message: bool,
    /// A data message has started and has not ended.
    in_message: bool,
}

impl Position {
    /// Most bytes that may be read without going past the end of the message in
    /// progress; `None` at a message boundary (nothing may be read).
    fn bound(&self) -> Option<usize> {
        if let Some(remaining) = self.remaining {
            return Some(usize::try_from(remaining).unwrap_or(usize::MAX));
        }
        if self.have == 0 && !self.in_message {
            return None;
        }
        Some(header_len(&self.header[..self.have]).unwrap_or(2) - self.have)
    }

    fn advance(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.remaining {
                Some(remaining) => {
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    self.remaining = Some(remaining - take as u64);
                    bytes = &bytes[take..];
                }
                None => {
                    self.header[self.have] = bytes[0];
                    self.have += 1;
                    bytes = &bytes[1..];
                    let header = &self.header[..self.have];
                    if header_len(header) == Some(self.have) {
                        let (fin, opcode, payload) = parse_header(header);
                        let is_data = opcode < 0x8;
                        if is_data {
                            self.in_message = true;
                        }
                        self.ends_message = is_data && fin;
                        self.remaining = Some(payload);
                        self.have = 0;
                    }
                }
            }
            if self.remaining == Some(0) {
                self.remaining = None;
                if self.ends_message {
                    self.in_message = false;
                    self.ends_message = false;
                }
            }
        }
    }
}

/// The length of the header that starts with `header`, once its first 2 bytes say.
fn header_len(header: &[u8]) -> Option<usize> {
    let second = *header.get(1)?;
    let extended = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    Some(2 + extended + mask)
}

/// `(fin, opcode, payload length)` of a complete header.
fn parse_header(header: &[u8]) -> (bool, u8, u64) {
    let payload = match header[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
        127 => header[2..10]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
        short => u64::from(short),
    };
    (header[0] & 0x80 != 0, header[0] & 0x0f, payload)
}

/// The reader between a session's connection and tungstenite: passes everything
/// through until [`QuietReader::hold`], then only the rest of the message in
/// progress (never a byte past its end), and nothing at a message boundary: a read
/// there stays pending (without a wake-up: the session checks [`next_buffered`]
/// after each message instead).
pub(crate) struct QuietReader<S> {
    inner: S,
    /// Where the bytes passed up so far end.
    position: Position,
    /// The move has begun.
    held: bool,
}

impl<S> QuietReader<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            position: Position::default(),
            held: false,
        }
    }

    /// The move begins: from now on, read only to the end of the message in
    /// progress.
    pub fn hold(&mut self) {
        self.held = true;
    }

    /// The move will not happen (the session says goodbye instead): read freely again,
    /// so that the client's close reply is read.
    pub fn release(&mut self) {
        self.held = false;
    }

    /// Bytes of a message (or of a frame header) have been passed up, and its end
    /// has not.
    pub fn mid_message(&self) -> bool {
        self.position.bound().is_some()
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub fn into_inner(self) -> S {
        self.inner
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for QuietReader<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.held {
            let before = buf.filled().len();
            let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
            this.position.advance(&buf.filled()[before..]);
            return polled;
        }
        let Some(bound) = this.position.bound() else {
            return Poll::Pending;
        };
        // A bounded read into a scratch buffer: only during a move, for the end of
        // one message.
        let mut scratch = vec![0u8; bound.min(buf.remaining()).min(64 * 1024)];
        let mut limited = ReadBuf::new(&mut scratch);
        let polled = Pin::new(&mut this.inner).poll_read(cx, &mut limited);
        let read = limited.filled();
        this.position.advance(read);
        buf.put_slice(read);
        polled
    }
}

write_through!(QuietReader);

// The session mover drains tungstenite itself (its reader sits under the limits
// guard); these stay for the tests that show where the bytes are.
#[cfg_attr(not(test), allow(dead_code))]
/// What a held session still has for the old process.
#[derive(Debug)]
pub(crate) enum Buffered {
    /// A message tungstenite had already read: answer it.
    Message(Result<Message, WsError>),
    /// A message is still arriving: go on reading (`next().await`, bounded by the
    /// deadline of the move).
    Arriving,
    /// The quiet point: tungstenite holds nothing, the message boundary is reached.
    /// Flush what is queued and move the connection.
    Quiet,
}

// The session mover drains tungstenite itself (its reader sits under the limits
// guard); these stay for the tests that show where the bytes are.
#[cfg_attr(not(test), allow(dead_code))]
/// Polls a held session once, without waiting: the next message tungstenite
/// already holds, or whether the quiet point is reached.
pub(crate) fn next_buffered<S>(socket: &mut WebSocketStream<QuietReader<S>>) -> Buffered
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match socket.next().now_or_never() {
        Some(Some(message)) => Buffered::Message(message),
        Some(None) => Buffered::Message(Err(WsError::ConnectionClosed)),
        None if socket.get_ref().mid_message() => Buffered::Arriving,
        None => Buffered::Quiet,
    }
}

/// The connection of a session at its quiet point, out of hyper: the original I/O
/// (which holds the descriptor to pass) and the bytes hyper read ahead that nobody
/// has parsed, to be carried in the session's record.
pub(crate) struct MovingConnection<T> {
    pub io: T,
    pub unparsed: Vec<u8>,
}

/// Takes a session's connection back out of hyper's upgrade. `T` is the I/O the
/// HTTP connection was served on (for the gateway,
/// `TokioIo<CountedStream<TcpStream>>`); `None` if it was another.
pub(crate) fn out_of_hyper<T>(upgraded: Upgraded) -> Result<MovingConnection<T>, Upgraded>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
{
    let parts = upgraded.downcast::<T>()?;
    Ok(MovingConnection {
        io: parts.io,
        unparsed: parts.read_buf.to_vec(),
    })
}

/// The new process's side: a moved connection's descriptor as a tokio TCP stream.
/// Fails if it is not a connected TCP socket.
pub(crate) fn adopt_tcp(fd: OwnedFd) -> io::Result<tokio::net::TcpStream> {
    let stream = std::net::TcpStream::from(fd);
    // Fails with ENOTCONN / ENOTSOCK for anything but a connected socket.
    stream.peer_addr()?;
    stream.set_nonblocking(true)?;
    tokio::net::TcpStream::from_std(stream)
}

/// A moved connection with the bytes read before the move put back in front: reads
/// return them first, then the socket's.
pub(crate) struct CarriedBytes<S> {
    carried: VecDeque<u8>,
    inner: S,
}

impl<S> CarriedBytes<S> {
    pub fn new(inner: S, carried: Vec<u8>) -> Self {
        Self {
            carried: carried.into(),
            inner,
        }
    }

    /// The bytes not read yet of those carried, and the connection.
    pub fn into_parts(self) -> (Vec<u8>, S) {
        (self.carried.into(), self.inner)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CarriedBytes<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.carried.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let take = this.carried.len().min(buf.remaining());
        let (front, back) = this.carried.as_slices();
        let from_front = front.len().min(take);
        buf.put_slice(&front[..from_front]);
        buf.put_slice(&back[..take - from_front]);
        this.carried.drain(..take);
        Poll::Ready(Ok(()))
    }
}

write_through!(CarriedBytes);

/// The I/O the gateway serves HTTP on, which an upgraded session's `Upgraded` wraps.
pub(crate) type ServedIo = TokioIo<CountedStream<TcpStream>>;

/// The connection under a WebSocket session: one upgraded in this process, or one
/// moved here from the old process at a restart.
pub(crate) enum SessionIo {
    Upgraded(TokioIo<Upgraded>),
    Adopted(CarriedBytes<CountedStream<TcpStream>>),
    /// Taken out for a move: nothing left to read or write.
    Gone,
}

impl SessionIo {
    /// At the quiet point: the TCP connection and the bytes read from it that nobody
    /// parsed, leaving [`SessionIo::Gone`]. `None` (and the session untouched) when
    /// the connection is not a plain TCP one (a TLS session).
    pub fn take_tcp(&mut self) -> Option<(TcpStream, Vec<u8>)> {
        match std::mem::replace(self, Self::Gone) {
            Self::Upgraded(io) => match out_of_hyper::<ServedIo>(io.into_inner()) {
                Ok(moving) => Some((moving.io.into_inner().into_inner(), moving.unparsed)),
                Err(upgraded) => {
                    *self = Self::Upgraded(TokioIo::new(upgraded));
                    None
                }
            },
            Self::Adopted(carried) => {
                let (unparsed, counted) = carried.into_parts();
                Some((counted.into_inner(), unparsed))
            }
            Self::Gone => None,
        }
    }
}

impl AsyncRead for SessionIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Upgraded(io) => Pin::new(io).poll_read(cx, buf),
            Self::Adopted(io) => Pin::new(io).poll_read(cx, buf),
            Self::Gone => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for SessionIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Upgraded(io) => Pin::new(io).poll_write(cx, data),
            Self::Adopted(io) => Pin::new(io).poll_write(cx, data),
            Self::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Upgraded(io) => Pin::new(io).poll_flush(cx),
            Self::Adopted(io) => Pin::new(io).poll_flush(cx),
            Self::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Upgraded(io) => Pin::new(io).poll_shutdown(cx),
            Self::Adopted(io) => Pin::new(io).poll_shutdown(cx),
            Self::Gone => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame_meter::tests::frame;
    use super::*;
    use std::os::fd::AsFd;
    use std::time::Duration;

    use futures_util::SinkExt;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::tungstenite::protocol::Role;

    /// Bound on every wait: a hang fails instead of blocking.
    const PATIENCE: Duration = Duration::from_secs(10);

    type Connection = TokioIo<TcpStream>;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    /// The next text message, past control frames.
    async fn text<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut WebSocketStream<S>) -> String {
        loop {
            match tokio::time::timeout(PATIENCE, socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => return text.as_str().to_owned(),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// The new process's session on a duplicate of `fd`, with `carried` in front.
    async fn resumed(
        fd: std::os::fd::BorrowedFd<'_>,
        carried: Vec<u8>,
    ) -> WebSocketStream<CarriedBytes<TcpStream>> {
        let tcp = adopt_tcp(fd.try_clone_to_owned().unwrap()).unwrap();
        WebSocketStream::from_raw_socket(CarriedBytes::new(tcp, carried), Role::Server, None).await
    }

    /// Serves one HTTP/1.1 connection with upgrades; the upgraded connection.
    async fn upgraded_by_hyper(server: TcpStream) -> Upgraded {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            let on_upgrade = hyper::upgrade::on(&mut request);
            if let Some(tx) = tx.lock().unwrap().take() {
                tokio::spawn(async move {
                    let _ = tx.send(on_upgrade.await);
                });
            }
            async {
                let mut response =
                    hyper::Response::new(http_body_util::Empty::<bytes::Bytes>::new());
                *response.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
                let headers = response.headers_mut();
                headers.insert("connection", "Upgrade".parse().unwrap());
                headers.insert("upgrade", "websocket".parse().unwrap());
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server), service)
                .with_upgrades(),
        );
        tokio::time::timeout(PATIENCE, rx)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn messages_pipelined_behind_the_upgrade_move_in_hypers_read_ahead() {
        let (mut client, server) = pair().await;
        let mut sent = b"GET / HTTP/1.1\r\nHost: gateway\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".to_vec();
        let pipelined = [frame(true, 0x1, b"one"), frame(true, 0x1, b"two")].concat();
        sent.extend(&pipelined);
        client.write_all(&sent).await.unwrap();
        let upgraded = upgraded_by_hyper(server).await;
        // The move begins before the session has read anything after its upgrade:
        // at a message boundary, so it reads nothing more.
        let mut reader = QuietReader::new(TokioIo::new(upgraded));
        reader.hold();
        let mut old = WebSocketStream::from_raw_socket(reader, Role::Server, None).await;
        assert!(matches!(next_buffered(&mut old), Buffered::Quiet));
        let upgraded = old.into_inner().into_inner().into_inner();
        let moving = out_of_hyper::<Connection>(upgraded).expect("the I/O hyper served");
        assert_eq!(
            moving.unparsed, pipelined,
            "both messages wait in hyper's read-ahead, whole"
        );
        let mut new = resumed(moving.io.inner().as_fd(), moving.unparsed).await;
        // The old process closes its descriptor: the connection stays open.
        drop(moving.io);
        assert_eq!(text(&mut new).await, "one");
        assert_eq!(text(&mut new).await, "two");
        new.send(Message::text("answered by the new process"))
            .await
            .unwrap();
        let mut response = vec![0u8; 4096];
        let mut got = Vec::new();
        while !got.ends_with(b"answered by the new process") {
            let n = tokio::time::timeout(PATIENCE, client.read(&mut response))
                .await
                .unwrap()
                .unwrap();
            assert_ne!(n, 0, "the connection stays open across the move");
            got.extend_from_slice(&response[..n]);
        }
    }

    #[tokio::test]
    async fn tungstenites_own_partially_read_constructor_also_resumes_a_moved_session() {
        let (mut client, server) = pair().await;
        let carried = frame(true, 0x1, b"carried");
        client
            .write_all(&frame(true, 0x1, b"from the socket"))
            .await
            .unwrap();
        let tcp = adopt_tcp(server.as_fd().try_clone_to_owned().unwrap()).unwrap();
        drop(server);
        let mut new = WebSocketStream::from_partially_read(tcp, carried, Role::Server, None).await;
        assert_eq!(text(&mut new).await, "carried");
        assert_eq!(text(&mut new).await, "from the socket");
    }

    #[tokio::test]
    async fn a_message_already_inside_tungstenite_is_drained_and_answered_by_the_old_process() {
        let (mut client, server) = pair().await;
        let both = [frame(true, 0x1, b"one"), frame(true, 0x1, b"two")].concat();
        client.write_all(&both).await.unwrap();
        let mut old =
            WebSocketStream::from_raw_socket(QuietReader::new(server), Role::Server, None).await;
        // Before the move, tungstenite reads as much as it likes: both messages.
        assert_eq!(text(&mut old).await, "one");
        old.get_mut().hold();
        match next_buffered(&mut old) {
            Buffered::Message(Ok(Message::Text(text))) => assert_eq!(text.as_str(), "two"),
            other => panic!("expected the buffered message, got {other:?}"),
        }
        assert!(matches!(next_buffered(&mut old), Buffered::Quiet));
        let third = frame(true, 0x1, b"three");
        client.write_all(&third).await.unwrap();
        let server = old.into_inner().into_inner();
        let mut new = resumed(server.as_fd(), Vec::new()).await;
        drop(server);
        assert_eq!(text(&mut new).await, "three");
    }

    #[tokio::test]
    async fn a_message_still_arriving_is_read_to_its_end_and_not_a_byte_further() {
        let (mut client, server) = pair().await;
        let second = frame(true, 0x1, &[b'x'; 3000]);
        let fragments = [frame(false, 0x1, b"fra"), frame(true, 0x9, b"ping")].concat();
        client
            .write_all(&[frame(true, 0x1, b"one"), second[..5].to_vec()].concat())
            .await
            .unwrap();
        let mut old =
            WebSocketStream::from_raw_socket(QuietReader::new(server), Role::Server, None).await;
        assert_eq!(text(&mut old).await, "one");
        old.get_mut().hold();
        // The rest of the message and the next ones arrive in one write.
        let rest = [
            second[5..].to_vec(),
            fragments.clone(),
            frame(true, 0x0, b"gment"),
        ]
        .concat();
        client.write_all(&rest).await.unwrap();
        assert_eq!(text(&mut old).await.len(), 3000);
        assert!(matches!(next_buffered(&mut old), Buffered::Quiet));
        let server = old.into_inner().into_inner();
        let mut new = resumed(server.as_fd(), Vec::new()).await;
        drop(server);
        // A ping in the middle of a fragmented message: the new process answers it.
        assert_eq!(text(&mut new).await, "fragment");
    }

    #[tokio::test]
    async fn a_held_session_mid_message_is_arriving_not_quiet() {
        let (mut client, server) = pair().await;
        let whole = frame(true, 0x1, b"incomplete");
        client.write_all(&whole[..4]).await.unwrap();
        let mut old =
            WebSocketStream::from_raw_socket(QuietReader::new(server), Role::Server, None).await;
        // Let tungstenite take the first bytes: poll until the reader has seen them.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !old.get_ref().mid_message() {
            assert!(tokio::time::Instant::now() < deadline);
            let _ = tokio::time::timeout(Duration::from_millis(10), old.next()).await;
        }
        old.get_mut().hold();
        assert!(matches!(next_buffered(&mut old), Buffered::Arriving));
    }

    #[tokio::test]
    async fn without_the_quiet_reader_tungstenite_keeps_pipelined_bytes_out_of_reach() {
        let (mut client, server) = pair().await;
        let both = [frame(true, 0x1, b"one"), frame(true, 0x1, b"two")].concat();
        client.write_all(&both).await.unwrap();
        let mut plain = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
        assert_eq!(text(&mut plain).await, "one");
        let server = plain.into_inner();
        let mut probe = [0u8; 64];
        let unread = server.try_read(&mut probe);
        assert_eq!(
            unread.map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock),
            "\"two\" was read off the socket and dropped with tungstenite"
        );
    }
}
