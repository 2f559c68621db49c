//! The server in-process on paused time (as mini-redis tests its server): a listener on
//! `127.0.0.1:0`, clients in the same runtime, and tokio's clock moving only when
//! every task waits. Deadlines of seconds or minutes (the token delay's pace, the
//! header deadline, the send timeout) are checked in milliseconds of real time.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gateway_domain::{Endpoint, GatewayIdentity};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{GatewayServer, ProtocolTimings, RestartHistory, ServerSettings};
use crate::tls::{FirstBytes, TlsTermination, connect_unverified, self_signed};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

const TOKEN: &str = "s3cret-t0ken";

/// A gateway serving on a port of its own, with `token` required when given.
async fn serve(token: Option<&str>) -> (GatewayServer, u16) {
    serve_with(token, None).await
}

/// The same, over TLS when `tls` is given.
async fn serve_with(token: Option<&str>, tls: Option<TlsTermination>) -> (GatewayServer, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let endpoint = Endpoint::new(IpAddr::from([127, 0, 0, 1]), port);
    let settings = ServerSettings {
        identity: GatewayIdentity {
            pid: std::process::id(),
            port,
            profile: "default".into(),
            version: "0.1.0".into(),
        },
        token: token.map(str::to_owned),
        started: Instant::now(),
        allowed_origins: Vec::new(),
        loopback_hosts_only: true,
        max_connections: 1024,
        max_buffered_bytes: 64 * 1024 * 1024,
        message_timeout: Duration::from_secs(10),
        cluster: None,
        restarts: RestartHistory::default(),
        timings: ProtocolTimings::default(),
        tls,
    };
    (
        GatewayServer::serve(vec![(endpoint, listener)], settings),
        port,
    )
}

fn connect_frame(token: Option<&str>) -> String {
    let mut params =
        json!({"minProtocol": 1, "maxProtocol": 1, "client": {"name": "t", "version": "1"}});
    if let Some(token) = token {
        params["auth"] = json!({"token": token});
    }
    json!({"type": "req", "id": "auth", "method": "connect", "params": params}).to_string()
}

/// A WebSocket client from `source` (any address of 127.0.0.0/8).
async fn open_from(port: u16, source: IpAddr) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let stream = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let url = format!("ws://127.0.0.1:{port}/");
    let (client, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    client
}

