//! The status page on `/`, loaded from the real binary in a real headless Chromium:
//! the values it shows are read back from the DOM over the DevTools protocol.
//! Without Chromium these tests print how to install it and pass, except on CI.

use crate::browser::{Browser, chromium_or_skip};
use crate::support::etcd::Etcd;
use crate::support::ws::connected;
use crate::support::*;
use nix::sys::signal::Signal;

/// Flags for a page served under a host name that is not loopback, resolved to
/// 127.0.0.1 by the browser itself (as a DNS-rebinding attack would arrange).
const FOREIGN_HOST_RULES: &str = "--host-resolver-rules=MAP gateway.example 127.0.0.1";

fn page_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/")
}

fn get_root(port: u16, accept: &str) -> HttpResponse {
    http_request(
        port,
        &format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
        ),
    )
    .expect("an answer")
}

#[test]
fn a_browser_gets_the_page_with_a_strict_content_security_policy() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let response = get_root(port, "text/html,application/xhtml+xml,*/*;q=0.8");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(response.body.starts_with("<!doctype html>"));
    let policy = response.header("content-security-policy").expect("a CSP");
    assert!(policy.starts_with("default-src 'none'; "), "{policy}");
    assert!(policy.contains("script-src 'sha256-"), "{policy}");
    assert!(
        policy.contains(&format!("connect-src 'self' ws://127.0.0.1:{port};")),
        "{policy}"
    );
    assert!(!policy.contains("unsafe"), "{policy}");
}

#[test]
fn get_root_without_html_in_accept_stays_426() {
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    for accept in ["*/*", "application/json"] {
        let response = get_root(port, accept);
        assert_eq!(response.status, 426, "Accept: {accept}");
        assert_eq!(response.json()["error"]["code"], "upgrade_required");
    }
}

#[tokio::test]
async fn the_page_shows_the_gateway_that_served_it() {
    let Some(chromium) = chromium_or_skip("the_page_shows_the_gateway_that_served_it") else {
        return;
    };
    let port = free_port();
    let _gateway = Gateway::start(port, &["--profile", "pagetest"]);
    let mut browser = Browser::open(&chromium, &page_url(port), &[]).await;

    browser.wait_for_text("state", "live").await;
    let health = http_get(port, "/healthz").unwrap().json();
    browser
        .wait_for_text("pid", &health["pid"].to_string())
        .await;
    browser
        .wait_for_text("port", &health["port"].to_string())
        .await;
    browser.wait_for_text("profile", "pagetest").await;
    browser
        .wait_for_text("version", env!("CARGO_PKG_VERSION"))
        .await;
    browser
        .wait_for("an uptime", "uptime", |t| t.ends_with('s'))
        .await;
    // No cluster lock: no role or fencing token on show.
    let cluster_shown = browser
        .evaluate("[...document.querySelectorAll('.cluster')].some((e) => !e.hidden)")
        .await;
    assert_eq!(cluster_shown, false);
}

#[tokio::test]
async fn connections_counts_the_pages_own_session_and_follows_new_ones() {
    let Some(chromium) =
        chromium_or_skip("connections_counts_the_pages_own_session_and_follows_new_ones")
    else {
        return;
    };
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let mut browser = Browser::open(&chromium, &page_url(port), &[]).await;

    browser.wait_for_text("connections", "1").await;
    let (_client, _hello) = connected(port).await;
    browser.wait_for_text("connections", "2").await;
}

#[tokio::test]
async fn a_token_in_the_url_fragment_unlocks_a_gateway_started_with_token() {
    let Some(chromium) =
        chromium_or_skip("a_token_in_the_url_fragment_unlocks_a_gateway_started_with_token")
    else {
        return;
    };
    let port = free_port();
    let mut gateway = Gateway::start(port, &["--token", "page-secret"]);
    let url = format!("{}#token=page-secret", page_url(port));
    let mut browser = Browser::open(&chromium, &url, &[]).await;

    browser.wait_for_text("state", "live").await;
    browser
        .wait_for_text("pid", &gateway.child.id().to_string())
        .await;
    browser.wait_for_text("connections", "1").await;

    drop(browser);
    gateway.signal(Signal::SIGTERM);
    gateway.wait_exit();
    let log = gateway.stderr_now();
    assert!(!log.contains("page-secret"), "the token was logged: {log}");
}

#[tokio::test]
async fn without_the_token_the_page_says_unauthorized_until_one_is_typed() {
    let Some(chromium) =
        chromium_or_skip("without_the_token_the_page_says_unauthorized_until_one_is_typed")
    else {
        return;
    };
    let port = free_port();
    let gateway = Gateway::start(port, &["--token", "page-secret"]);
    let mut browser = Browser::open(&chromium, &page_url(port), &[]).await;

    browser.wait_for_text("state", "unauthorized").await;
    assert_eq!(browser.text("pid").await.as_deref(), Some("–"));
    let notice = browser.text("notice").await.unwrap_or_default();
    assert!(notice.contains("needs a token"), "{notice}");

    browser
        .evaluate(
            "document.getElementById('token').value = 'page-secret'; \
             document.getElementById('auth').requestSubmit(); true",
        )
        .await;
    browser.wait_for_text("state", "live").await;
    browser
        .wait_for_text("pid", &gateway.child.id().to_string())
        .await;
}

