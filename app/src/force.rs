//! `gateway --force`: take the port from whatever holds it. Wiring only: the policy
//! (name the holder, SIGTERM, SIGKILL after 2 s) is `gateway_domain::eviction`.

use gateway_adapters::SystemProcesses;
use gateway_domain::Endpoint;
use gateway_domain::eviction;
use gateway_domain::port_owner::PortOwnerLookup;

/// Evicts the holders of `endpoint`'s port, saying each step on stderr. `Err` says
/// why the port could not be freed.
pub async fn evict(endpoint: Endpoint, lookup: &dyn PortOwnerLookup) -> Result<(), String> {
    let say = |line: String| eprintln!("gateway: {line}");
    eviction::evict(endpoint, lookup, &SystemProcesses, std::process::id(), say)
        .await
        .map_err(|error| error.to_string())
}
