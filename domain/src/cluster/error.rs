//! Why a clustered gateway could not become, or stay, active: docs/reference.md#cluster's lines
//! and exit codes for each.

use crate::exit_code::ExitCode;

use super::lock::{HolderRecord, LockFault};

/// A refusal of the cluster lock. `Display` is the documented text; `headline` adds
/// the `GatewayLockError: ` prefix users see, as for the port and profile locks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterLockError {
    /// The key is held by another gateway (and `--standby` was not given).
    #[error(
        "another gateway instance is already active for \"{key}\" on {} (pid {}, host {})",
        holder.url, holder.pid, holder.hostname
    )]
    HeldElsewhere { key: String, holder: HolderRecord },

    /// The engine did not answer.
    #[error("cannot reach the cluster lock at {url}: {reason}")]
    Unreachable { url: String, reason: String },

    /// The engine refuses this gateway (credentials, certificates): a configuration
    /// to fix, not a wait.
    #[error("cannot use the cluster lock at {url}: {reason}")]
    Unusable { url: String, reason: String },

    /// A restart's successor found the lease it inherited gone (expired, or the key
    /// no longer under it): it must not act on it.
    #[error("the cluster lock for \"{key}\" was lost before it could be taken over")]
    Lost { key: String },
}

impl ClusterLockError {
    /// The first line printed on stderr.
    pub fn headline(&self) -> String {
        format!("GatewayLockError: {self}")
    }

    /// Another gateway is active, or the engine refuses this one's credentials or
    /// certificates: final, do not restart (78). An unreachable engine
    /// may come back, and a lost lock may be had again: temporary (75).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::HeldElsewhere { .. } | Self::Unusable { .. } => ExitCode::Refused,
            Self::Unreachable { .. } | Self::Lost { .. } => ExitCode::PortHeld,
        }
    }
}

impl From<LockFault> for ClusterLockError {
    fn from(fault: LockFault) -> Self {
        match fault {
            LockFault::Unreachable { url, reason } => Self::Unreachable { url, reason },
            LockFault::Unusable { url, reason } => Self::Unusable { url, reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_held_elsewhere_is_the_documented_line_and_exit_78() {
        let error = ClusterLockError::HeldElsewhere {
            key: "default".into(),
            holder: HolderRecord {
                url: "ws://127.0.0.1:4000".into(),
                pid: 42,
                hostname: "alpha".into(),
            },
        };
        assert_eq!(
            error.headline(),
            r#"GatewayLockError: another gateway instance is already active for "default" on ws://127.0.0.1:4000 (pid 42, host alpha)"#
        );
        assert_eq!(error.exit_code().code(), 78);
    }

    #[test]
    fn an_unreachable_engine_is_the_documented_line_and_exit_75() {
        let error = ClusterLockError::from(LockFault::Unreachable {
            url: "http://127.0.0.1:2379".into(),
            reason: "connection refused".into(),
        });
        assert_eq!(
            error.headline(),
            "GatewayLockError: cannot reach the cluster lock at http://127.0.0.1:2379: connection refused"
        );
        assert_eq!(error.exit_code().code(), 75);
    }

    #[test]
    fn refused_credentials_are_the_documented_line_and_exit_78() {
        let error = ClusterLockError::from(LockFault::Unusable {
            url: "https://127.0.0.1:2379".into(),
            reason: "etcdserver: authentication failed, invalid user ID or password".into(),
        });
        assert_eq!(
            error.headline(),
            "GatewayLockError: cannot use the cluster lock at https://127.0.0.1:2379: etcdserver: authentication failed, invalid user ID or password"
        );
        assert_eq!(error.exit_code().code(), 78);
    }
}
