//! The graceful stop: goodbyes to every client, the port freed, the exit codes.

use crate::support::ws::*;
use crate::support::*;
use futures_util::future::join_all;
use nix::sys::signal::Signal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_50_clients_says_goodbye_to_each_and_frees_the_port() {
    let port = free_port();
    let mut gateway = Gateway::start(port, &[]);
    let clients = join_all((0..50).map(|_| connected(port))).await;
    for (_, hello) in &clients {
        assert_eq!(hello["payload"]["type"], "hello-ok");
    }

    gateway.signal(Signal::SIGTERM);
    let goodbyes = join_all(clients.into_iter().map(|(mut client, _)| async move {
        let event = next_json(&mut client).await;
        let close = next_close(&mut client).await;
        finish(&mut client).await;
        (event, close)
    }))
    .await;

    for (event, close) in goodbyes {
        assert_eq!(
            event,
            serde_json::json!({"type":"event","event":"shutdown","payload":{"reason":"gateway stopping","restartExpectedMs":null}})
        );
        let close = close.expect("a close frame");
        assert_eq!(u16::from(close.code), 1001);
        assert_eq!(close.reason.as_str(), "gateway stopping");
    }
    let status = tokio::task::block_in_place(|| gateway.wait_exit());
    assert_eq!(status.code(), Some(0), "{}", gateway.stderr_now());
    assert!(port_is_free(port));
}

#[test]
fn sigint_stops_cleanly_too() {
    let port = free_port();
    let mut gateway = Gateway::start(port, &[]);
    gateway.signal(Signal::SIGINT);
    assert_eq!(gateway.wait_exit().code(), Some(0));
    assert!(port_is_free(port));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_draining_readyz_is_503_and_a_stuck_client_times_the_stop_out() {
    let port = free_port();
    let mut gateway = Gateway::start(port, &["--shutdown-timeout", "2"]);
    // A client that completes connect, then never reads again: it never answers the
    // gateway's close, so the stop waits for it until the deadline.
    let (stuck, _) = connected(port).await;

    gateway.signal(Signal::SIGTERM);
    let ready = tokio::task::block_in_place(|| {
        let mut seen = None;
        wait_until("/readyz to turn 503", || {
            seen = http_get(port, "/readyz").filter(|r| r.status == 503);
            seen.is_some()
        });
        seen.unwrap()
    });
    assert_eq!(
        ready.json(),
        serde_json::json!({"ready": false, "reason": "draining"})
    );
    assert_eq!(ready.header("retry-after"), Some("1"));
    let other = http_get(port, "/healthz").unwrap();
    assert_eq!(other.status, 503);
    assert_eq!(other.header("retry-after"), Some("1"));

    let status = tokio::task::block_in_place(|| gateway.wait_exit());
    let stderr = gateway.stderr_now();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("shutdown timed out after 2s; exiting without full cleanup"),
        "{stderr}"
    );
    assert!(port_is_free(port));
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_during_the_stop_exits_1_at_once() {
    let port = free_port();
    let mut gateway = Gateway::start(port, &["--shutdown-timeout", "60"]);
    let (stuck, _) = connected(port).await;
    gateway.signal(Signal::SIGTERM);
    tokio::task::block_in_place(|| {
        wait_until("draining", || {
            http_get(port, "/readyz").is_some_and(|r| r.status == 503)
        });
    });
    gateway.signal(Signal::SIGTERM);
    // Well under the 60 s the stop would otherwise wait.
    let status = tokio::task::block_in_place(|| gateway.wait_exit());
    assert_eq!(status.code(), Some(1));
    assert!(port_is_free(port));
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_gateway_is_recognised_and_not_signalled_twice() {
    let port = free_port();
    let mut gateway = Gateway::start(port, &["--shutdown-timeout", "3"]);
    let (stuck, _) = connected(port).await;
    gateway.signal(Signal::SIGTERM);
    let p = port.to_string();
    tokio::task::block_in_place(|| {
        wait_until("draining", || {
            http_get(port, "/readyz").is_some_and(|r| r.status == 503)
        });
        let health = http_get(port, "/healthz").unwrap();
        assert_eq!(health.status, 503);
        assert_eq!(health.json()["service"], "gateway");
        assert_eq!(health.json()["status"], "draining");

        // A start now is only temporarily refused: the port is about to be free.
        let (code, stderr) = run_to_exit(port, &[]);
        assert_eq!(code, 75, "{stderr}");
        assert!(stderr.contains("which is stopping"), "{stderr}");

        // `stop` waits for the stop under way instead of cutting it short.
        let (code, stdout, stderr) = run_cli(&["stop", "--port", &p]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(stdout.contains("already stopping"), "{stdout}");
    });
    // The gateway ran its own deadline out (exit 1), not a second-signal exit.
    let status = tokio::task::block_in_place(|| gateway.wait_exit());
    let stderr = gateway.stderr_now();
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("shutdown timed out after 3s"), "{stderr}");
    drop(stuck);
}
