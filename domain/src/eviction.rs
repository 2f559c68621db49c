//! `gateway --force`'s policy: whatever holds the port is named, sent SIGTERM, and
//! SIGKILL if the port is still held 2 s later; the start goes on once it is free.

use std::time::Duration;

use crate::endpoint::Endpoint;
use crate::port_owner::PortOwners;
use crate::ports::{PortOwnerLookup, ProcessControl};
use crate::process_control::StopSignal;

/// How long a holder has to go after SIGTERM before SIGKILL (2 s, docs/reference.md#operations).
pub const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long the port may take to come free after SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// How often the holders and the port are looked at while the holders go.
pub const LOOK_EVERY: Duration = Duration::from_millis(50);
/// After an eviction, how long a start that took the freed port first (another
/// `--force`) may take to answer as a gateway before it is called something else:
/// a start that has already waited for a holder to go can wait a little more to
/// name the right one.
pub const NEWCOMER_GRACE: Duration = Duration::from_secs(1);

/// Why an eviction did not free the port. The texts follow `gateway: ` on stderr.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvictionError {
    /// The holder cannot be seen, so there is no pid to signal.
    #[error("--force: {endpoint} is held by {who}; cannot signal it")]
    HolderHidden { endpoint: Endpoint, who: String },
    /// Even SIGKILL did not free the port in time.
    #[error("--force: {endpoint} is still held after SIGKILL")]
    StillHeld { endpoint: Endpoint },
}

/// Evicts the holders of `endpoint`'s port, never `own_pid`. `say` hears each step
/// as it happens (a line for stderr, after `gateway: `), so the user sees who is
/// being signalled before the waiting starts.
///
/// `Ok` once the port is free or every holder that was signalled has gone: then
/// whoever holds the port, if anyone, came after (another start that was quicker),
/// and the caller's next bind meets it as a plain start would. A holder that went
/// on its own before its signal is not an error, and one that has gone is never
/// sent SIGKILL.
pub async fn evict(
    endpoint: Endpoint,
    owners: &dyn PortOwnerLookup,
    processes: &dyn ProcessControl,
    own_pid: u32,
    mut say: impl FnMut(String),
) -> Result<(), EvictionError> {
    let holders = match owners.owners(endpoint).await {
        PortOwners::Visible(holders) => holders,
        PortOwners::None => return Ok(()), // it went away by itself
        hidden @ (PortOwners::Hidden | PortOwners::Unknown | PortOwners::EphemeralRange { .. }) => {
            return Err(EvictionError::HolderHidden {
                endpoint,
                who: hidden.describe(),
            });
        }
    };
    let pids: Vec<u32> = holders
        .iter()
        .map(|p| p.pid)
        .filter(|p| *p != own_pid)
        .collect();
    say(format!(
        "--force: {endpoint} is held by {}; sending SIGTERM",
        PortOwners::Visible(holders).describe()
    ));
    for &pid in &pids {
        // A holder that is gone already (another `--force` got to it first) needs
        // no signal and no word.
        if let Err(error) = processes.signal(pid, StopSignal::Terminate)
            && processes.is_alive(pid)
        {
            say(format!("--force: cannot signal pid {pid}: {error}"));
        }
    }
    if released(endpoint, owners, processes, &pids, TERM_GRACE).await {
        return Ok(());
    }
    for pid in pids.iter().copied().filter(|p| processes.is_alive(*p)) {
        say(format!(
            "--force: pid {pid} still holds the port after 2 s; sending SIGKILL"
        ));
        // Best effort: it may have gone between the look and the signal.
        let _ = processes.signal(pid, StopSignal::Kill);
    }
    if released(endpoint, owners, processes, &pids, KILL_GRACE).await {
        Ok(())
    } else {
        Err(EvictionError::StillHeld { endpoint })
    }
}

