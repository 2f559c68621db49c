//! The ports through which the world asks a serving gateway to stop or to restart:
//! signals, and the control socket of `gateway restart`. Each kind merges into one
//! stream of requests, so the lifecycle waits on two things, whatever their origin.

use async_trait::async_trait;

use crate::handoff::RestartAnswer;

/// Requests to stop (SIGTERM, SIGINT).
#[async_trait]
pub trait StopTrigger: Send {
    /// The next stop request, named for the log (`"SIGTERM"`). MUST NOT miss a
    /// request made since the trigger was created (signals are caught from then on).
    async fn next(&mut self) -> &'static str;
}

/// Requests to restart by handoff (SIGHUP, `gateway restart`).
#[async_trait]
pub trait RestartTrigger: Send {
    /// The next restart request. MUST drop malformed or unauthorised callers itself:
    /// only well-formed requests come out.
    async fn next(&mut self) -> RestartRequest;
}

/// One restart request: where it came from, and who waits for the outcome.
pub struct RestartRequest {
    /// For the log: `"SIGHUP"`, `"gateway restart"`.
    pub trigger: &'static str,
    /// The caller waiting for the answer; `None` for a signal.
    pub responder: Option<Box<dyn RestartResponder>>,
}

/// The caller of a restart request, waiting for its answer.
#[async_trait]
pub trait RestartResponder: Send {
    /// Sends the answer. MUST NOT fail or block for long: a caller that went away
    /// is nobody's problem.
    async fn answer(self: Box<Self>, answer: &RestartAnswer);
}
