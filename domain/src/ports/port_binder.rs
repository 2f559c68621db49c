//! The port through which the gateway takes its lock: binding its listening socket.

use async_trait::async_trait;

use crate::endpoint::Endpoint;
use crate::lock_error::GatewayLockError;

/// Binds an exclusive listening socket. Holding the bound listener *is* holding the
/// lock; dropping it releases the lock, as does the OS on any process exit.
#[async_trait]
pub trait PortBinder: Send + Sync {
    /// The bound listener, ready to accept.
    type Listener: Send;

    /// Binds and listens on `endpoint`.
    ///
    /// MUST return [`GatewayLockError::AlreadyListening`] when another socket holds the
    /// address (at `bind` or at `listen` time), and [`GatewayLockError::BindFailed`]
    /// with the OS error for any other failure; see [`crate::classify_bind_error`].
    /// MUST NOT share the address with another listener (no `SO_REUSEPORT`).
    async fn bind(&self, endpoint: Endpoint) -> Result<Self::Listener, GatewayLockError>;
}
