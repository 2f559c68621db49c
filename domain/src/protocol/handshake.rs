//! The `connect` handshake: what the first client message must be, and how the
//! gateway answers each way it can go wrong.

use serde::Serialize;
use serde_json::Value;

use super::close::{self, CloseInstruction};
use super::frame::{self, ErrorCode, Request};
use super::{EVENTS, MAX_PAYLOAD, METHODS, PROTOCOL_VERSION, TICK_INTERVAL_MS};
use crate::identity::GatewayIdentity;

/// The client's self-description from `connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub name: String,
    pub version: String,
}

/// What to do with the first message of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeOutcome {
    /// Send `hello_ok`; the connection is open for requests.
    Accepted {
        client: ClientInfo,
        hello_ok: String,
    },
    /// Send `response` (when there is one), then close.
    Rejected {
        response: Option<String>,
        close: CloseInstruction,
        /// The failure was a bad token: the peer's next attempts are slowed down.
        unauthorized: bool,
    },
}

/// Decides the first message of a connection. `expected_token` is the configured
/// token, if any; it is compared in constant time.
pub fn evaluate_connect(
    text: &str,
    expected_token: Option<&str>,
    server: &GatewayIdentity,
) -> HandshakeOutcome {
    evaluate_fenced_connect(text, expected_token, server, None)
}

/// [`evaluate_connect`] for an active clustered gateway: `hello-ok` carries
/// `server.fencingToken`.
pub fn evaluate_fenced_connect(
    text: &str,
    expected_token: Option<&str>,
    server: &GatewayIdentity,
    fencing_token: Option<u64>,
) -> HandshakeOutcome {
    let invalid = HandshakeOutcome::Rejected {
        response: None,
        close: close::INVALID_HANDSHAKE,
        unauthorized: false,
    };
    let Ok(request) = frame::parse_request(text) else {
        return invalid;
    };
    if request.method != "connect" {
        return invalid;
    }
    let connect = match ConnectParams::read(&request) {
        Ok(connect) => connect,
        // Say which field is wrong, so a client can be written from the answer alone.
        Err(problem) => {
            return HandshakeOutcome::Rejected {
                response: Some(frame::error_response(
                    Some(&request.id),
                    ErrorCode::InvalidRequest,
                    &problem,
                )),
                close: close::INVALID_HANDSHAKE,
                unauthorized: false,
            };
        }
    };
    if !(connect.min_protocol..=connect.max_protocol).contains(&PROTOCOL_VERSION) {
        return HandshakeOutcome::Rejected {
            response: Some(frame::error_response(
                Some(&request.id),
                ErrorCode::ProtocolMismatch,
                &format!(
                    "server speaks protocol {PROTOCOL_VERSION}; client offered {}..{}",
                    connect.min_protocol, connect.max_protocol
                ),
            )),
            close: close::PROTOCOL_MISMATCH,
            unauthorized: false,
        };
    }
    if let Some(expected) = expected_token {
        let offered = connect.token.unwrap_or_default();
        if !tokens_match(offered.as_bytes(), expected.as_bytes()) {
            return HandshakeOutcome::Rejected {
                response: Some(frame::error_response(
                    Some(&request.id),
                    ErrorCode::Unauthorized,
                    "missing or wrong token",
                )),
                close: close::UNAUTHORIZED,
                unauthorized: true,
            };
        }
    }
    HandshakeOutcome::Accepted {
        client: connect.client,
        hello_ok: frame::ok_response(&request.id, &HelloOk::for_server(server, fencing_token)),
    }
}

struct ConnectParams {
    min_protocol: u64,
    max_protocol: u64,
    client: ClientInfo,
    token: Option<String>,
}

