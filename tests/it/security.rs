//! The guards: Origin, Host, tokens and their delay, size and time limits, the
//! connection cap, and garbage on the wire.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::ws::*;
use crate::support::*;
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Opens a WebSocket with an `Origin`; the HTTP status when refused.
async fn open_with_origin(port: u16, origin: &str) -> Result<Client, u16> {
    let mut request = format!("ws://127.0.0.1:{port}/")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Origin", HeaderValue::from_str(origin).unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((client, _)) => Ok(client),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[tokio::test]
async fn a_foreign_origin_gets_403_and_no_socket() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    assert_eq!(
        open_with_origin(port, "https://evil.example").await.err(),
        Some(403)
    );
    assert_eq!(open_with_origin(port, "null").await.err(), Some(403));
    let raw = http_request(
        port,
        &format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Origin: http://localhost.evil.example\r\n\r\n"
        ),
    )
    .unwrap();
    assert_eq!(raw.status, 403);
    assert_eq!(raw.json()["error"]["code"], "forbidden_origin");
}

#[tokio::test]
async fn loopback_and_allowed_origins_pass() {
    let port = free_port();
    let _gateway = Gateway::start(port, &["--allow-origin", "https://app.example.com"]);
    for origin in [
        "http://localhost:3000",
        "http://127.0.0.1",
        "http://[::1]:8080",
        "https://app.example.com",
    ] {
        let mut client = open_with_origin(port, origin)
            .await
            .unwrap_or_else(|status| panic!("{origin} refused with {status}"));
        send_text(&mut client, connect_frame("c")).await;
        assert_eq!(next_json(&mut client).await["ok"], true, "{origin}");
    }
    assert_eq!(
        open_with_origin(port, "https://other.example.com")
            .await
            .err(),
        Some(403)
    );
}

#[test]
fn a_non_loopback_host_gets_403_dns_rebinding_guard() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let ask = |host: &str| {
        http_request(
            port,
            &format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .unwrap()
    };
    let refused = ask("evil.example:1234");
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["error"]["code"], "forbidden_host");
    assert_eq!(ask("attacker.example").status, 403);
    for host in [
        format!("localhost:{port}"),
        "LOCALHOST".to_owned(),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(ask(&host).status, 200, "{host}");
    }
}

fn connect_with_token(token: Option<&str>) -> String {
    let mut params =
        json!({"minProtocol": 1, "maxProtocol": 1, "client": {"name": "t", "version": "1"}});
    if let Some(token) = token {
        params["auth"] = json!({"token": token});
    }
    json!({"type": "req", "id": "auth", "method": "connect", "params": params}).to_string()
}

#[tokio::test]
async fn a_configured_token_is_required_and_the_answers_to_wrong_tokens_are_delayed() {
    let port = free_port();
    let mut gateway = Gateway::start(port, &["--token", "s3cret-t0ken"]);

    // The answer to the host's first failure waits 250 ms, to its second 500 ms.
    for (token, at_least) in [(None, 250), (Some("guess"), 500)] {
        let mut client = open(port).await;
        let started = Instant::now();
        send_text(&mut client, connect_with_token(token)).await;
        let response = next_json(&mut client).await;
        let waited = started.elapsed();
        assert_eq!(response["ok"], false);
        assert_eq!(response["error"]["code"], "unauthorized");
        let close = next_close(&mut client).await.expect("a close frame");
        assert_eq!(u16::from(close.code), 1008);
        assert_eq!(close.reason.as_str(), "unauthorized");
        assert!(
            waited >= Duration::from_millis(at_least),
            "answered after {waited:?}, not after at least {at_least} ms"
        );
    }

    let mut client = open(port).await;
    send_text(&mut client, connect_with_token(Some("s3cret-t0ken"))).await;
    let hello = next_json(&mut client).await;
    assert_eq!(hello["payload"]["type"], "hello-ok");
    drop(client);

    gateway.signal(nix::sys::signal::Signal::SIGTERM);
    gateway.wait_exit();
    let logs = gateway.stderr_now();
    assert!(
        !logs.contains("s3cret-t0ken"),
        "the token leaked into the logs"
    );
}

