//! Log output formats.

use crate::support::*;
use nix::sys::signal::Signal;

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
fn json_listening_line_carries_url_pid_and_version_as_fields() {
    let port = free_port();
    let mut gateway = Gateway::start(port, &["--log-format", "json"]);
    gateway.signal(Signal::SIGTERM);
    assert_eq!(gateway.wait_exit().code(), Some(0));
    let stderr = gateway.stderr_now();
    let listening: serde_json::Value = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|value| {
            value["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("gateway listening on "))
        })
        .unwrap_or_else(|| panic!("no listening line: {stderr}"));
    assert_eq!(
        listening["message"],
        format!(
            "gateway listening on ws://127.0.0.1:{port} (pid {})",
            gateway.child.id()
        )
    );
    assert_eq!(listening["url"], format!("ws://127.0.0.1:{port}"));
    assert_eq!(listening["pid"], gateway.child.id());
    assert_eq!(listening["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn text_logs_carry_the_listening_line() {
    let port = free_port();
    let mut gateway = Gateway::start(port, &[]);
    gateway.signal(Signal::SIGTERM);
    gateway.wait_exit();
    let stderr = gateway.stderr_now();
    let line = stderr
        .lines()
        .find(|line| line.contains("gateway listening on"))
        .unwrap_or_else(|| panic!("no listening line: {stderr}"));
    assert!(
        line.contains(&format!(
            "gateway listening on ws://127.0.0.1:{port} (pid {}) ",
            gateway.child.id()
        )),
        "{line}"
    );
    assert!(
        line.contains(&format!(" version={}", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
}

#[test]
fn version_names_the_commit_it_was_built_from_when_git_knew_it() {
    let (code, stdout, stderr) = run_cli(&["--version"]);
    assert_eq!(code, 0, "{stderr}");
    let line = stdout.trim_end();
    let bare = format!("gateway {}", env!("CARGO_PKG_VERSION"));
    // The workspace's own commit, if it is a git work tree and git is installed;
    // from a tarball, the bare version.
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    let Some(head) = head else {
        assert_eq!(line, bare);
        return;
    };
    let detail = line
        .strip_prefix(&format!("{bare} ("))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not `{bare} (HASH DATE)`: {line}"));
    let (hash, date) = detail.split_once(' ').expect("hash and date");
    assert!(
        hash.len() >= 7 && head.starts_with(hash),
        "{hash} is not HEAD {head}"
    );
    let date_shape: Vec<usize> = date.split('-').map(str::len).collect();
    assert_eq!(date_shape, [4, 2, 2], "{date}");
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
