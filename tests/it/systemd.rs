//! Readiness notification for systemd `Type=notify`.

use std::os::unix::net::UnixDatagram;

use crate::support::*;
use nix::sys::signal::Signal;

#[test]
fn ready_arrives_once_the_port_serves_and_stopping_on_sigterm() {
    let dir = TempDir::new("notify");
    let socket_path = dir.path().join("notify.sock");
    let manager = UnixDatagram::bind(&socket_path).unwrap();
    manager.set_read_timeout(Some(DEADLINE)).unwrap();

    let port = free_port();
    let mut gateway = Gateway::spawn_with(port, &[], |c| {
        c.env("NOTIFY_SOCKET", &socket_path);
    });
    let mut buf = [0u8; 512];
    let n = manager
        .recv(&mut buf)
        .expect("a notification before the deadline");
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(message.lines().any(|l| l == "READY=1"), "{message}");
    // Ready means serving: the very first request after READY=1 succeeds.
    assert_eq!(http_get(port, "/healthz").unwrap().status, 200);

    gateway.signal(Signal::SIGTERM);
    let n = manager
        .recv(&mut buf)
        .expect("STOPPING=1 before the deadline");
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(message.lines().any(|l| l == "STOPPING=1"), "{message}");
    assert_eq!(gateway.wait_exit().code(), Some(0));
}
