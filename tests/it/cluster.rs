//! One active gateway across hosts (docs/reference.md#cluster), on a real etcd. Two "hosts"
//! are two gateways on two ports with two state directories and the same key.
//! Failover times are printed (`--nocapture`) for docs/cluster.md.

use std::time::{Duration, Instant};

use crate::support::etcd::Etcd;
use crate::support::ws::*;
use crate::support::*;
use nix::sys::signal::Signal;
use serde_json::Value;

/// Starts a gateway in the cluster of `etcd` under `key`.
fn member(etcd: &Etcd, key: &str, ttl: u64, extra: &[&str]) -> Gateway {
    let mut gateway = spawn_member(etcd, key, ttl, extra);
    gateway.wait_healthy();
    gateway
}

fn spawn_member(etcd: &Etcd, key: &str, ttl: u64, extra: &[&str]) -> Gateway {
    let url = etcd.url();
    let ttl = ttl.to_string();
    let mut args = vec![
        "--cluster-etcd",
        url.as_str(),
        "--cluster-key",
        key,
        "--cluster-ttl",
        ttl.as_str(),
    ];
    args.extend_from_slice(extra);
    Gateway::spawn(free_port(), &args)
}

/// The `cluster` object of a gateway's `/healthz`, when it answers.
fn cluster_of(port: u16) -> Option<Value> {
    let response = http_get(port, "/healthz")?;
    Some(response.json()["cluster"].clone())
}

fn is_active(port: u16) -> bool {
    cluster_of(port).is_some_and(|c| c["role"] == "active")
}

fn fencing_token(port: u16) -> u64 {
    cluster_of(port).expect("healthz")["fencingToken"]
        .as_u64()
        .expect("an active gateway has a fencing token")
}

