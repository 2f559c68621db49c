//! The daemon's life once it serves (docs/reference.md#restart, #stopping): wait
//! for a stop, a restart request or a lost cluster lock; run one handoff at a time;
//! then stop in order, or let go to the successor.
//!
//! ```text
//!            restart request              successor serves
//!   Serving ----------------> HandingOver -----------------> LettingGo -> exit 0
//!     |  ^                      |  |  (lease lost: wait for the word)
//!     |  +--- successor failed -+  |
//!     |                            | stop signal: successor killed, lease reclaimed
//!     +-- stop / lock lost --------+-----------------------> Stopping -> exit 0/1/75
//! ```

use std::pin::Pin;
use std::time::Duration;

use gateway_domain::ExitCode;
use gateway_domain::handoff::{HandoffOutcome, RestartAnswer, RestartGate, hand_over};
use gateway_domain::ports::{
    RestartRequest, RestartResponder, RestartTrigger, ServiceNotifier, ServingGateway, StopTrigger,
    SuccessorLauncher,
};
use gateway_domain::protocol::goodbye;

use crate::membership::Membership;
use crate::shutdown::{ShutdownSequence, StopOutcome};

/// What ended serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A stop signal: the stop sequence, exit 0 (1 if it timed out).
    Stop(&'static str),
    /// A successor serves: let go, exit 0.
    HandedOver { new_pid: u32 },
    /// The cluster lock was lost (without `--standby`): the stop sequence, exit 75.
    ClusterLockLost,
}

/// The parts of a serving gateway that its life acts on.
#[derive(Clone, Copy)]
pub struct Serving<'a> {
    /// The server, stopped step by step.
    pub gateway: &'a dyn ServingGateway,
    /// The service manager.
    pub notifier: &'a dyn ServiceNotifier,
    /// The cluster (or [`crate::SingleHost`]).
    pub membership: &'a dyn Membership,
}

/// Runs serving until it ends: one restart at a time, each within its deadline.
pub struct Supervisor<'a, L: SuccessorLauncher> {
    pub serving: Serving<'a>,
    /// Starts restarts' successors.
    pub launcher: &'a L,
    /// How long a successor has to say that it serves, counted from the request.
    pub successor_deadline: Duration,
    /// Whether the process this one took over from is still finishing: no restart
    /// until it has exited (two old processes draining at once is what this prevents).
    pub predecessor_alive: &'a (dyn Fn() -> bool + Sync),
}

type Handoff<'f> = Pin<Box<dyn Future<Output = HandoffOutcome> + Send + 'f>>;

