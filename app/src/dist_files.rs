//! The generated files shipped in `dist/` (man pages, completion scripts) must match
//! what the code renders today. To regenerate them after changing the command line:
//!
//! ```sh
//! GATEWAY_UPDATE_DIST=1 cargo test -p gateway --bin gateway dist_files
//! ```

use std::path::{Path, PathBuf};

use crate::cli::CompletionShell;
use crate::{completions, man_page};

/// Each script's file name under `dist/completions/` (the Debian package installs them
/// under the names each shell looks for).
const COMPLETION_FILES: [(CompletionShell, &str); 3] = [
    (CompletionShell::Bash, "gateway.bash"),
    (CompletionShell::Zsh, "_gateway"),
    (CompletionShell::Fish, "gateway.fish"),
];

fn dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist")
}

/// Compares `rendered` with the file at `path`; with `GATEWAY_UPDATE_DIST` set, writes it.
fn assert_current(path: &Path, rendered: &[u8]) {
    if std::env::var_os("GATEWAY_UPDATE_DIST").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, rendered).unwrap();
        return;
    }
    let shipped = std::fs::read(path).unwrap_or_default();
    assert!(
        shipped == rendered,
        "{} is stale: regenerate with `GATEWAY_UPDATE_DIST=1 cargo test -p gateway --bin gateway dist_files`",
        path.display()
    );
}

#[test]
fn man_pages_in_dist_are_current() {
    let pages = man_page::pages();
    assert!(pages.iter().any(|(name, _)| name == "gateway.1"));
    for (name, text) in pages {
        assert_current(&dist().join("man").join(name), &text);
    }
}

#[test]
fn completion_scripts_in_dist_are_current() {
    for (shell, name) in COMPLETION_FILES {
        assert_current(
            &dist().join("completions").join(name),
            &completions::script(shell),
        );
    }
}
