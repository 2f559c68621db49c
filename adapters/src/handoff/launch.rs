//! The old process's side of a handoff: start the successor from the executable this
//! process was started from, with copies of the listeners, the profile lock file and
//! the control socket at fixed descriptor numbers, and listen for its word.

use gateway_domain::ports::{Successor, SuccessorLauncher};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use command_fds::{CommandFdExt, FdMapping};
use gateway_domain::handoff::{
    HANDOFF_ENV, HandoffSpec, InheritedLease, LaunchError, SuccessorReport, SuccessorWord,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStderr, Command};

use super::early_pid::{PidReader, report_pid_after_fork};
use super::session_channel::{SenderSlot, channel_pair};
use tokio::task::JoinHandle;

/// Lines of the successor's stderr kept for a failure report.
const KEPT_LINES: usize = 20;
/// How long the successor's last stderr lines may take to arrive once it is gone.
const LAST_LINES_GRACE: Duration = Duration::from_millis(500);
/// First descriptor number in the successor (0-2 are stdio).
const FIRST_CHILD_FD: i32 = 3;

/// What this process holds and a successor must inherit. Copies (`dup`, close-on-exec
/// in this process): the originals stay with the server. Dropping these copies is
/// part of letting go, so the owner drops them before a stop releases the port.
#[derive(Debug)]
pub struct HeldDescriptors {
    /// The listening sockets: the endpoint, and its `[::1]` companion when held.
    pub listeners: Vec<OwnedFd>,
    /// The open profile lock file: its `flock` belongs to the open file description,
    /// which the successor shares.
    pub lock: OwnedFd,
    /// The listening control socket of `gateway restart`, when there is one.
    pub control: Option<OwnedFd>,
}

/// Starts successors by `exec`.
pub struct ExecLauncher {
    /// The executable as this process was started (not `/proc/self/exe`, which after
    /// an upgrade on disk is the deleted old file).
    program: PathBuf,
    /// The arguments after the program name, as this process got them.
    args: Vec<OsString>,
    held: HeldDescriptors,
    /// The cluster lease held at the moment of a launch, if any (an active clustered
    /// gateway): asked at each launch, since a standby may have become active.
    lease: Option<LeaseSource>,
    /// How many handoffs led to this process: its successor's count is one more.
    handoffs: u64,
    /// Where this process keeps its end of each successor's session channel; `None`:
    /// successors get no channel (sessions do not move).
    sessions: Option<SenderSlot>,
}

/// Tells the launcher which cluster lease this process holds right now.
pub type LeaseSource = Box<dyn Fn() -> Option<InheritedLease> + Send + Sync>;

/// The executable this process was started as, for starting its successor: `argv[0]`
/// made absolute against the start-up directory, or found on `PATH` like a shell
/// would. Not canonicalised: a symlink that an upgrade re-points is followed anew.
/// `/proc/self/exe` only when neither works (it names the running file, which after
/// an upgrade on disk is the deleted old one).
pub fn program_path(argv0: &std::ffi::OsStr) -> PathBuf {
    let as_given = std::path::Path::new(argv0);
    let found = if as_given.components().count() > 1 || as_given.is_absolute() {
        std::env::current_dir().ok().map(|cwd| cwd.join(as_given))
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(as_given))
                .find(|candidate| candidate.is_file())
        })
    };
    found.unwrap_or_else(|| PathBuf::from("/proc/self/exe"))
}

impl ExecLauncher {
    pub fn new(program: PathBuf, args: Vec<OsString>, held: HeldDescriptors) -> Self {
        Self {
            program,
            args,
            held,
            lease: None,
            handoffs: 0,
            sessions: None,
        }
    }

    /// Gives each successor a session channel, this process's end going to `slot`.
    pub fn with_session_channel(mut self, slot: SenderSlot) -> Self {
        self.sessions = Some(slot);
        self
    }

    /// Counts the handoffs that led to this process, so its successor counts one more.
    pub fn after_handoffs(mut self, handoffs: u64) -> Self {
        self.handoffs = handoffs;
        self
    }

    /// Passes the cluster lease held at each launch to the successor.
    pub fn with_lease(mut self, source: LeaseSource) -> Self {
        self.lease = Some(source);
        self
    }

