//! The successor's side of a handoff, and systemd's socket activation: take the
//! descriptors passed across `exec`, check that each is what it is said to be, and
//! make them close-on-exec again so that no later child keeps them.
//!
//! The one place in the gateway that turns descriptor numbers into owned
//! descriptors, which Rust can only do in `unsafe` code. Each number is taken at
//! most once per process (a guard makes a second call fail), after checking with
//! `fcntl` that it is open: that is what makes each `from_raw_fd` sound.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, Ordering};

use gateway_domain::handoff::{HANDOFF_ENV, HandoffSpec, InheritedLease, SuccessorWord};
use socket2::{Domain, Socket, Type};

/// What a handoff passed to this process.
#[derive(Debug)]
pub struct Inheritance {
    /// The process that started this one, and the way to talk back to it.
    pub predecessor: Predecessor,
    /// The listening sockets, non-blocking, ready for the server.
    pub listeners: Vec<TcpListener>,
    /// The profile lock file; its lock is held through this descriptor.
    pub lock: File,
    /// The listening control socket of `gateway restart`, non-blocking, when the
    /// parent had one.
    pub control: Option<UnixListener>,
    /// The cluster lease the parent held as the active gateway.
    pub lease: Option<InheritedLease>,
    /// How many handoffs led to this process, this one included.
    pub handoffs: u64,
    /// The receiving end of the predecessor's session channel, when it moves its
    /// sessions (checked when it is made a `SessionReceiver`).
    pub sessions: Option<OwnedFd>,
}

/// The process a handoff came from: serving until this one says it serves, then
/// letting go of its clients, then exiting.
#[derive(Debug)]
pub struct Predecessor {
    pid: u32,
    /// Where to say "serving" (or why not); closed once said.
    report: Option<File>,
}

/// The predecessor's own stderr (the service's log, or its terminal): ours is a pipe
/// through the predecessor until we serve, or until that pipe breaks because the
/// predecessor is gone. Taken once, by [`write_to_service_log`].
static SERVICE_LOG: std::sync::Mutex<Option<OwnedFd>> = std::sync::Mutex::new(None);

/// Makes this process's stderr the service's log directly, when it was started by a
/// handoff and still writes through its predecessor. Returns whether it switched, so
/// that a writer that met a broken pipe knows to write again.
pub fn write_to_service_log() -> bool {
    let taken = SERVICE_LOG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    taken.is_some_and(|stderr| nix::unistd::dup2_stderr(&stderr).is_ok())
}

impl Predecessor {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Tells the predecessor how the takeover went, then writes to its stderr (the
    /// service's log) directly: the pipe through it ends when it exits. A
    /// predecessor that is already gone (killed mid-way) changes nothing: this
    /// process carries on alone.
    pub fn say(&mut self, word: &SuccessorWord) {
        if let Some(mut report) = self.report.take() {
            let _ = report.write_all(word.to_line().as_bytes());
        }
        write_to_service_log();
    }

    /// Whether the predecessor is still finishing: it is still this process's
    /// parent (an exited parent's children are handed to another process).
    pub fn still_running(&self) -> bool {
        u32::try_from(nix::unistd::getppid().as_raw()).is_ok_and(|ppid| ppid == self.pid)
    }
}

/// Set once inherited descriptors have been taken: they can be owned only once.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The descriptors of a handoff, when this process was started by one
/// ([`HANDOFF_ENV`] is set); `None` for an ordinary start.
pub fn take_handoff() -> Option<Result<Inheritance, String>> {
    let text = std::env::var(HANDOFF_ENV).ok()?;
    Some(take_once().and_then(|()| adopt(&text)))
}

/// The listening sockets of systemd socket activation (`LISTEN_FDS`, for this pid
/// by `LISTEN_PID`); `None` when there are none.
pub fn take_socket_activation() -> Option<Result<Vec<TcpListener>, String>> {
    let fds = match sd_notify::listen_fds() {
        Ok(fds) if fds.len() == 0 => return None,
        Ok(fds) => fds,
        Err(error) => return Some(Err(format!("LISTEN_FDS: {error}"))),
    };
    let taken = take_once().and_then(|()| {
        // sd_notify checked that each is open and made it close-on-exec.
        let owned: Vec<OwnedFd> = fds.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }).collect();
        owned.into_iter().map(tcp_listener).collect()
    });
    Some(taken)
}

fn take_once() -> Result<(), String> {
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Err("inherited descriptors were already taken".into());
    }
    Ok(())
}

fn adopt(text: &str) -> Result<Inheritance, String> {
    let spec = HandoffSpec::parse(text)
        .ok_or_else(|| format!("{HANDOFF_ENV}={text:?} does not describe a handoff"))?;
    // Own every descriptor before checking any, so that each is closed exactly once
    // whatever fails below.
    let mut owned = spec
        .descriptors()
        .into_iter()
        .map(own)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter();
    let mut next = || owned.next().ok_or_else(|| "descriptor count".to_owned());
    let mut listeners = Vec::new();
    for _ in &spec.listeners {
        listeners.push(tcp_listener(next()?)?);
    }
    let lock = File::from(next()?);
    // The parent's `flock` is on this same open file description: taking it again
    // here succeeds at once, and fails only if the descriptor is not the lock.
    lock.try_lock()
        .map_err(|error| format!("the inherited profile lock is not held: {error}"))?;
    let control = match spec.control {
        Some(_) => Some(unix_listener(next()?)?),
        None => None,
    };
    let report = File::from(next()?);
    *SERVICE_LOG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(next()?);
    let sessions = match spec.sessions {
        Some(_) => Some(next()?),
        None => None,
    };
    Ok(Inheritance {
        predecessor: Predecessor {
            pid: spec.parent,
            report: Some(report),
        },
        listeners,
        lock,
        control,
        lease: spec.lease,
        handoffs: spec.handoffs,
        sessions,
    })
}

/// Takes ownership of an inherited descriptor number and makes it close-on-exec.
fn own(fd: RawFd) -> Result<OwnedFd, String> {
    // SAFETY: fcntl on any integer is sound; it fails with EBADF when nothing is open
    // under that number.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(format!(
            "descriptor {fd} was not passed: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(format!(
            "descriptor {fd}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: the descriptor is open (checked above), and nothing else in this
    // process owns it: it came across exec, and `TAKEN` lets it be taken only once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A listening TCP socket, or an error naming what it is instead.
fn tcp_listener(fd: OwnedFd) -> Result<TcpListener, String> {
    let socket = Socket::from(fd);
    let is_tcp = socket.r#type().is_ok_and(|t| t == Type::STREAM)
        && socket
            .domain()
            .is_ok_and(|d| d == Domain::IPV4 || d == Domain::IPV6);
    if !is_tcp || !socket.is_listener().unwrap_or(false) {
        return Err("an inherited descriptor is not a listening TCP socket".into());
    }
    socket
        .set_nonblocking(true)
        .map_err(|error| format!("inherited listener: {error}"))?;
    Ok(TcpListener::from(socket))
}

fn unix_listener(fd: OwnedFd) -> Result<UnixListener, String> {
    let socket = Socket::from(fd);
    let is_unix = socket.domain().is_ok_and(|d| d == Domain::UNIX);
    if !is_unix || !socket.is_listener().unwrap_or(false) {
        return Err("the inherited control descriptor is not a listening Unix socket".into());
    }
    socket
        .set_nonblocking(true)
        .map_err(|error| format!("inherited control socket: {error}"))?;
    Ok(UnixListener::from(OwnedFd::from(socket)))
}
