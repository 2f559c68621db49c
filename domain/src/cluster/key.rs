//! The name a group of gateways competes for, and where it lives in the engine.

use std::fmt;

/// The prefix under which every gateway lock key lives.
pub const LOCK_PREFIX: &str = "/gateway/lock/";
/// The longest key accepted.
pub const MAX_CLUSTER_KEY: usize = 128;

/// A validated `--cluster-key`: one path component under [`LOCK_PREFIX`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterKey(String);

/// Why a key was refused (a usage error).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid cluster key \"{0}\": 1 to {MAX_CLUSTER_KEY} characters, no \"/\" and no control characters"
)]
pub struct ClusterKeyError(pub String);

impl ClusterKey {
    pub fn parse(key: &str) -> Result<Self, ClusterKeyError> {
        let valid = !key.is_empty()
            && key.chars().count() <= MAX_CLUSTER_KEY
            && !key.contains('/')
            && !key.chars().any(char::is_control);
        if valid {
            Ok(Self(key.to_owned()))
        } else {
            Err(ClusterKeyError(key.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The engine key of the lock: `/gateway/lock/KEY`.
    pub fn lock_path(&self) -> String {
        format!("{LOCK_PREFIX}{}", self.0)
    }
}

impl fmt::Display for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_lives_under_the_gateway_prefix() {
        assert_eq!(
            ClusterKey::parse("default").unwrap().lock_path(),
            "/gateway/lock/default"
        );
    }

    #[test]
    fn keys_that_would_leave_their_path_component_are_refused() {
        for bad in [
            "",
            "a/b",
            "/",
            "tab\there",
            &"k".repeat(MAX_CLUSTER_KEY + 1),
        ] {
            assert!(ClusterKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ClusterKey::parse("prod.chat-bot_1").is_ok());
    }
}
