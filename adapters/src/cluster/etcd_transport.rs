//! How a request reaches etcd's JSON gateway: HTTP/1.1 `POST`s over a fresh
//! connection to the first endpoint that accepts one.
//!
//! One connection per request: the lock sends a few requests per TTL, a watch holds
//! its connection for up to a TTL, and a connection that is never idle needs no
//! keep-alive of its own (etcd's gRPC ping policy does not apply to HTTP/1.1). The
//! seam for what comes later is [`Transport::dial`] (a TLS connector wraps the stream
//! there) and [`Transport::request`] (an auth token header goes there).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::etcd_json::{ErrorBody, StreamLine};

/// How long a TCP connection to one endpoint may take before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// No answer of the lock's is near this; a larger one is not etcd's.
const MAX_BODY: usize = 1024 * 1024;

/// Why a request got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No endpoint could be reached, or the connection broke: the reason, readable
    /// ("connection refused"), for the line in docs/reference.md#cluster.
    Transport(String),
    /// etcd answered with an error (`NOT_FOUND`, `no leader`...).
    Etcd(ErrorBody),
}

impl Failure {
    /// The text for `LockFault::Unreachable`'s reason.
    pub fn reason(&self) -> String {
        match self {
            Self::Transport(reason) => reason.clone(),
            Self::Etcd(error) => error.text(),
        }
    }
}

/// One configured endpoint, parsed once.
#[derive(Debug, Clone)]
struct Member {
    /// `host:port`, for the `Host` header and error messages.
    authority: String,
    /// The host to resolve, without IPv6 brackets.
    host: String,
    port: u16,
}

/// The endpoints of one etcd cluster and how to talk to them.
#[derive(Debug)]
pub struct Transport {
    members: Vec<Member>,
    /// The member that last accepted a connection: asked first next time, so a dead
    /// first endpoint costs one connect timeout once, not on every request.
    preferred: AtomicUsize,
}

impl Transport {
    /// Parses `endpoints` (`http://host:port`). Nothing is connected here.
    pub fn new(endpoints: &[String]) -> Result<Self, String> {
        if endpoints.is_empty() {
            return Err("no endpoint given".to_owned());
        }
        let members = endpoints
            .iter()
            .map(|url| parse_member(url))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            members,
            preferred: AtomicUsize::new(0),
        })
    }

    /// `POST path` with `message` as JSON; the whole answer, parsed.
    pub async fn call<Q: Serialize, A: DeserializeOwned>(
        &self,
        path: &str,
        message: &Q,
    ) -> Result<A, Failure> {
        let mut exchange = self.post(path, message).await?;
        let body = exchange.body_to_end().await?;
        serde_json::from_slice(&body)
            .map_err(|error| Failure::Transport(format!("unreadable answer to {path}: {error}")))
    }

    /// `POST path` with `message` as JSON, for a streamed answer: the lines come
    /// from [`Exchange::next_line`].
    pub async fn post<Q: Serialize>(&self, path: &str, message: &Q) -> Result<Exchange, Failure> {
        let body = Bytes::from(serde_json::to_vec(message).unwrap_or_default());
        let count = self.members.len();
        let first = self.preferred.load(Ordering::Relaxed) % count;
        let mut reasons = Vec::new();
        for index in (0..count).map(|i| (first + i) % count) {
            let member = &self.members[index];
            match self.exchange(member, path, body.clone()).await {
                Ok(exchange) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return exchange?.checked().await;
                }
                Err(Unconnected(reason)) if count == 1 => return Err(Failure::Transport(reason)),
                Err(Unconnected(reason)) => {
                    reasons.push(format!("{}: {reason}", member.authority));
                }
            }
        }
        Err(Failure::Transport(reasons.join("; ")))
    }

    /// Connects to `member` and sends the request; `Unconnected` only when it was not
    /// sent, so that trying the next member cannot apply a request twice.
    async fn exchange(
        &self,
        member: &Member,
        path: &str,
        body: Bytes,
    ) -> Result<Result<Exchange, Failure>, Unconnected> {
        let stream = self.dial(member).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(stream)
            .await
            .map_err(|error| Unconnected(error.to_string()))?;
        let connection = ConnectionTask(tokio::spawn(async move {
            let _ = connection.await;
        }));
        let request = self.request(member, path, body);
        Ok(match sender.send_request(request).await {
            Ok(response) => Ok(Exchange {
                status: response.status(),
                body: response.into_body(),
                pending: BytesMut::new(),
                _connection: connection,
            }),
            Err(error) => Err(Failure::Transport(readable_hyper(&error))),
        })
    }

    /// The byte stream to `member`. The seam for `https://`: a TLS connector wraps
    /// the TCP stream here.
    async fn dial(&self, member: &Member) -> Result<TokioIo<TcpStream>, Unconnected> {
        let connect = TcpStream::connect((member.host.as_str(), member.port));
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                Ok(TokioIo::new(stream))
            }
            Ok(Err(error)) => Err(Unconnected(readable_io(&error))),
            Err(_elapsed) => Err(Unconnected(format!(
                "no connection within {} ms",
                CONNECT_TIMEOUT.as_millis()
            ))),
        }
    }

    /// The request as sent. The seam for an etcd user: its token header goes here.
    fn request(&self, member: &Member, path: &str, body: Bytes) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = hyper::Method::POST;
        *request.uri_mut() = Uri::try_from(path).unwrap_or_default();
        let headers = request.headers_mut();
        if let Ok(host) = member.authority.parse() {
            headers.insert(hyper::header::HOST, host);
        }
        headers.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        request
    }
}