#[tokio::test]
async fn the_page_shows_the_shutdown_and_reconnects_to_the_next_gateway() {
    let Some(chromium) =
        chromium_or_skip("the_page_shows_the_shutdown_and_reconnects_to_the_next_gateway")
    else {
        return;
    };
    let port = free_port();
    let mut first = Gateway::start(port, &[]);
    let mut browser = Browser::open(&chromium, &page_url(port), &[]).await;
    browser
        .wait_for_text("pid", &first.child.id().to_string())
        .await;

    first.signal(Signal::SIGTERM);
    assert!(first.wait_exit().success());
    browser.wait_for_text("state", "offline").await;
    browser
        .wait_for("the shutdown event", "events", |events| {
            events.contains("shutdown: gateway stopping")
        })
        .await;

    let second = Gateway::start(port, &[]);
    browser
        .wait_for_text("pid", &second.child.id().to_string())
        .await;
    browser.wait_for_text("state", "live").await;
}

#[tokio::test]
async fn across_a_restart_the_page_stays_on_its_session_and_shows_the_new_pid() {
    let Some(chromium) =
        chromium_or_skip("across_a_restart_the_page_stays_on_its_session_and_shows_the_new_pid")
    else {
        return;
    };
    let port = free_port();
    let mut old = Gateway::start(port, &[]);
    let old_pid = old.child.id();
    let mut browser = Browser::open(&chromium, &page_url(port), &[]).await;
    browser.wait_for_text("pid", &old_pid.to_string()).await;

    old.signal(Signal::SIGHUP);
    assert!(old.wait_exit().success());
    let new_pid = http_get(port, "/healthz")
        .expect("the new process serves")
        .json()["pid"]
        .as_u64()
        .expect("a pid") as u32;
    let _new = KillPidOnDrop(new_pid);
    assert_ne!(new_pid, old_pid);
    browser
        .wait_for("the restarted event", "events", |events| {
            events.contains(&format!("restarted: pid {old_pid} -> {new_pid}"))
        })
        .await;
    browser.wait_for_text("pid", &new_pid.to_string()).await;
    browser.wait_for_text("state", "live").await;
    // The session moved: the page never reconnected, and the new process counted no
    // handshake of its own.
    let events = browser.text("events").await.unwrap_or_default();
    assert!(!events.contains("disconnected"), "{events}");
    assert_eq!(events.matches("connected to pid").count(), 1, "{events}");
    let metrics = http_get(port, "/metrics").expect("metrics").body;
    assert!(
        metrics.contains("gateway_handshakes_total{outcome=\"ok\"} 0"),
        "the new process counted a handshake:\n{metrics}"
    );
}

#[tokio::test]
async fn a_clustered_gateway_s_page_shows_its_role_and_fencing_token() {
    let Some(chromium) =
        chromium_or_skip("a_clustered_gateway_s_page_shows_its_role_and_fencing_token")
    else {
        return;
    };
    let Some(etcd) = Etcd::start() else { return };
    let port = free_port();
    let url = etcd.url();
    let gateway = Gateway::start(port, &["--cluster-etcd", &url, "--cluster-key", "page"]);
    let token = http_get(port, "/healthz").unwrap().json()["cluster"]["fencingToken"]
        .as_u64()
        .expect("an active gateway has a fencing token");
    let mut browser = Browser::open(&chromium, &page_url(port), &[]).await;
    browser
        .wait_for_text("pid", &gateway.child.id().to_string())
        .await;
    browser.wait_for_text("role", "active").await;
    browser.wait_for_text("fencing", &token.to_string()).await;
}

#[tokio::test]
async fn a_page_requested_under_a_foreign_host_name_gets_403() {
    let Some(chromium) = chromium_or_skip("a_page_requested_under_a_foreign_host_name_gets_403")
    else {
        return;
    };
    let port = free_port();
    let _gateway = Gateway::start(port, &[]);
    let url = format!("http://gateway.example:{port}/");
    let mut browser = Browser::open(&chromium, &url, &[FOREIGN_HOST_RULES]).await;

    let status = loop_until_loaded(&mut browser).await;
    assert_eq!(status, 403);
    assert_eq!(browser.text("state").await, None, "the page was served");
    let body = browser
        .evaluate("document.body?.innerText ?? ''")
        .await
        .to_string();
    assert!(body.contains("forbidden_host"), "{body}");
}

/// The HTTP status of the page's navigation, once it has loaded (the browser shows
/// `about:blank` first).
async fn loop_until_loaded(browser: &mut Browser) -> u64 {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let status = browser
            .evaluate(
                "location.protocol === 'http:' && document.readyState === 'complete' \
                 ? performance.getEntriesByType('navigation')[0]?.responseStatus ?? null : null",
            )
            .await;
        if let Some(status) = status.as_u64() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the page never loaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
