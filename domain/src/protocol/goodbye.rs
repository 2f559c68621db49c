//! What WebSocket clients are told when the gateway lets them go: the `shutdown` event
//! and the close frame that follows it, for each reason docs/reference.md#websocket names.

use serde::Serialize;

use super::close::{self, CloseInstruction};
use super::frame;

/// Why the gateway is closing every session, and how it says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Goodbye {
    /// The `reason` of the `shutdown` event.
    pub reason: &'static str,
    /// The event's `restartExpectedMs`: `Some(0)` when a new process already serves.
    pub restart_expected_ms: Option<u64>,
    /// The close frame sent after the event.
    pub close: CloseInstruction,
}

/// A stop (SIGTERM, SIGINT, `gateway stop`): close 1001.
pub const STOPPING: Goodbye = Goodbye {
    reason: "gateway stopping",
    restart_expected_ms: None,
    close: close::GOING_AWAY,
};

/// A restart handed over to a new process that already serves: close 1012.
pub const RESTARTING: Goodbye = Goodbye {
    reason: "gateway restarting",
    restart_expected_ms: Some(0),
    close: CloseInstruction {
        code: 1012,
        reason: "gateway restarting",
    },
};

/// This gateway lost the cluster lock: another one is or will be active; close 1012
/// (the client may reconnect, to the new active).
pub const CLUSTER_LOCK_LOST: Goodbye = Goodbye {
    reason: close::CLUSTER_LOCK_LOST.reason,
    restart_expected_ms: None,
    close: close::CLUSTER_LOCK_LOST,
};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ShutdownPayload {
    reason: &'static str,
    restart_expected_ms: Option<u64>,
}

impl Goodbye {
    /// The `shutdown` event frame.
    pub fn event(&self) -> String {
        frame::event(
            "shutdown",
            &ShutdownPayload {
                reason: self.reason,
                restart_expected_ms: self.restart_expected_ms,
            },
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_says_stopping_and_closes_1001() {
        assert_eq!(
            STOPPING.event(),
            r#"{"type":"event","event":"shutdown","payload":{"reason":"gateway stopping","restartExpectedMs":null}}"#
        );
        assert_eq!(
            (STOPPING.close.code, STOPPING.close.reason),
            (1001, "gateway stopping")
        );
    }

    #[test]
    fn a_handover_says_restarting_at_once_and_closes_1012() {
        assert_eq!(
            RESTARTING.event(),
            r#"{"type":"event","event":"shutdown","payload":{"reason":"gateway restarting","restartExpectedMs":0}}"#
        );
        assert_eq!(
            (RESTARTING.close.code, RESTARTING.close.reason),
            (1012, "gateway restarting")
        );
    }
}
