//! A WebSocket client that speaks the gateway protocol, light enough to open
//! thousands at once.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Opens a socket and completes `connect`; panics on failure (a benchmark with a
/// broken server is not worth finishing).
pub async fn connected(port: u16) -> Client {
    match try_connected(port).await {
        Ok(client) => client,
        Err(error) => panic!("{error}"),
    }
}

/// Opens a socket and completes `connect`; why not, on failure (a refused connect
/// while a server restarts, say).
pub async fn try_connected(port: u16) -> Result<Client, String> {
    let url = format!("ws://127.0.0.1:{port}/");
    let (mut client, _) = tokio_tungstenite::connect_async_with_config(url, Some(config()), true)
        .await
        .map_err(|e| format!("websocket upgrade: {e}"))?;
    let connect = r#"{"type":"req","id":"c","method":"connect","params":{"minProtocol":1,"maxProtocol":1,"client":{"name":"bench","version":"1"}}}"#;
    client
        .send(Message::text(connect))
        .await
        .map_err(|e| format!("send connect: {e}"))?;
    match client.next().await {
        Some(Ok(Message::Text(text))) if text.as_str().contains("hello-ok") => Ok(client),
        other => Err(format!("no hello-ok: {other:?}")),
    }
}

/// Opens `n` connected clients, a bounded number at a time.
pub async fn many(port: u16, n: usize) -> Vec<Client> {
    let mut clients = Vec::with_capacity(n);
    let mut pending =
        futures_util::stream::iter((0..n).map(|_| connected(port))).buffer_unordered(64);
    while let Some(client) = pending.next().await {
        clients.push(client);
    }
    clients
}
