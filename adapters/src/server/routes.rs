//! The HTTP surface: `/healthz`, `/readyz`, the WebSocket upgrade and the browsers'
//! status page on `/`, and a JSON answer for everything else.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use gateway_domain::guards::is_loopback_host;
use gateway_domain::identity::ReadyReport;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::metrics::{Guard, TextFormat};
use super::response::{JsonResponse, close_after, error_response, json_response};
use super::state::{ConnectionSlot, GatewayState};
use super::{status_page, websocket};

/// Routes one request.
pub(crate) async fn handle(
    request: Request<Incoming>,
    peer: SocketAddr,
    state: Arc<GatewayState>,
    slot: Arc<ConnectionSlot>,
) -> Result<JsonResponse, Infallible> {
    if let Some(refused) = refuse_foreign_host(&request, &state) {
        return Ok(refused);
    }
    if declared_body_len(&request).is_some_and(|len| len > MAX_BODY) {
        state.metrics.guard_refused(Guard::Size);
        return Ok(close_after(error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request bodies are limited to 64 KiB",
        )));
    }
    if state.is_draining() {
        return Ok(draining(request.uri().path(), &state));
    }
    let method = request.method().clone();
    let response = match request.uri().path() {
        "/healthz" => health(&method, &state),
        "/readyz" if !state.may_act() => match method {
            Method::GET | Method::HEAD => standby(json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"ready": false, "reason": "standby"}),
            )),
            _ => method_not_allowed("GET, HEAD"),
        },
        "/readyz" => match method {
            Method::GET | Method::HEAD => json_response(
                StatusCode::OK,
                &ReadyReport {
                    ready: true,
                    health: state.health(),
                },
            ),
            _ => method_not_allowed("GET, HEAD"),
        },
        "/metrics" => match method {
            Method::GET | Method::HEAD => metrics_response(&request, &state),
            _ => method_not_allowed("GET, HEAD"),
        },
        "/" => match method {
            Method::GET if websocket::is_upgrade_request(&request) => {
                match state.cluster.as_ref().map(|gate| gate.session_signal()) {
                    None => websocket::upgrade(request, peer, state, slot, None),
                    Some(Some(term)) => websocket::upgrade(request, peer, state, slot, Some(term)),
                    Some(None) => close_after(standby(error_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "standby",
                        "this gateway is a standby: another one is active",
                    ))),
                }
            }
            Method::GET if status_page::wants_html(&request) => {
                status_page::response(request_host(&request), state.tls.is_some())
            }
            Method::GET => error_response(
                StatusCode::UPGRADE_REQUIRED,
                "upgrade_required",
                "this is the gateway's WebSocket endpoint",
            ),
            _ => method_not_allowed("GET"),
        },
        path => error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no such path: {path}"),
        ),
    };
    Ok(response)
}

/// A request on a connection over the cap: `/healthz` as usual, anything else `503`.
pub(crate) async fn handle_over_cap(
    request: Request<Incoming>,
    state: Arc<GatewayState>,
) -> Result<JsonResponse, Infallible> {
    if let Some(refused) = refuse_foreign_host(&request, &state) {
        return Ok(refused);
    }
    let path = request.uri().path();
    if state.is_draining() {
        return Ok(draining(path, &state));
    }
    let response = match path {
        "/healthz" => health(request.method(), &state),
        _ => {
            let mut busy = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many connections",
            );
            busy.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            busy
        }
    };
    Ok(close_after(response))
}

fn health(method: &Method, state: &GatewayState) -> JsonResponse {
    match *method {
        Method::GET | Method::HEAD => json_response(StatusCode::OK, &state.health()),
        _ => method_not_allowed("GET, HEAD"),
    }
}

/// The DNS-rebinding guard: when bound on loopback, a request addressed to any
/// other host gets 403 and its connection closes.
fn refuse_foreign_host<B>(request: &Request<B>, state: &GatewayState) -> Option<JsonResponse> {
    if !state.loopback_hosts_only || host_is_loopback(request) {
        return None;
    }
    state.metrics.guard_refused(Guard::Host);
    Some(close_after(error_response(
        StatusCode::FORBIDDEN,
        "forbidden_host",
        "this gateway only answers requests addressed to localhost",
    )))
}

/// Largest request body accepted (bodies are never read; this bounds what a client
/// may declare).
const MAX_BODY: u64 = 64 * 1024;

/// The `Host` header (or the absolute URI's authority) names loopback. A request
/// without either (HTTP/1.0) carries no rebinding risk and passes.
fn host_is_loopback<B>(request: &Request<B>) -> bool {
    if let Some(authority) = request.uri().authority() {
        return is_loopback_host(authority.as_str());
    }
    match request.headers().get(header::HOST) {
        Some(host) => host.to_str().is_ok_and(is_loopback_host),
        None => true,
    }
}

/// The authority the request was addressed to: the absolute URI's, else `Host`.
fn request_host<B>(request: &Request<B>) -> Option<&str> {
    match request.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => request.headers().get(header::HOST)?.to_str().ok(),
    }
}

fn declared_body_len<B>(request: &Request<B>) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The answer to any request once the stop has begun.
/// `/healthz` still says who we are (so `status`, `stop` and a starting gateway
/// recognise a stopping gateway); everything else says why it is refused.
fn draining(path: &str, state: &GatewayState) -> JsonResponse {
    let mut response = match path {
        "/readyz" => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "reason": "draining"}),
        ),
        "/healthz" => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &state.identity.draining(state.uptime_ms()),
        ),
        _ => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"error": {"code": "draining", "message": "gateway stopping"}}),
        ),
    };
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The one response that is not JSON: Prometheus reads its own text format.
fn metrics_response<B>(request: &Request<B>, state: &GatewayState) -> JsonResponse {
    let accept = request.headers().get(header::ACCEPT);
    let format = TextFormat::negotiate(accept.and_then(|a| a.to_str().ok()));
    let mut response = Response::new(Full::new(Bytes::from(state.metrics_text(format))));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    response
}

/// A refusal while this gateway is a standby: try again (maybe another host).
fn standby(mut response: JsonResponse) -> JsonResponse {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn method_not_allowed(allow: &'static str) -> JsonResponse {
    let mut response = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("allowed: {allow}"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}
