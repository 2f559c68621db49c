//! `gateway status`, `gateway stop` and `gateway --force`.

mod support;

use support::*;

#[test]
fn status_reports_a_running_gateway_with_exit_0() {
    let port = free_port();
    let gateway = Gateway::start(port, &[]);
    let p = port.to_string();
    let (code, stdout, _) = run_cli(&["status", "--port", &p, "--json"]);
    assert_eq!(code, 0, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["state"], "running");
    assert_eq!(json["url"], format!("ws://127.0.0.1:{port}"));
    assert_eq!(json["pid"], gateway.child.id());
    assert_eq!(json["program"], "gateway");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["profile"], "default");
    assert!(json["uptimeMs"].is_u64());

    let (code, stdout, _) = run_cli(&["status", "--port", &p]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains(&format!("pid {}", gateway.child.id())),
        "{stdout}"
    );
}

#[test]
fn status_of_a_free_port_is_stopped_with_exit_3() {
    let port = free_port().to_string();
    let (code, stdout, _) = run_cli(&["status", "--port", &port, "--json"]);
    assert_eq!(code, 3);
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["state"], "stopped");
    assert_eq!(json["pid"], serde_json::Value::Null);
}

#[test]
fn status_of_a_foreign_holder_is_exit_4_with_its_pid() {
    let port = free_port();
    let foreign = ForeignListener::spawn(port);
    let (code, stdout, _) = run_cli(&["status", "--port", &port.to_string(), "--json"]);
    assert_eq!(code, 4, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["state"], "foreign");
    assert_eq!(json["pid"], foreign.child.id());
    assert_eq!(json["version"], serde_json::Value::Null);
}

#[test]
fn stop_stops_a_gateway_and_frees_the_port() {
    let port = free_port();
    let mut gateway = Gateway::start(port, &[]);
    let (code, stdout, stderr) = run_cli(&["stop", "--port", &port.to_string()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("pid {}", gateway.child.id())));
    assert!(port_is_free(port));
    assert_eq!(gateway.wait_exit().code(), Some(0));
}

#[test]
fn stop_with_nothing_running_exits_3() {
    let port = free_port().to_string();
    let (code, _, _) = run_cli(&["stop", "--port", &port]);
    assert_eq!(code, 3);
}

#[test]
fn stop_refuses_a_foreign_holder_with_exit_4_and_leaves_it_alive() {
    let port = free_port();
    let mut foreign = ForeignListener::spawn(port);
    let (code, _, stderr) = run_cli(&["stop", "--port", &port.to_string()]);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("not a gateway"), "{stderr}");
    assert!(foreign.is_running());
}

#[test]
fn a_refused_start_names_the_foreign_holder_pid() {
    let port = free_port();
    let foreign = ForeignListener::spawn(port);
    let (code, stderr) = run_to_exit(port, &[]);
    assert_eq!(code, 75);
    assert!(
        stderr.contains(&format!("pid {}", foreign.child.id())),
        "the hint names the holder: {stderr}"
    );
    assert!(stderr.contains("gateway --port <port>"), "{stderr}");
}

#[test]
fn force_takes_the_port_from_a_foreign_listener() {
    let port = free_port();
    let mut foreign = ForeignListener::spawn(port);
    let holder_pid = foreign.child.id();
    let mut gateway = Gateway::spawn(port, &["--force"]);
    gateway.wait_healthy();
    wait_until("the foreign holder to exit", || !foreign.is_running());
    assert_eq!(
        http_get(port, "/healthz").unwrap().json()["pid"],
        gateway.child.id()
    );
    gateway.signal(nix::sys::signal::Signal::SIGTERM);
    gateway.wait_exit();
    assert!(gateway.stderr_now().contains(&format!("pid {holder_pid}")));
}
