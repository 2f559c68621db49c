//! The address a gateway serves on, and the `ws://` (or, with TLS, `wss://`) URL users
//! see for it.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// One listening address of the gateway. Displays as the URL a client dials:
/// `ws://127.0.0.1:4567`, `ws://[::1]:4567`, `wss://192.0.2.7:4567` with TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint(SocketAddr, Scheme);

/// How a client talks to the port: every URL the gateway prints follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
enum Scheme {
    #[default]
    Plain,
    Tls,
}

impl Endpoint {
    /// A plaintext endpoint (`ws://`); see [`Endpoint::with_tls`].
    pub fn new(ip: IpAddr, port: u16) -> Self {
        Self(SocketAddr::new(ip, port), Scheme::Plain)
    }

    /// The same address, spoken to over TLS (`wss://`) when `tls` is set.
    pub fn with_tls(self, tls: bool) -> Self {
        Self(self.0, if tls { Scheme::Tls } else { Scheme::Plain })
    }

    /// Whether the port speaks TLS (`wss://`, `https://`).
    pub fn is_tls(&self) -> bool {
        self.1 == Scheme::Tls
    }

    pub fn socket_addr(&self) -> SocketAddr {
        self.0
    }

    pub fn ip(&self) -> IpAddr {
        self.0.ip()
    }

    pub fn port(&self) -> u16 {
        self.0.port()
    }

    pub fn is_loopback(&self) -> bool {
        self.0.ip().is_loopback()
    }

    /// The `[::1]` twin that must also be held when serving on `127.0.0.1`, so that a
    /// client of `ws://localhost:PORT` (which may resolve to either) never reaches a
    /// second gateway. `None` for any other bind address.
    pub fn ipv6_loopback_companion(&self) -> Option<Endpoint> {
        match self.0.ip() {
            IpAddr::V4(v4) if v4 == std::net::Ipv4Addr::LOCALHOST => Some(
                Endpoint::new(IpAddr::V6(Ipv6Addr::LOCALHOST), self.port()).with_tls(self.is_tls()),
            ),
            _ => None,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SocketAddr already brackets IPv6 hosts, as a URL needs.
        let scheme = match self.1 {
            Scheme::Plain => "ws",
            Scheme::Tls => "wss",
        };
        write!(f, "{scheme}://{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_url_has_plain_host() {
        let e = Endpoint::new("127.0.0.1".parse().unwrap(), 4567);
        assert_eq!(e.to_string(), "ws://127.0.0.1:4567");
    }

    #[test]
    fn ipv6_url_brackets_host() {
        let e = Endpoint::new("::1".parse().unwrap(), 4000);
        assert_eq!(e.to_string(), "ws://[::1]:4000");
    }

    #[test]
    fn a_tls_endpoint_and_its_companion_say_wss() {
        let e = Endpoint::new("127.0.0.1".parse().unwrap(), 4567).with_tls(true);
        assert_eq!(e.to_string(), "wss://127.0.0.1:4567");
        assert_eq!(
            e.ipv6_loopback_companion().unwrap().to_string(),
            "wss://[::1]:4567"
        );
        assert_eq!(e.with_tls(false).to_string(), "ws://127.0.0.1:4567");
    }

    #[test]
    fn only_ipv4_loopback_has_an_ipv6_companion() {
        let v4 = Endpoint::new("127.0.0.1".parse().unwrap(), 5);
        assert_eq!(
            v4.ipv6_loopback_companion().unwrap().to_string(),
            "ws://[::1]:5"
        );
        for other in ["127.0.0.2", "0.0.0.0", "::1", "192.0.2.1"] {
            let e = Endpoint::new(other.parse().unwrap(), 5);
            assert!(e.ipv6_loopback_companion().is_none(), "{other}");
        }
    }
}
