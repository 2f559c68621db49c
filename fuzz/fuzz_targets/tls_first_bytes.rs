//! Fuzzes what the gateway's TLS side does with the first bytes a client sends on
//! the port (plain HTTP, garbage, a truncated or malformed `ClientHello`): the
//! gateway's own rustls server configuration, driven as the accept path drives it.
//! Any panic is a bug; every input must end waited on, answered, or closed.
#![no_main]

use std::sync::OnceLock;

use gateway_adapters::TlsTermination;
use libfuzzer_sys::fuzz_target;

/// The gateway's TLS side with a self-signed certificate for `localhost`, made once.
fn termination() -> &'static TlsTermination {
    static TERMINATION: OnceLock<TlsTermination> = OnceLock::new();
    TERMINATION.get_or_init(|| {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a certificate");
        TlsTermination::from_pem(
            made.cert.pem().as_bytes(),
            made.key_pair.serialize_pem().as_bytes(),
        )
        .expect("a usable certificate")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = termination().first_bytes(data);
});
