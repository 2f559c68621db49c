//! The WebSocket control protocol on `/`, with a real client.

use std::path::Path;

use crate::support::ws::*;
use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn connect_gets_hello_ok() {
    let port = free_port();
    let gateway = Gateway::start(port, &[]);
    let (_client, hello) = connected(port).await;
    assert_eq!(
        hello,
        json!({
            "type": "res", "id": "hello", "ok": true,
            "payload": {
                "type": "hello-ok", "protocol": 1,
                "server": {"version": env!("CARGO_PKG_VERSION"), "pid": gateway.child.id(), "profile": "default"},
                "methods": ["health", "status"], "events": ["tick", "shutdown", "restarted"],
                "policy": {"tickIntervalMs": 30000, "maxPayload": 1048576}
            }
        })
    );
}

#[tokio::test]
async fn health_and_status_answer_after_connect() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let (mut client, _) = connected(port).await;
    let (mut other, _) = connected(port).await;

    send_text(
        &mut client,
        r#"{"type":"req","id":"h1","method":"health","params":{}}"#,
    )
    .await;
    let health = next_json(&mut client).await;
    assert_eq!(health["id"], "h1");
    assert_eq!(health["ok"], true);
    assert_eq!(health["payload"]["service"], "gateway");
    assert_eq!(health["payload"]["port"], port);

    send_text(
        &mut client,
        r#"{"type":"req","id":"s1","method":"status","params":{}}"#,
    )
    .await;
    let status = next_json(&mut client).await;
    assert_eq!(status["id"], "s1");
    assert_eq!(status["payload"]["connections"], 2);
    assert_eq!(status["payload"]["draining"], false);
    assert_eq!(status["payload"]["port"], port);
    send_text(&mut other, r#"{"type":"req","id":"s2","method":"status"}"#).await;
    assert_eq!(next_json(&mut other).await["payload"]["connections"], 2);
}

#[tokio::test]
async fn unknown_methods_and_bad_frames_get_errors_and_the_socket_stays_open() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let (mut client, _) = connected(port).await;

    send_text(
        &mut client,
        r#"{"type":"req","id":"u1","method":"reboot","params":{}}"#,
    )
    .await;
    let unknown = next_json(&mut client).await;
    assert_eq!(unknown["id"], "u1");
    assert_eq!(unknown["ok"], false);
    assert_eq!(unknown["error"]["code"], "unknown_method");

    send_text(&mut client, "this is not json").await;
    let invalid = next_json(&mut client).await;
    assert_eq!(invalid["id"], serde_json::Value::Null);
    assert_eq!(invalid["error"]["code"], "invalid_request");

    send_text(&mut client, r#"{"type":"req","id":"h2","method":"health"}"#).await;
    assert_eq!(next_json(&mut client).await["ok"], true);
}

#[tokio::test]
async fn a_first_message_other_than_connect_closes_1008() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let mut client = open(port).await;
    send_text(
        &mut client,
        r#"{"type":"req","id":"1","method":"health","params":{}}"#,
    )
    .await;
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(
        close.reason.as_str(),
        "invalid handshake: first request must be connect"
    );
}

#[tokio::test]
async fn a_protocol_range_without_1_is_a_mismatch_then_1002() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let mut client = open(port).await;
    send_text(
        &mut client,
        json!({"type":"req","id":"c","method":"connect","params":{"minProtocol":2,"maxProtocol":5,"client":{"name":"n","version":"v"}}}).to_string(),
    )
    .await;
    let response = next_json(&mut client).await;
    assert_eq!(response["id"], "c");
    assert_eq!(response["ok"], false);
    assert_eq!(response["error"]["code"], "protocol_mismatch");
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1002);
}

#[tokio::test]
async fn a_binary_message_closes_1003() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let (mut client, _) = connected(port).await;
    use futures_util::SinkExt;
    client
        .send(tokio_tungstenite::tungstenite::Message::binary(vec![
            1u8, 2, 3,
        ]))
        .await
        .unwrap();
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1003);
}

#[tokio::test]
async fn a_connect_message_over_64_kib_closes_1009() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let mut client = open(port).await;
    send_text(&mut client, "x".repeat(64 * 1024 + 1)).await;
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
}