/// One wrong-token attempt: the error code it got, if any, before the close.
async fn guess_from(port: u16, source: IpAddr) -> Option<String> {
    let mut client = open_from(port, source).await;
    client
        .send(Message::text(connect_frame(Some("guess"))))
        .await
        .unwrap();
    let mut code = None;
    while let Some(Ok(message)) = client.next().await {
        match message {
            Message::Text(text) => {
                let answer: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                code = answer["error"]["code"].as_str().map(str::to_owned);
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    code
}

/// Docs/reference.md#websocket: a host that failed 5 times gets at most 20
/// `unauthorized` answers a minute, however many connections and loopback addresses
/// it uses, while a client with the right token is answered at once. Two minutes of
/// flood, on paused time.
#[tokio::test(start_paused = true)]
async fn a_guessing_flood_gets_at_most_20_answers_a_minute_and_never_delays_the_right_token() {
    const FLOOD: Duration = Duration::from_secs(120);
    let (_server, port) = serve(Some(TOKEN)).await;
    let started = Instant::now();
    let (answers, mut answered) = tokio::sync::mpsc::unbounded_channel();
    let mut guessers = tokio::task::JoinSet::new();
    // Five loopback addresses, three connections each, guessing as fast as answered.
    for n in 2..7u8 {
        for _ in 0..3 {
            let answers = answers.clone();
            guessers.spawn(async move {
                loop {
                    let code = guess_from(port, IpAddr::from([127, 0, 0, n])).await;
                    let _ = answers.send((started.elapsed(), code));
                }
            });
        }
    }
    drop(answers);
    let mut slowest = Duration::ZERO;
    while started.elapsed() < FLOOD {
        let mut client = open_from(port, IpAddr::from([127, 0, 0, 1])).await;
        let sent = Instant::now();
        client
            .send(Message::text(connect_frame(Some(TOKEN))))
            .await
            .unwrap();
        let Some(Ok(Message::Text(hello))) = client.next().await else {
            panic!("no hello-ok")
        };
        slowest = slowest.max(sent.elapsed());
        assert!(hello.as_str().contains("hello-ok"), "{hello}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    guessers.shutdown().await;
    let mut unauthorized = Vec::new();
    while let Some((at, code)) = answered.recv().await {
        assert_eq!(code.as_deref(), Some("unauthorized"));
        unauthorized.push(at);
    }
    unauthorized.sort();
    let after_fifth = unauthorized.len().saturating_sub(5);
    let window = unauthorized[unauthorized.len() - 1] - unauthorized[4];
    // 20 a minute is one every 3 s: the answers after the 5th keep that pace.
    let allowed = 1 + (window.as_secs_f64() / 3.0).floor() as usize;
    assert!(
        after_fifth <= allowed,
        "{after_fifth} answers after the 5th within {window:?}: more than 20 a minute"
    );
    assert!(after_fifth >= 20, "the flood was answered: {after_fifth}");
    assert!(
        slowest < Duration::from_millis(50),
        "the right token waited {slowest:?}"
    );
}

/// Docs/reference.md#http: headers must arrive within 10 s; a request that never
/// finishes its headers is cut off, not held open.
#[tokio::test(start_paused = true)]
async fn headers_that_never_finish_are_cut_off_after_10_s() {
    let (_server, port) = serve(None).await;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: loc")
        .await
        .unwrap();
    let began = Instant::now();
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut rest)).await;
    assert!(matches!(ended, Ok(Ok(_))), "held open: {ended:?}");
    let waited = began.elapsed();
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
        "cut off after {waited:?}"
    );
}

/// Docs/reference.md#tls: the handshake has the header deadline. A client that sends
/// half a ClientHello and stalls is cut off after 10 s, and meanwhile others are
/// served (the handshake runs in the connection's own task).
#[tokio::test(start_paused = true)]
async fn a_half_sent_client_hello_is_cut_off_after_10_s_while_others_are_served() {
    let (_server, port) = serve_with(None, Some(self_signed().clone())).await;
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // A TLS record header announcing 512 bytes of handshake, then 40 of them.
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    stalled.write_all(&[0x01; 40]).await.unwrap();
    let began = Instant::now();

    let other = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut other = connect_unverified(other, IpAddr::from([127, 0, 0, 1]))
        .await
        .expect("a full handshake meanwhile");
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    other.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    assert!(began.elapsed() < Duration::from_secs(1), "served late");

    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(60), stalled.read_to_end(&mut rest)).await;
    assert!(
        matches!(ended, Ok(Ok(0)) | Ok(Err(_))),
        "answered or held open: {ended:?}"
    );
    let waited = began.elapsed();
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
        "cut off after {waited:?}"
    );
}

/// Docs/reference.md#websocket: a client that never reads its answers is let go once
/// one of them cannot be sent in time, instead of having them pile up.
#[tokio::test(start_paused = true)]
async fn a_client_that_never_reads_is_disconnected() {
    let (_server, port) = serve(None).await;
    let mut client = open_from(port, IpAddr::from([127, 0, 0, 1])).await;
    client
        .send(Message::text(connect_frame(None)))
        .await
        .unwrap();
    let (mut sink, _unread) = client.split();
    let request = r#"{"type":"req","id":"flood","method":"status","params":{}}"#;
    let flood = async {
        for _ in 0..5_000_000u32 {
            if sink.send(Message::text(request)).await.is_err() {
                return true;
            }
        }
        false
    };
    let dropped = tokio::time::timeout(Duration::from_secs(120), flood).await;
    assert_eq!(dropped, Ok(true), "the gateway kept a non-reading client");
}

/// What the TLS port writes to a client whose first bytes it refuses (plain HTTP,
/// garbage, a record too long), before closing the connection, is exactly what
/// `TlsTermination::first_bytes` says it does: the fuzz target's function is the
/// accept path's decision. Real time: the handshake runs on rustls.
#[tokio::test]
async fn the_tls_port_refuses_first_bytes_as_first_bytes_decides() {
    let (_server, port) = serve_with(None, Some(self_signed().clone())).await;
    let sent: [&[u8]; 3] = [
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
        &[0u8; 64],
        b"\x16\x03\x01\xff\xff",
    ];
    for bytes in sent {
        let FirstBytes::Closes { reply, .. } = self_signed().first_bytes(bytes) else {
            panic!("{bytes:?} is refused");
        };
        let mut client = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        client.write_all(bytes).await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut got));
        assert!(read.await.is_ok(), "the server closes the connection");
        assert_eq!(got, reply, "for {bytes:?}");
    }
}
