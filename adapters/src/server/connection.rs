//! Accepting TCP connections and serving HTTP/1.1 on each (over TLS when the gateway
//! has a certificate), with upgrades, until the stop sequence says otherwise.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gateway_domain::Endpoint;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::counted_stream::CountedStream;
use super::metrics::Guard;
use super::routes;
use super::state::{ConnectionSlot, GatewayState};

/// Headers must arrive within this, or the connection is dropped. A TLS handshake
/// has the same time, in the connection's own task.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client over the cap gets to send its request and take the answer.
const OVER_CAP_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a connection with no request yet may take to send one once HTTP closes.
const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(250);
/// The same once a successor serves (still within `--shutdown-timeout`).
const FIRST_REQUEST_GRACE_AFTER_HANDOFF: Duration = Duration::from_secs(2);
/// Pause after a failed `accept` (e.g. out of file descriptors) before the next.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` until `stop_accepting` fires, then drops the
/// listener: from that moment the port is free.
pub(crate) async fn accept_loop(
    endpoint: Endpoint,
    listener: TcpListener,
    state: Arc<GatewayState>,
    stop_accepting: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop_accepting.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => match state.open_connection() {
                Some(slot) => {
                    let state_for_conn = Arc::clone(&state);
                    state.http.tasks.spawn(serve_connection(
                        stream,
                        peer,
                        state_for_conn,
                        Arc::new(slot),
                    ));
                }
                None => {
                    tracing::warn!(%peer, "connection cap reached; answering 503");
                    state.metrics.guard_refused(Guard::Cap);
                    state
                        .http
                        .tasks
                        .spawn(serve_over_cap(stream, Arc::clone(&state)));
                }
            },
            Err(error) => {
                tracing::warn!(%endpoint, %error, "accept failed; backing off");
                tokio::select! {
                    () = stop_accepting.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => {}
                }
            }
        }
    }
    drop(listener);
    tracing::debug!(%endpoint, "listener closed");
}

/// Over the connection cap: one request, answered within [`OVER_CAP_TIMEOUT`] (TLS
/// handshake included), then the connection closes. `/healthz` is answered as usual,
/// since a gateway at its cap is still a gateway to `status`, `stop` and a second
/// start; everything else gets 503.
async fn serve_over_cap(stream: TcpStream, state: Arc<GatewayState>) {
    let close_http = state.http.signal.clone();
    let answer = async {
        match state.tls.clone() {
            None => answer_over_cap(stream, state).await,
            Some(tls) => {
                if let Ok(stream) = tls.accept(stream).await {
                    answer_over_cap(stream, state).await;
                }
            }
        }
    };
    tokio::select! {
        _ = tokio::time::timeout(OVER_CAP_TIMEOUT, answer) => {}
        () = close_http.cancelled() => {}
    }
}

async fn answer_over_cap<S>(stream: S, state: Arc<GatewayState>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| routes::handle_over_cap(request, Arc::clone(&state)));
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(OVER_CAP_TIMEOUT)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Serves one connection: its TLS handshake when the gateway has a certificate, then
/// HTTP requests, and at most one WebSocket upgrade. The bytes are counted on the wire.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<GatewayState>,
    slot: Arc<ConnectionSlot>,
) {
    let _ = stream.set_nodelay(true);
    let stream = CountedStream::new(stream, state.metrics.byte_counters());
    let Some(tls) = state.tls.clone() else {
        return serve_http(stream, peer, state, slot).await;
    };
    let close_http = state.http.signal.clone();
    let handshake = tokio::time::timeout(HEADER_READ_TIMEOUT, tls.accept(stream));
    let mut handshake = std::pin::pin!(handshake);
    let shaken = tokio::select! {
        shaken = handshake.as_mut() => shaken,
        // As for a request in flight when HTTP closes: a moment to finish, no more.
        () = close_http.cancelled() => match tokio::time::timeout(first_request_grace(&state), handshake).await {
            Ok(shaken) => shaken,
            Err(_) => return,
        },
    };
    match shaken {
        Ok(Ok(stream)) => serve_http(stream, peer, state, slot).await,
        Ok(Err(error)) => tracing::debug!(%peer, %error, "tls handshake failed"),
        Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
    }
}

/// How long a connection with nothing read yet may take once HTTP closes.
fn first_request_grace(state: &GatewayState) -> Duration {
    // After a handoff nobody waits on this process any more: its silent
    // connections may take longer than during a stop, which holds the port.
    if state.handing_over() {
        FIRST_REQUEST_GRACE_AFTER_HANDOFF
    } else {
        FIRST_REQUEST_GRACE
    }
}

/// HTTP/1.1 on one connection (plain or TLS), with upgrades.
async fn serve_http<S>(
    stream: S,
    peer: SocketAddr,
    state: Arc<GatewayState>,
    slot: Arc<ConnectionSlot>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let close_http = state.http.signal.clone();
    let service_state = Arc::clone(&state);
    let first_request = Arc::new(Notify::new());
    let seen = Arc::clone(&first_request);
    let service = service_fn(move |request| {
        seen.notify_one();
        routes::handle(request, peer, Arc::clone(&service_state), Arc::clone(&slot))
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "http connection ended with an error");
            }
        }
        () = close_http.cancelled() => {
            // hyper closes a connection it has not read a request from yet as idle. One
            // accepted just before the listeners closed (a handoff's last moment) may
            // have its request in flight: closing over unread bytes resets it. Give it
            // a moment to arrive; it is then answered, and the connection closes.
            let grace = first_request_grace(&state);
            let arrived = tokio::select! {
                () = first_request.notified() => true,
                () = tokio::time::sleep(grace) => false,
                _ = connection.as_mut() => return,
            };
            tracing::trace!(%peer, arrived, "closing http connection");
            // In-flight requests finish; idle keep-alive connections close now.
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
