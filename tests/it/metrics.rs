//! `GET /metrics` on the real binary: a valid Prometheus text exposition (checked with
//! `promtool check metrics`), behind the same Host guard as every route, whose counters
//! move when their event happens.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::tools::tool_available;
use crate::support::ws::*;
use crate::support::*;

/// One scrape.
fn scrape(port: u16) -> String {
    let response = http_get(port, "/metrics").expect("an answer from /metrics");
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    response.body
}

/// The value of one series (`name{labels}` exactly as exposed).
fn value(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{scrape}"))
}

#[test]
fn metrics_pass_promtool_check() {
    if !tool_available("promtool", "prometheus") {
        return;
    }
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let text = scrape(port);
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn metrics_are_behind_the_host_guard_and_count_its_refusals() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    assert_eq!(
        value(
            &scrape(port),
            r#"gateway_guard_refusals_total{guard="host"}"#
        ),
        0.0
    );
    let refused = http_request(
        port,
        "GET /metrics HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(refused.status, 403);
    assert_eq!(
        value(
            &scrape(port),
            r#"gateway_guard_refusals_total{guard="host"}"#
        ),
        1.0
    );
}

#[test]
fn openmetrics_when_the_scraper_asks_for_it() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let response = http_request(
        port,
        &format!(
            "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\
             Connection: close\r\n\r\n"
        ),
    )
    .unwrap();
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(response.body.ends_with("# EOF\n"), "{}", response.body);
}

#[tokio::test]
async fn websocket_counters_move_with_their_events() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let before = scrape(port);
    assert_eq!(
        value(&before, r#"gateway_handshakes_total{outcome="ok"}"#),
        0.0
    );
    assert_eq!(
        value(&before, r#"gateway_open_connections{kind="websocket"}"#),
        0.0
    );

    // A client connects and asks for health twice.
    let (mut client, _) = connected(port).await;
    for id in ["h1", "h2"] {
        send_text(
            &mut client,
            format!(r#"{{"type":"req","id":"{id}","method":"health","params":{{}}}}"#),
        )
        .await;
        next_json(&mut client).await;
    }
    // Another opens with something other than connect: invalid, closed 1008.
    let mut rude = open(port).await;
    send_text(&mut rude, r#"{"type":"req","id":"x","method":"health"}"#).await;
    assert_eq!(u16::from(next_close(&mut rude).await.unwrap().code), 1008);

    let after = scrape(port);
    assert_eq!(
        value(&after, r#"gateway_handshakes_total{outcome="ok"}"#),
        1.0
    );
    assert_eq!(
        value(&after, r#"gateway_handshakes_total{outcome="invalid"}"#),
        1.0
    );
    assert_eq!(
        value(&after, r#"gateway_requests_total{method="health"}"#),
        2.0
    );
    assert_eq!(
        value(&after, r#"gateway_requests_total{method="status"}"#),
        0.0
    );
    assert_eq!(
        value(
            &after,
            r#"gateway_websocket_closes_sent_total{code="1008"}"#
        ),
        1.0
    );
    assert_eq!(
        value(&after, r#"gateway_open_connections{kind="websocket"}"#),
        1.0
    );
    assert!(
        value(&after, "gateway_received_bytes_total")
            > value(&before, "gateway_received_bytes_total")
    );
    assert!(value(&after, "gateway_sent_bytes_total") > value(&before, "gateway_sent_bytes_total"));
    // No client data in any label: the client's name and request ids appear nowhere.
    assert!(
        !after.contains("\"test\"") && !after.contains("h1"),
        "{after}"
    );
}

#[tokio::test]
async fn a_protocol_mismatch_and_a_wrong_token_are_counted_apart() {
    let port = free_port();
    let _gateway = Gateway::start(port, &["--token", "sesame"]);
    for (token, protocol, code, close) in [
        ("sesame", 2, "protocol_mismatch", 1002),
        ("wrong", 1, "unauthorized", 1008),
    ] {
        let mut client = open(port).await;
        send_text(
            &mut client,
            format!(
                r#"{{"type":"req","id":"c","method":"connect","params":{{"minProtocol":{protocol},"maxProtocol":{protocol},"client":{{"name":"t","version":"1"}},"auth":{{"token":"{token}"}}}}}}"#
            ),
        )
        .await;
        assert_eq!(next_json(&mut client).await["error"]["code"], code);
        assert_eq!(
            u16::from(next_close(&mut client).await.unwrap().code),
            close
        );
    }
    let text = scrape(port);
    assert_eq!(
        value(
            &text,
            r#"gateway_handshakes_total{outcome="protocol_mismatch"}"#
        ),
        1.0
    );
    assert_eq!(
        value(&text, r#"gateway_handshakes_total{outcome="unauthorized"}"#),
        1.0
    );
    assert_eq!(
        value(&text, r#"gateway_handshakes_total{outcome="ok"}"#),
        0.0
    );
    assert_eq!(
        value(&text, r#"gateway_websocket_closes_sent_total{code="1002"}"#),
        1.0
    );
    assert_eq!(
        value(&text, r#"gateway_websocket_closes_sent_total{code="1008"}"#),
        1.0
    );
    assert!(
        !text.contains("sesame") && !text.contains("wrong"),
        "{text}"
    );
}
