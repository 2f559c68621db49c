//! The browser guards: which `Host` a loopback gateway answers (DNS rebinding) and
//! which `Origin` may open its WebSocket (cross-site WebSocket hijacking).

use std::net::IpAddr;

/// Whether a `Host` header names this machine's loopback: `localhost` (any case, one
/// trailing dot allowed) or a loopback IP literal (`127.0.0.0/8`, `[::1]`), with or
/// without a port. A DNS-rebinding page always sends its own host name, so anything
/// else is refused.
pub fn is_loopback_host(host: &str) -> bool {
    split_authority(host.trim()).is_some_and(is_loopback_name)
}

/// Whether an `Origin` is a page served from this machine's loopback:
/// `http(s)://localhost|127.x.y.z|[::1][:port]`.
pub fn is_loopback_origin(origin: &str) -> bool {
    let origin = origin.trim();
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    scheme_ok && split_authority(authority).is_some_and(is_loopback_name)
}

/// Whether an upgrade carrying `origin` may proceed: a loopback origin, or one the
/// operator allowed with `--allow-origin` (compared without case or trailing `/`).
pub fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    let normalise = |o: &str| o.trim().trim_end_matches('/').to_ascii_lowercase();
    let wanted = normalise(origin);
    is_loopback_origin(origin) || allowed.iter().any(|a| normalise(a) == wanted)
}

/// Checks an `--allow-origin` value: `scheme://host[:port]`, as browsers send it.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let invalid = || {
        format!(
            "invalid origin \"{text}\": expected scheme://host[:port], e.g. https://app.example.com"
        )
    };
    let (scheme, authority) = text.trim().split_once("://").ok_or_else(invalid)?;
    let scheme_ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    match split_authority(authority) {
        Some(host) if scheme_ok && !host.is_empty() => Ok(text.trim().to_owned()),
        _ => Err(invalid()),
    }
}

/// The host part of `host[:port]` or `[v6][:port]`; `None` when malformed.
fn split_authority(authority: &str) -> Option<&str> {
    if authority.is_empty() || authority.contains(['/', '@', ' ']) {
        return None;
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            after => Some(after.strip_prefix(':')?),
        };
        // Bracketed hosts are IPv6 literals only.
        inside.parse::<std::net::Ipv6Addr>().ok()?;
        (inside, port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port_ok =
        port.is_none_or(|p| p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok());
    if !port_ok {
        return None;
    }
    Some(host)
}

fn is_loopback_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_pass() {
        for host in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "localhost:8080",
            "127.0.0.1",
            "127.0.0.1:80",
            "127.1.2.3:5",
            "[::1]",
            "[::1]:8080",
            "[0:0:0:0:0:0:0:1]:1",
            " localhost ",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn other_hosts_are_refused() {
        for host in [
            "",
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "localhost..",
            "127.0.0.1.evil.example",
            "::1",
            "[::1",
            "[::2]:80",
            "[localhost]",
            "localhost:",
            "localhost:http",
            "localhost:123456",
            "user@localhost",
            "0.0.0.0",
            "192.168.1.1",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn loopback_origins_pass_and_others_do_not() {
        for origin in [
            "http://localhost",
            "https://localhost:3000",
            "HTTP://LocalHost:3000",
            "http://127.0.0.1:8080",
            "http://[::1]:8080",
            "http://localhost.",
        ] {
            assert!(is_loopback_origin(origin), "{origin}");
        }
        for origin in [
            "null",
            "file://",
            "http://evil.example",
            "https://localhost.evil.example",
            "ws://localhost",
            "chrome-extension://abc",
            "http://localhost/path",
            "http://127.0.0.1:99999",
        ] {
            assert!(!is_loopback_origin(origin), "{origin}");
        }
    }

    #[test]
    fn origin_flags_are_validated() {
        assert!(parse_origin("https://app.example.com").is_ok());
        assert!(parse_origin("http://localhost:3000/").is_ok());
        assert!(parse_origin("chrome-extension://abcdef").is_ok());
        for bad in [
            "example.com",
            "https://",
            "https://a.com/path",
            "://x",
            "https://a b",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allowed_origins_match_exactly_modulo_case_and_trailing_slash() {
        let allowed = vec!["https://app.example.com".to_owned()];
        assert!(origin_allowed("https://app.example.com", &allowed));
        assert!(origin_allowed("HTTPS://APP.example.com/", &allowed));
        assert!(!origin_allowed("https://app.example.com.evil", &allowed));
        assert!(!origin_allowed("http://app.example.com", &allowed));
        assert!(origin_allowed("http://localhost:1", &allowed));
    }
}
