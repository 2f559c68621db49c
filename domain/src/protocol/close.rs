//! The close codes and reasons the gateway ends a WebSocket with.

/// A close frame to send: RFC 6455 code and a short reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseInstruction {
    pub code: u16,
    pub reason: &'static str,
}

/// The gateway is stopping (1001).
pub const GOING_AWAY: CloseInstruction = CloseInstruction {
    code: 1001,
    reason: "gateway stopping",
};
/// The protocol range offered does not contain ours (1002).
pub const PROTOCOL_MISMATCH: CloseInstruction = CloseInstruction {
    code: 1002,
    reason: "protocol mismatch",
};
/// A binary message: only JSON text is spoken (1003).
pub const BINARY_REFUSED: CloseInstruction = CloseInstruction {
    code: 1003,
    reason: "binary messages are not supported",
};
/// The first message was not a `connect` request (1008).
pub const INVALID_HANDSHAKE: CloseInstruction = CloseInstruction {
    code: 1008,
    reason: "invalid handshake: first request must be connect",
};
/// No `connect` in time (1008).
pub const HANDSHAKE_TIMEOUT: CloseInstruction = CloseInstruction {
    code: 1008,
    reason: "handshake timeout",
};
/// Wrong or missing token (1008).
pub const UNAUTHORIZED: CloseInstruction = CloseInstruction {
    code: 1008,
    reason: "unauthorized",
};
/// A message not complete within the message timeout of its first frame (1008).
pub const MESSAGE_TIMEOUT: CloseInstruction = CloseInstruction {
    code: 1008,
    reason: "message timeout",
};
/// A message that would take the gateway over `--max-buffered-mb`, or a failed
/// `connect` turned away because too many failed attempts already wait (1013).
pub const TRY_AGAIN_LATER: CloseInstruction = CloseInstruction {
    code: 1013,
    reason: "try again later",
};
/// A message over the size limit (1009).
pub const MESSAGE_TOO_BIG: CloseInstruction = CloseInstruction {
    code: 1009,
    reason: "message too big",
};
/// This gateway lost the cluster lock: another one is or will be active (1012).
pub const CLUSTER_LOCK_LOST: CloseInstruction = CloseInstruction {
    code: 1012,
    reason: crate::cluster::role::LOCK_LOST_REASON,
};
