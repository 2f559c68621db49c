//! The real binder: an exclusive TCP listener built with `socket2`. Socket options
//! live here and nowhere else.

use gateway_domain::ports::PortBinder;
use std::io;
use std::net::SocketAddr;

use async_trait::async_trait;
use gateway_domain::{Endpoint, GatewayLockError, classify_bind_error};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// Pending connections the kernel queues before `accept` (clamped by `somaxconn`).
const LISTEN_BACKLOG: i32 = 1024;

/// Binds exclusive listeners for the gateway.
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpBinder;

#[async_trait]
impl PortBinder for TcpBinder {
    type Listener = TcpListener;

    async fn bind(&self, endpoint: Endpoint) -> Result<TcpListener, GatewayLockError> {
        let std_listener = bind_exclusive(endpoint.socket_addr())
            .map_err(|error| classify_bind_error(endpoint, error))?;
        TcpListener::from_std(std_listener).map_err(|error| classify_bind_error(endpoint, error))
    }
}

/// Creates, binds and listens on a socket that no other socket may share.
///
/// - never `SO_REUSEPORT`: that would let a second gateway listen beside us;
/// - `SO_REUSEADDR` on Unix: a previous run's TIME_WAIT connections never block a
///   restart, while the kernel still refuses a second *listener* (at `bind` or at
///   `listen`, both classified the same way);
/// - close-on-exec (`SOCK_CLOEXEC` at creation): no child process keeps the port;
/// - `IPV6_V6ONLY` on IPv6, so `[::1]` and `127.0.0.1` are two separate locks.
pub fn bind_exclusive(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    #[cfg(unix)]
    {
        socket.set_cloexec(true)?;
        socket.set_reuse_address(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback(port: u16) -> Endpoint {
        Endpoint::new("127.0.0.1".parse().unwrap(), port)
    }

    #[tokio::test]
    async fn a_second_bind_on_a_held_port_is_already_listening() {
        let first = TcpBinder.bind(loopback(0)).await.unwrap();
        let port = first.local_addr().unwrap().port();
        let second = TcpBinder.bind(loopback(port)).await.unwrap_err();
        assert!(matches!(second, GatewayLockError::AlreadyListening { .. }));
        drop(first);
        assert!(TcpBinder.bind(loopback(port)).await.is_ok());
    }

    #[tokio::test]
    async fn a_plain_std_listener_is_also_a_conflict() {
        let foreign = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = foreign.local_addr().unwrap().port();
        let err = TcpBinder.bind(loopback(port)).await.unwrap_err();
        assert!(matches!(err, GatewayLockError::AlreadyListening { .. }));
    }

    #[tokio::test]
    async fn an_address_not_on_this_host_is_a_bind_failure() {
        // 192.0.2.0/24 is TEST-NET-1: never assigned to a local interface.
        let endpoint = Endpoint::new("192.0.2.1".parse().unwrap(), 1);
        let err = TcpBinder.bind(endpoint).await.unwrap_err();
        assert!(matches!(err, GatewayLockError::BindFailed { .. }), "{err}");
    }
}
