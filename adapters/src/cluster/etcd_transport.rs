//! How a request reaches etcd's JSON gateway: HTTP/1.1 `POST`s over a fresh
//! connection (TLS for `https://` endpoints) to the first endpoint that accepts one,
//! with the etcd user's token, when there is one, in the `Authorization` header.
//!
//! One connection per request: the lock sends a few requests per TTL, a watch holds
//! its connection for up to a TTL, and a connection that is never idle needs no
//! keep-alive of its own (etcd's gRPC ping policy does not apply to HTTP/1.1).
//!
//! What fails is sorted here into what waiting may cure (no connection: the caller
//! retries, exit 75) and what it will not (a certificate that does not verify, a
//! client certificate or credentials etcd refuses: [`Failure::Refused`], exit 78).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::etcd_auth::EtcdUser;
use super::etcd_json::{AuthenticateRequest, AuthenticateResponse, ErrorBody, Refusal, StreamLine};
use super::etcd_tls::EtcdTls;

/// How long a TCP connection to one endpoint (and then its TLS handshake) may take
/// before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a failed request waits for its connection's own error (already there
/// when the connection ended first, as it has when the request failed).
const CONNECTION_END_PATIENCE: Duration = Duration::from_millis(100);
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
    /// `endpoint` (as configured) refuses this gateway: its certificate does not
    /// verify, or etcd refuses the client certificate or the credentials.
    Refused { endpoint: String, reason: String },
    /// etcd called the token stale: authenticate again (internal to the transport).
    StaleToken { endpoint: String, reason: String },
}

impl Failure {
    /// The text for the `LockFault`'s reason.
    pub fn reason(&self) -> String {
        match self {
            Self::Transport(reason)
            | Self::Refused { reason, .. }
            | Self::StaleToken { reason, .. } => reason.clone(),
            Self::Etcd(error) => error.text(),
        }
    }

    /// A token still called stale after a fresh authentication is a refusal.
    fn settled(self) -> Self {
        match self {
            Self::StaleToken { endpoint, reason } => Self::Refused { endpoint, reason },
            other => other,
        }
    }

    /// A refusal met without `--cluster-user`: etcd has authentication on and the
    /// gateway came as nobody, which the line says, with what to do.
    fn hinting_at_the_user(self) -> Self {
        match self {
            Self::Refused { endpoint, reason } if is_about_the_user(&reason) => Self::Refused {
                endpoint,
                reason: format!("{reason} (etcd has authentication on: give --cluster-user)"),
            },
            other => other,
        }
    }
}

/// Whether etcd refused for want of a user (rather than a certificate).
fn is_about_the_user(reason: &str) -> bool {
    ["permission denied", "user name is empty"]
        .iter()
        .any(|words| reason.contains(words))
}

/// The bytes of one connection, plain or TLS.
trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

/// One configured endpoint, parsed once.
#[derive(Debug, Clone)]
struct Member {
    /// The endpoint as configured (`https://host:port`), for refusal lines.
    url: String,
    /// `host:port`, for the `Host` header and error messages.
    authority: String,
    /// The host to resolve, without IPv6 brackets (and the name TLS verifies).
    host: String,
    port: u16,
    /// `https://`: the connection speaks TLS.
    tls: bool,
}

/// How the gateway is let in: TLS for `https://` endpoints, and an etcd user.
#[derive(Debug, Default)]
pub struct EtcdAccess {
    /// Roots and client certificate; the system's roots when `None`.
    pub tls: Option<EtcdTls>,
    /// `--cluster-user` and its password.
    pub user: Option<EtcdUser>,
}

/// The endpoints of one etcd cluster and how to talk to them.
#[derive(Debug)]
pub struct Transport {
    members: Vec<Member>,
    /// The member that last accepted a connection: asked first next time, so a dead
    /// first endpoint costs one connect timeout once, not on every request.
    preferred: AtomicUsize,
    /// TLS for the `https://` members; `None` when there are none (the system's
    /// roots are then not even read).
    tls: Option<EtcdTls>,
    /// The etcd user, when the gateway authenticates.
    user: Option<EtcdUser>,
}

