//! The port through which the OS says which processes own a listening socket.

use std::time::Duration;

use async_trait::async_trait;

use crate::endpoint::Endpoint;
use crate::port_owner::PortOwners;

/// Looks up the owners of the listening sockets on an endpoint's port.
#[async_trait]
pub trait PortOwnerLookup: Send + Sync {
    /// MUST NOT fail: what cannot be seen is [`PortOwners::Hidden`] or
    /// [`PortOwners::Unknown`]. MUST NOT block the caller's thread while it looks
    /// (a look may walk every process's descriptors).
    async fn owners(&self, endpoint: Endpoint) -> PortOwners;

    /// Resolves `true` as soon as nothing listens on `endpoint`'s port any more
    /// ([`PortOwners::None`], or only an outgoing connection's
    /// [`PortOwners::EphemeralRange`]), `false` once `within` has passed with it still
    /// held. MUST wait without blocking the caller's thread.
    async fn freed_within(&self, endpoint: Endpoint, within: Duration) -> bool;
}
