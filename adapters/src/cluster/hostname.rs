//! This machine's name, as a cluster lock's holder record names it.

/// The host name, or `unknown` when the OS will not say.
pub fn this_host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