impl Transport {
    /// Parses `endpoints` (`http://host:port`, `https://host:port`). Nothing is
    /// connected here.
    pub fn new(endpoints: &[String], access: EtcdAccess) -> Result<Self, String> {
        if endpoints.is_empty() {
            return Err("no endpoint given".to_owned());
        }
        let members: Vec<Member> = endpoints
            .iter()
            .map(|url| parse_member(url))
            .collect::<Result<_, _>>()?;
        let any_tls = members.iter().any(|member| member.tls);
        let tls = any_tls.then(|| access.tls.unwrap_or_else(EtcdTls::with_system_roots));
        Ok(Self {
            members,
            preferred: AtomicUsize::new(0),
            tls,
            user: access.user,
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
    /// from [`Exchange::next_line`]. As the etcd user, if any: authenticates first
    /// when no token is held, and once more when etcd calls the token stale.
    pub async fn post<Q: Serialize>(&self, path: &str, message: &Q) -> Result<Exchange, Failure> {
        let body = Bytes::from(serde_json::to_vec(message).unwrap_or_default());
        let Some(user) = &self.user else {
            return self
                .post_to_any(path, body, None)
                .await
                .map_err(|failure| failure.settled().hinting_at_the_user());
        };
        let token = match user.token() {
            Some(token) => token,
            None => self.authenticate(user).await?,
        };
        match self.post_to_any(path, body.clone(), Some(&token)).await {
            Err(Failure::StaleToken { .. }) => {
                user.forget(&token);
                let token = self.authenticate(user).await?;
                let retried = self.post_to_any(path, body, Some(&token)).await;
                retried.map_err(Failure::settled)
            }
            other => other,
        }
    }

    /// Exchanges the user's password for a token, and keeps it.
    async fn authenticate(&self, user: &EtcdUser) -> Result<String, Failure> {
        let request = AuthenticateRequest {
            name: user.name(),
            password: user.password(),
        };
        let body = Bytes::from(serde_json::to_vec(&request).unwrap_or_default());
        let path = "/v3/auth/authenticate";
        let mut exchange = self
            .post_to_any(path, body, None)
            .await
            .map_err(Failure::settled)?;
        let answer = exchange.body_to_end().await?;
        let token = serde_json::from_slice::<AuthenticateResponse>(&answer)
            .map_err(|error| Failure::Transport(format!("unreadable answer to {path}: {error}")))?
            .token;
        if token.is_empty() {
            return Err(Failure::Refused {
                endpoint: exchange.endpoint.clone(),
                reason: "etcd gave no auth token".to_owned(),
            });
        }
        user.remember(&token);
        Ok(token)
    }

    /// Sends the request to the first member that accepts a connection.
    async fn post_to_any(
        &self,
        path: &str,
        body: Bytes,
        token: Option<&str>,
    ) -> Result<Exchange, Failure> {
        let count = self.members.len();
        let first = self.preferred.load(Ordering::Relaxed) % count;
        let mut reasons = Vec::new();
        let mut refused = None;
        for index in (0..count).map(|i| (first + i) % count) {
            let member = &self.members[index];
            match self.exchange(member, path, body.clone(), token).await {
                Ok(exchange) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return exchange?.checked().await;
                }
                Err(unconnected) => {
                    reasons.push(format!("{}: {}", member.authority, unconnected.reason));
                    if unconnected.refused && refused.is_none() {
                        refused = Some(Failure::Refused {
                            endpoint: member.url.clone(),
                            reason: unconnected.reason.clone(),
                        });
                    }
                    if count == 1 {
                        reasons = vec![unconnected.reason];
                    }
                }
            }
        }
        // A refusal is reported over an unreachable member: waiting will not cure it.
        Err(refused.unwrap_or_else(|| Failure::Transport(reasons.join("; "))))
    }

    /// Connects to `member` and sends the request; `Unconnected` only when it was not
    /// sent, so that trying the next member cannot apply a request twice.
    async fn exchange(
        &self,
        member: &Member,
        path: &str,
        body: Bytes,
        token: Option<&str>,
    ) -> Result<Result<Exchange, Failure>, Unconnected> {
        let stream = self.dial(member).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(stream)
            .await
            .map_err(|error| Unconnected::reached(error.to_string()))?;
        // The connection's own error, for when the request only learns that it
        // ended ("connection was not ready").
        let (ended_tx, ended) = tokio::sync::oneshot::channel();
        let connection = ConnectionTask(tokio::spawn(async move {
            if let Err(error) = connection.await {
                let _ = ended_tx.send(error);
            }
        }));
        let request = request(member, path, body, token);
        Ok(match sender.send_request(request).await {
            Ok(response) => Ok(Exchange {
                status: response.status(),
                body: response.into_body(),
                pending: BytesMut::new(),
                endpoint: member.url.clone(),
                _connection: connection,
            }),
            // TLS 1.3: a client certificate etcd rejects (or one it asked for and
            // did not get) shows as an alert at the first read after the handshake,
            // which the request or the connection meets, whichever reads first.
            Err(error) => {
                let ended = tokio::time::timeout(CONNECTION_END_PATIENCE, ended).await;
                let refusal = tls_refusal(&error).or_else(|| match &ended {
                    Ok(Ok(ended)) => tls_refusal(ended),
                    _ => None,
                });
                Err(match refusal {
                    Some(reason) => Failure::Refused {
                        endpoint: member.url.clone(),
                        reason,
                    },
                    None => Failure::Transport(readable_hyper(&error)),
                })
            }
        })
    }

    /// The byte stream to `member`: TCP, and TLS on it for `https://`.
    async fn dial(&self, member: &Member) -> Result<TokioIo<Box<dyn Connection>>, Unconnected> {
        let connect = TcpStream::connect((member.host.as_str(), member.port));
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(Unconnected::reached(readable_io(&error))),
            Err(_elapsed) => {
                return Err(Unconnected::reached(format!(
                    "no connection within {} ms",
                    CONNECT_TIMEOUT.as_millis()
                )));
            }
        };
        let _ = stream.set_nodelay(true);
        if !member.tls {
            return Ok(TokioIo::new(Box::new(stream)));
        }
        let Some(tls) = &self.tls else {
            unreachable!("a transport with an https:// member has TLS settings");
        };
        let handshake = tls.connect(&member.host, stream);
        match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
            Ok(Ok(stream)) => Ok(TokioIo::new(Box::new(stream))),
            Ok(Err(error)) => Err(match tls_refusal(&error) {
                Some(reason) => Unconnected::refusing(reason),
                None => Unconnected::reached(handshake_failure(&error)),
            }),
            Err(_elapsed) => Err(Unconnected::reached(format!(
                "no TLS handshake within {} ms",
                CONNECT_TIMEOUT.as_millis()
            ))),
        }
    }
}

