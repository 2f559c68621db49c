//! Restart under load: N clients loop connect + `GET /healthz` and connect + WebSocket
//! `connect`/`health` while the server restarts R times — the gateway by SIGHUP (the
//! handoff), the Node reference by stop + start, the only restart it has. The clients
//! either go flat out (back to back: the server is saturated, and every wait is mostly
//! queueing) or are paced (one request per client per period, well under capacity, so
//! that a wait shows what the restart itself costs).
//!
//! Per request (one `/healthz`, or one WebSocket session) a client records whether a
//! connect was refused, whether the connection was reset (or closed before an answer),
//! and its *connect wait*: from its first `connect()` to the server's first answer
//! (the HTTP response, or the WebSocket `101`), retrying a refused or reset connect every
//! [`RETRY`] as a client that wants in would. Each restart is a window from the signal
//! to the moment the new process serves and the old one is gone.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::client;
use crate::target::{Target, free_port, healthz_pid};

/// Pause before retrying a refused or reset connect.
pub const RETRY: Duration = Duration::from_millis(2);
/// A request not served within this long is a failure.
const GIVE_UP: Duration = Duration::from_secs(10);
/// Load before the first restart, and between restarts.
pub const SETTLE: Duration = Duration::from_millis(500);
/// Requests still in flight this long after a restart's window count as during it.
const TAIL: Duration = Duration::from_millis(20);
/// How long before a restart's signal its steady yardstick window ends.
pub const STEADY_BEFORE: Duration = Duration::from_millis(100);
/// The longest steady window: it must stay clear of the previous restart's stragglers.
const STEADY_MAX: Duration = Duration::from_millis(300);

const CONNECT: &str = r#"{"type":"req","id":"c","method":"connect","params":{"minProtocol":1,"maxProtocol":1,"client":{"name":"bench","version":"1"}}}"#;
const HEALTH: &str = r#"{"type":"req","id":"h","method":"health","params":{}}"#;

/// What happened to one request.
struct Request {
    started: Instant,
    /// First `connect()` to the server's first answer; `None` when it never came.
    wait: Option<Duration>,
    /// A connect was refused (the port was not listening).
    refused: bool,
    /// The first reset (or close before an answer): when, and where in the request.
    reset: Option<(Instant, String)>,
    /// A WebSocket session ended by the server's restart notice (shutdown event and
    /// a 1012 or 1001 close): the documented way to tell a client to reconnect.
    goodbye: bool,
    /// Anything else: a non-200 answer, a protocol error, no answer in time.
    failure: Option<String>,
}

impl Request {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            wait: None,
            refused: false,
            reset: None,
            goodbye: false,
            failure: None,
        }
    }

    fn reset(&mut self, stage: &str, error: &dyn std::fmt::Display) {
        self.reset
            .get_or_insert_with(|| (Instant::now(), format!("{stage}: {error}")));
    }

    fn answered(&mut self) {
        self.wait = Some(self.started.elapsed());
    }
}

/// The clients driving a run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub clients: usize,
    /// Each client starts a request at most once per this period; `None`: back to back.
    pub pace: Option<Duration>,
}

/// One restart-under-load run of one target.
pub struct LoadRun {
    pub load: Load,
    pub restarts: usize,
    /// Requests that got their answer.
    pub served: usize,
    pub refused: usize,
    pub reset: usize,
    pub goodbyes: usize,
    pub failed: usize,
    pub first_failure: Option<String>,
    /// The first reset: where in the request, and when against the nearest restart.
    pub first_reset: Option<String>,
    /// Per restart, the longest connect wait of a request that overlapped it.
    pub longest_wait: Vec<Duration>,
    /// Every connect wait of a request that overlapped a restart.
    pub waits_during_restarts: Vec<Duration>,
    /// Per restart, the longest connect wait in a window as long as the restart (at
    /// most [`STEADY_MAX`]) ending [`STEADY_BEFORE`] before its signal: the same load,
    /// no restart (the yardstick).
    pub longest_wait_steady: Vec<Duration>,
    /// Per restart, the signal to the first `/healthz` answered with the new pid.
    pub serving_after_signal: Vec<Duration>,
}

