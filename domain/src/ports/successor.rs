//! The ports of a restart: the new process, and what starts it.

use std::time::Duration;

use crate::handoff::{LaunchError, SuccessorReport};

/// A started successor process, seen from the process that started it.
#[async_trait::async_trait]
pub trait Successor: Send {
    /// Its process id, once known: starting it never waits for `exec`, so a
    /// process still being started may not have told it yet.
    fn pid(&self) -> Option<u32>;

    /// Waits for the successor's word, its start included (a start that hangs
    /// before `exec` counts against the deadline). MUST resolve within `within` (then
    /// [`SuccessorReport::TimedOut`]) and MUST report an exit or a closed report pipe
    /// as [`SuccessorReport::Exited`] at once rather than waiting out the deadline.
    async fn report(&mut self, within: Duration) -> SuccessorReport;

    /// Kills the successor if it is still there, and reaps it. MUST NOT fail: a
    /// successor already gone is fine. The listeners and lock it held stay held by
    /// this process.
    async fn kill(&mut self);

    /// The last lines the successor wrote on stderr, for the failure report.
    fn last_output(&self) -> Vec<String>;
}

/// Starts successors.
pub trait SuccessorLauncher: Send + Sync {
    type Successor: Successor;

    /// Starts the next gateway process from the executable this one was started
    /// from, with the same arguments and environment, passing it the listeners, the
    /// profile lock file and a report pipe. MUST leave everything this process holds
    /// as it was when it fails.
    fn launch(&self) -> Result<Self::Successor, LaunchError>;
}