/// The request as sent, with the etcd user's token if there is one.
fn request(member: &Member, path: &str, body: Bytes, token: Option<&str>) -> Request<Full<Bytes>> {
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
    if let Some(Ok(mut value)) = token.map(hyper::header::HeaderValue::from_str) {
        value.set_sensitive(true);
        headers.insert(hyper::header::AUTHORIZATION, value);
    }
    request
}

/// The request could not be sent to this member: try the next.
struct Unconnected {
    reason: String,
    /// The member answered and refused (TLS): a configuration to fix.
    refused: bool,
}

impl Unconnected {
    fn reached(reason: String) -> Self {
        Self {
            reason,
            refused: false,
        }
    }

    fn refusing(reason: String) -> Self {
        Self {
            reason,
            refused: true,
        }
    }
}

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
    /// The member that answered, as configured, for refusal lines.
    endpoint: String,
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
            // Not etcd's JSON: a plain-text refusal of the HTTP layer, said as it is.
            error.message = match plain_text_line(&body) {
                Some(text) => format!("HTTP {status}: {text}"),
                None => format!("HTTP {status}"),
            };
        }
        Err(self.refusal_or(error))
    }

    /// An etcd error about access becomes a refusal naming this endpoint.
    fn refusal_or(&self, error: ErrorBody) -> Failure {
        let endpoint = self.endpoint.clone();
        match error.refusal() {
            Some(Refusal::Denied) => Failure::Refused {
                endpoint,
                reason: error.text(),
            },
            Some(Refusal::StaleToken) => Failure::StaleToken {
                endpoint,
                reason: error.text(),
            },
            None => Failure::Etcd(error),
        }
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
                return self.line(&line).map(Some);
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
                    return self.line(&line).map(Some);
                }
            }
        }
    }
}

