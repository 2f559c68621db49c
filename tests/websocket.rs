//! The WebSocket control protocol on `/`, with a real client.

mod support;

use serde_json::json;
use support::ws::*;
use support::*;

#[tokio::test]
async fn connect_gets_hello_ok() {
    let port = free_port();
    let gateway = Gateway::start(port, &[]);
    let (_client, hello) = connected(port).await;
    assert_eq!(
        hello,
        json!({
            "type": "res", "id": "hello", "ok": true,
            "payload": {
                "type": "hello-ok", "protocol": 1,
                "server": {"version": env!("CARGO_PKG_VERSION"), "pid": gateway.child.id(), "profile": "default"},
                "methods": ["health", "status"], "events": ["tick", "shutdown"],
                "policy": {"tickIntervalMs": 30000, "maxPayload": 1048576}
            }
        })
    );
}

#[tokio::test]
async fn health_and_status_answer_after_connect() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let (mut client, _) = connected(port).await;
    let (mut other, _) = connected(port).await;

    send_text(
        &mut client,
        r#"{"type":"req","id":"h1","method":"health","params":{}}"#,
    )
    .await;
    let health = next_json(&mut client).await;
    assert_eq!(health["id"], "h1");
    assert_eq!(health["ok"], true);
    assert_eq!(health["payload"]["service"], "gateway");
    assert_eq!(health["payload"]["port"], port);

    send_text(
        &mut client,
        r#"{"type":"req","id":"s1","method":"status","params":{}}"#,
    )
    .await;
    let status = next_json(&mut client).await;
    assert_eq!(status["id"], "s1");
    assert_eq!(status["payload"]["connections"], 2);
    assert_eq!(status["payload"]["draining"], false);
    assert_eq!(status["payload"]["port"], port);
    send_text(&mut other, r#"{"type":"req","id":"s2","method":"status"}"#).await;
    assert_eq!(next_json(&mut other).await["payload"]["connections"], 2);
}

#[tokio::test]
async fn unknown_methods_and_bad_frames_get_errors_and_the_socket_stays_open() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let (mut client, _) = connected(port).await;

    send_text(
        &mut client,
        r#"{"type":"req","id":"u1","method":"reboot","params":{}}"#,
    )
    .await;
    let unknown = next_json(&mut client).await;
    assert_eq!(unknown["id"], "u1");
    assert_eq!(unknown["ok"], false);
    assert_eq!(unknown["error"]["code"], "unknown_method");

    send_text(&mut client, "this is not json").await;
    let invalid = next_json(&mut client).await;
    assert_eq!(invalid["id"], serde_json::Value::Null);
    assert_eq!(invalid["error"]["code"], "invalid_request");

    send_text(&mut client, r#"{"type":"req","id":"h2","method":"health"}"#).await;
    assert_eq!(next_json(&mut client).await["ok"], true);
}

#[tokio::test]
async fn a_first_message_other_than_connect_closes_1008() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let mut client = open(port).await;
    send_text(
        &mut client,
        r#"{"type":"req","id":"1","method":"health","params":{}}"#,
    )
    .await;
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(
        close.reason.as_str(),
        "invalid handshake: first request must be connect"
    );
}

#[tokio::test]
async fn a_protocol_range_without_1_is_a_mismatch_then_1002() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let mut client = open(port).await;
    send_text(
        &mut client,
        json!({"type":"req","id":"c","method":"connect","params":{"minProtocol":2,"maxProtocol":5,"client":{"name":"n","version":"v"}}}).to_string(),
    )
    .await;
    let response = next_json(&mut client).await;
    assert_eq!(response["id"], "c");
    assert_eq!(response["ok"], false);
    assert_eq!(response["error"]["code"], "protocol_mismatch");
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1002);
}

#[tokio::test]
async fn no_connect_within_10s_closes_with_handshake_timeout() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let mut client = open(port).await;
    let started = std::time::Instant::now();
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), "handshake timeout");
    assert!(started.elapsed() >= std::time::Duration::from_secs(9));
}

#[tokio::test]
async fn a_binary_message_closes_1003() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let (mut client, _) = connected(port).await;
    use futures_util::SinkExt;
    client
        .send(tokio_tungstenite::tungstenite::Message::binary(vec![
            1u8, 2, 3,
        ]))
        .await
        .unwrap();
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1003);
}

#[tokio::test]
async fn a_connect_message_over_64_kib_closes_1009() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let mut client = open(port).await;
    send_text(&mut client, "x".repeat(64 * 1024 + 1)).await;
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
}

#[tokio::test]
async fn ticks_arrive_every_30s_numbered_from_1() {
    use futures_util::StreamExt;
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let (mut client, _) = connected(port).await;
    let frame = tokio::time::timeout(std::time::Duration::from_secs(45), client.next())
        .await
        .expect("a tick within 45 s")
        .unwrap()
        .unwrap();
    let tick: serde_json::Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
    assert_eq!(tick["type"], "event");
    assert_eq!(tick["event"], "tick");
    assert_eq!(tick["seq"], 1);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let ts = tick["payload"]["ts"].as_u64().unwrap();
    assert!(
        ts <= now_ms && now_ms - ts < 60_000,
        "ts {ts} is a current unix time in ms"
    );
}

#[tokio::test]
async fn a_large_message_before_connect_is_cut_off_with_1009() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let mut client = open(port).await;
    // Far over the 64 KiB pre-connect limit but under the 1 MiB one: the gateway
    // stops reading at its pre-connect budget instead of buffering it all.
    send_text(&mut client, "z".repeat(900 * 1024)).await;
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
}