/// Opens a WebSocket to the gateway on 127.0.0.1 (or [::1]) from a chosen local address.
async fn open_from(port: u16, source: IpAddr) -> Client {
    let socket = match source {
        IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let target = if source.is_ipv4() {
        SocketAddr::from(([127, 0, 0, 1], port))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))
    };
    let stream = socket.connect(target).await.expect("tcp connect");
    let url = format!("ws://{target}/");
    let (client, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .expect("websocket upgrade");
    client
}

/// One wrong-token attempt from `source`: the answer's error code (`None` when
/// the gateway closed without one) and the close reason.
async fn guess_from(port: u16, source: IpAddr) -> (Option<String>, String) {
    let mut client = open_from(port, source).await;
    send_text(&mut client, connect_with_token(Some("guess"))).await;
    let mut code = None;
    loop {
        match client.next().await {
            Some(Ok(Message::Text(text))) => {
                let answer: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                code = answer["error"]["code"].as_str().map(str::to_owned);
            }
            Some(Ok(Message::Close(frame))) => {
                let reason = frame
                    .map(|f| f.reason.as_str().to_owned())
                    .unwrap_or_default();
                return (code, reason);
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("guess connection broke: {e}"),
            None => return (code, String::new()),
        }
    }
}

#[tokio::test]
async fn rotating_loopback_addresses_does_not_escape_the_delay() {
    let port = free_port();
    let _gateway = Gateway::start(port, &["--token", "s3cret-t0ken"]);
    let sources: [IpAddr; 3] = [
        "127.0.0.2".parse().unwrap(),
        "::1".parse().unwrap(),
        "127.0.0.3".parse().unwrap(),
    ];
    for (source, at_least) in sources.into_iter().zip([250, 500, 1000]) {
        let started = Instant::now();
        let (code, _) = guess_from(port, source).await;
        let waited = started.elapsed();
        assert_eq!(code.as_deref(), Some("unauthorized"), "{source}");
        assert!(
            waited >= Duration::from_millis(at_least),
            "{source} was answered after {waited:?}: the delay was escaped"
        );
    }
}

#[tokio::test]
async fn past_the_waiting_cap_a_failed_attempt_is_turned_away_with_1013() {
    let port = free_port();
    // A cap of 8 connections lets 2 failed attempts wait for their answer at once.
    let _gateway = Gateway::start(port, &["--token", "s3cret-t0ken", "--max-connections", "8"]);
    let source: IpAddr = "127.0.0.1".parse().unwrap();
    // Four at once: two wait their turn (250 ms, then 500 ms more), two are turned away.
    let guesses: Vec<_> = (0..4)
        .map(|_| tokio::spawn(guess_from(port, source)))
        .collect();
    let mut outcomes = Vec::new();
    for guess in guesses {
        outcomes.push(guess.await.unwrap());
    }
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            (None, "try again later".to_owned()),
            (None, "try again later".to_owned()),
            (Some("unauthorized".to_owned()), "unauthorized".to_owned()),
            (Some("unauthorized".to_owned()), "unauthorized".to_owned()),
        ]
    );
    let mut client = open(port).await;
    send_text(&mut client, connect_with_token(Some("s3cret-t0ken"))).await;
    assert_eq!(next_json(&mut client).await["payload"]["type"], "hello-ok");
}

#[tokio::test]
async fn a_message_over_1_mib_after_connect_closes_1009() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let (mut client, _) = connected(port).await;
    send_text(&mut client, "y".repeat(1024 * 1024 + 1)).await;
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
}

#[test]
fn a_declared_body_over_64_kib_gets_413() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let response = http_request(
        port,
        &format!(
            "POST /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 70000\r\nConnection: close\r\n\r\n"
        ),
    )
    .unwrap();
    assert_eq!(response.status, 413);
    assert_eq!(response.json()["error"]["code"], "payload_too_large");
}

#[test]
fn connections_over_the_cap_get_503() {
    let port = free_port();
    let _gateway = Gateway::start(port, &["--max-connections", "4"]);
    // Four idle connections take every slot.
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let mut refused = None;
    wait_until("a connection over the cap to be refused", || {
        refused = http_get(port, "/readyz").filter(|r| r.status == 503);
        refused.is_some()
    });
    let refused = refused.unwrap();
    assert_eq!(refused.json()["error"]["code"], "busy");
    assert_eq!(refused.header("retry-after"), Some("1"));
    drop(idle);
    wait_until("a free slot after the idle connections close", || {
        http_get(port, "/healthz").is_some_and(|r| r.status == 200)
    });
}

