//! Profiles: one gateway per profile on any ports, several profiles side by side.

use std::path::Path;

use crate::support::*;
use nix::sys::signal::Signal;

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

/// Runs a gateway on `port` with `--state-dir DIR` until it exits: code and stderr.
fn start_in(dir: &Path, port: u16) -> (i32, String) {
    let dir = dir.to_str().expect("a UTF-8 temp path");
    run_to_exit(port, &["--state-dir", dir])
}

/// The refusal line (docs/reference.md#profiles) for the default profile in `dir`.
fn cannot_lock(dir: &Path, what_is_wrong: &str) -> String {
    format!(
        "GatewayLockError: cannot lock profile \"default\" at {}: {what_is_wrong}",
        dir.display()
    )
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_state_dir_writable_by_others_is_refused_with_exit_1_and_the_port_released() {
    let home = TempDir::new("open-state");
    set_mode(home.path(), 0o777);
    let port = free_port();
    let (code, stderr) = start_in(home.path(), port);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        first_line(&stderr),
        cannot_lock(
            home.path(),
            "writable by group or others (mode 0777); remove their write access (chmod go-w) \
             or use another directory"
        )
    );
    assert!(port_is_free(port), "the refused gateway released its port");
    assert!(
        std::fs::read_dir(home.path()).unwrap().next().is_none(),
        "nothing was written in the refused directory"
    );
}

#[test]
fn a_symbolic_link_named_gateway_lock_is_refused_and_its_target_left_unchanged() {
    let home = TempDir::new("linked-lock");
    let elsewhere = TempDir::new("link-target");
    let target = elsewhere.path().join("precious");
    std::fs::write(&target, "root-only content\n").unwrap();
    std::os::unix::fs::symlink(&target, home.path().join("gateway.lock")).unwrap();
    let port = free_port();
    let (code, stderr) = start_in(home.path(), port);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        first_line(&stderr),
        cannot_lock(
            home.path(),
            "gateway.lock is a symbolic link; remove it (the gateway recreates it)"
        )
    );
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "root-only content\n"
    );
    assert!(port_is_free(port));
}

#[test]
fn status_does_not_follow_a_symbolic_link_named_gateway_lock() {
    // A link to a real gateway's held lock file: followed, it would make `status`
    // report that gateway as this profile's.
    let real = TempDir::new("real-state");
    let port = free_port();
    let _gateway = Gateway::start(port, &["--state-dir", real.path().to_str().unwrap()]);
    let home = TempDir::new("linked-status");
    std::os::unix::fs::symlink(
        real.path().join("gateway.lock"),
        home.path().join("gateway.lock"),
    )
    .unwrap();
    let dir = home.path().to_str().unwrap();
    let (_, stdout, stderr) = run_cli(&["status", "--state-dir", dir, "--json"]);
    let state: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // Not the linked gateway's port: the profile's default port instead (only looked
    // at, never bound, by this test).
    let default = gateway_domain::config::DEFAULT_PORT;
    assert_ne!(
        state["url"],
        format!("ws://127.0.0.1:{port}"),
        "{stdout}{stderr}"
    );
    assert_eq!(
        state["url"],
        format!("ws://127.0.0.1:{default}"),
        "{stdout}{stderr}"
    );
}

#[test]
fn a_state_dir_owned_by_another_user_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: giving a directory to another user needs root (CI runs as root)");
        return;
    }
    let home = TempDir::new("foreign-state");
    nix::unistd::chown(home.path(), Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let port = free_port();
    let (code, stderr) = start_in(home.path(), port);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        first_line(&stderr),
        cannot_lock(
            home.path(),
            "owned by uid 65534, not by this gateway's user (uid 0); use a state directory of \
             your own"
        )
    );
    assert!(port_is_free(port));
    assert!(!home.path().join("gateway.lock").exists());
}

#[test]
fn a_fresh_state_dir_and_its_missing_parents_are_created_with_mode_0700() {
    use std::os::unix::fs::PermissionsExt;
    let home = TempDir::new("fresh");
    let dir = home.path().join("parent").join("state");
    let port = free_port();
    let mut gateway = Gateway::spawn(port, &["--state-dir", dir.to_str().unwrap()]);
    gateway.wait_healthy();
    for created in [&dir, &home.path().join("parent")] {
        let mode = std::fs::metadata(created).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", created.display());
    }
}

#[test]
fn a_state_dir_that_is_a_file_says_not_a_directory() {
    let home = TempDir::new("file-state");
    let file = home.path().join("passwd");
    std::fs::write(&file, "root:x:0:0\n").unwrap();
    let port = free_port();
    let (code, stderr) = start_in(&file, port);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(first_line(&stderr), cannot_lock(&file, "not a directory"));
    let below = file.join("gateway");
    let (code, stderr) = start_in(&below, port);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        first_line(&stderr),
        cannot_lock(&below, &format!("{} is not a directory", file.display()))
    );
    assert!(port_is_free(port));
}

#[cfg(target_os = "linux")]
#[test]
fn a_state_dir_that_cannot_be_created_says_so() {
    let dir = Path::new("/proc/gateway-test-cannot-create");
    let port = free_port();
    let (code, stderr) = start_in(dir, port);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        first_line(&stderr).starts_with(&cannot_lock(
            dir,
            "the directory does not exist and cannot be created: "
        )),
        "{stderr}"
    );
    assert!(port_is_free(port));
}

#[test]
fn a_bad_profile_or_port_from_the_environment_names_the_variable() {
    let state = TempDir::new("env-usage");
    for (variable, value) in [("GATEWAY_PROFILE", "../escape"), ("GATEWAY_PORT", "abc")] {
        let output = gateway_command(&[], state.path())
            .env(variable, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            first_line(&stderr).starts_with(&format!(
                "error: invalid value '{value}' for the environment variable {variable}: "
            )),
            "{stderr}"
        );
    }
}
