//! Fuzzes everything the gateway does with a client's text frame: the `connect`
//! handshake (with and without a token) and request routing. Any panic is a bug.
#![no_main]

use gateway_domain::GatewayIdentity;
use gateway_domain::protocol::dispatch::route;
use gateway_domain::protocol::handshake::evaluate_connect;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let server = GatewayIdentity {
        pid: 1,
        port: 18789,
        profile: "fuzz".into(),
        version: "0.0.0".into(),
    };
    let _ = evaluate_connect(&text, None, &server);
    let _ = evaluate_connect(&text, Some("token"), &server);
    let _ = route(&text);
});
