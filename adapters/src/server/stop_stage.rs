//! One step of the stop sequence on the server side: a signal the step's tasks
//! listen to, and the tracker that tells when they have all finished.

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The tasks one stop step ends, and the signal that ends them.
#[derive(Debug, Default)]
pub(crate) struct StopStage {
    /// Fired once, when the step begins; every task of the stage watches it.
    pub signal: CancellationToken,
    /// Every task of the stage, so the step knows when it is done.
    pub tasks: TaskTracker,
}

impl StopStage {
    /// Fires the signal and resolves once every task of the stage has ended.
    pub async fn run_to_end(&self) {
        self.signal.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}
