//! Restarting without letting go (docs/reference.md#restart), on the real binary: the
//! handoff under load, its goodbye to WebSocket clients, an upgrade on disk, every
//! way a successor can fail, concurrent requests, a predecessor killed mid-way, the
//! lock file and `status` afterwards, systemd's notifications and socket activation.

use std::os::unix::net::UnixDatagram;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::handoff::*;
use crate::support::etcd::Etcd;
use crate::support::*;
use clients::{Load, Session};
use nix::sys::signal::Signal;

/// Long enough for a loaded machine, short enough that a stuck drain fails the test
/// rather than the suite's patience.
const SHUTDOWN_TIMEOUT: &[&str] = &["--shutdown-timeout", "5"];

/// The new pid in `restarted gateway on ws://HOST:PORT: pid OLD -> pid NEW`.
fn reported_new_pid(stdout: &str) -> u32 {
    stdout
        .trim_end()
        .rsplit_once("pid ")
        .and_then(|(_, pid)| pid.parse().ok())
        .unwrap_or_else(|| panic!("no new pid in {stdout:?}"))
}

fn restarted_line(port: u16, old: u32, new: u32) -> String {
    format!("restarted gateway on ws://127.0.0.1:{port}: pid {old} -> pid {new}\n")
}

#[test]
fn restarts_under_load_refuse_reset_or_fail_nothing_and_never_let_go_of_port_or_lock() {
    // Eight (four by SIGHUP, four by `gateway restart`) keep it under the suite's 10 s
    // on 2 cores, beside the rest; `gateway-bench` runs 100.
    const RESTARTS: usize = 8;
    let port = free_port();
    let mut lineage = Lineage::start(port, SHUTDOWN_TIMEOUT);
    let racer = Racer::start(port, &lineage.lock_path());
    let load = Load::start(
        port,
        &[
            clients::healthz_round,
            clients::healthz_round,
            clients::websocket_round,
            clients::websocket_round,
        ],
    );
    load.wait_rounds(20);
    let mut pids = vec![lineage.first.id()];
    for round in 0..RESTARTS {
        let old = *pids.last().unwrap();
        let new = if round % 2 == 0 {
            lineage.signal(old, Signal::SIGHUP);
            lineage.wait_serving("a new pid after SIGHUP", |pid| pid != old)
        } else {
            let (code, stdout, stderr) = lineage.restart();
            assert_eq!(code, 0, "restart {round}: {stdout}{stderr}");
            let new = reported_new_pid(&stdout);
            assert_eq!(stdout, restarted_line(port, old, new));
            assert_eq!(lineage.serving_pid(), Some(new));
            new
        };
        assert!(!pids.contains(&new), "pid {new} served twice: {pids:?}");
        assert_eq!(
            lineage.wait_exit_code(old),
            0,
            "pid {old} after handing over; log:\n{}",
            lineage.log()
        );
        pids.push(new);
        // Traffic reaches each new process before the next restart.
        load.wait_rounds(10);
    }
    let tally = load.finish();
    let raced = racer.finish();
    eprintln!("{RESTARTS} restarts under load: {tally:?}; racer: {raced:?}");
    assert_eq!(
        (tally.refused, tally.reset, tally.failed),
        (0, 0, 0),
        "{tally:?}"
    );
    assert!(tally.requests > 0 && tally.sessions > 0, "{tally:?}");
    assert_eq!(raced.wins(), 0, "{raced:?}");
    assert!(raced.attempts > RESTARTS as u64, "{raced:?}");
}

#[test]
fn a_connection_accepted_just_before_the_handoff_still_gets_its_request_answered() {
    let port = free_port();
    let mut lineage = Lineage::start(port, SHUTDOWN_TIMEOUT);
    let old = lineage.first.id();
    let mut early: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let client_ports: Vec<u16> = early
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect();
    wait_until("the old process to accept the early connections", || {
        client_ports
            .iter()
            .all(|client| process_holds_connection(old, port, *client))
    });
    let (code, stdout, stderr) = lineage.restart();
    assert_eq!(code, 0, "{stdout}{stderr}");
    for stream in &mut early {
        let request =
            format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let _ = std::io::Write::write_all(stream, request.as_bytes());
        let mut answer = String::new();
        let _ = std::io::Read::read_to_string(stream, &mut answer);
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
    }
    assert_eq!(lineage.wait_exit_code(old), 0);
}

#[test]
fn websocket_sessions_move_to_the_new_process_are_told_restarted_and_readyz_stays_200() {
    let port = free_port();
    let mut lineage = Lineage::start(port, SHUTDOWN_TIMEOUT);
    let old = lineage.first.id();
    let mut sessions: Vec<Session> = (0..3).map(|_| Session::connect(port)).collect();
    let readyz = Load::start(port, &[clients::readyz_round]);
    readyz.wait_rounds(5);

    let (code, stdout, stderr) = lineage.restart();
    assert_eq!(code, 0, "{stdout}{stderr}");
    let new = reported_new_pid(&stdout);
    for session in &mut sessions {
        let event: serde_json::Value = serde_json::from_str(&session.next_text()).unwrap();
        assert_eq!(event["event"], "restarted", "{event}");
        assert_eq!(event["payload"]["pid"], new, "{event}");
        assert_eq!(event["payload"]["previousPid"], old, "{event}");
        assert_eq!(
            event["payload"]["version"],
            env!("CARGO_PKG_VERSION"),
            "{event}"
        );
        assert_eq!(event["seq"], 1, "{event}");
        // Still connected, now to the new process: no new `connect`.
        let status = session.request("s", "status");
        assert_eq!(status["ok"], true, "{status}");
        session.close();
    }
    assert_eq!(lineage.wait_exit_code(old), 0);
    readyz.wait_rounds(5);
    let tally = readyz.finish();
    assert_eq!(
        (tally.refused, tally.reset, tally.failed),
        (0, 0, 0),
        "{tally:?}"
    );
}

