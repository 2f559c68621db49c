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

    /// The pid to kill for a successor still inside `spawn`: the one it told, else,
    /// when it has not told it yet (forked, but held before its first instruction,
    /// as a tracer can), this process's children that still run this process's own
    /// program, i.e. have not reached `exec`.
    pub fn pids_to_kill(&mut self) -> Vec<u32> {
        match self.pid_now() {
            Some(pid) => vec![pid],
            None => own_children()
                .into_iter()
                .filter(|&pid| runs_this_program(pid))
                .collect(),
        }
    }

    /// The child's pid; `None` when the spawn ended without a fork having written it.
    pub async fn pid(&mut self) -> Option<u32> {
        let mut bytes = [0u8; 4];
        self.receiver.read_exact(&mut bytes).await.ok()?;
        u32::try_from(i32::from_ne_bytes(bytes)).ok()
    }
}

/// The children of every thread of this process, as the kernel lists them
/// (`/proc/self/task/TID/children`; a fork made on a blocking thread is that thread's).
fn own_children() -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Whether `pid` runs the same executable file as this process (a fork before `exec`).
fn runs_this_program(pid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let file = |path: &str| std::fs::metadata(path).map(|m| (m.dev(), m.ino()));
    match (file(&format!("/proc/{pid}/exe")), file("/proc/self/exe")) {
        (Ok(theirs), Ok(ours)) => theirs == ours,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_not_heard_from_is_among_this_process_s_children_and_runs_another_program_once_it_exec_d()
     {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let listed = own_children();
        let exec_d = runs_this_program(child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(listed.contains(&child.id()), "{listed:?}");
        assert!(!exec_d, "sleep is not this test binary");
        assert!(runs_this_program(std::process::id()));
    }
}