/// Waits until the gateway on `port` is active; returns how long that took.
fn time_until_active(port: u16, since: Instant, limit: Duration) -> Duration {
    while !is_active(port) {
        assert!(
            since.elapsed() < limit,
            "standby not active within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    since.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_for_an_active_key_exits_78_naming_the_holder() {
    let Some(etcd) = Etcd::start() else { return };
    let first = member(&etcd, "shared", 10, &[]);
    let cluster = cluster_of(first.port).unwrap();
    let token = cluster["fencingToken"].as_u64().expect("a fencing token");
    assert_eq!(cluster["key"], "shared");
    assert_eq!(cluster["role"], "active");
    let (_client, hello) = connected(first.port).await;
    assert_eq!(hello["payload"]["server"]["fencingToken"], token);

    let mut second = spawn_member(&etcd, "shared", 10, &[]);
    let status = tokio::task::block_in_place(|| second.wait_exit());
    let stderr = second.stderr_now();
    assert_eq!(status.code(), Some(78), "{stderr}");
    let hostname = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert_eq!(
        first_line(&stderr),
        format!(
            "GatewayLockError: another gateway instance is already active for \"shared\" on ws://127.0.0.1:{} (pid {}, host {hostname})",
            first.port,
            first.pid()
        )
    );
    assert!(port_is_free(second.port), "nothing is left bound");
    assert!(is_active(first.port));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_serves_http_only_and_takes_over_within_1s_of_a_clean_stop() {
    let Some(etcd) = Etcd::start() else { return };
    let mut active = member(&etcd, "clean", 10, &[]);
    let old_token = fencing_token(active.port);
    let standby = member(&etcd, "clean", 10, &["--standby"]);

    let health = http_get(standby.port, "/healthz").unwrap();
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "standby");
    assert_eq!(
        health.json()["cluster"],
        serde_json::json!({"key": "clean", "role": "standby", "fencingToken": null})
    );
    let ready = http_get(standby.port, "/readyz").unwrap();
    assert_eq!(ready.status, 503);
    assert_eq!(
        ready.json(),
        serde_json::json!({"ready": false, "reason": "standby"})
    );
    let upgrade = http_request(
        standby.port,
        &format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            standby.port
        ),
    )
    .unwrap();
    assert_eq!(upgrade.status, 503);
    assert_eq!(upgrade.header("retry-after"), Some("1"));

    let (mut client, _) = connected(active.port).await;
    let stop = Instant::now();
    active.signal(Signal::SIGTERM);
    let goodbye = next_json(&mut client).await;
    assert_eq!(goodbye["payload"]["reason"], "gateway stopping");
    // The lease is revoked once the clients are gone: answer the close.
    assert_eq!(u16::from(next_close(&mut client).await.unwrap().code), 1001);
    finish(&mut client).await;
    let took = tokio::task::block_in_place(|| {
        time_until_active(standby.port, stop, Duration::from_secs(1))
    });
    eprintln!("failover after a clean stop: {} ms", took.as_millis());
    assert_eq!(
        tokio::task::block_in_place(|| active.wait_exit()).code(),
        Some(0)
    );
    let new_token = fencing_token(standby.port);
    assert!(new_token > old_token, "{new_token} > {old_token}");
    let (_client, hello) = connected(standby.port).await;
    assert_eq!(hello["payload"]["server"]["fencingToken"], new_token);
}

#[test]
fn a_clean_stop_revokes_the_lease_at_once() {
    let Some(etcd) = Etcd::start() else { return };
    // A long TTL: only a revocation can make the key go away within the test.
    let mut gateway = member(&etcd, "revoked", 3600, &[]);
    let record: Value =
        serde_json::from_str(&etcd.get("/gateway/lock/revoked").expect("the lock key")).unwrap();
    assert_eq!(record["url"], format!("ws://127.0.0.1:{}", gateway.port));
    assert_eq!(record["pid"], gateway.pid().as_raw());
    assert_eq!(etcd.leases().len(), 1);

    gateway.signal(Signal::SIGTERM);
    assert_eq!(gateway.wait_exit().code(), Some(0));
    assert_eq!(etcd.get("/gateway/lock/revoked"), None);
    assert!(etcd.leases().is_empty(), "{:?}", etcd.leases());
}

#[test]
fn a_standby_takes_over_within_ttl_plus_1s_of_a_sigkill() {
    let Some(etcd) = Etcd::start() else { return };
    let mut active = member(&etcd, "killed", 2, &[]);
    let old_token = fencing_token(active.port);
    let standby = member(&etcd, "killed", 2, &["--standby"]);
    assert!(!is_active(standby.port));

    let kill = Instant::now();
    active.signal(Signal::SIGKILL);
    let took = time_until_active(standby.port, kill, Duration::from_secs(3));
    eprintln!("failover after SIGKILL (TTL 2 s): {} ms", took.as_millis());
    assert!(active.wait_exit().code().is_none(), "killed by the signal");
    assert!(fencing_token(standby.port) > old_token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_holder_wakes_as_a_non_active_and_its_clients_hear_lock_lost() {
    let Some(etcd) = Etcd::start() else { return };
    let mut frozen = member(&etcd, "frozen", 2, &[]);
    let old_token = fencing_token(frozen.port);
    let standby = member(&etcd, "frozen", 2, &["--standby"]);
    let (mut client, _) = connected(frozen.port).await;

    let stop = Instant::now();
    frozen.signal(Signal::SIGSTOP);
    let took = tokio::task::block_in_place(|| {
        time_until_active(standby.port, stop, Duration::from_secs(3))
    });
    eprintln!("failover after SIGSTOP (TTL 2 s): {} ms", took.as_millis());
    let new_token = fencing_token(standby.port);
    assert!(new_token > old_token);

    frozen.signal(Signal::SIGCONT);
    // Sample both every 20 ms: never two actives, and never the woken one.
    let (samples, both_active, woken_active) = tokio::task::block_in_place(|| {
        let (mut samples, mut both, mut woken) = (0, 0, 0);
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            let a = is_active(frozen.port);
            let b = is_active(standby.port);
            samples += 1;
            both += usize::from(a && b);
            woken += usize::from(a);
            std::thread::sleep(Duration::from_millis(20));
        }
        (samples, both, woken)
    });
    eprintln!("freeze: {samples} samples after SIGCONT, {both_active} with two actives");
    assert_eq!(both_active, 0);
    assert_eq!(woken_active, 0);
    assert!(samples > 20);

    let event = next_json(&mut client).await;
    assert_eq!(
        event,
        serde_json::json!({"type":"event","event":"shutdown","payload":{"reason":"cluster lock lost","restartExpectedMs":null}})
    );
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1012);
    assert_eq!(close.reason.as_str(), "cluster lock lost");
    let status = tokio::task::block_in_place(|| frozen.wait_exit());
    assert_eq!(status.code(), Some(75), "{}", frozen.stderr_now());
    assert!(is_active(standby.port));
    assert_eq!(fencing_token(standby.port), new_token);
}

#[test]
fn etcd_unreachable_at_start_exits_75_with_the_documented_line() {
    let unused = free_port();
    let url = format!("http://127.0.0.1:{unused}");
    let port = free_port();
    let started = Instant::now();
    let (code, stderr) = run_to_exit(port, &["--cluster-etcd", &url]);
    assert_eq!(code, 75, "{stderr}");
    assert!(
        first_line(&stderr).starts_with(&format!(
            "GatewayLockError: cannot reach the cluster lock at {url}: "
        )),
        "{stderr}"
    );
    assert!(started.elapsed() < DEADLINE);
    assert!(port_is_free(port));
}

#[test]
fn a_standby_retries_an_unreachable_etcd_and_becomes_active_when_it_comes() {
    let etcd_port = free_port();
    let url = format!("http://127.0.0.1:{etcd_port}");
    let mut gateway = Gateway::spawn(
        free_port(),
        &["--cluster-etcd", &url, "--cluster-key", "late", "--standby"],
    );
    gateway.wait_healthy();
    assert_eq!(
        http_get(gateway.port, "/healthz").unwrap().json()["status"],
        "standby"
    );
    let Some(_etcd) = Etcd::start_on(etcd_port) else {
        return;
    };
    wait_until("the standby to take the lock", || is_active(gateway.port));
    assert!(gateway.is_running());
}

#[test]
fn an_active_gateway_rides_out_an_etcd_restart_with_its_token() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    // Grace (half the TTL) 6 s: more than a restart takes (about 1 s here).
    let mut gateway = member(&etcd, "restart", 12, &[]);
    let token = fencing_token(gateway.port);
    let down = Instant::now();
    etcd.restart();
    eprintln!("etcd restarted in {} ms", down.elapsed().as_millis());
    // Past the grace counted from the stop: only resumed keep-alives keep it active.
    while down.elapsed() < Duration::from_secs(7) {
        let cluster = cluster_of(gateway.port).expect("healthz");
        assert_eq!(cluster["role"], "active", "{cluster}");
        assert_eq!(cluster["fencingToken"], token);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gateway.is_running());
    assert!(etcd.get("/gateway/lock/restart").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_standby_a_holder_that_lost_the_lock_goes_back_to_standby() {
    let Some(etcd) = Etcd::start() else { return };
    let mut first = member(&etcd, "again", 2, &["--standby"]);
    wait_until("the first to be active", || is_active(first.port));
    let second = member(&etcd, "again", 2, &["--standby"]);
    let (mut client, _) = connected(first.port).await;

    let stop = Instant::now();
    first.signal(Signal::SIGSTOP);
    tokio::task::block_in_place(|| {
        time_until_active(second.port, stop, Duration::from_secs(3));
    });
    first.signal(Signal::SIGCONT);

    let event = next_json(&mut client).await;
    assert_eq!(event["payload"]["reason"], "cluster lock lost");
    assert_eq!(u16::from(next_close(&mut client).await.unwrap().code), 1012);
    tokio::task::block_in_place(|| {
        wait_until("the woken holder to report standby", || {
            cluster_of(first.port).is_some_and(|c| c["role"] == "standby")
        });
    });
    assert!(first.is_running(), "--standby keeps it running");
    assert_eq!(http_get(first.port, "/readyz").unwrap().status, 503);
    assert!(is_active(second.port));
}

#[test]
fn an_active_gateway_whose_key_is_deleted_by_hand_steps_down_with_75() {
    let Some(etcd) = Etcd::start() else { return };
    let mut gateway = member(&etcd, "deleted", 10, &[]);
    assert!(is_active(gateway.port));
    assert!(
        etcd.etcdctl(&["del", "/gateway/lock/deleted"])
            .status
            .success()
    );
    let status = gateway.wait_exit();
    let stderr = gateway.stderr_now();
    assert_eq!(status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("cluster lock lost"), "{stderr}");
    assert!(port_is_free(gateway.port));
}

#[test]
fn a_restart_hands_the_lease_over_and_keeps_the_fencing_token() {
    let Some(etcd) = Etcd::start() else { return };
    let mut gateway = member(&etcd, "handed", 4, &[]);
    let port = gateway.port;
    let token = fencing_token(port);
    let old_pid = gateway.child.id();
    // A standby on another port, to prove the key never comes free.
    let mut standby = member(&etcd, "handed", 4, &["--standby"]);
    assert!(!is_active(standby.port));

    gateway.signal(Signal::SIGHUP);
    wait_until("the successor to serve", || {
        http_get(port, "/healthz")
            .is_some_and(|r| r.json()["pid"] != old_pid && r.json()["pid"].is_u64())
    });
    let successor = http_get(port, "/healthz").unwrap().json()["pid"]
        .as_u64()
        .unwrap() as u32;
    let _successor_guard = KillPidOnDrop(successor);
    assert_eq!(gateway.wait_exit().code(), Some(0));
    assert!(is_active(port), "{:?}", cluster_of(port));
    assert_eq!(
        fencing_token(port),
        token,
        "the token changed across a restart"
    );
    // Well past the lease's TTL: the successor keeps it alive, the standby waits.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        assert!(!is_active(standby.port), "the standby took the key");
        assert!(is_active(port));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(standby.is_running());
    // The successor's clean stop revokes the inherited lease: the standby takes over.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(successor as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    let since = Instant::now();
    time_until_active(standby.port, since, Duration::from_secs(2));
    assert!(fencing_token(standby.port) > token);
}

#[test]
fn a_healthy_pair_on_etcds_default_keepalive_policy_logs_no_warning_for_8s() {
    // tests/support/etcd.rs passes no --grpc-keepalive-* flag: etcd's defaults, under
    // which a client pinging more often than every 5 s is dropped as abusive. The
    // gRPC client this replaced was dropped every ~4.5 s: 8 s covers one of those
    // periods whatever the phase, and keeps the test under the suite's 10 s ceiling (issue 18).
    let Some(etcd) = Etcd::start() else { return };
    let mut active = member(&etcd, "quiet", 60, &[]);
    let token = fencing_token(active.port);
    let mut standby = member(&etcd, "quiet", 60, &["--standby"]);

    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        assert_eq!(fencing_token(active.port), token);
        assert!(!is_active(standby.port));
        std::thread::sleep(Duration::from_millis(200));
    }
    // The standby first, so that the active's stop hands nothing over.
    for gateway in [&mut standby, &mut active] {
        gateway.signal(Signal::SIGTERM);
        assert_eq!(gateway.wait_exit().code(), Some(0));
    }
    for (role, gateway) in [("active", &mut active), ("standby", &mut standby)] {
        let stderr = gateway.stderr_now();
        let complaints: Vec<&str> = stderr
            .lines()
            .filter(|line| line.contains("WARN") || line.contains("cannot reach"))
            .collect();
        assert!(complaints.is_empty(), "the {role} complained: {stderr}");
    }
}

#[test]
fn status_json_names_the_role_of_an_active_and_a_standby() {
    let Some(etcd) = Etcd::start() else { return };
    let active = member(&etcd, "roles", 10, &[]);
    let standby = member(&etcd, "roles", 10, &["--standby"]);
    for (gateway, role) in [(&active, "active"), (&standby, "standby")] {
        let port = gateway.port.to_string();
        let (code, stdout, stderr) = run_cli(&["status", "--port", &port, "--json"]);
        assert_eq!(code, 0, "{stderr}");
        let status: Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(status["state"], "running");
        assert_eq!(status["role"], role, "{stdout}");
        let (_, summary, _) = run_cli(&["status", "--port", &port]);
        assert!(
            summary.contains(&format!("cluster key \"roles\": {role}")),
            "{summary}"
        );
    }
    let alone = Gateway::start(free_port(), &[]);
    let (_, stdout, _) = run_cli(&["status", "--port", &alone.port.to_string(), "--json"]);
    let status: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(status["role"], Value::Null, "not clustered: {stdout}");
}
