//! A gateway client: connect, ask for status, close.
//! Usage: cargo run -p gateway --example client -- ws://127.0.0.1:PORT/ [TOKEN]
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Error = Box<dyn std::error::Error>;

pub async fn run(url: &str, token: Option<&str>) -> Result<Value, Error> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let mut params = json!({"minProtocol": 1, "maxProtocol": 1,
                            "client": {"name": "example.rs", "version": "1.0"}});
    if let Some(token) = token {
        params["auth"] = json!({ "token": token });
    }
    let connect = json!({"type": "req", "id": "1", "method": "connect", "params": params});
    ws.send(Message::text(connect.to_string())).await?;
    let hello: Value = serde_json::from_str(ws.next().await.ok_or("closed")??.to_text()?)?;
    if hello["ok"] != true {
        return Err(format!("refused: {}", hello["error"]).into());
    }
    println!(
        "connected to gateway {}",
        hello["payload"]["server"]["version"]
    );
    ws.send(Message::text(
        r#"{"type":"req","id":"2","method":"status","params":{}}"#,
    ))
    .await?;
    loop {
        let frame: Value = serde_json::from_str(ws.next().await.ok_or("closed")??.to_text()?)?;
        if frame["type"] == "res" {
            ws.close(None).await?;
            println!("status {}", frame["payload"]);
            return Ok(frame["payload"].clone()); // an event (tick) may come first: skipped
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args.first().map_or("ws://127.0.0.1:18789/", String::as_str);
    run(url, args.get(1).map(String::as_str)).await.map(drop)
}
