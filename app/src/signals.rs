//! The signals the gateway answers: SIGTERM and SIGINT, the first to begin the
//! graceful stop, the second to cut it short; and SIGHUP, to restart by handoff.

use std::io;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Listens for SIGTERM and SIGINT from the moment it is installed.
pub struct StopSignals {
    terminate: Signal,
    interrupt: Signal,
}

impl StopSignals {
    pub fn install() -> io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves at the next SIGTERM or SIGINT, naming it.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// Listens for SIGHUP, whose default action would end the process: installed before
/// anything else, so a reload asked for early is a restart, not a crash.
pub struct RestartSignal(Signal);

impl RestartSignal {
    pub fn install() -> io::Result<Self> {
        signal(SignalKind::hangup()).map(Self)
    }

    /// Resolves at the next SIGHUP.
    pub async fn next(&mut self) {
        self.0.recv().await;
    }
}
