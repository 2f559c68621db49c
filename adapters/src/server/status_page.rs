//! The status page a browser gets on `/`: one self-contained HTML document (a client of
//! the gateway's own WebSocket protocol), with a Content-Security-Policy allowing
//! exactly its inline script and style and its WebSocket back to this gateway.

use std::sync::LazyLock;

use bytes::Bytes;
use data_encoding::BASE64;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use sha2::{Digest, Sha256};

/// The page, embedded in the binary: no build step, nothing fetched from elsewhere.
const PAGE: &str = include_str!("status_page.html");

/// The CSP hash sources of the page's one inline `<script>` and one `<style>`,
/// computed once from the embedded text so they can never drift from it.
static INLINE_HASHES: LazyLock<InlineHashes> = LazyLock::new(|| InlineHashes {
    script: hash_source(inline_block(PAGE, "script")),
    style: hash_source(inline_block(PAGE, "style")),
});

struct InlineHashes {
    /// `'sha256-…'` of the script: the only script the page may run.
    script: String,
    /// `'sha256-…'` of the style sheet: the only styles it may apply.
    style: String,
}

/// Whether a plain `GET /` comes from a browser: its `Accept` lists `text/html`
/// (and not with `q=0`). Everything else keeps getting `426`.
pub(crate) fn wants_html<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(accepts_html)
}

/// One `Accept` element, e.g. `text/html;q=0.9`.
fn accepts_html(element: &str) -> bool {
    let mut parts = element.split(';').map(str::trim);
    let media_type = parts.next().unwrap_or_default();
    if !media_type.eq_ignore_ascii_case("text/html") {
        return false;
    }
    let refused = parts.any(|param| {
        param
            .split_once('=')
            .is_some_and(|(name, q)| name.trim().eq_ignore_ascii_case("q") && is_zero(q))
    });
    !refused
}

fn is_zero(q: &str) -> bool {
    q.trim().parse::<f32>().is_ok_and(|q| q == 0.0)
}

/// The page, for a request addressed to `host` (its `Host` header, already checked
/// by the Host guard when the gateway is bound on loopback).
/// `tls`: whether the page was served over TLS, so that its WebSocket is `wss://`.
pub(crate) fn response(host: Option<&str>, tls: bool) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(policy) = HeaderValue::from_str(&content_security_policy(host, tls)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The same URL answers 426 to a non-browser: caches must not mix the two, and a
    // new binary may carry a new page (and new hashes).
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `default-src 'none'`, then exactly what the page uses: its inline script and style
/// (by hash) and `fetch`/WebSocket to the gateway that served it. `'self'` covers
/// `ws://` (`wss://` from an `https://` page) to the same host and port in CSP
/// Level 3 browsers; the explicit `ws://HOST` (`wss://HOST`) is for older ones.
fn content_security_policy(host: Option<&str>, tls: bool) -> String {
    let hashes = &*INLINE_HASHES;
    let mut connect = String::from("'self'");
    if let Some(host) = host.filter(|host| is_host_source(host)) {
        connect.push_str(if tls { " wss://" } else { " ws://" });
        connect.push_str(host);
    }
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src {connect}; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hashes.script, hashes.style
    )
}

/// Whether `host` can be written into a CSP host-source as it is: a name or IPv4
/// literal with an optional port. Anything else (an IPv6 literal, which CSP cannot
/// express, or a header value with spaces or `;`) is left to `'self'`.
fn is_host_source(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    name_ok && port_ok
}

/// The text between `<TAG>` and `</TAG>`: what the browser hashes for an inline
/// script or style.
fn inline_block<'a>(page: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    page.split_once(&open)
        .and_then(|(_, rest)| rest.split_once(&close))
        .map(|(inside, _)| inside)
        .unwrap_or_default()
}

fn hash_source(text: &str) -> String {
    format!(
        "'sha256-{}'",
        BASE64.encode(&Sha256::digest(text.as_bytes()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get_with_accept(accept: &str) -> Request<()> {
        Request::get("/")
            .header(header::ACCEPT, accept)
            .body(())
            .unwrap()
    }

    #[test]
    fn a_browser_accept_header_asks_for_the_page() {
        let chromium = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,\
                        image/webp,image/apng,*/*;q=0.8";
        assert!(wants_html(&get_with_accept(chromium)));
        assert!(wants_html(&get_with_accept("TEXT/HTML; charset=utf-8")));
    }

    #[test]
    fn other_clients_do_not_get_the_page() {
        assert!(!wants_html(&Request::get("/").body(()).unwrap()));
        assert!(!wants_html(&get_with_accept("*/*")));
        assert!(!wants_html(&get_with_accept("application/json")));
        assert!(!wants_html(&get_with_accept("text/html;q=0, */*")));
        assert!(!wants_html(&get_with_accept("text/htmlx")));
    }

    #[test]
    fn the_page_has_one_inline_script_and_one_style_and_nothing_external() {
        for tag in ["script", "style"] {
            assert_eq!(PAGE.matches(&format!("<{tag}")).count(), 1, "{tag}");
            assert!(inline_block(PAGE, tag).len() > 100, "{tag} is inline");
        }
        for external in [
            "src=", "href=", "url(", "@import", "http://", "https://", " style=",
        ] {
            assert!(!PAGE.contains(external), "the page contains {external}");
        }
    }

    #[test]
    fn the_page_has_the_elements_the_reference_names() {
        for id in [
            "state",
            "pid",
            "port",
            "profile",
            "version",
            "uptime",
            "connections",
            "role",
            "fencing",
            "token",
        ] {
            assert!(PAGE.contains(&format!("id=\"{id}\"")), "no element #{id}");
        }
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_blocks_by_hash() {
        let policy = content_security_policy(Some("127.0.0.1:4000"), false);
        assert!(policy.starts_with("default-src 'none'; "));
        let script = hash_source(inline_block(PAGE, "script"));
        assert!(
            policy.contains(&format!("script-src {script};")),
            "{policy}"
        );
        assert!(!policy.contains("unsafe"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn the_websocket_source_is_the_host_the_page_was_served_under() {
        let policy = content_security_policy(Some("localhost:4000"), false);
        assert!(
            policy.contains("connect-src 'self' ws://localhost:4000;"),
            "{policy}"
        );
        let policy = content_security_policy(Some("gw.example:4000"), true);
        assert!(
            policy.contains("connect-src 'self' wss://gw.example:4000;"),
            "{policy}"
        );
        for unusable in [
            None,
            Some("[::1]:4000"),
            Some("a b; script-src *"),
            Some("x:"),
        ] {
            let policy = content_security_policy(unusable, false);
            assert!(
                policy.contains("connect-src 'self';"),
                "{unusable:?}: {policy}"
            );
        }
    }

    #[test]
    fn hash_sources_are_base64_sha256() {
        // `echo -n abc | openssl dgst -sha256 -binary | base64`
        assert_eq!(
            hash_source("abc"),
            "'sha256-ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0='"
        );
    }

    #[test]
    fn the_page_is_served_as_html_with_its_policy() {
        let response = response(Some("127.0.0.1:4000"), false);
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
        assert_eq!(headers[header::VARY], "Accept");
    }
}
