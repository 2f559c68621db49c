//! Sessions under restart (issue 19): [`IDLE`] idle WebSocket sessions (past `connect`)
//! and [`BUSY`] busy ones, each sending a `health` request with a unique id every
//! [`PACE`], while the server restarts R times — the gateway by SIGHUP (its sessions
//! move to the new process), the Node reference by stop + start (it closes every
//! session).
//!
//! Every session behaves as a client that wants to stay: told `restarted`, it goes on;
//! closed, it reconnects at once (retrying every [`RETRY`]) and sends `connect` again,
//! and a busy one resends, with their original ids and send times, the requests its
//! closed connection had not answered (each counted lost once). Per restart: sessions
//! closed, sessions told `restarted`, requests lost or answered twice, the signal to the
//! last session back (told `restarted`, or connected again), the longest and p99 request
//! wait (send to answer) of the requests that overlapped the restart, and the time from
//! the new process serving to the old one being gone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Client};
use crate::restart_load::{Server, Window};
use crate::stats::percentile;
use crate::target::{Target, free_port};

/// Idle sessions: connected, then silent.
pub const IDLE: usize = 1000;
/// Busy sessions: one `health` request every [`PACE`] each.
pub const BUSY: usize = 100;
/// The period of each busy session's requests.
pub const PACE: Duration = Duration::from_millis(10);
/// Pause before retrying a refused reconnect.
const RETRY: Duration = Duration::from_millis(2);
/// Load before the first restart and once every session is back after each one.
const SETTLE: Duration = Duration::from_millis(500);
/// Requests still in flight this long after a restart's window count as during it.
const TAIL: Duration = Duration::from_millis(20);
/// How long before a restart's signal its steady yardstick window ends.
const STEADY_BEFORE: Duration = Duration::from_millis(100);
/// How long every session has to be back after a restart, and requests to be answered
/// at the end.
const DEADLINE: Duration = Duration::from_secs(20);

/// Something a session saw, stamped with the restart it belongs to (0: before the first).
#[derive(Debug, Clone, Copy)]
enum Seen {
    /// The server closed the session (close frame, reset, or end of stream).
    Closed,
    /// A `restarted` event arrived.
    Restarted,
    /// Connected again (and past `connect`) after a close.
    Reconnected,
    /// A request's connection closed before its answer.
    Lost,
    /// An answer for an id already answered (or never sent).
    Duplicate,
}

/// What all sessions record, shared.
struct Log {
    /// The restart under way: set just before each signal.
    epoch: AtomicUsize,
    /// Sessions connected right now.
    live: AtomicUsize,
    stop: AtomicBool,
    seen: Mutex<Vec<(usize, Seen, Instant)>>,
    /// Every answered request: when it was (first) sent, and its wait.
    waits: Mutex<Vec<(Instant, Duration)>>,
}

impl Log {
    fn note(&self, what: Seen) {
        let epoch = self.epoch.load(Ordering::SeqCst);
        if let Ok(mut seen) = self.seen.lock() {
            seen.push((epoch, what, Instant::now()));
        }
    }
}

/// One restart's figures.
#[derive(Debug, Clone, Default)]
pub struct SessionRestart {
    pub closed: usize,
    pub told_restarted: usize,
    pub lost: usize,
    pub duplicated: usize,
    /// Signal to the last session told `restarted` (none told: `None`).
    pub last_restarted: Option<Duration>,
    /// Signal to the last session back: told `restarted` or connected again.
    pub last_back: Duration,
    /// Longest request wait of the requests that overlapped the restart.
    pub longest_wait: Duration,
    /// p99 of the waits of the requests that overlapped the restart.
    pub p99_wait: Duration,
    /// The same p99 in a window as long, ending [`STEADY_BEFORE`] before the signal:
    /// the same load, no restart (the yardstick: what the machine and this client
    /// cost on their own).
    pub steady_p99_wait: Duration,
    /// Signal to the first `/healthz` answered by the new process.
    pub serving: Duration,
    /// The new process serving to the old one gone (zero when it was gone first).
    pub old_gone: Duration,
}

/// A sessions-under-restart run of one target.
#[derive(Debug, Clone)]
pub struct SessionRun {
    pub restarts: Vec<SessionRestart>,
    /// Requests still unanswered at the end (counted lost, in no restart).
    pub unanswered_at_end: usize,
    /// Requests answered in all.
    pub answered: usize,
}

/// Lets this process hold a socket per session (and then some): soft open-files limit
/// raised to the hard one.
fn raise_open_files() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        eprintln!("gateway-bench: cannot raise the open-files limit ({soft}): {error}");
    }
}

