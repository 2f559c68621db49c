//! Shared harness for the cross-process tests: start the real `gateway` binary on a
//! port from the OS, wait on conditions with deadlines, and always kill what was
//! started, even when a test fails.
#![allow(dead_code)] // each test file uses its own subset

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub mod etcd;
pub mod tools;

/// Generous: the machines are shared and noisy. Deadlines only bound failures.
pub const DEADLINE: Duration = Duration::from_secs(15);

pub fn gateway_bin() -> &'static str {
    env!("CARGO_BIN_EXE_gateway")
}

/// A port free now on both 127.0.0.1 and [::1], as the OS says when asked to bind
/// it, from below the OS's ephemeral range. A port from `bind(0)` is in that range:
/// between its release and the gateway's bind, any outgoing connection (the suite
/// makes thousands) may take it as its local port, and the gateway meets EADDRINUSE.
/// Candidates start at a place of this process's own and never repeat within it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static TAKEN: AtomicU32 = AtomicU32::new(0);
    const LOWEST: u32 = 10_000;
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|&start| start > LOWEST + 1_000 && start <= 65_535)
        .unwrap_or(32_768);
    let span = ephemeral_start - LOWEST;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    let origin = std::process::id().wrapping_mul(7_919) ^ nanos;
    loop {
        // A step coprime with the span walks all of it before repeating.
        let n = TAKEN.fetch_add(1, Ordering::Relaxed);
        let port = LOWEST + origin.wrapping_add(n.wrapping_mul(4_001)) % span;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if port == 18_789 || port == 19_001 {
            continue;
        }
        let v4 = TcpListener::bind(("127.0.0.1", port));
        if v4.is_ok() && TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port))).is_ok() {
            return port;
        }
    }
}

/// The one deadline loop: polls `poll` every few milliseconds until it gives a value,
/// and panics naming `what` once `within` has passed without one.
pub fn poll_until<T>(what: &str, within: Duration, mut poll: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = poll() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `condition` until it holds or `DEADLINE` passes.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    poll_until(what, DEADLINE, || condition().then_some(()));
}

/// A fresh state directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path =
            std::env::temp_dir().join(format!("gateway-test-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        // A gateway refuses a state directory writable by group or others: keep it
        // private whatever the umask of whoever runs the tests.
        let private = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700);
        std::fs::set_permissions(&path, private).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `gateway` command with a clean environment: no inherited GATEWAY_* or
/// NOTIFY_SOCKET, and a private state directory.
pub fn gateway_command(args: &[&str], state_dir: &Path) -> Command {
    let mut command = Command::new(gateway_bin());
    command
        .args(args)
        .env_remove("GATEWAY_PORT")
        .env_remove("GATEWAY_PROFILE")
        .env_remove("GATEWAY_TOKEN")
        .env_remove("GATEWAY_TOKEN_FILE")
        .env_remove("GATEWAY_TLS_CERT")
        .env_remove("GATEWAY_TLS_KEY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("GATEWAY_CLUSTER_ETCD")
        .env_remove("GATEWAY_CLUSTER_KEY")
        .env_remove("GATEWAY_CLUSTER_CA")
        .env_remove("GATEWAY_CLUSTER_CERT")
        .env_remove("GATEWAY_CLUSTER_CERT_KEY")
        .env_remove("GATEWAY_CLUSTER_USER")
        .env_remove("GATEWAY_CLUSTER_PASSWORD")
        .env("GATEWAY_STATE_DIR", state_dir)
        .env("XDG_STATE_HOME", state_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A child process that is killed (and reaped) when dropped, so a failing test never
/// leaves a process behind.
pub struct KilledOnDrop(pub Child);

impl std::ops::Deref for KilledOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KilledOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl KilledOnDrop {
    pub fn is_running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running (or finished) gateway process, killed on drop.
pub struct Gateway {
    pub child: KilledOnDrop,
    pub port: u16,
    _state: TempDir,
}

impl Gateway {
    /// Spawns `gateway --port PORT ARGS...` without waiting for anything.
    pub fn spawn(port: u16, args: &[&str]) -> Self {
        Self::spawn_with(port, args, |_| {})
    }

    pub fn spawn_with(port: u16, args: &[&str], configure: impl FnOnce(&mut Command)) -> Self {
        let state = TempDir::new("state");
        let port_text = port.to_string();
        let mut all = vec!["--port", port_text.as_str()];
        all.extend_from_slice(args);
        let mut command = gateway_command(&all, state.path());
        configure(&mut command);
        let child = KilledOnDrop(command.spawn().expect("spawn gateway"));
        Self {
            child,
            port,
            _state: state,
        }
    }

    /// Spawns and waits until `/healthz` answers 200.
    pub fn start(port: u16, args: &[&str]) -> Self {
        let mut gateway = Self::spawn(port, args);
        gateway.wait_healthy();
        gateway
    }

    pub fn wait_healthy(&mut self) {
        let port = self.port;
        let exited = poll_until("the gateway to become healthy", DEADLINE, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(Some(status));
            }
            http_get(port, "/healthz")
                .is_some_and(|r| r.status == 200)
                .then_some(None)
        });
        if let Some(status) = exited {
            panic!("gateway exited early with {status}: {}", self.stderr_now());
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signal gateway");
    }

    /// Waits for the exit; panics past the deadline.
    pub fn wait_exit(&mut self) -> ExitStatus {
        poll_until("the gateway to exit", DEADLINE, || {
            self.child.try_wait().expect("try_wait")
        })
    }

    /// Everything written to stderr so far (call after exit to get it all).
    pub fn stderr_now(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }
}

/// Runs `gateway ARGS` to completion (bounded by the deadline): exit code and stderr.
pub fn run_to_exit(port: u16, args: &[&str]) -> (i32, String) {
    let mut gateway = Gateway::spawn(port, args);
    let status = gateway.wait_exit();
    let stderr = gateway.stderr_now();
    (status.code().expect("exited, not signalled"), stderr)
}

/// A minimal HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends a raw request (one connection, `Connection: close`) and reads the answer.
pub fn http_request(port: u16, raw: &str) -> Option<HttpResponse> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(raw.as_bytes()).ok()?;
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some(HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    })
}

pub fn http_get(port: u16, path: &str) -> Option<HttpResponse> {
    http_request(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
    )
}

/// Whether a plain listener could take the port right now (both families).
pub fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
        && TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port))).is_ok()
}