/// The request could not be sent to this member: try the next.
struct Unconnected(String);

/// The task driving one HTTP/1.1 connection, ended with the exchange, so a watch
/// given up on closes its connection (and etcd drops the watcher).
struct ConnectionTask(JoinHandle<()>);

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One answer being read: its status and body, on its own connection.
pub struct Exchange {
    status: StatusCode,
    body: Incoming,
    /// Bytes read past the last complete line.
    pending: BytesMut,
    _connection: ConnectionTask,
}

impl Exchange {
    /// An error status becomes [`Failure::Etcd`] with etcd's message.
    async fn checked(mut self) -> Result<Self, Failure> {
        if self.status.is_success() {
            return Ok(self);
        }
        let status = self.status;
        let body = self.body_to_end().await?;
        let mut error = serde_json::from_slice::<ErrorBody>(&body).unwrap_or_default();
        if error.text().starts_with("error code ") && error.code == 0 {
            error.message = format!("HTTP {status}");
        }
        Err(Failure::Etcd(error))
    }

    async fn body_to_end(&mut self) -> Result<Bytes, Failure> {
        let mut body = std::mem::take(&mut self.pending);
        let rest = Limited::new(&mut self.body, MAX_BODY)
            .collect()
            .await
            .map_err(|error| Failure::Transport(format!("answer cut short: {error}")))?;
        body.extend_from_slice(&rest.to_bytes());
        Ok(body.freeze())
    }

    /// The next newline-delimited message of a streamed answer, read as it arrives;
    /// `None` at the end of the stream. An `error` line becomes [`Failure::Etcd`].
    pub async fn next_line<T: DeserializeOwned>(&mut self) -> Result<Option<T>, Failure> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line = self.pending.split_to(end + 1);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return parse_line(&line).map(Some);
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if self.pending.len() + data.len() > MAX_BODY {
                            return Err(Failure::Transport("a streamed line too long".into()));
                        }
                        self.pending.extend_from_slice(&data);
                    }
                }
                Some(Err(error)) => return Err(Failure::Transport(readable_hyper(&error))),
                None if self.pending.iter().all(u8::is_ascii_whitespace) => return Ok(None),
                // The last line without its newline.
                None => {
                    let line = std::mem::take(&mut self.pending);
                    return parse_line(&line).map(Some);
                }
            }
        }
    }
}

fn parse_line<T: DeserializeOwned>(line: &[u8]) -> Result<T, Failure> {
    let line: StreamLine<T> = serde_json::from_slice(line)
        .map_err(|error| Failure::Transport(format!("unreadable streamed answer: {error}")))?;
    match (line.result, line.error) {
        (_, Some(error)) => Err(Failure::Etcd(error)),
        (Some(result), None) => Ok(result),
        (None, None) => Err(Failure::Transport("an empty streamed answer".into())),
    }
}

