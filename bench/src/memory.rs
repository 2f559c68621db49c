//! Resident memory with no clients, and per idle WebSocket connection.

use std::time::Duration;

use crate::client::{self, Transport};
use crate::target::{Target, free_port, rss_bytes};

pub struct Memory {
    pub idle_rss: u64,
    pub per_connection: f64,
}

pub async fn measure(target: &Target, connections: usize) -> Memory {
    let port = free_port();
    let server = target.start(port);
    tokio::time::sleep(Duration::from_millis(200)).await;
    of_sessions(server.pid(), port, &Transport::Plain, connections).await
}

/// The resident memory of the server `pid` (listening on `port`, settled, with no
/// client), then per idle session once `connections` clients over `transport` are
/// past `connect`.
pub async fn of_sessions(pid: u32, port: u16, transport: &Transport, connections: usize) -> Memory {
    let idle_rss = rss_bytes(pid);
    let clients = client::many_over(port, transport, connections).await;
    // Let the server settle (freed handshake buffers, allocator caches).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded_rss = rss_bytes(pid);
    drop(clients);
    Memory {
        idle_rss,
        per_connection: loaded_rss.saturating_sub(idle_rss) as f64 / connections as f64,
    }
}
