//! The port through which the gateway signals other processes.

use std::io;

use crate::process_control::StopSignal;

/// Signals processes and watches them go.
#[cfg_attr(test, mockall::automock)]
pub trait ProcessControl: Send + Sync {
    /// Sends `signal` to `pid`.
    ///
    /// MUST refuse, with an error and without signalling anything, pid 0, pid 1 and
    /// the calling process itself: a wrong pid must never take down the machine or
    /// the gateway that asks. MUST return the OS error when the signal cannot be sent.
    fn signal(&self, pid: u32, signal: StopSignal) -> io::Result<()>;

    /// Whether `pid` still runs. MUST count a zombie (exited, not yet reaped) as gone:
    /// it has already released its sockets and locks. MUST NOT block for longer than
    /// one look at the process table.
    fn is_alive(&self, pid: u32) -> bool;
}
