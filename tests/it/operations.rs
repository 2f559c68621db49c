//! `gateway status`, `gateway stop` and `gateway --force`.

use crate::support::*;

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

/// The command between the first pair of backticks after `marker` in `text`.
fn quoted_command_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    let rest = &text[text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in {text}"))..];
    let start = rest.find('`').expect("a quoted command") + 1;
    let end = start + rest[start..].find('`').expect("a closing backquote");
    rest[start..end].split_whitespace().collect()
}

#[test]
fn both_hints_of_a_refused_start_work_when_followed_as_printed() {
    // Every command shares one state root, as on a user's machine: a second instance
    // on the first one's profile would be refused.
    let home = TempDir::new("hint");
    let shared_root = |command: &mut std::process::Command| {
        command
            .env_remove("GATEWAY_STATE_DIR")
            .env("XDG_STATE_HOME", home.path());
    };
    let port = free_port();
    let mut first = Gateway::spawn_with(port, &[], shared_root);
    first.wait_healthy();
    let mut refused = Gateway::spawn_with(port, &[], shared_root);
    let code = refused.wait_exit().code();
    let stderr = refused.stderr_now();
    assert_eq!(code, Some(78), "{stderr}");

    // "start a second instance with `gateway --profile <name> --port <port>`"
    let second_port = free_port();
    let second: Vec<String> = quoted_command_after(&stderr, "second instance")
        .into_iter()
        .map(|word| match word {
            "<name>" => "second".to_owned(),
            "<port>" => second_port.to_string(),
            other => other.to_owned(),
        })
        .collect();
    assert_eq!(second[0], "gateway", "{stderr}");
    let args: Vec<&str> = second[1..].iter().map(String::as_str).collect();
    let mut command = gateway_command(&args, home.path());
    shared_root(&mut command);
    let mut second_gateway = KilledOnDrop(command.spawn().unwrap());
    wait_until("the second instance to serve", || {
        http_get(second_port, "/healthz").is_some_and(|r| r.status == 200)
    });
    assert_eq!(
        http_get(second_port, "/healthz").unwrap().json()["profile"],
        "second"
    );
    assert!(second_gateway.is_running());

    // "stop it with `gateway stop --port PORT`"
    let stop = quoted_command_after(&stderr, "stop it with");
    assert_eq!(stop[..2], ["gateway", "stop"], "{stderr}");
    let (code, stdout, stderr_stop) = run_cli(&stop[1..]);
    assert_eq!(code, 0, "{stdout}{stderr_stop}");
    assert_eq!(first.wait_exit().code(), Some(0));
}