impl Exchange {
    /// One line of a streamed answer. A stale token there is not retried (the stream
    /// is under way): the next request authenticates again.
    fn line<T: DeserializeOwned>(&self, line: &[u8]) -> Result<T, Failure> {
        let line: StreamLine<T> = serde_json::from_slice(line)
            .map_err(|error| Failure::Transport(format!("unreadable streamed answer: {error}")))?;
        match (line.result, line.error) {
            (_, Some(error)) => Err(match self.refusal_or(error) {
                Failure::StaleToken { reason, .. } => Failure::Transport(reason),
                other => other,
            }),
            (Some(result), None) => Ok(result),
            (None, None) => Err(Failure::Transport("an empty streamed answer".into())),
        }
    }
}

/// `http://host:port` or `https://host:port` (a path prefix, if any, is not
/// supported).
fn parse_member(url: &str) -> Result<Member, String> {
    let uri: Uri = url
        .parse()
        .map_err(|error| format!("invalid endpoint {url:?}: {error}"))?;
    let expected = || format!("invalid endpoint {url:?}: expected http(s)://HOST:PORT");
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(expected()),
    };
    let (Some(host), Some(port)) = (uri.host(), uri.port_u16()) else {
        return Err(expected());
    };
    Ok(Member {
        url: url.trim_end_matches('/').to_owned(),
        tls,
        authority: format!("{host}:{port}"),
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    })
}

/// The first line of a short plain-text body, if it is one.
fn plain_text_line(body: &[u8]) -> Option<String> {
    const MAX_SHOWN: usize = 200;
    let text = std::str::from_utf8(body).ok()?.lines().next()?.trim();
    let printable = !text.is_empty() && text.chars().all(|c| !c.is_control());
    printable.then(|| text.chars().take(MAX_SHOWN).collect())
}

