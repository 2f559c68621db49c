//! Log output formats.

mod support;

use nix::sys::signal::Signal;
use support::*;

#[test]
fn json_log_format_writes_one_object_per_line() {
    let port = free_port();
    let mut gateway = Gateway::start(port, &["--log-format", "json"]);
    gateway.signal(Signal::SIGTERM);
    assert_eq!(gateway.wait_exit().code(), Some(0));
    let stderr = gateway.stderr_now();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() >= 2, "{stderr}");
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            value["message"].is_string() && value["level"].is_string(),
            "{line}"
        );
    }
    let listening = format!(
        "gateway listening on ws://127.0.0.1:{port} (pid {})",
        gateway.child.id()
    );
    assert!(lines.iter().any(|l| l.contains(&listening)), "{stderr}");
}

#[test]
fn text_logs_carry_the_listening_line() {
    let port = free_port();
    let mut gateway = Gateway::start(port, &[]);
    gateway.signal(Signal::SIGTERM);
    gateway.wait_exit();
    let stderr = gateway.stderr_now();
    assert!(
        stderr.contains(&format!(
            "gateway listening on ws://127.0.0.1:{port} (pid {})",
            gateway.child.id()
        )),
        "{stderr}"
    );
}

#[test]
fn an_invalid_log_filter_is_a_warning_not_silence() {
    let port = free_port();
    let mut gateway = Gateway::spawn_with(port, &[], |command| {
        command.env("GATEWAY_LOG", "gateway=loud");
    });
    gateway.wait_healthy();
    gateway.signal(Signal::SIGTERM);
    assert_eq!(gateway.wait_exit().code(), Some(0));
    let stderr = gateway.stderr_now();
    let warning = stderr
        .lines()
        .find(|l| l.contains("GATEWAY_LOG"))
        .unwrap_or_else(|| panic!("no warning about GATEWAY_LOG: {stderr}"));
    assert!(
        warning.contains("WARN") && warning.contains("not a valid filter"),
        "{warning}"
    );
    // It still logs, at info.
    assert!(stderr.contains("gateway listening on"), "{stderr}");
}
