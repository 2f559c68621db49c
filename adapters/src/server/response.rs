//! How the gateway answers over HTTP: JSON bodies (the status page and `/metrics`
//! aside), error bodies of one shape, and refusals that close their connection.
//! Shared by the routes and the WebSocket upgrade, so neither imports the other.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::json;

/// Every response body is JSON, the status page aside.
pub(crate) type JsonResponse = Response<Full<Bytes>>;

/// Marks a refusal so the connection closes after it.
pub(crate) fn close_after(mut response: JsonResponse) -> JsonResponse {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// `{"error":{"code":...,"message":...}}` with `status`.
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> JsonResponse {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

pub(crate) fn json_response(status: StatusCode, body: &impl serde::Serialize) -> JsonResponse {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