    /// Prepares the successor's command and starts it on a blocking thread: `spawn`
    /// waits for `exec`, which may hang, and must never hold up this process.
    fn spawn(&self) -> io::Result<ExecSuccessor> {
        let (report_reader, report_writer) = io::pipe()?;
        let own_stderr = io::stderr().as_fd().try_clone_to_owned()?;
        let mut next_fd = FIRST_CHILD_FD;
        let mut mappings = Vec::new();
        let mut pass = |fd: OwnedFd| {
            let child_fd = next_fd;
            next_fd += 1;
            mappings.push(FdMapping {
                parent_fd: fd,
                child_fd,
            });
            child_fd
        };
        let mut listeners = Vec::new();
        for listener in &self.held.listeners {
            listeners.push(pass(listener.try_clone()?));
        }
        let spec = HandoffSpec {
            parent: std::process::id(),
            listeners,
            lock: pass(self.held.lock.try_clone()?),
            control: match &self.held.control {
                Some(control) => Some(pass(control.try_clone()?)),
                None => None,
            },
            report: pass(OwnedFd::from(report_writer)),
            stderr: pass(own_stderr),
            lease: self.lease.as_ref().and_then(|source| source()),
            handoffs: self.handoffs + 1,
            sessions: match &self.sessions {
                Some(slot) => {
                    let (ours, theirs) = channel_pair().map_err(io::Error::other)?;
                    *slot
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ours);
                    Some(pass(theirs))
                }
                None => None,
            },
        };
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .env(HANDOFF_ENV, spec.to_env())
            // Socket activation's descriptors were this process's to take, not the
            // successor's: it gets the same sockets through the handoff.
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        // First, before the descriptors are moved into place in the child.
        let pid_reader = report_pid_after_fork(&mut command)?;
        command
            .fd_mappings(mappings)
            .map_err(|collision| io::Error::other(collision.to_string()))?;
        let program = self.program.clone();
        // The command owns this process's copy of the report pipe's write end; it is
        // dropped with the command once the spawn returns, leaving the successor the
        // only writer, so its exit reads as EOF.
        let spawning = tokio::task::spawn_blocking(move || {
            let child = command.spawn();
            drop(command);
            child
        });
        let report = pipe::Receiver::from_owned_fd(OwnedFd::from(report_reader))?;
        Ok(ExecSuccessor {
            program,
            pid: None,
            pid_reader: Some(pid_reader),
            start: Start::Spawning(spawning),
            report: BufReader::new(report),
            tail: Arc::new(Mutex::new(VecDeque::new())),
            forwarder: None,
            serving: false,
        })
    }
}

impl SuccessorLauncher for ExecLauncher {
    type Successor = ExecSuccessor;

    fn launch(&self) -> Result<ExecSuccessor, LaunchError> {
        self.spawn().map_err(|error| LaunchError {
            program: self.program.display().to_string(),
            reason: error.to_string(),
        })
    }
}

/// How far the successor's start has come.
enum Start {
    /// `spawn` runs on a blocking thread (it returns once the child has `exec`ed).
    Spawning(JoinHandle<io::Result<Child>>),
    /// It runs.
    Running(Child),
    /// It could not be started, or is gone.
    Ended,
}

/// A successor being waited for.
pub struct ExecSuccessor {
    /// The program, for the log line once it runs.
    program: PathBuf,
    /// Known once the child told it (right after `fork`), or once it runs.
    pid: Option<u32>,
    /// Where the child tells its pid; taken once read.
    pid_reader: Option<PidReader>,
    start: Start,
    /// The read end of the report pipe.
    report: BufReader<pipe::Receiver>,
    /// The last lines the successor wrote on stderr.
    tail: Arc<Mutex<VecDeque<String>>>,
    /// Copies the successor's stderr to ours until it writes to ours directly.
    forwarder: Option<JoinHandle<()>>,
    /// Set once it said it serves: from then on it is the gateway, and dropping this
    /// handle must not kill it.
    serving: bool,
}

