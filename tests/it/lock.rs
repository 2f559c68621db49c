//! The port is the lock: a second gateway, a foreign holder, a bind that cannot
//! happen, a crash, and a race, each on the real binary.

use std::net::{Ipv6Addr, SocketAddr, TcpListener};

use crate::support::*;
use nix::sys::signal::Signal;

#[test]
fn second_gateway_on_same_port_exits_78_and_the_first_keeps_serving() {
    let port = free_port();
    let mut first = Gateway::start(port, &[]);
    let (code, stderr) = run_to_exit(port, &[]);
    assert_eq!(code, 78, "{stderr}");
    assert_eq!(
        first_line(&stderr),
        format!(
            "GatewayLockError: another gateway instance is already listening on ws://127.0.0.1:{port}"
        )
    );
    assert!(
        stderr.contains(&format!("pid {}", first.child.id())),
        "{stderr}"
    );
    assert!(first.is_running());
    assert_eq!(http_get(port, "/healthz").unwrap().status, 200);
}

#[test]
fn a_foreign_listener_gives_the_same_line_and_75() {
    let port = free_port();
    let _foreign = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (code, stderr) = run_to_exit(port, &[]);
    assert_eq!(code, 75, "{stderr}");
    assert_eq!(
        first_line(&stderr),
        format!(
            "GatewayLockError: another gateway instance is already listening on ws://127.0.0.1:{port}"
        )
    );
}

#[test]
fn a_holder_of_the_ipv6_loopback_is_a_conflict() {
    let port = free_port();
    let _foreign = TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port))).unwrap();
    let (code, stderr) = run_to_exit(port, &[]);
    assert_eq!(code, 75, "{stderr}");
    assert_eq!(
        first_line(&stderr),
        format!(
            "GatewayLockError: another gateway instance is already listening on ws://[::1]:{port}"
        )
    );
    // Nothing stays bound: the IPv4 listener taken first was released.
    assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());
}

#[test]
fn a_non_local_bind_address_fails_to_bind_with_71() {
    let port = free_port();
    // 192.0.2.1 (TEST-NET-1) is never a local address; a token and a TLS proxy in
    // front make it acceptable.
    let (code, stderr) = run_to_exit(
        port,
        &["--bind", "192.0.2.1", "--token", "t0k", "--allow-plaintext"],
    );
    assert_eq!(code, 71, "{stderr}");
    let prefix =
        format!("GatewayLockError: failed to bind gateway socket on ws://192.0.2.1:{port}: ");
    assert!(first_line(&stderr).starts_with(&prefix), "{stderr}");
    assert!(
        first_line(&stderr).len() > prefix.len(),
        "the OS error text follows"
    );
}

#[test]
fn a_non_loopback_bind_without_token_is_refused_with_78() {
    let port = free_port();
    let (code, stderr) = run_to_exit(port, &["--bind", "0.0.0.0"]);
    assert_eq!(code, 78, "{stderr}");
    assert_eq!(
        first_line(&stderr),
        format!(
            "GatewayConfigError: refusing to bind gateway to ws://0.0.0.0:{port} without auth (set --token or GATEWAY_TOKEN)"
        )
    );
    assert!(port_is_free(port));
}

#[test]
fn bad_arguments_exit_2_and_bind_nothing() {
    let state = TempDir::new("usage");
    let port = free_port();
    for args in [
        &["--port", "http"][..],
        &["--port", "0"],
        &["--port", "65536"],
        &["--port", "-1"],
        &["--bind", "localhost"],
        &["--no-such-flag"],
    ] {
        let mut command = gateway_command(args, state.path());
        // Should the bad value be ignored, this is where a gateway would listen.
        command.env("GATEWAY_PORT", port.to_string());
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            !stderr.is_empty() && !stderr.contains("listening"),
            "{args:?}: {stderr}"
        );
    }
    let output = gateway_command(&[], state.path())
        .env("GATEWAY_PORT", "not-a-port")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(port_is_free(port));
}

#[test]
fn after_sigkill_a_new_gateway_binds_at_once() {
    let port = free_port();
    let mut first = Gateway::start(port, &[]);
    first.signal(Signal::SIGKILL);
    first.wait_exit();
    // No lock file, no retry loop: the very next start takes the port.
    let mut second = Gateway::spawn(port, &[]);
    second.wait_healthy();
    let health = http_get(port, "/healthz").unwrap().json();
    assert_eq!(health["pid"], second.child.id());
}

#[test]
fn listening_sockets_are_close_on_exec() {
    let port = free_port();
    let gateway = Gateway::start(port, &[]);
    let fd_dir = format!("/proc/{}/fd", gateway.child.id());
    let mut sockets = 0;
    for entry in std::fs::read_dir(&fd_dir).unwrap() {
        let entry = entry.unwrap();
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !target.to_string_lossy().starts_with("socket:") {
            continue;
        }
        let fd = entry.file_name().into_string().unwrap();
        let info =
            std::fs::read_to_string(format!("/proc/{}/fdinfo/{fd}", gateway.child.id())).unwrap();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
            .unwrap();
        assert_ne!(
            flags & 0o2_000_000,
            0,
            "socket fd {fd} lacks O_CLOEXEC: {info}"
        );
        sockets += 1;
    }
    assert!(
        sockets >= 2,
        "expected the IPv4 and IPv6 listeners, saw {sockets} sockets"
    );
}

#[test]
fn sixteen_gateways_started_together_leave_exactly_one_running() {
    let port = free_port();
    let mut racers: Vec<Gateway> = (0..16).map(|_| Gateway::spawn(port, &[])).collect();
    // Every loser exits with a lock error; wait until only winners are left.
    wait_until("the losers to exit", || {
        racers
            .iter_mut()
            .map(|g| g.is_running())
            .filter(|r| *r)
            .count()
            <= 1
            && http_get(port, "/healthz").is_some_and(|r| r.status == 200)
    });
    let mut running = 0;
    for racer in &mut racers {
        match racer.child.try_wait().unwrap() {
            None => running += 1,
            Some(status) => {
                let code = status.code().unwrap();
                let stderr = racer.stderr_now();
                assert!(code == 78 || code == 75, "loser exited {code}: {stderr}");
                assert!(
                    first_line(&stderr).starts_with("GatewayLockError: another gateway instance")
                );
            }
        }
    }
    assert_eq!(running, 1);
    let winner = http_get(port, "/healthz").unwrap().json();
    assert!(racers.iter().any(|g| g.child.id() == winner["pid"]));
}

#[test]
fn in_hundreds_of_races_every_loser_knows_the_winner_is_a_gateway() {
    // A loser can meet the winner between its bind and its listen, when connections
    // are refused: it must ask again, not call the winner a stranger (75).
    const ROUNDS: usize = 200;
    const RACERS: usize = 8;
    let mut losers = 0;
    for round in 0..ROUNDS {
        let port = free_port();
        let mut racers: Vec<Gateway> = (0..RACERS).map(|_| Gateway::spawn(port, &[])).collect();
        wait_until("the losers to exit", || {
            racers
                .iter_mut()
                .map(Gateway::is_running)
                .filter(|r| *r)
                .count()
                <= 1
        });
        for racer in &mut racers {
            if let Some(status) = racer.child.try_wait().unwrap() {
                let stderr = racer.stderr_now();
                assert_eq!(
                    status.code(),
                    Some(78),
                    "round {round}: a loser did not recognise the winner: {stderr}"
                );
                losers += 1;
            }
        }
    }
    assert_eq!(losers, ROUNDS * (RACERS - 1));
}
