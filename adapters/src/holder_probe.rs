//! Asks the holder of a taken port whether it is a gateway: `GET /healthz` within
//! the domain's probe budget, in plaintext or over TLS. The endpoint's own scheme is
//! tried first, then the other one: a plain request to a TLS gateway (or a
//! ClientHello to a plain one) gets no HTTP answer, only a quick close.
//!
//! The request and the answer are written and read here by hand rather than by the
//! HTTP client: this runs on every refused start, whose whole cost the contract's
//! fail-fast goal counts, and a one-request client needs none of the client's
//! connection machinery (nor its SIMD header parser, whose CPU-feature detection
//! alone costs tens of microseconds in a VM). See docs/performance.md.

use gateway_domain::ports::HolderProbe;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use gateway_domain::holder::HOLDER_PROBE_BUDGET;
use gateway_domain::{Endpoint, HealthReport, Holder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::tls::connect_unverified;

/// A `/healthz` body larger than this is not a gateway's.
const MAX_HEALTH_BODY: usize = 16 * 1024;

/// An answer's status line and headers larger than this are not a gateway's (its own
/// are about 150 bytes).
const MAX_HEAD: usize = 8 * 1024;

/// Probes over HTTP/1.1 on the taken address.
#[derive(Debug, Clone, Copy)]
pub struct HttpHolderProbe {
    /// How long the holder has to answer.
    pub budget: Duration,
}

impl Default for HttpHolderProbe {
    /// The start-up probe, within 150 ms (docs/reference.md#refusals).
    fn default() -> Self {
        Self {
            budget: HOLDER_PROBE_BUDGET,
        }
    }
}

/// Pause between two connection attempts to a holder that refused: a gateway that has
/// bound but not yet listens refuses for a few microseconds.
const REFUSED_RETRY_PAUSE: Duration = Duration::from_millis(2);

#[async_trait]
impl HolderProbe for HttpHolderProbe {
    async fn identify(&self, endpoint: Endpoint) -> Holder {
        self.locate(endpoint).await.1
    }
}

impl HttpHolderProbe {
    /// Who holds `endpoint`, and the endpoint as it answered: `wss://` when the
    /// holder spoke TLS, whatever scheme `endpoint` had.
    pub async fn locate(&self, endpoint: Endpoint) -> (Endpoint, Holder) {
        let ask_until_answered = async {
            loop {
                match fetch_health_any_scheme(endpoint).await {
                    Err(Unanswered::Refused) => tokio::time::sleep(REFUSED_RETRY_PAUSE).await,
                    Err(Unanswered::Other) => return None,
                    Ok(answered) => return Some(answered),
                }
            }
        };
        match tokio::time::timeout(self.budget, ask_until_answered).await {
            Ok(Some((answered, report))) if report.is_gateway() => {
                (answered, Holder::Gateway(Box::new(report)))
            }
            _ => (endpoint, Holder::Unconfirmed),
        }
    }
}

/// `/healthz` in the endpoint's scheme, then in the other one; with the endpoint in
/// the scheme that answered.
pub async fn fetch_health_any_scheme(
    endpoint: Endpoint,
) -> Result<(Endpoint, HealthReport), Unanswered> {
    match fetch_health(endpoint).await {
        Err(Unanswered::Other) => {
            let other = endpoint.with_tls(!endpoint.is_tls());
            fetch_health(other).await.map(|report| (other, report))
        }
        answered => answered.map(|report| (endpoint, report)),
    }
}

/// Why `/healthz` gave no report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// The connection was refused: nothing listens yet (or any more). Between a
    /// gateway's bind and its listen this is what a prober sees, so it is worth
    /// asking again.
    Refused,
    /// Anything else: not HTTP, not a gateway's body, a broken connection.
    Other,
}

/// The address to dial for an endpoint: a wildcard bind is reached on loopback.
fn dial_address(endpoint: Endpoint) -> SocketAddr {
    let ip = match endpoint.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, endpoint.port())
}

/// Whether anything accepts a TCP connection on `endpoint` within `budget`.
pub async fn is_accepting(endpoint: Endpoint, budget: Duration) -> bool {
    matches!(
        tokio::time::timeout(budget, TcpStream::connect(dial_address(endpoint))).await,
        Ok(Ok(_))
    )
}

