//! The restart gap: SIGTERM with N clients connected, to the moment the port can be
//! bound again; and how many clients got the `shutdown` event and a 1001 close.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::client;
use crate::target::{Target, free_port};

pub struct GapRun {
    pub gap: Duration,
    /// Clients that saw the shutdown event and then a 1001 close, out of `clients`.
    pub clean_goodbyes: usize,
    pub clients: usize,
}

pub async fn measure(target: &Target, clients: usize) -> GapRun {
    let port = free_port();
    let server = target.start(port);
    let connected = client::many(port, clients).await;
    let watchers: Vec<_> = connected
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let mut saw_shutdown = false;
                while let Some(Ok(message)) = client.next().await {
                    match message {
                        Message::Text(text) if text.as_str().contains(r#""event":"shutdown""#) => {
                            saw_shutdown = true;
                        }
                        Message::Close(Some(frame)) => {
                            let clean = saw_shutdown && u16::from(frame.code) == 1001;
                            // Keep polling so the close reply goes out.
                            while let Some(Ok(_)) = client.next().await {}
                            return clean;
                        }
                        _ => {}
                    }
                }
                false
            })
        })
        .collect();

    let started = Instant::now();
    server.terminate();
    let gap = tokio::task::spawn_blocking(move || {
        loop {
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return started.elapsed();
            }
            if started.elapsed() > Duration::from_secs(30) {
                return started.elapsed();
            }
            // Poll, but leave the CPU to the server and the clients being measured.
            std::thread::sleep(Duration::from_micros(100));
        }
    })
    .await
    .expect("gap probe");
    let mut clean_goodbyes = 0;
    for watcher in watchers {
        if let Ok(Ok(true)) = tokio::time::timeout(Duration::from_secs(10), watcher).await {
            clean_goodbyes += 1;
        }
    }
    drop(server);
    GapRun {
        gap,
        clean_goodbyes,
        clients,
    }
}