#[tokio::test]
async fn a_large_message_before_connect_is_cut_off_with_1009() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let mut client = open(port).await;
    // Far over the 64 KiB pre-connect limit but under the 1 MiB one: the gateway
    // stops reading at its pre-connect budget instead of buffering it all.
    send_text(&mut client, "z".repeat(900 * 1024)).await;
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
}

/// A `connect` request padded to `size` bytes.
fn padded_connect(size: usize) -> String {
    let bare = connect_frame("big");
    let padding = "p".repeat(size - bare.len() - r#","padding":"""#.len());
    let padded = bare.replacen(
        r#""minProtocol""#,
        &format!(r#""padding":"{padding}","minProtocol""#),
        1,
    );
    assert_eq!(padded.len(), size);
    padded
}

#[tokio::test]
async fn a_20_kib_connect_in_1_byte_fragments_gets_hello_ok() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let mut client = open(port).await;
    let text = padded_connect(20 * 1024);
    let bytes = text.as_bytes();
    let mut wire = masked_frame(false, 0x1, &bytes[..1]);
    for byte in &bytes[1..bytes.len() - 1] {
        wire.extend(masked_frame(false, 0x0, std::slice::from_ref(byte)));
    }
    wire.extend(masked_frame(true, 0x0, &bytes[bytes.len() - 1..]));
    assert!(
        wire.len() > 2 * 64 * 1024,
        "far more wire bytes than 64 KiB"
    );
    write_raw(&mut client, &wire).await;
    let hello = next_json(&mut client).await;
    assert_eq!(hello["id"], "big");
    assert_eq!(hello["payload"]["type"], "hello-ok");
}

#[tokio::test]
async fn a_connect_over_64_kib_in_small_fragments_closes_1009() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let mut client = open(port).await;
    let text = padded_connect(64 * 1024 + 1);
    let chunks: Vec<&[u8]> = text.as_bytes().chunks(1024).collect();
    let mut wire = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = if i == 0 { 0x1 } else { 0x0 };
        wire.extend(masked_frame(i + 1 == chunks.len(), opcode, chunk));
    }
    write_raw(&mut client, &wire).await;
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
    assert_eq!(close.reason.as_str(), "message too big");
}

#[tokio::test]
async fn a_connect_missing_a_field_gets_invalid_request_naming_it_then_1008() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let mut client = open(port).await;
    send_text(
        &mut client,
        json!({"type":"req","id":"c","method":"connect","params":{"minProtocol":1,"maxProtocol":1,"client":{"version":"1"}}}).to_string(),
    )
    .await;
    let response = next_json(&mut client).await;
    assert_eq!(
        response,
        json!({"type":"res","id":"c","ok":false,"error":{"code":"invalid_request","message":"params.client.name is required"}})
    );
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(
        close.reason.as_str(),
        "invalid handshake: first request must be connect"
    );
}

#[allow(dead_code)] // its `main` is for `cargo run --example client`
#[path = "../../docs/examples/client.rs"]
mod example_client;

/// The guide shows each example client verbatim.
fn assert_the_guide_shows(example: &str) {
    let guide = include_str!("../../docs/protocol.md");
    assert!(
        guide.contains(example.trim_end()),
        "docs/protocol.md no longer shows the example client verbatim"
    );
}

