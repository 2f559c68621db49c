//! The port to other processes: signal them and tell whether they still run. Used by
//! `gateway stop` and `--force`, never on the gateway itself.

/// The signals the gateway ever sends to others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// Ask for a graceful stop (SIGTERM).
    Terminate,
    /// Stop now (SIGKILL).
    Kill,
}
