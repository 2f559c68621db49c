//! What the gateway's TLS side does with the first bytes a client sends: the
//! accept path's decision as a pure function of those bytes, for the fuzz target
//! (`fuzz/fuzz_targets/tls_first_bytes.rs`) and the property test below.
//!
//! It drives a rustls `ServerConnection` built from the gateway's own `ServerConfig`
//! the way `tokio_rustls::Accept` does on a connection: read what arrived, process
//! it, and on an error send what rustls has queued (its alert) and give up.

use std::sync::Arc;

use rustls::ServerConnection;

use super::TlsTermination;

/// What the server does once a client's first bytes have arrived and nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstBytes {
    /// No whole `ClientHello` yet, nothing wrong so far: the server sends nothing and
    /// waits for more, within the handshake's deadline (10 s).
    Waits,
    /// A `ClientHello` it takes: the server answers with `reply` (its `ServerHello`
    /// and what follows it) and waits for the client's next flight.
    Answers {
        /// The bytes written back to the client.
        reply: Vec<u8>,
    },
    /// The server sends `reply` (its alert, after whatever it had already answered)
    /// and closes the connection. A client speaking plain HTTP, garbage, a record
    /// too long or a malformed `ClientHello` all end here.
    Closes {
        /// The bytes written back to the client before the close.
        reply: Vec<u8>,
        /// rustls' reason.
        reason: String,
    },
}

impl TlsTermination {
    /// What the server does with `bytes`, the first a client sends on the port.
    pub fn first_bytes(&self, bytes: &[u8]) -> FirstBytes {
        let mut connection = match ServerConnection::new(Arc::clone(self.acceptor.config())) {
            Ok(connection) => connection,
            Err(error) => {
                return FirstBytes::Closes {
                    reply: Vec::new(),
                    reason: error.to_string(),
                };
            }
        };
        let mut unread = bytes;
        while !unread.is_empty() {
            let step = connection
                .read_tls(&mut unread)
                .map_err(|error| error.to_string())
                .and_then(|_| {
                    connection
                        .process_new_packets()
                        .map(drop)
                        .map_err(|error| error.to_string())
                });
            if let Err(reason) = step {
                return FirstBytes::Closes {
                    reply: sent(&mut connection),
                    reason,
                };
            }
        }
        let reply = sent(&mut connection);
        if reply.is_empty() {
            FirstBytes::Waits
        } else {
            FirstBytes::Answers { reply }
        }
    }
}

/// Everything rustls has queued for the client.
fn sent(connection: &mut ServerConnection) -> Vec<u8> {
    let mut reply = Vec::new();
    while connection.wants_write() {
        match connection.write_tls(&mut reply) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn termination() -> &'static TlsTermination {
        super::super::self_signed()
    }

    /// A `ClientHello` as a rustls client would send it to `localhost` (for tests).
    fn client_hello() -> Vec<u8> {
        use rustls::ClientConfig;
        use rustls::pki_types::ServerName;

        let config = ClientConfig::builder_with_provider(super::super::provider())
            .with_protocol_versions(super::super::VERSIONS)
            .expect("TLS 1.2 and 1.3")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").expect("a name");
        let mut client = rustls::ClientConnection::new(Arc::new(config), name).expect("a client");
        let mut hello = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut hello).expect("into a Vec");
        }
        hello
    }

    /// A TLS alert record: content type 21, then version, length 2, level, description.
    fn is_alert(bytes: &[u8]) -> bool {
        bytes.len() == 7 && bytes[0] == 21 && bytes[3..5] == [0, 2]
    }

    #[test]
    fn a_plain_http_request_on_the_tls_port_gets_an_alert_and_the_close() {
        let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
        let FirstBytes::Closes { reply, .. } = termination().first_bytes(request) else {
            panic!("a plain request must not be waited on or answered");
        };
        assert!(is_alert(&reply), "{reply:?}");
    }

    #[test]
    fn garbage_and_an_oversized_record_are_closed() {
        for bytes in [
            &[0u8; 64][..],
            b"\x16\x03\x01\xff\xff",
            b"\x17\x03\x03\x00\x01x",
        ] {
            assert!(
                matches!(termination().first_bytes(bytes), FirstBytes::Closes { .. }),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn a_truncated_client_hello_is_waited_on_and_a_whole_one_answered() {
        let hello = client_hello();
        assert_eq!(termination().first_bytes(&[]), FirstBytes::Waits);
        assert_eq!(
            termination().first_bytes(&hello[..hello.len() / 2]),
            FirstBytes::Waits
        );
        let FirstBytes::Answers { reply } = termination().first_bytes(&hello) else {
            panic!("a whole ClientHello is answered");
        };
        // A handshake record (the ServerHello) comes first.
        assert_eq!(reply[0], 22);
    }

    proptest! {
        /// Whatever a client sends first, the server decides without panicking, and it
        /// answers only what starts as a handshake record.
        #[test]
        fn any_first_bytes_are_decided(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            match termination().first_bytes(&bytes) {
                FirstBytes::Waits => {}
                FirstBytes::Answers { reply } => {
                    prop_assert_eq!(bytes[0], 22);
                    prop_assert!(!reply.is_empty());
                }
                FirstBytes::Closes { reason, .. } => prop_assert!(!reason.is_empty()),
            }
        }

        /// A real `ClientHello` with a few bytes changed (lengths, versions, extensions)
        /// is decided too, and only an answer to a handshake record is a handshake record.
        #[test]
        fn a_client_hello_with_bytes_changed_is_decided(
            changes in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        ) {
            let mut hello = client_hello();
            for (at, byte) in changes {
                let at = at % hello.len();
                hello[at] = byte;
            }
            match termination().first_bytes(&hello) {
                FirstBytes::Waits => {}
                FirstBytes::Answers { reply } => {
                    prop_assert_eq!(hello[0], 22);
                    prop_assert_eq!(reply[0], 22);
                }
                FirstBytes::Closes { reason, .. } => prop_assert!(!reason.is_empty()),
            }
        }

        /// Every strict prefix of a real `ClientHello` is waited on; anything after a
        /// whole one is decided like the rest.
        #[test]
        fn a_client_hello_cut_anywhere_is_waited_on(
            cut in 0usize..4096,
            tail in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let hello = client_hello();
            let cut = cut % hello.len();
            prop_assert_eq!(termination().first_bytes(&hello[..cut]), FirstBytes::Waits);
            let mut longer = hello.clone();
            longer.extend_from_slice(&tail);
            let _ = termination().first_bytes(&longer);
        }
    }
}