#[tokio::test]
async fn the_guides_rust_client_runs_against_the_gateway() {
    assert_the_guide_shows(include_str!("../../docs/examples/client.rs"));
    let port = free_port();
    let _gateway = Gateway::start(port, &["--token", "example-token"]);
    let url = format!("ws://127.0.0.1:{port}/");
    let mut out = Vec::new();
    let status = example_client::run(&url, Some("example-token"), &mut out)
        .await
        .expect("the example client works");
    assert_eq!(status["port"], port);
    assert_eq!(status["connections"], 1);
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.starts_with(&format!(
            "connected to gateway {}\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{out}"
    );
    let refused = example_client::run(&url, Some("wrong"), &mut Vec::new())
        .await
        .unwrap_err();
    assert!(
        refused.to_string().starts_with("refused: unauthorized: "),
        "{refused}"
    );
}

/// A Python that has the `websockets` library, if there is one.
fn python_with_websockets() -> Option<String> {
    let candidates = std::env::var("GATEWAY_TEST_PYTHON")
        .into_iter()
        .chain(["python3".to_owned(), "/usr/bin/python3".to_owned()]);
    candidates.into_iter().find(|python| {
        std::process::Command::new(python)
            .args(["-c", "import websockets"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The Python that runs the guide's client, or `None` (and why) outside CI.
fn python_for_the_guide() -> Option<String> {
    let python = python_with_websockets();
    if python.is_none() {
        let how = "install it with `apt-get install python3-websockets` or `pip install websockets` \
                   (or point GATEWAY_TEST_PYTHON at a Python that has it)";
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: no Python with the websockets library; {how}"
        );
        println!("skipped: no Python with the websockets library; {how}");
    }
    python
}

const PYTHON_CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples/client.py");

/// Runs `python client.py ARGS` to its end (bounded by the deadline), with `env` set.
fn run_python_client(python: &str, args: &[&str], env: &[(&str, &Path)]) -> std::process::Output {
    let mut command = std::process::Command::new(python);
    command
        .arg(PYTHON_CLIENT)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = KilledOnDrop(command.spawn().expect("spawn python"));
    poll_until("the Python client to finish", DEADLINE, || {
        child.try_wait().unwrap()
    });
    let mut output = std::process::Output {
        status: child.try_wait().unwrap().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut output.stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut output.stderr)
        .unwrap();
    output
}

/// A session's lines with the one value that changes from run to run (the uptime)
/// masked.
fn masked_uptime(lines: &str) -> String {
    let mut out = String::new();
    let mut rest = lines;
    while let Some(at) = rest.find("\"uptimeMs\":") {
        let (head, tail) = rest.split_at(at + "\"uptimeMs\":".len());
        out.push_str(head);
        out.push('N');
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_python_client_prints_the_same_lines_as_the_rust_one() {
    assert_the_guide_shows(include_str!("../../docs/examples/client.py"));
    let Some(python) = python_for_the_guide() else {
        return;
    };
    let port = free_port();
    let _gateway =
        tokio::task::block_in_place(|| Gateway::start(port, &["--token", "example-token"]));
    let url = format!("ws://127.0.0.1:{port}/");

    let mut rust = Vec::new();
    example_client::run(&url, Some("example-token"), &mut rust)
        .await
        .expect("the Rust client works");
    let output =
        tokio::task::block_in_place(|| run_python_client(&python, &[&url, "example-token"], &[]));
    let python_out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{python} client.py failed: {python_out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status_line = python_out
        .lines()
        .find(|l| l.starts_with("status "))
        .unwrap();
    let status: serde_json::Value = serde_json::from_str(&status_line["status ".len()..]).unwrap();
    assert_eq!(status["port"], port);
    assert_eq!(
        masked_uptime(&python_out),
        masked_uptime(&String::from_utf8(rust).unwrap()),
        "the two clients print the same lines"
    );

    // A refusal: the same line, on stderr, and a failure exit.
    let rust_refusal = example_client::run(&url, Some("wrong"), &mut Vec::new())
        .await
        .unwrap_err()
        .to_string();
    let output = tokio::task::block_in_place(|| run_python_client(&python, &[&url, "wrong"], &[]));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        rust_refusal
    );
}

#[test]
fn the_guides_python_client_explains_its_usage_and_a_missing_gateway() {
    let Some(python) = python_for_the_guide() else {
        return;
    };
    let help = run_python_client(&python, &["--help"], &[]);
    assert!(help.status.success());
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("Usage: client.py [URL [TOKEN]]"),
        "{help:?}"
    );
    let url = format!("ws://127.0.0.1:{}/", free_port());
    let nobody = run_python_client(&python, &[&url], &[]);
    let stderr = String::from_utf8_lossy(&nobody.stderr);
    assert_eq!(nobody.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("cannot reach {url}: ")),
        "{stderr}"
    );
    assert!(!stderr.contains("Traceback"), "{stderr}");
}

#[test]
fn the_guides_python_client_says_how_to_get_websockets_when_it_is_missing() {
    // A `websockets` that cannot be imported, ahead of any installed one.
    let shadow = TempDir::new("no-websockets");
    std::fs::create_dir_all(shadow.path().join("websockets")).unwrap();
    std::fs::write(
        shadow.path().join("websockets/__init__.py"),
        "raise ImportError(\"No module named 'websockets'\")\n",
    )
    .unwrap();
    let output = run_python_client("python3", &[], &[("PYTHONPATH", shadow.path())]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("pip install websockets")
            && stderr.contains("apt-get install python3-websockets"),
        "{stderr}"
    );
    assert!(!stderr.contains("Traceback"), "{stderr}");
}
