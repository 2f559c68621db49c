//! Profiles: one gateway per profile on any ports, several profiles side by side.

mod support;

use std::path::Path;

use nix::sys::signal::Signal;
use support::*;

/// Gateways sharing one XDG state home, so profiles map to sibling directories.
fn in_home(home: &Path, port: u16, args: &[&str]) -> Gateway {
    Gateway::spawn_with(port, args, |c| {
        c.env_remove("GATEWAY_STATE_DIR")
            .env("XDG_STATE_HOME", home);
    })
}

#[test]
fn a_second_gateway_on_the_same_profile_exits_78_and_frees_its_port() {
    let home = TempDir::new("profiles");
    let (port_a, port_b) = (free_port(), free_port());
    let mut first = in_home(home.path(), port_a, &["--profile", "work"]);
    first.wait_healthy();

    let mut second = in_home(home.path(), port_b, &["--profile", "work"]);
    let code = second.wait_exit().code();
    let stderr = second.stderr_now();
    assert_eq!(code, Some(78), "{stderr}");
    assert_eq!(
        first_line(&stderr),
        format!(
            "GatewayLockError: profile \"work\" is already in use by the gateway on ws://127.0.0.1:{port_a} (pid {})",
            first.child.id()
        )
    );
    assert!(
        port_is_free(port_b),
        "the refused gateway released its port"
    );
    assert!(first.is_running());
}

#[test]
fn two_profiles_run_side_by_side() {
    let home = TempDir::new("profiles");
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = in_home(home.path(), port_a, &["--profile", "a"]);
    let mut b = in_home(home.path(), port_b, &["--profile", "b"]);
    a.wait_healthy();
    b.wait_healthy();
    assert_eq!(http_get(port_a, "/healthz").unwrap().json()["profile"], "a");
    assert_eq!(http_get(port_b, "/healthz").unwrap().json()["profile"], "b");
    let lock = std::fs::read_to_string(home.path().join("gateway/a/gateway.lock")).unwrap();
    assert!(lock.contains(&format!("pid={}", a.child.id())), "{lock}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.path().join("gateway/a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}

#[test]
fn a_profile_is_free_again_right_after_sigkill() {
    let home = TempDir::new("profiles");
    let (port_a, port_b) = (free_port(), free_port());
    let mut first = in_home(home.path(), port_a, &["--profile", "p"]);
    first.wait_healthy();
    first.signal(Signal::SIGKILL);
    first.wait_exit();
    let mut second = in_home(home.path(), port_b, &["--profile", "p"]);
    second.wait_healthy();
    assert_eq!(http_get(port_b, "/healthz").unwrap().json()["profile"], "p");
}

#[test]
fn bad_profile_names_exit_2() {
    let port = free_port();
    for name in ["", "../escape", "a/b", &"x".repeat(65)] {
        let (code, stderr) = run_to_exit(port, &["--profile", name]);
        assert_eq!(code, 2, "{name:?}: {stderr}");
        assert!(stderr.contains("profile"), "{stderr}");
    }
    assert!(port_is_free(port));
}

#[test]
fn dev_profile_is_named_dev() {
    let port = free_port();
    let _gateway = Gateway::start(port, &["--dev"]);
    assert_eq!(http_get(port, "/healthz").unwrap().json()["profile"], "dev");
}