impl<L: SuccessorLauncher> Supervisor<'_, L> {
    /// Serves until a stop, a lost cluster lock, or a successor that serves. A handoff
    /// abandoned by a stop has its successor killed, and the lease it was lent comes
    /// back for the stop to revoke.
    pub async fn serve(
        &self,
        stops: &mut dyn StopTrigger,
        restarts: &mut dyn RestartTrigger,
    ) -> Ending {
        let membership = self.serving.membership;
        let mut gate = RestartGate::default();
        let mut handoff: Option<Handoff<'_>> = None;
        let mut asker: Option<Box<dyn RestartResponder>> = None;
        let lost = membership.until_lost();
        tokio::pin!(lost);
        // Set once the lock is lost while a handoff is under way: its outcome decides
        // (a successor that serves has the lease; otherwise stop, 75).
        let mut lost_during_handoff = false;
        let ending = loop {
            tokio::select! {
                // A stop wins over anything ready at the same moment.
                biased;
                signal = stops.next() => break Ending::Stop(signal),
                () = &mut lost, if !lost_during_handoff => {
                    if handoff.is_none() {
                        tracing::error!("cluster lock lost; stopping");
                        break Ending::ClusterLockLost;
                    }
                    tracing::warn!("cluster lock lost during a restart; waiting for the new process's word");
                    lost_during_handoff = true;
                }
                outcome = async { handoff.as_mut().expect("guarded").await }, if handoff.is_some() => {
                    handoff = None;
                    let answer = self.settle(&outcome, &mut gate, lost_during_handoff);
                    if let Some(asker) = asker.take() {
                        asker.answer(&answer).await;
                    }
                    match outcome {
                        HandoffOutcome::HandedOver { new_pid } => break Ending::HandedOver { new_pid },
                        HandoffOutcome::Failed(_) if lost_during_handoff => break Ending::ClusterLockLost,
                        HandoffOutcome::Failed(_) => {}
                    }
                }
                request = restarts.next() => {
                    if let Some(asker_now) = self.begin(request, &mut gate).await {
                        asker = asker_now;
                        handoff = Some(Box::pin(hand_over(self.launcher, self.successor_deadline)));
                    }
                }
            }
        };
        if handoff.take().is_some() {
            // Dropping it killed the successor before it said it serves.
            membership.handoff_settled(false);
        }
        ending
    }

    /// Takes the one restart slot for `request`, or answers that one is under way.
    /// `Some(responder)` when a handoff is to start.
    async fn begin(
        &self,
        request: RestartRequest,
        gate: &mut RestartGate,
    ) -> Option<Option<Box<dyn RestartResponder>>> {
        match gate.try_begin((self.predecessor_alive)()) {
            Err(refusal) => {
                match &request.responder {
                    None => tracing::warn!("{} ignored: {refusal}", request.trigger),
                    Some(_) => tracing::warn!("restart request refused: {refusal}"),
                }
                if let Some(responder) = request.responder {
                    responder
                        .answer(&RestartAnswer::Busy {
                            message: refusal.to_owned(),
                        })
                        .await;
                }
                None
            }
            Ok(()) => {
                tracing::info!("{}: restarting by handoff", request.trigger);
                self.serving.notifier.reloading();
                Some(request.responder)
            }
        }
    }

    /// What a handoff's outcome means for the lease, the service manager and the
    /// slot; the answer for whoever asked.
    fn settle(
        &self,
        outcome: &HandoffOutcome,
        gate: &mut RestartGate,
        lost_during_handoff: bool,
    ) -> RestartAnswer {
        let Serving {
            gateway,
            notifier,
            membership,
        } = self.serving;
        let pid = std::process::id();
        match outcome {
            HandoffOutcome::HandedOver { new_pid } => {
                membership.handoff_settled(true);
                tracing::info!("handed over to pid {new_pid}; letting go");
                notifier.handed_over(*new_pid);
                RestartAnswer::Restarted {
                    old_pid: pid,
                    new_pid: *new_pid,
                }
            }
            HandoffOutcome::Failed(failure) => {
                membership.handoff_settled(false);
                if lost_during_handoff {
                    tracing::error!("{failure}; and the cluster lock was lost: stopping");
                } else {
                    tracing::error!("{failure}; still serving as pid {pid}");
                    gateway.restart_failed();
                    notifier.ready();
                    gate.end();
                }
                RestartAnswer::Failed {
                    reason: failure.reason.clone(),
                    output: failure.output.clone(),
                }
            }
        }
    }
}