#[test]
fn garbage_http_never_wedges_the_gateway() {
    let port = free_port();
    let mut gateway = Gateway::start(port, &[]);
    let huge_line = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(200_000)
    );
    let garbage: Vec<Vec<u8>> = vec![
        b"\0\0\0\0\0\0\0\0\r\n\r\n".to_vec(),
        huge_line.into_bytes(),
        b"POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nshort".to_vec(),
        b"GET /healthz HTTP/9.9\r\nHost: localhost\r\n\r\n".to_vec(),
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: -5\r\n\r\n".to_vec(),
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
            .to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), // a TLS ClientHello
        (0..=255u8).cycle().take(70_000).collect(),
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            .to_vec(),
    ];
    for bytes in garbage {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.write_all(&bytes);
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        }
    }
    assert!(gateway.is_running());
    assert_eq!(http_get(port, "/healthz").unwrap().status, 200);
}

/// Writes raw bytes under tungstenite's feet, ignoring a connection the gateway has
/// already closed (a refused message is not read to its end).
async fn write_raw_or_closed(client: &mut Client, bytes: &[u8]) {
    use tokio::io::AsyncWriteExt;
    let MaybeTlsStream::Plain(stream) = client.get_mut() else {
        panic!("a plain TCP client")
    };
    let _ = stream.write_all(bytes).await;
}

/// The code of the close the gateway sends next, `None` when the connection ends
/// without one.
async fn close_code(client: &mut Client) -> Option<u16> {
    while let Some(Ok(message)) = client.next().await {
        if let Message::Close(frame) = message {
            return frame.map(|f| u16::from(f.code));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_holding_the_buffer_budget_never_keep_a_newcomer_from_connecting() {
    let port = free_port();
    let _gateway = tokio::task::block_in_place(|| Gateway::start(port, &[]));
    // 70 connected clients each stall one byte short of a 1 MiB message: 64 of them
    // fill the default 64 MiB budget, and the other 6 are turned away with 1013.
    let whole = masked_frame(true, 0x1, &vec![b' '; 1024 * 1024]);
    let stalled = std::sync::Arc::new(whole[..whole.len() - 1].to_vec());
    let mut clients = Vec::new();
    for _ in 0..70 {
        clients.push(connected(port).await.0);
    }
    let (closes, mut closed) = tokio::sync::mpsc::unbounded_channel();
    for mut client in clients {
        let stalled = stalled.clone();
        let closes = closes.clone();
        tokio::spawn(async move {
            write_raw_or_closed(&mut client, &stalled).await;
            let _ = closes.send(close_code(&mut client).await);
        });
    }
    for _ in 0..6 {
        let code = tokio::time::timeout(DEADLINE, closed.recv())
            .await
            .expect("a refusal in time");
        assert_eq!(code, Some(Some(1013)), "beyond the budget: try again later");
    }

    // The budget is full; a newcomer still connects and is answered at once.
    let started = Instant::now();
    let (mut newcomer, hello) = connected(port).await;
    assert_eq!(hello["payload"]["type"], "hello-ok", "{hello}");
    send_text(
        &mut newcomer,
        json!({"type": "req", "id": "h", "method": "health"}).to_string(),
    )
    .await;
    let health = next_json(&mut newcomer).await;
    let took = started.elapsed();
    assert_eq!(health["id"], "h");
    assert_eq!(health["ok"], true, "{health}");
    assert!(
        took < Duration::from_secs(1),
        "connect and health took {took:?}"
    );

    // Still bounded: a message past 64 KiB counts, and there is no room for it.
    let big = json!({"type": "req", "id": "big", "method": "status", "params": {"pad": "x".repeat(100 * 1024)}});
    send_text(&mut newcomer, big.to_string()).await;
    assert_eq!(close_code(&mut newcomer).await, Some(1013));
    assert!(
        closed.try_recv().is_err(),
        "the 64 stalled ones still hold their messages"
    );
}
