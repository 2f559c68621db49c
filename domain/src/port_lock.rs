//! Taking the port lock: the listener on the requested address and, on `127.0.0.1`,
//! its `[::1]` companion, so that `ws://localhost:PORT` can never reach a second
//! gateway whichever family `localhost` resolves to.

use crate::classify::is_ipv6_loopback_missing;
use crate::endpoint::Endpoint;
use crate::lock_error::GatewayLockError;
use crate::port_binder::PortBinder;

/// The port, held. Dropping it releases the port.
#[derive(Debug)]
pub struct HeldPort<L> {
    /// The listeners, the requested endpoint first.
    pub listeners: Vec<(Endpoint, L)>,
    /// Set when the `[::1]` companion could not be held because the host has no IPv6
    /// loopback: worth one log line, not a refusal.
    pub ipv6_loopback_missing: Option<GatewayLockError>,
}

/// Binds `endpoint`, then its `[::1]` companion when there is one. On any refusal,
/// whatever was already bound is dropped, so nothing stays held.
pub async fn acquire<B: PortBinder>(
    binder: &B,
    endpoint: Endpoint,
) -> Result<HeldPort<B::Listener>, GatewayLockError> {
    let primary = binder.bind(endpoint).await?;
    let mut held = HeldPort {
        listeners: vec![(endpoint, primary)],
        ipv6_loopback_missing: None,
    };
    if let Some(companion) = endpoint.ipv6_loopback_companion() {
        match binder.bind(companion).await {
            Ok(listener) => held.listeners.push((companion, listener)),
            Err(error) if is_ipv6_loopback_missing(&error) => {
                held.ipv6_loopback_missing = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Ok(held)
}