impl ConnectParams {
    /// The parameters, or what is wrong with them, naming the field:
    /// `params.client.name is required`, `params.minProtocol must be a non-negative integer`.
    fn read(request: &Request) -> Result<Self, String> {
        let params = &request.params;
        if !params.is_object() {
            return Err(String::from("params is required"));
        }
        let client = field(params, "params", "client")?;
        if !client.is_object() {
            return Err(String::from("params.client must be an object"));
        }
        Ok(Self {
            min_protocol: integer(
                field(params, "params", "minProtocol")?,
                "params.minProtocol",
            )?,
            max_protocol: integer(
                field(params, "params", "maxProtocol")?,
                "params.maxProtocol",
            )?,
            client: ClientInfo {
                name: string(
                    field(client, "params.client", "name")?,
                    "params.client.name",
                )?,
                version: string(
                    field(client, "params.client", "version")?,
                    "params.client.version",
                )?,
            },
            // A missing token is an `unauthorized` answer, not a malformed request.
            token: params
                .get("auth")
                .and_then(|a| a.get("token"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// `parent.name`, which must be present.
fn field<'v>(parent: &'v Value, path: &str, name: &str) -> Result<&'v Value, String> {
    parent
        .get(name)
        .filter(|v| !v.is_null())
        .ok_or_else(|| format!("{path}.{name} is required"))
}

fn integer(value: &Value, path: &str) -> Result<u64, String> {
    value
        .as_u64()
        .ok_or_else(|| format!("{path} must be a non-negative integer"))
}

fn string(value: &Value, path: &str) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{path} must be a string"))
}

/// Compares two tokens without an early exit, so timing does not reveal how much
/// of a guess was right. Length is not secret.
pub fn tokens_match(offered: &[u8], expected: &[u8]) -> bool {
    if offered.len() != expected.len() {
        return false;
    }
    offered
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[derive(Serialize)]
struct HelloOk<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    protocol: u64,
    server: ServerInfo<'a>,
    methods: [&'static str; 2],
    events: [&'static str; 3],
    policy: Policy,
}

#[derive(Serialize)]
struct ServerInfo<'a> {
    version: &'a str,
    pid: u32,
    profile: &'a str,
    /// Only when clustered: the lock's fencing token (see docs/reference.md#cluster).
    #[serde(rename = "fencingToken", skip_serializing_if = "Option::is_none")]
    fencing_token: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Policy {
    tick_interval_ms: u64,
    max_payload: usize,
}

impl<'a> HelloOk<'a> {
    fn for_server(server: &'a GatewayIdentity, fencing_token: Option<u64>) -> Self {
        Self {
            kind: "hello-ok",
            protocol: PROTOCOL_VERSION,
            server: ServerInfo {
                version: &server.version,
                pid: server.pid,
                profile: &server.profile,
                fencing_token,
            },
            methods: METHODS,
            events: EVENTS,
            policy: Policy {
                tick_interval_ms: TICK_INTERVAL_MS,
                max_payload: MAX_PAYLOAD,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> GatewayIdentity {
        GatewayIdentity::fixture(9, 1)
    }

    fn connect(min: u64, max: u64, auth: &str) -> String {
        format!(
            r#"{{"type":"req","id":"c1","method":"connect","params":{{"minProtocol":{min},"maxProtocol":{max},"client":{{"name":"t","version":"1"}}{auth}}}}}"#
        )
    }

    #[test]
    fn a_valid_connect_gets_hello_ok() {
        let HandshakeOutcome::Accepted { hello_ok, client } =
            evaluate_connect(&connect(1, 1, ""), None, &server())
        else {
            panic!("rejected")
        };
        assert_eq!(client.name, "t");
        assert_eq!(
            hello_ok,
            r#"{"type":"res","id":"c1","ok":true,"payload":{"type":"hello-ok","protocol":1,"server":{"version":"0.1.0","pid":9,"profile":"default"},"methods":["health","status"],"events":["tick","shutdown","restarted"],"policy":{"tickIntervalMs":30000,"maxPayload":1048576}}}"#
        );
    }

    #[test]
    fn a_connect_missing_a_field_is_answered_naming_it_then_closed() {
        for (params, message) in [
            (r#""#, "params is required"),
            (r#","params":{}"#, "params.client is required"),
            (
                r#","params":{"minProtocol":1,"maxProtocol":1}"#,
                "params.client is required",
            ),
            (
                r#","params":{"minProtocol":1,"maxProtocol":1,"client":{"version":"1"}}"#,
                "params.client.name is required",
            ),
            (
                r#","params":{"minProtocol":1,"maxProtocol":1,"client":{"name":"n"}}"#,
                "params.client.version is required",
            ),
            (
                r#","params":{"maxProtocol":1,"client":{"name":"n","version":"1"}}"#,
                "params.minProtocol is required",
            ),
            (
                r#","params":{"minProtocol":1,"client":{"name":"n","version":"1"}}"#,
                "params.maxProtocol is required",
            ),
            (
                r#","params":{"minProtocol":"1","maxProtocol":1,"client":{"name":"n","version":"1"}}"#,
                "params.minProtocol must be a non-negative integer",
            ),
            (
                r#","params":{"minProtocol":1,"maxProtocol":1,"client":{"name":7,"version":"1"}}"#,
                "params.client.name must be a string",
            ),
            (
                r#","params":{"minProtocol":1,"maxProtocol":1,"client":"me"}"#,
                "params.client must be an object",
            ),
        ] {
            let text = format!(r#"{{"type":"req","id":"c9","method":"connect"{params}}}"#);
            let HandshakeOutcome::Rejected {
                response: Some(response),
                close,
                unauthorized: false,
            } = evaluate_connect(&text, Some("token"), &server())
            else {
                panic!("{text}: not an invalid_request answer")
            };
            assert_eq!(close, close::INVALID_HANDSHAKE, "{text}");
            assert_eq!(
                response,
                frame::error_response(Some("c9"), ErrorCode::InvalidRequest, message),
                "{text}"
            );
        }
    }

    #[test]
    fn anything_but_connect_first_is_an_invalid_handshake() {
        for text in [
            r#"{"type":"req","id":"1","method":"health"}"#,
            "hello",
            r#"{"type":"res","id":"1","method":"connect","params":{}}"#,
        ] {
            assert_eq!(
                evaluate_connect(text, None, &server()),
                HandshakeOutcome::Rejected {
                    response: None,
                    close: close::INVALID_HANDSHAKE,
                    unauthorized: false
                },
                "{text}"
            );
        }
    }

    #[test]
    fn a_range_without_our_protocol_is_a_mismatch() {
        let HandshakeOutcome::Rejected {
            response, close, ..
        } = evaluate_connect(&connect(2, 3, ""), None, &server())
        else {
            panic!("accepted")
        };
        assert_eq!(close.code, 1002);
        assert!(response.unwrap().contains(r#""code":"protocol_mismatch""#));
    }

    #[test]
    fn a_configured_token_must_be_presented() {
        let good = connect(1, 1, r#","auth":{"token":"s3cret"}"#);
        let bad = connect(1, 1, r#","auth":{"token":"s3creT"}"#);
        let none = connect(1, 1, "");
        assert!(matches!(
            evaluate_connect(&good, Some("s3cret"), &server()),
            HandshakeOutcome::Accepted { .. }
        ));
        for text in [bad, none] {
            let HandshakeOutcome::Rejected {
                response,
                close,
                unauthorized,
            } = evaluate_connect(&text, Some("s3cret"), &server())
            else {
                panic!("accepted")
            };
            assert!(unauthorized);
            assert_eq!(close.code, 1008);
            assert!(response.unwrap().contains(r#""code":"unauthorized""#));
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_first_messages_never_panic_and_only_connect_is_accepted(
            text in proptest::prelude::any::<String>(),
            token in proptest::option::of("[a-z]{0,8}"),
        ) {
            let outcome = evaluate_connect(&text, token.as_deref(), &server());
            if matches!(outcome, HandshakeOutcome::Accepted { .. }) {
                proptest::prop_assert!(text.contains("connect"));
            }
        }

        #[test]
        fn arbitrary_bytes_as_lossy_text_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = evaluate_connect(&text, Some("t"), &server());
            let _ = crate::protocol::dispatch::route(&text);
        }
    }

    #[test]
    fn token_comparison() {
        assert!(tokens_match(b"abc", b"abc"));
        assert!(!tokens_match(b"abc", b"abd"));
        assert!(!tokens_match(b"abc", b"abcd"));
        assert!(!tokens_match(b"", b"a"));
    }

    #[test]
    fn an_active_clustered_gateway_names_its_fencing_token_in_hello_ok() {
        let HandshakeOutcome::Accepted { hello_ok, .. } =
            evaluate_fenced_connect(&connect(1, 1, ""), None, &server(), Some(12))
        else {
            panic!("rejected")
        };
        assert!(
            hello_ok.contains(
                r#""server":{"version":"0.1.0","pid":9,"profile":"default","fencingToken":12}"#
            ),
            "{hello_ok}"
        );
    }
}
