//! Who is active, as the gateway reports it, and what a lost lock leads to.

use serde::Serialize;

/// A clustered gateway's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Holds the lock with a live lease: serves WebSocket sessions.
    Active,
    /// Holds its port and profile, serves HTTP, waits for the lock.
    Standby,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Standby => "standby",
        }
    }
}

/// The `cluster` object of `/healthz`:
/// `{"key":"KEY","role":"active"|"standby","fencingToken":N|null}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView<'a> {
    pub key: &'a str,
    pub role: &'static str,
    pub fencing_token: Option<u64>,
}

impl<'a> ClusterView<'a> {
    /// The view of `role`; the token is shown only while active.
    pub fn new(key: &'a str, role: Role, fencing_token: Option<u64>) -> Self {
        Self {
            key,
            role: role.as_str(),
            fencing_token: fencing_token.filter(|_| role == Role::Active),
        }
    }
}

/// What an active gateway does once its lock is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterLoss {
    /// Stop like a SIGTERM, but exit 75: a supervisor may restart it.
    Exit,
    /// `--standby`: keep port and profile, wait for the lock again.
    BackToStandby,
}

impl AfterLoss {
    pub fn for_standby(standby: bool) -> Self {
        if standby {
            Self::BackToStandby
        } else {
            Self::Exit
        }
    }
}

/// The shutdown event's reason and the close reason when the lock is lost.
pub const LOCK_LOST_REASON: &str = "cluster lock lost";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_cluster_object_has_the_documented_shape() {
        let active = ClusterView::new("default", Role::Active, Some(7));
        assert_eq!(
            serde_json::to_string(&active).unwrap(),
            r#"{"key":"default","role":"active","fencingToken":7}"#
        );
        let standby = ClusterView::new("default", Role::Standby, Some(7));
        assert_eq!(
            serde_json::to_string(&standby).unwrap(),
            r#"{"key":"default","role":"standby","fencingToken":null}"#
        );
    }

    #[test]
    fn a_lost_lock_exits_unless_standby_was_asked_for() {
        assert_eq!(AfterLoss::for_standby(false), AfterLoss::Exit);
        assert_eq!(AfterLoss::for_standby(true), AfterLoss::BackToStandby);
    }
}