/// Whether, within `within`, the port came free or every one of `pids` went. Looks
/// every [`LOOK_EVERY`]: the wait between two looks is the port's own wait.
async fn released(
    endpoint: Endpoint,
    owners: &dyn PortOwnerLookup,
    processes: &dyn ProcessControl,
    pids: &[u32],
    within: Duration,
) -> bool {
    let all_gone = || pids.iter().all(|pid| !processes.is_alive(*pid));
    let looks = within.as_millis().div_ceil(LOOK_EVERY.as_millis());
    for _ in 0..looks {
        if all_gone() || owners.freed_within(endpoint, LOOK_EVERY).await {
            return true;
        }
    }
    all_gone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port_owner::ProcessInfo;
    use crate::ports::MockProcessControl;

    use async_trait::async_trait;
    use mockall::{mock, predicate::eq};
    use std::io;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    mock! {
        Owners {}
        #[async_trait]
        impl PortOwnerLookup for Owners {
            async fn owners(&self, endpoint: Endpoint) -> PortOwners;
            async fn freed_within(&self, endpoint: Endpoint, within: Duration) -> bool;
        }
    }

    const OWN_PID: u32 = 10;

    fn endpoint() -> Endpoint {
        Endpoint::new("127.0.0.1".parse().unwrap(), 4000)
    }

    fn held_by(pids: &[u32]) -> PortOwners {
        PortOwners::Visible(
            pids.iter()
                .map(|&pid| ProcessInfo {
                    pid,
                    program: Some("nc".into()),
                })
                .collect(),
        )
    }

    fn owners_seeing(seen: PortOwners) -> MockOwners {
        let mut owners = MockOwners::new();
        owners.expect_owners().once().return_const(seen);
        owners
    }

    async fn run(
        owners: &MockOwners,
        processes: &MockProcessControl,
    ) -> (Result<(), EvictionError>, Vec<String>) {
        let mut said = Vec::new();
        let outcome = evict(endpoint(), owners, processes, OWN_PID, |line| {
            said.push(line)
        })
        .await;
        (outcome, said)
    }

    /// Processes that run until they get `goes_on`, and then are gone.
    fn processes_going_on(goes_on: StopSignal) -> (MockProcessControl, Arc<AtomicBool>) {
        let gone = Arc::new(AtomicBool::new(false));
        let mut processes = MockProcessControl::new();
        let flag = gone.clone();
        processes.expect_signal().returning(move |_, signal| {
            if signal == goes_on {
                flag.store(true, Ordering::SeqCst);
            }
            Ok(())
        });
        let flag = gone.clone();
        processes
            .expect_is_alive()
            .returning(move |_| !flag.load(Ordering::SeqCst));
        (processes, gone)
    }

    #[tokio::test]
    async fn a_holder_that_goes_on_sigterm_is_never_killed() {
        let mut owners = owners_seeing(held_by(&[321]));
        owners
            .expect_freed_within()
            .with(eq(endpoint()), eq(LOOK_EVERY))
            .returning(|_, _| false);
        let mut processes = MockProcessControl::new();
        processes
            .expect_signal()
            .with(eq(321), eq(StopSignal::Terminate))
            .once()
            .returning(|_, _| Ok(()));
        processes
            .expect_signal()
            .with(eq(321), eq(StopSignal::Kill))
            .never();
        let looks = Arc::new(AtomicUsize::new(0));
        let seen = looks.clone();
        // Still there at the first look, gone at the second.
        processes
            .expect_is_alive()
            .returning(move |_| seen.fetch_add(1, Ordering::SeqCst) == 0);
        let (outcome, said) = run(&owners, &processes).await;
        assert_eq!(outcome, Ok(()));
        assert_eq!(
            said,
            ["--force: ws://127.0.0.1:4000 is held by pid 321 (nc); sending SIGTERM"]
        );
    }

    #[tokio::test]
    async fn a_port_that_comes_free_ends_the_wait_even_before_its_holder_exits() {
        let mut owners = owners_seeing(held_by(&[321]));
        owners.expect_freed_within().once().return_const(true);
        let mut processes = MockProcessControl::new();
        processes.expect_signal().once().returning(|_, _| Ok(()));
        processes.expect_is_alive().return_const(true);
        let (outcome, said) = run(&owners, &processes).await;
        assert_eq!(outcome, Ok(()));
        assert_eq!(said.len(), 1, "{said:?}");
    }

    #[tokio::test]
    async fn a_holder_still_there_after_2_s_gets_sigkill_then_the_port_is_free() {
        let mut owners = owners_seeing(held_by(&[321]));
        let (processes, killed) = processes_going_on(StopSignal::Kill);
        let freed = killed.clone();
        let looks_before_kill = Arc::new(AtomicUsize::new(0));
        let counted = looks_before_kill.clone();
        owners.expect_freed_within().returning(move |_, within| {
            assert_eq!(within, LOOK_EVERY);
            if !freed.load(Ordering::SeqCst) {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            false
        });
        let (outcome, said) = run(&owners, &processes).await;
        assert_eq!(outcome, Ok(()));
        assert!(killed.load(Ordering::SeqCst));
        let waited = LOOK_EVERY * u32::try_from(looks_before_kill.load(Ordering::SeqCst)).unwrap();
        assert_eq!(waited, TERM_GRACE, "SIGKILL comes after the 2 s of grace");
        assert_eq!(
            said,
            [
                "--force: ws://127.0.0.1:4000 is held by pid 321 (nc); sending SIGTERM",
                "--force: pid 321 still holds the port after 2 s; sending SIGKILL",
            ]
        );
    }

    #[tokio::test]
    async fn a_holder_that_survives_sigkill_with_the_port_held_fails_the_eviction() {
        let mut owners = owners_seeing(held_by(&[321]));
        owners.expect_freed_within().return_const(false);
        let mut processes = MockProcessControl::new();
        processes.expect_signal().returning(|_, _| Ok(()));
        processes.expect_is_alive().return_const(true);
        let (outcome, said) = run(&owners, &processes).await;
        assert_eq!(
            outcome.unwrap_err().to_string(),
            "--force: ws://127.0.0.1:4000 is still held after SIGKILL"
        );
        assert_eq!(said.len(), 2, "{said:?}");
    }

    #[tokio::test]
    async fn a_holder_gone_while_another_start_took_the_port_is_left_to_the_next_bind() {
        // Two `--force` at once: the other one signalled the holder first, and its
        // gateway holds the port now. That is not this eviction's failure: the next
        // bind meets the new holder and refuses as a plain start would.
        let mut owners = owners_seeing(held_by(&[321]));
        owners.expect_freed_within().return_const(false);
        let mut processes = MockProcessControl::new();
        processes
            .expect_signal()
            .with(eq(321), eq(StopSignal::Terminate))
            .once()
            .returning(|_, _| Err(io::Error::from_raw_os_error(3))); // ESRCH
        processes
            .expect_signal()
            .with(eq(321), eq(StopSignal::Kill))
            .never();
        processes.expect_is_alive().return_const(false);
        let (outcome, said) = run(&owners, &processes).await;
        assert_eq!(outcome, Ok(()));
        assert_eq!(
            said,
            ["--force: ws://127.0.0.1:4000 is held by pid 321 (nc); sending SIGTERM"],
            "no word of a signal that found nobody, nor of SIGKILL"
        );
    }

    #[tokio::test]
    async fn the_gateway_never_signals_itself() {
        let mut owners = owners_seeing(held_by(&[OWN_PID, 321]));
        owners.expect_freed_within().return_const(true);
        let mut processes = MockProcessControl::new();
        processes
            .expect_signal()
            .with(eq(OWN_PID), mockall::predicate::always())
            .never();
        processes
            .expect_signal()
            .with(eq(321), eq(StopSignal::Terminate))
            .once()
            .returning(|_, _| Ok(()));
        processes.expect_is_alive().return_const(true);
        let (outcome, _) = run(&owners, &processes).await;
        assert_eq!(outcome, Ok(()));
    }

    #[tokio::test]
    async fn a_signal_that_cannot_be_sent_to_a_live_holder_is_said_and_the_wait_goes_on() {
        let mut owners = owners_seeing(held_by(&[321]));
        owners.expect_freed_within().return_const(true);
        let mut processes = MockProcessControl::new();
        processes
            .expect_signal()
            .returning(|_, _| Err(io::Error::from(io::ErrorKind::PermissionDenied)));
        processes.expect_is_alive().return_const(true);
        let (outcome, said) = run(&owners, &processes).await;
        assert_eq!(outcome, Ok(()));
        assert!(
            said[1].starts_with("--force: cannot signal pid 321: "),
            "{said:?}"
        );
    }

    #[tokio::test]
    async fn a_hidden_holder_is_refused_without_signalling_anything() {
        let owners = owners_seeing(PortOwners::Hidden);
        let mut processes = MockProcessControl::new();
        processes.expect_signal().never();
        let (outcome, said) = run(&owners, &processes).await;
        assert_eq!(
            outcome.unwrap_err().to_string(),
            "--force: ws://127.0.0.1:4000 is held by a process not visible to this user; cannot signal it"
        );
        assert!(said.is_empty());
    }

    #[tokio::test]
    async fn a_holder_gone_before_the_look_needs_nothing() {
        let owners = owners_seeing(PortOwners::None);
        let mut processes = MockProcessControl::new();
        processes.expect_signal().never();
        let (outcome, said) = run(&owners, &processes).await;
        assert_eq!(outcome, Ok(()));
        assert!(said.is_empty());
    }
}
