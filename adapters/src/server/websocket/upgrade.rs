//! Turning an HTTP/1.1 request on `/` into a WebSocket (RFC 6455 section 4.2).

use std::net::SocketAddr;
use std::sync::Arc;

use gateway_domain::guards::origin_allowed;
use gateway_domain::protocol::{MAX_HANDSHAKE_PAYLOAD, MAX_PAYLOAD};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;

use super::adopt::{QuietReader, SessionIo};
use super::inbound_guard::InboundGuard;
use super::session;
use crate::server::metrics::Guard;
use crate::server::response::{JsonResponse, close_after, error_response};
use crate::server::state::{ConnectionSlot, GatewayState};

/// Read buffer per connection, allocated up front: small, since most clients are idle
/// most of the time (a larger message is read in several chunks).
const READ_BUFFER: usize = 1024;
/// Bytes queued before tungstenite writes without a flush: lets the shutdown event
/// and the close frame leave in one write.
const WRITE_BUFFER: usize = 4 * 1024;
/// Outgoing bytes a session may have queued before it is dropped as a slow reader.
const MAX_WRITE_BUFFER: usize = 4 * MAX_PAYLOAD;

/// A session's WebSocket over `io`, past the handshake, with messages limited to
/// `message_limit` by its guard (a moved session's reader can be held at a message
/// boundary for the next move).
pub(crate) async fn session_socket(
    io: SessionIo,
    state: &GatewayState,
    message_limit: usize,
) -> session::Socket {
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(Some(MAX_PAYLOAD))
        .max_frame_size(Some(MAX_PAYLOAD));
    let io = InboundGuard::new(
        QuietReader::new(io),
        message_limit,
        Arc::clone(&state.message_budget),
        state.message_timeout,
    );
    WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await
}

/// Whether the request asks for a WebSocket.
pub(crate) fn is_upgrade_request<B>(request: &Request<B>) -> bool {
    let headers = request.headers();
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value
                .to_str()
                .map(|v| {
                    v.split(',')
                        .any(|part| part.trim().eq_ignore_ascii_case(token))
                })
                .unwrap_or(false)
        })
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket")
}

/// Answers the upgrade with 101 and starts the session once hyper hands over the
/// connection. The session is tracked, so the stop sequence waits for it.
pub(crate) fn upgrade(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    state: Arc<GatewayState>,
    slot: Arc<ConnectionSlot>,
    cluster_term: Option<(u64, CancellationToken)>,
) -> JsonResponse {
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin
            .to_str()
            .is_ok_and(|o| origin_allowed(o, &state.allowed_origins));
        if !allowed {
            tracing::warn!(%peer, origin = ?origin, "websocket upgrade from a foreign origin refused");
            state.metrics.guard_refused(Guard::Origin);
            return close_after(error_response(
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                "this origin may not open the gateway's WebSocket (see --allow-origin)",
            ));
        }
    }
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|_| version_ok)
    else {
        let mut response = error_response(
            StatusCode::BAD_REQUEST,
            "bad_upgrade",
            "a WebSocket upgrade needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13",
        );
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return response;
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut request);
    let session_state = Arc::clone(&state);
    state.websockets.tasks.spawn(async move {
        // The session keeps the connection counted against the cap.
        let _slot = slot;
        match on_upgrade.await {
            Ok(upgraded) => {
                // The guard enforces the 64 KiB limit until `connect` succeeds;
                // tungstenite's own 1 MiB limit stays as a backstop.
                let io = SessionIo::Upgraded(TokioIo::new(upgraded));
                let socket = session_socket(io, &session_state, MAX_HANDSHAKE_PAYLOAD).await;
                session::run(socket, peer, session_state, cluster_term).await;
            }
            Err(error) => tracing::debug!(%peer, %error, "websocket upgrade failed"),
        }
    });

    let mut response = Response::new(Default::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(value) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    response
}
