//! External tools some tests drive (systemd-analyze, promtool, ...): present, or the test
//! is skipped with a message, except in CI (`CI=true`), where `.ci/run` installs them.

use std::process::Command;

/// Whether `tool` can be run; when it cannot, outside CI, says why the test is skipped.
pub fn tool_available(tool: &str, debian_package: &str) -> bool {
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
