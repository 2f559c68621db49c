//! Reading request frames and writing response and event frames. Output field order
//! follows docs/reference.md#websocket, so frames read the same in a log as in the docs.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A well-formed request: `{"type":"req","id":"...","method":"...","params":{...}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: String,
    pub method: String,
    /// `params`, or `null` when absent.
    pub params: Value,
}

/// A frame that is not a valid request, with its `id` when one could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest {
    pub id: Option<String>,
    pub message: &'static str,
}

/// The shape of a well-formed request, read without building a JSON tree: the fast
/// path for the frames that make up nearly all traffic. Strings borrow from the
/// frame unless they contain escapes.
#[derive(Deserialize)]
struct WireRequest<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(default)]
    params: Option<Value>,
}

/// Parses one text frame as a request.
pub fn parse_request(text: &str) -> Result<Request, InvalidRequest> {
    if let Ok(wire) = serde_json::from_str::<WireRequest<'_>>(text) {
        let params = wire.params.unwrap_or(Value::Null);
        if wire.kind == "req" && (params.is_object() || params.is_null()) {
            return Ok(Request {
                id: wire.id.into_owned(),
                method: wire.method.into_owned(),
                params,
            });
        }
    }
    // Anything else takes the slow path, which says precisely what is wrong.
    parse_request_slowly(text)
}

fn parse_request_slowly(text: &str) -> Result<Request, InvalidRequest> {
    let value: Value = serde_json::from_str(text).map_err(|_| InvalidRequest {
        id: None,
        message: "frame is not valid JSON",
    })?;
    let Value::Object(mut map) = value else {
        return Err(InvalidRequest {
            id: None,
            message: "frame is not a JSON object",
        });
    };
    let id = match map.remove("id") {
        Some(Value::String(id)) => Some(id),
        _ => None,
    };
    let invalid = |message| InvalidRequest {
        id: id.clone(),
        message,
    };
    if map.get("type").and_then(Value::as_str) != Some("req") {
        return Err(invalid("\"type\" must be \"req\""));
    }
    let Some(method) = map.get("method").and_then(Value::as_str).map(str::to_owned) else {
        return Err(invalid("\"method\" must be a string"));
    };
    let params = map.remove("params").unwrap_or(Value::Null);
    if !(params.is_object() || params.is_null()) {
        return Err(invalid("\"params\" must be an object"));
    }
    let Some(id) = id else {
        return Err(invalid("\"id\" must be a string"));
    };
    Ok(Request { id, method, params })
}

#[derive(Serialize)]
struct OkFrame<'a, P: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    ok: bool,
    payload: &'a P,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct ErrorFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: Option<&'a str>,
    ok: bool,
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct EventFrame<'a, P: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    event: &'a str,
    payload: &'a P,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

/// The error codes a response may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    UnknownMethod,
    ProtocolMismatch,
    Unauthorized,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::UnknownMethod => "unknown_method",
            Self::ProtocolMismatch => "protocol_mismatch",
            Self::Unauthorized => "unauthorized",
        }
    }
}

// Serialising these plain structs cannot fail: no maps with non-string keys, no
// failing `Serialize` impls.
fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| String::from("{}"))
}

/// `{"type":"res","id":...,"ok":true,"payload":...}`
pub fn ok_response(id: &str, payload: &impl Serialize) -> String {
    to_json(&OkFrame {
        kind: "res",
        id,
        ok: true,
        payload,
    })
}

/// `{"type":"res","id":...|null,"ok":false,"error":{"code":...,"message":...}}`
pub fn error_response(id: Option<&str>, code: ErrorCode, message: &str) -> String {
    to_json(&ErrorFrame {
        kind: "res",
        id,
        ok: false,
        error: ErrorBody {
            code: code.as_str(),
            message,
        },
    })
}

/// `{"type":"event","event":...,"payload":...[,"seq":N]}`
pub fn event(name: &str, payload: &impl Serialize, seq: Option<u64>) -> String {
    to_json(&EventFrame {
        kind: "event",
        event: name,
        payload,
        seq,
    })
}

#[derive(Serialize)]
struct TickPayload {
    ts: u64,
}