/// Fetches and parses `/healthz`, over TLS (unverified: nothing secret is sent)
/// when the endpoint says `wss://`.
pub async fn fetch_health(endpoint: Endpoint) -> Result<HealthReport, Unanswered> {
    let addr = dial_address(endpoint);
    let stream = TcpStream::connect(addr).await.map_err(|error| {
        if error.kind() == std::io::ErrorKind::ConnectionRefused {
            Unanswered::Refused
        } else {
            Unanswered::Other
        }
    })?;
    if endpoint.is_tls() {
        let stream = connect_unverified(stream, addr.ip())
            .await
            .map_err(|_| Unanswered::Other)?;
        ask_health(stream, addr).await
    } else {
        ask_health(stream, addr).await
    }
}

/// `GET /healthz` on an open connection, plain or TLS.
async fn ask_health<S>(mut stream: S, addr: SocketAddr) -> Result<HealthReport, Unanswered>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // `connection: close`: the holder need not keep an idle connection for us.
    let request = format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|_| Unanswered::Other)?;
    let body = read_body(&mut stream).await.ok_or(Unanswered::Other)?;
    serde_json::from_slice::<HealthReport>(&body).map_err(|_| Unanswered::Other)
}

/// Reads an HTTP/1.1 answer until its body is complete; `None` for anything that is
/// not one, or too large to be a gateway's.
async fn read_body<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Vec<u8>> {
    let mut answer = Vec::with_capacity(1024);
    loop {
        answer.reserve(1024);
        let ended = stream.read_buf(&mut answer).await.ok()? == 0;
        match parse_answer(&answer, ended)? {
            Some(body) => return Some(body),
            None if ended => return None,
            None => {}
        }
    }
}

/// Parses what has been read of an answer so far: `Some(None)` when more is needed,
/// `Some(Some(body))` when the body is complete, `None` when this is no gateway's
/// answer. `ended`: the holder has closed its side, which ends a body that has
/// neither a length nor chunks.
fn parse_answer(answer: &[u8], ended: bool) -> Option<Option<Vec<u8>>> {
    let Some(head_len) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (answer.len() <= MAX_HEAD).then_some(None);
    };
    if head_len > MAX_HEAD {
        return None;
    }
    let head = std::str::from_utf8(&answer[..head_len]).ok()?;
    let mut lines = head.split("\r\n");
    if !lines.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let (mut length, mut chunked) = (None, false);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().ok()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let rest = &answer[head_len + 4..];
    if chunked {
        return dechunk(rest);
    }
    match length {
        Some(length) if length > MAX_HEALTH_BODY => None,
        Some(length) => Some((rest.len() >= length).then(|| rest[..length].to_vec())),
        None if rest.len() > MAX_HEALTH_BODY => None,
        None => Some(ended.then(|| rest.to_vec())),
    }
}

