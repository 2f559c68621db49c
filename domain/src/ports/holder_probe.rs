//! The port through which a refused start asks who holds the port.

use async_trait::async_trait;

use crate::endpoint::Endpoint;
use crate::holder::Holder;

/// Asks whoever holds a port what it is.
#[async_trait]
pub trait HolderProbe: Send + Sync {
    /// MUST return within [`crate::holder::HOLDER_PROBE_BUDGET`] (plus scheduling slack) and MUST
    /// return [`Holder::Unconfirmed`] on any failure: the probe never fails a start
    /// on its own.
    async fn identify(&self, endpoint: Endpoint) -> Holder;
}
