//! Resolving the start configuration from flags and environment (docs/reference.md#starting): its
//! precedence, and the refusals that come before any bind.

use std::net::IpAddr;

use crate::endpoint::Endpoint;
use crate::lock_error::GatewayConfigError;

/// The port every profile but `dev` serves on by default.
pub const DEFAULT_PORT: u16 = 18789;
/// The port of the `dev` profile.
pub const DEV_PORT: u16 = 19001;
pub const DEFAULT_PROFILE: &str = "default";
pub const DEV_PROFILE: &str = "dev";

/// The port the profile serves on when nothing else says.
pub fn profile_default_port(profile: &str) -> u16 {
    if profile == DEV_PROFILE {
        DEV_PORT
    } else {
        DEFAULT_PORT
    }
}

/// `--port` (or `GATEWAY_PORT`, which clap reads into the same value) > the port named by
/// the profile's *held* lock file (only `status`, `stop` and `restart` look there; a start
/// passes `None`) > the profile's default.
pub fn resolve_port(explicit: Option<u16>, held_lock_port: Option<u16>, profile: &str) -> u16 {
    explicit
        .or(held_lock_port)
        .unwrap_or_else(|| profile_default_port(profile))
}

/// Why a port value is not a usable port.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortParseError {
    #[error("invalid port \"{0}\": not a number")]
    NotANumber(String),
    #[error("invalid port \"{0}\": must be between 1 and 65535")]
    OutOfRange(String),
}

/// Parses a user-given port: a decimal number from 1 to 65535.
pub fn parse_port(text: &str) -> Result<u16, PortParseError> {
    let trimmed = text.trim();
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortParseError::NotANumber(text.to_owned()));
    }
    match trimmed.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(PortParseError::OutOfRange(text.to_owned())),
    }
}

/// A gateway reachable from outside the host must demand a token.
pub fn check_exposure(
    bind: IpAddr,
    port: u16,
    token: Option<&str>,
) -> Result<(), GatewayConfigError> {
    let endpoint = Endpoint::new(bind, port);
    let has_token = token.is_some_and(|t| !t.is_empty());
    if endpoint.is_loopback() || has_token {
        Ok(())
    } else {
        Err(GatewayConfigError::UnauthenticatedNonLoopback { endpoint })
    }
}

/// What the start says about its transport once [`check_plaintext`] lets it go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TLS on the port (`wss://`, `https://`).
    Tls,
    /// Plaintext where that is fine: on loopback, nothing crosses a network.
    LoopbackPlaintext,
    /// Plaintext off loopback, allowed by `--allow-plaintext`: a TLS proxy in front
    /// is said to terminate TLS. Worth one warning at start.
    PlaintextBehindProxy,
}

/// The warning a start with [`Transport::PlaintextBehindProxy`] logs, once.
pub const PLAINTEXT_WARNING: &str = "--allow-plaintext: serving ws:// and http:// off loopback; \
     tokens cross the network in clear text unless a TLS proxy in front terminates TLS";

/// A gateway reachable from outside the host must speak TLS, or be told
/// (`--allow-plaintext`) that a proxy in front does: tokens must not cross a network
/// in clear text.
pub fn check_plaintext(
    endpoint: Endpoint,
    tls: bool,
    allow_plaintext: bool,
) -> Result<Transport, GatewayConfigError> {
    match (tls, endpoint.is_loopback(), allow_plaintext) {
        (true, _, _) => Ok(Transport::Tls),
        (false, true, _) => Ok(Transport::LoopbackPlaintext),
        (false, false, true) => Ok(Transport::PlaintextBehindProxy),
        (false, false, false) => Err(GatewayConfigError::PlaintextNonLoopback {
            endpoint: endpoint.with_tls(false),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_port_beats_held_lock_file_beats_profile_default() {
        assert_eq!(resolve_port(Some(1), Some(2), "dev"), 1);
        assert_eq!(resolve_port(None, Some(2), "dev"), 2);
        assert_eq!(resolve_port(None, None, "dev"), DEV_PORT);
        assert_eq!(resolve_port(None, None, "default"), DEFAULT_PORT);
    }

    #[test]
    fn ports_must_be_numbers_in_range() {
        assert_eq!(parse_port("8080"), Ok(8080));
        assert_eq!(parse_port("65535"), Ok(65535));
        assert!(matches!(
            parse_port("0"),
            Err(PortParseError::OutOfRange(_))
        ));
        assert!(matches!(
            parse_port("65536"),
            Err(PortParseError::OutOfRange(_))
        ));
        assert!(matches!(
            parse_port("99999999999"),
            Err(PortParseError::OutOfRange(_))
        ));
        assert!(matches!(
            parse_port("http"),
            Err(PortParseError::NotANumber(_))
        ));
        assert!(matches!(
            parse_port("-1"),
            Err(PortParseError::NotANumber(_))
        ));
        assert!(matches!(parse_port(""), Err(PortParseError::NotANumber(_))));
    }

    #[test]
    fn non_loopback_without_token_is_refused() {
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let err = check_exposure(any, 5000, None).unwrap_err();
        assert_eq!(
            err.headline(),
            "GatewayConfigError: refusing to bind gateway to ws://0.0.0.0:5000 without auth (set --token or GATEWAY_TOKEN)"
        );
        assert!(check_exposure(any, 5000, Some("")).is_err());
        assert!(check_exposure(any, 5000, Some("s3cret")).is_ok());
        assert!(check_exposure("::1".parse().unwrap(), 5000, None).is_ok());
        assert!(check_exposure("127.0.0.1".parse().unwrap(), 5000, None).is_ok());
    }

    #[test]
    fn non_loopback_without_tls_is_refused_unless_a_proxy_is_said_to_terminate_it() {
        let any = Endpoint::new("0.0.0.0".parse().unwrap(), 5000);
        let err = check_plaintext(any, false, false).unwrap_err();
        assert_eq!(
            err.headline(),
            "GatewayConfigError: refusing to send tokens in clear text on ws://0.0.0.0:5000 (set --tls-cert and --tls-key, or --allow-plaintext behind a TLS proxy)"
        );
        assert_eq!(
            check_plaintext(any, false, true),
            Ok(Transport::PlaintextBehindProxy)
        );
        assert_eq!(check_plaintext(any, true, false), Ok(Transport::Tls));
        let loopback = Endpoint::new("::1".parse().unwrap(), 5000);
        assert_eq!(
            check_plaintext(loopback, false, false),
            Ok(Transport::LoopbackPlaintext)
        );
        assert_eq!(
            check_plaintext(loopback, false, true),
            Ok(Transport::LoopbackPlaintext)
        );
    }
}