pub async fn measure(target: &Target, restarts: usize) -> SessionRun {
    raise_open_files();
    let port = free_port();
    let mut server = Server::start(target, port);
    let log = Arc::new(Log {
        epoch: AtomicUsize::new(0),
        live: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        seen: Mutex::new(Vec::new()),
        waits: Mutex::new(Vec::new()),
    });
    let idle: Vec<_> = client::many(port, IDLE)
        .await
        .into_iter()
        .map(|session| tokio::spawn(idle_session(port, session, Arc::clone(&log))))
        .collect();
    let busy: Vec<_> = client::many(port, BUSY)
        .await
        .into_iter()
        .enumerate()
        .map(|(i, session)| {
            // Spread over one period, not all at once.
            let first = PACE * u32::try_from(i).unwrap_or(0) / u32::try_from(BUSY).unwrap_or(1);
            tokio::spawn(busy_session(port, i, session, first, Arc::clone(&log)))
        })
        .collect();
    all_back(&log).await;

    let mut windows: Vec<Window> = Vec::with_capacity(restarts);
    for i in 0..restarts {
        tokio::time::sleep(SETTLE).await;
        log.epoch.store(i + 1, Ordering::SeqCst);
        let (returned, window) = tokio::task::spawn_blocking(move || {
            let window = server.restart();
            (server, window)
        })
        .await
        .expect("restart driver");
        server = returned;
        windows.push(window);
        // Every session back, and its restarted event or reconnect seen, before the next.
        all_back(&log).await;
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline && back_in(&log, i + 1) < IDLE + BUSY {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    tokio::time::sleep(SETTLE).await;
    log.stop.store(true, Ordering::SeqCst);
    let mut unanswered_at_end = 0;
    for task in busy {
        unanswered_at_end += task.await.expect("busy session");
    }
    for task in idle {
        task.abort();
    }
    drop(server);

    let seen = log.seen.lock().map(|s| s.clone()).unwrap_or_default();
    let waits = log.waits.lock().map(|w| w.clone()).unwrap_or_default();
    let mut figures: Vec<SessionRestart> = windows
        .iter()
        .map(|w| SessionRestart {
            serving: w.serving - w.signal,
            old_gone: w.end.saturating_duration_since(w.serving),
            ..SessionRestart::default()
        })
        .collect();
    for &(epoch, what, at) in &seen {
        let Some(restart) = epoch.checked_sub(1).and_then(|i| figures.get_mut(i)) else {
            continue;
        };
        let since = at.saturating_duration_since(windows[epoch - 1].signal);
        match what {
            Seen::Closed => restart.closed += 1,
            Seen::Lost => restart.lost += 1,
            Seen::Duplicate => restart.duplicated += 1,
            Seen::Restarted => {
                restart.told_restarted += 1;
                restart.last_restarted =
                    Some(restart.last_restarted.unwrap_or_default().max(since));
                restart.last_back = restart.last_back.max(since);
            }
            Seen::Reconnected => restart.last_back = restart.last_back.max(since),
        }
    }
    for (restart, window) in figures.iter_mut().zip(&windows) {
        let end = window.end.max(window.signal + restart.last_back) + TAIL;
        let during: Vec<Duration> = waits
            .iter()
            .filter(|(sent, wait)| *sent <= end && *sent + *wait >= window.signal)
            .map(|(_, wait)| *wait)
            .collect();
        restart.longest_wait = during.iter().copied().max().unwrap_or_default();
        restart.p99_wait = percentile(&during, 0.99);
        let steady_end = window.signal - STEADY_BEFORE;
        let steady_start = steady_end - (end - window.signal).min(SETTLE - STEADY_BEFORE);
        let steady: Vec<Duration> = waits
            .iter()
            .filter(|(sent, wait)| *sent <= steady_end && *sent + *wait >= steady_start)
            .map(|(_, wait)| *wait)
            .collect();
        restart.steady_p99_wait = percentile(&steady, 0.99);
    }
    SessionRun {
        restarts: figures,
        unanswered_at_end,
        answered: waits.len(),
    }
}

/// Sessions told `restarted` or connected again in restart `epoch`.
fn back_in(log: &Log, epoch: usize) -> usize {
    log.seen.lock().map_or(0, |seen| {
        seen.iter()
            .filter(|(e, what, _)| {
                *e == epoch && matches!(what, Seen::Restarted | Seen::Reconnected)
            })
            .count()
    })
}

/// Waits until every session is connected (at most [`DEADLINE`]).
async fn all_back(log: &Log) {
    let deadline = Instant::now() + DEADLINE;
    while log.live.load(Ordering::SeqCst) < IDLE + BUSY && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Answers the server's close and lets the connection go (a server waits for its
/// connections before it exits), then connects again, retrying until it works (or the
/// run stops).
async fn reconnect(mut closed: Client, port: u16, log: &Log) -> Option<Client> {
    let _ = tokio::time::timeout(Duration::from_millis(100), closed.close(None)).await;
    drop(closed);
    let deadline = Instant::now() + DEADLINE;
    while !log.stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        if let Ok(session) = client::try_connected(port).await {
            log.live.fetch_add(1, Ordering::SeqCst);
            log.note(Seen::Reconnected);
            return Some(session);
        }
        tokio::time::sleep(RETRY).await;
    }
    None
}

/// What an incoming frame means to a session.
enum Frame {
    Restarted,
    /// An answer to the request with this id.
    Answer(String),
    Other,
    Closed,
}

fn classify(message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> Frame {
    match message {
        Some(Ok(Message::Text(text))) => {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
                return Frame::Other;
            };
            match value["type"].as_str() {
                Some("event") if value["event"] == "restarted" => Frame::Restarted,
                Some("res") => value["id"]
                    .as_str()
                    .map_or(Frame::Other, |id| Frame::Answer(id.to_owned())),
                _ => Frame::Other,
            }
        }
        Some(Ok(Message::Close(_)) | Err(_)) | None => Frame::Closed,
        Some(Ok(_)) => Frame::Other,
    }
}

/// An idle session: reads until the run stops, reconnecting after a close.
async fn idle_session(port: u16, mut session: Client, log: Arc<Log>) {
    log.live.fetch_add(1, Ordering::SeqCst);
    loop {
        match classify(session.next().await) {
            Frame::Restarted => log.note(Seen::Restarted),
            Frame::Closed => {
                log.live.fetch_sub(1, Ordering::SeqCst);
                if log.stop.load(Ordering::SeqCst) {
                    return;
                }
                log.note(Seen::Closed);
                match reconnect(session, port, &log).await {
                    Some(again) => session = again,
                    None => return,
                }
            }
            Frame::Answer(_) | Frame::Other => {}
        }
    }
}

/// A busy session: a `health` request every [`PACE`]; returns how many requests were
/// still unanswered when it gave up waiting at the end.
async fn busy_session(
    port: u16,
    index: usize,
    mut session: Client,
    first: Duration,
    log: Arc<Log>,
) -> usize {
    log.live.fetch_add(1, Ordering::SeqCst);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + first, PACE);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next = 0u64;
    // Sent, not yet answered: id → first send.
    let mut pending: HashMap<String, Instant> = HashMap::new();
    let mut stopping: Option<Instant> = None;
    loop {
        if stopping.is_none() && log.stop.load(Ordering::SeqCst) {
            stopping = Some(Instant::now());
        }
        if let Some(since) = stopping
            && (pending.is_empty() || since.elapsed() > DEADLINE / 4)
        {
            let _ = session.close(None).await;
            return pending.len();
        }
        let frame = tokio::select! {
            _ = ticks.tick(), if stopping.is_none() => {
                let id = format!("b{index}-{next}");
                next += 1;
                pending.insert(id.clone(), Instant::now());
                let request = format!(r#"{{"type":"req","id":"{id}","method":"health","params":{{}}}}"#);
                if session.send(Message::text(request)).await.is_ok() {
                    continue;
                }
                Frame::Closed
            }
            () = tokio::time::sleep(Duration::from_millis(50)), if stopping.is_some() => continue,
            message = session.next() => classify(message),
        };
        match frame {
            Frame::Restarted => log.note(Seen::Restarted),
            Frame::Answer(id) => match pending.remove(&id) {
                Some(sent) => {
                    if let Ok(mut waits) = log.waits.lock() {
                        waits.push((sent, sent.elapsed()));
                    }
                }
                None if id != "c" => log.note(Seen::Duplicate),
                None => {}
            },
            Frame::Other => {}
            Frame::Closed => {
                log.live.fetch_sub(1, Ordering::SeqCst);
                log.note(Seen::Closed);
                for _ in &pending {
                    log.note(Seen::Lost);
                }
                let Some(again) = reconnect(session, port, &log).await else {
                    return pending.len();
                };
                session = again;
                // Resent with their ids and first send times: their wait includes the
                // reconnect, as a client that wants its answer sees it.
                for id in pending.keys() {
                    let request =
                        format!(r#"{{"type":"req","id":"{id}","method":"health","params":{{}}}}"#);
                    let _ = session.send(Message::text(request)).await;
                }
            }
        }
    }
}
