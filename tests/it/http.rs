//! The HTTP surface on the gateway's port.

use crate::support::*;

#[test]
fn healthz_reports_the_gateway() {
    let port = free_port();
    let gateway = Gateway::start(port, &[]);
    let response = http_get(port, "/healthz").unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert_eq!(body["ok"], true);
    assert_eq!(body["status"], "live");
    assert_eq!(body["service"], "gateway");
    assert_eq!(body["pid"], gateway.child.id());
    assert_eq!(body["port"], port);
    assert_eq!(body["profile"], "default");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptimeMs"].is_u64());
}

#[test]
fn head_healthz_is_200_without_a_body() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let response = http_request(
        port,
        &format!("HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
    )
    .unwrap();
    assert_eq!(response.status, 200);
    assert!(response.body.is_empty());
}

#[test]
fn readyz_is_200_while_serving() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let response = http_get(port, "/readyz").unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["ready"], true);
}

#[test]
fn unknown_paths_are_404_json() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let response = http_get(port, "/nope").unwrap();
    assert_eq!(response.status, 404);
    assert_eq!(response.json()["error"]["code"], "not_found");
}

#[test]
fn other_methods_are_405_with_allow() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let response = http_request(
        port,
        &format!("POST /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    )
    .unwrap();
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET, HEAD"));
    assert_eq!(response.json()["error"]["code"], "method_not_allowed");
}

#[test]
fn the_ipv6_loopback_reaches_the_same_gateway() {
    let port = free_port();
    let gateway = Gateway::start(port, &[]);
    let mut stream = std::net::TcpStream::connect(("::1", port)).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: [::1]:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(&format!("\"pid\":{}", gateway.child.id())));
}
