//! A real etcd for the cluster tests: one member on free loopback ports with a
//! temporary data directory, healthy before it is handed out, stopped by pid.
//!
//! etcd runs with its default settings, keep-alive policy included
//! (`--grpc-keepalive-min-time` 5 s): what the gateway meets in production.
//!
//! Without etcd installed the tests skip with a line saying how to install it,
//! except under `CI=true`, where a missing etcd fails the run.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{DEADLINE, KilledOnDrop, TempDir, free_port};

/// How to get etcd, for the skip line.
const INSTALL_HINT: &str = "apt-get install -y etcd-server etcd-client";

/// A running (or stopped) single-member etcd, killed on drop.
pub struct Etcd {
    child: Option<KilledOnDrop>,
    /// The client port: `http://127.0.0.1:PORT`.
    pub client_port: u16,
    peer_port: u16,
    dir: TempDir,
}

impl Etcd {
    /// Starts etcd on free ports, or `None` (test skipped) when it is not installed
    /// and this is not CI.
    pub fn start() -> Option<Self> {
        Self::start_on(free_port())
    }

    /// Starts etcd with its client port on `client_port`.
    pub fn start_on(client_port: u16) -> Option<Self> {
        if !installed() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "etcd is required under CI=true: {INSTALL_HINT}"
            );
            eprintln!("skipping: etcd/etcdctl not installed (install with `{INSTALL_HINT}`)");
            return None;
        }
        let mut etcd = Self {
            child: None,
            client_port,
            peer_port: free_port(),
            dir: TempDir::new("etcd"),
        };
        etcd.launch();
        Some(etcd)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn launch(&mut self) {
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .expect("etcd log file");
        let child = Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(self.data_dir())
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(KilledOnDrop(child));
        let deadline = Instant::now() + DEADLINE;
        while !self.healthy() {
            assert!(
                Instant::now() < deadline,
                "etcd never became healthy: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `etcdctl endpoint health` succeeds.
    pub fn healthy(&self) -> bool {
        self.etcdctl(&["endpoint", "health"]).status.success()
    }

    /// Runs `etcdctl --endpoints URL ARGS` (v3 API).
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.url(), "--dial-timeout", "1s"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run etcdctl")
    }

    /// The value under `key`, if the key exists.
    pub fn get(&self, key: &str) -> Option<String> {
        let output = self.etcdctl(&["get", key, "--print-value-only"]);
        assert!(output.status.success(), "etcdctl get failed");
        let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        (!text.is_empty()).then_some(text)
    }

    /// The ids (hex) of the leases etcd holds.
    pub fn leases(&self) -> Vec<String> {
        let output = self.etcdctl(&["lease", "list"]);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .skip(1) // "found N leases"
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Stops etcd with SIGTERM (by pid) and waits for it; the data stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }
}

fn installed() -> bool {
    [("etcd", "--version"), ("etcdctl", "version")]
        .iter()
        .all(|(program, version)| {
            Command::new(program)
                .arg(version)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}