#[test]
fn a_gateway_at_its_connection_cap_is_still_known_as_a_gateway() {
    let port = free_port();
    let mut gateway = Gateway::start(port, &["--max-connections", "2"]);
    let idle: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    // What /readyz said last, for the failure message: no answer at all and 200 (the
    // idle connections dropped after the 10 s header deadline) fail differently.
    let mut last = None;
    let reached = std::time::Instant::now() + DEADLINE;
    while last != Some(503) {
        assert!(
            std::time::Instant::now() < reached,
            "the cap was never reached: /readyz said {last:?}; running: {}",
            gateway.is_running()
        );
        last = http_get(port, "/readyz").map(|r| r.status);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let p = port.to_string();
    let (code, stdout, _) = run_cli(&["status", "--port", &p, "--json"]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(stdout.trim()).unwrap()["pid"],
        gateway.child.id()
    );
    let (code, stderr) = run_to_exit(port, &[]);
    assert_eq!(code, 78, "{stderr}");
    let (code, stdout, stderr) = run_cli(&["stop", "--port", &p]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(gateway.wait_exit().code(), Some(0));
    drop(idle);
}

#[test]
fn status_and_stop_find_a_gateway_on_another_loopback_address_with_bind() {
    let port = free_port();
    let p = port.to_string();
    let mut gateway = Gateway::spawn(port, &["--bind", "127.0.0.2"]);
    wait_until("the gateway on 127.0.0.2 to answer status", || {
        run_cli(&["status", "--port", &p, "--bind", "127.0.0.2"]).0 == 0
    });
    let (code, stdout, _) = run_cli(&["status", "--port", &p, "--bind", "127.0.0.2", "--json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["url"], format!("ws://127.0.0.2:{port}"));
    assert_eq!(json["pid"], gateway.child.id());
    // Without --bind, 127.0.0.1 is asked, where nothing runs.
    assert_eq!(run_cli(&["status", "--port", &p]).0, 3);
    let (code, stdout, stderr) = run_cli(&["stop", "--port", &p, "--bind", "127.0.0.2"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(gateway.wait_exit().code(), Some(0));
}

#[test]
fn status_and_stop_by_profile_find_the_port_in_the_held_lock_file() {
    let port = free_port();
    let home = TempDir::new("xdg");
    let xdg = |command: &mut std::process::Command| {
        command
            .env_remove("GATEWAY_STATE_DIR")
            .env("XDG_STATE_HOME", home.path());
    };
    let mut gateway = Gateway::spawn_with(port, &["--profile", "work"], xdg);
    gateway.wait_healthy();
    let cli = |args: &[&str]| {
        let mut command = gateway_command(args, home.path());
        xdg(&mut command);
        let output = command.output().unwrap();
        (
            output.status.code().unwrap(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (code, stdout) = cli(&["status", "--profile", "work", "--json"]);
    assert_eq!(code, 0, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["url"], format!("ws://127.0.0.1:{port}"));
    assert_eq!(json["profile"], "work");

    let (code, stdout) = cli(&["stop", "--profile", "work"]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(gateway.wait_exit().code(), Some(0));
    // The file stays with its record, but a free lock names no port: the record is
    // history, and the profile's default port is asked instead.
    assert!(home.path().join("gateway/work/gateway.lock").exists());
    let (_, stdout) = cli(&["status", "--profile", "work", "--json"]);
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_ne!(json["url"], format!("ws://127.0.0.1:{port}"));
}

#[test]
fn profile_and_dev_together_are_a_usage_error() {
    let state = TempDir::new("conflict");
    let port = free_port().to_string();
    for args in [
        &["--profile", "work", "--dev", "--port", &port][..],
        &["status", "--profile", "work", "--dev"],
    ] {
        let output = gateway_command(args, state.path()).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("--dev"));
    }
    assert!(port_is_free(port.parse().unwrap()));
}

#[test]
fn a_port_held_by_an_outgoing_connection_is_named_as_such() {
    // An outgoing connection's local port comes from the ephemeral range.
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(server.local_addr().unwrap()).unwrap();
    let (_accepted, _) = server.accept().unwrap();
    let port = client.local_addr().unwrap().port();
    let (code, stderr) = run_to_exit(port, &[]);
    assert_eq!(code, 75, "{stderr}");
    assert!(
        stderr.contains("outgoing connection") && stderr.contains("ephemeral port range"),
        "{stderr}"
    );
    assert!(stderr.contains("outside"), "{stderr}");
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

#[test]
fn force_over_a_gateway_says_what_it_evicts_and_never_prints_gateway_lock_error() {
    let port = free_port();
    let mut old = Gateway::start(port, &[]);
    let old_pid = old.child.id();
    let mut forced = Gateway::spawn(port, &["--force"]);
    let forced_pid = forced.child.id();
    wait_until("the forced gateway to serve", || {
        assert!(forced.is_running(), "the forced start exited");
        http_get(port, "/healthz").is_some_and(|r| r.json()["pid"] == forced_pid)
    });
    assert_eq!(
        old.wait_exit().code(),
        Some(0),
        "the old one stopped cleanly"
    );
    forced.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(forced.wait_exit().code(), Some(0));
    let stderr = forced.stderr_now();
    assert!(!stderr.contains("GatewayLockError"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "is held by pid {old_pid} (gateway); sending SIGTERM"
        )),
        "{stderr}"
    );
}

/// The command between backticks on the line of `stderr` that mentions `--force`.
fn force_hint(stderr: &str) -> Vec<String> {
    let line = stderr
        .lines()
        .find(|l| l.contains("--force"))
        .unwrap_or_else(|| panic!("no --force hint: {stderr}"));
    assert!(line.starts_with("  "), "a hint is indented: {line:?}");
    let command = line
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in {line:?}"));
    let mut words = command.split_whitespace().map(str::to_owned);
    assert_eq!(words.next().as_deref(), Some("gateway"), "{line:?}");
    words.collect()
}

#[test]
fn a_foreign_holders_refusal_offers_force_and_following_it_takes_the_port() {
    let port = free_port();
    let mut foreign = ForeignListener::spawn(port);
    let (code, stderr) = run_to_exit(port, &[]);
    assert_eq!(code, 75, "{stderr}");
    let hint = force_hint(&stderr);
    assert_eq!(hint, ["--force", "--port", &port.to_string()]);

    // Followed as printed.
    let state = TempDir::new("force-hint");
    let args: Vec<&str> = hint.iter().map(String::as_str).collect();
    let mut gateway = KilledOnDrop(
        gateway_command(&args, state.path())
            .spawn()
            .expect("spawn gateway"),
    );
    wait_until("the forced gateway to serve", || {
        assert!(gateway.is_running(), "the forced start exited");
        http_get(port, "/healthz").is_some_and(|r| r.json()["pid"] == gateway.id())
    });
    wait_until("the foreign holder to exit", || !foreign.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_force_starts_at_once_one_serves_and_the_other_refuses_78_naming_it() {
    let port = free_port();
    let mut old = tokio::task::block_in_place(|| Gateway::start(port, &[]));
    // A client that never answers the close keeps the old gateway on the port after
    // one SIGTERM, so however late the second forced start comes, it finds the old
    // one there too (the second SIGTERM then ends it at once).
    let (_stuck, _) = ws::connected(port).await;
    let mut starts = [
        Gateway::spawn(port, &["--force"]),
        Gateway::spawn(port, &["--force"]),
    ];
    let (loser, code) = tokio::task::block_in_place(|| {
        poll_until("one of the forced starts to give up", DEADLINE, || {
            starts
                .iter_mut()
                .enumerate()
                .find_map(|(i, s)| s.child.try_wait().unwrap().map(|status| (i, status)))
        })
    });
    let winner = 1 - loser;
    let winner_pid = starts[winner].child.id();
    tokio::task::block_in_place(|| {
        wait_until("the winner to serve", || {
            http_get(port, "/healthz").is_some_and(|r| r.json()["pid"] == winner_pid)
        });
        old.wait_exit();
    });
    let stderr = starts[loser].stderr_now();
    assert_eq!(code.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "GatewayLockError: another gateway instance is already listening on ws://127.0.0.1:{port}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("held by gateway pid {winner_pid} ")),
        "names the winner: {stderr}"
    );
    assert!(!stderr.contains("No such process"), "{stderr}");
    assert!(!stderr.contains("still held after SIGKILL"), "{stderr}");
    assert!(starts[winner].is_running());
}
