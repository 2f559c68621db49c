//! A WebSocket client that speaks the gateway protocol, light enough to open
//! thousands at once, over `ws://` or `wss://`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type Client = WebSocketStream<Stream>;

/// How a client reaches the gateway: plain TCP, or TLS verified with a config.
#[derive(Clone)]
pub enum Transport {
    Plain,
    Tls(Arc<ClientConfig>),
}

/// A client's byte stream under the WebSocket: TCP, or TLS over TCP.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Opens a socket (over `transport`) and completes `connect`; panics on failure (a
/// benchmark with a broken server is not worth finishing).
pub async fn connected_over(port: u16, transport: &Transport) -> Client {
    match try_connected_over(port, transport).await {
        Ok(client) => client,
        Err(error) => panic!("{error}"),
    }
}

/// Opens a socket and completes `connect`; why not, on failure (a refused connect
/// while a server restarts, say).
pub async fn try_connected(port: u16) -> Result<Client, String> {
    try_connected_over(port, &Transport::Plain).await
}

/// [`try_connected`] over `transport`: for TLS, the handshake (verified as
/// `localhost`) comes first, then the upgrade on `wss://`.
pub async fn try_connected_over(port: u16, transport: &Transport) -> Result<Client, String> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (stream, url) = match transport {
        Transport::Plain => (Stream::Plain(tcp), format!("ws://127.0.0.1:{port}/")),
        Transport::Tls(config) => {
            let name = ServerName::try_from("localhost").expect("a DNS name");
            let tls = TlsConnector::from(Arc::clone(config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("tls handshake: {e}"))?;
            (
                Stream::Tls(Box::new(tls)),
                format!("wss://localhost:{port}/"),
            )
        }
    };
    let (mut client, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config()))
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
    many_over(port, &Transport::Plain, n).await
}

/// [`many`] over `transport`.
pub async fn many_over(port: u16, transport: &Transport, n: usize) -> Vec<Client> {
    let mut clients = Vec::with_capacity(n);
    let mut pending = futures_util::stream::iter((0..n).map(|_| connected_over(port, transport)))
        .buffer_unordered(64);
    while let Some(client) = pending.next().await {
        clients.push(client);
    }
    clients
}
