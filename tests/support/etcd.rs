//! A real etcd for the cluster tests: one member on free loopback ports with a
//! temporary data directory, healthy before it is handed out, stopped by pid.
//!
//! etcd runs with its default settings, keep-alive policy included
//! (`--grpc-keepalive-min-time` 5 s): what the gateway meets in production.
//!
//! Without etcd installed the tests skip with a line saying how to install it,
//! except under `CI=true`, where a missing etcd fails the run.
//!
//! [`Etcd::start_secured`] starts one as an operator would lock it down: TLS on the
//! client URL (optionally requiring client certificates) and, with [`Etcd::enable_auth`],
//! a root user and authentication on; `etcdctl` then speaks TLS and logs in as root.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{DEADLINE, KilledOnDrop, TempDir, free_port};

/// How to get etcd, for the skip line.
const INSTALL_HINT: &str = "apt-get install -y etcd-server etcd-client";

/// The files of an etcd that speaks TLS to its clients.
#[derive(Debug, Clone)]
pub struct EtcdTlsFiles {
    /// The CA that signed the server's certificate (and the clients').
    pub ca: PathBuf,
    /// The server's certificate (for 127.0.0.1) and key.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A client certificate and key for `etcdctl`; with `Some`, etcd requires a
    /// client certificate signed by `ca` (`--client-cert-auth`).
    pub client: Option<(PathBuf, PathBuf)>,
}

/// The root user's password, once [`Etcd::enable_auth`] ran.
pub const ROOT_PASSWORD: &str = "root-Secret-1";

/// A running (or stopped) single-member etcd, killed on drop.
pub struct Etcd {
    child: Option<KilledOnDrop>,
    /// The client port: `http://127.0.0.1:PORT` (`https://` with TLS).
    pub client_port: u16,
    peer_port: u16,
    dir: TempDir,
    /// TLS on the client URL, when started secured.
    tls: Option<EtcdTlsFiles>,
    /// `etcdctl` logs in as root once authentication is on.
    auth: bool,
}

impl Etcd {
    /// Starts etcd on free ports, or `None` (test skipped) when it is not installed
    /// and this is not CI.
    pub fn start() -> Option<Self> {
        Self::start_on(free_port())
    }

    /// Starts etcd with its client port on `client_port`.
    pub fn start_on(client_port: u16) -> Option<Self> {
        Self::start_with(client_port, None)
    }

    /// Starts etcd with TLS on its client URL (`https://127.0.0.1:PORT`).
    pub fn start_secured(tls: EtcdTlsFiles) -> Option<Self> {
        Self::start_with(free_port(), Some(tls))
    }

    fn start_with(client_port: u16, tls: Option<EtcdTlsFiles>) -> Option<Self> {
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
            tls,
            auth: false,
        };
        etcd.launch();
        Some(etcd)
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// A root user, then a role `gateway` with readwrite on the prefix `/gateway/`
    /// only, held by each of `users` (name, password); then `auth enable`. The same
    /// commands as docs/security.md.
    pub fn enable_auth(&mut self, users: &[(&str, &str)]) {
        self.etcdctl_ok(&["user", "add", "root", "--new-user-password", ROOT_PASSWORD]);
        self.etcdctl_ok(&["role", "add", "gateway"]);
        let grant = ["role", "grant-permission", "gateway", "--prefix=true"];
        self.etcdctl_ok(&[&grant[..], &["readwrite", "/gateway/"]].concat());
        for (name, password) in users {
            self.etcdctl_ok(&["user", "add", name, "--new-user-password", password]);
            self.etcdctl_ok(&["user", "grant-role", name, "gateway"]);
        }
        self.etcdctl_ok(&["auth", "enable"]);
        self.auth = true;
    }

    /// Adds a user whose role `elsewhere` reaches only the prefix `/elsewhere/`.
    pub fn add_user_without_the_gateway_prefix(&self, name: &str, password: &str) {
        self.etcdctl_ok(&["role", "add", "elsewhere"]);
        let grant = ["role", "grant-permission", "elsewhere", "--prefix=true"];
        self.etcdctl_ok(&[&grant[..], &["readwrite", "/elsewhere/"]].concat());
        self.etcdctl_ok(&["user", "add", name, "--new-user-password", password]);
        self.etcdctl_ok(&["user", "grant-role", name, "elsewhere"]);
    }

    /// Runs `etcdctl ARGS` and asserts it succeeded.
    pub fn etcdctl_ok(&self, args: &[&str]) {
        let output = self.etcdctl(args);
        assert!(
            output.status.success(),
            "etcdctl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
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
        let mut command = Command::new("etcd");
        if let Some(tls) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&tls.cert)
                .arg("--key-file")
                .arg(&tls.key);
            if tls.client.is_some() {
                command
                    .arg("--trusted-ca-file")
                    .arg(&tls.ca)
                    .arg("--client-cert-auth");
            }
        }
        let child = command
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

    /// Runs `etcdctl --endpoints URL ARGS` (v3 API), over TLS and as root when
    /// etcd is secured.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        let mut command = Command::new("etcdctl");
        command
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.url(), "--dial-timeout", "1s"]);
        if let Some(tls) = &self.tls {
            command.arg("--cacert").arg(&tls.ca);
            if let Some((cert, key)) = &tls.client {
                command.arg("--cert").arg(cert).arg("--key").arg(key);
            }
        }
        if self.auth {
            command.args(["--user", &format!("root:{ROOT_PASSWORD}")]);
        }
        command
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
