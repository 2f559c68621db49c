//! The two servers under test: our gateway and the Node reference.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A server the benchmarks can start on a port.
#[derive(Debug, Clone)]
pub enum Target {
    Gateway { binary: PathBuf },
    Reference { node: PathBuf, script: PathBuf },
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Gateway { .. } => "gateway",
            Self::Reference { .. } => "node reference",
        }
    }

    pub fn command(&self, port: u16) -> Command {
        let mut command = match self {
            Self::Gateway { binary } => {
                let mut c = Command::new(binary);
                let state = std::env::temp_dir()
                    .join(format!("gateway-bench-{}-{port}", std::process::id()));
                c.args(["--port", &port.to_string(), "--max-connections", "20000"])
                    .env("GATEWAY_STATE_DIR", state)
                    .env("GATEWAY_LOG", "warn");
                c
            }
            Self::Reference { node, script } => {
                let mut c = Command::new(node);
                c.arg(script).arg(port.to_string());
                c
            }
        };
        command
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    pub fn spawn(&self, port: u16) -> Child {
        self.command(port).spawn().expect("spawn server under test")
    }

    /// Spawns and waits until `/healthz` answers.
    pub fn start(&self, port: u16) -> Running {
        let child = self.spawn(port);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !healthz_ok(port) {
            assert!(
                Instant::now() < deadline,
                "{} never became healthy",
                self.name()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        Running { child }
    }
}

/// A started server, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Running {
    pub child: Child,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn terminate(&self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.terminate();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn healthz_ok(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request =
        format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && &head[9..12] == b"200"
}

/// Resident memory of a process, in bytes (from /proc).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// CPU time (user + system) a process has used so far, from /proc (10 ms ticks).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command's closing parenthesis: state is the first field, utime the
    // 12th and stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // USER_HZ: 100 ticks per second on Linux.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The CPU time `pid` uses between `from` and `to`, read by a task of its own.
pub fn cpu_between(pid: u32, from: Instant, to: Instant) -> tokio::task::JoinHandle<Duration> {
    tokio::spawn(async move {
        tokio::time::sleep_until(from.into()).await;
        let before = cpu_time(pid);
        tokio::time::sleep_until(to.into()).await;
        cpu_time(pid).saturating_sub(before)
    })
}

/// The `pid` field of a `/healthz` answer on `port`, if one comes within a second.
pub fn healthz_pid(port: u16) -> Option<u32> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let request =
        format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let digits = response.split(r#""pid":"#).nth(1)?;
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}