/// Ends serving as `ending` says: the stop sequence, or letting go after a handoff;
/// a second stop signal cuts either short (exit 1). Called once everything a successor
/// would inherit has been let go of, so that releasing the listeners frees the port.
pub async fn finish(
    serving: Serving<'_>,
    shutdown_timeout: Duration,
    ending: Ending,
    stops: &mut dyn StopTrigger,
) -> ExitCode {
    let sequence = ShutdownSequence {
        deadline: shutdown_timeout,
    };
    let Serving {
        gateway,
        notifier,
        membership,
    } = serving;
    let finishing = async {
        match ending {
            Ending::Stop(signal) => {
                tracing::info!("{signal} received; stopping (send it again to exit at once)");
                sequence
                    .run(gateway, notifier, membership, goodbye::STOPPING)
                    .await
            }
            Ending::ClusterLockLost => {
                sequence
                    .run(gateway, notifier, membership, goodbye::CLUSTER_LOCK_LOST)
                    .await
            }
            Ending::HandedOver { .. } => sequence.hand_over(gateway).await,
        }
    };
    tokio::select! {
        outcome = finishing => match (outcome, ending) {
            // A lost cluster lock is temporary: a supervisor may restart (75).
            (StopOutcome::Clean, Ending::ClusterLockLost) => ExitCode::PortHeld,
            (StopOutcome::Clean, _) => ExitCode::Clean,
            (StopOutcome::TimedOut, _) => ExitCode::RuntimeFailure,
        },
        second = stops.next() => {
            tracing::warn!("{second} received during the stop; exiting now");
            ExitCode::RuntimeFailure
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doubles::{
        FakeLauncher, FakeMembership, Launches, MockGateway, MockNotifier, Restarts, Stops, call,
    };
    use gateway_domain::handoff::{ALREADY_IN_PROGRESS, SuccessorReport};
    use gateway_domain::ports::MoveReport;
    use std::sync::{Arc, Mutex};
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    const DEADLINE: Duration = Duration::from_secs(10);

    /// Everything a supervisor runs on, with the handles a test drives it by.
    struct Rig {
        gateway: MockGateway,
        notifier: MockNotifier,
        membership: FakeMembership,
        launcher: FakeLauncher,
        reports: mpsc::UnboundedSender<SuccessorReport>,
        launches: Arc<Mutex<Launches>>,
        stop: mpsc::UnboundedSender<&'static str>,
        stops: Stops,
        restart: mpsc::UnboundedSender<gateway_domain::ports::RestartRequest>,
        restarts: Restarts,
        predecessor_alive: bool,
    }

    impl Rig {
        fn new() -> Self {
            let (launcher, reports, launches) = FakeLauncher::new();
            let (stop, stops) = mpsc::unbounded_channel();
            let (restart, restarts) = mpsc::unbounded_channel();
            let mut notifier = MockNotifier::new();
            notifier.expect_reloading().return_const(());
            Self {
                gateway: MockGateway::new(),
                notifier,
                membership: FakeMembership::default(),
                launcher,
                reports,
                launches,
                stop,
                stops: Stops(stops),
                restart,
                restarts: Restarts(restarts),
                predecessor_alive: false,
            }
        }

        /// Serves while `drive` runs beside it; returns how serving ended.
        async fn serve(&mut self, drive: impl Future<Output = ()>) -> Ending {
            let alive = self.predecessor_alive;
            let predecessor_alive = move || alive;
            let supervisor = Supervisor {
                serving: Serving {
                    gateway: &self.gateway,
                    notifier: &self.notifier,
                    membership: &self.membership,
                },
                launcher: &self.launcher,
                successor_deadline: DEADLINE,
                predecessor_alive: &predecessor_alive,
            };
            let (ending, ()) =
                tokio::join!(supervisor.serve(&mut self.stops, &mut self.restarts), drive);
            ending
        }

        fn settled(&self) -> Vec<bool> {
            self.membership.settled.lock().unwrap().clone()
        }

        fn launched_and_killed(&self) -> (usize, usize) {
            let launches = self.launches.lock().unwrap();
            (launches.launched, launches.killed)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_serving_and_starts_nothing() {
        let mut rig = Rig::new();
        rig.stop.send("SIGTERM").unwrap();
        assert_eq!(rig.serve(async {}).await, Ending::Stop("SIGTERM"));
        assert_eq!(rig.launched_and_killed(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_and_a_restart_at_the_same_moment_stop_wins() {
        let mut rig = Rig::new();
        rig.stop.send("SIGINT").unwrap();
        let (request, _answer) = call();
        rig.restart.send(request).unwrap();
        assert_eq!(rig.serve(async {}).await, Ending::Stop("SIGINT"));
        assert_eq!(rig.launched_and_killed(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_successor_that_serves_takes_over_and_the_caller_hears_it() {
        let mut rig = Rig::new();
        rig.notifier
            .expect_handed_over()
            .withf(|pid| *pid == 4242)
            .once()
            .return_const(());
        let (request, answer) = call();
        rig.restart.send(request).unwrap();
        rig.reports.send(SuccessorReport::Serving).unwrap();
        assert_eq!(
            rig.serve(async {}).await,
            Ending::HandedOver { new_pid: 4242 }
        );
        assert_eq!(
            answer.await.unwrap(),
            RestartAnswer::Restarted {
                old_pid: std::process::id(),
                new_pid: 4242
            }
        );
        assert_eq!(rig.settled(), [true], "the lease is the successor's alone");
        assert_eq!(rig.launched_and_killed(), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_successor_is_killed_reported_and_the_gateway_serves_on() {
        let mut rig = Rig::new();
        rig.notifier.expect_ready().once().return_const(());
        rig.gateway.expect_restart_failed().once().return_const(());
        let (request, answer) = call();
        rig.restart.send(request).unwrap();
        rig.reports
            .send(SuccessorReport::Exited("exited with code 78".into()))
            .unwrap();
        let stop = rig.stop.clone();
        let ending = rig
            .serve(async move {
                let RestartAnswer::Failed { reason, output } = answer.await.unwrap() else {
                    panic!("not a failure")
                };
                assert_eq!(
                    reason,
                    "the new process (pid 4242) exited with code 78 before serving"
                );
                assert_eq!(output, ["last words"]);
                stop.send("SIGTERM").unwrap();
            })
            .await;
        assert_eq!(ending, Ending::Stop("SIGTERM"));
        assert_eq!(rig.settled(), [false], "the lease came back");
        assert_eq!(rig.launched_and_killed(), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_restart_while_one_is_under_way_is_refused_as_busy() {
        let mut rig = Rig::new();
        rig.notifier.expect_handed_over().return_const(());
        let (first, _first_answer) = call();
        rig.restart.send(first).unwrap();
        let restart = rig.restart.clone();
        let reports = rig.reports.clone();
        let ending = rig
            .serve(async move {
                let (second, second_answer) = call();
                restart.send(second).unwrap();
                assert_eq!(
                    second_answer.await.unwrap(),
                    RestartAnswer::Busy {
                        message: ALREADY_IN_PROGRESS.into()
                    }
                );
                reports.send(SuccessorReport::Serving).unwrap();
            })
            .await;
        assert_eq!(ending, Ending::HandedOver { new_pid: 4242 });
        assert_eq!(rig.launched_and_killed(), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn no_restart_while_the_predecessor_still_finishes() {
        let mut rig = Rig::new();
        rig.predecessor_alive = true;
        rig.notifier.expect_reloading().never();
        let (request, answer) = call();
        rig.restart.send(request).unwrap();
        let stop = rig.stop.clone();
        let ending = rig
            .serve(async move {
                assert!(matches!(answer.await, Ok(RestartAnswer::Busy { .. })));
                stop.send("SIGTERM").unwrap();
            })
            .await;
        assert_eq!(ending, Ending::Stop("SIGTERM"));
        assert_eq!(rig.launched_and_killed(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_while_handing_over_kills_the_successor_and_takes_the_lease_back() {
        let mut rig = Rig::new();
        let (request, _answer) = call();
        rig.restart.send(request).unwrap();
        let stop = rig.stop.clone();
        let ending = rig
            .serve(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                stop.send("SIGTERM").unwrap();
            })
            .await;
        assert_eq!(ending, Ending::Stop("SIGTERM"));
        assert_eq!(rig.launched_and_killed(), (1, 1));
        assert_eq!(rig.settled(), [false]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_successor_fails_the_restart_at_the_deadline_counted_from_the_request() {
        let mut rig = Rig::new();
        rig.notifier.expect_ready().once().return_const(());
        rig.gateway.expect_restart_failed().once().return_const(());
        let (request, answer) = call();
        let asked = Instant::now();
        rig.restart.send(request).unwrap();
        let stop = rig.stop.clone();
        rig.serve(async move {
            let RestartAnswer::Failed { reason, .. } = answer.await.unwrap() else {
                panic!("not a failure")
            };
            assert_eq!(
                reason,
                "the new process (pid 4242) did not serve within 10s"
            );
            assert_eq!(asked.elapsed(), DEADLINE);
            stop.send("SIGTERM").unwrap();
        })
        .await;
        assert_eq!(rig.launched_and_killed(), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_lost_during_a_handoff_waits_for_the_successor_that_then_serves() {
        let mut rig = Rig::new();
        rig.notifier.expect_handed_over().once().return_const(());
        let (request, _answer) = call();
        rig.restart.send(request).unwrap();
        let lost = Arc::clone(&rig.membership.lost);
        let reports = rig.reports.clone();
        let ending = rig
            .serve(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                lost.notify_one();
                tokio::time::sleep(Duration::from_secs(1)).await;
                reports.send(SuccessorReport::Serving).unwrap();
            })
            .await;
        assert_eq!(ending, Ending::HandedOver { new_pid: 4242 });
        assert_eq!(rig.settled(), [true]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_lost_during_a_handoff_that_then_fails_stops_with_lock_lost() {
        let mut rig = Rig::new();
        rig.notifier.expect_ready().never();
        let (request, answer) = call();
        rig.restart.send(request).unwrap();
        let lost = Arc::clone(&rig.membership.lost);
        let reports = rig.reports.clone();
        let ending = rig
            .serve(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                lost.notify_one();
                tokio::time::sleep(Duration::from_secs(1)).await;
                reports
                    .send(SuccessorReport::Failed("cannot take over".into()))
                    .unwrap();
            })
            .await;
        assert_eq!(ending, Ending::ClusterLockLost);
        assert!(matches!(answer.await, Ok(RestartAnswer::Failed { .. })));
        assert_eq!(rig.settled(), [false]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_lost_while_serving_stops() {
        let mut rig = Rig::new();
        rig.membership.lost.notify_one();
        assert_eq!(rig.serve(async {}).await, Ending::ClusterLockLost);
    }

    fn stopping_gateway() -> MockGateway {
        let mut gateway = MockGateway::new();
        gateway.expect_stop_accepting_work().return_const(());
        gateway.expect_close_websockets().return_const(());
        gateway.expect_close_http().return_const(());
        gateway.expect_release_listeners().once().return_const(());
        gateway
    }

    #[tokio::test(start_paused = true)]
    async fn a_clean_stop_after_a_lost_lock_exits_75_and_after_a_signal_0() {
        let gateway = stopping_gateway();
        let mut notifier = MockNotifier::new();
        notifier.expect_stopping().return_const(());
        let membership = FakeMembership::default();
        let serving = Serving {
            gateway: &gateway,
            notifier: &notifier,
            membership: &membership,
        };
        let (_stop, stops) = mpsc::unbounded_channel();
        let mut stops = Stops(stops);
        let code = finish(serving, DEADLINE, Ending::ClusterLockLost, &mut stops).await;
        assert_eq!(code, ExitCode::PortHeld);
        assert!(*membership.releases.lock().unwrap() >= 1, "lease revoked");
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_signal_during_the_stop_exits_1_at_once() {
        let mut gateway = MockGateway::new();
        gateway.expect_stop_accepting_work().return_const(());
        // Clients that never finish closing: only the second signal ends this.
        gateway
            .expect_close_websockets()
            .returning(|_| std::thread::sleep(Duration::ZERO));
        let mut notifier = MockNotifier::new();
        notifier.expect_stopping().return_const(());
        let membership = FakeMembership::default();
        let (stop, stops) = mpsc::unbounded_channel();
        let mut stops = Stops(stops);
        stop.send("SIGINT").unwrap();
        let stuck = Stuck(gateway);
        let serving = Serving {
            gateway: &stuck,
            notifier: &notifier,
            membership: &membership,
        };
        let began = Instant::now();
        let code = finish(serving, DEADLINE, Ending::Stop("SIGTERM"), &mut stops).await;
        assert_eq!(code, ExitCode::RuntimeFailure);
        assert!(began.elapsed() < DEADLINE);
    }

    #[tokio::test(start_paused = true)]
    async fn letting_go_after_a_handoff_says_nothing_to_the_service_manager_and_keeps_the_lease() {
        let mut gateway = MockGateway::new();
        gateway.expect_stop_accepting_work().never();
        gateway.expect_release_listeners().once().return_const(());
        gateway
            .expect_move_sessions()
            .once()
            .return_const(MoveReport::default());
        gateway.expect_close_websockets().return_const(());
        gateway.expect_close_http().return_const(());
        let notifier = MockNotifier::new();
        let membership = FakeMembership::default();
        let (_stop, stops) = mpsc::unbounded_channel();
        let mut stops = Stops(stops);
        let serving = Serving {
            gateway: &gateway,
            notifier: &notifier,
            membership: &membership,
        };
        let code = finish(
            serving,
            DEADLINE,
            Ending::HandedOver { new_pid: 7 },
            &mut stops,
        )
        .await;
        assert_eq!(code, ExitCode::Clean);
        assert_eq!(*membership.releases.lock().unwrap(), 0);
    }

    /// A gateway whose WebSocket clients never finish closing.
    struct Stuck(MockGateway);

    #[async_trait::async_trait]
    impl ServingGateway for Stuck {
        fn stop_accepting_work(&self) {
            self.0.stop_accepting_work();
        }
        async fn close_websockets(&self, goodbye: goodbye::Goodbye) {
            self.0.close_websockets(goodbye).await;
            std::future::pending().await
        }
        async fn close_http(&self) {}
        async fn release_listeners(&self) {}
    }
}
