//! `health` request/response over the WebSocket: requests per second and latency,
//! each connection sending its next request when the previous answer arrived.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Transport};
use crate::stats::percentile;
use crate::target::{Target, cpu_between, free_port};

pub struct Throughput {
    pub requests_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// The server's CPU time per request, when its pid was given.
    pub server_cpu_per_request: Option<Duration>,
}

pub async fn measure(target: &Target, connections: usize, duration: Duration) -> Throughput {
    let port = free_port();
    let _server = target.start(port);
    load(port, connections, duration).await
}

/// Drives `connections` clients against a server already listening on `port`.
pub async fn load(port: u16, connections: usize, duration: Duration) -> Throughput {
    load_over(port, &Transport::Plain, connections, duration, None).await
}

/// [`load`] with clients over `transport` (`ws://` or `wss://`), and the CPU time of
/// the `server` process (its pid) per request if given.
pub async fn load_over(
    port: u16,
    transport: &Transport,
    connections: usize,
    duration: Duration,
    server: Option<u32>,
) -> Throughput {
    let clients = client::many_over(port, transport, connections).await;
    // Warm up, then measure.
    let started = Instant::now();
    let warmup_end = started + duration / 5;
    let end = warmup_end + duration;
    let cpu = server.map(|pid| cpu_between(pid, warmup_end, end));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let request = r#"{"type":"req","id":"h","method":"health","params":{}}"#;
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    client.send(Message::text(request)).await.expect("send");
                    loop {
                        match client.next().await {
                            Some(Ok(Message::Text(_))) => break,
                            Some(Ok(_)) => continue,
                            other => panic!("connection lost: {other:?}"),
                        }
                    }
                    if sent >= warmup_end {
                        latencies.push(sent.elapsed());
                    }
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("client task"));
    }
    let server_cpu = match cpu {
        Some(task) => Some(task.await.expect("CPU sampler")),
        None => None,
    };
    Throughput {
        server_cpu_per_request: server_cpu.map(|cpu| cpu / all.len().max(1) as u32),
        requests_per_sec: all.len() as f64 / duration.as_secs_f64(),
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
    }
}
