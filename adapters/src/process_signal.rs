//! Signalling other processes, for `gateway stop` and `--force`: the domain's
//! `ProcessControl` over `kill(2)` and `/proc/PID/stat`.

use gateway_domain::ports::ProcessControl;
use std::io;

pub use gateway_domain::process_control::StopSignal;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The processes of this host, as `kill(2)` and `/proc` show them.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemProcesses;

impl ProcessControl for SystemProcesses {
    fn signal(&self, pid: u32, signal: StopSignal) -> io::Result<()> {
        send(pid, signal)
    }

    fn is_alive(&self, pid: u32) -> bool {
        is_alive(pid)
    }
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

/// Whether `pid` still runs. A zombie (exited, not yet reaped by its parent) has
/// already released everything, so it counts as gone.
pub fn is_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if matches!(kill(Pid::from_raw(raw), None), Err(Errno::ESRCH)) {
        return false;
    }
    !is_zombie(pid)
}

/// Reads the state letter of `/proc/PID/stat` (after the parenthesised name, which
/// may itself contain parentheses). Where there is no `/proc`, nothing is a zombie.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, after_name) = stat.rsplit_once(')')?;
            after_name.trim_start().chars().next()
        })
        .is_some_and(|state| state == 'Z' || state == 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_process_is_alive_and_a_reaped_or_zombie_one_is_not() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(is_alive(pid));
        send(pid, StopSignal::Kill).unwrap();
        // Not reaped yet: a zombie, which must count as gone.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while is_alive(pid) {
            assert!(
                std::time::Instant::now() < deadline,
                "still alive after SIGKILL"
            );
            std::thread::yield_now();
        }
        child.wait().unwrap();
        assert!(!is_alive(pid));
    }

    #[test]
    fn refuses_to_signal_itself_or_init() {
        assert!(send(std::process::id(), StopSignal::Terminate).is_err());
        assert!(send(1, StopSignal::Terminate).is_err());
        assert!(send(0, StopSignal::Terminate).is_err());
    }
}
