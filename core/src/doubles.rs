//! Test doubles of the ports the lifecycle runs on: mockall mocks for the calls whose
//! order matters, channel-driven fakes for the triggers and the successor.

use gateway_domain::ports::{Successor, SuccessorLauncher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use gateway_domain::handoff::{InheritedLease, LaunchError, RestartAnswer, SuccessorReport};
use gateway_domain::ports::MoveReport;
use gateway_domain::ports::{
    RestartRequest, RestartResponder, RestartTrigger, ServiceNotifier, ServingGateway, StopTrigger,
};
use gateway_domain::protocol::goodbye::Goodbye;
use mockall::mock;
use tokio::sync::{mpsc, oneshot};

use crate::membership::Membership;

mock! {
    pub Gateway {}
    #[async_trait]
    impl ServingGateway for Gateway {
        fn stop_accepting_work(&self);
        async fn close_websockets(&self, goodbye: Goodbye);
        async fn close_http(&self);
        async fn release_listeners(&self);
        async fn move_sessions(&self) -> MoveReport;
        fn restart_failed(&self);
    }
}

mock! {
    pub Notifier {}
    impl ServiceNotifier for Notifier {
        fn ready(&self);
        fn stopping(&self);
        fn reloading(&self);
        fn handed_over(&self, new_pid: u32);
    }
}

mock! {
    pub Membership {}
    #[async_trait]
    impl Membership for Membership {
        async fn until_lost(&self);
        fn lend(&self) -> Option<InheritedLease>;
        fn handoff_settled(&self, handed_over: bool);
        async fn release(&self);
    }
}

/// Stop requests sent by the test.
pub struct Stops(pub mpsc::UnboundedReceiver<&'static str>);

#[async_trait]
impl StopTrigger for Stops {
    async fn next(&mut self) -> &'static str {
        match self.0.recv().await {
            Some(signal) => signal,
            None => std::future::pending().await,
        }
    }
}

/// Restart requests sent by the test.
pub struct Restarts(pub mpsc::UnboundedReceiver<RestartRequest>);

#[async_trait]
impl RestartTrigger for Restarts {
    async fn next(&mut self) -> RestartRequest {
        match self.0.recv().await {
            Some(request) => request,
            None => std::future::pending().await,
        }
    }
}

/// A `gateway restart` caller: the answer arrives on the receiver.
pub struct Caller(pub oneshot::Sender<RestartAnswer>);

#[async_trait]
impl RestartResponder for Caller {
    async fn answer(self: Box<Self>, answer: &RestartAnswer) {
        let _ = self.0.send(answer.clone());
    }
}

/// A restart request from `gateway restart`, and where its answer will arrive.
pub fn call() -> (RestartRequest, oneshot::Receiver<RestartAnswer>) {
    let (sender, answer) = oneshot::channel();
    let request = RestartRequest {
        trigger: "gateway restart",
        responder: Some(Box::new(Caller(sender))),
    };
    (request, answer)
}

/// What the fake successors did, for the test to read.
#[derive(Debug, Default)]
pub struct Launches {
    pub launched: usize,
    pub killed: usize,
}

/// Starts successors whose report is whatever the test sends on the channel, when it
/// sends it; a successor told nothing is silent until its deadline.
pub struct FakeLauncher {
    pub reports: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<SuccessorReport>>>,
    pub record: Arc<Mutex<Launches>>,
}

impl FakeLauncher {
    pub fn new() -> (
        Self,
        mpsc::UnboundedSender<SuccessorReport>,
        Arc<Mutex<Launches>>,
    ) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let record = Arc::new(Mutex::new(Launches::default()));
        let launcher = Self {
            reports: Arc::new(tokio::sync::Mutex::new(receiver)),
            record: Arc::clone(&record),
        };
        (launcher, sender, record)
    }
}

pub struct FakeSuccessor {
    reports: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<SuccessorReport>>>,
    /// Set once it said it serves: then dropping it does not kill it.
    serving: bool,
    /// Set once killed, by `kill` or by being dropped.
    gone: bool,
    record: Arc<Mutex<Launches>>,
}

impl SuccessorLauncher for FakeLauncher {
    type Successor = FakeSuccessor;

    fn launch(&self) -> Result<FakeSuccessor, LaunchError> {
        self.record.lock().unwrap().launched += 1;
        Ok(FakeSuccessor {
            reports: Arc::clone(&self.reports),
            serving: false,
            gone: false,
            record: Arc::clone(&self.record),
        })
    }
}

#[async_trait]
impl Successor for FakeSuccessor {
    fn pid(&self) -> Option<u32> {
        Some(4242)
    }

    async fn report(&mut self, within: Duration) -> SuccessorReport {
        let next = async { self.reports.lock().await.recv().await };
        match tokio::time::timeout(within, next).await {
            Ok(Some(report)) => {
                self.serving = report == SuccessorReport::Serving;
                report
            }
            Ok(None) | Err(_) => SuccessorReport::TimedOut,
        }
    }

    async fn kill(&mut self) {
        self.record.lock().unwrap().killed += 1;
        self.gone = true;
    }

    fn last_output(&self) -> Vec<String> {
        vec!["last words".to_owned()]
    }
}

impl Drop for FakeSuccessor {
    /// Abandoned before it served (a stop during the handoff): killed, as a real one.
    fn drop(&mut self) {
        if !self.serving && !self.gone {
            self.record.lock().unwrap().killed += 1;
        }
    }
}

/// A membership the test drives: `lose` ends `until_lost`; what the lifecycle did
/// with the lease is recorded.
#[derive(Default)]
pub struct FakeMembership {
    pub lost: Arc<tokio::sync::Notify>,
    pub settled: Mutex<Vec<bool>>,
    pub releases: Mutex<usize>,
}

#[async_trait]
impl Membership for FakeMembership {
    async fn until_lost(&self) {
        self.lost.notified().await;
    }
    fn lend(&self) -> Option<InheritedLease> {
        None
    }
    fn handoff_settled(&self, handed_over: bool) {
        self.settled.lock().unwrap().push(handed_over);
    }
    async fn release(&self) {
        *self.releases.lock().unwrap() += 1;
    }
}
