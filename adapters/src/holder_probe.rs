//! Asks the holder of a taken port whether it is a gateway: `GET /healthz` within
//! the domain's probe budget, in plaintext or over TLS. The endpoint's own scheme is
//! tried first, then the other one: a plain request to a TLS gateway (or a
//! ClientHello to a plain one) gets no HTTP answer, only a quick close.

use gateway_domain::ports::HolderProbe;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use gateway_domain::holder::HOLDER_PROBE_BUDGET;
use gateway_domain::{Endpoint, HealthReport, Holder};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::tls::connect_unverified;

/// A `/healthz` body larger than this is not a gateway's.
const MAX_HEALTH_BODY: usize = 16 * 1024;

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

/// `GET /healthz` on an open connection.
async fn ask_health<S>(stream: S, addr: SocketAddr) -> Result<HealthReport, Unanswered>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Unanswered::Other)?;
    let driver = tokio::spawn(connection);
    let request = Request::get("/healthz")
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|_| Unanswered::Other)?;
    let outcome = async {
        let response = sender.send_request(request).await.ok()?;
        let body = Limited::new(response.into_body(), MAX_HEALTH_BODY)
            .collect()
            .await
            .ok()?
            .to_bytes();
        serde_json::from_slice::<HealthReport>(&body).ok()
    }
    .await;
    driver.abort();
    outcome.ok_or(Unanswered::Other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

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
