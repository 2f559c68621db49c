//! `gateway --force`: take the port from whatever holds it. The holder is named on
//! stderr, sent SIGTERM, and SIGKILL after 2 s if it still holds the port.

use std::time::{Duration, Instant};

use gateway_adapters::process_signal::{self, StopSignal};
use gateway_domain::Endpoint;
use gateway_domain::port_owner::{PortOwnerLookup, PortOwners};

/// How long a holder has to go after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long the port may take to free up after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(10);

/// Evicts the holders of `endpoint`'s port. `Err` says why nothing could be done.
pub async fn evict(endpoint: Endpoint, lookup: &dyn PortOwnerLookup) -> Result<(), String> {
    let holders = match lookup.owners(endpoint) {
        PortOwners::Visible(holders) => holders,
        PortOwners::None => return Ok(()), // it went away by itself
        hidden @ (PortOwners::Hidden | PortOwners::Unknown | PortOwners::EphemeralRange { .. }) => {
            return Err(format!(
                "--force: {endpoint} is held by {}; cannot signal it",
                hidden.describe()
            ));
        }
    };
    let own_pid = std::process::id();
    let pids: Vec<u32> = holders
        .iter()
        .map(|p| p.pid)
        .filter(|p| *p != own_pid)
        .collect();
    eprintln!(
        "gateway: --force: {endpoint} is held by {}; sending SIGTERM",
        PortOwners::Visible(holders).describe()
    );
    for &pid in &pids {
        if let Err(error) = process_signal::send(pid, StopSignal::Terminate) {
            eprintln!("gateway: --force: cannot signal pid {pid}: {error}");
        }
    }
    if wait_port_free(endpoint, lookup, TERM_GRACE).await {
        return Ok(());
    }
    let survivors: Vec<u32> = pids
        .into_iter()
        .filter(|p| process_signal::is_alive(*p))
        .collect();
    for &pid in &survivors {
        eprintln!("gateway: --force: pid {pid} still holds the port after 2 s; sending SIGKILL");
        let _ = process_signal::send(pid, StopSignal::Kill);
    }
    if wait_port_free(endpoint, lookup, KILL_GRACE).await {
        Ok(())
    } else {
        Err(format!("--force: {endpoint} is still held after SIGKILL"))
    }
}

async fn wait_port_free(
    endpoint: Endpoint,
    lookup: &dyn PortOwnerLookup,
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if matches!(
            lookup.owners(endpoint),
            PortOwners::None | PortOwners::EphemeralRange { .. }
        ) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}
