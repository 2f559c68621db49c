//! The successor's pid, told by the child itself between `fork` and `exec`: starting
//! a process waits for its `exec`, which can hang (a stopped child, an executable on a
//! hung file system), and the old process must be able to kill a successor that never
//! got that far. Writing to a pipe after `fork` needs `unsafe` (`pre_exec`), confined
//! here.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::Command;

/// The read end: the pid arrives as 4 bytes once the child is forked.
pub struct PidReader {
    receiver: pipe::Receiver,
}

/// Arranges for the child of `command` to write its pid on a pipe right after `fork`.
/// The write end is close-on-exec: the successor never sees it.
pub fn report_pid_after_fork(command: &mut Command) -> io::Result<PidReader> {
    let (reader, writer) = io::pipe()?;
    let writer = OwnedFd::from(writer);
    let fd = writer.as_raw_fd();
    // SAFETY: the closure runs in the forked child before `exec`, where only
    // async-signal-safe calls are allowed: `getpid` and `write` are. It touches no
    // allocator and no lock. `fd` stays open in the child: `writer` is owned by the
    // closure, which the command keeps until the spawn returns.
    unsafe {
        command.pre_exec(move || {
            let _keep_open = &writer;
            let pid = libc::getpid().to_ne_bytes();
            libc::write(fd, pid.as_ptr().cast(), pid.len());
            Ok(())
        });
    }
    Ok(PidReader {
        receiver: pipe::Receiver::from_owned_fd(OwnedFd::from(reader))?,
    })
}

impl PidReader {
    /// The child's pid if it has already been written, without waiting: for killing a
    /// successor abandoned before its pid was read. (A write of 4 bytes to a pipe is
    /// atomic: it is there whole or not at all.)
    pub fn pid_now(&mut self) -> Option<u32> {
        let mut bytes = [0u8; 4];
        match self.receiver.try_read(&mut bytes) {
            Ok(4) => u32::try_from(i32::from_ne_bytes(bytes)).ok(),
            _ => None,
        }
    }

    /// The child's pid; `None` when the spawn ended without a fork having written it.
    pub async fn pid(&mut self) -> Option<u32> {
        let mut bytes = [0u8; 4];
        self.receiver.read_exact(&mut bytes).await.ok()?;
        u32::try_from(i32::from_ne_bytes(bytes)).ok()
    }
}