pub async fn measure(target: &Target, load: Load, restarts: usize) -> LoadRun {
    let port = free_port();
    let mut server = Server::start(target, port);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..load.clients)
        .map(|i| {
            // Paced clients start spread over one period, not all at once.
            let first = load.pace.map_or(Duration::ZERO, |pace| {
                pace * u32::try_from(i).unwrap_or(0) / u32::try_from(load.clients).unwrap_or(1)
            });
            tokio::spawn(client_loop(
                port,
                i % 2 == 1,
                first,
                load.pace,
                Arc::clone(&stop),
            ))
        })
        .collect();

    let mut windows = Vec::with_capacity(restarts);
    let mut serving_after_signal = Vec::with_capacity(restarts);
    for _ in 0..restarts {
        tokio::time::sleep(SETTLE).await;
        // Blocking waits and probes, off the runtime that drives the clients.
        let (returned, window) = tokio::task::spawn_blocking(move || {
            let window = server.restart();
            (server, window)
        })
        .await
        .expect("restart driver");
        server = returned;
        serving_after_signal.push(window.serving - window.signal);
        windows.push(window);
    }
    tokio::time::sleep(SETTLE).await;
    stop.store(true, Ordering::Relaxed);
    let mut requests = Vec::new();
    for task in tasks {
        requests.extend(task.await.expect("client task"));
    }
    drop(server);

    let mut run = LoadRun {
        load,
        restarts,
        served: 0,
        refused: 0,
        reset: 0,
        goodbyes: 0,
        failed: 0,
        first_failure: None,
        first_reset: None,
        longest_wait: vec![Duration::ZERO; restarts],
        waits_during_restarts: Vec::new(),
        longest_wait_steady: vec![Duration::ZERO; restarts],
        serving_after_signal,
    };
    for request in &requests {
        run.served += usize::from(request.wait.is_some() && request.failure.is_none());
        run.refused += usize::from(request.refused);
        if let Some((at, what)) = &request.reset {
            run.reset += 1;
            run.first_reset
                .get_or_insert_with(|| describe(*at, what, request.started, &windows));
        }
        run.goodbyes += usize::from(request.goodbye);
        if let Some(failure) = &request.failure {
            run.failed += 1;
            run.first_failure.get_or_insert_with(|| failure.clone());
        }
        let Some(wait) = request.wait else { continue };
        let mut during = false;
        for (longest, window) in run.longest_wait.iter_mut().zip(&windows) {
            if request.started <= window.end + TAIL && request.started + wait >= window.signal {
                *longest = (*longest).max(wait);
                during = true;
            }
        }
        if during {
            run.waits_during_restarts.push(wait);
        }
        for (longest, window) in run.longest_wait_steady.iter_mut().zip(&windows) {
            let end = window.signal - STEADY_BEFORE;
            let start = end - (window.end + TAIL - window.signal).min(STEADY_MAX);
            if request.started <= end && request.started + wait >= start {
                *longest = (*longest).max(wait);
            }
        }
    }
    run
}

/// A reset, placed against the restart whose signal is nearest.
fn describe(at: Instant, what: &str, started: Instant, windows: &[Window]) -> String {
    let offset = |t: Instant, signal: Instant| {
        if t >= signal {
            format!("+{:.2} ms", (t - signal).as_secs_f64() * 1e3)
        } else {
            format!("-{:.2} ms", (signal - t).as_secs_f64() * 1e3)
        }
    };
    let nearest = windows.iter().enumerate().min_by_key(|(_, w)| {
        if at >= w.signal {
            at - w.signal
        } else {
            w.signal - at
        }
    });
    match nearest {
        Some((i, w)) => format!(
            "{what}; request started {} and reset {} from restart {}'s signal (new process serving at {}, old gone at {})",
            offset(started, w.signal),
            offset(at, w.signal),
            i + 1,
            offset(w.serving, w.signal),
            offset(w.end, w.signal)
        ),
        None => what.to_owned(),
    }
}

