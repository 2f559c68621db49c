//! Classification of a bind (or listen) failure into a lock error. This is the whole
//! lock rule: "address in use" means someone holds the lock; anything else is a
//! failure to bind that the user must read.

use std::io;

use crate::endpoint::Endpoint;
use crate::lock_error::GatewayLockError;

/// Maps the OS error of `bind(2)`/`listen(2)` on `endpoint` to the lock error.
///
/// EADDRINUSE, whether it arrives as `ErrorKind::AddrInUse` or as the raw OS error
/// (std decodes one into the other), is [`GatewayLockError::AlreadyListening`];
/// every other error is [`GatewayLockError::BindFailed`] carrying the OS text.
pub fn classify_bind_error(endpoint: Endpoint, error: io::Error) -> GatewayLockError {
    if error.kind() == io::ErrorKind::AddrInUse {
        GatewayLockError::AlreadyListening { endpoint }
    } else {
        GatewayLockError::BindFailed {
            endpoint,
            source: error,
        }
    }
}

/// Whether a failure to hold the `[::1]` companion only means the host has no IPv6
/// loopback (no address, or no IPv6 at all): that is one log line, not a refusal.
pub fn is_ipv6_loopback_missing(error: &GatewayLockError) -> bool {
    match error {
        GatewayLockError::BindFailed { source, .. } => matches!(
            source.kind(),
            io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn any_endpoint() -> impl Strategy<Value = Endpoint> {
        let v4 = any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o)));
        let v6 = any::<[u16; 8]>().prop_map(|s| IpAddr::V6(Ipv6Addr::from(s)));
        (prop_oneof![v4, v6], 1u16..=u16::MAX).prop_map(|(ip, port)| Endpoint::new(ip, port))
    }

    const ALL_KINDS: &[io::ErrorKind] = &[
        io::ErrorKind::NotFound,
        io::ErrorKind::PermissionDenied,
        io::ErrorKind::ConnectionRefused,
        io::ErrorKind::ConnectionReset,
        io::ErrorKind::HostUnreachable,
        io::ErrorKind::NetworkUnreachable,
        io::ErrorKind::ConnectionAborted,
        io::ErrorKind::NotConnected,
        io::ErrorKind::AddrInUse,
        io::ErrorKind::AddrNotAvailable,
        io::ErrorKind::NetworkDown,
        io::ErrorKind::BrokenPipe,
        io::ErrorKind::AlreadyExists,
        io::ErrorKind::WouldBlock,
        io::ErrorKind::NotADirectory,
        io::ErrorKind::IsADirectory,
        io::ErrorKind::DirectoryNotEmpty,
        io::ErrorKind::ReadOnlyFilesystem,
        io::ErrorKind::StaleNetworkFileHandle,
        io::ErrorKind::InvalidInput,
        io::ErrorKind::InvalidData,
        io::ErrorKind::TimedOut,
        io::ErrorKind::WriteZero,
        io::ErrorKind::StorageFull,
        io::ErrorKind::NotSeekable,
        io::ErrorKind::QuotaExceeded,
        io::ErrorKind::FileTooLarge,
        io::ErrorKind::ResourceBusy,
        io::ErrorKind::ExecutableFileBusy,
        io::ErrorKind::Deadlock,
        io::ErrorKind::CrossesDevices,
        io::ErrorKind::TooManyLinks,
        io::ErrorKind::InvalidFilename,
        io::ErrorKind::ArgumentListTooLong,
        io::ErrorKind::Interrupted,
        io::ErrorKind::Unsupported,
        io::ErrorKind::UnexpectedEof,
        io::ErrorKind::OutOfMemory,
        io::ErrorKind::Other,
    ];

    proptest! {
        #[test]
        fn only_addr_in_use_kind_means_already_listening(
            endpoint in any_endpoint(),
            kind in proptest::sample::select(ALL_KINDS),
            detail in ".{0,40}",
        ) {
            let classified = classify_bind_error(endpoint, io::Error::new(kind, detail));
            let already = matches!(classified, GatewayLockError::AlreadyListening { .. });
            prop_assert_eq!(already, kind == io::ErrorKind::AddrInUse);
        }

        #[test]
        fn only_raw_eaddrinuse_means_already_listening(
            endpoint in any_endpoint(),
            code in prop_oneof![Just(libc::EADDRINUSE), 0i32..200, any::<i32>()],
        ) {
            let classified = classify_bind_error(endpoint, io::Error::from_raw_os_error(code));
            let already = matches!(classified, GatewayLockError::AlreadyListening { .. });
            prop_assert_eq!(already, code == libc::EADDRINUSE);
        }

        #[test]
        fn already_listening_message_is_the_documented_text(endpoint in any_endpoint()) {
            let classified = classify_bind_error(
                endpoint,
                io::Error::from_raw_os_error(libc::EADDRINUSE),
            );
            let host = match endpoint.ip() {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            };
            prop_assert_eq!(
                classified.headline(),
                format!(
                    "GatewayLockError: another gateway instance is already listening on ws://{}:{}",
                    host,
                    endpoint.port()
                )
            );
        }

        #[test]
        fn bind_failed_message_keeps_the_os_text(
            endpoint in any_endpoint(),
            code in (1i32..200).prop_filter("not in use", |c| *c != libc::EADDRINUSE),
        ) {
            let os = io::Error::from_raw_os_error(code);
            let os_text = os.to_string();
            let classified = classify_bind_error(endpoint, os);
            prop_assert_eq!(
                classified.headline(),
                format!("GatewayLockError: failed to bind gateway socket on {endpoint}: {os_text}")
            );
        }
    }

    #[test]
    fn missing_ipv6_loopback_is_not_a_refusal() {
        let e = Endpoint::new("::1".parse().unwrap(), 9);
        let missing = classify_bind_error(e, io::Error::from_raw_os_error(libc::EADDRNOTAVAIL));
        assert!(is_ipv6_loopback_missing(&missing));
        let held = classify_bind_error(e, io::Error::from_raw_os_error(libc::EADDRINUSE));
        assert!(!is_ipv6_loopback_missing(&held));
        let denied = classify_bind_error(e, io::Error::from_raw_os_error(libc::EACCES));
        assert!(!is_ipv6_loopback_missing(&denied));
    }
}
