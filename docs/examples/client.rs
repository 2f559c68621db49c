//! A gateway client: connect, ask for status, close.
//! Usage: cargo run -p gateway --example client -- [URL [TOKEN]]   (URL defaults to
//! ws://127.0.0.1:18789/). Prints the same lines as the Python client (client.py).
use std::io::Write;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Error = Box<dyn std::error::Error>;

const DEFAULT_URL: &str = "ws://127.0.0.1:18789/";

/// Runs the session, writing its lines to `out`; returns the `status` payload.
pub async fn run(url: &str, token: Option<&str>, out: &mut impl Write) -> Result<Value, Error> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|error| format!("cannot reach {url}: {error}"))?;
    let mut params = json!({"minProtocol": 1, "maxProtocol": 1,
                            "client": {"name": "example.rs", "version": "1.0"}});
    if let Some(token) = token {
        params["auth"] = json!({ "token": token });
    }
    let connect = json!({"type": "req", "id": "1", "method": "connect", "params": params});
    ws.send(Message::text(connect.to_string())).await?;
    let hello: Value = serde_json::from_str(ws.next().await.ok_or("closed")??.to_text()?)?;
    if hello["ok"] != true {
        let error = &hello["error"];
        let (code, message) = (&error["code"], &error["message"]);
        return Err(format!("refused: {}: {}", text(code), text(message)).into());
    }
    writeln!(
        out,
        "connected to gateway {}",
        text(&hello["payload"]["server"]["version"])
    )?;
    ws.send(Message::text(
        r#"{"type":"req","id":"2","method":"status","params":{}}"#,
    ))
    .await?;
    loop {
        let frame: Value = serde_json::from_str(ws.next().await.ok_or("closed")??.to_text()?)?;
        if frame["type"] == "res" {
            ws.close(None).await?;
            writeln!(out, "status {}", frame["payload"])?; // compact JSON, keys sorted
            return Ok(frame["payload"].clone()); // an event (tick) may come first: skipped
        }
    }
}

/// A JSON string as its text, anything else as JSON.
fn text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = format!("Usage: client [URL [TOKEN]]   (URL defaults to {DEFAULT_URL})");
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return println!("{usage}");
    }
    if args.len() > 2 {
        eprintln!("{usage}");
        std::process::exit(1);
    }
    let url = args.first().map_or(DEFAULT_URL, String::as_str);
    if let Err(error) = run(url, args.get(1).map(String::as_str), &mut std::io::stdout()).await {
        eprintln!("{error}");
        std::process::exit(1);
    }
}