async fn client_loop(
    port: u16,
    mut websocket: bool,
    first: Duration,
    pace: Option<Duration>,
    stop: Arc<AtomicBool>,
) -> Vec<Request> {
    let mut requests = Vec::new();
    let mut next = tokio::time::Instant::now() + first;
    while !stop.load(Ordering::Relaxed) {
        if let Some(pace) = pace {
            tokio::time::sleep_until(next).await;
            // A late request does not make the next ones bunch up.
            next = (next + pace).max(tokio::time::Instant::now());
        }
        requests.push(if websocket {
            websocket_request(port).await
        } else {
            http_request(port).await
        });
        websocket = !websocket;
    }
    requests
}

fn is_reset(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// Connects, retrying refusals and resets every [`RETRY`] until [`GIVE_UP`].
async fn connect(port: u16, request: &mut Request) -> Option<TcpStream> {
    loop {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(stream) => return Some(stream),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => request.refused = true,
            Err(e) if is_reset(&e) => request.reset("connect", &e),
            Err(e) => {
                request.failure = Some(format!("connect: {e}"));
                return None;
            }
        }
        if !retry(request).await {
            return None;
        }
    }
}

/// Waits [`RETRY`]; false (and a failure) once the request has waited [`GIVE_UP`].
async fn retry(request: &mut Request) -> bool {
    if request.started.elapsed() > GIVE_UP {
        request.failure = Some(format!("not served within {GIVE_UP:?}"));
        return false;
    }
    tokio::time::sleep(RETRY).await;
    true
}

async fn http_request(port: u16) -> Request {
    let mut request = Request::new();
    let get =
        format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let mut response = Vec::with_capacity(512);
    let mut stream = loop {
        let Some(mut stream) = connect(port, &mut request).await else {
            return request;
        };
        let answer = async {
            stream.write_all(get.as_bytes()).await?;
            let mut first = [0u8; 512];
            match stream.read(&mut first).await? {
                0 => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                n => {
                    response.extend_from_slice(&first[..n]);
                    Ok(())
                }
            }
        };
        let answered = answer.await;
        match answered {
            Ok(()) => break stream,
            Err(e) if is_reset(&e) => request.reset("/healthz before the answer", &e),
            Err(e) => {
                request.failure = Some(format!("/healthz: {e}"));
                return request;
            }
        }
        if !retry(&mut request).await {
            return request;
        }
    };
    request.answered();
    match stream.read_to_end(&mut response).await {
        Err(e) if is_reset(&e) => request.reset("/healthz after the answer began", &e),
        Err(e) => request.failure = Some(format!("/healthz: {e}")),
        Ok(_) if !response.starts_with(b"HTTP/1.1 200 ") => {
            let status = String::from_utf8_lossy(&response);
            request.failure = Some(format!(
                "/healthz answered {}",
                status.lines().next().unwrap_or("")
            ));
        }
        Ok(_) => {}
    }
    request
}

/// A WebSocket error that means the connection went away under us.
fn is_ws_reset(error: &tungstenite::Error) -> bool {
    use tungstenite::error::ProtocolError;
    match error {
        tungstenite::Error::Io(e) => is_reset(e),
        tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed
        | tungstenite::Error::Protocol(
            ProtocolError::HandshakeIncomplete | ProtocolError::ResetWithoutClosingHandshake,
        ) => true,
        _ => false,
    }
}

