//! systemd readiness notification (`Type=notify`) over `NOTIFY_SOCKET`.

use gateway_domain::ports::ServiceNotifier;
use sd_notify::NotifyState;

/// Sends `READY=1`, `STOPPING=1`, `RELOADING=1` and `MAINPID=` when `NOTIFY_SOCKET` is set; does nothing
/// otherwise. Failures are logged, never fatal.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemdNotifier;

impl SystemdNotifier {
    fn send(state: NotifyState<'_>) {
        Self::send_all(&[state]);
    }

    fn send_all(states: &[NotifyState<'_>]) {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return;
        }
        if let Err(error) = sd_notify::notify(states) {
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

    fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => Self::send_all(&[NotifyState::Reloading, now]),
            Err(error) => {
                tracing::warn!(%error, "cannot read the monotonic clock for RELOADING=1");
                Self::send(NotifyState::Reloading);
            }
        }
    }

    fn handed_over(&self, new_pid: u32) {
        Self::send_all(&[NotifyState::MainPid(new_pid), NotifyState::Ready]);
    }
}