/// Decodes a chunked body read so far: `Some(None)` while its last chunk is missing.
fn dechunk(mut rest: &[u8]) -> Option<Option<Vec<u8>>> {
    let mut body = Vec::new();
    loop {
        let Some(line_len) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (rest.len() <= MAX_HEAD).then_some(None);
        };
        let size_field = std::str::from_utf8(&rest[..line_len]).ok()?;
        let size_hex = size_field.split(';').next()?.trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        if size == 0 {
            return Some(Some(body));
        }
        if body.len() + size > MAX_HEALTH_BODY {
            return None;
        }
        let data = &rest[line_len + 2..];
        if data.len() < size + 2 {
            return Some(None);
        }
        body.extend_from_slice(&data[..size]);
        rest = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"ok":true,"status":"live","service":"gateway","pid":5,"port":1,"profile":"p","version":"0.1.0","uptimeMs":1}"#;

    #[test]
    fn a_body_of_content_length_is_complete_once_all_of_it_is_read() {
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: {}\r\n\r\n{BODY}",
            BODY.len()
        );
        let bytes = answer.as_bytes();
        assert_eq!(parse_answer(&bytes[..20], false), Some(None));
        assert_eq!(parse_answer(&bytes[..bytes.len() - 1], false), Some(None));
        assert_eq!(
            parse_answer(bytes, false),
            Some(Some(BODY.as_bytes().to_vec()))
        );
    }

    #[test]
    fn a_chunked_body_is_complete_at_its_last_chunk() {
        let (first, second) = BODY.split_at(10);
        let answer = format!(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x};ext=1\r\n{second}\r\n",
            first.len(),
            second.len()
        );
        assert_eq!(parse_answer(answer.as_bytes(), false), Some(None));
        let answer = format!("{answer}0\r\n\r\n");
        assert_eq!(
            parse_answer(answer.as_bytes(), false),
            Some(Some(BODY.as_bytes().to_vec()))
        );
    }

    #[test]
    fn a_body_without_length_ends_when_the_holder_closes() {
        let answer = format!("HTTP/1.1 200 OK\r\n\r\n{BODY}");
        assert_eq!(parse_answer(answer.as_bytes(), false), Some(None));
        assert_eq!(
            parse_answer(answer.as_bytes(), true),
            Some(Some(BODY.as_bytes().to_vec()))
        );
    }

    #[test]
    fn an_answer_that_is_not_http_or_too_large_is_no_gateways() {
        assert_eq!(parse_answer(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", false), None);
        assert_eq!(parse_answer(&[b'x'; MAX_HEAD + 1], false), None);
        let huge = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            MAX_HEALTH_BODY + 1
        );
        assert_eq!(parse_answer(huge.as_bytes(), false), None);
        assert_eq!(
            parse_answer(b"HTTP/1.1 200 OK\r\ncontent-length: ten\r\n\r\n", false),
            None
        );
    }

    #[tokio::test]
    async fn a_silent_holder_is_unconfirmed_within_the_budget() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint::new(
            "127.0.0.1".parse().unwrap(),
            silent.local_addr().unwrap().port(),
        );
        // Accept and hold connections without answering.
        let _holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        assert_eq!(
            HttpHolderProbe::default().identify(endpoint).await,
            Holder::Unconfirmed
        );
    }

    #[tokio::test]
    async fn a_holder_that_listens_only_a_moment_after_its_bind_is_still_asked() {
        // Bound but not listening: connections are refused, as in the microseconds
        // between a starting gateway's bind and its listen.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        let endpoint = Endpoint::new(addr.ip(), addr.port());
        let serve_later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let listener = socket.listen(16).unwrap();
            while let Ok((mut s, _)) = listener.accept().await {
                let body = r#"{"ok":true,"status":"live","service":"gateway","pid":5,"port":1,"profile":"p","version":"0.1.0","uptimeMs":1}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        let holder = HttpHolderProbe::default().identify(endpoint).await;
        serve_later.abort();
        assert!(matches!(holder, Holder::Gateway(report) if report.pid == 5));
    }

    #[tokio::test]
    async fn a_clustered_gateway_is_read_with_its_role() {
        let holder = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint::new(
            "127.0.0.1".parse().unwrap(),
            holder.local_addr().unwrap().port(),
        );
        let serve = tokio::spawn(async move {
            while let Ok((mut s, _)) = holder.accept().await {
                let body = r#"{"ok":true,"status":"standby","service":"gateway","pid":5,"port":1,"profile":"p","version":"0.1.0","uptimeMs":1,"cluster":{"key":"k","role":"standby","fencingToken":null}}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        let report = fetch_health(endpoint).await.unwrap();
        serve.abort();
        let cluster = report.cluster.expect("the cluster object");
        assert_eq!(
            (cluster.key.as_str(), cluster.role.as_str()),
            ("k", "standby")
        );
        assert_eq!(cluster.fencing_token, None);
    }

    #[tokio::test]
    async fn a_holder_answering_something_else_is_unconfirmed() {
        let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint::new(
            "127.0.0.1".parse().unwrap(),
            other.local_addr().unwrap().port(),
        );
        tokio::spawn(async move {
            while let Ok((mut s, _)) = other.accept().await {
                let body = r#"{"service":"nginx"}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        assert_eq!(
            HttpHolderProbe::default().identify(endpoint).await,
            Holder::Unconfirmed
        );
    }
}