async fn websocket_request(port: u16) -> Request {
    let mut request = Request::new();
    let url = format!("ws://127.0.0.1:{port}/");
    let mut session = loop {
        let Some(stream) = connect(port, &mut request).await else {
            return request;
        };
        match tokio_tungstenite::client_async_with_config(&url, stream, Some(client::config()))
            .await
        {
            Ok((session, _)) => break session,
            Err(e) if is_ws_reset(&e) => request.reset("upgrade", &e),
            Err(e) => {
                request.failure = Some(format!("upgrade: {e}"));
                return request;
            }
        }
        if !retry(&mut request).await {
            return request;
        }
    };
    request.answered();
    for (message, expected) in [(CONNECT, "hello-ok"), (HEALTH, r#""status":"live""#)] {
        if let Err(e) = session.send(Message::text(message)).await {
            if is_ws_reset(&e) {
                request.reset(&format!("sending {expected} request"), &e);
            } else {
                request.failure = Some(format!("send: {e}"));
            }
            return request;
        }
        loop {
            match session.next().await {
                Some(Ok(Message::Text(text))) if text.as_str().contains(r#""type":"res""#) => {
                    if !text.as_str().contains(expected) {
                        request.failure =
                            Some(format!("expected {expected}, got {}", text.as_str()));
                        return request;
                    }
                    break;
                }
                // The shutdown event announces the close that follows.
                Some(Ok(Message::Close(Some(frame))))
                    if matches!(u16::from(frame.code), 1001 | 1012) =>
                {
                    request.goodbye = true;
                    drain(&mut session).await;
                    return request;
                }
                Some(Ok(Message::Close(frame))) => {
                    request.failure = Some(format!("closed: {frame:?}"));
                    return request;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) if is_ws_reset(&e) => {
                    request.reset(&format!("awaiting {expected}"), &e);
                    return request;
                }
                Some(Err(e)) => {
                    request.failure = Some(format!("read: {e}"));
                    return request;
                }
                None => {
                    request.reset(
                        &format!("awaiting {expected}"),
                        &"closed without a close frame",
                    );
                    return request;
                }
            }
        }
    }
    let _ = session.close(None).await;
    drain(&mut session).await;
    request
}

/// Reads until the server's side of the close, so the close handshake completes.
async fn drain(session: &mut WebSocketStream<TcpStream>) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = session.next().await {}
    })
    .await;
}

/// One restart, timed.
pub struct Window {
    pub signal: Instant,
    /// The first `/healthz` answered by the new process.
    pub serving: Instant,
    /// The new process serves and the old one is gone.
    pub end: Instant,
}

/// The server under load; its pid changes with each restart. Stopped on drop.
pub struct Server {
    target: Target,
    port: u16,
    pub pid: Pid,
}

impl Server {
    pub fn start(target: &Target, port: u16) -> Self {
        // Handed-over gateways are children of the process they replace; once that
        // one exits they are re-parented here, so they can be reaped and waited for.
        nix::sys::prctl::set_child_subreaper(true).expect("become a child subreaper");
        let running = target.start(port);
        let pid = Pid::from_raw(running.pid() as i32);
        std::mem::forget(running); // this struct stops it, by pid
        Self {
            target: target.clone(),
            port,
            pid,
        }
    }

    pub fn restart(&mut self) -> Window {
        let old = self.pid;
        let signal = Instant::now();
        match &self.target {
            Target::Gateway { .. } => {
                kill(old, Signal::SIGHUP).expect("SIGHUP the gateway");
                self.pid = self.await_new_pid(old, signal);
                let serving = Instant::now();
                assert!(
                    wait_exit(old, Duration::from_secs(15)),
                    "the old gateway did not exit within 15 s of the handoff"
                );
                Window {
                    signal,
                    serving,
                    end: Instant::now(),
                }
            }
            Target::Reference { .. } => {
                kill(old, Signal::SIGTERM).expect("SIGTERM the reference");
                assert!(
                    wait_exit(old, Duration::from_secs(15)),
                    "the reference did not stop within 15 s"
                );
                // Reaped by pid in `wait_exit`, not through `Child`.
                self.pid = Pid::from_raw(self.target.spawn(self.port).id() as i32);
                self.await_new_pid(old, signal);
                let serving = Instant::now();
                Window {
                    signal,
                    serving,
                    end: serving,
                }
            }
        }
    }

    /// Polls `/healthz` until a process other than `old` answers; its pid.
    fn await_new_pid(&self, old: Pid, since: Instant) -> Pid {
        loop {
            if let Some(pid) = healthz_pid(self.port)
                && pid != old.as_raw() as u32
            {
                return Pid::from_raw(pid as i32);
            }
            assert!(
                since.elapsed() < Duration::from_secs(15),
                "{}: no new process served within 15 s of the restart",
                self.target.name()
            );
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGTERM);
        if !wait_exit(self.pid, Duration::from_secs(5)) {
            let _ = kill(self.pid, Signal::SIGKILL);
            wait_exit(self.pid, Duration::from_secs(5));
        }
    }
}

/// Waits for `pid` to exit (reaping it when it is our child); false on timeout.
fn wait_exit(pid: Pid, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(_) => return true,
            // Not (yet) our child: it is gone when it cannot be signalled.
            Err(_) => {
                if kill(pid, None) == Err(Errno::ESRCH) {
                    return true;
                }
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    false
}
