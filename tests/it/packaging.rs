//! What the package ships, checked as an operator's tools see it: the systemd units
//! (`systemd-analyze verify`), the completion scripts (`gateway completions`, run by bash),
//! the maintainer scripts (run by `sh` into a scratch root, as dpkg would).
//!
//! A tool that is missing skips its test with a message, except in CI (`CI=true`), where
//! `.ci/run` installs it and a missing tool is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::tools::tool_available;
use crate::support::*;

/// The repository's `dist/` folder.
fn dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist")
}

/// The packaged units, with the one path that only exists once the package is installed
/// (`/usr/bin/gateway`) pointed at the binary under test.
fn units_as_installed(dir: &Path) {
    for unit in ["gateway@.service", "gateway@.socket"] {
        let text = std::fs::read_to_string(dist().join("systemd").join(unit)).unwrap();
        let text = if unit.ends_with(".service") {
            assert!(
                text.contains("ExecStart=/usr/bin/gateway "),
                "the service runs the packaged binary, /usr/bin/gateway"
            );
            text.replace("/usr/bin/gateway", gateway_bin())
        } else {
            text
        };
        std::fs::write(dir.join(unit), text).unwrap();
    }
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    if !tool_available("systemd-analyze", "systemd") {
        return;
    }
    let dir = TempDir::new("units");
    units_as_installed(dir.path());
    // `Documentation=man:gateway(1)` is checked against the packaged man pages when `man`
    // is there to look them up.
    let man_dir = dir.path().join("man");
    std::fs::create_dir_all(man_dir.join("man1")).unwrap();
    for page in std::fs::read_dir(dist().join("man")).unwrap() {
        let page = page.unwrap().path();
        std::fs::copy(&page, man_dir.join("man1").join(page.file_name().unwrap())).unwrap();
    }
    let check_man = if tool_available("man", "man-db") {
        "--man=yes"
    } else {
        "--man=no"
    };
    let output = Command::new("systemd-analyze")
        .args(["verify", check_man])
        .env("MANPATH", &man_dir)
        .arg(dir.path().join("gateway@default.service"))
        .arg(dir.path().join("gateway@default.socket"))
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Unknown or misspelt directives are only warnings (exit 0): any line is a failure.
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {:?}\n{stderr}",
        output.status
    );
}

#[test]
fn completions_print_a_script_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, stdout, stderr) = run_cli(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {stderr}");
        assert!(stdout.contains("gateway"), "{shell}: {stdout}");
        assert!(stdout.contains("profile"), "{shell}: no --profile");
    }
}

#[test]
fn completions_for_an_unknown_shell_are_a_usage_error() {
    let (code, stdout, stderr) = run_cli(&["completions", "tcsh"]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(stderr.contains("tcsh"), "{stderr}");
}

#[test]
fn bash_completion_registers_and_completes_subcommands() {
    if !tool_available("bash", "bash") {
        return;
    }
    let (_, script, _) = run_cli(&["completions", "bash"]);
    let dir = TempDir::new("bash-completion");
    let path = dir.path().join("gateway.bash");
    std::fs::write(&path, script).unwrap();
    // What bash does on `gateway st<TAB>`.
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!(
            r#"source {} && COMP_WORDS=(gateway st) COMP_CWORD=1 COMP_LINE="gateway st" COMP_POINT=10 && _gateway gateway st gateway && printf '%s\n' "${{COMPREPLY[@]}}""#,
            path.display()
        ))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut offered: Vec<&str> = stdout.lines().collect();
    offered.sort_unstable();
    assert_eq!(offered, ["status", "stop"]);
}

/// Runs a maintainer script of `dist/debian/` as dpkg would, into the root `root`
/// (`DPKG_ROOT`), with a `systemctl` that only writes down its arguments.
fn run_maintainer_script(script: &str, action: &str, root: &Path) -> Vec<String> {
    let bin = root.join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = root.join("systemctl.log");
    let systemctl = bin.join("systemctl");
    std::fs::write(
        &systemctl,
        format!("#!/bin/sh\necho \"$*\" >> '{}'\n", log.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("sh")
        .arg(dist().join("debian").join(script))
        .arg(action)
        .env("DPKG_ROOT", root)
        .env("PATH", path)
        .output()
        .expect("run sh");
    assert!(
        output.status.success(),
        "{script} {action}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    calls.lines().map(str::to_owned).collect()
}

/// A root where systemd runs and the `work` instance is enabled with its socket.
fn root_with_an_enabled_instance() -> (TempDir, Vec<PathBuf>) {
    let root = TempDir::new("dpkg-root");
    std::fs::create_dir_all(root.path().join("run/systemd/system")).unwrap();
    let units = root.path().join("etc/systemd/system");
    let links = vec![
        units.join("multi-user.target.wants/gateway@work.service"),
        units.join("sockets.target.wants/gateway@work.socket"),
    ];
    for link in &links {
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        let unit = link
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .replace("work", "");
        std::os::unix::fs::symlink(format!("/usr/lib/systemd/system/{unit}"), link).unwrap();
    }
    // Someone else's enabled unit, which must stay.
    std::os::unix::fs::symlink(
        "/usr/lib/systemd/system/other.service",
        units.join("multi-user.target.wants/other.service"),
    )
    .unwrap();
    std::fs::create_dir_all(root.path().join("var/lib/private/gateway/work")).unwrap();
    (root, links)
}

#[test]
fn removing_the_package_stops_the_running_instances_and_removes_their_links() {
    let (root, links) = root_with_an_enabled_instance();
    let calls = run_maintainer_script("prerm", "remove", root.path());
    assert_eq!(calls, ["stop gateway@*.socket gateway@*.service"]);
    let calls = run_maintainer_script("postrm", "remove", root.path());
    assert_eq!(calls, ["--system daemon-reload"]);
    for link in &links {
        assert!(
            link.symlink_metadata().is_err(),
            "{} is left",
            link.display()
        );
    }
    let other = root
        .path()
        .join("etc/systemd/system/multi-user.target.wants/other.service");
    assert!(other.symlink_metadata().is_ok(), "another unit's link went");
    assert!(
        root.path().join("var/lib/private/gateway/work").is_dir(),
        "a removal keeps the state"
    );
}

#[test]
fn purging_the_package_removes_the_instances_state_too() {
    let (root, links) = root_with_an_enabled_instance();
    run_maintainer_script("postrm", "purge", root.path());
    assert!(links.iter().all(|l| l.symlink_metadata().is_err()));
    assert!(!root.path().join("var/lib/private/gateway").exists());
}

#[test]
fn an_upgrade_leaves_the_running_instances_alone() {
    let (root, links) = root_with_an_enabled_instance();
    assert!(run_maintainer_script("prerm", "upgrade", root.path()).is_empty());
    assert!(run_maintainer_script("postrm", "upgrade", root.path()).is_empty());
    assert!(links.iter().all(|l| l.symlink_metadata().is_ok()));
}
