//! `health` request/response over the WebSocket: requests per second and latency,
//! each connection sending its next request when the previous answer arrived.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::client;
use crate::stats::percentile;
use crate::target::{Target, free_port};

pub struct Throughput {
    pub requests_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
}

pub async fn measure(target: &Target, connections: usize, duration: Duration) -> Throughput {
    let port = free_port();
    let _server = target.start(port);
    load(port, connections, duration).await
}

/// Drives `connections` clients against a server already listening on `port`.
pub async fn load(port: u16, connections: usize, duration: Duration) -> Throughput {
    let clients = client::many(port, connections).await;
    // Warm up, then measure.
    let started = Instant::now();
    let warmup_end = started + duration / 5;
    let end = warmup_end + duration;
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
    Throughput {
        requests_per_sec: all.len() as f64 / duration.as_secs_f64(),
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
    }
}
