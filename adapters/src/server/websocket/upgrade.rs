//! Turning an HTTP/1.1 request on `/` into a WebSocket (RFC 6455 section 4.2).

use std::net::SocketAddr;
use std::sync::Arc;

use gateway_domain::guards::origin_allowed;
use gateway_domain::protocol::MAX_HANDSHAKE_PAYLOAD;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_util::sync::CancellationToken;

use super::adopt::SessionIo;
use super::session;
use super::socket::session_socket;
use crate::server::metrics::Guard;
use crate::server::response::{JsonResponse, close_after, error_response};
use crate::server::state::{ConnectionSlot, GatewayState};

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