/// The TLS refusal in `error`'s chain, if any, as a reason: a certificate that does
/// not verify, an alert from etcd (a client certificate missing or refused), or a
/// peer that does not speak TLS. `io::Error` hides its inner error from `source`,
/// hence the `get_ref`.
fn tls_refusal(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(error);
    while let Some(current) = cause {
        let tls = current.downcast_ref::<rustls::Error>().or_else(|| {
            current
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(tls) = tls {
            return Some(format!("TLS: {tls}"));
        }
        cause = current.source();
    }
    None
}

/// Why a TLS handshake got nowhere without a TLS error: a member that closes the
/// connection at the ClientHello is most often one that speaks plain HTTP (etcd closes
/// it so), which the reason suggests; it stays unreachable (75), since a member in
/// trouble can do the same.
fn handshake_failure(error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        "closed during the TLS handshake (does this endpoint speak plain http://?)".to_owned()
    } else {
        readable_io(error)
    }
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
    fn a_refusal_for_want_of_a_user_says_to_give_one_and_others_are_left_as_they_are() {
        let refused = |reason: &str| Failure::Refused {
            endpoint: "https://etcd:2379".into(),
            reason: reason.into(),
        };
        assert_eq!(
            refused("etcdserver: user name is empty").hinting_at_the_user(),
            refused(
                "etcdserver: user name is empty (etcd has authentication on: give --cluster-user)"
            )
        );
        let certificate = refused("TLS: invalid peer certificate: UnknownIssuer");
        assert_eq!(certificate.clone().hinting_at_the_user(), certificate);
    }

    #[test]
    fn a_member_closing_at_the_client_hello_is_asked_whether_it_speaks_plain_http() {
        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert_eq!(
            handshake_failure(&eof),
            "closed during the TLS handshake (does this endpoint speak plain http://?)"
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(handshake_failure(&refused), "connection refused");
    }

    #[test]
    fn endpoints_are_http_or_https_urls_with_a_port() {
        let member = parse_member("http://127.0.0.1:2379").unwrap();
        assert_eq!((member.host.as_str(), member.port), ("127.0.0.1", 2379));
        assert!(!member.tls);
        let v6 = parse_member("http://[::1]:2379/").unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.authority.as_str(), v6.url.as_str()),
            ("::1", "[::1]:2379", "http://[::1]:2379")
        );
        let secure = parse_member("https://etcd.internal:2379").unwrap();
        assert!(secure.tls);
        assert_eq!(secure.host, "etcd.internal");
        assert!(parse_member("127.0.0.1:2379").is_err());
        assert!(parse_member("http://127.0.0.1").is_err());
        assert!(parse_member("unix://etcd:2379").is_err());
    }

    fn plain(endpoints: &[String]) -> Transport {
        Transport::new(endpoints, EtcdAccess::default()).unwrap()
    }

    /// A CA, as the PEM of its certificate and what signs with it.
    fn ca() -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        (params.self_signed(&key).unwrap(), key)
    }

    /// A TLS server on 127.0.0.1 whose certificate, signed by `ca`, names only
    /// 127.0.0.1; its port.
    async fn tls_server(ca: &(rcgen::Certificate, rcgen::KeyPair)) -> u16 {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &ca.0, &ca.1).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(crate::tls::VERSIONS)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let _ = acceptor.accept(socket).await;
            }
        });
        port
    }

    /// The failure of a request to `url` from a client that trusts only `ca`.
    async fn failure_trusting(ca: &rcgen::Certificate, url: &str) -> Failure {
        let dir = std::env::temp_dir().join(format!(
            "etcd-ca-{}-{}",
            std::process::id(),
            url.rsplit(':').next().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let access = EtcdAccess {
            tls: Some(EtcdTls::load(Some(&ca_file), None).unwrap()),
            user: None,
        };
        let _ = std::fs::remove_dir_all(&dir);
        let transport = Transport::new(&[url.to_owned()], access).unwrap();
        transport.post("/v3/kv/range", &()).await.err().unwrap()
    }

    #[tokio::test]
    async fn a_certificate_of_an_unknown_ca_is_a_refusal_naming_the_endpoint() {
        let port = tls_server(&ca()).await;
        let url = format!("https://127.0.0.1:{port}");
        let failure = failure_trusting(&ca().0, &url).await;
        let Failure::Refused { endpoint, reason } = failure else {
            panic!("not a refusal: {failure:?}");
        };
        assert_eq!(endpoint, url);
        // Both CAs have the same (empty) name: the signature is what fails.
        assert!(
            reason.starts_with("TLS: invalid peer certificate"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn a_certificate_for_another_name_is_a_refusal() {
        let authority = ca();
        let port = tls_server(&authority).await;
        let trusted = failure_trusting(&authority.0, &format!("https://127.0.0.1:{port}")).await;
        // The handshake passed: the request found a server that speaks no HTTP.
        assert!(matches!(trusted, Failure::Transport(_)), "{trusted:?}");
        let url = format!("https://localhost:{port}");
        let failure = failure_trusting(&authority.0, &url).await;
        let Failure::Refused { endpoint, reason } = failure else {
            panic!("not a refusal: {failure:?}");
        };
        assert_eq!(endpoint, url);
        assert!(
            reason.starts_with("TLS: invalid peer certificate"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_to_an_https_endpoint_is_unreachable_not_refused() {
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("https://{}", listener.local_addr().unwrap())
        };
        let failure = plain(&[closed])
            .post("/v3/kv/range", &())
            .await
            .err()
            .unwrap();
        assert_eq!(failure, Failure::Transport("connection refused".into()));
    }

    #[tokio::test]
    async fn a_refused_connection_reads_connection_refused_and_every_endpoint_is_tried() {
        let closed = || {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
            // dropped: the port refuses from here on
        };
        let one = closed();
        let transport = plain(std::slice::from_ref(&one));
        let failure = transport.post("/v3/kv/range", &()).await.err().unwrap();
        assert_eq!(failure, Failure::Transport("connection refused".into()));

        let two = closed();
        let transport = plain(&[one.clone(), two.clone()]);
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
        let transport = plain(&[refusing, serving]);
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
