//! systemd readiness notification (`Type=notify`) over `NOTIFY_SOCKET`.

use gateway_domain::ServiceNotifier;
use sd_notify::NotifyState;

/// Sends `READY=1` and `STOPPING=1` when `NOTIFY_SOCKET` is set; does nothing
/// otherwise. Failures are logged, never fatal.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemdNotifier;

impl SystemdNotifier {
    fn send(state: NotifyState<'_>) {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return;
        }
        if let Err(error) = sd_notify::notify(&[state]) {
            tracing::warn!(%error, "could not notify the service manager");
        }
    }
}

impl ServiceNotifier for SystemdNotifier {
    fn ready(&self) {
        Self::send(NotifyState::Ready);
    }

    fn stopping(&self) {
        Self::send(NotifyState::Stopping);
    }
}
