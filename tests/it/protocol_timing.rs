//! The protocol's clocks (handshake timeout, tick interval, message timeout, the
//! buffer budget's stall) on a server run in this process on `127.0.0.1:0`, with
//! its timings shortened: the behaviour is the same as with docs/reference.md#websocket's 10 s and
//! 30 s, checked in milliseconds. Locks, signals and exit codes keep their
//! cross-process tests; nothing here needs a process of its own.

use std::time::{Duration, Instant};

use crate::support::ws::*;
use gateway_adapters::{GatewayServer, ProtocolTimings, ServerSettings};
use gateway_domain::{Endpoint, GatewayIdentity};
use serde_json::json;
use tokio::net::TcpListener;

/// A gateway served in this process; stopped with the test's runtime.
struct InProcess {
    port: u16,
    _server: GatewayServer,
}

/// What the tests shorten; everything else as the daemon's defaults.
struct Clocks {
    timings: ProtocolTimings,
    message_timeout: Duration,
    max_buffered_bytes: usize,
}

impl Default for Clocks {
    fn default() -> Self {
        Self {
            timings: ProtocolTimings::default(),
            message_timeout: Duration::from_secs(10),
            max_buffered_bytes: 64 * 1024 * 1024,
        }
    }
}

async fn serve(clocks: Clocks) -> InProcess {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let address = listener.local_addr().unwrap();
    let endpoint = Endpoint::new(address.ip(), address.port());
    let settings = ServerSettings {
        identity: GatewayIdentity {
            pid: std::process::id(),
            port: address.port(),
            profile: "default".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        token: None,
        started: tokio::time::Instant::now(),
        allowed_origins: Vec::new(),
        loopback_hosts_only: true,
        max_connections: 64,
        max_buffered_bytes: clocks.max_buffered_bytes,
        message_timeout: clocks.message_timeout,
        cluster: None,
        restarts: Default::default(),
        timings: clocks.timings,
        tls: None,
    };
    let server = GatewayServer::serve(vec![(endpoint, listener)], settings);
    InProcess {
        port: address.port(),
        _server: server,
    }
}

fn timings(tick_interval: Duration, handshake_timeout: Duration) -> ProtocolTimings {
    ProtocolTimings {
        tick_interval,
        handshake_timeout,
    }
}

#[test]
fn the_daemon_s_timings_are_the_documented_ones() {
    assert_eq!(
        ProtocolTimings::default(),
        timings(Duration::from_secs(30), Duration::from_secs(10))
    );
}

#[tokio::test]
async fn no_connect_within_the_handshake_timeout_closes_with_handshake_timeout() {
    let handshake_timeout = Duration::from_millis(300);
    let gateway = serve(Clocks {
        timings: timings(Duration::from_secs(30), handshake_timeout),
        ..Clocks::default()
    })
    .await;
    // Taken before the upgrade, so the session's own clock starts later than this one.
    let started = Instant::now();
    let mut client = open(gateway.port).await;
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), "handshake timeout");
    assert!(
        started.elapsed() >= handshake_timeout,
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn ticks_arrive_every_tick_interval_numbered_from_1() {
    let tick_interval = Duration::from_millis(150);
    let gateway = serve(Clocks {
        timings: timings(tick_interval, Duration::from_secs(10)),
        ..Clocks::default()
    })
    .await;
    let before_ms = unix_ms();
    // Taken before `connect` is sent: the session's ticks start after it arrives.
    let connecting = Instant::now();
    let (mut client, hello) = connected(gateway.port).await;
    assert_eq!(hello["payload"]["type"], "hello-ok");
    for seq in 1..=2u64 {
        let tick = next_json(&mut client).await;
        assert_eq!(tick["type"], "event");
        assert_eq!(tick["event"], "tick");
        assert_eq!(tick["seq"], seq);
        let ts = tick["payload"]["ts"].as_u64().unwrap();
        assert!(
            before_ms <= ts && ts <= unix_ms(),
            "ts {ts} is the current unix time in ms"
        );
        // Not early: the n-th tick comes n intervals after connect.
        let n = u32::try_from(seq).unwrap();
        assert!(
            connecting.elapsed() >= tick_interval * n,
            "tick {seq} after {:?}",
            connecting.elapsed()
        );
    }
}

#[tokio::test]
async fn a_message_stalled_one_byte_short_closes_1008_message_timeout() {
    let message_timeout = Duration::from_millis(300);
    let gateway = serve(Clocks {
        message_timeout,
        ..Clocks::default()
    })
    .await;
    let (mut client, _) = connected(gateway.port).await;
    let request = br#"{"type":"req","id":"slow","method":"status"}"#;
    let frame = masked_frame(true, 0x1, request);
    let started = Instant::now();
    write_raw(&mut client, &frame[..frame.len() - 1]).await;
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), "message timeout");
    assert!(
        started.elapsed() >= message_timeout,
        "closed after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn stalled_messages_over_the_buffer_budget_close_1013_try_again_later() {
    // Long enough for four clients to stall before the first two time out.
    let gateway = serve(Clocks {
        message_timeout: Duration::from_secs(3),
        max_buffered_bytes: 2 * 1024 * 1024,
        ..Clocks::default()
    })
    .await;
    let port = gateway.port;
    // Each client stalls one byte short of a 1 MiB message: two fit in 2 MiB.
    let payload = vec![b' '; 1024 * 1024];
    let frame = masked_frame(true, 0x1, &payload);
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(connected(port).await.0);
    }
    for client in &mut clients {
        write_raw(client, &frame[..frame.len() - 1]).await;
    }
    let mut reasons = Vec::new();
    for client in &mut clients {
        let close = next_close(client).await.expect("a close frame");
        reasons.push((u16::from(close.code), close.reason.as_str().to_owned()));
    }
    reasons.sort();
    assert_eq!(
        reasons,
        [
            (1008, "message timeout".to_owned()),
            (1008, "message timeout".to_owned()),
            (1013, "try again later".to_owned()),
            (1013, "try again later".to_owned()),
        ]
    );
    // Once they are gone, the budget is free again: a full 1 MiB message passes.
    let (mut client, _) = connected(port).await;
    let request = json!({"type":"req","id":"big","method":"status","params":{"pad":"x".repeat(1024 * 1024 - 100)}})
        .to_string();
    assert!(request.len() <= 1024 * 1024);
    send_text(&mut client, request).await;
    assert_eq!(next_json(&mut client).await["id"], "big");
}

fn unix_ms() -> u64 {
    gateway_adapters::unix_time::unix_ms()
}
