//! Signalling other processes, for `gateway stop` and `--force`.

use std::io;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The signals the gateway ever sends to others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// Ask for a graceful stop.
    Terminate,
    /// Stop now.
    Kill,
}

/// Sends `signal` to `pid`. Refuses to signal this very process or pid 0/1.
pub fn send(pid: u32, signal: StopSignal) -> io::Result<()> {
    if pid <= 1 || pid == std::process::id() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to signal pid {pid}"),
        ));
    }
    let raw = i32::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let signal = match signal {
        StopSignal::Terminate => Signal::SIGTERM,
        StopSignal::Kill => Signal::SIGKILL,
    };
    kill(Pid::from_raw(raw), signal).map_err(io::Error::from)
}

/// Whether `pid` still exists (a zombie counts as gone only once reaped).
pub fn is_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    !matches!(kill(Pid::from_raw(raw), None), Err(Errno::ESRCH))
}