#[test]
fn an_executable_replaced_on_disk_is_what_the_restart_runs() {
    let port = free_port();
    let copy = ExecutableCopy::new();
    let mut lineage = Lineage::start_from(&copy.path(), port, &[], |_| {});
    let old = lineage.first.id();
    let marker = copy.dir().join("upgraded");
    copy.replace_with_script(&format!(
        "touch {}\n{}",
        shell_quote(marker.as_os_str()),
        exec_real_gateway()
    ));

    let (code, stdout, stderr) = lineage.restart();
    assert_eq!(code, 0, "{stdout}{stderr}");
    let new = reported_new_pid(&stdout);
    assert_eq!(stdout, restarted_line(port, old, new));
    assert!(marker.exists(), "the replaced file did not run");
    assert_eq!(lineage.serving_pid(), Some(new));
    assert_eq!(lineage.wait_exit_code(old), 0);
}

#[test]
fn a_replacement_that_exits_at_once_fails_the_restart_with_its_stderr_and_the_old_gateway_keeps_everything()
 {
    let port = free_port();
    let copy = ExecutableCopy::new();
    let mut lineage = Lineage::start_from(&copy.path(), port, &[], |_| {});
    let old = lineage.first.id();
    let racer = Racer::start(port, &lineage.lock_path());
    copy.replace_with_script("echo 'boom: bad config' >&2\nexit 3");

    let (code, stdout, stderr) = lineage.restart();
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.starts_with("restart failed:"), "{stderr}");
    assert!(stderr.contains("boom: bad config"), "{stderr}");
    assert_eq!(lineage.serving_pid(), Some(old));
    lineage.wait_log("restart failed:", 1);
    racer.wait_attempts(10);
    let raced = racer.finish();
    assert_eq!(raced.wins(), 0, "{raced:?}");
    assert!(lineage.first.is_running());
}

#[test]
fn a_sighup_to_a_gateway_whose_replacement_exits_at_once_leaves_it_serving() {
    let port = free_port();
    let copy = ExecutableCopy::new();
    let mut lineage = Lineage::start_from(&copy.path(), port, &[], |_| {});
    let old = lineage.first.id();
    let racer = Racer::start(port, &lineage.lock_path());
    copy.replace_with_script("echo 'boom: bad config' >&2\nexit 3");

    lineage.signal(old, Signal::SIGHUP);
    lineage.wait_log("restart failed:", 1);
    assert!(
        lineage.log().contains("boom: bad config"),
        "{}",
        lineage.log()
    );
    assert_eq!(lineage.serving_pid(), Some(old));
    racer.wait_attempts(10);
    let raced = racer.finish();
    assert_eq!(raced.wins(), 0, "{raced:?}");
    assert!(lineage.first.is_running());
}

