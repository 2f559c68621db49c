//! What the package ships, checked as an operator's tools see it: the systemd units
//! (`systemd-analyze verify`).
//!
//! A tool that is missing skips its test with a message, except in CI (`CI=true`), where
//! `.ci/run` installs it and a missing tool is a failure.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

/// The repository's `dist/` folder.
fn dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist")
}

/// Whether `tool` can be run; when it cannot, outside CI, says why the test is skipped.
fn tool_available(tool: &str, debian_package: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is missing in CI (Debian package `{debian_package}`; .ci/run installs it)"
        );
        eprintln!("SKIPPED: {tool} not found (install the Debian package `{debian_package}`)");
    }
    found
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
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
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