/// The `tick` event at unix time `ts_ms`, numbered `seq` on its connection.
pub fn tick_event(ts_ms: u64, seq: u64) -> String {
    event("tick", &TickPayload { ts: ts_ms }, Some(seq))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RestartedPayload<'a> {
    pid: u32,
    previous_pid: u32,
    version: &'a str,
}

/// The `restarted` event a session gets first from the process it moved to: `pid` serves it
/// now, `previous_pid` served it before, `version` is the new process's version.
pub fn restarted_event(pid: u32, previous_pid: u32, version: &str, seq: u64) -> String {
    event(
        "restarted",
        &RestartedPayload {
            pid,
            previous_pid,
            version,
        },
        Some(seq),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn reads_a_request() {
        let r = parse_request(r#"{"type":"req","id":"7","method":"health","params":{}}"#).unwrap();
        assert_eq!(r.id, "7");
        assert_eq!(r.method, "health");
    }

    #[test]
    fn params_may_be_absent() {
        let r = parse_request(r#"{"type":"req","id":"7","method":"status"}"#).unwrap();
        assert!(r.params.is_null());
    }

    #[test]
    fn invalid_frames_keep_the_id_they_have() {
        let e = parse_request(r#"{"type":"res","id":"9","method":"x"}"#).unwrap_err();
        assert_eq!(e.id.as_deref(), Some("9"));
        let e = parse_request(r#"{"type":"req","id":9,"method":"x"}"#).unwrap_err();
        assert_eq!(e.id, None);
        let e = parse_request("not json").unwrap_err();
        assert_eq!(e.id, None);
        let e = parse_request(r#"["req"]"#).unwrap_err();
        assert_eq!(e.id, None);
    }

    #[test]
    fn frames_have_the_documented_shapes() {
        assert_eq!(
            error_response(None, ErrorCode::InvalidRequest, "bad"),
            r#"{"type":"res","id":null,"ok":false,"error":{"code":"invalid_request","message":"bad"}}"#
        );
        assert_eq!(
            ok_response("a", &json!({"x":1})),
            r#"{"type":"res","id":"a","ok":true,"payload":{"x":1}}"#
        );
        assert_eq!(
            tick_event(5, 1),
            r#"{"type":"event","event":"tick","payload":{"ts":5},"seq":1}"#
        );
        assert_eq!(
            restarted_event(20, 10, "1.2.3", 7),
            r#"{"type":"event","event":"restarted","payload":{"pid":20,"previousPid":10,"version":"1.2.3"},"seq":7}"#
        );
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = parse_request(&text);
        }

        #[test]
        fn the_fast_path_agrees_with_the_slow_one(
            kind in prop_oneof![Just("req"), Just("res"), Just("r\\u0065q")],
            id in "[a-z\\\\\"]{0,6}",
            method in "[a-z]{0,6}",
            params in prop_oneof![Just(""), Just(r#","params":{}"#), Just(r#","params":[1]"#), Just(r#","params":null"#)],
        ) {
            let text = format!(
                r#"{{"type":"{kind}","id":{},"method":"{method}"{params}}}"#,
                serde_json::to_string(&id).unwrap()
            );
            prop_assert_eq!(parse_request(&text), parse_request_slowly(&text));
        }

        #[test]
        fn arbitrary_json_objects_never_panic(
            keys in proptest::collection::vec("(type|id|method|params|[a-z]{1,5})", 0..6),
            values in proptest::collection::vec(
                prop_oneof![
                    Just(Value::Null),
                    any::<bool>().prop_map(Value::from),
                    any::<i64>().prop_map(Value::from),
                    "[a-z]{0,8}".prop_map(Value::from),
                    Just(json!({})),
                    Just(json!([1, "req"])),
                ],
                0..6,
            ),
        ) {
            let obj: serde_json::Map<String, Value> = keys.into_iter().zip(values).collect();
            let text = Value::Object(obj).to_string();
            if let Ok(r) = parse_request(&text) {
                // Only a complete request is ever accepted.
                prop_assert!(text.contains("\"req\""));
                prop_assert!(!r.method.is_empty() || text.contains("\"method\":\"\""));
            }
        }
    }
}
