//! `gateway-bench`: times what a user or supervisor waits for when starting the
//! gateway, on the real binary, and prints medians.
//!
//! - fail-fast: exec to exit of a start refused because a gateway holds the port;
//! - ready: exec to the first `/healthz` 200.
//!
//! Usage: `gateway-bench [--gateway PATH] [--runs N]` (build the gateway with
//! `cargo build --release -p gateway` first; PATH defaults to target/release/gateway).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn main() {
    let mut gateway = String::from("target/release/gateway");
    let mut runs = 200usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--gateway" => gateway = args.next().expect("--gateway PATH"),
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).expect("--runs N"),
            other => {
                eprintln!(
                    "unknown argument {other}; usage: gateway-bench [--gateway PATH] [--runs N]"
                );
                std::process::exit(2);
            }
        }
    }
    let fail_fast = measure_fail_fast(&gateway, runs);
    let ready = measure_ready(&gateway, runs);
    println!("runs: {runs}");
    report("fail-fast (exec -> exit 78)", &fail_fast);
    report("ready (exec -> first /healthz 200)", &ready);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn spawn(gateway: &str, port: u16) -> Child {
    let state = std::env::temp_dir().join(format!("gateway-bench-{}-{port}", std::process::id()));
    Command::new(gateway)
        .args(["--port", &port.to_string()])
        .env("GATEWAY_STATE_DIR", &state)
        .env("GATEWAY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gateway")
}

fn healthz_ok(port: u16) -> bool {
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

fn stop(mut child: Child) {
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let _ = child.wait();
}

fn measure_fail_fast(gateway: &str, runs: usize) -> Vec<Duration> {
    let port = free_port();
    let holder = spawn(gateway, port);
    while !healthz_ok(port) {
        std::thread::yield_now();
    }
    let samples = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let status = spawn(gateway, port).wait().expect("wait");
            let elapsed = started.elapsed();
            assert_eq!(status.code(), Some(78), "a refused start exits 78");
            elapsed
        })
        .collect();
    stop(holder);
    samples
}

fn measure_ready(gateway: &str, runs: usize) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let port = free_port();
            let started = Instant::now();
            let child = spawn(gateway, port);
            while !healthz_ok(port) {
                std::thread::yield_now();
            }
            let elapsed = started.elapsed();
            stop(child);
            elapsed
        })
        .collect()
}

fn report(name: &str, samples: &[Duration]) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let pick = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name}: median {:.2} ms, p10 {:.2} ms, p90 {:.2} ms",
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.1).as_secs_f64() * 1e3,
        pick(0.9).as_secs_f64() * 1e3,
    );
}
