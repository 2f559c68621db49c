//! A real headless Chromium for the status page tests, driven over the DevTools
//! protocol: it loads one URL and the test reads the DOM back, polling with a
//! deadline. The browser and all its helper processes are killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{DEADLINE, TempDir, wait_until};

/// Program names tried, in order, on `PATH` (Debian ships `chromium`).
const CHROMIUM_NAMES: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// The Chromium to test with, or `None` after printing how to get one. On CI
/// (`CI=true`) a missing browser fails the test instead: `.ci/run` installs it.
pub fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .flat_map(|dir| CHROMIUM_NAMES.map(|name| dir.join(name)))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        let how = "install it with `apt-get install chromium` (Debian)";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium not found on PATH, and CI (CI=true) must run the browser tests: {how}"
        );
        // Straight to stderr: libtest's capture would hide a skip on success.
        let _ = writeln!(
            std::io::stderr(),
            "skipping {test}: chromium not found on PATH; {how}"
        );
    }
    found
}

/// One headless Chromium showing one page.
pub struct Browser {
    /// The browser's processes, killed on drop.
    _processes: ProcessGroup,
    /// The DevTools connection to the page.
    page: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Id of the last DevTools command sent.
    last_id: u64,
    /// A fresh profile: no cache, cookies or state from another run. Removed on drop
    /// (after the process, which is dropped first).
    _profile: TempDir,
}

impl Browser {
    /// Starts `chromium` headless on `url`, with `extra_args` (e.g.
    /// `--host-resolver-rules`), and connects to the page over DevTools.
    pub async fn open(chromium: &PathBuf, url: &str, extra_args: &[&str]) -> Self {
        let profile = TempDir::new("chromium");
        let mut command = Command::new(chromium);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--window-size=800,640",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra_args)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that drop kills the renderers and helpers too.
            .process_group(0);
        // From here on, a failed wait drops `processes` and so kills the browser.
        let processes = ProcessGroup(command.spawn().expect("spawn chromium"));

        // Chromium writes the DevTools port it took into the profile directory.
        let active_port = profile.path().join("DevToolsActivePort");
        let mut devtools_port = 0;
        wait_until("chromium's DevTools port", || {
            devtools_port = std::fs::read_to_string(&active_port)
                .ok()
                .and_then(|text| text.lines().next()?.parse().ok())
                .unwrap_or(0);
            devtools_port != 0
        });
        let mut page_socket = String::new();
        wait_until("chromium's page target", || {
            let targets = devtools_targets(devtools_port).unwrap_or_default();
            let page = targets.as_array().into_iter().flatten().find(|target| {
                target["type"] == "page" && target["webSocketDebuggerUrl"].is_string()
            });
            if let Some(page) = page {
                page_socket = page["webSocketDebuggerUrl"].as_str().unwrap().to_owned();
            }
            !page_socket.is_empty()
        });
        let (page, _) = tokio_tungstenite::connect_async(page_socket.as_str())
            .await
            .expect("DevTools connection to the page");
        Self {
            _processes: processes,
            page,
            last_id: 0,
            _profile: profile,
        }
    }

    /// Runs `expression` in the page and returns its value (JSON).
    pub async fn evaluate(&mut self, expression: &str) -> Value {
        self.last_id += 1;
        let id = self.last_id;
        let command = json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": {"expression": expression, "returnByValue": true},
        });
        self.page
            .send(Message::text(command.to_string()))
            .await
            .expect("send to DevTools");
        loop {
            let message = tokio::time::timeout(DEADLINE, self.page.next())
                .await
                .expect("a DevTools answer in time")
                .expect("DevTools connection open")
                .expect("DevTools frame");
            let Message::Text(text) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(text.as_str()).expect("DevTools JSON");
            if answer["id"] != id {
                continue; // an event
            }
            let result = &answer["result"];
            assert!(
                result.get("exceptionDetails").is_none(),
                "{expression} threw: {result}"
            );
            return result["result"]["value"].clone();
        }
    }

    /// The text of the element with `id`, `None` when there is no such element.
    pub async fn text(&mut self, id: &str) -> Option<String> {
        let expression = format!("document.getElementById({id:?})?.textContent ?? null");
        self.evaluate(&expression).await.as_str().map(str::to_owned)
    }

    /// Waits until the element with `id` reads `expected`.
    pub async fn wait_for_text(&mut self, id: &str, expected: &str) {
        self.wait_for(&format!("#{id} to read {expected:?}"), id, |text| {
            text == expected
        })
        .await;
    }

    /// Waits until the text of the element with `id` satisfies `condition`, and
    /// returns it; past the deadline, panics with what the page shows.
    pub async fn wait_for(
        &mut self,
        what: &str,
        id: &str,
        condition: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let text = self.text(id).await;
            if let Some(text) = text.filter(|t| condition(t)) {
                return text;
            }
            if Instant::now() >= deadline {
                let body = self.evaluate("document.body?.innerText ?? null").await;
                panic!("timed out waiting for {what}; the page shows: {body}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// DevTools' list of targets (`GET /json/list`). Chromium keeps the connection open
/// after answering, so the body is read by its `Content-Length`, not to the end.
fn devtools_targets(port: u16) -> Option<Value> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(DEADLINE)).ok()?;
    write!(
        stream,
        "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .ok()?;
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

/// A process leading its own process group: on drop the whole group (Chromium's
/// renderers, GPU and utility processes) is killed and the leader reaped.
struct ProcessGroup(Child);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.0.id() as i32), Signal::SIGKILL);
        let _ = self.0.wait();
    }
}
