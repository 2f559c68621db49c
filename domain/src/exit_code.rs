//! The process exit codes (docs/reference.md#exit-codes), by meaning.

/// How the `gateway` process ends. The numbers are public: scripts and
/// supervisors (`RestartPreventExitStatus=78`) read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Clean stop; `status`: running; `stop`: stopped.
    Clean = 0,
    /// Runtime failure, shutdown timeout, second signal; `stop`: timed out.
    RuntimeFailure = 1,
    /// Usage error: nothing was bound.
    Usage = 2,
    /// `status`/`stop`: nothing running.
    NotRunning = 3,
    /// `status`/`stop`: the port is held by something that is not a gateway.
    ForeignHolder = 4,
    /// Bind failed for a reason other than "in use" (EX_OSERR).
    BindFailed = 71,
    /// Port held, holder not confirmed as a gateway: worth retrying (EX_TEMPFAIL).
    PortHeld = 75,
    /// Another gateway holds the port or profile, or the configuration is refused:
    /// do not restart (EX_CONFIG).
    Refused = 78,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}
