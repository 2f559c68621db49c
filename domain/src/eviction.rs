//! `gateway --force`'s policy: whatever holds the port is named, sent SIGTERM, and
//! SIGKILL if the port is still held 2 s later; the start goes on once it is free.

use std::time::Duration;

use crate::endpoint::Endpoint;
use crate::port_owner::{PortOwnerLookup, PortOwners};
use crate::process_control::{ProcessControl, StopSignal};

/// How long a holder has to go after SIGTERM before SIGKILL (the contract's 2 s).
pub const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long the port may take to come free after SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

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
        if let Err(error) = processes.signal(pid, StopSignal::Terminate) {
            say(format!("--force: cannot signal pid {pid}: {error}"));
        }
    }
    if owners.freed_within(endpoint, TERM_GRACE).await {
        return Ok(());
    }
    for pid in pids.into_iter().filter(|p| processes.is_alive(*p)) {
        say(format!(
            "--force: pid {pid} still holds the port after 2 s; sending SIGKILL"
        ));
        // Best effort: it may have gone between the look and the signal.
        let _ = processes.signal(pid, StopSignal::Kill);
    }
    if owners.freed_within(endpoint, KILL_GRACE).await {
        Ok(())
    } else {
        Err(EvictionError::StillHeld { endpoint })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port_owner::ProcessInfo;
    use crate::process_control::MockProcessControl;
    use async_trait::async_trait;
    use mockall::{Sequence, mock, predicate::eq};
    use std::io;

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

    #[tokio::test]
    async fn a_holder_that_goes_on_sigterm_is_never_killed() {
        let mut owners = owners_seeing(held_by(&[321]));
        owners
            .expect_freed_within()
            .with(eq(endpoint()), eq(TERM_GRACE))
            .once()
            .return_const(true);
        let mut processes = MockProcessControl::new();
        processes
            .expect_signal()
            .with(eq(321), eq(StopSignal::Terminate))
            .once()
            .returning(|_, _| Ok(()));
        processes.expect_is_alive().never();
        let (outcome, said) = run(&owners, &processes).await;
        assert_eq!(outcome, Ok(()));
        assert_eq!(
            said,
            ["--force: ws://127.0.0.1:4000 is held by pid 321 (nc); sending SIGTERM"]
        );
    }

    #[tokio::test]
    async fn a_holder_still_there_after_2_s_gets_sigkill_then_the_port_is_free() {
        let mut owners = owners_seeing(held_by(&[321]));
        let mut order = Sequence::new();
        owners
            .expect_freed_within()
            .with(eq(endpoint()), eq(TERM_GRACE))
            .once()
            .in_sequence(&mut order)
            .return_const(false);
        owners
            .expect_freed_within()
            .with(eq(endpoint()), eq(KILL_GRACE))
            .once()
            .in_sequence(&mut order)
            .return_const(true);
        let mut processes = MockProcessControl::new();
        let mut signals = Sequence::new();
        processes
            .expect_signal()
            .with(eq(321), eq(StopSignal::Terminate))
            .once()
            .in_sequence(&mut signals)
            .returning(|_, _| Ok(()));
        processes.expect_is_alive().with(eq(321)).return_const(true);
        processes
            .expect_signal()
            .with(eq(321), eq(StopSignal::Kill))
            .once()
            .in_sequence(&mut signals)
            .returning(|_, _| Ok(()));
        let (outcome, said) = run(&owners, &processes).await;
        assert_eq!(outcome, Ok(()));
        assert_eq!(
            said[1],
            "--force: pid 321 still holds the port after 2 s; sending SIGKILL"
        );
    }

    #[tokio::test]
    async fn a_holder_that_exited_but_left_the_port_held_is_not_killed() {
        let mut owners = owners_seeing(held_by(&[321]));
        owners.expect_freed_within().return_const(false);
        let mut processes = MockProcessControl::new();
        processes
            .expect_signal()
            .with(eq(321), eq(StopSignal::Terminate))
            .once()
            .returning(|_, _| Ok(()));
        processes.expect_is_alive().return_const(false);
        let (outcome, said) = run(&owners, &processes).await;
        assert_eq!(
            outcome,
            Err(EvictionError::StillHeld {
                endpoint: endpoint()
            })
        );
        assert_eq!(
            outcome.unwrap_err().to_string(),
            "--force: ws://127.0.0.1:4000 is still held after SIGKILL"
        );
        assert_eq!(said.len(), 1, "{said:?}");
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
        let (outcome, _) = run(&owners, &processes).await;
        assert_eq!(outcome, Ok(()));
    }

    #[tokio::test]
    async fn a_signal_that_cannot_be_sent_is_said_and_the_wait_goes_on() {
        let mut owners = owners_seeing(held_by(&[321]));
        owners.expect_freed_within().return_const(true);
        let mut processes = MockProcessControl::new();
        processes
            .expect_signal()
            .returning(|_, _| Err(io::Error::from(io::ErrorKind::PermissionDenied)));
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