/// The first line of a text.
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

pub mod ws {
    //! A real WebSocket client (tokio-tungstenite) speaking the gateway protocol.

    use futures_util::{SinkExt, StreamExt};
    use serde_json::{Value, json};
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

    pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

    pub async fn open(port: u16) -> Client {
        let (client, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/"))
            .await
            .expect("websocket upgrade");
        client
    }

    pub fn connect_frame(id: &str) -> String {
        json!({
            "type": "req", "id": id, "method": "connect",
            "params": {"minProtocol": 1, "maxProtocol": 1, "client": {"name": "test", "version": "1.0.0"}}
        })
        .to_string()
    }

    pub async fn send_text(client: &mut Client, text: impl Into<String>) {
        client.send(Message::text(text.into())).await.expect("send");
    }

    /// The next JSON text frame; panics on anything else.
    pub async fn next_json(client: &mut Client) -> Value {
        loop {
            match next_message(client).await {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str()).expect("JSON frame");
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The close frame the gateway sends next (skipping nothing else).
    pub async fn next_close(client: &mut Client) -> Option<CloseFrame> {
        loop {
            match next_message(client).await {
                Message::Close(frame) => return frame,
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    async fn next_message(client: &mut Client) -> Message {
        tokio::time::timeout(super::DEADLINE, client.next())
            .await
            .expect("a frame in time")
            .expect("stream open")
            .expect("frame ok")
    }

    /// Opens a socket and completes `connect`; returns the client and `hello-ok`.
    pub async fn connected(port: u16) -> (Client, Value) {
        let mut client = open(port).await;
        send_text(&mut client, connect_frame("hello")).await;
        let hello = next_json(&mut client).await;
        (client, hello)
    }

    /// Reads until the stream ends (the close handshake completes).
    pub async fn finish(client: &mut Client) {
        while let Some(Ok(_)) = client.next().await {}
    }

    /// A masked client frame, written by hand: for messages a library would not send
    /// (stalled half-way, split into 1-byte fragments).
    pub fn masked_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x5a, 0x17, 0xc3, 0x08];
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        out
    }

    /// Writes raw bytes on a client's connection, under tungstenite's feet.
    pub async fn write_raw(client: &mut Client, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let tokio_tungstenite::MaybeTlsStream::Plain(stream) = client.get_mut() else {
            panic!("a plain TCP client")
        };
        stream.write_all(bytes).await.expect("raw write");
    }
}

/// Runs `gateway ARGS` (status, stop...) to completion: code, stdout, stderr.
pub fn run_cli(args: &[&str]) -> (i32, String, String) {
    let state = TempDir::new("cli");
    let mut child = KilledOnDrop(
        gateway_command(args, state.path())
            .spawn()
            .expect("spawn gateway"),
    );
    let status = poll_until(&format!("gateway {args:?} to finish"), DEADLINE * 2, || {
        child.try_wait().unwrap()
    });
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.code().expect("exited"), stdout, stderr)
}

/// A process that is not a gateway holding a port (python3's plain socket), killed
/// on drop.
pub struct ForeignListener {
    pub child: KilledOnDrop,
}

impl ForeignListener {
    pub fn spawn(port: u16) -> Self {
        let script = format!(
            "import socket, sys, time\n\
             s = socket.socket()\n\
             s.bind(('127.0.0.1', {port}))\n\
             s.listen()\n\
             print('ready', flush=True)\n\
             time.sleep(120)\n"
        );
        let mut child = KilledOnDrop(
            Command::new("python3")
                .args(["-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn python3"),
        );
        let mut ready = [0u8; 6];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut ready)
            .expect("the foreign listener is ready");
        Self { child }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }
}

/// A process this test did not spawn itself (a restart's successor, adopted by init
/// once its parent exits), killed on drop so a failing test leaves nothing behind.
pub struct KillPidOnDrop(pub u32);

impl Drop for KillPidOnDrop {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}