#[test]
fn a_successor_that_never_answers_is_killed_after_the_handoff_timeout_and_the_old_gateway_serves_on()
 {
    let port = free_port();
    let copy = ExecutableCopy::new();
    // The deadline is 10 s by default (the in-process supervisor tests cover that
    // value on paused time); 2 s here shows the same kill on real processes.
    let lineage = Lineage::start_from(&copy.path(), port, &["--handoff-timeout", "2"], |_| {});
    let old = lineage.first.id();
    copy.replace_with_script("exec sleep 60");

    let began = Instant::now();
    let (code, stdout, stderr) = lineage.restart();
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(began.elapsed() >= Duration::from_secs(2));
    assert!(stderr.starts_with("restart failed:"), "{stderr}");
    assert!(stderr.contains("did not serve within 2s"), "{stderr}");
    let sleeper: u32 = stderr
        .split_once("(pid ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .and_then(|(pid, _)| pid.parse().ok())
        .unwrap_or_else(|| panic!("no successor pid in {stderr}"));
    assert!(
        !process_exists(sleeper),
        "the silent successor is still there"
    );
    assert_eq!(lineage.serving_pid(), Some(old));
}

#[test]
fn of_two_restart_requests_at_once_one_hands_over_the_other_gets_75_and_sighup_is_ignored() {
    let port = free_port();
    let copy = ExecutableCopy::new();
    let mut lineage = Lineage::start_from(&copy.path(), port, &[], |_| {});
    let old = lineage.first.id();
    copy.replace_with_script(&format!("sleep 1\n{}", exec_real_gateway()));

    let first = lineage.restart_command().spawn().expect("spawn restart");
    let second = lineage.restart_command().spawn().expect("spawn restart");
    lineage.wait_log("started the new process", 1);
    lineage.signal(old, Signal::SIGHUP);
    lineage.wait_log("SIGHUP ignored", 1);
    let mut results = [finish(first), finish(second)];
    results.sort_by_key(|(code, _, _)| *code);
    let [(won, stdout, _), (lost, _, refusal)] = &results;
    assert_eq!((*won, *lost), (0, 75), "{results:?}");
    assert_eq!(first_line(refusal), "a restart is already in progress");
    let new = reported_new_pid(stdout);
    assert_eq!(stdout, &restarted_line(port, old, new));
    assert_eq!(lineage.wait_exit_code(old), 0);
    assert_eq!(lineage.serving_pid(), Some(new));
    assert_eq!(
        lineage.log().matches("started the new process").count(),
        1,
        "{}",
        lineage.log()
    );
}

#[test]
fn a_gateway_killed_mid_handoff_leaves_its_successor_serving_alone_and_the_port_never_free() {
    let port = free_port();
    let copy = ExecutableCopy::new();
    let mut lineage = Lineage::start_from(&copy.path(), port, &[], |_| {});
    let old = lineage.first.id();
    let racer = Racer::start(port, &lineage.lock_path());
    copy.replace_with_script(&format!("sleep 1\n{}", exec_real_gateway()));

    lineage.signal(old, Signal::SIGHUP);
    lineage.wait_log("started the new process", 1);
    lineage.signal(old, Signal::SIGKILL);
    let status = lineage.first.wait().expect("reap the killed gateway");
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
    // Nobody accepts until the successor serves: the connection waits, and is answered.
    let answer = http_get(port, "/healthz").expect("an answer to a connection made meanwhile");
    assert_eq!(answer.status, 200);
    let new = answer.json()["pid"].as_u64().unwrap() as u32;
    assert_ne!(new, old);
    assert_eq!(lineage.serving_pid(), Some(new));
    // Its log reaches the service's log although the pipe through the old one broke.
    lineage.wait_log(
        &format!(
            "gateway listening on ws://127.0.0.1:{port} (pid {new}, taken over from pid {old})"
        ),
        1,
    );
    let raced = racer.finish();
    assert_eq!(raced.wins(), 0, "{raced:?}");
}

#[test]
fn restart_with_nothing_running_exits_3() {
    let port = free_port().to_string();
    let (code, stdout, stderr) = run_cli(&["restart", "--port", &port]);
    assert_eq!(code, 3, "{stdout}{stderr}");
}

#[test]
fn restart_against_a_foreign_listener_exits_4_and_leaves_it_alone() {
    let port = free_port();
    let mut foreign = ForeignListener::spawn(port);
    let (code, stdout, stderr) = run_cli(&["restart", "--port", &port.to_string()]);
    assert_eq!(code, 4, "{stdout}{stderr}");
    assert!(foreign.is_running());
}

#[test]
fn after_a_restart_the_lock_file_and_status_name_the_new_pid() {
    let port = free_port();
    let lineage = Lineage::start(port, &[]);
    let (code, stdout, stderr) = lineage.restart();
    assert_eq!(code, 0, "{stdout}{stderr}");
    let new = reported_new_pid(&stdout);

    let record = std::fs::read_to_string(lineage.lock_path()).unwrap();
    assert_eq!(
        record.lines().take(3).collect::<Vec<_>>(),
        [
            format!("pid={new}"),
            format!("url=ws://127.0.0.1:{port}"),
            format!("port={port}")
        ],
        "{record}"
    );
    let port_text = port.to_string();
    let (code, stdout, _) = finish(
        gateway_command(
            &["status", "--port", &port_text, "--json"],
            lineage.state_dir(),
        )
        .spawn()
        .unwrap(),
    );
    assert_eq!(code, 0, "{stdout}");
    let status: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(status["state"], "running");
    assert_eq!(status["pid"], new);
}

/// A service manager's end of `NOTIFY_SOCKET`.
fn notify_socket(dir: &TempDir) -> (UnixDatagram, std::path::PathBuf) {
    let path = dir.path().join("notify.sock");
    (UnixDatagram::bind(&path).unwrap(), path)
}

#[test]
fn systemd_hears_reloading_then_the_new_main_pid_and_ready_on_a_sighup_restart() {
    let dir = TempDir::new("notify");
    let (manager, socket_path) = notify_socket(&dir);
    let port = free_port();
    let lineage = Lineage::start_from(
        std::path::Path::new(gateway_bin()),
        port,
        SHUTDOWN_TIMEOUT,
        |c| {
            c.env("NOTIFY_SOCKET", &socket_path);
        },
    );
    let old = lineage.first.id();
    assert_eq!(next_datagram(&manager).unwrap(), "READY=1\n");

    lineage.signal(old, Signal::SIGHUP);
    let reloading = next_datagram(&manager).unwrap();
    let lines: Vec<&str> = reloading.lines().collect();
    assert_eq!(lines.first().copied(), Some("RELOADING=1"), "{reloading}");
    let usec = lines
        .iter()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(usec.parse::<u64>().is_ok_and(|us| us > 0), "{reloading}");

    let handed_over = next_datagram(&manager).unwrap();
    let new = lineage.wait_serving("the new process", |pid| pid != old);
    assert_eq!(
        handed_over.lines().collect::<Vec<_>>(),
        [format!("MAINPID={new}"), "READY=1".to_owned()],
        "{handed_over}"
    );
}

#[test]
fn systemd_hears_ready_again_after_reloading_when_a_restart_fails() {
    let dir = TempDir::new("notify");
    let (manager, socket_path) = notify_socket(&dir);
    let port = free_port();
    let copy = ExecutableCopy::new();
    let lineage = Lineage::start_from(&copy.path(), port, &[], |c| {
        c.env("NOTIFY_SOCKET", &socket_path);
    });
    let old = lineage.first.id();
    assert_eq!(next_datagram(&manager).unwrap(), "READY=1\n");
    copy.replace_with_script("exit 3");

    lineage.signal(old, Signal::SIGHUP);
    let reloading = next_datagram(&manager).unwrap();
    assert_eq!(reloading.lines().next(), Some("RELOADING=1"), "{reloading}");
    assert_eq!(next_datagram(&manager).unwrap(), "READY=1\n");
    lineage.wait_log("restart failed:", 1);
    assert_eq!(lineage.serving_pid(), Some(old));
}

#[test]
fn a_socket_passed_by_socket_activation_is_served_without_a_bind_of_its_own() {
    let port = free_port();
    let state = TempDir::new("activation");
    // Binds and listens like a .socket unit, then becomes the gateway (same pid) with
    // the socket as descriptor 3.
    let launcher = format!(
        "import os, socket, sys\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('127.0.0.1', {port}))\n\
         s.listen(128)\n\
         if s.fileno() != 3:\n    os.dup2(s.fileno(), 3)\n\
         os.set_inheritable(3, True)\n\
         os.environ['LISTEN_FDS'] = '1'\n\
         os.environ['LISTEN_PID'] = str(os.getpid())\n\
         os.execv(sys.argv[1], sys.argv[1:])\n"
    );
    let mut command = Command::new("python3");
    command
        .args(["-c", &launcher, gateway_bin(), "--port", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    clean_environment(&mut command, state.path());
    let mut gateway = KilledOnDrop(command.spawn().expect("spawn python3"));
    let pid = gateway.id();

    let deadline = Instant::now() + DEADLINE;
    let health = loop {
        if let Some(response) = http_get(port, "/healthz") {
            break response;
        }
        assert!(gateway.is_running(), "the socket-activated gateway exited");
        assert!(Instant::now() < deadline, "never served");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["pid"], pid);
    // It holds what it was given and nothing more: no [::1] companion of its own.
    assert!(
        std::net::TcpListener::bind(std::net::SocketAddr::from((
            std::net::Ipv6Addr::LOCALHOST,
            port
        )))
        .is_ok()
    );
}

mod clients {
    //! Blocking clients that loop and count what happened to each attempt, telling a
    //! refused or reset connection from any other failure, and the restart goodbye
    //! from both.

    use std::io::{self, ErrorKind, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;
    use std::time::Duration;

    use serde_json::{Value, json};
    use tokio_tungstenite::tungstenite::handshake::HandshakeError;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

    use crate::support::{DEADLINE, wait_until};

    /// What a WebSocket client of the old process gets when it hands over.
    pub const RESTARTING_EVENT: &str = r#"{"type":"event","event":"shutdown","payload":{"reason":"gateway restarting","restartExpectedMs":0}}"#;

    /// How long one attempt may wait for an answer before it counts as failed.
    const PATIENCE: Duration = Duration::from_secs(5);

    /// What became of one attempt.
    #[derive(Debug)]
    pub enum Outcome {
        /// An HTTP request answered 200 with JSON.
        Request,
        /// A WebSocket session: upgrade, connect, hello-ok, health, its answer, close.
        Session,
        /// A session that got the restart goodbye (event, then close 1012) instead.
        Goodbye,
        Refused(String),
        Reset(String),
        Failed(String),
    }

    /// The counts of a load run.
    #[derive(Debug, Default, Clone)]
    pub struct Tally {
        pub requests: u64,
        pub sessions: u64,
        pub goodbyes: u64,
        pub refused: u64,
        pub reset: u64,
        pub failed: u64,
        /// The first few refused, reset or failed attempts, for the failure message.
        pub examples: Vec<String>,
    }

    impl Tally {
        fn add(&mut self, outcome: Outcome) {
            let example = match outcome {
                Outcome::Request => return self.requests += 1,
                Outcome::Session => return self.sessions += 1,
                Outcome::Goodbye => return self.goodbyes += 1,
                Outcome::Refused(what) => {
                    self.refused += 1;
                    what
                }
                Outcome::Reset(what) => {
                    self.reset += 1;
                    what
                }
                Outcome::Failed(what) => {
                    self.failed += 1;
                    what
                }
            };
            if self.examples.len() < 10 {
                self.examples.push(example);
            }
        }

        fn rounds(&self) -> u64 {
            self.requests + self.sessions + self.goodbyes + self.refused + self.reset + self.failed
        }
    }

    /// One attempt against the gateway on a port.
    pub type Round = fn(u16) -> Outcome;

    /// Threads, one per round kind given, each looping its round until finished.
    pub struct Load {
        stop: Arc<AtomicBool>,
        tally: Arc<Mutex<Tally>>,
        rounds: Arc<AtomicU64>,
        threads: Vec<JoinHandle<()>>,
    }

    impl Load {
        pub fn start(port: u16, rounds: &[Round]) -> Self {
            let stop = Arc::new(AtomicBool::new(false));
            let tally = Arc::new(Mutex::new(Tally::default()));
            let counter = Arc::new(AtomicU64::new(0));
            let threads = rounds
                .iter()
                .map(|&round| {
                    let (stop, tally, counter) =
                        (Arc::clone(&stop), Arc::clone(&tally), Arc::clone(&counter));
                    std::thread::spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            let outcome = round(port);
                            tally.lock().unwrap().add(outcome);
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            Self {
                stop,
                tally,
                rounds: counter,
                threads,
            }
        }

        /// Waits until `more` more attempts have finished.
        pub fn wait_rounds(&self, more: u64) {
            let target = self.rounds.load(Ordering::Relaxed) + more;
            wait_until("client rounds", || {
                self.rounds.load(Ordering::Relaxed) >= target
            });
        }

        pub fn finish(mut self) -> Tally {
            self.stop.store(true, Ordering::Relaxed);
            for thread in self.threads.drain(..) {
                thread.join().expect("client thread");
            }
            let tally = self.tally.lock().unwrap().clone();
            debug_assert_eq!(tally.rounds(), self.rounds.load(Ordering::Relaxed));
            tally
        }
    }

    impl Drop for Load {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    fn from_io(stage: &str, error: &io::Error) -> Outcome {
        let what = format!("{stage}: {error}");
        match error.kind() {
            ErrorKind::ConnectionRefused => Outcome::Refused(what),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
                Outcome::Reset(what)
            }
            _ => Outcome::Failed(what),
        }
    }

    fn from_websocket(stage: &str, error: tungstenite::Error) -> Outcome {
        match error {
            tungstenite::Error::Io(error) => from_io(stage, &error),
            other => Outcome::Failed(format!("{stage}: {other}")),
        }
    }

    fn connect(port: u16) -> Result<TcpStream, Outcome> {
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let stream =
            TcpStream::connect_timeout(&address, PATIENCE).map_err(|e| from_io("connect", &e))?;
        stream
            .set_read_timeout(Some(PATIENCE))
            .and_then(|()| stream.set_write_timeout(Some(PATIENCE)))
            .map_err(|e| from_io("socket options", &e))?;
        Ok(stream)
    }

    /// A fresh connection, `GET path` with `Connection: close`, a 200 JSON answer.
    fn http_round(port: u16, path: &str) -> Outcome {
        let mut stream = match connect(port) {
            Ok(stream) => stream,
            Err(outcome) => return outcome,
        };
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        if let Err(error) = stream.write_all(request.as_bytes()) {
            return from_io("send", &error);
        }
        let mut bytes = Vec::new();
        if let Err(error) = stream.read_to_end(&mut bytes) {
            return from_io("read", &error);
        }
        let text = String::from_utf8_lossy(&bytes);
        let answered = text.starts_with("HTTP/1.1 200 ")
            && text
                .split_once("\r\n\r\n")
                .is_some_and(|(_, body)| serde_json::from_str::<Value>(body).is_ok());
        if answered {
            Outcome::Request
        } else {
            Outcome::Failed(format!("GET {path}: {text:?}"))
        }
    }

    pub fn healthz_round(port: u16) -> Outcome {
        http_round(port, "/healthz")
    }

    pub fn readyz_round(port: u16) -> Outcome {
        http_round(port, "/readyz")
    }

    fn connect_frame() -> String {
        connect_frame_with(None)
    }

    fn connect_frame_with(token: Option<&str>) -> String {
        let mut frame = json!({
            "type": "req", "id": "hello", "method": "connect",
            "params": {"minProtocol": 1, "maxProtocol": 1, "client": {"name": "restart-test", "version": "1.0.0"}}
        });
        if let Some(token) = token {
            frame["params"]["auth"] = json!({ "token": token });
        }
        frame.to_string()
    }

    /// A client's text frame, masked (with a zero key, which leaves the payload as is).
    pub fn masked_text_frame(text: &str) -> Vec<u8> {
        let mut frame = vec![0x81];
        let len = text.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(text.as_bytes());
        frame
    }

    /// A fresh WebSocket: connect → hello-ok → `health` → its answer → close.
    pub fn websocket_round(port: u16) -> Outcome {
        let stream = match connect(port) {
            Ok(stream) => stream,
            Err(outcome) => return outcome,
        };
        let mut ws = match tungstenite::client::client(format!("ws://127.0.0.1:{port}/"), stream) {
            Ok((ws, _)) => ws,
            Err(HandshakeError::Failure(error)) => return from_websocket("upgrade", error),
            Err(HandshakeError::Interrupted(_)) => {
                return Outcome::Failed("upgrade: interrupted".into());
            }
        };
        let exchange = [
            (connect_frame(), "hello"),
            (
                r#"{"type":"req","id":"h","method":"health","params":{}}"#.to_owned(),
                "h",
            ),
        ];
        for (request, id) in exchange {
            if let Err(error) = ws.send(Message::text(request)) {
                return from_websocket(&format!("send {id}"), error);
            }
            match answer(&mut ws, id) {
                Ok(response) if response["ok"] == true => {}
                Ok(response) => return Outcome::Failed(format!("{id}: {response}")),
                Err(outcome) => return outcome,
            }
        }
        match ws.close(None) {
            Ok(()) => until_closed(&mut ws, Outcome::Session),
            Err(error) => from_websocket("close", error),
        }
    }

    /// The response with `id`, or how the session ended instead.
    fn answer(ws: &mut WebSocket<TcpStream>, id: &str) -> Result<Value, Outcome> {
        loop {
            let message = ws.read().map_err(|e| from_websocket("read", e))?;
            let text = match message {
                Message::Text(text) => text,
                Message::Close(frame) => {
                    return Err(Outcome::Failed(format!(
                        "closed without a goodbye: {frame:?}"
                    )));
                }
                _ => continue,
            };
            let frame: Value = serde_json::from_str(text.as_str())
                .map_err(|_| Outcome::Failed(format!("not JSON: {text}")))?;
            if frame["event"] == "shutdown" {
                return Err(goodbye(ws, text.as_str()));
            }
            if frame["type"] == "res" && frame["id"] == id {
                return Ok(frame);
            }
        }
    }

    /// After the shutdown event: the close 1012 must follow, and the session end.
    fn goodbye(ws: &mut WebSocket<TcpStream>, event: &str) -> Outcome {
        if event != RESTARTING_EVENT {
            return Outcome::Failed(format!("unexpected shutdown event: {event}"));
        }
        loop {
            match ws.read() {
                Ok(Message::Close(Some(frame)))
                    if u16::from(frame.code) == 1012 && frame.reason == "gateway restarting" =>
                {
                    return until_closed(ws, Outcome::Goodbye);
                }
                Ok(Message::Close(frame)) => {
                    return Outcome::Failed(format!("goodbye closed with {frame:?}"));
                }
                Ok(_) => continue,
                Err(error) => return from_websocket("read after the goodbye", error),
            }
        }
    }

    /// Completes the close handshake; `done` when it completes cleanly.
    fn until_closed(ws: &mut WebSocket<TcpStream>, done: Outcome) -> Outcome {
        loop {
            match ws.read() {
                Ok(_) => continue,
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return done;
                }
                Err(error) => return from_websocket(&format!("closing after {done:?}"), error),
            }
        }
    }

    /// A connected WebSocket session (hello-ok received), read frame by frame.
    pub struct Session {
        ws: WebSocket<TcpStream>,
    }

    impl Session {
        pub fn connect(port: u16) -> Self {
            Self::connect_with(port, None).unwrap_or_else(|refusal| panic!("{refusal}"))
        }

        /// A session whose `connect` carries `token`; the refusal when it is refused.
        pub fn connect_with(port: u16, token: Option<&str>) -> Result<Self, Value> {
            let stream = connect(port).unwrap_or_else(|outcome| panic!("{outcome:?}"));
            stream.set_read_timeout(Some(DEADLINE)).unwrap();
            let (mut ws, _) =
                tungstenite::client::client(format!("ws://127.0.0.1:{port}/"), stream)
                    .unwrap_or_else(|e| panic!("upgrade: {e}"));
            ws.send(Message::text(connect_frame_with(token))).unwrap();
            let hello = answer(&mut ws, "hello").unwrap_or_else(|o| panic!("{o:?}"));
            if hello["ok"] != true {
                return Err(hello);
            }
            assert_eq!(hello["payload"]["type"], "hello-ok", "{hello}");
            Ok(Self { ws })
        }

        /// Writes raw bytes on the connection (a frame in pieces).
        pub fn send_raw(&mut self, bytes: &[u8]) {
            self.ws.get_mut().write_all(bytes).expect("write raw bytes");
        }

        /// Sends request `id` of `method` without waiting for its answer.
        pub fn send_request(&mut self, id: &str, method: &str) {
            let request = json!({"type": "req", "id": id, "method": method}).to_string();
            self.ws
                .send(Message::text(request))
                .expect("send a request");
        }

        /// The next frame: a text frame parsed, or `Err` with what came instead.
        pub fn next_frame(&mut self) -> Result<Value, String> {
            loop {
                match self.ws.read() {
                    Ok(Message::Text(text)) => {
                        return serde_json::from_str(text.as_str())
                            .map_err(|_| format!("not JSON: {text}"));
                    }
                    Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                    Ok(other) => return Err(format!("{other:?}")),
                    Err(error) => return Err(error.to_string()),
                }
            }
        }

        fn next(&mut self) -> Message {
            loop {
                match self.ws.read().expect("a frame") {
                    Message::Ping(_) | Message::Pong(_) => continue,
                    message => return message,
                }
            }
        }

        pub fn next_text(&mut self) -> String {
            match self.next() {
                Message::Text(text) => text.as_str().to_owned(),
                other => panic!("expected a text frame, got {other:?}"),
            }
        }

        pub fn next_close(&mut self) -> CloseFrame {
            match self.next() {
                Message::Close(Some(frame)) => frame,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }

        /// Sends `method` as request `id`; its response (events before it skipped).
        pub fn request(&mut self, id: &str, method: &str) -> Value {
            let request = json!({"type": "req", "id": id, "method": method}).to_string();
            self.ws
                .send(Message::text(request))
                .expect("send a request");
            answer(&mut self.ws, id).unwrap_or_else(|o| panic!("{o:?}"))
        }

        /// Closes from the client's side and completes the handshake.
        pub fn close(&mut self) {
            self.ws.close(None).expect("close");
            self.finish();
        }

        /// Completes the close handshake.
        pub fn finish(&mut self) {
            match until_closed(&mut self.ws, Outcome::Session) {
                Outcome::Session => {}
                other => panic!("the close handshake did not complete: {other:?}"),
            }
        }
    }
}

/// Whether `pid` holds the server side of the connection from `client_port` to
/// `port` (it accepted it): the socket inode from `/proc/net/tcp` among its fds.
fn process_holds_connection(pid: u32, port: u16, client_port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!(":{port:04X}");
    let remote = format!(":{client_port:04X}");
    let inode = table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.len() > 9 && fields[1].ends_with(&local) && fields[2].ends_with(&remote))
            .then(|| fields[9].to_owned())
    });
    let Some(inode) = inode else { return false };
    let target = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|link| link.to_string_lossy() == target))
}

/// Issue 16: `restart --port B` restarted the default profile's gateway on port A,
/// because it took the default profile's control socket without checking its owner.
/// It must reach the gateway that holds B, whatever its state directory (here one
/// whose path is far too long for a socket path) and without being told it.
#[test]
fn restart_by_port_reaches_the_gateway_on_that_port_whatever_its_state_dir() {
    let port_a = free_port();
    let a = Lineage::start(port_a, &[]);
    let a_pid = a.first.id();
    let long = TempDir::new("long-state");
    let deep = long.path().join("x".repeat(60)).join("y".repeat(60));
    let deep_text = deep.to_str().unwrap().to_owned();
    let port_b = free_port();
    let b = Lineage::start(port_b, &["--state-dir", &deep_text]);
    let b_pid = b.first.id();

    // Asked from a directory that is neither gateway's state directory.
    let (code, stdout, stderr) = run_cli(&["restart", "--port", &port_b.to_string()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let new = reported_new_pid(&stdout);
    assert_eq!(stdout, restarted_line(port_b, b_pid, new));
    b.wait_serving("the new gateway on B", |pid| pid == new);
    assert_eq!(a.serving_pid(), Some(a_pid), "the gateway on A was touched");
    assert!(!a.log().contains("restarting by handoff"), "{}", a.log());
}

/// Issue 16: `status/stop/restart --profile nosuch` acted on the default profile's
/// gateway. A gateway of another profile is not the named profile's: exit 3, its
/// profile named, and it is left alone.
#[test]
fn a_named_profile_never_acts_on_another_profiles_gateway() {
    let port = free_port();
    let work = Lineage::start(port, &["--profile", "work"]);
    let pid = work.first.id();
    let port_text = port.to_string();
    for operation in ["status", "stop", "restart"] {
        let (code, stdout, stderr) =
            run_cli(&[operation, "--port", &port_text, "--profile", "nosuch"]);
        assert_eq!(code, 3, "{operation}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!(
                "no gateway of profile \"nosuch\" running on ws://127.0.0.1:{port}: the gateway there (pid {pid}) has profile \"work\""
            )),
            "{operation}: {stderr}"
        );
    }
    let (code, stdout, _) = run_cli(&["status", "--port", &port_text, "--dev", "--json"]);
    assert_eq!(code, 3);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(stdout.trim()).unwrap()["state"],
        "stopped"
    );
    assert_eq!(work.serving_pid(), Some(pid), "the gateway was touched");
    // Its own profile's name finds it.
    let (code, stdout, stderr) = run_cli(&["status", "--port", &port_text, "--profile", "work"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// Issue 17: a new process that hangs before it runs (its `execve` delayed 30 s) once
/// blocked the old one: no `restart failed`, SIGTERM ignored, `restart` and `stop`
/// timing out. The old one must keep answering, report the failure at the 10 s
/// deadline counted from the request, and a `restart --timeout` shorter than that must
/// say that no outcome came in time.
#[test]
fn a_new_process_stuck_before_exec_never_blocks_the_old_one() {
    let port = free_port();
    let lineage = Lineage::start(port, &["--shutdown-timeout", "5", "--handoff-timeout", "3"]);
    let old = lineage.first.id();
    let Some(_hang) = HungExec::attach(old) else {
        return;
    };
    let asked = Instant::now();
    let mut restart = lineage.restart_command();
    restart.args(["--timeout", "1"]);
    let (code, stdout, stderr) = finish(restart.spawn().unwrap());
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_eq!(
        stderr,
        "restart failed: no outcome within 1s; the handoff goes on (see the gateway's log)\n"
    );
    // Still answering while its successor hangs.
    assert_eq!(lineage.serving_pid(), Some(old));
    lineage.wait_log("restart failed: the new process (pid ", 1);
    let waited = asked.elapsed();
    // The exec hangs for 30 s: only a deadline counted from the request ends it sooner.
    assert!(
        waited < Duration::from_secs(20),
        "the deadline counts from the request: {waited:?}"
    );
    assert!(
        lineage.log().contains("did not serve within 3s"),
        "{}",
        lineage.log()
    );
    assert_eq!(lineage.serving_pid(), Some(old));
}

/// Issue 17: a stop signal during a handoff whose new process hangs before `exec`
/// is acted on at once: the new process is killed and the old one stops cleanly.
#[test]
fn a_stop_during_a_handoff_stuck_before_exec_kills_the_new_process_and_stops() {
    let port = free_port();
    let mut lineage = Lineage::start(port, SHUTDOWN_TIMEOUT);
    let old = lineage.first.id();
    let Some(hang) = HungExec::attach(old) else {
        return;
    };
    lineage.signal(old, Signal::SIGHUP);
    lineage.wait_log("SIGHUP: restarting by handoff", 1);
    let stuck = poll_until("the new process to be forked", DEADLINE, || {
        live_children(old).first().copied()
    });
    let asked = Instant::now();
    lineage.signal(old, Signal::SIGTERM);
    assert_eq!(lineage.wait_exit_code(old), 0, "{}", lineage.log());
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(5), "the stop waited: {took:?}");
    wait_until("the stuck new process to be killed", || is_dead(stuck));
    // strace holds the killed process at its exit, descriptors and all, until it
    // lets go: then nothing is left holding the port.
    drop(hang);
    wait_until("the port to be free", || port_is_free(port));
}

/// Issue 17's two actives: the old process is frozen while its new process takes the
/// lease over and serves; when it wakes, well past half the TTL, its lease watch has
/// lapsed. It must step down without revoking the lease it handed over: the standby
/// never becomes active, the new process stays active with the same fencing token.
#[test]
fn an_old_process_frozen_during_the_handoff_never_revokes_the_lease_it_handed_over() {
    let Some(etcd) = Etcd::start() else { return };
    let url = etcd.url();
    let cluster = [
        "--cluster-etcd",
        url.as_str(),
        "--cluster-key",
        "frozen",
        "--cluster-ttl",
        "2",
    ];
    let port = free_port();
    let mut lineage = Lineage::start(port, &cluster);
    let old = lineage.first.id();
    let token = active_token(port).expect("the first gateway is active");
    let mut standby_args = cluster.to_vec();
    standby_args.push("--standby");
    let mut standby = Gateway::spawn(free_port(), &standby_args);
    standby.wait_healthy();
    assert_eq!(active_token(standby.port), None);

    lineage.signal(old, Signal::SIGHUP);
    let forked_by = Instant::now() + DEADLINE;
    let new = loop {
        if let Some(child) = live_children(old).first().copied() {
            break child;
        }
        assert!(
            Instant::now() < forked_by,
            "no new process was forked; log:\n{}",
            lineage.log()
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    lineage.signal(old, Signal::SIGSTOP);
    lineage.wait_serving("the new process", |pid| pid == new);
    // Frozen for 1.5 TTLs, then woken: its watch has lapsed by then.
    let frozen_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < frozen_until {
        assert_eq!(
            active_token(standby.port),
            None,
            "the standby became active"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    lineage.signal(old, Signal::SIGCONT);
    assert_eq!(lineage.wait_exit_code(old), 0, "{}", lineage.log());
    // Two more TTLs: one active, the new one, with the token it took over.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        assert_eq!(
            active_token(standby.port),
            None,
            "two actives:\n{}",
            lineage.log()
        );
        assert_eq!(active_token(port), Some(token), "{}", lineage.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(standby.is_running());
}

/// The fencing token of the gateway on `port`, while it says it is active.
fn active_token(port: u16) -> Option<u64> {
    let health = http_get(port, "/healthz")?.json();
    let cluster = &health["cluster"];
    (cluster["role"] == "active").then(|| cluster["fencingToken"].as_u64())?
}

/// The pids of the open descriptors of `pid` (`/proc/PID/fd`).
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

/// SIGHUP to the serving gateway; waits until its successor serves and it exited 0.
/// The successor's pid.
fn sighup_restart(lineage: &mut Lineage) -> u32 {
    let old = lineage
        .serving_pid()
        .expect("a gateway serves before the restart");
    lineage.signal(old, Signal::SIGHUP);
    let new = lineage.wait_serving("the successor", |pid| pid != old);
    assert_eq!(lineage.wait_exit_code(old), 0, "{}", lineage.log());
    new
}

/// What one client of the moving-sessions test saw.
#[derive(Debug, Default)]
struct SessionLog {
    /// Requests sent and answered, each once and in order.
    answered: u64,
    /// `(previousPid, pid)` of each `restarted` event, in order.
    restarts: Vec<(u64, u64)>,
    /// What went wrong, if anything: a close, a duplicate or missing answer, a gap in `seq`.
    failure: Option<String>,
}

/// Sends `health` requests one after another (`pause` between them) until `stop`
/// and `restarts` restarts seen, checking every frame.
fn health_client(
    mut session: Session,
    pause: Duration,
    stop: &std::sync::atomic::AtomicBool,
    restarts: usize,
) -> SessionLog {
    let mut log = SessionLog::default();
    let mut last_seq = 0u64;
    let mut next = 0u64;
    let deadline = Instant::now() + 4 * DEADLINE;
    while !(stop.load(std::sync::atomic::Ordering::Relaxed) && log.restarts.len() >= restarts) {
        if Instant::now() > deadline {
            log.failure = Some("the restarts did not all reach this session".into());
            return log;
        }
        next += 1;
        let id = format!("h{next}");
        session.send_request(&id, "health");
        loop {
            let frame = match session.next_frame() {
                Ok(frame) => frame,
                Err(what) => {
                    log.failure = Some(format!("waiting for {id}: {what}"));
                    return log;
                }
            };
            if frame["type"] == "event" {
                let seq = frame["seq"].as_u64().unwrap_or(0);
                if frame["event"] == "shutdown" || seq != last_seq + 1 {
                    log.failure = Some(format!("after seq {last_seq}: {frame}"));
                    return log;
                }
                last_seq = seq;
                if frame["event"] == "restarted" {
                    let payload = &frame["payload"];
                    log.restarts.push((
                        payload["previousPid"].as_u64().unwrap_or(0),
                        payload["pid"].as_u64().unwrap_or(0),
                    ));
                }
                continue;
            }
            if frame["id"] != id.as_str() || frame["ok"] != true {
                log.failure = Some(format!("waiting for {id}: {frame}"));
                return log;
            }
            log.answered += 1;
            break;
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    session.close();
    log
}

#[test]
fn forty_sessions_sending_requests_move_through_ten_restarts_without_a_close_or_a_lost_answer() {
    let port = free_port();
    let mut lineage = Lineage::start(port, SHUTDOWN_TIMEOUT);
    let first = lineage.first.id();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..40)
        .map(|n| {
            let session = Session::connect(port);
            let stop = std::sync::Arc::clone(&stop);
            // Half flat out, half paced.
            let pause = Duration::from_millis(if n % 2 == 0 { 0 } else { 20 });
            std::thread::spawn(move || health_client(session, pause, &stop, 10))
        })
        .collect();
    let mut chain = vec![u64::from(first)];
    for _ in 0..10 {
        chain.push(u64::from(sighup_restart(&mut lineage)));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let expected: Vec<(u64, u64)> = chain.windows(2).map(|w| (w[0], w[1])).collect();
    for client in clients {
        let log = client.join().expect("client thread");
        assert_eq!(log.failure, None, "{log:?}\n{}", lineage.log());
        assert_eq!(log.restarts, expected, "{log:?}");
        assert!(log.answered > 0, "{log:?}");
    }
    let last = *chain.last().unwrap() as u32;
    lineage.signal(last, Signal::SIGTERM);
}

#[test]
fn a_token_protected_gateway_s_moved_sessions_stay_authenticated_and_newcomers_still_need_the_token()
 {
    let port = free_port();
    let mut args = vec!["--token", "s3cret"];
    args.extend_from_slice(SHUTDOWN_TIMEOUT);
    let mut lineage = Lineage::start(port, &args);
    let mut session = Session::connect_with(port, Some("s3cret")).expect("the right token");
    let new = sighup_restart(&mut lineage);
    let restarted = session.next_frame().expect("the restarted event");
    assert_eq!(restarted["event"], "restarted", "{restarted}");
    let status = session.request("s", "status");
    assert_eq!(status["ok"], true, "{status}");
    let refusal = Session::connect_with(port, None)
        .err()
        .expect("a newcomer without the token is refused");
    assert_eq!(refusal["error"]["code"], "unauthorized", "{refusal}");
    assert!(Session::connect_with(port, Some("s3cret")).is_ok());
    session.close();
    lineage.signal(new, Signal::SIGTERM);
}

#[test]
fn twenty_moves_in_a_row_leak_no_descriptor() {
    let port = free_port();
    let mut lineage = Lineage::start(port, SHUTDOWN_TIMEOUT);
    let mut sessions: Vec<Session> = (0..5).map(|_| Session::connect(port)).collect();
    let mut pid = sighup_restart(&mut lineage);
    let settled = |pid: u32| {
        // Connections of the /healthz polls close on their own: wait for the count
        // to stop moving for a few reads.
        let mut last = open_descriptors(pid);
        poll_until("a steady descriptor count", DEADLINE, || {
            std::thread::sleep(Duration::from_millis(20));
            let now = open_descriptors(pid);
            let steady = now == last;
            last = now;
            steady.then_some(now)
        })
    };
    let before = settled(pid);
    for _ in 0..20 {
        pid = sighup_restart(&mut lineage);
    }
    let after = settled(pid);
    assert_eq!(after, before, "descriptors of the serving process");
    for session in &mut sessions {
        let mut restarts = 0;
        while restarts < 21 {
            let frame = session.next_frame().expect("an event");
            assert_eq!(frame["event"], "restarted", "{frame}");
            restarts += 1;
        }
    }
    let status = sessions[0].request("s", "status");
    assert_eq!(status["payload"]["connections"], 5, "{status}");
    for session in &mut sessions {
        session.close();
    }
    lineage.signal(pid, Signal::SIGTERM);
}

#[test]
fn a_message_split_across_the_restart_is_answered_and_one_that_never_completes_gets_1012() {
    let port = free_port();
    let mut lineage = Lineage::start(port, SHUTDOWN_TIMEOUT);
    let old = lineage.first.id();
    let mut split = Session::connect(port);
    let mut stuck = Session::connect(port);
    let frame = clients::masked_text_frame(r#"{"type":"req","id":"split","method":"health"}"#);
    let (head, tail) = frame.split_at(10);
    split.send_raw(head);
    stuck.send_raw(head);
    // Both old sessions are past connect and hold a message in progress.
    lineage.signal(old, Signal::SIGHUP);
    let new = lineage.wait_serving("the successor", |pid| pid != old);
    let began = Instant::now();
    split.send_raw(tail);
    let answer = split.next_frame().expect("the answer");
    assert_eq!(answer["id"], "split", "{answer}");
    assert_eq!(
        answer["payload"]["pid"], old,
        "the old process read it: {answer}"
    );
    let restarted = split.next_frame().expect("the restarted event");
    assert_eq!(restarted["event"], "restarted", "{restarted}");
    assert_eq!(restarted["payload"]["pid"], new, "{restarted}");

    let goodbye = stuck.next_frame().expect("the goodbye");
    assert_eq!(goodbye["event"], "shutdown", "{goodbye}");
    assert_eq!(goodbye["payload"]["reason"], "gateway restarting");
    let close = stuck.next_close();
    assert_eq!(u16::from(close.code), 1012);
    let waited = began.elapsed();
    assert!(
        waited > Duration::from_millis(1500) && waited < Duration::from_secs(5),
        "the goodbye came after {waited:?}"
    );
    assert_eq!(lineage.wait_exit_code(old), 0);
    let health = split.request("h", "health");
    assert_eq!(health["payload"]["pid"], new, "{health}");
    split.close();
    lineage.signal(new, Signal::SIGTERM);
}

#[test]
fn requests_pipelined_while_the_restart_happens_are_answered_once_in_order_by_old_then_new() {
    let port = free_port();
    let mut lineage = Lineage::start(port, SHUTDOWN_TIMEOUT);
    let old = lineage.first.id();
    let mut session = Session::connect(port);
    for n in 0..200 {
        session.send_request(&format!("p{n}"), "health");
    }
    lineage.signal(old, Signal::SIGHUP);
    for n in 200..400 {
        session.send_request(&format!("p{n}"), "health");
    }
    let new = lineage.wait_serving("the successor", |pid| pid != old);
    for n in 400..600 {
        session.send_request(&format!("p{n}"), "health");
    }
    let mut answered_by_new = false;
    let mut restarted = 0;
    let mut n = 0;
    while n < 600 {
        let frame = session.next_frame().expect("a frame");
        if frame["type"] == "event" {
            assert_eq!(frame["event"], "restarted", "{frame}");
            assert_eq!(frame["payload"]["pid"], new, "{frame}");
            restarted += 1;
            continue;
        }
        assert_eq!(frame["id"], format!("p{n}").as_str(), "{frame}");
        let pid = frame["payload"]["pid"].as_u64().expect("a pid");
        if pid == u64::from(new) {
            answered_by_new = true;
        } else {
            assert_eq!(pid, u64::from(old), "{frame}");
            assert!(!answered_by_new, "old answered after new: {frame}");
            assert_eq!(restarted, 0, "old answered after restarted: {frame}");
        }
        n += 1;
    }
    assert_eq!(restarted, 1);
    assert!(answered_by_new);
    assert_eq!(lineage.wait_exit_code(old), 0);
    session.close();
    lineage.signal(new, Signal::SIGTERM);
}
