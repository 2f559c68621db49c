//! Build script: gives `gateway --version` the commit it was built from, when git can
//! say. A build from a source tarball, without git, or with git failing prints the
//! version alone: building needs nothing but cargo (docs/reference.md#building).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let line = match commit(&manifest_dir) {
        Some(commit) => format!("{version} ({commit})"),
        None => version,
    };
    println!("cargo:rustc-env=GATEWAY_VERSION_WITH_COMMIT={line}");
}

/// `abc1234 2026-12-07`: the abbreviated hash and date of the commit checked out, when
/// this workspace is a git work tree of its own.
fn commit(manifest_dir: &Path) -> Option<String> {
    let git = |args: &[&str]| git(manifest_dir, args);
    // A tarball unpacked inside some other repository must not print that one's commit.
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    let workspace = manifest_dir.parent()?;
    if top.canonicalize().ok()? != workspace.canonicalize().ok()? {
        return None;
    }
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it names (a
    // commit), loose or packed. Only existing files: cargo reruns for a missing one
    // every time. A work tree made by `git worktree` has its HEAD outside `.git/`.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            let path = manifest_dir.join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    git(&[
        "-c",
        "log.showSignature=false",
        "log",
        "-1",
        "--date=short",
        "--format=%h %cd",
    ])
}

/// What `git ARGS` prints, trimmed; `None` when git is missing, fails or prints nothing.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_owned())
}
