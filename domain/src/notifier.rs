//! The port to the service manager (systemd's `NOTIFY_SOCKET`).

/// Tells a supervisor about the gateway's life. Both calls are best effort: a missing
/// or broken notification socket MUST NOT fail the gateway.
pub trait ServiceNotifier: Send + Sync {
    /// The gateway serves requests (`READY=1`).
    fn ready(&self);
    /// The graceful stop has begun (`STOPPING=1`).
    fn stopping(&self);
}
