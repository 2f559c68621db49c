//! The port to the service manager (systemd's `NOTIFY_SOCKET`).

/// Tells a supervisor about the gateway's life. Both calls are best effort: a missing
/// or broken notification socket MUST NOT fail the gateway.
pub trait ServiceNotifier: Send + Sync {
    /// The gateway serves requests (`READY=1`).
    fn ready(&self);
    /// The graceful stop has begun (`STOPPING=1`).
    fn stopping(&self);
    /// A restart handoff has begun (`RELOADING=1` with `MONOTONIC_USEC=`). It ends
    /// with [`Self::handed_over`], or with [`Self::ready`] when it failed.
    fn reloading(&self);
    /// The successor `new_pid` serves: it is the service's main process now
    /// (`MAINPID=` and `READY=1`).
    fn handed_over(&self, new_pid: u32);
}