impl ExecSuccessor {
    /// Waits until the successor runs (its `exec` done). `Err` says why it never will.
    async fn started(&mut self) -> Result<(), String> {
        if let Some(reader) = self.pid_reader.as_mut() {
            self.pid = reader.pid().await;
            self.pid_reader = None;
        }
        let Start::Spawning(spawning) = &mut self.start else {
            return match self.start {
                Start::Running(_) => Ok(()),
                _ => Err("could not be started".to_owned()),
            };
        };
        let spawned = spawning.await;
        match spawned {
            Ok(Ok(mut child)) => {
                self.pid = child.id().or(self.pid);
                self.forwarder = child
                    .stderr
                    .take()
                    .map(|stderr| tokio::spawn(forward_stderr(stderr, Arc::clone(&self.tail))));
                tracing::info!(pid = self.pid, program = %self.program.display(), "started the new process");
                self.start = Start::Running(child);
                Ok(())
            }
            Ok(Err(error)) => {
                self.start = Start::Ended;
                Err(format!(
                    "cannot be started: {}: {error}",
                    self.program.display()
                ))
            }
            Err(join) => {
                self.start = Start::Ended;
                Err(format!("cannot be started: {join}"))
            }
        }
    }

    /// SIGKILL to the successor wherever it is, without waiting for anything.
    fn kill_now(&mut self) {
        if self.pid.is_none() {
            self.pid = self.pid_reader.as_mut().and_then(PidReader::pid_now);
        }
        match &mut self.start {
            Start::Running(child) => {
                let _ = child.start_kill();
            }
            // Still inside `spawn`: the pid it told is not yet reaped by anyone (only
            // `spawn` would reap it, and only after a failed `exec`). Not told yet:
            // forked all the same, so found among this process's children.
            Start::Spawning(spawning) if !spawning.is_finished() => {
                let pids = match (self.pid, self.pid_reader.as_mut()) {
                    (Some(pid), _) => vec![pid],
                    (None, Some(reader)) => reader.pids_to_kill(),
                    (None, None) => Vec::new(),
                };
                for pid in pids.into_iter().filter_map(|pid| i32::try_from(pid).ok()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            Start::Spawning(_) | Start::Ended => {}
        }
    }
}

impl Drop for ExecSuccessor {
    /// A successor abandoned before it served (this process is stopping, or gave up
    /// on it) is killed: it must not go on serving on sockets nobody handed it.
    fn drop(&mut self) {
        if !self.serving {
            self.kill_now();
        }
    }
}

#[async_trait]
impl Successor for ExecSuccessor {
    fn pid(&self) -> Option<u32> {
        self.pid
    }

    async fn report(&mut self, within: Duration) -> SuccessorReport {
        let word = async {
            self.started().await.map_err(SuccessorReport::Exited)?;
            let mut line = String::new();
            Ok(match self.report.read_line(&mut line).await {
                Ok(0) | Err(_) => None,
                Ok(_) => Some(SuccessorWord::parse(&line)),
            })
        };
        let word = match tokio::time::timeout(within, word).await {
            Err(_elapsed) => return SuccessorReport::TimedOut,
            Ok(Err(never_started)) => return never_started,
            Ok(Ok(word)) => word,
        };
        match word {
            Some(Some(SuccessorWord::Serving)) => {
                self.serving = true;
                SuccessorReport::Serving
            }
            Some(Some(SuccessorWord::Failed(reason))) => SuccessorReport::Failed(reason),
            Some(None) => {
                SuccessorReport::Failed("it said something that is not a handoff report".into())
            }
            // The pipe closed without a word: the successor is gone (or closed it).
            None => {
                let Start::Running(child) = &mut self.start else {
                    return SuccessorReport::Exited("closed its report pipe".into());
                };
                match tokio::time::timeout(LAST_LINES_GRACE, child.wait()).await {
                    Ok(Ok(status)) => SuccessorReport::Exited(describe_exit(status)),
                    _ => SuccessorReport::Exited("closed its report pipe".into()),
                }
            }
        }
    }

    async fn kill(&mut self) {
        self.kill_now();
        if let Start::Running(child) = &mut self.start {
            let _ = child.wait().await;
        }
        if let Some(forwarder) = self.forwarder.take() {
            let _ = tokio::time::timeout(LAST_LINES_GRACE, forwarder).await;
        }
    }

    fn last_output(&self) -> Vec<String> {
        self.tail
            .lock()
            .map(|tail| tail.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended ({status})"),
    }
}

/// Copies each stderr line of the successor to ours, keeping the last few.
async fn forward_stderr(stderr: ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        // One short line to a log: not worth a blocking-pool round trip.
        let _ = writeln!(io::stderr().lock(), "{line}");
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == KEPT_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}
