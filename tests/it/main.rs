//! The cross-process tests: the real `gateway` binary started, raced, restarted,
//! killed, on ports from the OS. One test binary with a module per subject (one link
//! instead of fifteen). The daemon's life without processes is tested in-process in
//! `gateway-core`; what only processes can show is here.

#[path = "../support/browser.rs"]
mod browser;
#[path = "../support/handoff.rs"]
mod handoff;
#[path = "../support/mod.rs"]
mod support;

mod cluster;
mod cluster_tls;
mod http;
mod lock;
mod logging;
mod metrics;
mod operations;
mod packaging;
mod profiles;
mod protocol_timing;
mod restart;
mod security;
mod shutdown;
mod status_page;
mod systemd;
mod tls;
mod websocket;