/// `http://host:port` (a path prefix, if any, is not supported).
fn parse_member(url: &str) -> Result<Member, String> {
    let uri: Uri = url
        .parse()
        .map_err(|error| format!("invalid endpoint {url:?}: {error}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!("{url}: https:// endpoints are not supported yet"));
        }
        _ => {
            return Err(format!(
                "invalid endpoint {url:?}: expected http://HOST:PORT"
            ));
        }
    }
    let (Some(host), Some(port)) = (uri.host(), uri.port_u16()) else {
        return Err(format!(
            "invalid endpoint {url:?}: expected http://HOST:PORT"
        ));
    };
    Ok(Member {
        authority: format!("{host}:{port}"),
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    })
}

/// An I/O error as a short lower-case reason: "connection refused", not
/// "Connection refused (os error 111)".
fn readable_io(error: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match error.kind() {
        ConnectionRefused => "connection refused".to_owned(),
        ConnectionReset => "connection reset".to_owned(),
        BrokenPipe => "broken pipe".to_owned(),
        TimedOut => "timed out".to_owned(),
        HostUnreachable => "host unreachable".to_owned(),
        NetworkUnreachable => "network unreachable".to_owned(),
        _ => error.to_string(),
    }
}

/// A hyper error with its cause (an I/O error's short form), so "connection closed
/// before message completed" or "connection reset" shows, not only "client error".
fn readable_hyper(error: &hyper::Error) -> String {
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => readable_io(io),
            None => cause.to_string(),
        };
        if !reason.contains(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        source = cause.source();
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_urls_with_a_port() {
        let member = parse_member("http://127.0.0.1:2379").unwrap();
        assert_eq!((member.host.as_str(), member.port), ("127.0.0.1", 2379));
        let v6 = parse_member("http://[::1]:2379/").unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.authority.as_str()),
            ("::1", "[::1]:2379")
        );
        assert!(parse_member("127.0.0.1:2379").is_err());
        assert!(parse_member("http://127.0.0.1").is_err());
        assert!(
            parse_member("https://etcd:2379")
                .unwrap_err()
                .contains("not supported")
        );
    }

    #[tokio::test]
    async fn a_refused_connection_reads_connection_refused_and_every_endpoint_is_tried() {
        let closed = || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
            // dropped: the port refuses from here on
        };
        let one = closed();
        let transport = Transport::new(std::slice::from_ref(&one)).unwrap();
        let failure = transport.post("/v3/kv/range", &()).await.err().unwrap();
        assert_eq!(failure, Failure::Transport("connection refused".into()));

        let two = closed();
        let transport = Transport::new(&[one.clone(), two.clone()]).unwrap();
        let reason = transport
            .post("/v3/kv/range", &())
            .await
            .err()
            .unwrap()
            .reason();
        let authority = |url: &str| url.trim_start_matches("http://").to_owned();
        assert_eq!(
            reason,
            format!(
                "{}: connection refused; {}: connection refused",
                authority(&one),
                authority(&two)
            )
        );
    }

    #[tokio::test]
    async fn streamed_lines_are_read_as_they_arrive_and_the_next_endpoint_answers() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let refusing = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let serving = format!("http://{}", listener.local_addr().unwrap());
        let (second_sent, second_wanted) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 4096];
            let _ = socket.read(&mut request).await.unwrap();
            let first = r#"{"result":{"created":true}}"#;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            let chunk = |text: &str| format!("{:x}\r\n{text}\n\r\n", text.len() + 1);
            socket
                .write_all(format!("{head}{}", chunk(first)).as_bytes())
                .await
                .unwrap();
            // The second line only once the first was read: incremental reading.
            let _ = second_wanted.await;
            let second = r#"{"result":{"events":[{"type":"DELETE","kv":{"key":"aw=="}}]}}"#;
            socket.write_all(chunk(second).as_bytes()).await.unwrap();
            socket.write_all(b"0\r\n\r\n").await.unwrap();
        });
        let transport = Transport::new(&[refusing, serving]).unwrap();
        let mut exchange = transport.post("/v3/watch", &()).await.unwrap();
        let created: crate::cluster::etcd_json::WatchResponse =
            exchange.next_line().await.unwrap().unwrap();
        assert!(created.created);
        second_sent.send(()).unwrap();
        let deleted: crate::cluster::etcd_json::WatchResponse =
            exchange.next_line().await.unwrap().unwrap();
        assert!(deleted.events[0].is_delete());
        let end: Option<crate::cluster::etcd_json::WatchResponse> =
            exchange.next_line().await.unwrap();
        assert!(end.is_none());
        assert_eq!(transport.preferred.load(Ordering::Relaxed), 1);
        server.await.unwrap();
    }
}
